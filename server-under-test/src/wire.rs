//! The contract's wire shapes: event names, the `send_message` payload and its
//! validation (M1, B1), and the error body shared by acks and HTTP (B1).

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::username::Username;

/// Client → server: send a message (M1).
pub const SEND_MESSAGE: &str = "send_message";
/// Server → client: a pushed message (M3).
pub const NEW_MESSAGE: &str = "new_message";
/// Server → client: a user came online (P1).
pub const USER_ONLINE: &str = "user_online";
/// Server → client: a user went offline (P3).
pub const USER_OFFLINE: &str = "user_offline";

/// `{"error": "<reason>"}`: the shape of every refusal, in acks and HTTP bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub error: String,
}

impl ErrorBody {
    /// An error body with this reason.
    pub fn new(reason: impl std::fmt::Display) -> Self {
        Self {
            error: reason.to_string(),
        }
    }
}

/// `{"username": "<u>"}`: the data of `user_online` and `user_offline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresenceEvent<'a> {
    /// Who came online or went offline.
    pub username: &'a str,
}

/// A validated `send_message` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// The recipient, a valid username (M2).
    pub to: Username,
    /// 1 to `max_content_chars` Unicode scalar values (M1).
    pub content: String,
    /// Sender-unique retry key (M1).
    pub client_id: String,
}

/// Why a `send_message` is refused (M2, B1). The `Display` text is the ack's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sending connection is not registered (I3).
    #[error("not registered: connect with a valid username header")]
    NotRegistered,
    /// The argument is missing, not a JSON object, or not the only one.
    #[error("send_message takes exactly one argument, a JSON object {{\"to\", \"content\", \"client_id\"}}")]
    NotAnObject,
    /// A required field is absent or not a string.
    #[error("field '{0}' is missing or not a string")]
    MissingField(&'static str),
    /// `to` is not a valid username (I2).
    #[error("recipient is not a valid username")]
    InvalidRecipient,
    /// `content` is empty or too long.
    #[error("content must be 1 to {0} characters")]
    ContentLength(usize),
    /// `client_id` is empty or too long.
    #[error("client_id must be 1 to {0} characters")]
    ClientIdLength(usize),
    /// `client_id` was already used by this sender for another message (M1).
    #[error("client_id already used for a different message")]
    ClientIdReused,
    /// The sender is over its rate.
    #[error("rate limited: at most {0} messages per second; retry later")]
    RateLimited(u32),
    /// The recipient's mailbox is full.
    #[error("the recipient's mailbox is full")]
    MailboxFull,
    /// A node of several cannot reach the deployment's shared state: it
    /// accepts nothing it could not store or hand on (N4).
    #[error("the shared state is unreachable; try again")]
    Unavailable,
}

impl SendMessage {
    /// Validates the first argument of a `send_message` event. `None` is an
    /// event sent without an argument.
    pub fn parse(payload: Option<&Value>, config: &Config) -> Result<Self, Refusal> {
        let object = payload
            .and_then(Value::as_object)
            .ok_or(Refusal::NotAnObject)?;
        let field = |name: &'static str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .ok_or(Refusal::MissingField(name))
        };
        let (to, content, client_id) = (field("to")?, field("content")?, field("client_id")?);
        let to = Username::parse(to).map_err(|_| Refusal::InvalidRecipient)?;
        if !(1..=config.max_content_chars).contains(&content.chars().count()) {
            return Err(Refusal::ContentLength(config.max_content_chars));
        }
        if !(1..=config.max_client_id_chars).contains(&client_id.chars().count()) {
            return Err(Refusal::ClientIdLength(config.max_client_id_chars));
        }
        Ok(Self {
            to,
            content: content.to_owned(),
            client_id: client_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SendMessage, Refusal> {
        SendMessage::parse(Some(&v), &Config::default())
    }

    #[test]
    fn accepts_a_well_formed_payload_m1() {
        let m = parse(json!({"to": "rama", "content": "Hello", "client_id": "c1"})).unwrap();
        assert_eq!(m.to.as_str(), "rama");
        assert_eq!(m.content, "Hello");
    }

    #[test]
    fn refuses_wrong_shapes_b1() {
        assert_eq!(
            SendMessage::parse(None, &Config::default()),
            Err(Refusal::NotAnObject)
        );
        assert_eq!(parse(json!("hello")), Err(Refusal::NotAnObject));
        assert_eq!(parse(json!([1, 2])), Err(Refusal::NotAnObject));
        assert_eq!(
            parse(json!({"content": "x", "client_id": "c"})),
            Err(Refusal::MissingField("to"))
        );
        assert_eq!(
            parse(json!({"to": "b", "content": 5, "client_id": "c"})),
            Err(Refusal::MissingField("content"))
        );
        assert_eq!(
            parse(json!({"to": "b c", "content": "x", "client_id": "c"})),
            Err(Refusal::InvalidRecipient)
        );
    }

    #[test]
    fn counts_content_in_scalar_values_m1() {
        let max = "é".repeat(4096);
        assert!(parse(json!({"to": "b", "content": max, "client_id": "c"})).is_ok());
        let over = "x".repeat(4097);
        assert_eq!(
            parse(json!({"to": "b", "content": over, "client_id": "c"})),
            Err(Refusal::ContentLength(4096))
        );
        assert_eq!(
            parse(json!({"to": "b", "content": "", "client_id": "c"})),
            Err(Refusal::ContentLength(4096))
        );
        assert_eq!(
            parse(json!({"to": "b", "content": "x", "client_id": "c".repeat(65)})),
            Err(Refusal::ClientIdLength(64))
        );
    }
}

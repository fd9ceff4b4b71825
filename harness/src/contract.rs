//! The contract's data model as the harness reads it off the wire: the username
//! rule (I2), and the shapes of acks, pushes and mailbox entries (M2, M3, L1).
//!
//! The harness keeps its own copy rather than borrowing the reference server's
//! types, so a user who plugs in their own server depends on nothing of ours
//! but the harness, and so a reference-server bug can never hide in a type both
//! sides share.

use serde::{Deserialize, Serialize};

/// L3: the reference client polls its mailbox every 30 s.
pub const POLL_INTERVAL_MS: u64 = 30_000;

/// Longest valid username, in characters (I2).
pub const MAX_USERNAME_LEN: usize = 32;

/// Whether `raw` is a valid username (I2): 1 to 32 characters from `[A-Za-z0-9_.-]`.
pub fn is_valid_username(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_USERNAME_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A message as pushed (`new_message`, M3) or stored (L1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Server-assigned, unique, strictly increasing per recipient (M2).
    pub id: u64,
    /// The sender's registered username (M2).
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text.
    pub content: String,
    /// Server time of acceptance, Unix milliseconds (M3).
    pub ts: u64,
}

/// One mailbox entry: a message and its position in the mailbox (L1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxEntry {
    /// From 1, strictly increasing per recipient (L1).
    pub seq: u64,
    /// The message, flattened into the entry on the wire.
    #[serde(flatten)]
    pub message: Message,
}

/// How an accepted message travels, as acknowledged to its sender (M2).
///
/// `Debug` spells the variants as the trace renders them (`delivery=Polling`),
/// which pins the snapshots; `Display` spells them as the wire does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Pushed to the recipient's open connections (M3).
    Websocket,
    /// Stored for the recipient's next poll (M4).
    Polling,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::Websocket => "websocket",
            Delivery::Polling => "polling",
        })
    }
}

/// The success ack of `send_message` (M2): `{"id": …, "delivery": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The message id.
    pub id: u64,
    /// Push or mailbox.
    pub delivery: Delivery,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_i2() {
        for ok in ["a", "shyam_patel", "a.b-c_9", &"x".repeat(32)] {
            assert!(is_valid_username(ok), "{ok:?} is valid");
        }
        for bad in ["", "a b", "a/b", "é", "a\u{0}", &"x".repeat(33)] {
            assert!(!is_valid_username(bad), "{bad:?} is invalid");
        }
    }

    #[test]
    fn acks_read_the_wire_spelling() {
        let ack: Accepted = serde_json::from_str(r#"{"id":3,"delivery":"websocket"}"#).unwrap();
        assert_eq!(ack.delivery, Delivery::Websocket);
        assert_eq!(ack.delivery.to_string(), "websocket");
        assert!(serde_json::from_str::<Accepted>(r#"{"id":3,"delivery":"Websocket"}"#).is_err());
    }
}

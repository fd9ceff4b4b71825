use http::{Response, StatusCode};
use tokio_tungstenite::tungstenite;

use crate::body::ResponseBody;
use engineioxide_core::{Packet, Sid};

pub use engineioxide_core::PacketParseError;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("error decoding packet from request: {0}")]
    PacketParse(#[from] PacketParseError),
    #[error("invalid packet received: {0:?}")]
    BadPacket(Packet),
    #[error("ws transport error: {0}")]
    WsTransport(#[from] Box<tungstenite::Error>),
    #[error("heartbeat timeout")]
    HeartbeatTimeout,
    #[error("upgrade error")]
    Upgrade,
    #[error("multiple ws upgrade requests")]
    MultipleWebsocketRequests,

    #[error("multiple http polling error")]
    MultipleHttpPolling,
    #[error("invalid websocket Sec-WebSocket-Key http header")]
    InvalidWebSocketKey,

    #[error("unknown session id")]
    UnknownSessionID(Sid),
    #[error("transport mismatch")]
    TransportMismatch,
}

/// Convert an error into an http response
/// If it is a known error, return the appropriate http status code
/// Otherwise, return a 500
impl<B> From<Error> for Response<ResponseBody<B>> {
    fn from(err: Error) -> Self {
        match err {
            Error::PacketParse(PacketParseError::PayloadTooLarge { max }) => json_error(
                413,
                "3",
                &format!("Payload too large: the limit is {max} bytes"),
            ),
            Error::PacketParse(e) => json_error(400, "3", &format!("Bad request: {}", bounded(&e))),
            Error::BadPacket(_) => json_error(400, "3", "Bad request: unexpected packet type"),
            Error::MultipleHttpPolling => json_error(
                400,
                "3",
                "Bad request: overlapping polling requests for one session",
            ),
            Error::MultipleWebsocketRequests => {
                json_error(400, "3", "Bad request: the session already has a websocket")
            }
            Error::InvalidWebSocketKey => json_error(
                400,
                "3",
                "Bad request: missing or invalid Sec-WebSocket-Key header",
            ),
            Error::UnknownSessionID(_) => json_error(400, "1", "Session ID unknown"),
            Error::TransportMismatch => json_error(400, "3", "Bad request"),
            _e => {
                #[cfg(feature = "tracing")]
                tracing::debug!("uncaught error {_e:?}");
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(ResponseBody::empty_response())
                    .unwrap()
            }
        }
    }
}

/// A refusal that says why, in the JSON shape the Engine.IO reference server
/// uses (`{"code", "message"}`): an empty 400 or 413 leaves a client, and
/// whoever reads its logs, guessing.
pub(crate) fn json_error<B>(status: u16, code: &str, message: &str) -> Response<ResponseBody<B>> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(ResponseBody::custom_response(body.into()))
        .unwrap()
}

/// An error's text, cut to a size fit for a response body: some carry bytes
/// that came from the peer.
fn bounded(err: &impl std::fmt::Display) -> String {
    const MAX_CHARS: usize = 200;
    let text = err.to_string();
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

impl From<tungstenite::Error> for Error {
    fn from(err: tungstenite::Error) -> Self {
        Error::WsTransport(Box::new(err))
    }
}

//! The plain HTTP endpoints (T2): `/health` (H1), `/api/online` (P4) and
//! `/api/messages` (L1, L2). Every body, errors included, is JSON.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tracing::info;

use socketioxide::adapter::Adapter;

use crate::chat::Chat;
use crate::config::Bug;
use crate::store::MailboxEntry;
use crate::username::InvalidUsername;
use crate::wire::ErrorBody;

/// CORS for the configured origins: a page there may send the `username`
/// header (a preflighted request) on GET and POST, to the HTTP routes and to
/// Socket.IO's polling transport alike. No origin configured: no CORS headers.
pub fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<http::HeaderValue> = origins
        .iter()
        .filter_map(|o| http::HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([http::Method::GET, http::Method::POST])
        .allow_headers([
            http::HeaderName::from_static("username"),
            http::header::CONTENT_TYPE,
        ])
}

/// The HTTP routes, with JSON answers for unknown paths and methods too.
pub fn routes<A: Adapter>(chat: Arc<Chat<A>>) -> Router {
    Router::new()
        .route("/health", get(health::<A>))
        .route("/api/online", get(online::<A>))
        .route("/api/messages", get(messages::<A>))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(chat)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<&'static str>,
}

#[derive(Serialize)]
struct Online {
    users: Vec<String>,
}

#[derive(Serialize)]
struct Messages {
    messages: Vec<MailboxEntry>,
    /// L1: the answer is a prefix; poll again from its last `seq`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more: bool,
}

/// Most entries one poll returns (L1 allows a prefix of at least 100 with
/// `"more": true`), so a flooded mailbox never makes one unbounded body.
pub const PAGE_ENTRIES: usize = 500;

#[derive(Serialize)]
struct Stale {
    error: String,
    latest: u64,
}

fn error(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    (status, Json(ErrorBody::new(reason))).into_response()
}

/// H1, and H2 for a v2 server: `{"status", "contract": "v2", "auth"}`.
async fn health<A: Adapter>(State(chat): State<Arc<Chat<A>>>) -> Json<Health> {
    let v2 = chat.config().auth.is_some();
    Json(Health {
        status: "ok",
        contract: v2.then_some("v2"),
        auth: v2.then_some(crate::token::AUTH_SCHEME),
    })
}

async fn online<A: Adapter>(State(chat): State<Arc<Chat<A>>>) -> Response {
    match chat.online_everywhere().await {
        Ok(users) => Json(Online { users }).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// A node of several that cannot reach the shared state says so (N4)
/// instead of answering from what it alone knows.
fn unavailable(e: &redis::RedisError) -> Response {
    info!("🚫 the shared state is unreachable: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the shared state is unreachable; try again",
    )
}

async fn messages<A: Adapter>(
    State(chat): State<Arc<Chat<A>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let token = crate::token::from_authorization(&headers);
    let header_wins = chat.config().has_bug(crate::Bug::MailboxByHeader);
    let username = match chat.identify(&headers, token, header_wins) {
        Ok(username) => username,
        Err(reason) => {
            info!("🚫 poll refused: {reason}");
            let wire = match chat.config().auth {
                None => InvalidUsername::WIRE_REASON.to_owned(),
                Some(_) => reason,
            };
            return error(StatusCode::UNAUTHORIZED, wire);
        }
    };
    let after = match parse_after(query.as_deref().unwrap_or("")) {
        Ok(after) => after,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    // L4: a cursor above every seq this mailbox ever assigned (a cursor from
    // before a restart with a fresh store, or a client bug) discards nothing.
    let latest = match chat.cluster() {
        Some(cluster) => match cluster.last_seq(username.as_str()).await {
            Ok(latest) => latest,
            Err(e) => return unavailable(&e),
        },
        None => chat.store().last_seq(username.as_str()),
    };
    if after > latest && !chat.config().has_bug(Bug::IgnoreStaleCursor) {
        info!("🚫 stale cursor from {username}: after={after}, latest={latest}");
        let body = Stale {
            error: format!("cursor {after} is above the latest seq {latest}: poll again from 0"),
            latest,
        };
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    let mut messages = match chat.cluster() {
        Some(cluster) => match cluster.mailbox_after(username.as_str(), after).await {
            Ok(messages) => messages,
            Err(e) => return unavailable(&e),
        },
        None => chat.store().mailbox_after(username.as_str(), after),
    };
    let more = messages.len() > PAGE_ENTRIES;
    messages.truncate(PAGE_ENTRIES);
    Json(Messages { messages, more }).into_response()
}

/// Why an `after` cursor is refused (L1).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadCursor {
    /// `after` appears more than once.
    #[error("'after' given more than once")]
    Repeated,
    /// Not a base-10 u64: empty, signed, non-digit or overflowing.
    #[error("'after' must be a base-10 unsigned 64-bit integer, got {0:?}")]
    NotU64(String),
}

/// Reads the `after` cursor from a query string (L1): absent means 0.
pub fn parse_after(query: &str) -> Result<u64, BadCursor> {
    let mut values = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "after")
        .map(|(_, value)| value.into_owned());
    let Some(value) = values.next() else {
        return Ok(0);
    };
    if values.next().is_some() {
        return Err(BadCursor::Repeated);
    }
    // `u64::from_str` accepts a leading '+'; the contract does not.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadCursor::NotU64(value));
    }
    value.parse().map_err(|_| BadCursor::NotU64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_defaults_to_zero_and_reads_digits_l1() {
        assert_eq!(parse_after(""), Ok(0));
        assert_eq!(parse_after("other=1"), Ok(0));
        assert_eq!(parse_after("after=0"), Ok(0));
        assert_eq!(parse_after("after=42&x=y"), Ok(42));
        assert_eq!(parse_after("after=18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn cursor_refuses_everything_else_l1() {
        for bad in [
            "after=",
            "after",
            "after=-1",
            "after=%2B1",
            "after=+1",
            "after=1.0",
            "after=abc",
            "after=%201",
            "after=18446744073709551616",
        ] {
            assert!(
                matches!(parse_after(bad), Err(BadCursor::NotU64(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_after("after=1&after=2"), Err(BadCursor::Repeated));
    }
}

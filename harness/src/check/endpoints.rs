//! The `http` run: the plain endpoints' shapes and refusals (H1, T2, L1,
//! L4, P4), and the CORS finding. (The file is not `http.rs`, which would
//! shadow the `http` crate in the check module.)

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::cursor::stale_cursor;
use super::probes::{get, is_error_body, Prober};
use super::{CheckOptions, Names, Run};
use crate::net::transport::{self, TcpConnector};
use crate::spec::Clause;
use crate::trace::{Recorder, TraceClock};

/// `GET /health`, `/api/online` and `/api/messages` with good and bad
/// identities and cursors, each answer judged for its status, its JSON
/// content type (T2) and its shape.
pub(super) async fn http_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
) -> Run {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let mut probe = Prober {
        connector,
        recorder: &recorder,
        patience: options.patience(),
        tokens: options.tokens.as_ref(),
        found: Vec::new(),
    };
    probe
        .expect(
            "/health",
            None,
            (Clause::H1, 200),
            // H1's body; a v2 server adds its contract and auth (H2).
            |b| {
                b["status"] == "ok"
                    && b.as_object().is_some_and(|o| {
                        o.keys()
                            .all(|k| matches!(k.as_str(), "status" | "contract" | "auth"))
                    })
            },
            "GET /health",
        )
        .await;
    let users_are_strings = |b: &Value| {
        b["users"]
            .as_array()
            .is_some_and(|u| u.iter().all(Value::is_string))
    };
    probe
        .expect(
            "/api/online",
            None,
            (Clause::P4, 200),
            users_are_strings,
            "GET /api/online",
        )
        .await;
    mailbox_probes(&mut probe, &names.user("nobody")).await;
    let found = probe.found;
    Run::new("http", None, recorder.trace(), found, started)
}

/// L1: polls without a valid name (401), with bad cursors (400), a stale
/// cursor (L4, 409 or 200), and good ones (200).
pub(super) async fn mailbox_probes(probe: &mut Prober<'_>, nobody: &str) {
    for (username, what) in [
        (None, "a poll without a username header"),
        (Some(""), "a poll with an empty username"),
        (Some("no such/user"), "a poll with an invalid username"),
    ] {
        probe
            .expect(
                "/api/messages?after=0",
                username,
                (Clause::L1, 401),
                is_error_body,
                what,
            )
            .await;
    }
    // `+` in a query string is a space; `%2B` is the plus sign itself, which
    // a `u64` parser may take for a sign and accept.
    for after in [
        "",
        "-1",
        "+1",
        "%2B1",
        "abc",
        "1.5",
        "0x10",
        "18446744073709551616",
        "1&after=2",
    ] {
        let path = format!("/api/messages?after={after}");
        let what = format!("a poll with after={after:?}");
        probe
            .expect(&path, Some(nobody), (Clause::L1, 400), is_error_body, &what)
            .await;
    }
    let stale = STALE_CURSOR_POLL;
    let answer = get(
        probe.connector,
        probe.recorder,
        stale,
        Some(nobody),
        probe.patience,
        probe.tokens,
    )
    .await;
    stale_cursor(&mut probe.found, answer, 0);
    for path in ["/api/messages", "/api/messages?after=0"] {
        probe
            .expect(
                path,
                Some(nobody),
                (Clause::L1, 200),
                |b| b["messages"].is_array(),
                &format!("GET {path}"),
            )
            .await;
    }
}

/// A poll whose cursor is above any seq a mailbox can have assigned (L4).
pub(super) const STALE_CURSOR_POLL: &str = "/api/messages?after=18446744073709551615";

/// Whether a browser page on another origin could use the server: a CORS
/// preflight for `GET /api/messages` with the `username` header. Not a clause
/// of v1 (a finding): the seed's front end runs on another origin in
/// development (a dev server on another port), where this decides everything.
pub(super) async fn cors_finding(connector: &TcpConnector, patience: Duration) -> String {
    let origin = "http://example.test";
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "username"),
    ];
    let outcome = tokio::time::timeout(
        patience,
        transport::request(
            connector,
            http::Method::OPTIONS,
            "/api/messages",
            &headers,
            None,
        ),
    )
    .await
    .unwrap_or(Err(transport::TransportError::Timeout));
    match outcome {
        Err(e) => format!("CORS: the preflight from {origin} got no answer ({e})"),
        Ok(r) => {
            let allowed = r
                .allow_origin
                .as_deref()
                .is_some_and(|o| o == origin || o == "*");
            if allowed {
                format!(
                    "CORS: a page on {origin} may send the username header (preflight {})",
                    r.status
                )
            } else {
                format!(
                    "CORS: a page on another origin ({origin}) cannot send the username header: preflight answered {} without Access-Control-Allow-Origin (configure the server's allowed origins if its front end is served elsewhere)",
                    r.status
                )
            }
        }
    }
}

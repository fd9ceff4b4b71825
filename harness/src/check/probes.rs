//! What the HTTP runs ([`super::endpoints`], [`super::handshake`],
//! [`super::cursor`]) share: a GET recorded as an `exchange` event, so a FAIL
//! shows what was asked and what came back, and the judgement of one JSON
//! answer.

use std::time::Duration;

use serde_json::Value;

use crate::judge::Violation;
use crate::net::transport::{self, TcpConnector};
use crate::spec::Clause;
use crate::token::{TokenIssuer, TokenPolicy};
use crate::trace::{Event, Recorder, What};

pub(super) fn abbreviate(text: &str) -> String {
    const MAX: usize = 160;
    let text = text.trim();
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// A GET recorded as an exchange; its answer, if any. As `username`: the
/// header (v1), or a Bearer token for that name when the check has a v2
/// server's secret (A3); the record names the token, never shows it.
pub(super) async fn get(
    connector: &TcpConnector,
    recorder: &Recorder,
    path: &str,
    username: Option<&str>,
    patience: Duration,
    tokens: Option<&TokenIssuer>,
) -> (Event, Option<transport::Response>) {
    let (request, outcome) = get_as(connector, path, username, patience, tokens).await;
    let answer = answer_line(&outcome, abbreviate);
    let event = Event {
        at_ms: recorder.now_ms(),
        actor: "probe".into(),
        what: What::Exchange { request, answer },
    };
    recorder.record_at(event.at_ms, &event.actor, event.what.clone());
    (event, outcome.ok())
}

/// A GET as `username` (the header, or a Bearer token for that name with a
/// v2 server's secret), bounded by `patience`: the request as a record
/// shows it (never the token), and the outcome.
pub(super) async fn get_as(
    connector: &TcpConnector,
    path: &str,
    username: Option<&str>,
    patience: Duration,
    tokens: Option<&TokenIssuer>,
) -> (
    String,
    Result<transport::Response, transport::TransportError>,
) {
    let (headers, request) = match (username, tokens) {
        (Some(u), Some(issuer)) => {
            let token = issuer.mint(TokenPolicy::Valid, u).unwrap_or_default();
            (
                vec![("authorization".to_owned(), format!("Bearer {token}"))],
                format!("GET {path} Authorization: Bearer <valid token for {u:?}>"),
            )
        }
        (Some(u), None) => (
            vec![("username".to_owned(), u.to_owned())],
            format!("GET {path} username={u:?}"),
        ),
        (None, _) => (Vec::new(), format!("GET {path}")),
    };
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let outcome = tokio::time::timeout(
        patience,
        transport::request(connector, http::Method::GET, path, &headers, None),
    )
    .await
    .unwrap_or(Err(transport::TransportError::Timeout));
    (request, outcome)
}

/// An answer as a record shows it: `status content-type body`, the body
/// through `body` (abbreviated, or kept whole where it is compared).
pub(super) fn answer_line(
    outcome: &Result<transport::Response, transport::TransportError>,
    body: impl Fn(&str) -> String,
) -> String {
    match outcome {
        Ok(r) => format!(
            "{} {} {}",
            r.status,
            r.content_type.as_deref().unwrap_or("(no content-type)"),
            body(&r.body)
        ),
        Err(e) => format!("error: {e}"),
    }
}

pub(super) fn finding(clause: Clause, event: &Event, message: String) -> Violation {
    Violation {
        clause,
        at_ms: event.at_ms,
        message,
        evidence: vec![event.clone()],
        subject: Default::default(),
        ruling: None,
    }
}

/// Judges one JSON answer: status, content type (T2), body shape.
pub(super) fn expect_json(
    found: &mut Vec<Violation>,
    event: &Event,
    response: Option<&transport::Response>,
    (clause, status): (Clause, u16),
    shape: impl Fn(&Value) -> bool,
    what: &str,
) {
    let Some(response) = response else {
        found.push(finding(clause, event, format!("{what}: no answer")));
        return;
    };
    if response.status != status {
        found.push(finding(
            clause,
            event,
            format!("{what}: status {} instead of {status}", response.status),
        ));
        return;
    }
    if !response
        .content_type
        .as_deref()
        .is_some_and(|t| t.trim().starts_with("application/json"))
    {
        found.push(finding(
            Clause::T2,
            event,
            format!(
                "{what}: Content-Type {:?} instead of application/json",
                response.content_type
            ),
        ));
    }
    match serde_json::from_str::<Value>(&response.body) {
        Ok(body) if shape(&body) => {}
        _ => found.push(finding(
            clause,
            event,
            format!("{what}: body is not the contract's shape"),
        )),
    }
}

pub(super) fn is_error_body(body: &Value) -> bool {
    body.get("error").is_some_and(Value::is_string)
}

/// One probe session: where requests go, where they are recorded, how long
/// each may take, and what was found.
pub(super) struct Prober<'a> {
    pub(super) connector: &'a TcpConnector,
    pub(super) recorder: &'a Recorder,
    pub(super) patience: Duration,
    pub(super) tokens: Option<&'a TokenIssuer>,
    pub(super) found: Vec<Violation>,
}

impl Prober<'_> {
    /// GETs `path` (as `username`) and judges the JSON answer.
    pub(super) async fn expect(
        &mut self,
        path: &str,
        username: Option<&str>,
        want: (Clause, u16),
        body_ok: impl Fn(&Value) -> bool,
        what: &str,
    ) {
        let (e, r) = get(
            self.connector,
            self.recorder,
            path,
            username,
            self.patience,
            self.tokens,
        )
        .await;
        expect_json(&mut self.found, &e, r.as_ref(), want, body_ok, what);
    }
}

//! The secure run (level `secure`, contract v2: H2, A1–A6), over real TCP.
//!
//! Against a v2 server (its `/health` says `"contract": "v2"`) and with the
//! shared secret, every token policy is presented on the socket and on polls:
//! only a valid token is identity, the header never is, a token expiring
//! mid-session is refused for anything new, `from` is the token's user, and no
//! answer ever carries a token back. Against a v1 server the run demonstrates
//! the hole with evidence: a test user's mailbox read, and a message sent as
//! that user, with nothing but the `username` header.
//!
//! Requests are recorded with the token's policy (`<expired token for x>`),
//! never the token itself; answers are recorded as they came, so a server
//! that echoes a token shows it in the evidence (A6).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::probes::abbreviate;
use super::{CheckOptions, Names, Run};
use crate::judge::Violation;
use crate::net::transport::{self, TcpConnector};
use crate::spec::Clause;
use crate::token::{ExpiresMidSession, TokenIssuer, TokenPolicy};
use crate::trace::{Event, Recorder, TraceClock, What};

type Ws = crate::net::transport::TcpWebSocket;

/// What `/health` says of the server's contract version (H2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// No statement: a v1 server, identity by header.
    V1,
    /// `"contract": "v2"`, with the `auth` it names.
    V2 {
        /// `"auth"`, which H2 wants to be `jwt-hs256`.
        auth: Option<String>,
    },
}

impl Version {
    /// Reads H2 from a `/health` body.
    pub fn from_health(body: &Value) -> Self {
        match body.get("contract").and_then(Value::as_str) {
            Some("v2") => Version::V2 {
                auth: body.get("auth").and_then(Value::as_str).map(str::to_owned),
            },
            _ => Version::V1,
        }
    }
}

/// What the server's `/health` says of its version; v1 when it says nothing
/// readable (the http run judges `/health` itself).
pub(super) async fn contract_version(connector: &TcpConnector, patience: Duration) -> Version {
    let answer = tokio::time::timeout(
        patience,
        transport::request(connector, http::Method::GET, "/health", &[], None),
    )
    .await;
    match answer {
        Ok(Ok(response)) => serde_json::from_str(&response.body)
            .map_or(Version::V1, |body| Version::from_health(&body)),
        _ => Version::V1,
    }
}

/// The token invalid per A1 (or absent, A2) that a socket or a poll presents,
/// and the clause a server that accepts it breaks.
const INVALID: [(TokenPolicy, Clause); 5] = [
    (TokenPolicy::Absent, Clause::A2),
    (TokenPolicy::Expired, Clause::A1),
    (TokenPolicy::Forged, Clause::A1),
    (TokenPolicy::AlgNone, Clause::A1),
    (TokenPolicy::Tampered, Clause::A1),
];

/// How a namespace CONNECT ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connect {
    Accepted,
    Refused,
    /// No answer, or the transport failed: no evidence either way.
    Failed,
}

struct Secure<'a> {
    connector: &'a TcpConnector,
    recorder: Recorder,
    patience: Duration,
    issuer: Option<TokenIssuer>,
    found: Vec<Violation>,
    reached: BTreeSet<Clause>,
    /// Every token presented in this run, to find one echoed back (A6).
    minted: Vec<String>,
    /// Exchanges whose full answer carried one of them.
    echoes: Vec<Event>,
}

/// Runs the secure probes; `version` is what `/health` said.
pub(super) async fn secure_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    version: &Version,
) -> Run {
    let started = Instant::now();
    let mut run = Secure {
        connector,
        recorder: Recorder::new(TraceClock::Real(started)),
        patience: options.patience(),
        issuer: options.tokens.clone(),
        found: Vec::new(),
        reached: BTreeSet::new(),
        minted: Vec::new(),
        echoes: Vec::new(),
    };
    let health = run.health(version).await;
    let note = match (version, run.issuer.is_some()) {
        (Version::V1, _) => {
            run.demonstrate_the_hole(names, &health).await;
            Some(
                "a v1 server (no \"contract\": \"v2\" in /health) has no tokens to judge"
                    .to_owned(),
            )
        }
        (Version::V2 { .. }, true) => {
            run.tokens_are_identity(names).await;
            run.expiry_mid_session(names, options).await;
            run.no_token_echoed();
            None
        }
        (Version::V2 { .. }, false) => Some(
            "a v2 server: give its shared secret (--jwt-secret-file PATH) to judge A1–A6"
                .to_owned(),
        ),
    };
    let mut done = Run::new("secure", None, run.recorder.trace(), run.found, started);
    done.reached = run.reached;
    done.note = note;
    done
}

impl Secure<'_> {
    /// Records an exchange, its answer abbreviated; an answer carrying a
    /// token of this run (its signature, anywhere in the full text) is kept
    /// for A6 before the abbreviation could cut it off.
    fn record(&mut self, actor: &str, request: String, answer: &str) -> Event {
        let what = What::Exchange {
            request,
            answer: abbreviate(answer),
        };
        let at_ms = self.recorder.now_ms();
        self.recorder.record_at(at_ms, actor, what.clone());
        let event = Event {
            at_ms,
            actor: actor.to_owned(),
            what,
        };
        let echoed = self
            .minted
            .iter()
            .filter_map(|t| t.rsplit('.').next())
            .any(|signature| signature.len() >= 16 && answer.contains(signature));
        if echoed {
            self.echoes.push(event.clone());
        }
        event
    }

    fn violation(&mut self, clause: Clause, event: &Event, message: String) {
        self.found.push(Violation {
            clause,
            at_ms: event.at_ms,
            message,
            evidence: vec![event.clone()],
            subject: Default::default(),
            ruling: None,
        });
    }

    fn mint(&mut self, policy: TokenPolicy, user: &str) -> Option<String> {
        let token = self.issuer.as_ref()?.mint(policy, user)?;
        self.minted.push(token.clone());
        Some(token)
    }

    /// H2: a v2 server states `"auth": "jwt-hs256"`; a v1 body stays valid.
    async fn health(&mut self, version: &Version) -> Event {
        let (event, response) = self.get("/health", &[], "GET /health".into()).await;
        if response.is_some() {
            self.reached.insert(Clause::H2);
        }
        if let Version::V2 { auth } = version {
            if auth.as_deref() != Some(server_under_test::token::AUTH_SCHEME) {
                self.violation(
                    Clause::H2,
                    &event,
                    format!("/health says contract v2 with auth {auth:?} instead of \"jwt-hs256\""),
                );
            }
        }
        event
    }

    async fn get(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        request: String,
    ) -> (Event, Option<transport::Response>) {
        let outcome = tokio::time::timeout(
            self.patience,
            transport::request(self.connector, http::Method::GET, path, headers, None),
        )
        .await
        .unwrap_or(Err(transport::TransportError::Timeout));
        let answer = match &outcome {
            Ok(r) => format!("{} {}", r.status, r.body),
            Err(e) => format!("error: {e}"),
        };
        (self.record("probe", request, &answer), outcome.ok())
    }

    /// A poll of `/api/messages` with a `username` header and a Bearer token,
    /// either optional; `token` names the token in the record.
    async fn poll(
        &mut self,
        header: Option<&str>,
        bearer: Option<(&str, String)>,
    ) -> (Event, Option<transport::Response>) {
        let authorization = bearer.as_ref().map(|(_, t)| format!("Bearer {t}"));
        let mut headers = Vec::new();
        let mut request = "GET /api/messages?after=0".to_owned();
        if let Some(header) = header {
            headers.push(("username", header));
            request.push_str(&format!(" username={header:?}"));
        }
        if let (Some(value), Some((described, _))) = (authorization.as_deref(), &bearer) {
            headers.push(("authorization", value));
            request.push_str(&format!(" Authorization: Bearer <{described}>"));
        }
        self.get("/api/messages?after=0", &headers, request).await
    }

    /// Opens a websocket session (with `header` when given) and sends CONNECT
    /// with `token` (described as `described`) in its auth payload.
    async fn connect(
        &mut self,
        actor: &str,
        header: Option<&str>,
        token: Option<&str>,
        described: &str,
    ) -> (Event, Connect, Option<Ws>) {
        let headers: Vec<(&str, &str)> = header.map(|h| ("username", h)).into_iter().collect();
        let packet = match token {
            Some(token) => format!("40{}", json!({ "token": token })),
            None => "40".to_owned(),
        };
        let request = format!(
            "websocket{} CONNECT {}",
            header
                .map(|h| format!(" username={h:?}"))
                .unwrap_or_default(),
            if token.is_some() {
                format!("auth={{token: <{described}>}}")
            } else {
                "without auth".into()
            }
        );
        let path = "/socket.io/?EIO=4&transport=websocket";
        let opened = tokio::time::timeout(self.patience, async {
            let mut ws = transport::websocket(self.connector, path, &headers)
                .await
                .ok()?;
            next_text(&mut ws).await?; // the Engine.IO open packet
            ws.send(Frame::text(packet)).await.ok()?;
            loop {
                let text = next_text(&mut ws).await?;
                if text.starts_with("40") || text.starts_with("44") {
                    return Some((text, ws));
                }
            }
        })
        .await
        .ok()
        .flatten();
        match opened {
            Some((answer, ws)) => {
                let outcome = if answer.starts_with("40") {
                    Connect::Accepted
                } else {
                    Connect::Refused
                };
                (self.record(actor, request, &answer), outcome, Some(ws))
            }
            None => (
                self.record(actor, request, "(no CONNECT answer)"),
                Connect::Failed,
                None,
            ),
        }
    }

    /// Sends a message on a connected socket; the ack, if any.
    async fn send(
        &mut self,
        actor: &str,
        ws: &mut Ws,
        to: &str,
        content: &str,
    ) -> (Event, Option<Value>) {
        let event = json!(["send_message", {"to": to, "content": content, "client_id": format!("secure-{}", self.recorder.now_ms())}]);
        let request = format!("42{}{event}", 1);
        if ws.send(Frame::text(request.clone())).await.is_err() {
            return (
                self.record(actor, request, "(not sent: connection closed)"),
                None,
            );
        }
        let ack = tokio::time::timeout(self.patience, async {
            loop {
                let text = next_text(ws).await?;
                if let Some(args) = text.strip_prefix("431").filter(|a| a.starts_with('[')) {
                    return Some((text.clone(), serde_json::from_str::<Value>(args).ok()?));
                }
            }
        })
        .await
        .ok()
        .flatten();
        match ack {
            Some((raw, args)) => (self.record(actor, request, &raw), args.get(0).cloned()),
            None => (self.record(actor, request, "(no ack)"), None),
        }
    }

    async fn online(&mut self) -> Option<Vec<String>> {
        let (_, response) = self.get("/api/online", &[], "GET /api/online".into()).await;
        let body: Value = serde_json::from_str(&response?.body).ok()?;
        body["users"].as_array().map(|users| {
            users
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    }

    /// A v1 server (identity by header): show what anyone can do with it.
    async fn demonstrate_the_hole(&mut self, names: &Names, health: &Event) {
        let helper = names.user("sec-helper");
        let victim = names.user("sec-victim");
        self.violation(
            Clause::A1,
            health,
            "a v1 server: identity is the unauthenticated `username` header, which any client sets to any name (contract Version 2: a signed token, A1–A6)".into(),
        );
        self.reached.insert(Clause::A1);
        let (_, outcome, ws) = self.connect("helper", Some(&helper), None, "").await;
        if let (Connect::Accepted, Some(mut ws)) = (outcome, ws) {
            let secret = format!("for {victim}'s eyes only");
            self.send("helper", &mut ws, &victim, &secret).await;
            let (event, response) = self.poll(Some(&victim), None).await;
            if response.is_some_and(|r| r.status == 200 && r.body.contains(&secret)) {
                self.reached.insert(Clause::A3);
                self.violation(
                    Clause::A3,
                    &event,
                    format!("read {victim}'s mailbox with nothing but `username: {victim}`"),
                );
            }
            let _ = ws.close(None).await;
        }
        let (event, outcome, ws) = self.connect("impostor", Some(&victim), None, "").await;
        if let (Connect::Accepted, Some(mut ws)) = (outcome, ws) {
            self.reached.insert(Clause::A2);
            let (sent, ack) = self
                .send("impostor", &mut ws, &helper, "sent by an impostor")
                .await;
            let evidence = if ack.as_ref().is_some_and(|a| a["id"].is_u64()) {
                &sent
            } else {
                &event
            };
            self.violation(
                Clause::A2,
                evidence,
                format!("connected and sent as {victim} with nothing but `username: {victim}`"),
            );
            let _ = ws.close(None).await;
        }
    }

    /// A1, A2, A3, A5 against a v2 server: only a valid token is identity.
    async fn tokens_are_identity(&mut self, names: &Names) {
        let alice = names.user("sec-alice");
        let bob = names.user("sec-bob");
        let valid = self.mint(TokenPolicy::Valid, &alice);
        let described = format!("valid token for {alice}");
        let (event, outcome, ws) = self
            .connect("alice", Some(&bob), valid.as_deref(), &described)
            .await;
        let mut alice_ws = match outcome {
            Connect::Accepted => ws,
            Connect::Refused => {
                self.violation(
                    Clause::A2,
                    &event,
                    format!("a valid token for {alice} was refused"),
                );
                None
            }
            Connect::Failed => None,
        };
        let content = format!("secure check: {alice} to {bob}");
        let mut sent_id = None;
        if let Some(ws) = alice_ws.as_mut() {
            if let Some(users) = self.online().await {
                self.reached.insert(Clause::A2);
                let last = self.recorder.trace().events.last().cloned();
                if let Some(last) = last {
                    if users.contains(&bob) {
                        self.violation(
                            Clause::A2,
                            &last,
                            format!("registered as the header's {bob}, not the token's {alice}"),
                        );
                    }
                    if !users.contains(&alice) {
                        self.violation(
                            Clause::A2,
                            &last,
                            format!("a connection with a valid token for {alice} is not online"),
                        );
                    }
                }
            }
            let (_, ack) = self.send("alice", ws, &bob, &content).await;
            sent_id = ack.and_then(|a| a["id"].as_u64());
        }
        self.invalid_tokens_refused(names).await;
        self.polls_need_the_token(&alice, &bob, &content, sent_id)
            .await;
        if let Some(mut ws) = alice_ws {
            let _ = ws.close(None).await;
        }
    }

    /// A1, A2: every invalid token (and none at all) is refused at CONNECT,
    /// and its user never comes online.
    async fn invalid_tokens_refused(&mut self, names: &Names) {
        let mut open = Vec::new();
        let mut users = Vec::new();
        for (i, (policy, clause)) in INVALID.into_iter().enumerate() {
            let user = names.user(&format!("sec-c{i}"));
            let token = self.mint(policy, &user);
            let described = format!("{} token for {user}", policy.name());
            // Without a token, the user's own valid header: it is not identity
            // in v2 (A2). With an invalid token, no header, so nothing but the
            // token's own validity is judged (A1).
            let header = (policy == TokenPolicy::Absent).then_some(user.as_str());
            let (event, outcome, ws) = self
                .connect("carol", header, token.as_deref(), &described)
                .await;
            match outcome {
                Connect::Accepted => {
                    self.reached.insert(clause);
                    self.violation(
                        clause,
                        &event,
                        format!(
                            "CONNECT with {} was accepted",
                            what(policy, &user, &described)
                        ),
                    );
                }
                Connect::Refused => {
                    self.reached.insert(clause);
                }
                Connect::Failed => {}
            }
            users.push((user, clause, event));
            open.extend(ws);
        }
        if let Some(online) = self.online().await {
            for (user, clause, event) in &users {
                if online.contains(user) {
                    self.violation(
                        *clause,
                        event,
                        format!("{user} is online without a valid token"),
                    );
                }
            }
        }
        for mut ws in open {
            let _ = ws.close(None).await;
        }
    }

    /// A3, A1, A5: a poll needs a valid Bearer token and returns only its
    /// user's mailbox; the entry alice sent says `from: alice`.
    async fn polls_need_the_token(
        &mut self,
        alice: &str,
        bob: &str,
        content: &str,
        sent: Option<u64>,
    ) {
        let (event, response) = self.poll(Some(bob), None).await;
        if let Some(response) = response {
            self.reached.insert(Clause::A3);
            if response.status != 401 {
                let what = if response.body.contains(content) {
                    ", and it returned bob's mail"
                } else {
                    ""
                };
                self.violation(
                    Clause::A3,
                    &event,
                    format!(
                        "a poll with only `username: {bob}` was answered {}{what} instead of 401",
                        response.status
                    ),
                );
            }
        }
        for (policy, _) in INVALID.into_iter().skip(1) {
            let Some(token) = self.mint(policy, bob) else {
                continue;
            };
            let described = format!("{} token for {bob}", policy.name());
            let (event, response) = self.poll(None, Some((&described, token))).await;
            if let Some(response) = response.filter(|r| r.status != 401) {
                self.violation(
                    Clause::A1,
                    &event,
                    format!(
                        "a poll with a {} was answered {} instead of 401",
                        described, response.status
                    ),
                );
            }
        }
        if let Some(token) = self.mint(TokenPolicy::Valid, bob) {
            let described = format!("valid token for {bob}");
            let (event, response) = self.poll(Some(alice), Some((&described, token))).await;
            let entries = mailbox(response.as_ref());
            if let Some(entries) = entries {
                self.reached.insert(Clause::A3);
                if entries.iter().any(|e| e["to"].as_str() != Some(bob)) {
                    self.violation(
                        Clause::A3,
                        &event,
                        format!("{bob}'s poll returned another user's entries"),
                    );
                }
                if let Some(id) = sent {
                    // bob never connects, so the message is in his mailbox.
                    if let Some(entry) = entries.iter().find(|e| e["id"].as_u64() == Some(id)) {
                        self.reached.insert(Clause::A5);
                        if entry["from"].as_str() != Some(alice) {
                            self.violation(
                                Clause::A5,
                                &event,
                                format!("from is {} instead of the token's {alice}", entry["from"]),
                            );
                        }
                    }
                }
            }
        }
        if let Some(token) = self.mint(TokenPolicy::Valid, alice) {
            let described = format!("valid token for {alice}");
            let (event, response) = self.poll(Some(bob), Some((&described, token))).await;
            if let Some(entries) = mailbox(response.as_ref()) {
                if entries.iter().any(|e| e["to"].as_str() == Some(bob)) {
                    self.violation(
                        Clause::A3,
                        &event,
                        format!("{alice}'s token with `username: {bob}` returned {bob}'s mail"),
                    );
                }
            }
        }
    }

    /// A4: a token that expired is refused for a new connection and a poll.
    async fn expiry_mid_session(&mut self, names: &Names, options: &CheckOptions) {
        let dave = names.user("sec-dave");
        let Some(token) = self.mint(TokenPolicy::ExpiresMidSession, &dave) else {
            return;
        };
        let described = format!(
            "token for {dave} expiring in {} s",
            ExpiresMidSession::AFTER_S
        );
        let (event, outcome, ws) = self
            .connect("dave", Some(&dave), Some(&token), &described)
            .await;
        if outcome == Connect::Refused {
            self.violation(
                Clause::A2,
                &event,
                format!("a valid token for {dave} (not yet expired) was refused"),
            );
            return;
        }
        // `exp` has second granularity: wait past it, and a second more for
        // clocks a little apart, then everything new with it must be refused.
        let wait =
            Duration::from_millis(options.scaled((ExpiresMidSession::AFTER_S + 1) * 1_000) + 100);
        tokio::time::sleep(wait).await;
        let expired = format!("expired token for {dave}");
        let (event, again, second) = self
            .connect("dave", Some(&dave), Some(&token), &expired)
            .await;
        if again != Connect::Failed {
            self.reached.insert(Clause::A4);
        }
        if again == Connect::Accepted {
            self.violation(
                Clause::A4,
                &event,
                format!("a new connection with {dave}'s expired token was accepted"),
            );
        }
        let (event, response) = self.poll(None, Some((&expired, token))).await;
        if let Some(response) = response.filter(|r| r.status != 401) {
            self.violation(
                Clause::A4,
                &event,
                format!(
                    "a poll with {dave}'s expired token was answered {} instead of 401",
                    response.status
                ),
            );
        }
        for mut ws in ws.into_iter().chain(second) {
            let _ = ws.close(None).await;
        }
    }

    /// A6: no answer in this run carried a token it was given.
    fn no_token_echoed(&mut self) {
        if !self.recorder.trace().events.is_empty() {
            self.reached.insert(Clause::A6);
        }
        for event in std::mem::take(&mut self.echoes) {
            self.violation(
                Clause::A6,
                &event,
                "an answer carries a token the client sent".into(),
            );
        }
    }
}

/// What a CONNECT presented, for a finding.
fn what(policy: TokenPolicy, user: &str, described: &str) -> String {
    match policy {
        TokenPolicy::Absent => format!("no token and `username: {user}`"),
        _ => described.to_owned(),
    }
}

fn mailbox(response: Option<&transport::Response>) -> Option<Vec<Value>> {
    let response = response.filter(|r| r.status == 200)?;
    let body: Value = serde_json::from_str(&response.body).ok()?;
    body["messages"].as_array().cloned()
}

/// The next text frame, answering pings; `None` when the connection ends.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Frame::Text(text)) if text.as_str() == "2" => {
                ws.send(Frame::text("3")).await.ok()?;
            }
            Ok(Frame::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Frame::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

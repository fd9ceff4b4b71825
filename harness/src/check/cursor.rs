//! `cursor`: the mailbox cursor over HTTP, before and after re-polls (L1,
//! L2, L4), a page of 600 entries, and `from` never taken from a payload.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::endpoints::STALE_CURSOR_POLL;
use super::probes::{abbreviate, finding, get};
use super::{CheckOptions, Names, Run, DAVE_CONTENTS};
use crate::judge::Violation;
use crate::net::transport::{self, TcpConnector};
use crate::spec::Clause;
use crate::token::{TokenIssuer, TokenPolicy};
use crate::trace::{Event, Recorder, TraceClock, What};

/// The mail the core run left for `dave` read back over HTTP: whole, in
/// `seq` order, unaltered; again from its cursor; from a stale cursor; then
/// a page of [`PAGED_MESSAGES`] entries read in prefixes.
pub(super) async fn cursor_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
) -> Run {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let patience = options.patience();
    let dave = names.user("dave");
    let alice = names.user("alice");
    let mut found = Vec::new();
    let poll = |after: u64| {
        let path = format!("/api/messages?after={after}");
        let (connector, recorder, dave) = (connector.clone(), recorder.clone(), dave.clone());
        let tokens = options.tokens.clone();
        async move {
            let (event, response) = get(
                &connector,
                &recorder,
                &path,
                Some(&dave),
                patience,
                tokens.as_ref(),
            )
            .await;
            let entries = response
                .filter(|r| r.status == 200)
                .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
                .and_then(|b| b["messages"].as_array().cloned());
            (event, entries)
        }
    };
    let (first, entries) = poll(0).await;
    let Some(entries) = entries else {
        found.push(finding(
            Clause::L1,
            &first,
            "the mailbox poll did not answer 200 {\"messages\": [...]}".into(),
        ));
        return cursor_done(recorder, found, started);
    };
    // Shape (L1), order (L1), and ours unaltered (B1: after the abuser's packets).
    let last_seq = entry_findings(&entries, &dave, &first, &mut found);
    let ours: Vec<&Value> = entries
        .iter()
        .filter(|e| e["from"] == json!(alice))
        .collect();
    let contents: Vec<&str> = ours.iter().filter_map(|e| e["content"].as_str()).collect();
    if contents != DAVE_CONTENTS {
        // The same three in another order is L1's seq order; three with
        // other contents were altered (B1); missing ones are L1.
        let mut sorted = contents.clone();
        sorted.sort_unstable();
        let mut expected = DAVE_CONTENTS.to_vec();
        expected.sort_unstable();
        let clause = if ours.len() == DAVE_CONTENTS.len() && sorted != expected {
            Clause::B1
        } else {
            Clause::L1
        };
        found.push(finding(
            clause,
            &first,
            format!("{dave}'s mailbox should hold alice's three messages in order, unaltered: found {contents:?}"),
        ));
        return cursor_done(recorder, found, started);
    }
    let seqs: Vec<u64> = ours.iter().filter_map(|e| e["seq"].as_u64()).collect();
    // after=0 again: nothing was acknowledged, nothing may be gone (L2).
    let (again, entries) = poll(0).await;
    let kept = entries.unwrap_or_default();
    if !seqs
        .iter()
        .all(|s| kept.iter().any(|e| e["seq"].as_u64() == Some(*s)))
    {
        found.push(finding(
            Clause::L2,
            &again,
            "a second poll with after=0 lost entries the first returned".into(),
        ));
    }
    // A cursor far above the mailbox's last seq (L4): 409 with latest, and
    // nothing discarded by it (L4, L2).
    let latest = last_seq;
    let stale = STALE_CURSOR_POLL;
    stale_cursor(
        &mut found,
        get(
            connector,
            &recorder,
            stale,
            Some(&dave),
            patience,
            options.tokens.as_ref(),
        )
        .await,
        latest,
    );
    let (after_stale, entries) = poll(0).await;
    let kept = entries.unwrap_or_default();
    if !seqs
        .iter()
        .all(|s| kept.iter().any(|e| e["seq"].as_u64() == Some(*s)))
    {
        found.push(finding(
            Clause::L4,
            &after_stale,
            "a poll with a stale cursor discarded entries: after=0 no longer returns them".into(),
        ));
    }
    // after=first seq: only the later ones (L1); twice, still there (L2).
    for attempt in 0..2 {
        let (event, entries) = poll(seqs[0]).await;
        found.extend(cursor_findings(
            &seqs,
            attempt,
            &event,
            entries.unwrap_or_default(),
        ));
    }
    from_is_never_the_payloads(
        &mut found,
        connector,
        &recorder,
        names,
        patience,
        options.tokens.as_ref(),
    )
    .await;
    paging_probe(connector, &recorder, names, options, &mut found).await;
    cursor_done(recorder, found, started)
}

/// How many messages the paging probe stores for one recipient: above the
/// 100 entries a server may cut a page at (L1), and above the few hundred
/// servers commonly page at (the reference server: 500), so a page cut
/// without `more` is seen there too (the mutation campaign's
/// `messages.len() > PAGE_ENTRIES` → `==` survived 150).
pub(super) const PAGED_MESSAGES: u64 = 600;

/// L1's paging sentence ("a prefix of at least 100 entries, and then
/// `"more": true`"): [`PAGED_MESSAGES`] messages to one offline recipient,
/// pipelined on a raw websocket, then the mailbox read back page by page.
/// Every accepted message must come back; a page cut short must say `more`
/// and hold at least 100 entries. Fewer than 101 accepted (a server's rate
/// limit) leaves nothing to judge.
pub(super) async fn paging_probe(
    connector: &TcpConnector,
    recorder: &Recorder,
    names: &Names,
    options: &CheckOptions,
    found: &mut Vec<Violation>,
) {
    let (sender, sink) = (names.user("pager"), names.user("paged"));
    let tokens = options.tokens.as_ref();
    let connect = tokens
        .and_then(|issuer| issuer.mint(TokenPolicy::Valid, &sender))
        .map_or_else(
            || "40".to_owned(),
            |t| format!("40{}", json!({ "token": t })),
        );
    let sent = tokio::time::timeout(
        options.patience() * 4,
        pipelined_sends(connector, &sender, &sink, &connect),
    )
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    recorder.record(
        "probe",
        What::Exchange {
            request: format!("{PAGED_MESSAGES} pipelined send_message from {sender} to {sink}"),
            answer: format!("{} accepted", sent.len()),
        },
    );
    if sent.len() <= 100 {
        return;
    }
    let mut got = std::collections::BTreeSet::new();
    let mut after = 0;
    for _ in 0..PAGED_MESSAGES {
        let path = format!("/api/messages?after={after}");
        let (event, response) = get(
            connector,
            recorder,
            &path,
            Some(&sink),
            options.patience(),
            tokens,
        )
        .await;
        let body: Option<Value> = response
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_str(&r.body).ok());
        let Some(entries) = body.as_ref().and_then(|b| b["messages"].as_array()) else {
            return; // the cursor run judges the poll itself
        };
        let more = body.as_ref().is_some_and(|b| b["more"] == json!(true));
        if more && entries.len() < 100 {
            found.push(finding(
                Clause::L1,
                &event,
                format!(
                    "a page cut at {} entries said more: a prefix holds at least 100",
                    entries.len()
                ),
            ));
            return;
        }
        got.extend(entries.iter().filter_map(|e| e["id"].as_u64()));
        after = entries
            .last()
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(after);
        if !more || entries.is_empty() {
            let missing = sent.iter().filter(|id| !got.contains(id)).count();
            if missing > 0 {
                found.push(finding(
                    Clause::L1,
                    &event,
                    format!(
                        "{missing} of {} accepted messages never came back, and no page said more: true",
                        sent.len()
                    ),
                ));
            }
            return;
        }
    }
}

/// Connects `sender` on a websocket, sends [`PAGED_MESSAGES`] messages to
/// `sink` in pipelined chunks of [`PAGED_CHUNK`], and returns the ids of
/// those accepted. A refusal (a rate limit) counts as answered.
pub(super) async fn pipelined_sends(
    connector: &TcpConnector,
    sender: &str,
    sink: &str,
    connect: &str,
) -> Option<Vec<u64>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    let path = "/socket.io/?EIO=4&transport=websocket";
    let mut ws = transport::websocket(connector, path, &[("username", sender)])
        .await
        .ok()?;
    let mut connected = false;
    let mut ids = Vec::new();
    let mut answered = 0;
    while let Some(frame) = ws.next().await {
        let Ok(Frame::Text(text)) = frame else {
            if frame.is_err() {
                break;
            }
            continue;
        };
        let text = text.as_str();
        if text == "2" {
            ws.send(Frame::text("3")).await.ok()?;
        } else if text.starts_with('0') && !connected {
            ws.send(Frame::text(connect.to_owned())).await.ok()?;
        } else if text.starts_with("44") {
            return None;
        } else if text.starts_with("40") && !connected {
            connected = true;
            send_chunk(&mut ws, sink, 0).await?;
        } else if let Some(rest) = text.strip_prefix("43") {
            let start = rest.find('[').unwrap_or(0);
            if let Ok(args) = serde_json::from_str::<Value>(&rest[start..]) {
                ids.extend(args[0]["id"].as_u64());
            }
            answered += 1;
            if answered == PAGED_MESSAGES {
                break;
            }
            // The next chunk once this one is answered: pipelined, yet never
            // more than a chunk of acks waiting on the server at once.
            if answered % PAGED_CHUNK == 0 {
                send_chunk(&mut ws, sink, answered).await?;
            }
        }
    }
    let _ = ws.close(None).await;
    Some(ids)
}

/// Messages the paging probe writes back to back before reading their acks.
pub(super) const PAGED_CHUNK: u64 = 100;

/// Writes messages `from..from + PAGED_CHUNK` of the paging probe without
/// waiting.
pub(super) async fn send_chunk<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    sink: &str,
    from: u64,
) -> Option<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    for i in from..(from + PAGED_CHUNK).min(PAGED_MESSAGES) {
        let send = json!(["send_message", {"to": sink, "content": format!("page {i}"), "client_id": format!("page-{i}")}]);
        ws.feed(Frame::text(format!("42{i}{send}"))).await.ok()?;
    }
    ws.flush().await.ok()
}

/// L1, L2: a poll with `after` = the first of `seqs` returns exactly the later
/// ones; on the second `attempt` a missing one is L2 (the first poll lost it).
pub(super) fn cursor_findings(
    seqs: &[u64],
    attempt: usize,
    event: &Event,
    entries: Vec<Value>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let got: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    if got.iter().any(|s| *s <= seqs[0]) {
        found.push(finding(
            Clause::L1,
            event,
            format!(
                "after={} returned entries at or below the cursor: {got:?}",
                seqs[0]
            ),
        ));
    }
    if !seqs[1..].iter().all(|s| got.contains(s)) {
        let clause = if attempt == 0 { Clause::L1 } else { Clause::L2 };
        found.push(finding(
            clause,
            event,
            format!(
                "after={} should return seqs {:?}, got {got:?}",
                seqs[0],
                &seqs[1..]
            ),
        ));
    }
    found
}

/// L1: every entry is `{seq, id, from, to, content, ts}` for `dave`, in
/// strictly increasing `seq` order; the highest `seq` seen.
pub(super) fn entry_findings(
    entries: &[Value],
    dave: &str,
    first: &Event,
    found: &mut Vec<Violation>,
) -> u64 {
    let mut last_seq = 0;
    for entry in entries {
        let well_formed = entry["seq"].is_u64()
            && entry["id"].is_u64()
            && entry["from"].is_string()
            && entry["to"] == json!(dave)
            && entry["content"].is_string()
            && entry["ts"].is_u64();
        if !well_formed {
            found.push(finding(
                Clause::L1,
                first,
                format!(
                    "a mailbox entry is not {{seq, id, from, to, content, ts}}: {}",
                    abbreviate(&entry.to_string())
                ),
            ));
            break;
        }
        let seq = entry["seq"].as_u64().unwrap_or(0);
        if seq <= last_seq {
            found.push(finding(
                Clause::L1,
                first,
                format!("mailbox seqs are not strictly increasing: {seq} after {last_seq}"),
            ));
        }
        last_seq = seq;
    }
    last_seq
}

/// M2: the abuser (mallory) sent `{"from": "dave.<tag>", …}` to the sink; the
/// stored entry must name mallory, the registered sender, whatever the payload
/// claims. Evidence only when the entry is there (a refusal is not judged here).
pub(super) async fn from_is_never_the_payloads(
    found: &mut Vec<Violation>,
    connector: &TcpConnector,
    recorder: &Recorder,
    names: &Names,
    patience: Duration,
    tokens: Option<&TokenIssuer>,
) {
    let sink = names.user("m1sink");
    let (event, response) = get(
        connector,
        recorder,
        "/api/messages?after=0",
        Some(&sink),
        patience,
        tokens,
    )
    .await;
    let entries = response
        .filter(|r| r.status == 200)
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
        .and_then(|b| b["messages"].as_array().cloned())
        .unwrap_or_default();
    let mallory = names.user("mallory");
    for entry in entries
        .iter()
        .filter(|e| e["content"] == json!("m2 forged from"))
    {
        if entry["from"] != json!(mallory) {
            found.push(finding(
                Clause::M2,
                &event,
                format!(
                    "{mallory} sent a payload claiming \"from\": {}, and the stored message says from {}: `from` must be the registered sender",
                    json!(names.user("dave")),
                    entry["from"]
                ),
            ));
        }
    }
}

/// L4 (SHOULD): a cursor above every seq the mailbox assigned is answered
/// `409 {"error", "latest"}` with `latest` the highest seq; a v1 server that
/// answers 200 with the entries above the cursor (none) keeps L1 but not L4.
pub(super) fn stale_cursor(
    found: &mut Vec<Violation>,
    (event, response): (Event, Option<transport::Response>),
    latest: u64,
) {
    let Some(r) = response else {
        return; // no answer: the exchange's own error shows in the trace
    };
    let body: Option<Value> = serde_json::from_str(&r.body).ok();
    match r.status {
        409 => {
            let ok = body
                .as_ref()
                .is_some_and(|b| b["error"].is_string() && b["latest"].as_u64() == Some(latest));
            if !ok {
                found.push(finding(
                    Clause::L4,
                    &event,
                    format!("a stale cursor got 409 but not {{\"error\", \"latest\": {latest}}}"),
                ));
            }
        }
        200 if body.as_ref().is_some_and(|b| b["messages"].is_array()) => {
            found.push(finding(
                Clause::L4,
                &event,
                format!("a cursor above every seq the mailbox assigned was answered 200, not 409 {{\"error\", \"latest\": {latest}}}: a cursor from before a restart would hide new mail"),
            ));
        }
        status => found.push(finding(
            Clause::L1,
            &event,
            format!(
                "a poll with an out-of-range cursor should get 409 (L4) or 200 (L1), got {status}"
            ),
        )),
    }
}

pub(super) fn cursor_done(recorder: Recorder, violations: Vec<Violation>, started: Instant) -> Run {
    Run::new("cursor", None, recorder.trace(), violations, started)
}

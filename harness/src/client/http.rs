//! The client's plain HTTP side: the mailbox poll (L1–L3) and the observer's
//! presence probe (P4).

use std::time::Duration;

use serde_json::Value;
use tokio::time::timeout;

use super::{Connector, Shared};
use crate::contract::MailboxEntry;
use crate::net::transport::{self, TransportError};
use crate::trace::{Recorder, Via, What};

/// Most pages one poll follows (`"more": true`, L1) before waiting for the
/// next poll: bounds the work a server that always says "more" can cause.
const MAX_PAGES: usize = 64;

/// Polls `GET /api/messages` from the cursor, recording what came back: pages
/// while the server says `"more": true` (L1), and starts over from 0 when it
/// answers a stale cursor with 409 (L4; duplicates are shown once, by id).
pub(super) async fn poll_mailbox<C: Connector>(shared: &Shared<C>) {
    for _ in 0..MAX_PAGES {
        match poll_page(shared).await {
            Page::More => continue,
            Page::Stale if shared.inbox.lock().unwrap().cursor > 0 => {
                shared.inbox.lock().unwrap().cursor = 0;
            }
            Page::Done | Page::Stale => return,
        }
    }
}

/// What one page said about the next.
enum Page {
    /// The server has more after this page.
    More,
    /// The cursor is above anything the mailbox ever assigned (409, L4).
    Stale,
    /// Nothing more now (or the poll failed).
    Done,
}

async fn poll_page<C: Connector>(shared: &Shared<C>) -> Page {
    let name = &shared.spec.name;
    let after = shared.inbox.lock().unwrap().cursor;
    let path = format!("/api/messages?after={after}");
    let (header, identity) = shared.poll_identity();
    let outcome = timeout(
        shared.timer(shared.request_timeout()),
        transport::request(
            &shared.connector,
            http::Method::GET,
            &path,
            &[(header, &identity)],
            None,
        ),
    )
    .await
    .unwrap_or(Err(TransportError::Timeout));
    let failed = |reason: String| {
        shared.record(name, What::PollFailed { after, reason });
        Page::Done
    };
    let response = match outcome {
        Ok(r) if r.status == 200 => r,
        Ok(r) if r.status == 409 => {
            shared.record(
                name,
                What::PollFailed {
                    after,
                    reason: format!("stale cursor (409): {}", r.body),
                },
            );
            return Page::Stale;
        }
        Ok(r) => return failed(format!("status {}: {}", r.status, r.body)),
        Err(e) => return failed(e.to_string()),
    };
    #[derive(serde::Deserialize)]
    struct Mailbox {
        messages: Vec<MailboxEntry>,
        #[serde(default)]
        more: bool,
    }
    let (entries, more) = match serde_json::from_str::<Mailbox>(&response.body) {
        Ok(m) => (m.messages, m.more),
        Err(e) => return failed(format!("bad body: {e}")),
    };
    let at_ms = shared.recorder.now_ms();
    shared.recorder.record_at(
        at_ms,
        name,
        What::Polled {
            after,
            seqs: entries.iter().map(|e| e.seq).collect(),
        },
    );
    for entry in &entries {
        shared.receive_at(at_ms, name, &entry.message, Via::Mailbox);
    }
    let Some(last) = entries.iter().map(|e| e.seq).max() else {
        return Page::Done;
    };
    let mut inbox = shared.inbox.lock().unwrap();
    let advanced = last > inbox.cursor;
    inbox.cursor = inbox.cursor.max(last);
    if more && advanced {
        Page::More
    } else {
        Page::Done
    }
}

/// Probes `GET /api/online` once (P4).
pub async fn probe_online<C: Connector>(
    connector: &C,
    recorder: &Recorder,
    request_timeout: Duration,
) {
    probe_online_as(connector, recorder, "observer", request_timeout).await;
}

/// As [`probe_online`], recorded as `actor` (one observer per node of a
/// deployment of several nodes).
pub async fn probe_online_as<C: Connector>(
    connector: &C,
    recorder: &Recorder,
    actor: &str,
    request_timeout: Duration,
) {
    let outcome = timeout(
        request_timeout,
        transport::request(connector, http::Method::GET, "/api/online", &[], None),
    )
    .await
    .unwrap_or(Err(TransportError::Timeout));
    let what = match outcome {
        Ok(r) if r.status == 200 => match serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| serde_json::from_value::<Vec<String>>(v["users"].clone()).ok())
        {
            Some(users) => What::OnlineProbe { users },
            None => What::ProbeFailed {
                reason: format!("bad body: {}", r.body),
            },
        },
        Ok(r) => What::ProbeFailed {
            reason: format!("status {}", r.status),
        },
        Err(e) => What::ProbeFailed {
            reason: e.to_string(),
        },
    };
    recorder.record(actor, what);
}

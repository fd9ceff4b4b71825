//! The client's plain HTTP side: the mailbox poll (L1–L3) and the observer's
//! presence probe (P4).

use std::time::Duration;

use serde_json::Value;
use tokio::time::timeout;

use super::{Connector, Shared};
use crate::contract::MailboxEntry;
use crate::net::transport::{self, TransportError};
use crate::trace::{Recorder, Via, What};

/// Polls `GET /api/messages` from the cursor once, recording what came back.
pub(super) async fn poll_mailbox<C: Connector>(shared: &Shared<C>) {
    let name = &shared.spec.name;
    let after = shared.inbox.lock().unwrap().cursor;
    let path = format!("/api/messages?after={after}");
    let outcome = timeout(
        shared.request_timeout(),
        transport::request(
            &shared.connector,
            http::Method::GET,
            &path,
            &[("username", name)],
            None,
        ),
    )
    .await
    .unwrap_or(Err(TransportError::Timeout));
    let response = match outcome {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            let reason = format!("status {}: {}", r.status, r.body);
            return shared.record(name, What::PollFailed { after, reason });
        }
        Err(e) => {
            return shared.record(
                name,
                What::PollFailed {
                    after,
                    reason: e.to_string(),
                },
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct Mailbox {
        messages: Vec<MailboxEntry>,
    }
    let entries = match serde_json::from_str::<Mailbox>(&response.body) {
        Ok(m) => m.messages,
        Err(e) => {
            return shared.record(
                name,
                What::PollFailed {
                    after,
                    reason: format!("bad body: {e}"),
                },
            );
        }
    };
    shared.record(
        name,
        What::Polled {
            after,
            seqs: entries.iter().map(|e| e.seq).collect(),
        },
    );
    for entry in &entries {
        shared.receive(name, &entry.message, Via::Mailbox);
    }
    if let Some(last) = entries.iter().map(|e| e.seq).max() {
        let mut inbox = shared.inbox.lock().unwrap();
        inbox.cursor = inbox.cursor.max(last);
    }
}

/// Probes `GET /api/online` once (P4).
pub async fn probe_online<C: Connector>(
    connector: &C,
    recorder: &Recorder,
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
    recorder.record("observer", what);
}

//! The numbers of a run, for the report's summary line.

use serde::{Deserialize, Serialize};

use super::Facts;
use crate::contract::Delivery;
use crate::scenario::Scenario;
use crate::trace::{Trace, Via, What};

/// Counts for the run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `send_message` emitted.
    pub sent: usize,
    /// Accepted by the server.
    pub accepted: usize,
    /// Of those, acked `websocket`.
    pub acked_websocket: usize,
    /// Of those, acked `polling`.
    pub acked_polling: usize,
    /// Refused with `{error}`.
    pub refused: usize,
    /// Accepted, to a user of the scenario, and never received.
    pub lost: usize,
    /// Arrivals of an id the client had already shown.
    pub duplicates: usize,
    /// Send → first push, for messages acked `websocket`, 50th percentile, ms.
    pub push_latency_p50_ms: Option<u64>,
    /// 99th percentile, ms.
    pub push_latency_p99_ms: Option<u64>,
    /// Trace events.
    pub events: usize,
}

/// The numbers of a run.
pub fn summarize(trace: &Trace, scenario: &Scenario) -> Summary {
    let facts = Facts::new(trace, scenario);
    let mut summary = Summary {
        events: trace.events.len(),
        ..Summary::default()
    };
    let mut latencies = Vec::new();
    for sent in facts.sent.values() {
        summary.sent += 1;
        let Some((_, id, delivery)) = &sent.accepted else {
            continue;
        };
        summary.accepted += 1;
        match delivery {
            Delivery::Websocket => summary.acked_websocket += 1,
            Delivery::Polling => summary.acked_polling += 1,
        }
        if facts.user_index(&sent.to).is_some() && facts.first_receipt(&sent.to, *id).is_none() {
            summary.lost += 1;
        }
        if *delivery == Delivery::Websocket {
            if let Some(push) = facts.received.get(&sent.to).and_then(|events| {
                events.iter().find(|e| matches!(e.what, What::Received { id: got, via: Via::Websocket, .. } if got == *id))
            }) {
                latencies.push(push.at_ms.saturating_sub(sent.event.at_ms));
            }
        }
    }
    summary.refused = trace
        .events
        .iter()
        .filter(|e| matches!(e.what, What::Refused { .. }))
        .count();
    summary.duplicates = trace
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.what,
                What::Received {
                    duplicate: true,
                    ..
                }
            )
        })
        .count();
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
    };
    summary.push_latency_p50_ms = pct(50);
    summary.push_latency_p99_ms = pct(99);
    summary
}

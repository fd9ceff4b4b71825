//! The reference client's own bookkeeping: every connection that reached
//! `connected` ends with exactly one terminal event (`disconnected`) or is
//! still open at the end, and never also reports `open-failed`. A session the
//! client forgot to end is counted open forever, and the checkers blame the
//! server for it (#17: 200 users, seed 2, P2×27 against a correct server).

use std::collections::BTreeMap;

use harness::trace::What;
use harness::world::{simulate, WorldOptions};

fn assert_sessions_end_once(users: usize, seed: u64) {
    let scenario = crate::support::generated(users, seed);
    let outcome = simulate(&scenario, &WorldOptions::default());
    assert_eq!(outcome.error, None);
    // label → (connected, terminal events, open-failed after connected)
    let mut seen: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    for event in &outcome.trace.events {
        if !event.actor.contains('#') {
            continue;
        }
        let entry = seen.entry(event.actor.as_str()).or_default();
        match &event.what {
            What::Connected => entry.0 += 1,
            What::Disconnected { .. } => entry.1 += 1,
            What::OpenFailed { .. } if entry.0 > 0 => entry.2 += 1,
            _ => {}
        }
    }
    for (label, (connected, ended, failed_after)) in seen {
        assert!(
            connected <= 1,
            "{users} users, seed {seed}: {label} connected {connected} times"
        );
        assert!(
            ended <= 1,
            "{users} users, seed {seed}: {label} ended {ended} times"
        );
        assert_eq!(
            failed_after, 0,
            "{users} users, seed {seed}: {label} reported open-failed after it had connected"
        );
    }
}

#[test]
fn every_connected_session_ends_at_most_once_and_never_fails_after_connecting() {
    for seed in 1..6 {
        assert_sessions_end_once(10, seed);
    }
    // The run where the client used to leave a connected session unended.
    assert_sessions_end_once(200, 2);
}

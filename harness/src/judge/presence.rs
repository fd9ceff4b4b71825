//! Presence converges after the heal (P1–P4).

use std::collections::{BTreeSet, HashMap};

use crate::spec::Clause;
use crate::trace::{Event, What};

use super::{user_of, violation, Facts, Violation};

/// How long a connection attempt may take on a clean link before its
/// failure is the server's: the reference client's connect timeout and more.
const ATTEMPT_WINDOW_MS: u64 = 6_000;

/// T1, P1: a user the contract lets in, who tried to connect on a clean link,
/// got a connection at least once. Without this a server that answers nothing
/// (a wrong path, a 404 everywhere, every CONNECT refused) would leave every
/// other checker without evidence and the run vacuously clean. T1 when the
/// Engine.IO session never opened, P1 when it opened and CONNECT never
/// succeeded.
pub fn valid_users_connect(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for user in &facts.scenario.users {
        let name = user.name.as_str();
        if !facts.can_register(name) {
            continue;
        }
        let conns: Vec<_> = facts.conns_of(name).collect();
        if conns.iter().any(|c| c.connected_at.is_some()) {
            continue;
        }
        let Some(clean) = conns.iter().find(|c| {
            c.attempt_at.is_some_and(|at| {
                facts.is_link_clean(name, at.saturating_sub(1_000), at + ATTEMPT_WINDOW_MS)
            })
        }) else {
            continue;
        };
        let at = clean.attempt_at.unwrap_or(0);
        if at + ATTEMPT_WINDOW_MS > facts.end_ms {
            continue; // the attempt had no time to finish
        }
        let mine: Vec<&Event> = facts
            .trace
            .events
            .iter()
            .filter(|e| conns.iter().any(|c| c.label == e.actor))
            .collect();
        let opened = mine.iter().any(|e| matches!(e.what, What::Opened { .. }));
        let why = mine
            .iter()
            .rev()
            .find_map(|e| match &e.what {
                What::OpenFailed { reason } => Some(reason.clone()),
                What::ConnectRefused { message } => Some(format!("CONNECT_ERROR {message}")),
                What::Disconnected { reason } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "no answer".into());
        let (clause, what) = if opened {
            (
                Clause::P1,
                "its Engine.IO sessions opened, but CONNECT never succeeded",
            )
        } else {
            (Clause::T1, "no Engine.IO session ever opened")
        };
        found.push(violation(
            clause,
            at,
            format!(
                "{name} may register and tried on a clean link, yet never got a connection in {} attempts: {what} (last: {why})",
                conns.len()
            ),
            mine.into_iter().take(6).cloned().collect(),
        ));
    }
    found
}

/// P1–P4 (liveness): after the heal, `/api/online` lists exactly the users with
/// an open registered connection, sorted; and every connection that stayed up
/// saw each other user's last change as user_online / user_offline.
pub fn presence_converges(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in &facts.trace.events {
        if let What::OnlineProbe { users } = &event.what {
            let mut sorted = users.clone();
            sorted.sort();
            sorted.dedup();
            if &sorted != users {
                found.push(violation(
                    Clause::P4,
                    event.at_ms,
                    format!("/api/online is not sorted and unique: {users:?}"),
                    vec![event.clone()],
                ));
            }
        }
    }
    let Some(heal_at) = facts.heal_at else {
        return found;
    };
    let final_probe = facts
        .trace
        .events
        .iter()
        .rev()
        .find(|e| e.at_ms > heal_at && matches!(e.what, What::OnlineProbe { .. }));
    let Some(probe) = final_probe else {
        return found;
    };
    let What::OnlineProbe { users } = &probe.what else {
        unreachable!()
    };
    let listed: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = facts
        .scenario
        .users
        .iter()
        .map(|u| u.name.as_str())
        .filter(|u| facts.is_online_at(u, probe.at_ms))
        .collect();
    for name in expected.difference(&listed) {
        let mut evidence = vec![probe.clone()];
        evidence.extend(
            facts
                .conns_of(name)
                .filter(|c| c.is_open_at(probe.at_ms))
                .filter_map(|c| facts.connected_event(&c.label)),
        );
        found.push(
            violation(
                Clause::P2,
                probe.at_ms,
                format!("{name} has an open registered connection but /api/online leaves them out"),
                evidence,
            )
            .user(name),
        );
    }
    for name in listed
        .difference(&expected)
        .filter(|n| facts.can_register(n))
    {
        let last_close =
            facts.trace.events.iter().rev().find(|e| {
                user_of(&e.actor) == *name && matches!(e.what, What::Disconnected { .. })
            });
        let mut evidence = vec![probe.clone()];
        evidence.extend(last_close.cloned());
        found.push(
            violation(
                Clause::P3,
                probe.at_ms,
                format!("{name} has no open connection but /api/online still lists them"),
                evidence,
            )
            .user(name),
        );
    }
    found.extend(presence_events_agree(facts, probe.at_ms));
    found
}

/// P1, P3: the server's presence events for a user alternate and end in its
/// final state, and a connection still open at the end received them all (turmoil's
/// TCP either delivers a stream in order or kills it). So a watcher whose latest
/// news of a user contradicts that user's final state missed an event. Silence is
/// not judged: the watcher may have connected after the user's last change.
fn presence_events_agree(facts: &Facts<'_>, at_ms: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    // Each watcher's latest news of each user, up to the probe: one pass.
    // Looked up only, never iterated: no order of it reaches a verdict.
    let mut last_news: HashMap<(&str, &str), &Event> = HashMap::new();
    for event in facts.trace.events.iter().take_while(|e| e.at_ms <= at_ms) {
        if let What::Presence { username, .. } = &event.what {
            last_news.insert((event.actor.as_str(), username.as_str()), event);
        }
    }
    // The registered connections still open at the probe, in label order.
    let watchers: Vec<_> = facts
        .conns
        .values()
        .filter(|w| facts.can_register(&w.user) && w.is_open_at(at_ms))
        .collect();
    for user in facts.scenario.users.iter().filter(|u| u.can_register()) {
        let name = user.name.as_str();
        let is_online = facts.is_online_at(name, at_ms);
        for watcher in &watchers {
            if watcher.user == name {
                continue;
            }
            let Some(last_seen) = last_news.get(&(watcher.label.as_str(), name)) else {
                continue;
            };
            let seen_online = matches!(last_seen.what, What::Presence { online: true, .. });
            if seen_online != is_online {
                let clause = if is_online { Clause::P2 } else { Clause::P3 };
                let mut evidence: Vec<Event> =
                    facts.connected_event(&watcher.label).into_iter().collect();
                evidence.push((*last_seen).clone());
                found.push(violation(
                    clause,
                    at_ms,
                    format!(
                        "{} was still connected at the end, but its last presence news says {name} is {} while {name} is {}",
                        watcher.label,
                        if seen_online { "online" } else { "offline" },
                        if is_online { "online" } else { "offline" },
                    ),
                    evidence,
                )
                .user(name)
                .conn(&watcher.label));
            }
        }
    }
    found
}

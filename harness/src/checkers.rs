//! The invariant checkers: pure functions over a trace and the scenario that
//! produced it. A violation is data — clause, time, evidence — never a panic.
//! Safety checks look at the whole run; liveness checks (no loss, presence
//! convergence) only at what must hold once the heal phase has run its course.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use server_under_test::store::Delivery;

use crate::faults::FaultPlan;
use crate::scenario::Scenario;
use crate::spec::Clause;
use crate::trace::{Event, Trace, Via, What};
use crate::world::host_of;

/// M3's bound on push latency over a healthy network.
pub const PUSH_BOUND_MS: u64 = 100;
/// Slack for an HTTP poll's own round trip when asking "the next poll".
pub const POLL_SLACK_MS: u64 = 2_000;

/// A broken clause, with the events that prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The clause broken.
    pub clause: Clause,
    /// When it became visible.
    pub at_ms: u64,
    /// What went wrong, in one sentence.
    pub message: String,
    /// The few events that show it.
    pub evidence: Vec<Event>,
}

/// A named checker and the clauses it judges (listed in `specs/clauses.json`).
pub struct Checker {
    /// Its name, as `specs/clauses.json` cites it.
    pub name: &'static str,
    /// The clauses its violations cite.
    pub clauses: &'static [Clause],
    /// The check.
    pub check: fn(&Facts<'_>) -> Vec<Violation>,
}

/// Every checker, in the order they run.
pub const CHECKERS: &[Checker] = &[
    Checker {
        name: "unregistered_stay_unregistered",
        clauses: &[Clause::I3],
        check: unregistered_stay_unregistered,
    },
    Checker {
        name: "online_recipients_get_pushes",
        clauses: &[Clause::M3],
        check: online_recipients_get_pushes,
    },
    Checker {
        name: "offline_recipients_get_mail",
        clauses: &[Clause::M4, Clause::L1],
        check: offline_recipients_get_mail,
    },
    Checker {
        name: "from_is_the_sender",
        clauses: &[Clause::M2],
        check: from_is_the_sender,
    },
    Checker {
        name: "bad_sends_are_refused",
        clauses: &[Clause::M2, Clause::B1],
        check: bad_sends_are_refused,
    },
    Checker {
        name: "nothing_accepted_is_lost",
        clauses: &[Clause::M5, Clause::L2],
        check: nothing_accepted_is_lost,
    },
    Checker {
        name: "presence_converges",
        clauses: &[Clause::P1, Clause::P2, Clause::P3, Clause::P4],
        check: presence_converges,
    },
];

/// Every checker over one trace, violations sorted by time then clause.
pub fn check_all(trace: &Trace, scenario: &Scenario) -> Vec<Violation> {
    let facts = Facts::new(trace, scenario);
    let mut violations: Vec<Violation> = CHECKERS.iter().flat_map(|c| (c.check)(&facts)).collect();
    violations.sort_by_key(|v| (v.at_ms, v.clause));
    violations
}

/// What one connection went through (client view).
#[derive(Clone, Debug, Default)]
pub struct Conn {
    /// `user#n`.
    pub label: String,
    /// The user's name.
    pub user: String,
    /// When it started opening.
    pub attempt_at: Option<u64>,
    /// When CONNECT was accepted.
    pub connected_at: Option<u64>,
    /// When it ended.
    pub disconnected_at: Option<u64>,
}

impl Conn {
    /// Open (CONNECT accepted, not yet ended) at `at_ms`.
    pub fn is_open_at(&self, at_ms: u64) -> bool {
        self.connected_at.is_some_and(|c| c <= at_ms)
            && self.disconnected_at.is_none_or(|d| d > at_ms)
    }
}

/// One `send_message` and its fate.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The `Sent` event.
    pub event: Event,
    /// Recipient.
    pub to: String,
    /// The sender's connection label.
    pub conn: String,
    /// The ack event, when accepted.
    pub accepted: Option<(Event, u64, Delivery)>,
}

/// Indexes over a trace that the checkers share.
pub struct Facts<'a> {
    /// The trace.
    pub trace: &'a Trace,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Connections by label.
    pub conns: BTreeMap<String, Conn>,
    /// Sends by client id.
    pub sent: BTreeMap<String, Sent>,
    /// Message id → client id of its accepting ack.
    pub by_id: BTreeMap<u64, String>,
    /// Received events by user.
    pub received: BTreeMap<String, Vec<&'a Event>>,
    /// The start of the heal phase, if the run had one.
    pub heal_at: Option<u64>,
    /// The time of the last event.
    pub end_ms: u64,
}

/// The user part of `user#n`.
pub fn user_of(actor: &str) -> &str {
    actor.split('#').next().unwrap_or(actor)
}

impl<'a> Facts<'a> {
    /// Indexes `trace`.
    pub fn new(trace: &'a Trace, scenario: &'a Scenario) -> Self {
        let mut facts = Facts {
            trace,
            scenario,
            conns: BTreeMap::new(),
            sent: BTreeMap::new(),
            by_id: BTreeMap::new(),
            received: BTreeMap::new(),
            heal_at: None,
            end_ms: trace.events.last().map_or(0, |e| e.at_ms),
        };
        for event in &trace.events {
            fn conn<'m>(conns: &'m mut BTreeMap<String, Conn>, actor: &str) -> &'m mut Conn {
                conns.entry(actor.to_owned()).or_insert_with(|| Conn {
                    label: actor.to_owned(),
                    user: user_of(actor).to_owned(),
                    ..Conn::default()
                })
            }
            match &event.what {
                What::ConnectAttempt { .. } => {
                    conn(&mut facts.conns, &event.actor).attempt_at = Some(event.at_ms)
                }
                What::Connected => {
                    conn(&mut facts.conns, &event.actor).connected_at = Some(event.at_ms)
                }
                What::Disconnected { .. } => {
                    conn(&mut facts.conns, &event.actor).disconnected_at = Some(event.at_ms)
                }
                What::Sent { client_id, to } => {
                    facts.sent.insert(
                        client_id.clone(),
                        Sent {
                            event: event.clone(),
                            to: to.clone(),
                            conn: event.actor.clone(),
                            accepted: None,
                        },
                    );
                }
                What::Accepted {
                    client_id,
                    id,
                    delivery,
                } => {
                    if let Some(sent) = facts.sent.get_mut(client_id) {
                        sent.accepted = Some((event.clone(), *id, *delivery));
                    }
                    facts.by_id.entry(*id).or_insert_with(|| client_id.clone());
                }
                What::Received { .. } => {
                    facts
                        .received
                        .entry(user_of(&event.actor).to_owned())
                        .or_default()
                        .push(event);
                }
                What::HealPhase => facts.heal_at = Some(event.at_ms),
                _ => {}
            }
        }
        facts
    }

    fn plan(&self) -> &FaultPlan {
        &self.scenario.faults
    }

    /// The scenario's user by name.
    pub fn user_index(&self, name: &str) -> Option<usize> {
        self.scenario.users.iter().position(|u| u.name == name)
    }

    /// Whether a contract-keeping server may register `name` at all.
    pub fn can_register(&self, name: &str) -> bool {
        self.user_index(name)
            .is_some_and(|i| self.scenario.users[i].can_register())
    }

    fn host(&self, name: &str) -> Option<String> {
        self.user_index(name)
            .map(|i| host_of(i, self.scenario.users.len()))
    }

    /// The link of `name`'s host stayed clean over `[from, to]`.
    fn is_link_clean(&self, name: &str, from_ms: u64, to_ms: u64) -> bool {
        self.host(name)
            .is_some_and(|h| !self.plan().touches(&h, from_ms, to_ms))
    }

    fn conns_of(&self, name: &str) -> impl Iterator<Item = &Conn> {
        let name = name.to_owned();
        self.conns.values().filter(move |c| c.user == name)
    }

    /// When `name` first received message `id`, if ever.
    pub fn first_receipt(&self, name: &str, id: u64) -> Option<&'a Event> {
        self.received
            .get(name)?
            .iter()
            .copied()
            .find(|e| matches!(e.what, What::Received { id: got, .. } if got == id))
    }

    fn is_online_at(&self, name: &str, at_ms: u64) -> bool {
        self.can_register(name) && self.conns_of(name).any(|c| c.is_open_at(at_ms))
    }

    fn connected_event(&self, label: &str) -> Option<Event> {
        self.trace
            .events
            .iter()
            .find(|e| e.actor == label && e.what == What::Connected)
            .cloned()
    }
}

fn violation(clause: Clause, at_ms: u64, message: String, evidence: Vec<Event>) -> Violation {
    Violation {
        clause,
        at_ms,
        message,
        evidence,
    }
}

/// I3: connections without a valid username never see presence or pushes, never
/// get a send accepted, and their names never show as online.
pub fn unregistered_stay_unregistered(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in &facts.trace.events {
        let user = user_of(&event.actor);
        let is_conn = event.actor.contains('#');
        if is_conn && facts.user_index(user).is_some() && !facts.can_register(user) {
            let what = match &event.what {
                What::Connected => None, // a server MAY keep it connected, unregistered
                What::Presence { .. } => Some("received a presence event"),
                What::Received {
                    via: Via::Websocket | Via::PollingTransport,
                    ..
                } => Some("received a pushed message"),
                What::Accepted { .. } => Some("had a send_message accepted"),
                _ => None,
            };
            if let Some(what) = what {
                found.push(violation(
                    Clause::I3,
                    event.at_ms,
                    format!(
                        "{}, whose handshake carried no valid username, {what}",
                        event.actor
                    ),
                    vec![event.clone()],
                ));
            }
        }
        // In an open world other clients may be online under other names.
        let judged = |name: &str| {
            !facts.can_register(name)
                && (!facts.scenario.open_world || facts.user_index(name).is_some())
        };
        let named = match &event.what {
            What::OnlineProbe { users } => users.iter().filter(|u| judged(u)).cloned().collect(),
            What::Presence { username, .. } if judged(username) => vec![username.clone()],
            _ => Vec::new(),
        };
        for name in named {
            found.push(violation(
                Clause::I3,
                event.at_ms,
                format!("'{name}' was reported online, but no connection of that name carried a valid username"),
                vec![event.clone()],
            ));
        }
    }
    found
}

/// M3: a message to a recipient connected over a clean, fast link is acked
/// `websocket` and pushed within 100 ms.
pub fn online_recipients_get_pushes(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    if !facts.plan().is_latency_healthy() {
        return found;
    }
    for sent in facts.sent.values() {
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        let t = sent.event.at_ms;
        let bound = facts.plan().push_bound_ms.unwrap_or(PUSH_BOUND_MS);
        let deadline = t + bound;
        let sender = user_of(&sent.conn);
        let Some(sender_conn) = facts.conns.get(&sent.conn) else {
            continue;
        };
        let Some(sender_since) = sender_conn.connected_at else {
            continue;
        };
        if !facts.is_link_clean(sender, sender_since, deadline) || !facts.can_register(&sent.to) {
            continue;
        }
        let healthy_recipient = facts.conns_of(&sent.to).find(|c| {
            c.connected_at
                .is_some_and(|since| since < t && facts.is_link_clean(&sent.to, since, deadline))
                && c.disconnected_at.is_none_or(|d| d > deadline)
        });
        let Some(recipient) = healthy_recipient else {
            continue;
        };
        let mut evidence = vec![sent.event.clone(), ack.clone()];
        evidence.extend(facts.connected_event(&recipient.label));
        if *delivery != Delivery::Websocket {
            found.push(violation(
                Clause::M3,
                ack.at_ms,
                format!("message {id} to {}, online on a healthy link, was acked {delivery:?} instead of websocket", sent.to),
                evidence,
            ));
            continue;
        }
        let pushed = facts.received.get(&sent.to).and_then(|events| {
            events.iter().find(|e| matches!(e.what, What::Received { id: got, via: Via::Websocket | Via::PollingTransport, .. } if got == *id))
        });
        match pushed {
            Some(push) if push.at_ms <= deadline => {}
            other => {
                evidence.extend(other.map(|e| (*e).clone()));
                found.push(violation(
                    Clause::M3,
                    deadline,
                    format!(
                        "message {id} to {} was not pushed within {bound} ms of the send",
                        sent.to
                    ),
                    evidence,
                ));
            }
        }
    }
    found
}

/// M4, L1: a message to a recipient who cannot be online is acked `polling`,
/// and the recipient's next successful poll returns it.
pub fn offline_recipients_get_mail(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for sent in facts.sent.values() {
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        let t = sent.event.at_ms;
        let never_tried = facts
            .conns_of(&sent.to)
            .all(|c| c.attempt_at.is_none_or(|a| a > ack.at_ms + 1_000));
        if facts.can_register(&sent.to) && !never_tried {
            continue;
        }
        if *delivery != Delivery::Polling {
            found.push(violation(
                Clause::M4,
                ack.at_ms,
                format!("message {id} to {}, who was not online, was acked {delivery:?} instead of polling", sent.to),
                vec![sent.event.clone(), ack.clone()],
            ));
            continue;
        }
        if facts.user_index(&sent.to).is_none() || facts.is_online_at(&sent.to, t) {
            continue;
        }
        let next_poll = facts.trace.events.iter().find(|e| {
            e.actor == sent.to
                && e.at_ms >= ack.at_ms + POLL_SLACK_MS
                && matches!(e.what, What::Polled { .. })
        });
        if let Some(poll) = next_poll {
            let got = facts
                .first_receipt(&sent.to, *id)
                .is_some_and(|r| r.at_ms <= poll.at_ms);
            if !got {
                found.push(violation(
                    Clause::L1,
                    poll.at_ms,
                    format!("message {id} was acked polling but {}'s next successful poll did not return it", sent.to),
                    vec![sent.event.clone(), ack.clone(), poll.clone()],
                ));
            }
        }
    }
    found
}

/// M2: every received message names its real sender and recipient, and no two
/// sends share an id.
pub fn from_is_the_sender(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut ids: BTreeMap<u64, &Sent> = BTreeMap::new();
    for sent in facts.sent.values() {
        let Some((ack, id, _)) = &sent.accepted else {
            continue;
        };
        if let Some(other) = ids.insert(*id, sent) {
            found.push(violation(
                Clause::M2,
                ack.at_ms,
                format!("two different messages were acked with the same id {id}"),
                vec![other.event.clone(), sent.event.clone(), ack.clone()],
            ));
        }
    }
    for events in facts.received.values() {
        for event in events {
            let What::Received { id, from, to, .. } = &event.what else {
                continue;
            };
            let Some(sent) = ids.get(id) else { continue };
            let sender = user_of(&sent.conn);
            if from != sender || *to != sent.to {
                found.push(violation(
                    Clause::M2,
                    event.at_ms,
                    format!(
                        "message {id} arrived as {from} → {to}, but {sender} sent it to {}",
                        sent.to
                    ),
                    vec![sent.event.clone(), (*event).clone()],
                ));
            }
        }
    }
    found
}

/// M2, B1: a send to an invalid recipient name, or a malformed `send_message`,
/// is answered with `{"error"}` and accepts nothing; a malformed one is answered
/// at all (a connection that ends first is not judged: maxPayload MAY close it).
pub fn bad_sends_are_refused(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for sent in facts.sent.values() {
        if let Some((ack, id, _)) = &sent.accepted {
            if server_under_test::Username::parse(&sent.to).is_err() {
                found.push(violation(
                    Clause::M2,
                    ack.at_ms,
                    format!(
                        "a message to {:?}, not a valid username, was accepted as {id}",
                        sent.to
                    ),
                    vec![sent.event.clone(), ack.clone()],
                ));
            }
        }
    }
    for event in &facts.trace.events {
        let What::SentRaw { client_id } = &event.what else {
            continue;
        };
        let answer = facts.trace.events.iter().find(|e| {
            matches!(&e.what,
                What::Accepted { client_id: c, .. } | What::AckLost { client_id: c, .. }
                if c == client_id)
        });
        let message = match answer.map(|a| &a.what) {
            Some(What::Accepted { id, .. }) => {
                format!("a malformed send_message ({client_id}) was accepted as message {id}")
            }
            Some(What::AckLost { reason, .. }) if reason == "ack timeout" => {
                format!(
                    "a malformed send_message ({client_id}) got no answer: no ack {{\"error\"}}"
                )
            }
            _ => continue,
        };
        let answer = answer.expect("matched above");
        found.push(violation(
            Clause::B1,
            answer.at_ms,
            message,
            vec![event.clone(), answer.clone()],
        ));
    }
    found
}

/// M5, L2 (liveness): once healed, every accepted message to a user of the
/// scenario has reached that user, by push or by poll.
pub fn nothing_accepted_is_lost(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    if facts.heal_at.is_none() {
        return found;
    }
    for sent in facts.sent.values() {
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        if facts.user_index(&sent.to).is_none() || facts.first_receipt(&sent.to, *id).is_some() {
            continue;
        }
        let clause = match delivery {
            Delivery::Websocket => Clause::M5,
            Delivery::Polling => Clause::L2,
        };
        found.push(violation(
            clause,
            facts.end_ms,
            format!(
                "message {id} to {} was accepted ({delivery:?}) and never arrived, by push or poll",
                sent.to
            ),
            vec![sent.event.clone(), ack.clone()],
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
        found.push(violation(
            Clause::P2,
            probe.at_ms,
            format!("{name} has an open registered connection but /api/online leaves them out"),
            evidence,
        ));
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
        found.push(violation(
            Clause::P3,
            probe.at_ms,
            format!("{name} has no open connection but /api/online still lists them"),
            evidence,
        ));
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
    let mut last_news: BTreeMap<(&str, &str), &Event> = BTreeMap::new();
    for event in facts.trace.events.iter().take_while(|e| e.at_ms <= at_ms) {
        if let What::Presence { username, .. } = &event.what {
            last_news.insert((event.actor.as_str(), username.as_str()), event);
        }
    }
    for user in facts.scenario.users.iter().filter(|u| u.can_register()) {
        let name = user.name.as_str();
        let is_online = facts.is_online_at(name, at_ms);
        for watcher in facts.conns.values() {
            if watcher.user == name
                || !facts.can_register(&watcher.user)
                || !watcher.is_open_at(at_ms)
            {
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
                ));
            }
        }
    }
    found
}

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

#[cfg(test)]
mod tests {
    //! M2, M4 and L1 have no reference-server bug switch; hand-built traces
    //! prove their checkers can fail.
    use super::*;
    use crate::scenario::UserSpec;

    fn scenario() -> Scenario {
        Scenario {
            seed: 0,
            users: vec![UserSpec::node("a"), UserSpec::node("b")],
            steps: Vec::new(),
            faults: FaultPlan::calm(),
            active_ms: 10_000,
            heal_ms: 10_000,
            open_world: false,
        }
    }

    fn at(at_ms: u64, actor: &str, what: What) -> Event {
        Event {
            at_ms,
            actor: actor.into(),
            what,
        }
    }

    fn mail_trace(delivery: Delivery, from: &str, polled_with: Vec<u64>) -> Trace {
        let mut events = vec![
            at(100, "a#1", What::Connected),
            at(
                200,
                "a#1",
                What::Sent {
                    client_id: "a-1".into(),
                    to: "b".into(),
                },
            ),
            at(
                210,
                "a#1",
                What::Accepted {
                    client_id: "a-1".into(),
                    id: 1,
                    delivery,
                },
            ),
        ];
        if !polled_with.is_empty() {
            events.push(at(
                5_000,
                "b",
                What::Polled {
                    after: 0,
                    seqs: polled_with,
                },
            ));
            let what = What::Received {
                id: 1,
                from: from.into(),
                to: "b".into(),
                via: Via::Mailbox,
                duplicate: false,
            };
            events.push(at(5_000, "b", what));
        } else {
            events.push(at(
                5_000,
                "b",
                What::Polled {
                    after: 0,
                    seqs: vec![],
                },
            ));
        }
        events.push(at(10_000, "world", What::HealPhase));
        Trace { events }
    }

    #[test]
    fn a_correct_mailbox_delivery_passes() {
        assert_eq!(
            check_all(&mail_trace(Delivery::Polling, "a", vec![1]), &scenario()),
            vec![]
        );
    }

    #[test]
    fn a_forged_sender_is_m2() {
        let v = from_is_the_sender(&Facts::new(
            &mail_trace(Delivery::Polling, "mallory", vec![1]),
            &scenario(),
        ));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].clause, Clause::M2);
    }

    #[test]
    fn a_push_ack_for_an_offline_recipient_is_m4() {
        let v = offline_recipients_get_mail(&Facts::new(
            &mail_trace(Delivery::Websocket, "a", vec![1]),
            &scenario(),
        ));
        assert_eq!(
            v.iter().map(|v| v.clause).collect::<Vec<_>>(),
            vec![Clause::M4]
        );
    }

    #[test]
    fn a_poll_that_misses_a_stored_message_is_l1_and_its_loss_l2() {
        let trace = mail_trace(Delivery::Polling, "a", vec![]);
        let v = check_all(&trace, &scenario());
        let clauses: Vec<Clause> = v.iter().map(|v| v.clause).collect();
        assert!(clauses.contains(&Clause::L1), "{v:#?}");
        assert!(clauses.contains(&Clause::L2), "{v:#?}");
    }

    fn raw_trace(answer: What) -> Trace {
        Trace {
            events: vec![
                at(100, "a#1", What::Connected),
                at(
                    200,
                    "a#1",
                    What::SentRaw {
                        client_id: "a-1".into(),
                    },
                ),
                at(300, "a#1", answer),
            ],
        }
    }

    #[test]
    fn a_refused_malformed_send_passes_b1() {
        let refused = What::Refused {
            client_id: "a-1".into(),
            error: "bad payload".into(),
        };
        assert_eq!(
            bad_sends_are_refused(&Facts::new(&raw_trace(refused), &scenario())),
            vec![]
        );
    }

    #[test]
    fn an_accepted_or_unanswered_malformed_send_is_b1() {
        for answer in [
            What::Accepted {
                client_id: "a-1".into(),
                id: 7,
                delivery: Delivery::Polling,
            },
            What::AckLost {
                client_id: "a-1".into(),
                reason: "ack timeout".into(),
            },
        ] {
            let v = bad_sends_are_refused(&Facts::new(&raw_trace(answer), &scenario()));
            assert_eq!(
                v.iter().map(|v| v.clause).collect::<Vec<_>>(),
                vec![Clause::B1]
            );
        }
    }

    #[test]
    fn a_send_to_an_invalid_name_accepted_is_m2() {
        let trace = Trace {
            events: vec![
                at(100, "a#1", What::Connected),
                at(
                    200,
                    "a#1",
                    What::Sent {
                        client_id: "a-1".into(),
                        to: "no such/user".into(),
                    },
                ),
                at(
                    210,
                    "a#1",
                    What::Accepted {
                        client_id: "a-1".into(),
                        id: 1,
                        delivery: Delivery::Polling,
                    },
                ),
            ],
        };
        let v = bad_sends_are_refused(&Facts::new(&trace, &scenario()));
        assert_eq!(
            v.iter().map(|v| v.clause).collect::<Vec<_>>(),
            vec![Clause::M2]
        );
    }
}

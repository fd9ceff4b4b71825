//! The black-box rules `harness check` adds to the trace checkers. Unlike the
//! checkers they assume the check's own scenarios — a calm loopback network, a
//! script that knows who connects when — so they can ask for more: that a
//! session opens at all, that presence is announced, that a black hole is
//! noticed. Pure functions over a trace, like the checkers.

use crate::faults::FaultKind;
use crate::judge::{user_of, Facts, Violation};
use crate::scenario::OpenMode;
use crate::spec::Clause;
use crate::trace::{Event, What};
use crate::world::host_of;

/// A named rule and the clauses it judges (listed in `specs/clauses.json` as "checks").
pub struct Rule {
    /// Its name, as `specs/clauses.json` cites it.
    pub name: &'static str,
    /// The clauses its violations cite.
    pub clauses: &'static [Clause],
}

/// Every black-box rule and probe of `harness check`.
pub const RULES: &[Rule] = &[
    Rule {
        name: "http_probes",
        clauses: &[Clause::H1, Clause::T2, Clause::L1, Clause::L4, Clause::P4],
    },
    Rule {
        name: "handshake_probe",
        clauses: &[Clause::T1],
    },
    Rule {
        name: "sessions_open",
        clauses: &[Clause::T1],
    },
    Rule {
        name: "registered_are_listed",
        clauses: &[Clause::I1, Clause::I2],
    },
    Rule {
        name: "presence_is_announced",
        clauses: &[Clause::P1, Clause::P3],
    },
    Rule {
        name: "calm_deliveries",
        clauses: &[Clause::M1, Clause::M4],
    },
    Rule {
        name: "abuse_harms_nobody",
        clauses: &[Clause::B1],
    },
    Rule {
        name: "cursor_probe",
        clauses: &[Clause::L1, Clause::L2, Clause::L4, Clause::B1],
    },
    Rule {
        name: "reused_client_id_gets_no_old_ack",
        clauses: &[Clause::M1],
    },
    Rule {
        name: "one_argument_only",
        clauses: &[Clause::M1],
    },
    Rule {
        name: "from_is_never_the_payloads",
        clauses: &[Clause::M2],
    },
    Rule {
        name: "rust_socketio_flow",
        clauses: &[Clause::T1, Clause::P1, Clause::M2, Clause::P3],
    },
    Rule {
        name: "half_open_is_noticed",
        clauses: &[Clause::P3],
    },
    Rule {
        name: "secure_probes",
        clauses: &[
            Clause::H2,
            Clause::A1,
            Clause::A2,
            Clause::A3,
            Clause::A4,
            Clause::A5,
            Clause::A6,
        ],
    },
    Rule {
        name: "cluster_play",
        clauses: &[Clause::N1],
    },
    Rule {
        name: "every_node_agrees",
        clauses: &[Clause::N1],
    },
    Rule {
        name: "ids_increase",
        clauses: &[Clause::N1],
    },
    Rule {
        name: "one_mailbox",
        clauses: &[Clause::N1],
    },
    Rule {
        name: "retry_on_any_node",
        clauses: &[Clause::N1],
    },
    Rule {
        name: "sessions_stay",
        clauses: &[Clause::N2],
    },
    Rule {
        name: "foreign_session",
        clauses: &[Clause::N2],
    },
    Rule {
        name: "dead_node",
        clauses: &[Clause::N3],
    },
    Rule {
        name: "adapter_loss",
        clauses: &[Clause::N4],
    },
];

/// The abuser's ack ids for the two sends that share a `client_id` (M1).
pub const REUSED_ID_ACKS: (u64, u64) = (10, 11);
/// The abuser's ack id for the first send's content again under its
/// `client_id`, to another recipient (M1: a differing `to` is not a retry).
pub const REUSED_ID_OTHER_TO_ACK: u64 = 15;
/// The abuser's ack id for a `send_message` with two arguments (M1: one argument).
pub const TWO_ARGS_ACK: u64 = 12;
/// The abuser's ack id for a send whose payload claims another `from` (M2).
pub const FORGED_FROM_ACK: u64 = 13;
/// The abuser's ack id for an event nobody defines (B1: ignored, or `{error}`).
pub const UNKNOWN_EVENT_ACK: u64 = 14;

/// An acknowledgement the abuser received, with the request that asked for
/// it. Socket.IO pairs them by ack id (and namespace), not by order: an ack
/// may come in the window of a later frame, or after all of them, and a frame
/// may leave an earlier one's ack unanswered. Two requests under one id take
/// that id's acks in the order they were sent.
#[derive(Clone, Debug)]
pub struct AbuserAck<'t> {
    /// The exchange that sent the request.
    pub request: &'t Event,
    /// The request as recorded.
    pub request_text: &'t str,
    /// The ack frame (`43<id>[…]`, or `46…` binary), as recorded.
    pub ack: &'t str,
    /// The exchange in whose answer the ack arrived.
    pub answered: &'t Event,
    /// The ack's arguments, when its JSON is whole.
    pub args: Option<serde_json::Value>,
}

/// The `(namespace, ack id)` a packet carries, for an event or binary event
/// (`asks`) or an ack or binary ack (`!asks`): Socket.IO v5's
/// `<type>[<attachments>-][/<nsp>,][<id>]<json>`, after Engine.IO's `4`.
pub fn ack_key(packet: &str, asks: bool) -> Option<(&str, &str)> {
    let rest = packet.strip_prefix('4')?;
    let (plain, binary) = if asks { ('2', '5') } else { ('3', '6') };
    match rest.chars().next()? {
        c if c == plain => key_after_type(&rest[1..]),
        c if c == binary => key_after_type(rest[1..].split_once('-')?.1),
        _ => None,
    }
}

/// `[/<nsp>,]<id>[…` → `(nsp, id)`.
fn key_after_type(mut rest: &str) -> Option<(&str, &str)> {
    let mut nsp = "/";
    if rest.starts_with('/') {
        let (n, r) = rest.split_once(',')?;
        nsp = n;
        rest = r;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, after) = rest.split_at(digits);
    (!id.is_empty() && after.starts_with('[')).then_some((nsp, id))
}

/// Every ack the abuser received, attributed to its request by ack id.
pub fn abuser_acks<'t>(events: &'t [Event]) -> Vec<AbuserAck<'t>> {
    use std::collections::{BTreeMap, VecDeque};
    let mut waiting: BTreeMap<(&str, &str), VecDeque<(&Event, &str)>> = BTreeMap::new();
    let mut found = Vec::new();
    for event in events.iter().filter(|e| e.actor == "abuser") {
        let What::Exchange { request, answer } = &event.what else {
            continue;
        };
        // A packet of an unknown type (`4x106[…`) is keyed as if it were an
        // event: a server that reads it as one and acks it has accepted it.
        let key = ack_key(request, true).or_else(|| {
            let rest = request.strip_prefix('4')?;
            let mut chars = rest.chars();
            chars.next()?;
            key_after_type(chars.as_str())
        });
        if let Some(key) = key {
            waiting
                .entry(key)
                .or_default()
                .push_back((event, request.as_str()));
        }
        for frame in answer.split(" | ") {
            let Some(key) = ack_key(frame, false) else {
                continue;
            };
            let Some((asked, request_text)) = waiting.get_mut(&key).and_then(VecDeque::pop_front)
            else {
                continue; // an ack for nothing the abuser asked: not a message accepted
            };
            let args = frame
                .find('[')
                .and_then(|i| serde_json::from_str(&frame[i..]).ok());
            found.push(AbuserAck {
                request: asked,
                request_text,
                ack: frame,
                answered: event,
                args,
            });
        }
    }
    found
}

/// The evidence of an ack: its request, and the exchange it arrived in
/// when that is another.
fn ack_evidence(ack: &AbuserAck<'_>) -> Vec<Event> {
    let mut evidence = vec![ack.request.clone()];
    if !std::ptr::eq(ack.request, ack.answered) {
        evidence.push(ack.answered.clone());
    }
    evidence
}

/// M1: a `client_id` reused for a different message must not get the first
/// message's ack (refused with `{error}`, or accepted as a new message). The
/// abuser sends `{client_id: "m1"}` twice with different contents, ack ids
/// [`REUSED_ID_ACKS`]; its exchanges carry the answers.
pub fn reused_client_id_gets_no_old_ack(facts: &Facts<'_>) -> Vec<Violation> {
    let acks = abuser_acks(&facts.trace.events);
    let ack_of = |ack_id: u64| {
        let id = ack_id.to_string();
        acks.iter().find_map(|a| {
            (ack_key(a.request_text, true) == Some(("/", id.as_str()))).then(|| {
                (
                    a,
                    a.args
                        .as_ref()
                        .map_or(serde_json::Value::Null, |v| v[0].clone()),
                )
            })
        })
    };
    let Some((_, first)) = ack_of(REUSED_ID_ACKS.0) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (ack_id, differs) in [
        (REUSED_ID_ACKS.1, "content"),
        (REUSED_ID_OTHER_TO_ACK, "recipient"),
    ] {
        let Some((ack, again)) = ack_of(ack_id) else {
            continue;
        };
        if first["id"].is_u64() && again["id"] == first["id"] {
            found.push(Violation {
                clause: Clause::M1,
                at_ms: ack.answered.at_ms,
                message: format!(
                    "client_id \"m1\" reused for a message with another {differs} got the first message's ack {first}: that message is lost"
                ),
                evidence: ack_evidence(ack),
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

/// M1: `send_message` takes one argument; a second one makes the payload
/// wrong-shaped, to be refused with `{error}`, not accepted.
pub fn one_argument_only(facts: &Facts<'_>) -> Vec<Violation> {
    let id = TWO_ARGS_ACK.to_string();
    abuser_acks(&facts.trace.events)
        .iter()
        .filter(|a| {
            ack_key(a.request_text, true) == Some(("/", id.as_str())) && a.ack.contains("\"id\"")
        })
        .map(|a| Violation {
            clause: Clause::M1,
            at_ms: a.answered.at_ms,
            message:
                "send_message with two arguments was accepted: the contract's payload is one object"
                    .into(),
            evidence: ack_evidence(a),
            subject: Default::default(),
            ruling: None,
        })
        .collect()
}

/// T1, I1: every user whose handshake carries a valid name gets a session, and a
/// polling-first one upgrades to websocket.
pub fn sessions_open(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for spec in facts.scenario.users.iter().filter(|u| u.can_register()) {
        let label = format!("{}#1", spec.name);
        let Some(conn) = facts.conns.get(&label) else {
            continue; // never opened a socket
        };
        let mine: Vec<Event> = facts
            .trace
            .events
            .iter()
            .filter(|e| e.actor == label)
            .cloned()
            .collect();
        let problem = if conn.connected_at.is_none() {
            Some(format!(
                "{label} ({:?}, a valid username header) never completed the namespace CONNECT",
                spec.open
            ))
        } else if spec.open == OpenMode::PollingFirst
            && !mine.iter().any(|e| e.what == What::Upgraded)
        {
            Some(format!(
                "{label} opened over polling but the upgrade to websocket never completed"
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            let at_ms = mine.last().map_or(0, |e| e.at_ms);
            let evidence = mine.into_iter().take(6).collect();
            found.push(Violation {
                clause: Clause::T1,
                at_ms,
                message,
                evidence,
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

/// I1, I2: a user connected with a valid header shows in `/api/online` a second
/// after connecting (I2 for the names at the length bounds).
pub fn registered_are_listed(facts: &Facts<'_>, bounds: &[String]) -> Vec<Violation> {
    let mut found = Vec::new();
    for spec in facts.scenario.users.iter().filter(|u| u.can_register()) {
        let Some(conn) = facts.conns.get(&format!("{}#1", spec.name)) else {
            continue;
        };
        let (Some(from), until) = (conn.connected_at, conn.disconnected_at.unwrap_or(u64::MAX))
        else {
            continue;
        };
        let probe = facts.trace.events.iter().find(|e| {
            e.at_ms > from + 1_000 && e.at_ms < until && matches!(e.what, What::OnlineProbe { .. })
        });
        if let Some(
            probe @ Event {
                what: What::OnlineProbe { users },
                ..
            },
        ) = probe
        {
            if !users.contains(&spec.name) {
                let clause = if bounds.contains(&spec.name) {
                    Clause::I2
                } else {
                    Clause::I1
                };
                found.push(Violation {
                    clause,
                    at_ms: probe.at_ms,
                    message: format!(
                        "{} is connected with the valid username header {:?}, but /api/online leaves them out",
                        conn.label, spec.name
                    ),
                    evidence: facts
                        .trace
                        .events
                        .iter()
                        .filter(|e| e.actor == conn.label && e.what == What::Connected)
                        .chain(std::iter::once(probe))
                        .cloned()
                        .collect(),
                    subject: Default::default(),
                    ruling: None,
                });
            }
        }
    }
    found
}

/// P1, P3 on a calm network: when a user comes online (its first connection) or
/// goes offline (a client close of its last one), every connection of another
/// registered user that stays open hears `user_online` / `user_offline` within
/// `slack`.
pub fn presence_is_announced(facts: &Facts<'_>, slack: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    let registered: Vec<&str> = facts
        .scenario
        .users
        .iter()
        .filter(|u| u.can_register())
        .map(|u| u.name.as_str())
        .collect();
    for &name in &registered {
        let conns: Vec<_> = facts.conns.values().filter(|c| c.user == name).collect();
        let mut changes = Vec::new();
        if let Some(first) = conns.iter().filter_map(|c| c.connected_at).min() {
            changes.push((first, true));
        }
        let all_closed = conns
            .iter()
            .all(|c| c.disconnected_at.is_some() || c.connected_at.is_none());
        let last_close = conns.iter().filter_map(|c| c.disconnected_at).max();
        if let (true, Some(at)) = (all_closed, last_close) {
            changes.push((at, false));
        }
        for (at_ms, online) in changes {
            // Announcements due after the scenario's end have no evidence
            // either way (the run stopped every client).
            if at_ms + slack > facts.scenario.end_ms() {
                continue;
            }
            for watcher in facts.conns.values() {
                let watching = watcher.user != name
                    && registered.contains(&watcher.user.as_str())
                    && watcher.connected_at.is_some_and(|c| c + slack < at_ms)
                    && watcher.disconnected_at.is_none_or(|d| d > at_ms + slack);
                if !watching {
                    continue;
                }
                let heard = facts.trace.events.iter().any(|e| {
                    e.actor == watcher.label
                        && e.at_ms + slack >= at_ms
                        && e.at_ms <= at_ms + slack
                        && matches!(&e.what, What::Presence { username, online: o } if username == name && *o == online)
                });
                if !heard {
                    let cause = facts.trace.events.iter().find(|e| {
                        user_of(&e.actor) == name
                            && e.at_ms == at_ms
                            && matches!(e.what, What::Connected | What::Disconnected { .. })
                    });
                    found.push(Violation {
                        clause: if online { Clause::P1 } else { Clause::P3 },
                        at_ms: at_ms + slack,
                        message: format!(
                            "{} did not hear {} for {name} within {slack} ms",
                            watcher.label,
                            if online {
                                "user_online"
                            } else {
                                "user_offline"
                            }
                        ),
                        evidence: cause.into_iter().cloned().collect(),
                        subject: Default::default(),
                        ruling: None,
                    });
                }
            }
        }
    }
    found
}

/// M1, M4 on a calm network: a well-formed send from a registered connection to
/// a valid name is accepted; one to a user whose connections all closed is
/// acked `polling`.
pub fn calm_deliveries(facts: &Facts<'_>, slack: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    for (client_id, sent) in &facts.sent {
        let sender = user_of(&sent.conn);
        if !facts.can_register(sender) || !crate::contract::is_valid_username(&sent.to) {
            continue;
        }
        let answer = facts
            .trace
            .events
            .iter()
            .find(|e| matches!(&e.what, What::Refused { client_id: c, .. } if c == client_id));
        if let Some(refusal) = answer {
            found.push(Violation {
                clause: Clause::M1,
                at_ms: refusal.at_ms,
                message: format!(
                    "a well-formed send_message from registered {sender} to {} was refused",
                    sent.to
                ),
                evidence: vec![sent.event.clone(), refusal.clone()],
                subject: Default::default(),
                ruling: None,
            });
        }
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        let t = sent.event.at_ms;
        let conns: Vec<_> = facts.conns.values().filter(|c| c.user == sent.to).collect();
        let left = !conns.is_empty()
            && conns
                .iter()
                .all(|c| c.disconnected_at.is_some_and(|d| d + slack < t));
        if left && *delivery != crate::contract::Delivery::Polling {
            found.push(Violation {
                clause: Clause::M4,
                at_ms: ack.at_ms,
                message: format!(
                    "message {id} to {}, whose connections had all closed, was acked {delivery}",
                    sent.to
                ),
                evidence: vec![sent.event.clone(), ack.clone()],
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

/// B1: after the abuser's malformed packets, no other user's connection was
/// dropped by the server, and the server still answered `/health`.
///
/// `well_formed` are the abuser's requests (as recorded) that a server may
/// accept as messages; every other acknowledged with an `id` is a B1 failure.
pub fn abuse_harms_nobody(
    facts: &Facts<'_>,
    abuse_at_ms: u64,
    well_formed: &[String],
) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in &facts.trace.events {
        let dropped = matches!(&event.what, What::Disconnected { reason }
            if reason != "client close" && reason != "client crashed");
        if dropped
            && event.at_ms >= abuse_at_ms
            && facts.user_index(user_of(&event.actor)).is_some()
        {
            found.push(Violation {
                clause: Clause::B1,
                at_ms: event.at_ms,
                message: format!(
                    "{} lost its connection after another client's malformed packets",
                    event.actor
                ),
                evidence: vec![event.clone()],
                subject: Default::default(),
                ruling: None,
            });
        }
        if event.actor == "abuser" {
            if let What::Exchange { request, answer } = &event.what {
                if request.starts_with("GET /health") && !answer.starts_with("200") {
                    found.push(Violation {
                        clause: Clause::B1,
                        at_ms: event.at_ms,
                        message: "the server stopped answering /health after malformed packets"
                            .into(),
                        evidence: vec![event.clone()],
                        subject: Default::default(),
                        ruling: None,
                    });
                }
            }
        }
    }
    // Answers judged as the answers of the frames that asked for them.
    let unknown = UNKNOWN_EVENT_ACK.to_string();
    for ack in abuser_acks(&facts.trace.events) {
        if ack_key(ack.request_text, true) == Some(("/", unknown.as_str()))
            && !ack.args.as_ref().is_some_and(|a| a[0]["error"].is_string())
        {
            found.push(Violation {
                clause: Clause::B1,
                at_ms: ack.answered.at_ms,
                message: "an unknown event was answered, and not with {\"error\"}".into(),
                evidence: ack_evidence(&ack),
                subject: Default::default(),
                ruling: None,
            });
        }
        if !well_formed.iter().any(|w| w == ack.request_text) && ack.ack.contains("\"id\"") {
            found.push(Violation {
                clause: Clause::B1,
                at_ms: ack.answered.at_ms,
                message: format!(
                    "a malformed packet was acknowledged as an accepted message: {}",
                    ack.ack
                ),
                evidence: ack_evidence(&ack),
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

/// P3 under a black hole (or a link the server cannot write to, backpressure):
/// once the server's ping timeout must have fired, the silent user is no
/// longer listed and the other users heard `user_offline`.
pub fn half_open_is_noticed(facts: &Facts<'_>, victim: usize, silence_ms: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    let name = &facts.scenario.users[victim].name;
    let host = host_of(victim, facts.scenario.users.len());
    let Some(hole) = facts.scenario.faults.faults.iter().find(|f| {
        f.host == host && matches!(f.kind, FaultKind::Partition | FaultKind::Backpressure)
    }) else {
        return found;
    };
    let silent = match hole.kind {
        FaultKind::Backpressure => "has not been read",
        _ => "has been a black hole",
    };
    let noticed_by = hole.at_ms + silence_ms + 1_000;
    let probe = facts.trace.events.iter().rev().find(|e| {
        e.at_ms >= noticed_by
            && e.at_ms < hole.end_ms()
            && matches!(e.what, What::OnlineProbe { .. })
    });
    if let Some(
        probe @ Event {
            what: What::OnlineProbe { users },
            ..
        },
    ) = probe
    {
        if users.contains(name) {
            found.push(Violation {
                clause: Clause::P3,
                at_ms: probe.at_ms,
                message: format!(
                    "{name}'s link {silent} for {} ms, past pingInterval + pingTimeout, yet /api/online still lists them",
                    probe.at_ms - hole.at_ms
                ),
                evidence: vec![probe.clone()],
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    //! Each rule passes a trace that keeps it and fails one that breaks it.
    use super::*;
    use crate::contract::Delivery;
    use crate::faults::{Fault, FaultPlan};
    use crate::scenario::{Scenario, UserSpec};
    use crate::trace::Trace;

    fn scenario(users: &[&str]) -> Scenario {
        Scenario {
            seed: 0,
            users: users.iter().map(|u| UserSpec::node(u)).collect(),
            steps: Vec::new(),
            faults: FaultPlan::calm(),
            active_ms: 10_000,
            heal_ms: 5_000,
            open_world: true,
        }
    }

    fn at(at_ms: u64, actor: &str, what: What) -> Event {
        Event {
            at_ms,
            actor: actor.into(),
            what,
        }
    }

    fn attempt(at_ms: u64, actor: &str, open: OpenMode) -> Event {
        at(
            at_ms,
            actor,
            What::ConnectAttempt {
                open,
                header: crate::scenario::HeaderPolicy::Valid,
                header_sent: true,
            },
        )
    }

    fn clauses(v: &[Violation]) -> Vec<Clause> {
        v.iter().map(|v| v.clause).collect()
    }

    #[test]
    fn a_reused_client_id_answered_with_the_old_ack_is_m1() {
        let s = scenario(&["alice"]);
        let exchange = |ack_id: u64, answer: &str| {
            at(
                100 + ack_id,
                "abuser",
                What::Exchange {
                    request: format!("42{ack_id}[\"send_message\",{{\"client_id\":\"m1\"}}]"),
                    answer: answer.into(),
                },
            )
        };
        let trace = |second: &str| Trace {
            events: vec![
                exchange(10, r#"4310[{"id":7,"delivery":"polling"}]"#),
                exchange(11, second),
            ],
        };
        let old = trace(r#"4311[{"id":7,"delivery":"polling"}]"#);
        assert_eq!(
            clauses(&reused_client_id_gets_no_old_ack(&Facts::new(&old, &s))),
            vec![Clause::M1]
        );
        for fine in [
            r#"4311[{"error":"client_id already used"}]"#,
            r#"4311[{"id":8,"delivery":"polling"}]"#,
        ] {
            let t = trace(fine);
            assert!(
                reused_client_id_gets_no_old_ack(&Facts::new(&t, &s)).is_empty(),
                "{fine}"
            );
        }
        // The first message's content again, to another recipient: not a
        // retry either, so the old ack is M1 too.
        let other_to = Trace {
            events: vec![
                exchange(10, r#"4310[{"id":7,"delivery":"polling"}]"#),
                exchange(15, r#"4315[{"id":7,"delivery":"polling"}]"#),
            ],
        };
        let found = reused_client_id_gets_no_old_ack(&Facts::new(&other_to, &s));
        assert_eq!(clauses(&found), vec![Clause::M1]);
        assert!(found[0].message.contains("another recipient"), "{found:?}");
    }

    #[test]
    fn two_arguments_accepted_is_m1() {
        let s = scenario(&["alice"]);
        let trace = |answer: &str| Trace {
            events: vec![at(
                100,
                "abuser",
                What::Exchange {
                    request: format!("42{TWO_ARGS_ACK}[\"send_message\",{{}},\"extra\"]"),
                    answer: answer.into(),
                },
            )],
        };
        let accepted = trace(&format!(
            "43{TWO_ARGS_ACK}[{{\"id\":3,\"delivery\":\"polling\"}}]"
        ));
        assert_eq!(
            clauses(&one_argument_only(&Facts::new(&accepted, &s))),
            vec![Clause::M1]
        );
        let refused = trace(&format!("43{TWO_ARGS_ACK}[{{\"error\":\"one argument\"}}]"));
        assert!(one_argument_only(&Facts::new(&refused, &s)).is_empty());
    }

    #[test]
    fn sessions_open_wants_connect_and_upgrade() {
        let mut s = scenario(&["a", "b"]);
        s.users[1].open = OpenMode::PollingFirst;
        let ok = Trace {
            events: vec![
                attempt(0, "a#1", OpenMode::WebsocketFirst),
                at(10, "a#1", What::Connected),
                attempt(0, "b#1", OpenMode::PollingFirst),
                at(10, "b#1", What::Connected),
                at(20, "b#1", What::Upgraded),
            ],
        };
        assert_eq!(sessions_open(&Facts::new(&ok, &s)), vec![]);
        let broken = Trace {
            events: vec![
                attempt(0, "a#1", OpenMode::WebsocketFirst),
                at(
                    5_000,
                    "a#1",
                    What::OpenFailed {
                        reason: "timed out".into(),
                    },
                ),
                attempt(0, "b#1", OpenMode::PollingFirst),
                at(10, "b#1", What::Connected),
            ],
        };
        assert_eq!(
            clauses(&sessions_open(&Facts::new(&broken, &s))),
            vec![Clause::T1, Clause::T1]
        );
    }

    #[test]
    fn registered_users_must_be_listed() {
        let s = scenario(&["a", "bb"]);
        let probe = |users: &[&str]| Trace {
            events: vec![
                at(10, "a#1", What::Connected),
                at(10, "bb#1", What::Connected),
                at(
                    2_000,
                    "observer",
                    What::OnlineProbe {
                        users: users.iter().map(|u| u.to_string()).collect(),
                    },
                ),
            ],
        };
        let bounds = vec!["bb".to_owned()];
        assert_eq!(
            registered_are_listed(&Facts::new(&probe(&["a", "bb"]), &s), &bounds),
            vec![]
        );
        assert_eq!(
            clauses(&registered_are_listed(
                &Facts::new(&probe(&[]), &s),
                &bounds
            )),
            vec![Clause::I1, Clause::I2]
        );
    }

    #[test]
    fn presence_changes_must_be_announced() {
        let s = scenario(&["a", "b"]);
        let mut events = vec![
            at(0, "a#1", What::Connected),
            at(3_000, "b#1", What::Connected),
            at(
                6_000,
                "b#1",
                What::Disconnected {
                    reason: "client close".into(),
                },
            ),
        ];
        let silent = Trace {
            events: events.clone(),
        };
        assert_eq!(
            clauses(&presence_is_announced(&Facts::new(&silent, &s), 1_000)),
            vec![Clause::P1, Clause::P3]
        );
        events.push(at(
            3_001,
            "a#1",
            What::Presence {
                username: "b".into(),
                online: true,
            },
        ));
        events.push(at(
            6_001,
            "a#1",
            What::Presence {
                username: "b".into(),
                online: false,
            },
        ));
        events.sort_by_key(|e| e.at_ms);
        assert_eq!(
            presence_is_announced(&Facts::new(&Trace { events }, &s), 1_000),
            vec![]
        );
    }

    #[test]
    fn a_user_who_left_gets_mail_not_pushes() {
        let s = scenario(&["a", "b"]);
        let trace = |delivery| Trace {
            events: vec![
                at(0, "a#1", What::Connected),
                at(0, "b#1", What::Connected),
                at(
                    1_000,
                    "b#1",
                    What::Disconnected {
                        reason: "client close".into(),
                    },
                ),
                at(
                    5_000,
                    "a#1",
                    What::Sent {
                        client_id: "a-1".into(),
                        to: "b".into(),
                    },
                ),
                at(
                    5_001,
                    "a#1",
                    What::Accepted {
                        client_id: "a-1".into(),
                        id: 1,
                        delivery,
                    },
                ),
            ],
        };
        assert_eq!(
            calm_deliveries(&Facts::new(&trace(Delivery::Polling), &s), 1_000),
            vec![]
        );
        assert_eq!(
            clauses(&calm_deliveries(
                &Facts::new(&trace(Delivery::Websocket), &s),
                1_000
            )),
            vec![Clause::M4]
        );
    }

    #[test]
    fn a_well_formed_send_refused_is_m1() {
        let s = scenario(&["a", "b"]);
        let trace = Trace {
            events: vec![
                at(0, "a#1", What::Connected),
                at(
                    100,
                    "a#1",
                    What::Sent {
                        client_id: "a-1".into(),
                        to: "b".into(),
                    },
                ),
                at(
                    101,
                    "a#1",
                    What::Refused {
                        client_id: "a-1".into(),
                        error: "too long".into(),
                    },
                ),
            ],
        };
        assert_eq!(
            clauses(&calm_deliveries(&Facts::new(&trace, &s), 1_000)),
            vec![Clause::M1]
        );
    }

    #[test]
    fn abuse_that_drops_others_or_health_is_b1() {
        let s = scenario(&["a"]);
        let health = |answer: &str| {
            at(
                4_000,
                "abuser",
                What::Exchange {
                    request: "GET /health".into(),
                    answer: answer.into(),
                },
            )
        };
        let calm = Trace {
            events: vec![
                at(0, "a#1", What::Connected),
                health("200 {\"status\":\"ok\"}"),
            ],
        };
        assert_eq!(
            abuse_harms_nobody(&Facts::new(&calm, &s), 3_000, &[]),
            vec![]
        );
        let harmed = Trace {
            events: vec![
                at(0, "a#1", What::Connected),
                at(
                    3_500,
                    "a#1",
                    What::Disconnected {
                        reason: "transport close".into(),
                    },
                ),
                health("error: connect: Connection refused"),
            ],
        };
        assert_eq!(
            clauses(&abuse_harms_nobody(&Facts::new(&harmed, &s), 3_000, &[])),
            vec![Clause::B1, Clause::B1]
        );
    }

    #[test]
    fn an_unknown_event_answered_other_than_error_or_a_malformed_frame_accepted_is_b1() {
        let s = scenario(&["a"]);
        let exchange = |request: &str, answer: &str| Trace {
            events: vec![at(
                4_000,
                "abuser",
                What::Exchange {
                    request: request.into(),
                    answer: answer.into(),
                },
            )],
        };
        let unknown = format!("42{UNKNOWN_EVENT_ACK}[\"no_such_event\",{{}}]");
        let judge = |trace: &Trace, well_formed: &[String]| {
            clauses(&abuse_harms_nobody(
                &Facts::new(trace, &s),
                3_000,
                well_formed,
            ))
        };
        let refused = exchange(
            &unknown,
            &format!("43{UNKNOWN_EVENT_ACK}[{{\"error\":\"no\"}}]"),
        );
        assert_eq!(judge(&refused, &[]), vec![]);
        assert_eq!(judge(&exchange(&unknown, "(nothing)"), &[]), vec![]);
        let answered = exchange(&unknown, &format!("43{UNKNOWN_EVENT_ACK}[\"ok\"]"));
        assert_eq!(judge(&answered, &[]), vec![Clause::B1]);
        let sent = "42100[\"send_message\",{}]";
        let accepted = exchange(sent, "43100[{\"id\":3,\"delivery\":\"polling\"}]");
        assert_eq!(judge(&accepted, &[]), vec![Clause::B1]);
        assert_eq!(judge(&accepted, &[sent.to_owned()]), vec![]);
    }

    #[test]
    fn an_answer_is_judged_as_the_answer_of_the_frame_whose_ack_id_it_carries() {
        // Issue 29's run: a binary event announcing an attachment that never
        // came; python-socketio took the next frame as the attachment and
        // acked 105, in the window of frame 106. 105 is well-formed enough
        // to be accepted as it was rebuilt; 106 was never acked.
        let s = scenario(&["a"]);
        let ex = |at_ms: u64, request: &str, answer: &str| {
            at(
                at_ms,
                "abuser",
                What::Exchange {
                    request: request.into(),
                    answer: answer.into(),
                },
            )
        };
        let binary = r#"451-105["send_message",{"client_id":"fz-bin-105","content":{"_placeholder":true,"num":0},"to":"sink"}]"#;
        let typed = r#"4 106["send_message",{"client_id":"fz-type-106"}]"#;
        let trace = Trace {
            events: vec![
                ex(6_822, binary, "(nothing)"),
                ex(7_074, typed, r#"43105[{"id":17,"delivery":"polling"}]"#),
            ],
        };
        let acks = abuser_acks(&trace.events);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].request_text, binary, "attributed to 105, not 106");
        assert_eq!(acks[0].answered.at_ms, 7_074);
        // Judged as 105's answer: with 105 allowed to be accepted, nothing;
        // without, B1 blames 105 with both exchanges as evidence.
        let judge = |well_formed: &[String]| {
            abuse_harms_nobody(&Facts::new(&trace, &s), 3_000, well_formed)
        };
        assert_eq!(judge(&[binary.to_owned()]), vec![]);
        let found = judge(&[typed.to_owned()]);
        assert_eq!(clauses(&found), vec![Clause::B1]);
        assert_eq!(found[0].evidence.len(), 2, "{found:?}");
        // A late ack in the abuser's last read is attributed all the same;
        // two requests under one id take its acks in order.
        let dup = r#"42107["send_message",{"client_id":"fz-dup-107"}]"#;
        let dup2 = r#"42107["send_message",{"content":7}]"#;
        let trace = Trace {
            events: vec![
                ex(1, dup, "(nothing)"),
                ex(2, dup2, r#"43107[{"id":4,"delivery":"polling"}]"#),
                ex(3, "(late answers)", r#"2 | 43107[{"error":"content"}]"#),
            ],
        };
        let acks = abuser_acks(&trace.events);
        assert_eq!(
            acks.iter()
                .map(|a| (a.request_text, a.ack))
                .collect::<Vec<_>>(),
            vec![
                (dup, r#"43107[{"id":4,"delivery":"polling"}]"#),
                (dup2, r#"43107[{"error":"content"}]"#)
            ]
        );
        assert_eq!(
            abuse_harms_nobody(&Facts::new(&trace, &s), 0, &[dup.to_owned()]),
            vec![]
        );
        // Keys: namespaces, binary types, unknown types read as events.
        assert_eq!(ack_key("42/chat,7[1]", true), Some(("/chat", "7")));
        assert_eq!(ack_key("461-9[{}]", false), Some(("/", "9")));
        assert_eq!(ack_key("42[\"x\"]", true), None);
        assert_eq!(ack_key("4299", true), None);
        let unknown = Trace {
            events: vec![ex(1, "4x108[\"send_message\",{}]", r#"43108[{"id":1}]"#)],
        };
        assert_eq!(
            clauses(&abuse_harms_nobody(&Facts::new(&unknown, &s), 0, &[])),
            vec![Clause::B1]
        );
    }

    #[test]
    fn a_black_hole_must_be_noticed_by_the_ping_timeout() {
        let mut s = scenario(&["a", "b"]);
        s.faults.faults = vec![Fault {
            at_ms: 1_000,
            duration_ms: 10_000,
            host: host_of(1, 2),
            kind: FaultKind::Partition,
        }];
        let probe = |users: &[&str]| Trace {
            events: vec![at(
                5_000,
                "observer",
                What::OnlineProbe {
                    users: users.iter().map(|u| u.to_string()).collect(),
                },
            )],
        };
        assert_eq!(
            half_open_is_noticed(&Facts::new(&probe(&["a"]), &s), 1, 2_000),
            vec![]
        );
        assert_eq!(
            clauses(&half_open_is_noticed(
                &Facts::new(&probe(&["a", "b"]), &s),
                1,
                2_000
            )),
            vec![Clause::P3]
        );
    }
}

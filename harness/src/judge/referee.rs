//! The referee: whose fault is a violation? The checkers judge what clients
//! saw; a server that tells its own side (`ServerEnv::record`, which the
//! reference server does) lets the referee compare the two for the same
//! connection and message:
//!
//! - **server**: the server's own record contradicts the contract (it still
//!   counts a connection the client closed long ago, it acked `polling` while
//!   its own record counts the recipient registered, it stored nothing after
//!   an unacked push …);
//! - **harness**: the client's bookkeeping contradicts the server's record of
//!   the same connection (a session the server closed and the client never
//!   heard from again, still counted open) — a bug of ours, top priority;
//! - **undetermined**: the server recorded nothing, or the records agree and
//!   the fault lies between them (the network, timing).

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Facts, Violation};
use crate::spec::Clause;
use crate::trace::{ServerEvent, ServerRecord, What};
use crate::world::ServerTimers;

/// Whose fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blame {
    /// The server's own record contradicts the contract.
    Server,
    /// The harness's client contradicts the server's record.
    Harness,
    /// Nothing decides it.
    Undetermined,
}

impl Blame {
    /// As printed beside a violation.
    pub fn name(self) -> &'static str {
        match self {
            Blame::Server => "server",
            Blame::Harness => "harness",
            Blame::Undetermined => "undetermined",
        }
    }
}

/// The referee's ruling on one violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruling {
    /// Whose fault.
    pub blame: Blame,
    /// Why, in one sentence citing the server's record.
    pub why: String,
}

/// How long past the client's own close a server may take to notice a dead
/// peer before its record is wrong: the heartbeat, and slack.
fn notice_ms(timers: &ServerTimers) -> u64 {
    timers.dead_peer_ms().saturating_add(5_000)
}

/// One connection in the server's record: user, registered at, and when
/// and why it was unregistered.
type ConnRecord<'a> = (&'a str, u64, Option<(u64, &'a str)>);

/// The server's record, indexed.
struct Record<'a> {
    log: &'a [ServerRecord],
    /// sid → (user, registered at, unregistered at and why), in the order
    /// the server first registered them. A sid is the server's own random id
    /// (engineioxide draws it from the OS), so the sids' own order differs
    /// from run to run of the same seed; a ruling that names one connection
    /// of several goes by registration order instead.
    conns: IndexMap<&'a str, ConnRecord<'a>>,
}

impl<'a> Record<'a> {
    fn new(log: &'a [ServerRecord]) -> Self {
        let mut conns = IndexMap::new();
        for r in log {
            match &r.event {
                // A sid registered again keeps its first place.
                ServerEvent::Registered { user, sid } => {
                    conns.insert(sid.as_str(), (user.as_str(), r.at_ms, None));
                }
                ServerEvent::Unregistered { sid, reason, .. } => {
                    if let Some(conn) = conns.get_mut(sid.as_str()) {
                        conn.2 = Some((r.at_ms, reason.as_str()));
                    }
                }
                // The process's memory went with it: nothing it counted
                // counts any more.
                ServerEvent::Restarted { .. } => {
                    for conn in conns.values_mut().filter(|c| c.2.is_none()) {
                        conn.2 = Some((r.at_ms, "server restart"));
                    }
                }
                _ => {}
            }
        }
        Self { log, conns }
    }

    /// The sids the server counts registered for `user` at `at_ms`, in
    /// registration order.
    fn registered(&self, user: &str, at_ms: u64) -> Vec<&'a str> {
        self.conns
            .iter()
            .filter(|(_, (u, since, gone))| {
                *u == user && *since <= at_ms && gone.is_none_or(|(t, _)| t > at_ms)
            })
            .map(|(sid, _)| *sid)
            .collect()
    }

    fn message(&self, id: u64) -> impl Iterator<Item = &'a ServerRecord> + '_ {
        self.log.iter().filter(move |r| match &r.event {
            ServerEvent::Accepted { id: i, .. }
            | ServerEvent::Pushed { id: i, .. }
            | ServerEvent::PushAcked { id: i }
            | ServerEvent::Stored { id: i, .. } => *i == id,
            _ => false,
        })
    }
}

/// Rules on every violation in place. Without a server record every ruling
/// is `undetermined`.
pub fn rule_all(
    violations: &mut [Violation],
    facts: &Facts<'_>,
    log: &[ServerRecord],
    sids: &BTreeMap<String, String>,
    timers: &ServerTimers,
) {
    let referee = Referee {
        facts,
        record: Record::new(log),
        labels: sids.iter().map(|(l, s)| (s.as_str(), l.as_str())).collect(),
        timers,
    };
    for v in violations.iter_mut() {
        v.ruling = Some(if log.is_empty() {
            ruling(
                Blame::Undetermined,
                "the server recorded nothing of its own",
            )
        } else {
            referee.rule(v)
        });
    }
}

fn ruling(blame: Blame, why: impl Into<String>) -> Ruling {
    Ruling {
        blame,
        why: why.into(),
    }
}

struct Referee<'a> {
    facts: &'a Facts<'a>,
    record: Record<'a>,
    /// sid → connection label.
    labels: BTreeMap<&'a str, &'a str>,
    timers: &'a ServerTimers,
}

impl Referee<'_> {
    fn rule(&self, v: &Violation) -> Ruling {
        let user = v.subject.user.as_deref();
        match (v.clause, user, v.subject.message) {
            (Clause::I3 | Clause::A1 | Clause::A2, Some(user), _) => self.identity(v, user),
            (Clause::P1 | Clause::P2 | Clause::P3 | Clause::P4, Some(user), _) => {
                self.presence(v, user)
            }
            (
                Clause::M3 | Clause::M4 | Clause::L1 | Clause::M5 | Clause::L2 | Clause::L4,
                Some(user),
                Some(id),
            ) => self.delivery(v, user, id),
            (Clause::M2 | Clause::B1, _, _) => ruling(
                Blame::Server,
                "ids, senders and refusals are the server's alone: no client can cause them",
            ),
            _ => ruling(Blame::Undetermined, "no subject to compare records on"),
        }
    }

    /// The client's label of the server's connection `sid`. One no client
    /// learned of goes by when it was registered: a sid is random, and a
    /// report of the same seed must read the same.
    fn label(&self, sid: &str) -> String {
        match (self.labels.get(sid), self.record.conns.get(sid)) {
            (Some(label), _) => (*label).to_owned(),
            (None, Some((user, since, _))) => {
                format!("a connection no client knew of ({user}, registered at {since} ms)")
            }
            (None, None) => "a connection no client knew of".to_owned(),
        }
    }

    /// I3 (A1, A2 in v2): did the server register the unnamed connection (or
    /// a name)?
    fn identity(&self, v: &Violation, user: &str) -> Ruling {
        let registered: Vec<(&str, &str)> = self
            .record
            .conns
            .iter()
            .filter(|(sid, (u, since, _))| {
                *since <= v.at_ms
                    && (v
                        .subject
                        .conn
                        .as_deref()
                        .is_some_and(|c| self.labels.get(*sid) == Some(&c))
                        || (*u == user && !self.facts.can_register(u)))
            })
            .map(|(sid, (u, _, _))| (*sid, *u))
            .collect();
        match registered.first() {
            Some((sid, as_user)) => ruling(
                Blame::Server,
                format!(
                    "the server's own record registered {} as {as_user} without a valid identity",
                    self.label(sid)
                ),
            ),
            None => ruling(
                Blame::Undetermined,
                "the server's record shows no such registration",
            ),
        }
    }

    /// P1–P4: compare the server's registrations of `user` with the clients'.
    fn presence(&self, v: &Violation, user: &str) -> Ruling {
        let at = v.at_ms;
        let server_open = self.record.registered(user, at);
        let client_open: Vec<&str> = self
            .facts
            .conns_of(user)
            .filter(|c| c.is_open_at(at) && self.facts.can_register(user))
            .map(|c| c.label.as_str())
            .collect();
        // A server whose record counts a connection the client closed long ago
        // never unregistered it.
        for sid in &server_open {
            let label = self.label(sid);
            if let Some(closed) = self.facts.conns.get(&label).and_then(|c| c.disconnected_at) {
                if at.saturating_sub(closed) > notice_ms(self.timers) {
                    return ruling(
                        Blame::Server,
                        format!(
                            "its own record still counts {label} registered {} ms after the client closed it",
                            at - closed
                        ),
                    );
                }
            }
        }
        let says_online = !server_open.is_empty();
        let truly_online = !client_open.is_empty();
        if says_online == truly_online {
            let why = if says_online {
                format!(
                    "its own record counts {} registered connection(s) of {user}, as the clients do, yet it reported {user} offline",
                    server_open.len()
                )
            } else {
                format!("its own record has no registered connection of {user}, as the clients see it, yet it reported {user} online")
            };
            return ruling(Blame::Server, why);
        }
        if truly_online {
            // The client counts a connection open that the server closed.
            for label in client_open {
                let Some((sid, _)) = self.labels.iter().find(|(_, l)| **l == label) else {
                    continue;
                };
                let Some((_, _, Some((gone_at, reason)))) = self.record.conns.get(sid) else {
                    continue;
                };
                let heard_after = self.facts.trace.events.iter().any(|e| {
                    e.actor == label
                        && e.at_ms > gone_at.saturating_add(1_000)
                        && !matches!(e.what, What::Disconnected { .. })
                });
                return if heard_after {
                    ruling(
                        Blame::Server,
                        format!("it unregistered {label} at {gone_at} ms ({reason}) while that connection kept delivering events"),
                    )
                } else {
                    ruling(
                        Blame::Harness,
                        format!("the client still counts {label} open, but the server closed it at {gone_at} ms ({reason}) and the client heard nothing on it after"),
                    )
                };
            }
            return ruling(
                Blame::Undetermined,
                format!("no record of how the server lost {user}'s connection"),
            );
        }
        ruling(
            Blame::Undetermined,
            format!("the server counts {user} registered but no client connection matches"),
        )
    }

    /// M3–M5, L1, L2: what the server did with message `id`.
    fn delivery(&self, v: &Violation, user: &str, id: u64) -> Ruling {
        let records: Vec<&ServerRecord> = self.record.message(id).collect();
        let accepted = records.iter().find_map(|r| match &r.event {
            ServerEvent::Accepted { delivery, .. } => Some((r.at_ms, delivery.as_str())),
            _ => None,
        });
        let pushed = records
            .iter()
            .any(|r| matches!(r.event, ServerEvent::Pushed { .. }));
        let acked = records
            .iter()
            .any(|r| matches!(r.event, ServerEvent::PushAcked { .. }));
        let stored = records.iter().find_map(|r| match &r.event {
            ServerEvent::Stored { reason, .. } => Some((r.at_ms, reason.as_str())),
            _ => None,
        });
        let Some((accepted_at, delivery)) = accepted else {
            return ruling(Blame::Undetermined, format!("no record of message {id}"));
        };
        match v.clause {
            Clause::M3 if delivery == "polling" => {
                let registered = self.record.registered(user, accepted_at);
                if registered.is_empty() {
                    ruling(Blame::Undetermined, format!("its own record counted no registered connection of {user} when it accepted {id}"))
                } else {
                    ruling(Blame::Server, format!("it acked {id} polling while its own record counted {} of {user} registered", self.label(registered[0])))
                }
            }
            Clause::M3 if !pushed => ruling(Blame::Server, format!("it acked {id} websocket and never pushed it")),
            Clause::M3 => ruling(Blame::Undetermined, format!("it pushed {id}; the delay lies between the records")),
            Clause::M4 if delivery == "websocket" => {
                let registered = self.record.registered(user, accepted_at);
                match registered.first() {
                    Some(sid) => ruling(Blame::Server, format!("it acked {id} websocket, counting {} registered, which the client could not have kept open", self.label(sid))),
                    None => ruling(Blame::Server, format!("it acked {id} websocket with no registered connection of {user} in its own record")),
                }
            }
            Clause::M5 | Clause::L2 if stored.is_none() && !acked => ruling(
                Blame::Server,
                format!("it never recorded an ack for {id}, nor stored it in {user}'s mailbox"),
            ),
            Clause::M5 | Clause::L2 if acked && stored.is_none() => ruling(
                Blame::Harness,
                format!("the server recorded {user}'s ack of {id}, yet the client never recorded receiving it"),
            ),
            Clause::L1 | Clause::M5 | Clause::L2 | Clause::L4 => match stored {
                Some((at, reason)) => {
                    let polled_after = self.facts.trace.events.iter().any(|e| {
                        e.actor == user && e.at_ms > at && matches!(e.what, What::Polled { .. })
                    });
                    if polled_after {
                        ruling(Blame::Server, format!("it stored {id} at {at} ms ({reason}) and a later successful poll of {user} did not return it"))
                    } else {
                        ruling(Blame::Undetermined, format!("it stored {id} at {at} ms; {user} never polled successfully after"))
                    }
                }
                None => ruling(Blame::Undetermined, format!("no store of {id} in the server's record")),
            },
            _ => ruling(Blame::Undetermined, "nothing in the record decides it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultPlan;
    use crate::judge::check_all;
    use crate::scenario::{Scenario, UserSpec};
    use crate::trace::{Event, Trace};

    fn scenario() -> Scenario {
        Scenario {
            seed: 0,
            users: vec![UserSpec::node("alice"), UserSpec::node("bob")],
            steps: vec![],
            faults: FaultPlan::calm(),
            active_ms: 10_000,
            heal_ms: 100_000,
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

    fn server(at_ms: u64, event: ServerEvent) -> ServerRecord {
        ServerRecord { at_ms, event }
    }

    /// alice#1 connected, the server timed it out at 50 s, and /api/online
    /// leaves alice out at the end; `more` is what alice#1 saw meanwhile.
    fn rule_p2(more: Vec<Event>) -> Ruling {
        let mut events = vec![at(100, "alice#1", What::Connected)];
        events.extend(more);
        events.push(at(10_000, "world", What::HealPhase));
        events.push(at(100_000, "observer", What::OnlineProbe { users: vec![] }));
        let trace = Trace { events };
        let s = scenario();
        let log = vec![
            server(
                90,
                ServerEvent::Registered {
                    user: "alice".into(),
                    sid: "A".into(),
                },
            ),
            server(
                50_000,
                ServerEvent::Unregistered {
                    user: "alice".into(),
                    sid: "A".into(),
                    reason: "HeartbeatTimeout".into(),
                },
            ),
        ];
        let sids = BTreeMap::from([("alice#1".to_owned(), "A".to_owned())]);
        let facts = Facts::new(&trace, &s);
        let mut violations = check_all(&trace, &s);
        let p2 = violations
            .iter()
            .position(|v| v.clause == Clause::P2 && v.subject.user.as_deref() == Some("alice"))
            .expect("the checkers see alice left out");
        rule_all(
            &mut violations,
            &facts,
            &log,
            &sids,
            &ServerTimers::default(),
        );
        violations.swap_remove(p2).ruling.expect("ruled")
    }

    #[test]
    fn a_session_the_server_closed_and_the_client_never_heard_from_again_is_the_harness() {
        // The client's bookkeeping still counts alice#1 open although the
        // server closed it and nothing arrived on it after: a harness bug.
        let r = rule_p2(vec![]);
        assert_eq!(r.blame, Blame::Harness, "{r:?}");
        assert!(r.why.contains("alice#1"), "{r:?}");
    }

    #[test]
    fn unregistering_a_connection_that_still_delivers_is_the_server() {
        let r = rule_p2(vec![at(
            70_000,
            "alice#1",
            What::Presence {
                username: "bob".into(),
                online: true,
            },
        )]);
        assert_eq!(r.blame, Blame::Server, "{r:?}");
    }

    /// Two connections the server registered without an identity: the ruling
    /// names the first one registered, whatever the order of their random
    /// sids (here the later one's sorts first). It named the first by sid,
    /// so `harness sim --bug register_anonymous` printed another connection
    /// from run to run of the same seed.
    #[test]
    fn a_ruling_names_connections_in_registration_order_not_sid_order() {
        let trace = Trace {
            events: vec![
                at(100, "bob#1", What::Connected),
                at(200, "alice#2", What::Connected),
            ],
        };
        let s = scenario();
        let log = vec![
            server(
                100,
                ServerEvent::Registered {
                    user: "anonymous".into(),
                    sid: "Zz".into(),
                },
            ),
            server(
                200,
                ServerEvent::Registered {
                    user: "anonymous".into(),
                    sid: "Aa".into(),
                },
            ),
        ];
        let sids = BTreeMap::from([
            ("bob#1".to_owned(), "Zz".to_owned()),
            ("alice#2".to_owned(), "Aa".to_owned()),
        ]);
        let mut violations = vec![crate::judge::violation(
            Clause::I3,
            300,
            "'anonymous' was reported online".into(),
            vec![],
        )
        .user("anonymous")];
        rule_all(
            &mut violations,
            &Facts::new(&trace, &s),
            &log,
            &sids,
            &ServerTimers::default(),
        );
        let r = violations[0].ruling.as_ref().expect("ruled");
        assert_eq!(r.blame, Blame::Server, "{r:?}");
        assert!(r.why.contains("registered bob#1 as anonymous"), "{r:?}");
    }

    #[test]
    fn without_a_server_record_every_ruling_is_undetermined() {
        let trace = Trace {
            events: vec![
                at(100, "alice#1", What::Connected),
                at(10_000, "world", What::HealPhase),
                at(100_000, "observer", What::OnlineProbe { users: vec![] }),
            ],
        };
        let s = scenario();
        let mut violations = check_all(&trace, &s);
        assert!(!violations.is_empty());
        rule_all(
            &mut violations,
            &Facts::new(&trace, &s),
            &[],
            &BTreeMap::new(),
            &ServerTimers::default(),
        );
        assert!(violations
            .iter()
            .all(|v| v.ruling.as_ref().map(|r| r.blame) == Some(Blame::Undetermined)));
    }
}

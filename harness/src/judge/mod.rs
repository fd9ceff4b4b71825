//! The invariant checkers (the judge of a trace): pure functions over a trace and the scenario that
//! produced it. A violation is data — clause, time, evidence — never a panic.
//! Safety checks look at the whole run; liveness checks (no loss, presence
//! convergence) only at what must hold once the heal phase has run its course.

mod delivery;
mod facts;
mod identity;
mod presence;
pub mod referee;
mod summary;

pub use delivery::{
    nothing_accepted_is_lost, offline_recipients_get_mail, online_recipients_get_pushes,
};
pub use facts::{user_of, Conn, Facts, Sent};
pub use identity::{bad_sends_are_refused, from_is_the_sender, unregistered_stay_unregistered};
pub use presence::{presence_converges, valid_users_connect};
pub use summary::{summarize, Summary};

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::spec::Clause;
use crate::trace::{Event, Trace};

/// M3's bound on push latency over a healthy network.
pub const PUSH_BOUND_MS: u64 = 100;
/// A link crossing's rounding up to the simulation's step (10 ms).
pub const TICK_SLACK_MS: u64 = 10;
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
    /// Whom it is about: a user, a connection, a message (the referee and the
    /// evidence renderer read it).
    #[serde(default, skip_serializing_if = "Subject::is_empty")]
    pub subject: Subject,
    /// The referee's ruling: whose fault it is, when the server told its side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruling: Option<referee::Ruling>,
}

/// Whom a violation is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The user whose state is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The connection (`user#n`) that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<String>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<u64>,
}

impl Subject {
    /// Nothing known.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.conn.is_none() && self.message.is_none()
    }
}

impl Violation {
    /// About this user.
    pub fn user(mut self, user: &str) -> Self {
        self.subject.user = Some(user.to_owned());
        self
    }

    /// Seen by this connection.
    pub fn conn(mut self, label: &str) -> Self {
        self.subject.conn = Some(label.to_owned());
        self
    }

    /// About this message.
    pub fn message_id(mut self, id: u64) -> Self {
        self.subject.message = Some(id);
        self
    }
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
        clauses: &[Clause::I3, Clause::A1, Clause::A2],
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
        clauses: &[Clause::M2, Clause::A5],
        check: from_is_the_sender,
    },
    Checker {
        name: "bad_sends_are_refused",
        clauses: &[Clause::M2, Clause::B1],
        check: bad_sends_are_refused,
    },
    Checker {
        name: "nothing_accepted_is_lost",
        clauses: &[Clause::M5, Clause::L2, Clause::L4],
        check: nothing_accepted_is_lost,
    },
    Checker {
        name: "valid_users_connect",
        clauses: &[Clause::T1, Clause::P1],
        check: valid_users_connect,
    },
    Checker {
        name: "presence_converges",
        clauses: &[Clause::P1, Clause::P2, Clause::P3, Clause::P4],
        check: presence_converges,
    },
];

/// Every checker over one trace, violations sorted by time then clause.
pub fn check_all(trace: &Trace, scenario: &Scenario) -> Vec<Violation> {
    run_checkers(&Facts::new(trace, scenario))
}

/// Every checker over indexed facts, violations sorted by time then clause.
fn run_checkers(facts: &Facts<'_>) -> Vec<Violation> {
    let mut violations: Vec<Violation> = CHECKERS.iter().flat_map(|c| (c.check)(facts)).collect();
    violations.sort_by_key(|v| (v.at_ms, v.clause));
    violations
}

/// Every checker over a simulated run, then the referee's ruling on each
/// violation from the server's own record (when it kept one).
pub fn judge_run(
    outcome: &crate::world::Outcome,
    scenario: &Scenario,
    timers: &crate::world::ServerTimers,
) -> Vec<Violation> {
    let facts = Facts::new(&outcome.trace, scenario);
    let mut violations = run_checkers(&facts);
    referee::rule_all(
        &mut violations,
        &facts,
        &outcome.server_log,
        &outcome.sids,
        timers,
    );
    violations
}

/// A violation of `clause`, visible at `at_ms`.
pub(crate) fn violation(
    clause: Clause,
    at_ms: u64,
    message: String,
    evidence: Vec<Event>,
) -> Violation {
    Violation {
        clause,
        at_ms,
        message,
        evidence,
        subject: Subject::default(),
        ruling: None,
    }
}

#[cfg(test)]
mod tests {
    //! M2, M4 and L1 have no reference-server bug switch; hand-built traces
    //! prove their checkers can fail.
    use super::*;
    use crate::contract::Delivery;
    use crate::faults::{FaultKind, FaultPlan};
    use crate::scenario::{HeaderPolicy, OpenMode, UserSpec};
    use crate::trace::{Via, What};

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

    /// b's poll after `after`, answered at `at_ms` with `seqs`.
    fn polled(at_ms: u64, after: u64, seqs: Vec<u64>) -> Event {
        at(at_ms, "b", What::Polled { after, seqs })
    }

    /// a#1 sends `a-{n}` to b at `at_ms`; it is accepted as message `n`
    /// 10 ms later.
    fn sent_and_accepted(at_ms: u64, n: u64, delivery: Delivery) -> [Event; 2] {
        [
            at(
                at_ms,
                "a#1",
                What::Sent {
                    client_id: format!("a-{n}"),
                    to: "b".into(),
                },
            ),
            at(
                at_ms + 10,
                "a#1",
                What::Accepted {
                    client_id: format!("a-{n}"),
                    id: n,
                    delivery,
                },
            ),
        ]
    }

    fn mail_trace(delivery: Delivery, from: &str, polled_with: Vec<u64>) -> Trace {
        let mut events = vec![at(100, "a#1", What::Connected)];
        events.extend(sent_and_accepted(200, 1, delivery));
        if !polled_with.is_empty() {
            events.push(polled(5_000, 0, polled_with));
            let what = What::Received {
                id: 1,
                from: from.into(),
                to: "b".into(),
                via: Via::Mailbox,
                duplicate: false,
            };
            events.push(at(5_000, "b", what));
        } else {
            events.push(polled(5_000, 0, vec![]));
        }
        events.push(at(10_000, "world", What::HealPhase));
        Trace { events }
    }

    #[test]
    fn a_retry_taken_for_a_new_message_must_arrive_too() {
        // a's retry of a-1 (same client_id) was accepted as message 2 (M1
        // allows it); b got message 1 only: message 2 is lost (L2).
        let mut trace = mail_trace(Delivery::Polling, "a", vec![1]);
        trace.events.insert(
            3,
            at(
                300,
                "a#1",
                What::Resent {
                    client_id: "a-1".into(),
                    to: "b".into(),
                    attempt: 1,
                },
            ),
        );
        trace.events.insert(
            4,
            at(
                310,
                "a#1",
                What::Accepted {
                    client_id: "a-1".into(),
                    id: 2,
                    delivery: Delivery::Polling,
                },
            ),
        );
        let lost = nothing_accepted_is_lost(&Facts::new(&trace, &scenario()));
        assert_eq!(lost.len(), 1, "{lost:#?}");
        assert_eq!(lost[0].subject.message, Some(2));
        // The same ack twice (the server remembered the client_id) is one
        // message, delivered.
        if let What::Accepted { id, .. } = &mut trace.events[4].what {
            *id = 1;
        }
        assert_eq!(check_all(&trace, &scenario()), vec![]);
    }

    /// a (websocket) sends to b, who opened with `open`; the push reaches b
    /// `push_after_ms` after the send, on a calm link (≤ 10 ms a crossing).
    fn push_trace(open: OpenMode, push_after_ms: u64) -> Trace {
        let attempt = |actor: &str, open: OpenMode| {
            at(
                50,
                actor,
                What::ConnectAttempt {
                    open,
                    header: HeaderPolicy::Valid,
                    header_sent: true,
                },
            )
        };
        let mut events = vec![
            attempt("a#1", OpenMode::WebsocketFirst),
            attempt("b#1", open),
            at(100, "a#1", What::Connected),
            at(100, "b#1", What::Connected),
        ];
        events.extend(sent_and_accepted(200, 1, Delivery::Websocket));
        events.extend([
            at(
                200 + push_after_ms,
                "b#1",
                What::Received {
                    id: 1,
                    from: "a".into(),
                    to: "b".into(),
                    via: match open {
                        OpenMode::WebsocketFirst => Via::Websocket,
                        _ => Via::PollingTransport,
                    },
                    duplicate: false,
                },
            ),
            at(10_000, "world", What::HealPhase),
        ]);
        Trace { events }
    }

    #[test]
    fn a_push_to_a_polling_session_may_wait_for_its_next_poll() {
        // 150 ms: late for a websocket (M3's 100 ms), in time for a session on
        // long-polling whose poll had just been answered (a new connection
        // and request first: 4 crossings of ≤ 10 ms + a tick each, 180 ms).
        let m3 = |open, after| {
            online_recipients_get_pushes(&Facts::new(&push_trace(open, after), &scenario()))
                .iter()
                .map(|v| v.clause)
                .collect::<Vec<_>>()
        };
        assert_eq!(m3(OpenMode::WebsocketFirst, 90), vec![]);
        assert_eq!(m3(OpenMode::WebsocketFirst, 150), vec![Clause::M3]);
        assert_eq!(m3(OpenMode::PollingOnly, 150), vec![]);
        assert_eq!(m3(OpenMode::PollingOnly, 200), vec![Clause::M3]);
    }

    #[test]
    fn mail_hidden_below_a_cursor_equal_to_a_fresh_mailboxs_latest_is_not_owed() {
        // Hunt seed 133 at 50 users: b's poll was answered by the old process
        // as it went down (cursor 1); the fresh store numbered a's message
        // seq 1 again; b's polls with after=1 are not above the latest seq
        // (no 409, L4) and the message hides below the cursor for good. The
        // contract leaves that gap (L4): not owed. From b's first poll the new
        // process answered, its cursor is corrected or overtaken: a message
        // stored after it is owed.
        let restart = FaultKind::Restart { keeps_store: false };
        let fault = |at_ms, start: bool| {
            let (host, fault) = ("server".to_owned(), restart);
            let what = if start {
                What::FaultStart { host, fault }
            } else {
                What::FaultEnd { host, fault }
            };
            at(at_ms, "world", what)
        };
        let sent = |at_ms, n| sent_and_accepted(at_ms, n, Delivery::Polling);
        let mut events = vec![at(100, "a#1", What::Connected), fault(1_000, true)];
        events.push(polled(1_020, 0, vec![1]));
        events.push(fault(3_000, false));
        events.extend(sent(4_000, 7));
        events.push(polled(5_000, 1, vec![]));
        events.push(at(10_000, "world", What::HealPhase));
        events.push(polled(12_000, 1, vec![]));
        let trace = Trace { events };
        assert_eq!(
            nothing_accepted_is_lost(&Facts::new(&trace, &scenario())),
            vec![]
        );
        // Stored after b's first poll the new process answered: owed.
        let mut later = trace.clone();
        let [send, ack] = sent(6_000, 8);
        later.events.insert(6, send);
        later.events.insert(7, ack);
        let lost = nothing_accepted_is_lost(&Facts::new(&later, &scenario()));
        assert_eq!(
            lost.iter().map(|v| v.subject.message).collect::<Vec<_>>(),
            vec![Some(8)],
            "{lost:#?}"
        );
    }

    #[test]
    fn a_poll_answered_before_the_store_and_held_is_not_the_next_poll() {
        // Hunt seed 1172 (3 users, 20 s): b's poll was answered before a's
        // message was stored, and a hold on b's link delivered the empty
        // answer after it. Not evidence of L1; b's next poll over a clean
        // link is, and must return it.
        let mut held = scenario();
        held.faults.faults.push(crate::faults::Fault {
            at_ms: 150,
            duration_ms: 4_800,
            host: crate::world::host_of(1, 2),
            kind: FaultKind::Hold,
        });
        let l1 = |trace: &Trace| {
            offline_recipients_get_mail(&Facts::new(trace, &held))
                .iter()
                .map(|v| (v.clause, v.at_ms))
                .collect::<Vec<_>>()
        };
        let mut trace = mail_trace(Delivery::Polling, "a", vec![1]);
        trace.events.insert(3, polled(4_960, 0, vec![]));
        assert_eq!(l1(&trace), vec![]);
        // The same empty answer on a link that was clean all along: L1.
        assert_eq!(
            offline_recipients_get_mail(&Facts::new(&trace, &scenario()))
                .iter()
                .map(|v| v.clause)
                .collect::<Vec<_>>(),
            vec![Clause::L1]
        );
        // The poll just after the hold is not evidence either (its request
        // may have waited in it); the next one over a clean link is, and
        // must return it.
        let mut never = mail_trace(Delivery::Polling, "a", vec![]);
        never.events.insert(3, trace.events[3].clone());
        assert_eq!(l1(&never), vec![]);
        let heal = never.events.len() - 1;
        never.events.insert(heal, polled(8_000, 0, vec![]));
        assert_eq!(l1(&never), vec![(Clause::L1, 8_000)]);
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
    fn a_malformed_send_answered_by_closing_the_connection_is_b1() {
        // No {error} ack: the server closed the sender's connection on a calm
        // link. Only a frame above maxPayload may do that (B1).
        let closed = |reason: &str| {
            let mut t = raw_trace(What::AckLost {
                client_id: "a-1".into(),
                reason: "connection ended".into(),
            });
            t.events.push(at(
                300,
                "a#1",
                What::Disconnected {
                    reason: reason.into(),
                },
            ));
            t
        };
        let by_server =
            bad_sends_are_refused(&Facts::new(&closed("server disconnect"), &scenario()));
        assert_eq!(
            by_server.iter().map(|v| v.clause).collect::<Vec<_>>(),
            vec![Clause::B1]
        );
        // The client closing its own tab right after is no answer at all.
        let by_client = bad_sends_are_refused(&Facts::new(&closed("client close"), &scenario()));
        assert!(by_client.is_empty(), "{by_client:?}");
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

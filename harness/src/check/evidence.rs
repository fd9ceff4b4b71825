//! What a run actually exercised. A clause passes only on evidence: a server
//! that answers 500 everywhere, or garbage on `/socket.io/`, opens no session,
//! so nothing it did can pass P1, M3 or L2 — those are SKIP, with the reason,
//! never PASS.
//!
//! Evidence is per sentence ([`sentences`]): a clause passes only when each
//! of its MUST and MUST NOT sentences was exercised by some run. Sentences
//! with a probe of their own (B1's, M1.4, M2.4, T1.2 …) say exactly what they
//! need; the others stand on their clause's evidence ([`exercised`]).

use std::collections::BTreeSet;

use super::Run;
use crate::judge::user_of;
use crate::spec::Clause;
use crate::trace::What;

/// The clauses `run` produced evidence for, whatever the verdict.
pub fn exercised(run: &Run) -> BTreeSet<Clause> {
    let events = &run.trace.events;
    let registrable = |actor: &str| registrable(run, actor);
    let any = |f: &dyn Fn(&What) -> bool| events.iter().any(|e| f(&e.what));
    let mut set = run.reached.clone();
    let answered = events.iter().any(|e| {
        matches!(&e.what, What::Exchange { answer, .. } if !answer.starts_with("error") && !answer.starts_with("skipped"))
    });
    match run.name {
        "http" if answered => {
            // B1 is not among them: its sentences need malformed frames
            // answered on a registered connection ([`sentences`]).
            set.extend([Clause::H1, Clause::T2, Clause::L1, Clause::P4]);
            if stale_cursor_answered(run) {
                set.insert(Clause::L4);
            }
        }
        "handshake" if answered => {
            set.insert(Clause::T1);
        }
        "restart" if stale_cursor_refused(run) => {
            set.insert(Clause::L4);
        }
        "cursor" => {
            // The mailbox read back: L1 needs entries, L2 a re-poll of them.
            let entries = events.iter().any(|e| {
                matches!(&e.what, What::Exchange { answer, .. } if answer.starts_with("200") && answer.contains("\"seq\""))
            });
            if entries {
                set.extend([Clause::L1, Clause::L2]);
            }
            if stale_cursor_answered(run) {
                set.insert(Clause::L4);
            }
        }
        _ => {}
    }
    let connected = events
        .iter()
        .any(|e| e.what == What::Connected && registrable(&e.actor));
    if !connected {
        return set;
    }
    set.extend([Clause::T1, Clause::I1, Clause::I2]);
    let attempted_unregistrable = events.iter().any(|e| {
        matches!(e.what, What::ConnectAttempt { .. })
            && e.actor.contains('#')
            && !registrable(&e.actor)
    });
    if attempted_unregistrable {
        set.insert(Clause::I3);
    }
    if any(&|w| matches!(w, What::Presence { online: true, .. })) {
        set.insert(Clause::P1);
    }
    if any(&|w| matches!(w, What::OnlineProbe { .. })) {
        set.insert(Clause::P4);
        set.insert(Clause::P2);
    }
    if any(&|w| matches!(w, What::Presence { online: false, .. }))
        || (any(&|w| matches!(w, What::Disconnected { .. }))
            && any(&|w| matches!(w, What::OnlineProbe { .. })))
    {
        set.insert(Clause::P3);
    }
    let accepted = any(&|w| matches!(w, What::Accepted { .. }));
    if accepted || any(&|w| matches!(w, What::Refused { .. })) {
        set.extend([Clause::M1, Clause::M2]);
    }
    if accepted {
        set.extend([Clause::M3, Clause::M4]);
        if run.name == "robust" {
            set.insert(Clause::M5);
        }
    }
    if any(&|w| matches!(w, What::Polled { .. })) {
        set.insert(Clause::L1);
        if run.name == "robust" {
            set.insert(Clause::L2);
        }
    }
    if any(&|w| matches!(w, What::SentRaw { .. })) {
        set.insert(Clause::B1);
    }
    set
}

/// Whether `actor` is a user of `run`'s scenario who can register.
fn registrable(run: &Run, actor: &str) -> bool {
    run.scenario.as_ref().is_some_and(|s| {
        s.users
            .iter()
            .any(|u| u.name == user_of(actor) && u.can_register())
    })
}

/// Whether a sentence's kind asks for evidence before its clause may pass.
pub fn binding(kind: &str) -> bool {
    matches!(kind, "MUST" | "MUST NOT")
}

/// The sentences (`B1.2`) `run` produced evidence for. A sentence without a
/// probe of its own is exercised when its clause is ([`exercised`]).
pub fn sentences(run: &Run) -> BTreeSet<String> {
    let clauses = exercised(run);
    let events = &run.trace.events;
    let registrable = |actor: &str| registrable(run, actor);
    let any = |f: &dyn Fn(&What) -> bool| events.iter().any(|e| f(&e.what));
    let connected = events
        .iter()
        .any(|e| e.what == What::Connected && registrable(&e.actor));
    let abuser = |f: &dyn Fn(&str, &str) -> bool| {
        events.iter().any(|e| {
            e.actor == "abuser"
                && matches!(&e.what, What::Exchange { request, answer } if f(request, answer))
        })
    };
    let acks = super::rules::abuser_acks(events);
    let acked = |id: u64| {
        let id = id.to_string();
        acks.iter()
            .any(|a| super::rules::ack_key(a.request_text, true) == Some(("/", id.as_str())))
    };
    // The abuser got a session: its CONNECT was answered with the
    // namespace's CONNECT (`40`), not refused.
    let abuser_registered = abuser(&|request, answer| {
        request.starts_with("40") && answer.split(" | ").any(|f| f.starts_with("40"))
    });
    let malformed_answered = acks.iter().any(|a| a.ack.contains("\"error\""))
        || any(&|w| matches!(w, What::Refused { .. }))
            && any(&|w| matches!(w, What::SentRaw { .. }));
    let health_after = abuser(&|request, answer| {
        request.starts_with("GET /health") && !answer.starts_with("error")
    });
    let mut set = BTreeSet::new();
    // The sentences with a probe of their own, held or not.
    let mut probed: BTreeSet<&'static str> = BTreeSet::new();
    let mut own = |id: &'static str, held: bool| {
        probed.insert(id);
        if held {
            set.insert(id.to_owned());
        }
    };
    // T1.2: polling, websocket and the upgrade each carried a session.
    own("T1.2", connected && any(&|w| w == &What::Upgraded));
    // I2.2, I3.1, P1.3: connections with invalid names were attempted (and
    // for I3.1 presence was read while they were).
    let unregistrable = events.iter().any(|e| {
        matches!(e.what, What::ConnectAttempt { .. })
            && e.actor.contains('#')
            && !registrable(&e.actor)
    });
    own("I2.2", connected && unregistrable);
    own(
        "I3.1",
        connected && unregistrable && any(&|w| matches!(w, What::OnlineProbe { .. })),
    );
    own("P1.3", connected && unregistrable);
    own(
        "P1.2",
        any(&|w| matches!(w, What::Presence { online: true, .. })),
    );
    // M1.4: the reused client_id's first send and a differing repeat were answered.
    own(
        "M1.4",
        acked(super::rules::REUSED_ID_ACKS.0)
            && (acked(super::rules::REUSED_ID_ACKS.1)
                || acked(super::rules::REUSED_ID_OTHER_TO_ACK)),
    );
    own("M1.2", any(&|w| matches!(w, What::Refused { .. })));
    own("M2.2", any(&|w| matches!(w, What::Refused { .. })));
    own(
        "M2.3",
        events
            .iter()
            .filter(|e| matches!(e.what, What::Accepted { .. }))
            .nth(1)
            .is_some(),
    );
    // M2.4: the payload claiming another `from` was answered.
    own("M2.4", acked(super::rules::FORGED_FROM_ACK));
    // B1: malformed input answered with a clear error (B1.1); sent on a
    // registered connection while the others were connected, with /health
    // asked after (B1.2); accepted mail read back after it (B1.3, the
    // cursor run); an unknown event sent on a registered connection (B1.4).
    own("B1.1", abuser_registered && malformed_answered);
    own("B1.2", abuser_registered && connected && health_after);
    let entries_read = events.iter().any(|e| {
        matches!(&e.what, What::Exchange { answer, .. } if answer.starts_with("200") && answer.contains("\"seq\""))
    });
    own("B1.3", run.name == "cursor" && entries_read);
    let unknown = format!("42{}[", super::rules::UNKNOWN_EVENT_ACK);
    own(
        "B1.4",
        abuser_registered && abuser(&|request, _| request.starts_with(&unknown)),
    );
    for clause in clauses {
        for sentence in clause.sentences() {
            if !probed.contains(sentence.id.as_str()) {
                set.insert(sentence.id.clone());
            }
        }
    }
    set.extend(run.sentences.iter().cloned());
    set
}

/// A poll with a cursor above every seq got an HTTP answer (L4's evidence).
fn stale_cursor_answered(run: &Run) -> bool {
    run.trace.events.iter().any(|e| {
        matches!(&e.what, What::Exchange { request, answer }
            if request.contains(super::endpoints::STALE_CURSOR_POLL) && !answer.starts_with("error"))
    })
}

/// Whether the reference client met a 409 for its cursor (after a restart
/// with a fresh store, L4 exercised).
fn stale_cursor_refused(run: &Run) -> bool {
    run.trace.events.iter().any(|e| {
        matches!(&e.what, What::PollFailed { reason, .. } if reason.starts_with("stale cursor (409)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Scenario, UserSpec};
    use crate::trace::{Event, Trace};

    fn run(name: &'static str, events: Vec<(u64, &str, What)>) -> Run {
        Run {
            name,
            scenario: Some(Scenario {
                seed: 0,
                users: vec![UserSpec::node("alice")],
                steps: vec![],
                faults: crate::faults::FaultPlan::calm(),
                active_ms: 1_000,
                heal_ms: 1_000,
                open_world: true,
            }),
            trace: Trace {
                events: events
                    .into_iter()
                    .map(|(at_ms, actor, what)| Event {
                        at_ms,
                        actor: actor.into(),
                        what,
                    })
                    .collect(),
            },
            violations: vec![],
            wall_ms: 0,
            reached: BTreeSet::new(),
            note: None,
            sentences: BTreeSet::new(),
            clause_notes: Default::default(),
        }
    }

    #[test]
    fn a_run_that_never_connected_exercised_no_session_clause() {
        let failed = run(
            "core",
            vec![(
                0,
                "alice#1",
                What::OpenFailed {
                    reason: "status 500".into(),
                },
            )],
        );
        assert!(exercised(&failed).is_empty());
    }

    #[test]
    fn a_connected_run_with_accepted_mail_exercised_messaging() {
        let ok = run(
            "core",
            vec![
                (0, "alice#1", What::Connected),
                (
                    10,
                    "alice#1",
                    What::Accepted {
                        client_id: "a-1".into(),
                        id: 1,
                        delivery: crate::contract::Delivery::Polling,
                    },
                ),
            ],
        );
        let set = exercised(&ok);
        for clause in [Clause::T1, Clause::M1, Clause::M2, Clause::M3, Clause::M4] {
            assert!(set.contains(&clause), "{clause}");
        }
        assert!(
            !set.contains(&Clause::M5),
            "M5 needs the robust run's faults"
        );
        assert!(!set.contains(&Clause::P1), "no presence event was seen");
    }
}

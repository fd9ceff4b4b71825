//! What a run actually exercised. A clause passes only on evidence: a server
//! that answers 500 everywhere, or garbage on `/socket.io/`, opens no session,
//! so nothing it did can pass P1, M3 or L2 — those are SKIP, with the reason,
//! never PASS.

use std::collections::BTreeSet;

use super::Run;
use crate::judge::user_of;
use crate::spec::Clause;
use crate::trace::What;

/// The clauses `run` produced evidence for, whatever the verdict.
pub fn exercised(run: &Run) -> BTreeSet<Clause> {
    let events = &run.trace.events;
    let registrable = |actor: &str| {
        run.scenario.as_ref().is_some_and(|s| {
            s.users
                .iter()
                .any(|u| u.name == user_of(actor) && u.can_register())
        })
    };
    let any = |f: &dyn Fn(&What) -> bool| events.iter().any(|e| f(&e.what));
    let mut set = run.reached.clone();
    let answered = events.iter().any(|e| {
        matches!(&e.what, What::Exchange { answer, .. } if !answer.starts_with("error") && !answer.starts_with("skipped"))
    });
    match run.name {
        "http" if answered => {
            set.extend([Clause::H1, Clause::T2, Clause::L1, Clause::B1, Clause::P4]);
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

/// A poll with a cursor above every seq got an HTTP answer (L4's evidence).
fn stale_cursor_answered(run: &Run) -> bool {
    run.trace.events.iter().any(|e| {
        matches!(&e.what, What::Exchange { request, answer }
            if request.contains(super::probes::STALE_CURSOR_POLL) && !answer.starts_with("error"))
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

//! Hand-built scenarios shared by the simulation suite and the mutation
//! suite: the calm scenario builder, and a device asleep while presence
//! churns around it.

use harness::faults::{Fault, FaultPlan};
use harness::scenario::{Action, Scenario, Step, UserSpec};
use harness::ServerTimers;

/// alice's device sleeps 22 s (her session alive: socket.io's default
/// heartbeat would only notice at 45 s) while carol comes and goes 150 times
/// (300 announcements, more than a connection's send buffer holds) and bob,
/// whose going offline alice already heard, comes back and stays. alice wakes
/// before the server's next ping. A server that drops the news it could not
/// queue leaves her showing bob offline for good (P2) and carol online (P3).
pub fn sleep_through_churn() -> Scenario {
    let mut steps = vec![
        (500, 0, Action::Open),
        (1_000, 1, Action::Open),
        (1_500, 1, Action::Close),
        (2_000, 0, Action::Freeze { ms: 22_000 }),
        (20_000, 1, Action::Open),
    ];
    for i in 0..150 {
        steps.push((3_000 + i * 100, 2, Action::Open));
        steps.push((3_050 + i * 100, 2, Action::Close));
    }
    let users = [
        UserSpec::node("alice"),
        UserSpec::node("bob"),
        UserSpec::node("carol"),
    ];
    let mut s = scenario(&users, steps, vec![]);
    s.active_ms = 40_000;
    s
}

/// A calm scenario for `users`, with `steps` as (at_ms, user index, action).
pub fn scenario(
    users: &[UserSpec],
    steps: Vec<(u64, usize, Action)>,
    faults: Vec<Fault>,
) -> Scenario {
    let mut steps: Vec<Step> = steps
        .into_iter()
        .map(|(at_ms, user, action)| Step {
            at_ms,
            user,
            action,
        })
        .collect();
    steps.sort_by_key(|s| (s.at_ms, s.user));
    Scenario {
        seed: 7,
        users: users.to_vec(),
        steps,
        faults: FaultPlan {
            faults,
            ..FaultPlan::calm()
        },
        active_ms: 20_000,
        heal_ms: Scenario::heal_ms_for(&ServerTimers::default(), 30_000),
        open_world: false,
    }
}

//! Hand-built scenarios for the checker tests.

use harness::faults::{Fault, FaultKind, FaultPlan};
use harness::judge::{judge_run, Violation};
use harness::scenario::{Action, Scenario, Step, UserSpec};
use harness::trace::Trace;
use harness::world::{simulate, WorldOptions};
use server_under_test::Bug;

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
        heal_ms: Scenario::heal_ms_for(&harness::ServerTimers::default(), 30_000),
        open_world: false,
    }
}

pub fn send(to: &str) -> Action {
    Action::Send {
        to: to.into(),
        content: format!("hello {to}"),
    }
}

pub fn fault(at_ms: u64, duration_ms: u64, host: &str, kind: FaultKind) -> Fault {
    Fault {
        at_ms,
        duration_ms,
        host: host.into(),
        kind,
    }
}

/// Runs `scenario` against the reference server with `bugs` switched on.
pub fn run(scenario: &Scenario, bugs: &[Bug]) -> (Trace, Vec<Violation>) {
    // v2 when the scenario's users present tokens.
    let options = WorldOptions::reference_for(scenario, bugs);
    let outcome = simulate(scenario, &options);
    assert_eq!(outcome.error, None, "the simulation itself must not fail");
    let violations = judge_run(&outcome, scenario, &options.timers);
    (outcome.trace, violations)
}

/// The swarm scenario of `seed` for `users`: 120 s active, every fault kind.
pub fn generated(users: usize, seed: u64) -> Scenario {
    Scenario::generate(
        seed,
        &harness::scenario::GenerateOptions {
            users,
            active_ms: 120_000,
            faults: harness::faults::FaultMenu::all(),
            ..harness::scenario::GenerateOptions::default()
        },
    )
}

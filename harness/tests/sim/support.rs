//! Hand-built scenarios for the checker tests.

use harness::faults::{Fault, FaultKind};
use harness::judge::{judge_run, Violation};
use harness::scenario::{Action, Scenario};
use harness::trace::Trace;
use harness::world::{simulate, WorldOptions};
use server_under_test::Bug;

pub use crate::churn::scenario;

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

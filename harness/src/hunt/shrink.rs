//! Shrinking: from a failing scenario to a minimal one that fails the same clause.
//!
//! Greedy delta debugging over the scenario's data: drop faults, drop chunks of
//! users, then of steps (halves, quarters … single ones), calm the latency, cut
//! the active phase. Each candidate is simulated; a candidate is kept only when it
//! still breaks the target clause. Deterministic, like everything else.

use crate::faults::FaultPlan;
use crate::judge::check_all;
use crate::scenario::Scenario;
use crate::spec::Clause;
use crate::world::{simulate, WorldOptions};

/// Whether `scenario` breaks `clause` under `options`.
pub fn breaks(scenario: &Scenario, options: &WorldOptions, clause: Clause) -> bool {
    let outcome = simulate(scenario, options);
    outcome.error.is_none()
        && check_all(&outcome.trace, scenario)
            .iter()
            .any(|v| v.clause == clause)
}

/// The smallest scenario the greedy passes find that still breaks `clause`, and
/// how many simulations it took. `budget` caps the simulations.
pub fn shrink(
    scenario: &Scenario,
    options: &WorldOptions,
    clause: Clause,
    budget: usize,
) -> (Scenario, usize) {
    shrink_by(scenario, budget, |candidate| {
        breaks(candidate, options, clause)
    })
}

/// The greedy passes of [`shrink`] with any judge of "still fails": a live
/// server's confirmed majority of replays, for one. `budget` caps the calls.
pub fn shrink_by(
    scenario: &Scenario,
    budget: usize,
    still_fails: impl FnMut(&Scenario) -> bool,
) -> (Scenario, usize) {
    let still_fails = std::cell::RefCell::new(still_fails);
    let mut best = scenario.clone();
    let mut runs = 0;
    let try_candidate = |candidate: Scenario, best: &mut Scenario, runs: &mut usize| -> bool {
        if *runs >= budget || candidate == *best {
            return false;
        }
        *runs += 1;
        if (still_fails.borrow_mut())(&candidate) {
            *best = candidate;
            true
        } else {
            false
        }
    };
    loop {
        let mut improved = false;
        // Faults, one at a time.
        let mut i = 0;
        while i < best.faults.faults.len() {
            let mut candidate = best.clone();
            candidate.faults.faults.remove(i);
            if try_candidate(candidate, &mut best, &mut runs) {
                improved = true;
            } else {
                i += 1;
            }
        }
        // Users without whom it still fails (at least one stays), then steps,
        // in shrinking chunks: users first, as fewer users make every later
        // simulation cheaper.
        improved |= drop_chunks(
            &mut best,
            &mut runs,
            &try_candidate,
            (|s| s.users.len(), 1),
            without_users,
        );
        improved |= drop_chunks(
            &mut best,
            &mut runs,
            &try_candidate,
            (|s| s.steps.len(), 0),
            |s, gone| {
                let mut candidate = s.clone();
                candidate.steps.drain(gone);
                candidate
            },
        );
        // A calm network, then a shorter active phase.
        if best.faults.latency_ms_max > FaultPlan::calm().latency_ms_max {
            let mut candidate = best.clone();
            candidate.faults.latency_ms_min = FaultPlan::calm().latency_ms_min;
            candidate.faults.latency_ms_max = FaultPlan::calm().latency_ms_max;
            improved |= try_candidate(candidate, &mut best, &mut runs);
        }
        let busy_until = best
            .steps
            .iter()
            .map(|s| s.at_ms)
            .chain(best.faults.faults.iter().map(|f| f.end_ms()))
            .max()
            .unwrap_or(0);
        let shorter = (busy_until + 1_000).div_ceil(1_000) * 1_000;
        if shorter < best.active_ms {
            let mut candidate = best.clone();
            candidate.active_ms = shorter;
            improved |= try_candidate(candidate, &mut best, &mut runs);
        }
        if !improved || runs >= budget {
            return (best, runs);
        }
    }
}

/// Greedy chunk removal over one list of the scenario (its length and how many
/// must stay given by `(len, keep)`): halves, quarters … single items, each
/// dropped for good when the scenario without it still fails. Whether any was.
fn drop_chunks(
    best: &mut Scenario,
    runs: &mut usize,
    try_candidate: &impl Fn(Scenario, &mut Scenario, &mut usize) -> bool,
    (len, keep): (fn(&Scenario) -> usize, usize),
    without: fn(&Scenario, std::ops::Range<usize>) -> Scenario,
) -> bool {
    let mut improved = false;
    let mut chunk = len(best).div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < len(best) {
            let end = (start + chunk).min(len(best));
            if len(best) - (end - start) < keep {
                start = end;
                continue;
            }
            if try_candidate(without(best, start..end), best, runs) {
                improved = true;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            return improved;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// The scenario without the users in `gone`: their steps go, later indexes
/// shift down, faults on hosts that no longer exist go too.
fn without_users(scenario: &Scenario, gone: std::ops::Range<usize>) -> Scenario {
    let mut s = scenario.clone();
    s.users.drain(gone.clone());
    s.steps.retain(|step| !gone.contains(&step.user));
    for step in &mut s.steps {
        if step.user >= gone.end {
            step.user -= gone.len();
        }
    }
    let hosts = crate::world::client_hosts(s.users.len());
    s.faults.faults.retain(|f| hosts.contains(&f.host));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Action, Step, UserSpec};

    #[test]
    fn dropping_a_user_renumbers_the_rest() {
        let s = Scenario {
            seed: 0,
            users: vec![
                UserSpec::node("a"),
                UserSpec::node("b"),
                UserSpec::node("c"),
            ],
            steps: vec![
                Step {
                    at_ms: 0,
                    user: 0,
                    action: Action::Open,
                },
                Step {
                    at_ms: 1,
                    user: 1,
                    action: Action::Open,
                },
                Step {
                    at_ms: 2,
                    user: 2,
                    action: Action::Open,
                },
            ],
            faults: FaultPlan::calm(),
            active_ms: 1_000,
            heal_ms: 1_000,
            open_world: false,
        };
        let t = without_users(&s, 1..2);
        assert_eq!(
            t.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert_eq!(
            t.steps.iter().map(|s| s.user).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}

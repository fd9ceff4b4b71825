//! Shrinking: from a failing scenario to a minimal one that fails the same clause.
//!
//! Greedy delta debugging over the scenario's data: drop faults, drop chunks of
//! users, then of steps (halves, quarters … single ones), calm the latency, cut
//! the active phase. Each candidate is simulated; a candidate is kept only when it
//! still breaks the target clause. Deterministic, like everything else.
//!
//! The passes are a cursor over the candidates (`Cursor`): from a cursor and
//! the best scenario so far comes the next candidate, with where to go if it
//! fails and if it still breaks the clause. Most candidates fail, so
//! [`shrink_batched`] judges the next `width` candidates side by side as if each
//! failed and keeps the first that did not: the same minimal scenario and the
//! same count of runs as judging them one by one, whatever the width.

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
/// how many simulations it took. `budget` caps the simulations; `jobs`
/// simulates that many candidates at a time on a thread pool (the result does
/// not depend on it).
pub fn shrink(
    scenario: &Scenario,
    options: &WorldOptions,
    clause: Clause,
    budget: usize,
    jobs: usize,
) -> (Scenario, usize) {
    let jobs = jobs.max(1);
    let pool = (jobs > 1).then(|| pool(jobs));
    shrink_in(scenario, options, clause, budget, pool.as_ref())
}

/// A pool of `jobs` threads for simulations side by side.
pub(crate) fn pool(jobs: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .expect("a thread pool of at least one thread")
}

/// [`shrink`] on `pool` (a hunt's own, idle while it shrinks), or on this
/// thread alone.
pub(crate) fn shrink_in(
    scenario: &Scenario,
    options: &WorldOptions,
    clause: Clause,
    budget: usize,
    pool: Option<&rayon::ThreadPool>,
) -> (Scenario, usize) {
    let Some(pool) = pool.filter(|p| p.current_num_threads() > 1) else {
        return shrink_by(scenario, budget, |candidate| {
            breaks(candidate, options, clause)
        });
    };
    shrink_batched(scenario, budget, pool.current_num_threads(), |batch| {
        use rayon::prelude::*;
        pool.install(|| {
            batch
                .par_iter()
                .map(|candidate| breaks(candidate, options, clause))
                .collect()
        })
    })
}

/// The greedy passes of [`shrink`] with any judge of "still fails": a live
/// server's confirmed majority of replays, for one. `budget` caps the calls.
pub fn shrink_by(
    scenario: &Scenario,
    budget: usize,
    mut still_fails: impl FnMut(&Scenario) -> bool,
) -> (Scenario, usize) {
    shrink_batched(scenario, budget, 1, |batch| {
        batch.iter().map(&mut still_fails).collect()
    })
}

/// [`shrink_by`] judging up to `width` candidates at once: `judge` gets the
/// next candidates (each as if every one before it failed) and answers, for
/// each, whether it still fails. The first that does is kept, the rest are
/// thrown away; the minimal scenario and the run count are those of judging
/// one at a time, so only the wall time depends on `width`.
pub fn shrink_batched(
    scenario: &Scenario,
    budget: usize,
    width: usize,
    mut judge: impl FnMut(&[Scenario]) -> Vec<bool>,
) -> (Scenario, usize) {
    let mut best = scenario.clone();
    let mut runs = 0;
    let mut cursor = Cursor::start();
    loop {
        // The next candidates, assuming each fails.
        let (mut batch, mut successes) = (Vec::new(), Vec::new());
        let mut at = cursor;
        let finished = loop {
            match at.next(&best, runs + batch.len() >= budget) {
                Next::Done => break true,
                Next::Move(to) => at = to,
                Next::Try {
                    candidate,
                    on_fail,
                    on_success,
                } => {
                    at = on_fail;
                    // Past the budget, or no change: not a run.
                    if runs + batch.len() >= budget || candidate == best {
                        continue;
                    }
                    batch.push(candidate);
                    successes.push(on_success);
                    if batch.len() >= width.max(1) {
                        break false;
                    }
                }
            }
        };
        if batch.is_empty() {
            return (best, runs);
        }
        let verdicts = judge(&batch);
        match verdicts.iter().position(|&fails| fails) {
            Some(first) => {
                runs += first + 1;
                cursor = successes[first];
                best = batch.swap_remove(first);
            }
            None => {
                runs += batch.len();
                if finished {
                    return (best, runs);
                }
                cursor = at;
            }
        }
    }
}

/// Which list a chunk pass drops from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    /// Users (at least one stays).
    Users,
    /// Steps.
    Steps,
}

impl List {
    fn len(self, s: &Scenario) -> usize {
        match self {
            Self::Users => s.users.len(),
            Self::Steps => s.steps.len(),
        }
    }

    fn keep(self) -> usize {
        match self {
            Self::Users => 1,
            Self::Steps => 0,
        }
    }

    fn without(self, s: &Scenario, gone: std::ops::Range<usize>) -> Scenario {
        match self {
            Self::Users => without_users(s, gone),
            Self::Steps => {
                let mut candidate = s.clone();
                candidate.steps.drain(gone);
                candidate
            }
        }
    }

    /// The first chunk of this list's pass: half of it.
    fn pass(self, s: &Scenario) -> Pass {
        Pass::Chunks {
            list: self,
            chunk: self.len(s).div_ceil(2).max(1),
            start: 0,
        }
    }
}

/// Where the greedy passes are within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Dropping fault `i`, one at a time.
    Faults { i: usize },
    /// Dropping `chunk` items of `list` from `start` (users first, as fewer
    /// users make every later run cheaper; then steps), halving the chunk
    /// down to single items.
    Chunks {
        list: List,
        chunk: usize,
        start: usize,
    },
    /// A calm network.
    Calm,
    /// A shorter active phase.
    Shorter,
    /// Another round if this one kept anything.
    RoundEnd,
}

/// A position in the passes, and whether this round kept a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    pass: Pass,
    improved: bool,
}

/// What comes at a cursor.
enum Next {
    /// The passes are over.
    Done,
    /// No candidate here: go on to another position.
    Move(Cursor),
    /// A candidate, and where to go when it fails or still breaks the clause.
    Try {
        candidate: Scenario,
        on_fail: Cursor,
        on_success: Cursor,
    },
}

impl Cursor {
    fn start() -> Self {
        Self {
            pass: Pass::Faults { i: 0 },
            improved: false,
        }
    }

    fn at(self, pass: Pass) -> Self {
        Self { pass, ..self }
    }

    /// Tries `candidate`; either way the passes go on at `then` (`Calm` and
    /// `Shorter` are one candidate each).
    fn once(self, candidate: Scenario, then: Pass) -> Next {
        Next::Try {
            candidate,
            on_fail: self.at(then),
            on_success: Self {
                pass: then,
                improved: true,
            },
        }
    }

    fn next(self, best: &Scenario, out_of_budget: bool) -> Next {
        match self.pass {
            Pass::Faults { i } if i < best.faults.faults.len() => {
                let mut candidate = best.clone();
                candidate.faults.faults.remove(i);
                Next::Try {
                    candidate,
                    on_fail: self.at(Pass::Faults { i: i + 1 }),
                    on_success: Self {
                        pass: Pass::Faults { i },
                        improved: true,
                    },
                }
            }
            Pass::Faults { .. } => Next::Move(self.at(List::Users.pass(best))),
            Pass::Chunks { list, chunk, start } => {
                let len = list.len(best);
                if start >= len {
                    return Next::Move(self.at(match (chunk, list) {
                        (1, List::Users) => List::Steps.pass(best),
                        (1, List::Steps) => Pass::Calm,
                        _ => Pass::Chunks {
                            list,
                            chunk: chunk.div_ceil(2),
                            start: 0,
                        },
                    }));
                }
                let end = (start + chunk).min(len);
                if len - (end - start) < list.keep() {
                    return Next::Move(self.at(Pass::Chunks {
                        list,
                        chunk,
                        start: end,
                    }));
                }
                Next::Try {
                    candidate: list.without(best, start..end),
                    on_fail: self.at(Pass::Chunks {
                        list,
                        chunk,
                        start: start + chunk,
                    }),
                    on_success: Self {
                        pass: self.pass,
                        improved: true,
                    },
                }
            }
            Pass::Calm if best.faults.latency_ms_max > FaultPlan::calm().latency_ms_max => {
                let mut candidate = best.clone();
                candidate.faults.latency_ms_min = FaultPlan::calm().latency_ms_min;
                candidate.faults.latency_ms_max = FaultPlan::calm().latency_ms_max;
                self.once(candidate, Pass::Shorter)
            }
            Pass::Calm => Next::Move(self.at(Pass::Shorter)),
            Pass::Shorter => {
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
                    self.once(candidate, Pass::RoundEnd)
                } else {
                    Next::Move(self.at(Pass::RoundEnd))
                }
            }
            Pass::RoundEnd if self.improved && !out_of_budget => Next::Move(Self::start()),
            Pass::RoundEnd => Next::Done,
        }
    }
}

/// The scenario without the users in `gone`: their steps go, later indexes
/// shift down, faults on client hosts that no longer exist go too.
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
    s.faults
        .faults
        .retain(|f| f.is_on_server() || hosts.contains(&f.host));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Action, Step, UserSpec};

    /// A judge that still fails while the scenario keeps two of user 0's
    /// sends, a fault, and some user's `Open` after 2 s.
    fn picky(s: &Scenario) -> bool {
        let sends = s
            .steps
            .iter()
            .filter(|st| st.user == 0 && matches!(st.action, Action::Send { .. }))
            .count();
        let late_open = s
            .steps
            .iter()
            .any(|st| st.at_ms > 2_000 && matches!(st.action, Action::Open));
        sends >= 2 && !s.faults.faults.is_empty() && late_open
    }

    #[test]
    fn judging_candidates_side_by_side_changes_nothing_but_the_batches() {
        let options = crate::scenario::GenerateOptions {
            users: 5,
            active_ms: 30_000,
            ..Default::default()
        };
        let mut shrunk = 0;
        for seed in 0..40 {
            let scenario = Scenario::generate(seed, &options);
            if !picky(&scenario) {
                continue;
            }
            shrunk += 1;
            for budget in [3, 10, 1_000] {
                let one = shrink_by(&scenario, budget, picky);
                assert!(picky(&one.0), "seed {seed}: the minimal scenario fails");
                assert!(one.1 <= budget);
                for width in [2, 3, 8] {
                    let mut widest = 0;
                    let batched = shrink_batched(&scenario, budget, width, |batch| {
                        widest = widest.max(batch.len());
                        batch.iter().map(picky).collect()
                    });
                    assert!(widest <= width);
                    assert_eq!(batched, one, "seed {seed}, budget {budget}, width {width}");
                }
            }
        }
        assert!(shrunk >= 10, "only {shrunk} seeds exercised the shrinker");
    }

    #[test]
    fn shrinking_reaches_what_the_judge_needs() {
        let options = crate::scenario::GenerateOptions {
            users: 5,
            active_ms: 30_000,
            ..Default::default()
        };
        let scenario = (0..40)
            .map(|seed| Scenario::generate(seed, &options))
            .find(picky)
            .expect("a seed the judge fails");
        let (minimal, _) = shrink_by(&scenario, 1_000, picky);
        // Two sends, one late open (at most: the sends may be it), one fault.
        assert!(minimal.steps.len() <= 3, "{:?}", minimal.steps);
        assert_eq!(minimal.faults.faults.len(), 1);
        assert!(minimal.users.len() <= 2);
    }

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

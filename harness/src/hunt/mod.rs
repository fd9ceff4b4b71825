//! Hunting: explore seeds (each with its own swarm fault mix) until a
//! violation, then investigate it — replay it to see whether it repeats, and
//! shrink it to a minimal scenario. Library code: plain plans in, data out;
//! the CLI prints and saves.

pub mod live;
mod merge;
pub mod shrink;

pub use merge::{merge, LiveHuntFile, Merged, Mismatch, Part};

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::judge::{judge_run, Violation};
use crate::scenario::{GenerateOptions, Scenario};
use crate::spec::Clause;
use crate::world::{simulate, WorldOptions};

/// Most simulations a shrink may spend.
pub const SHRINK_BUDGET: usize = 400;

/// Which seeds a hunt explores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seeds {
    /// Exactly these (end excluded): deterministic, splittable across machines.
    Range(std::ops::Range<u64>),
    /// From `first` on until the wall-clock budget runs out.
    Budget {
        /// The first seed.
        first: u64,
        /// How long to keep going.
        budget: Duration,
    },
}

impl Seeds {
    /// The first seed tried.
    pub fn first(&self) -> u64 {
        match self {
            Seeds::Range(range) => range.start,
            Seeds::Budget { first, .. } => *first,
        }
    }
}

/// Everything a hunt needs.
#[derive(Clone, Debug)]
pub struct HuntPlan {
    /// Which seeds.
    pub seeds: Seeds,
    /// How each seed's scenario is generated.
    pub generate: GenerateOptions,
    /// The world (server, timers, client) each scenario runs in.
    pub world: WorldOptions,
    /// Most simulations the shrink may spend.
    pub shrink_budget: usize,
    /// Simulations run side by side (the result does not depend on it).
    pub jobs: usize,
    /// Only violations of these clauses are findings (empty: any clause).
    pub clauses: Vec<Clause>,
}

impl HuntPlan {
    /// Whether a violation of `clause` is what this hunt is after.
    pub fn wants(&self, clause: Clause) -> bool {
        self.clauses.is_empty() || self.clauses.contains(&clause)
    }
}

/// Whether a failing scenario gave the same trace when run again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "replay", rename_all = "snake_case")]
pub enum Replay {
    /// Byte-identical: the replay line replays it.
    Identical,
    /// The traces differ: the server under test is not deterministic in the
    /// simulation (wall clock, OS randomness, hash order …).
    Diverged {
        /// The first differing line of the rendered traces (0-based).
        line: usize,
        /// That line in the first run.
        first: String,
        /// That line in the second run.
        second: String,
    },
}

impl Replay {
    /// Compares two rendered traces.
    pub fn compare(first: &str, second: &str) -> Replay {
        if first == second {
            return Replay::Identical;
        }
        let (a, b): (Vec<&str>, Vec<&str>) = (first.lines().collect(), second.lines().collect());
        let line = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        Replay::Diverged {
            line,
            first: a.get(line).unwrap_or(&"(end of trace)").to_string(),
            second: b.get(line).unwrap_or(&"(end of trace)").to_string(),
        }
    }

    /// Whether both runs agreed.
    pub fn is_identical(&self) -> bool {
        matches!(self, Replay::Identical)
    }
}

/// A failing seed, investigated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    /// The seed whose scenario failed.
    pub seed: u64,
    /// The clause broken (the earliest violation's).
    pub clause: Clause,
    /// The violation as first seen.
    pub violation: Violation,
    /// Whether the failing seed ran the same way twice.
    pub replay: Replay,
    /// The shrunk scenario (still breaks `clause`).
    pub minimal: Scenario,
    /// The first violation of `clause` in the shrunk scenario's run.
    pub minimal_violation: Option<Violation>,
    /// The shrunk scenario's rendered trace.
    pub minimal_trace: String,
    /// Whether the shrunk scenario ran the same way twice.
    pub minimal_replay: Replay,
    /// Simulations spent shrinking.
    pub shrink_runs: usize,
}

/// What a hunt did.
#[derive(Clone, Debug)]
pub struct HuntOutcome {
    /// Seeds run.
    pub seeds_run: u64,
    /// The first failure, investigated.
    pub finding: Option<Finding>,
}

/// The result of a hunt, for `--format json` (several machines' outputs merge by
/// concatenating `seeds_run` ranges and collecting `finding`s).
#[derive(Debug, Serialize, Deserialize)]
pub struct HuntReport {
    /// First seed tried.
    pub first_seed: u64,
    /// Seeds run (the first `seeds_run` from `first_seed`).
    pub seeds_run: u64,
    /// The failure, if one was found.
    pub finding: Option<Finding>,
    /// Where the minimal scenario was written.
    pub scenario_file: Option<PathBuf>,
    /// The command that replays it.
    pub replay: Option<String>,
}

/// Hunts until a violation or the end of the seeds or budget; `on_seed` hears
/// each seed as its result is read (for a progress bar).
///
/// Seeds run `plan.jobs` at a time on a thread pool: each thread takes the
/// next seed as soon as it is free (no batch waits for its slowest seed), at
/// most `READ_AHEAD` × `jobs` seeds past the oldest unread one. Results are
/// read in seed order and the first failing seed wins, so the finding, the
/// shrunk scenario and `seeds_run` are the same whatever `jobs` is; once it
/// is read, seeds not yet started are dropped and those running are finished
/// and thrown away. With a wall-clock budget, no seed is started after it ran
/// out, and every seed started before is finished and read.
pub fn hunt(plan: &HuntPlan, mut on_seed: impl FnMut(u64)) -> HuntOutcome {
    let started = Instant::now();
    let (first, end) = match &plan.seeds {
        Seeds::Range(range) => (range.start, range.end),
        Seeds::Budget { first, .. } => (*first, u64::MAX),
    };
    let spent = || match plan.seeds {
        Seeds::Budget { budget, .. } => started.elapsed() >= budget,
        Seeds::Range(_) => false,
    };
    let jobs = plan.jobs.max(1);
    // One pool for the seeds and, once one fails, for its shrinking.
    let pool = shrink::pool(jobs);
    let ahead = (jobs as u64).saturating_mul(READ_AHEAD);
    let found = AtomicBool::new(false);
    let (done, results) = mpsc::channel::<(u64, std::thread::Result<SeedRun>)>();
    let (read, failed) = pool.in_place_scope_fifo(|scope| {
        let (mut started_up_to, mut read) = (first, first);
        let mut early: BTreeMap<u64, SeedRun> = BTreeMap::new();
        loop {
            while started_up_to < end && started_up_to - read < ahead && !spent() {
                let (seed, done, found) = (started_up_to, done.clone(), &found);
                scope.spawn_fifo(move |_| {
                    if found.load(Ordering::Relaxed) {
                        return;
                    }
                    // A panic is carried to the reading thread, which would
                    // otherwise wait for this seed forever.
                    let run = panic::catch_unwind(AssertUnwindSafe(|| run_seed(seed, plan)));
                    let _ = done.send((seed, run));
                });
                started_up_to += 1;
            }
            if read == started_up_to {
                return (read, None);
            }
            let (seed, run) = results.recv().expect("the reader holds a sender");
            match run {
                Ok(run) => early.insert(seed, run),
                Err(panicked) => panic::resume_unwind(panicked),
            };
            while let Some(mut run) = early.remove(&read) {
                read += 1;
                on_seed(run.seed);
                if let Some(violation) = run.violation.take() {
                    found.store(true, Ordering::Relaxed);
                    return (read, Some((run, violation)));
                }
            }
        }
    });
    let Some((run, violation)) = failed else {
        return HuntOutcome {
            seeds_run: read - first,
            finding: None,
        };
    };
    let finding = investigate_in(
        run.seed,
        &run.scenario,
        &run.trace,
        violation,
        &plan.world,
        plan.shrink_budget,
        Some(&pool),
    );
    HuntOutcome {
        seeds_run: read - first,
        finding: Some(finding),
    }
}

/// How many seeds per job a hunt starts past the oldest it has not read: room
/// for a slow seed to finish while the threads go on with the next ones.
const READ_AHEAD: u64 = 4;

/// One seed's run: its scenario, rendered trace and first violation.
struct SeedRun {
    seed: u64,
    scenario: Scenario,
    trace: String,
    violation: Option<Violation>,
}

fn run_seed(seed: u64, plan: &HuntPlan) -> SeedRun {
    let scenario = Scenario::generate(seed, &plan.generate);
    let outcome = simulate(&scenario, &plan.world);
    let violation = judge_run(&outcome, &scenario, &plan.world.timers)
        .into_iter()
        .find(|v| plan.wants(v.clause));
    SeedRun {
        seed,
        trace: if violation.is_some() {
            outcome.trace.render()
        } else {
            String::new()
        },
        scenario,
        violation,
    }
}

/// The default for `--jobs`: the cores this process may use.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Replays a failing scenario (does it repeat?), shrinks it (`jobs`
/// candidates at a time; the result does not depend on it), and replays the
/// shrunk one twice (its trace, and does that repeat?).
pub fn investigate(
    seed: u64,
    scenario: &Scenario,
    first_trace: &str,
    violation: Violation,
    world: &WorldOptions,
    shrink_budget: usize,
    jobs: usize,
) -> Finding {
    let pool = (jobs > 1).then(|| shrink::pool(jobs));
    investigate_in(
        seed,
        scenario,
        first_trace,
        violation,
        world,
        shrink_budget,
        pool.as_ref(),
    )
}

/// [`investigate`], shrinking on `pool` (or on this thread alone).
fn investigate_in(
    seed: u64,
    scenario: &Scenario,
    first_trace: &str,
    violation: Violation,
    world: &WorldOptions,
    shrink_budget: usize,
    pool: Option<&rayon::ThreadPool>,
) -> Finding {
    let again = simulate(scenario, world).trace.render();
    let replay = Replay::compare(first_trace, &again);
    let clause = violation.clause;
    let (minimal, shrink_runs) = shrink::shrink_in(scenario, world, clause, shrink_budget, pool);
    let (minimal_trace, minimal_replay, minimal_violation) = if minimal == *scenario {
        // Nothing shrank (or no budget): the two runs above are the minimal's.
        (
            first_trace.to_owned(),
            replay.clone(),
            Some(violation.clone()),
        )
    } else {
        let first = simulate(&minimal, world);
        let second = simulate(&minimal, world).trace.render();
        let trace = first.trace.render();
        let found = judge_run(&first, &minimal, &world.timers)
            .into_iter()
            .find(|v| v.clause == clause);
        let replay = Replay::compare(&trace, &second);
        (trace, replay, found)
    };
    Finding {
        seed,
        clause,
        violation,
        replay,
        minimal_replay,
        minimal,
        minimal_violation,
        minimal_trace,
        shrink_runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_names_the_first_differing_line() {
        assert_eq!(Replay::compare("a\nb\n", "a\nb\n"), Replay::Identical);
        assert_eq!(
            Replay::compare("a\nb\nc", "a\nx\nc"),
            Replay::Diverged {
                line: 1,
                first: "b".into(),
                second: "x".into()
            }
        );
        let shorter = Replay::compare("a\nb", "a");
        assert_eq!(
            shorter,
            Replay::Diverged {
                line: 1,
                first: "b".into(),
                second: "(end of trace)".into()
            }
        );
    }
}

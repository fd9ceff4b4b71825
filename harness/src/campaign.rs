//! The library's front door: a [`Campaign`] runs a server — yours, or the
//! reference server — through seeded, generated scenarios in the simulated
//! world, judges every trace, and investigates the first failure (does it
//! replay? what is the smallest scenario that still fails?).
//!
//! ```no_run
//! # async fn serve(_l: harness::Listener, _e: harness::ServerEnv) -> std::io::Result<()> { Ok(()) }
//! harness::Campaign::new()
//!     .server(|listener, env| serve(listener, env))
//!     .seeds(0..50)
//!     .run()
//!     .assert_clean();
//! ```
//!
//! Environment variables steer a campaign from outside the test, so the line a
//! failure prints replays it: `HARNESS_SCENARIO=FILE` runs one saved scenario,
//! `HARNESS_SEED=N` one seed, `HARNESS_CASES=N` the first N seeds of the range.

use std::fmt::Write as _;
use std::future::IntoFuture;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client::ClientConfig;
use crate::faults::FaultMenu;
use crate::hunt::{self, HuntPlan, Seeds, SHRINK_BUDGET};
use crate::judge::judge_run;
use crate::render;
use crate::scenario::{GenerateOptions, Scenario, ScenarioError};
use crate::world::{
    simulate, Listener, Reference, Server, ServerEnv, ServerExit, ServerTimers, WorldOptions,
};

pub use crate::hunt::{Finding, Replay};

/// A campaign: which server, which scenarios, and how to explore them.
#[derive(Clone, Debug)]
pub struct Campaign {
    world: WorldOptions,
    server_name: String,
    generate: GenerateOptions,
    seeds: Range<u64>,
    scenario: Option<PathBuf>,
    hunt: Option<Duration>,
    shrink_budget: usize,
    jobs: usize,
}

impl Default for Campaign {
    fn default() -> Self {
        Self::new()
    }
}

impl Campaign {
    /// A campaign against the reference server: 6 users, 60 s active phase,
    /// every fault, seeds `0..20`, socket.io's default timers.
    pub fn new() -> Self {
        Self {
            world: WorldOptions::default(),
            server_name: "the reference server".into(),
            generate: GenerateOptions {
                users: 6,
                active_ms: 60_000,
                faults: FaultMenu::all(),
                timers: ServerTimers::default(),
                tokens: false,
                client_mix: true,
            },
            seeds: 0..20,
            scenario: None,
            hunt: None,
            shrink_budget: SHRINK_BUDGET,
            jobs: crate::hunt::default_jobs(),
        }
    }

    /// Simulations run side by side (default: the available cores); the
    /// report is the same whatever the number.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// The server under test: a function from the simulated listener and the
    /// environment to its serve future (anything `IntoFuture`, ending in `()` or
    /// a `Result` whose error prints), called at every run.
    pub fn server<F, Fut>(self, server: F) -> Self
    where
        F: Fn(Listener, ServerEnv) -> Fut + Send + Sync + 'static,
        Fut: IntoFuture,
        Fut::IntoFuture: 'static,
        Fut::Output: ServerExit,
    {
        self.server_impl(server)
    }

    /// The server under test, as any [`Server`] implementation.
    pub fn server_impl<S: Server + 'static>(mut self, server: S) -> Self {
        self.world.server = Arc::new(server);
        self.server_name = "the server under test".into();
        self
    }

    /// The reference server, configured (bug switches, timers); its timers are
    /// taken over.
    pub fn reference(mut self, reference: Reference) -> Self {
        let timers = reference.timers();
        self.world.server = Arc::new(reference);
        self.server_name = "the reference server".into();
        self.timers(timers)
    }

    /// The timers the server runs with (sizes each scenario's heal phase and
    /// the M5 ack timeout the checkers allow).
    pub fn timers(mut self, timers: ServerTimers) -> Self {
        self.world.timers = timers;
        self.generate.timers = timers;
        self
    }

    /// Users per generated scenario (1 to 1000).
    pub fn users(mut self, users: usize) -> Self {
        self.generate.users = users.clamp(1, crate::scenario::MAX_USERS);
        self
    }

    /// The active phase of each generated scenario (a heal phase follows).
    pub fn duration(mut self, active: Duration) -> Self {
        self.generate.active_ms = u64::try_from(active.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1_000, crate::scenario::MAX_ACTIVE_MS);
        self
    }

    /// Which faults the generator may pick from.
    pub fn faults(mut self, faults: FaultMenu) -> Self {
        self.generate.faults = faults;
        self
    }

    /// The seeds to run (each a scenario and a fault mix).
    pub fn seeds(mut self, seeds: Range<u64>) -> Self {
        self.seeds = seeds;
        self
    }

    /// Run `cases` seeds from the start of the range (like `PROPTEST_CASES`;
    /// `HARNESS_CASES` overrides it from outside).
    pub fn cases(mut self, cases: u64) -> Self {
        self.seeds = self.seeds.start..self.seeds.start.saturating_add(cases);
        self
    }

    /// Run this one scenario file (a finding's saved scenario) instead.
    pub fn scenario(mut self, path: impl Into<PathBuf>) -> Self {
        self.scenario = Some(path.into());
        self
    }

    /// Hunt: run seeds from the start of the range until `budget` of wall
    /// time is spent (instead of exactly the range).
    pub fn hunt(mut self, budget: Duration) -> Self {
        self.hunt = Some(budget);
        self
    }

    /// Most simulations a failure's shrink may spend (default 400).
    pub fn shrink_budget(mut self, runs: usize) -> Self {
        self.shrink_budget = runs;
        self
    }

    /// The reference client's timers.
    pub fn client(mut self, client: ClientConfig) -> Self {
        self.world.client = client;
        self
    }

    /// Runs the campaign.
    pub fn run(&self) -> CampaignReport {
        let scenario_file = env_path("HARNESS_SCENARIO").or_else(|| self.scenario.clone());
        let mut report = CampaignReport {
            server: self.server_name.clone(),
            seeds: self.seeds.clone(),
            seeds_run: 0,
            scenario_file: scenario_file.clone(),
            finding: None,
            error: None,
            saved: None,
            test_name: test_name(),
            deterministic_build: cfg!(tokio_unstable),
        };
        match scenario_file {
            Some(path) => self.run_file(path, &mut report),
            None => self.run_seeds(&mut report),
        }
        report
    }

    fn run_file(&self, path: PathBuf, report: &mut CampaignReport) {
        let scenario = match Scenario::load(&path) {
            Ok(scenario) => scenario,
            Err(e) => return report.error = Some(e.to_string()),
        };
        report.seeds = scenario.seed..scenario.seed.saturating_add(1);
        report.seeds_run = 1;
        let outcome = simulate(&scenario, &self.world);
        if let Some(error) = outcome.error {
            return report.error = Some(format!("the simulation failed: {error}"));
        }
        let violations = judge_run(&outcome, &scenario, &self.world.timers);
        if let Some(first) = violations.into_iter().next() {
            // Already minimal (or as the user wrote it): replayed, not shrunk.
            report.finding = Some(hunt::investigate(
                scenario.seed,
                &scenario,
                &outcome.trace.render(),
                first,
                &self.world,
                0,
                1,
            ));
        }
    }

    fn run_seeds(&self, report: &mut CampaignReport) {
        let mut range = self.seeds.clone();
        if let Some(seed) = env_u64("HARNESS_SEED") {
            range = seed..seed.saturating_add(1);
        } else if let Some(cases) = env_u64("HARNESS_CASES") {
            range = range.start..range.start.saturating_add(cases);
        }
        report.seeds = range.clone();
        let plan = HuntPlan {
            seeds: match self.hunt {
                Some(budget) => Seeds::Budget {
                    first: range.start,
                    budget,
                },
                None => Seeds::Range(range),
            },
            generate: self.generate.clone(),
            world: self.world.clone(),
            shrink_budget: self.shrink_budget,
            jobs: self.jobs,
            clauses: Vec::new(),
        };
        let outcome = hunt::hunt(&plan, |_| {});
        report.seeds_run = outcome.seeds_run;
        if self.hunt.is_some() {
            // A budget has no range of its own: report the seeds it covered.
            let first = plan.seeds.first();
            report.seeds = first..first.saturating_add(outcome.seeds_run);
        }
        report.finding = outcome.finding;
        if let Some(finding) = &report.finding {
            report.saved = save_finding(finding, report.test_name.as_deref());
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// libtest names each test's thread after the test.
fn test_name() -> Option<String> {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_owned)
}

/// Saves the shrunk scenario where the replay line can point at it.
fn save_finding(finding: &Finding, test: Option<&str>) -> Option<Result<PathBuf, String>> {
    let dir = std::env::temp_dir().join("harness-findings");
    let stem = test
        .unwrap_or("campaign")
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-");
    let path = dir.join(format!("{stem}-seed-{}.json", finding.seed));
    let saved = std::fs::create_dir_all(&dir)
        .map_err(|e| ScenarioError::Write {
            path: dir.clone(),
            source: e,
        })
        .and_then(|()| finding.minimal.save(&path));
    Some(saved.map(|()| path).map_err(|e| e.to_string()))
}

/// What a campaign found: data for tests, and a `Display` that reads like
/// `harness sim`'s report.
#[derive(Clone, Debug)]
pub struct CampaignReport {
    /// Which server ran.
    pub server: String,
    /// The seeds asked for.
    pub seeds: Range<u64>,
    /// How many ran (a failure stops the campaign).
    pub seeds_run: u64,
    /// The scenario file run instead of seeds, if any.
    pub scenario_file: Option<PathBuf>,
    /// The first failure, investigated.
    pub finding: Option<Finding>,
    /// The campaign could not run (a bad scenario file, a server that stopped).
    pub error: Option<String>,
    /// Where the shrunk scenario was saved, or why it could not be.
    pub saved: Option<Result<PathBuf, String>>,
    /// The test that ran the campaign, for the replay line.
    pub test_name: Option<String>,
    /// Built with `--cfg tokio_unstable`, without which turmoil cannot seed
    /// the runtime's scheduling and traces may differ run to run.
    pub deterministic_build: bool,
}

impl CampaignReport {
    /// No violation and no error.
    pub fn is_clean(&self) -> bool {
        self.finding.is_none() && self.error.is_none()
    }

    /// Panics with the whole report unless the campaign is clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        if !self.is_clean() {
            panic!("the campaign is not clean:\n{self}");
        }
    }

    /// The command that replays the finding (the shrunk scenario when it was
    /// saved, the failing seed otherwise).
    pub fn replay_command(&self) -> Option<String> {
        let finding = self.finding.as_ref()?;
        let test = self.test_name.as_deref().unwrap_or("");
        let var = match &self.saved {
            Some(Ok(path)) => format!("HARNESS_SCENARIO={}", path.display()),
            _ => match &self.scenario_file {
                Some(path) => format!("HARNESS_SCENARIO={}", path.display()),
                None => format!("HARNESS_SEED={}", finding.seed),
            },
        };
        Some(format!("{var} cargo test {test}").trim_end().to_owned())
    }

    fn write_finding(&self, finding: &Finding, out: &mut String) {
        let _ = writeln!(
            out,
            "violation: {} — {} (seed {}, after {} seeds)",
            finding.clause,
            finding.clause.statement(),
            finding.seed,
            self.seeds_run
        );
        render::violation(&finding.violation, out);
        replay_line("the failing seed", &finding.replay, out);
        let m = &finding.minimal;
        let _ = writeln!(
            out,
            "shrunk in {} simulations to {}:",
            finding.shrink_runs,
            render::shape(m)
        );
        render::steps(m, out);
        if let Some(v) = &finding.minimal_violation {
            let _ = writeln!(out, "the shrunk scenario's violation:");
            render::violation(v, out);
        }
        replay_line("the shrunk scenario", &finding.minimal_replay, out);
        let _ = writeln!(out, "its trace:");
        for line in finding.minimal_trace.lines() {
            let _ = writeln!(out, "  {}", render::escape(line));
        }
        let _ = writeln!(
            out,
            "its scenario: {}",
            serde_json::to_string(m).unwrap_or_default()
        );
        match &self.saved {
            Some(Ok(path)) => {
                let _ = writeln!(out, "saved: {}", path.display());
            }
            Some(Err(e)) => {
                let _ = writeln!(out, "not saved: {e}");
            }
            None => {}
        }
        if let Some(command) = self.replay_command() {
            let _ = writeln!(out, "replay: {command}");
        }
    }
}

fn replay_line(what: &str, replay: &Replay, out: &mut String) {
    match replay {
        Replay::Identical => {
            let _ = writeln!(out, "replayed {what}: identical trace");
        }
        Replay::Diverged {
            line,
            first,
            second,
        } => {
            let _ = writeln!(
                out,
                "replayed {what}: the trace DIVERGED at line {line} — the server is not \
                 deterministic in the simulation (wall clock, OS randomness or hash order; \
                 see ServerEnv), so the replay line may not reproduce it:\n  first:  {}\n  second: {}",
                render::escape(first),
                render::escape(second)
            );
        }
    }
}

impl std::fmt::Display for CampaignReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        match &self.scenario_file {
            Some(path) => {
                let _ = writeln!(out, "campaign: {} on {}", path.display(), self.server);
            }
            None => {
                let _ = writeln!(
                    out,
                    "campaign: seeds {}..{} on {}",
                    self.seeds.start, self.seeds.end, self.server
                );
            }
        }
        if !self.deterministic_build {
            let _ = writeln!(
                out,
                "note: built without --cfg tokio_unstable: turmoil cannot seed the runtime's \
                 scheduling, so traces may differ run to run (add `[build] rustflags = \
                 [\"--cfg\", \"tokio_unstable\"]` to .cargo/config.toml)"
            );
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "error: {}", render::escape(error));
        }
        match &self.finding {
            Some(finding) => self.write_finding(finding, &mut out),
            None if self.error.is_none() => {
                let _ = writeln!(out, "clean: no violation in {} seeds", self.seeds_run);
            }
            None => {}
        }
        f.write_str(&out)
    }
}

//! The commands' arguments, their parsers and bounds, and the plans they turn
//! into.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use server_under_test::Bug;

use super::Format;
use crate::faults::FaultMenu;
use crate::hunt::{HuntPlan, Seeds, SHRINK_BUDGET};
use crate::scenario::{GenerateOptions, Scenario, ScenarioError, MAX_ACTIVE_MS};
use crate::spec::{Clause, Level};
use crate::world::WorldOptions;

/// What defines a simulated run: the same values give a byte-identical trace.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// The seed: scenario, fault plan, latencies and jitter all derive from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of simulated users.
    #[arg(long, alias = "clients", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub users: u64,
    /// Length of the active phase (steps and faults); a heal phase follows. At most 24h.
    #[arg(long, default_value = "120s", value_parser = parse_active)]
    pub duration: Duration,
    /// Faults: all, none, or a comma list of latency,blip,partition,oneway,hold,crash,freeze.
    #[arg(long, default_value = "all", value_parser = FaultMenu::parse)]
    pub faults: FaultMenu,
    /// Turn on a reference-server bug switch (repeatable).
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    pub bugs: Vec<Bug>,
    /// The contract the reference server speaks: v1 (the `username` header)
    /// or v2 (HS256 tokens; users present valid and broken ones). A saved v2
    /// scenario needs no flag: its users' tokens say so.
    #[arg(long, value_enum, default_value_t = Contract::V1)]
    pub contract: Contract,
    /// Run this scenario file (from `hunt` or hand-written) instead of generating
    /// one from the seed; --users, --duration and --faults are then ignored.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Write the scenario and trace as JSON to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl SimArgs {
    /// The scenario these arguments name: read from `--scenario`, or generated.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        match &self.scenario {
            Some(path) => Scenario::load(path),
            None => Ok(Scenario::generate(
                self.seed,
                &GenerateOptions {
                    tokens: self.contract == Contract::V2,
                    ..generate_options(self.users, self.duration, &self.faults)
                },
            )),
        }
    }

    /// The world for `scenario`: the reference server with the bug switches
    /// on, speaking v2 when the scenario's users present tokens.
    pub fn world(&self, scenario: &Scenario) -> WorldOptions {
        WorldOptions::reference_for(scenario, &self.bugs)
    }

    /// The command line that reproduces this run.
    pub fn command(&self, verb: &str) -> String {
        if let Some(path) = &self.scenario {
            return with_bugs(
                format!("harness {verb} --scenario {}", path.display()),
                &self.bugs,
            );
        }
        let mut line = format!(
            "harness {verb} --seed {} --users {} --duration {} --faults {}",
            self.seed,
            self.users,
            humantime::format_duration(self.duration),
            self.faults.name()
        );
        if self.contract == Contract::V2 {
            line.push_str(" --contract v2");
        }
        with_bugs(line, &self.bugs)
    }
}

/// Options of `harness hunt`.
#[derive(Debug, Clone, Args)]
pub struct HuntArgs {
    /// First seed to try (then seed+1, …).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exactly this seed range, `A..B` (B excluded), deterministic; ignores --seed.
    #[arg(long, value_parser = parse_seed_range)]
    pub seeds: Option<std::ops::Range<u64>>,
    /// Wall-clock budget when no --seeds range is given.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub budget: Duration,
    /// Users per generated scenario.
    #[arg(long, alias = "clients", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub users: u64,
    /// Active phase per generated scenario (at most 24h).
    #[arg(long, default_value = "60s", value_parser = parse_active)]
    pub duration: Duration,
    /// Faults the swarm may pick from: all, none, or a comma list.
    #[arg(long, default_value = "all", value_parser = FaultMenu::parse)]
    pub faults: FaultMenu,
    /// Reference-server bug switch (repeatable).
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    pub bugs: Vec<Bug>,
    /// Hunt for this clause only (repeatable, e.g. `--clause M5` for the lost
    /// message your users report): violations of other clauses are passed
    /// over, not findings. Default: any clause.
    #[arg(long = "clause", value_name = "ID", value_parser = parse_clause)]
    pub clauses: Vec<Clause>,
    /// The contract: v1, or v2 (token identity; scenarios draw token policies).
    #[arg(long, value_enum, default_value_t = Contract::V1)]
    pub contract: Contract,
    /// Simulations run side by side (default: the available cores); the
    /// findings, shrunk scenario and report are the same whatever N is.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Hunt a running server over real TCP instead of the simulated
    /// reference: each scenario's users go through fault proxies; the first
    /// violation is measured (its reproduction rate) and shrunk live.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target: scenarios played against the server at once (default:
    /// four per available core, 4 to 16: plays wait on the server's timers,
    /// not on a core), 1 to 64.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: Option<u64>,
    /// With --target: plays that measure a finding's reproduction rate and
    /// judge each shrink candidate (kept on a strict majority), 1 to 20.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub confirmations: u64,
    /// With --target: most shrink candidates to try (each costs
    /// --confirmations plays).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub shrink_budget: u64,
    /// With --target: multiply every wait by this (slow servers or machines), 0.1 to 100.
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    pub timeout_scale: f64,
    /// With --target, against a contract v2 server: the shared HS256 secret,
    /// in a file (or HARNESS_JWT_SECRET); scenarios then draw token policies.
    #[arg(long, value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// With --target: the server's push-ack timeout (M5), which Engine.IO does
    /// not announce; it sizes each scenario's heal phase. 50 to 600000.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub ack_timeout_ms: u64,
    /// Where to write the shrunk scenario (default: `hunt-<seed>.json`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --target: how the server is deployed (--path, --ca-cert).
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl HuntArgs {
    /// The plan these arguments describe.
    pub fn plan(&self) -> HuntPlan {
        HuntPlan {
            seeds: match &self.seeds {
                Some(range) => Seeds::Range(range.clone()),
                None => Seeds::Budget {
                    first: self.seed,
                    budget: self.budget,
                },
            },
            generate: GenerateOptions {
                tokens: self.contract == Contract::V2,
                ..generate_options(self.users, self.duration, &self.faults)
            },
            world: match self.contract {
                Contract::V1 => WorldOptions::reference(&self.bugs),
                Contract::V2 => WorldOptions::reference_v2(&self.bugs),
            },
            shrink_budget: SHRINK_BUDGET,
            jobs: self
                .jobs
                .map_or_else(crate::hunt::default_jobs, |j| j as usize),
            clauses: self.clauses.clone(),
        }
    }

    /// The replay command for a saved scenario.
    pub fn replay_command(&self, path: &Path) -> String {
        with_bugs(
            format!("harness replay --scenario {}", path.display()),
            &self.bugs,
        )
    }
}

/// How a deployed server is reached, when it is not plain `http://` with
/// Socket.IO at `/socket.io/`, and restarted (check, hunt --target, replay
/// --target).
#[derive(Debug, Clone, Default, Args)]
pub struct ReachArgs {
    /// Where the server mounts Socket.IO, e.g. /chat/socket.io/ (socket.io-client's
    /// `path` option); the HTTP endpoints stay at the root.
    #[arg(long = "path", value_name = "PATH")]
    pub socketio_path: Option<String>,
    /// For https:// servers: CA certificates (PEM) trusted besides Mozilla's
    /// roots; a self-signed certificate is its own CA. Verification is never off.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// A command (run with sh -c) that restarts the server: where a scenario
    /// restarts it, and with --level robust a run of its own (mail across the
    /// restart, every user reconnecting at once, a stale cursor). It must exit
    /// 0 within 120 s; the server must answer /health within 15 s (scaled).
    #[arg(long, value_name = "CMD", value_parser = non_empty_command)]
    pub restart_cmd: Option<String>,
    /// The server's store (mailboxes, ids, retries) survives --restart-cmd (as
    /// with Redis behind it): what it held must still arrive after.
    #[arg(long, requires = "restart_cmd")]
    pub restart_keeps_store: bool,
    /// One node's own URL in a deployment of several nodes behind the public
    /// URL (repeat it for each node; --level cluster): users are placed on
    /// chosen nodes so every pair of nodes is exercised.
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<String>,
    /// A command (run with sh -c, the node's URL as $1) that kills one node
    /// without a word, for N3 (--level cluster): run mid-check on the last
    /// --node. It must exit 0 within 120 s.
    #[arg(long, value_name = "CMD", value_parser = non_empty_command, requires = "nodes")]
    pub kill_node_cmd: Option<String>,
    /// A command (sh -c, the node's URL as $1) that cuts the last --node off
    /// from the deployment's shared state (its Redis) while it keeps serving,
    /// for N4 (--level cluster); --adapter-heal-cmd undoes it.
    #[arg(long, value_name = "CMD", value_parser = non_empty_command, requires_all = ["nodes", "adapter_heal_cmd"])]
    pub adapter_cut_cmd: Option<String>,
    /// A command (sh -c, the node's URL as $1) that reconnects the node
    /// --adapter-cut-cmd cut off.
    #[arg(long, value_name = "CMD", value_parser = non_empty_command, requires = "adapter_cut_cmd")]
    pub adapter_heal_cmd: Option<String>,
}

fn non_empty_command(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("an empty command restarts nothing".into())
    } else {
        Ok(text.to_owned())
    }
}

impl ReachArgs {
    /// Whether any of them was given (they need a live server).
    pub fn given(&self) -> bool {
        self.socketio_path.is_some()
            || self.ca_cert.is_some()
            || self.restart_cmd.is_some()
            || !self.nodes.is_empty()
    }

    /// The options only `check` uses (a hunt or a replay plays scenarios;
    /// killing a node or cutting it off is a check's own run): their names,
    /// when given.
    pub fn check_only(&self) -> Option<&'static str> {
        if self.kill_node_cmd.is_some() {
            Some("--kill-node-cmd")
        } else if self.adapter_cut_cmd.is_some() {
            Some("--adapter-cut-cmd")
        } else {
            None
        }
    }

    /// As the library takes it.
    pub fn reach(&self) -> crate::check::Reach {
        crate::check::Reach {
            socketio_path: self.socketio_path.clone(),
            ca_cert: self.ca_cert.clone(),
            restart: self
                .restart_cmd
                .clone()
                .map(|command| crate::check::RestartCommand {
                    command,
                    keeps_store: self.restart_keeps_store,
                }),
            nodes: self.nodes.clone(),
            kill_node: self.kill_node_cmd.clone(),
            adapter: self
                .adapter_cut_cmd
                .clone()
                .zip(self.adapter_heal_cmd.clone()),
        }
    }
}

/// Options of `harness check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The server's root URL, e.g. http://127.0.0.1:8000. Without one, the
    /// embedded reference server is started on loopback and checked.
    pub url: Option<String>,
    /// core: every MUST on a calm network; robust: also the SHOULDs under real
    /// faults through the built-in fault proxy (waits out the server's ping
    /// timeout); secure: core plus contract v2's authenticated identity (a v1
    /// server fails it, with a demonstration).
    #[arg(long, value_enum, default_value_t = Level::Core)]
    pub level: Level,
    /// The HS256 secret a v2 server shares, in a file (trailing newline
    /// ignored): tokens are minted with it for every run. Or set
    /// HARNESS_JWT_SECRET. Never on the command line.
    #[arg(long, value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Write the report here instead of stdout (a one-line verdict still goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seed for user names, jitter and fault timing (default: a fresh one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiply every wait by this (slow servers or machines), 0.1 to 100.
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    pub timeout_scale: f64,
    /// Check N times, seeds SEED, SEED+1, …, and print per clause how often
    /// each verdict came: a clause whose verdict changes from seed to seed is
    /// marked UNSTABLE (a flaky server, or a flaky check). Exit 1 unless every
    /// check passed.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub repeat: u64,
    /// How the server is deployed (--path, --ca-cert).
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// Which contract the simulated reference server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Contract {
    /// Identity is the `username` header.
    V1,
    /// Identity is an HS256 token (H2, A1–A6).
    V2,
}

/// `--format` of `harness check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// For people.
    Text,
    /// Every field, traces included.
    Json,
    /// JUnit XML, one test case per clause.
    Junit,
}

pub(super) fn parse_scale(text: &str) -> Result<f64, String> {
    let scale: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if !(0.1..=100.0).contains(&scale) {
        return Err(format!("{scale} is outside 0.1..=100"));
    }
    Ok(scale)
}

fn parse_active(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) || duration > Duration::from_millis(MAX_ACTIVE_MS) {
        return Err(format!(
            "{} is outside 1s..=24h",
            humantime::format_duration(duration)
        ));
    }
    Ok(duration)
}

fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got '{text}'"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad start seed '{a}'"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad end seed '{b}'"))?;
    if a >= b {
        return Err(format!("empty seed range {a}..{b}"));
    }
    Ok(a..b)
}

fn parse_clause(id: &str) -> Result<Clause, String> {
    Clause::from_id(&id.to_ascii_uppercase()).ok_or_else(|| {
        format!("unknown clause '{id}'; use an id of the contract: T1, I3, P2, M5, L2, A1 …")
    })
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    let bug = Bug::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Bug::ALL
            .iter()
            .filter(|b| !b.cluster_only())
            .map(|b| b.name())
            .collect();
        format!("unknown bug '{name}'; known: {}", known.join(", "))
    })?;
    if bug.cluster_only() {
        return Err(format!(
            "'{name}' changes a node of a deployment of several (server-under-test --redis URL --node-id ID), and the simulated world has one server node: start two nodes behind a balancer and run harness check --level cluster against them (interop/cluster.sh)"
        ));
    }
    Ok(bug)
}

fn with_bugs(mut line: String, bugs: &[Bug]) -> String {
    for bug in bugs {
        line.push_str(&format!(" --bug {bug}"));
    }
    line
}

fn generate_options(users: u64, duration: Duration, faults: &FaultMenu) -> GenerateOptions {
    GenerateOptions {
        users: usize::try_from(users).unwrap_or(usize::MAX),
        active_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        faults: faults.clone(),
        ..GenerateOptions::default()
    }
}

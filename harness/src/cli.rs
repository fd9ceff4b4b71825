//! The `harness` command line: parse, run, render, exit code. Every report
//! starts with the seed and ends with the one command that replays the run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use server_under_test::Bug;

use crate::checkers::{check_all, summarize, Summary, Violation};
use crate::faults::FaultMenu;
use crate::scenario::{GenerateOptions, Scenario};
use crate::trace::render_event;
use crate::world::{simulate, WorldOptions};

/// Deterministic simulation and conformance harness for the chat presence protocol.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seeded simulation against the reference server and judge its trace.
    Sim(SimArgs),
    /// Re-run a simulation and print its full trace, one line per event.
    Replay {
        #[command(flatten)]
        sim: SimArgs,
        /// Print a Mermaid sequence diagram instead of the event list.
        #[arg(long)]
        mermaid: bool,
    },
    /// Explore seeds and fault mixes until a violation, then shrink it to a
    /// minimal scenario and print the command that replays it.
    Hunt(HuntArgs),
    /// Merge `hunt --format json` reports from several machines into one summary.
    HuntMerge {
        /// The report files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Summary format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check a running server, black-box over real TCP, clause by clause.
    Check(CheckArgs),
    /// Measure simulation speed, hunt speed, the real-network baseline and the
    /// reference server's push latency (build with --release).
    Bench {
        /// Fewer sizes and repetitions: about a minute.
        #[arg(long)]
        quick: bool,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Options of `harness check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The server's root URL, e.g. http://127.0.0.1:8000.
    pub url: String,
    /// core: every MUST on a calm network; robust: also the SHOULDs under real
    /// faults through the built-in fault proxy (waits out the server's ping timeout).
    #[arg(long, value_enum, default_value_t = CheckLevel::Core)]
    pub level: CheckLevel,
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
}

/// `--level` of `harness check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckLevel {
    /// The MUSTs.
    Core,
    /// The MUSTs and the SHOULDs under faults.
    Robust,
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

fn parse_scale(text: &str) -> Result<f64, String> {
    let scale: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if !(0.1..=100.0).contains(&scale) {
        return Err(format!("{scale} is outside 0.1..=100"));
    }
    Ok(scale)
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
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub clients: u64,
    /// Active phase per generated scenario.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Faults the swarm may pick from: all, none, or a comma list.
    #[arg(long, default_value = "all", value_parser = FaultMenu::parse)]
    pub faults: FaultMenu,
    /// Reference-server bug switch (repeatable).
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    pub bugs: Vec<Bug>,
    /// Where to write the shrunk scenario (default: hunt-<seed>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl HuntArgs {
    /// The scenario generation options.
    pub fn generate_options(&self) -> GenerateOptions {
        generate_options(self.clients, self.duration, &self.faults)
    }

    /// World options with the bug switches on.
    pub fn world(&self) -> WorldOptions {
        let mut world = WorldOptions::default();
        world.server.bugs = self.bugs.iter().copied().collect();
        world
    }

    /// The replay command for a saved scenario.
    pub fn replay_command(&self, path: &std::path::Path) -> String {
        with_bugs(
            format!("harness replay --scenario {}", path.display()),
            &self.bugs,
        )
    }
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

/// What defines a simulated run: the same values give a byte-identical trace.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// The seed: scenario, fault plan, latencies and jitter all derive from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of simulated users.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub clients: u64,
    /// Length of the active phase (steps and faults); a heal phase follows.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Faults: all, none, or a comma list of latency,blip,partition,oneway,hold,crash.
    #[arg(long, default_value = "all", value_parser = FaultMenu::parse)]
    pub faults: FaultMenu,
    /// Turn on a reference-server bug switch (repeatable).
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    pub bugs: Vec<Bug>,
    /// Run this scenario file (from `hunt` or hand-written) instead of generating
    /// one from the seed; --clients, --duration and --faults are then ignored.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Write the scenario and trace as JSON to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For machines.
    Json,
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    Bug::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug '{name}'; known: {}", known.join(", "))
    })
}

impl SimArgs {
    /// The scenario these arguments name: read from `--scenario`, or generated.
    pub fn scenario(&self) -> Result<Scenario, String> {
        match &self.scenario {
            Some(path) => load_scenario(path),
            None => Ok(Scenario::generate(
                self.seed,
                &generate_options(self.clients, self.duration, &self.faults),
            )),
        }
    }

    /// The world options these arguments ask for.
    pub fn world(&self) -> WorldOptions {
        let mut world = WorldOptions::default();
        world.server.bugs = self.bugs.iter().copied().collect();
        world
    }

    /// The command line that reproduces this run.
    pub fn command(&self, verb: &str) -> String {
        if let Some(path) = &self.scenario {
            return with_bugs(
                format!("harness {verb} --scenario {}", path.display()),
                &self.bugs,
            );
        }
        let line = format!(
            "harness {verb} --seed {} --clients {} --duration {} --faults {}",
            self.seed,
            self.clients,
            humantime::format_duration(self.duration),
            menu_name(&self.faults)
        );
        with_bugs(line, &self.bugs)
    }
}

fn with_bugs(mut line: String, bugs: &[Bug]) -> String {
    for bug in bugs {
        line.push_str(&format!(" --bug {bug}"));
    }
    line
}

fn generate_options(clients: u64, duration: Duration, faults: &FaultMenu) -> GenerateOptions {
    GenerateOptions {
        users: usize::try_from(clients).unwrap_or(usize::MAX),
        active_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        faults: faults.clone(),
    }
}

/// Reads a scenario file, with a clear error for a missing file or bad JSON.
pub fn load_scenario(path: &std::path::Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
    let scenario: Scenario = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a scenario: {e}", path.display()))?;
    if let Some(step) = scenario
        .steps
        .iter()
        .find(|s| s.user >= scenario.users.len())
    {
        return Err(format!(
            "{}: a step names user {} but there are {} users",
            path.display(),
            step.user,
            scenario.users.len()
        ));
    }
    if let Some(fault) = scenario
        .faults
        .faults
        .iter()
        .find(|f| !f.kind.is_simulated())
    {
        return Err(format!(
            "{}: fault {:?} exists on real TCP only (harness check --level robust), not in the simulation",
            path.display(),
            fault.kind
        ));
    }
    Ok(scenario)
}

fn menu_name(menu: &FaultMenu) -> String {
    if *menu == FaultMenu::all() {
        return "all".into();
    }
    let names: Vec<&str> = [
        (menu.latency, "latency"),
        (menu.blip, "blip"),
        (menu.partition, "partition"),
        (menu.oneway, "oneway"),
        (menu.hold, "hold"),
        (menu.crash, "crash"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Runs the command line; the exit code is 0 clean, 1 violations, 2 usage or run errors.
pub fn main() -> ExitCode {
    // RUST_LOG=server_under_test=info shows the reference server's own log
    // (its connects, disconnects and deliveries) beside a run, on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Sim(args) => run_sim(&args, false, false),
        Command::Replay { sim, mermaid } => run_sim(&sim, true, mermaid),
        Command::Hunt(args) => crate::hunt::run(&args),
        Command::HuntMerge { files, format } => crate::hunt::run_merge(&files, format),
        Command::Check(args) => run_check(&args),
        Command::Bench { quick, format } => {
            if cfg!(debug_assertions) {
                eprintln!("note: a debug build; numbers mean little without --release");
            }
            let report = crate::bench::run(quick, |what| eprintln!("bench: {what} …"));
            match format {
                Format::Text => print!("{}", crate::bench::text(&report)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                ),
            }
            ExitCode::SUCCESS
        }
    }
}

/// One run's report.
#[derive(serde::Serialize)]
struct Report<'a> {
    seed: u64,
    scenario: &'a Scenario,
    summary: Summary,
    violations: &'a [Violation],
    replay: String,
    trace_hash: String,
}

fn run_sim(args: &SimArgs, full_trace: bool, mermaid: bool) -> ExitCode {
    let scenario = match args.scenario() {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let world = args.world();
    if args.format == Format::Text {
        print_plan(args, &scenario);
    }
    let outcome = simulate(&scenario, &world);
    if let Some(error) = &outcome.error {
        eprintln!("error: the simulation failed: {error}");
        eprintln!("replay: {}", args.command("replay"));
        return ExitCode::from(2);
    }
    let trace = outcome.trace;
    if let Some(path) = &args.trace {
        let saved = serde_json::json!({"scenario": &scenario, "trace": &trace});
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&saved).unwrap_or_default(),
        ) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let violations = check_all(&trace, &scenario);
    let summary = summarize(&trace, &scenario);
    let report = Report {
        seed: args.seed,
        scenario: &scenario,
        summary,
        violations: &violations,
        replay: args.command("replay"),
        trace_hash: trace.hash_hex(),
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => {
            if mermaid {
                print!("{}", crate::trace::mermaid(&trace));
            } else if full_trace {
                print!("{}", trace.render());
            }
            print_report(&report);
        }
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_plan(args: &SimArgs, scenario: &Scenario) {
    println!("seed: {}", args.seed);
    println!(
        "scenario: {} users, {} steps, active {} + heal {}",
        scenario.users.len(),
        scenario.steps.len(),
        humantime::format_duration(Duration::from_millis(scenario.active_ms)),
        humantime::format_duration(Duration::from_millis(scenario.heal_ms)),
    );
    for user in &scenario.users {
        println!(
            "  user {:<12} {:?} {:?} header={:?}",
            user.name, user.profile, user.open, user.header
        );
    }
    let plan = &scenario.faults;
    println!(
        "fault plan: latency {}..{} ms, {} faults",
        plan.latency_ms_min,
        plan.latency_ms_max,
        plan.faults.len()
    );
    for fault in &plan.faults {
        println!(
            "  {:>9.3}s  {:<4} {:?} for {} ms",
            fault.at_ms as f64 / 1000.0,
            fault.host,
            fault.kind,
            fault.duration_ms
        );
    }
    if !args.bugs.is_empty() {
        let bugs: Vec<String> = args.bugs.iter().map(ToString::to_string).collect();
        println!("server bugs: {}", bugs.join(", "));
    }
}

fn print_report(report: &Report<'_>) {
    let s = &report.summary;
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    println!(
        "summary: {} sent, {} accepted ({} via websocket, {} via polling), {} refused, {} lost, {} duplicates; push latency p50 {} p99 {}; {} events",
        s.sent, s.accepted, s.acked_websocket, s.acked_polling, s.refused, s.lost, s.duplicates,
        ms(s.push_latency_p50_ms), ms(s.push_latency_p99_ms), s.events
    );
    if report.violations.is_empty() {
        println!("violations: none");
    } else {
        let mut by_clause = std::collections::BTreeMap::new();
        for v in report.violations {
            *by_clause.entry(v.clause).or_insert(0) += 1;
        }
        let counts: Vec<String> = by_clause.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("violations: {}", counts.join(" "));
        for v in report.violations {
            println!(
                "  [{}] {:.3}s {} — {}",
                v.clause,
                v.at_ms as f64 / 1000.0,
                v.message,
                v.clause.statement()
            );
            for e in &v.evidence {
                println!("      {}", render_event(e));
            }
        }
        println!("replay: {}", report.replay);
    }
    println!("trace-hash: {}", report.trace_hash);
}

fn run_check(args: &CheckArgs) -> ExitCode {
    use crate::check::{check, report, CheckOptions, Target};
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let options = CheckOptions {
        level: match args.level {
            CheckLevel::Core => crate::spec::Level::Core,
            CheckLevel::Robust => crate::spec::Level::Robust,
        },
        seed,
        timeout_scale: args.timeout_scale,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let target = Target::resolve(&args.url).await?;
        if args.format == CheckFormat::Text && args.out.is_none() {
            eprintln!(
                "checking {} at level {:?} with seed {seed} …",
                target.url, args.level
            );
        }
        check(&target, &options).await
    });
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rendered = match args.format {
        CheckFormat::Text => report::text(&report),
        CheckFormat::Json => report::json(&report),
        CheckFormat::Junit => report::junit(&report),
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &rendered) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            print!("{}", report::text(&report));
            println!("report: {}", path.display());
        }
        None => print!("{rendered}"),
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A seed for a check run (outside any simulation, so the clock may be read).
fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000_000)
}

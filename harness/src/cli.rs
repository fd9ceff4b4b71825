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
use crate::trace::{render_event, Trace};
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
    /// The scenario these arguments generate.
    pub fn scenario(&self) -> Scenario {
        let options = GenerateOptions {
            users: usize::try_from(self.clients).unwrap_or(usize::MAX),
            active_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            faults: self.faults.clone(),
        };
        Scenario::generate(self.seed, &options)
    }

    /// The world options these arguments ask for.
    pub fn world(&self) -> WorldOptions {
        let mut world = WorldOptions::default();
        world.server.bugs = self.bugs.iter().copied().collect();
        world
    }

    /// The command line that reproduces this run.
    pub fn command(&self, verb: &str) -> String {
        let mut line = format!(
            "harness {verb} --seed {} --clients {} --duration {} --faults {}",
            self.seed,
            self.clients,
            humantime::format_duration(self.duration),
            menu_name(&self.faults)
        );
        for bug in &self.bugs {
            line.push_str(&format!(" --bug {bug}"));
        }
        line
    }
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
    let scenario = args.scenario();
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

/// The trace as one string (used by tests).
pub fn render(trace: &Trace) -> String {
    trace.render()
}

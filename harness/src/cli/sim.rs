//! `harness sim` and `harness replay`: one seeded simulation, judged.

use std::fmt::Write as _;

use super::{json, Exit, Format, SimArgs};
use crate::judge::{judge_run, summarize, Summary, Violation};
use crate::render;
use crate::scenario::Scenario;
use crate::world::simulate;

/// What to print besides the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// The report only.
    Report,
    /// Every event, then the report.
    Trace,
    /// A Mermaid sequence diagram, then the report.
    Mermaid,
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

/// Runs `sim` or `replay`.
pub fn run(args: &SimArgs, show: Show) -> Exit {
    let scenario = match args.scenario() {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if args.format == Format::Text {
        print!("{}", plan(args, &scenario));
    }
    let world = args.world(&scenario);
    let outcome = simulate(&scenario, &world);
    if let Some(error) = &outcome.error {
        eprintln!("error: the simulation failed: {error}");
        eprintln!("replay: {}", args.command("replay"));
        return Exit::Usage;
    }
    let violations = judge_run(&outcome, &scenario, &world.timers);
    let trace = &outcome.trace;
    if let Some(path) = &args.trace {
        let saved = serde_json::json!({
            "scenario": &scenario,
            "trace": &trace,
            "server": &outcome.server_log,
        });
        if let Err(e) = std::fs::write(path, json(&saved)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Exit::Usage;
        }
    }
    let report = Report {
        seed: scenario.seed,
        scenario: &scenario,
        summary: summarize(trace, &scenario),
        violations: &violations,
        replay: args.command("replay"),
        trace_hash: trace.hash_hex(),
    };
    match args.format {
        Format::Json => println!("{}", json(&report)),
        Format::Text => {
            match show {
                Show::Report => {}
                Show::Trace => print!("{}", render::escape(&trace.render())),
                Show::Mermaid => print!("{}", render::escape(&crate::trace::mermaid(trace))),
            }
            print!("{}", text(&report));
        }
    }
    if violations.is_empty() {
        Exit::Clean
    } else {
        Exit::Violations
    }
}

fn plan(args: &SimArgs, scenario: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "seed: {}", scenario.seed);
    let _ = writeln!(out, "scenario: {}", render::shape(scenario));
    render::plan(scenario, &mut out);
    if !args.bugs.is_empty() {
        let bugs: Vec<String> = args.bugs.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "server bugs: {}", bugs.join(", "));
    }
    out
}

fn text(report: &Report<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", render::summary(&report.summary));
    let _ = writeln!(out, "{}", render::counts(report.violations));
    if !report.violations.is_empty() {
        for v in report.violations {
            render::violation(v, &mut out);
        }
        let _ = writeln!(out, "replay: {}", report.replay);
    }
    let _ = writeln!(out, "trace-hash: {}", report.trace_hash);
    out
}

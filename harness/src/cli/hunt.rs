//! `harness hunt` and `harness hunt-merge`: render what the library found,
//! save the shrunk scenario, pick the exit code.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{json, Exit, Format, HuntArgs};
use crate::hunt::{hunt, HuntReport, Replay};
use crate::render;

/// The `hunt` command.
pub fn run(args: &HuntArgs) -> Exit {
    if let Some(flag) = args.reach.check_only() {
        eprintln!("error: {flag} is for harness check --level cluster, not for a hunt");
        return Exit::Usage;
    }
    if let Some(url) = &args.target {
        return run_live(args, url);
    }
    if args.reach.given() {
        eprintln!("error: --path, --ca-cert, --restart-cmd and --node are for a live server: add --target URL");
        return Exit::Usage;
    }
    let plan = args.plan();
    let bar = spinner();
    let outcome = hunt(&plan, |seed| {
        bar.set_message(format!("seed {seed}"));
        bar.tick();
    });
    bar.finish_and_clear();
    let first_seed = plan.seeds.first();
    let seeds_run = outcome.seeds_run;
    let Some(finding) = outcome.finding else {
        let report = HuntReport {
            first_seed,
            seeds_run,
            finding: None,
            scenario_file: None,
            replay: None,
        };
        match args.format {
            Format::Json => println!("{}", json(&report)),
            Format::Text => println!(
                "clean: no violation in {seeds_run} seeds ({first_seed}..{})",
                first_seed.saturating_add(seeds_run)
            ),
        }
        return Exit::Clean;
    };
    let Some(path) = save_minimal(args, finding.seed, finding.clause, &finding.minimal) else {
        return Exit::Usage;
    };
    let replay = args.replay_command(&path);
    match args.format {
        Format::Json => {
            let report = HuntReport {
                first_seed,
                seeds_run,
                scenario_file: Some(path),
                replay: Some(replay),
                finding: Some(finding),
            };
            println!("{}", json(&report));
        }
        Format::Text => print!("{}", text(&finding, seeds_run, &path, &replay)),
    }
    Exit::Violations
}

/// The finding for people: clause, message, the shrunk scenario, the file
/// and the replay line.
fn text(
    finding: &crate::hunt::Finding,
    seeds_run: u64,
    path: &std::path::Path,
    replay: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "found: {} — {} (seed {}, after {seeds_run} seeds)",
        finding.clause,
        finding.clause.statement(),
        finding.seed
    );
    let _ = writeln!(out, "  {}", render::escape(&finding.violation.message));
    let m = &finding.minimal;
    let _ = writeln!(
        out,
        "shrunk in {} simulations to {} users, {} steps, {} faults:",
        finding.shrink_runs,
        m.users.len(),
        m.steps.len(),
        m.faults.faults.len()
    );
    render::steps(m, &mut out);
    if let Replay::Diverged { line, .. } = &finding.minimal_replay {
        let _ = writeln!(
            out,
            "warning: the shrunk scenario's trace differs run to run (line {line})"
        );
    }
    let _ = writeln!(out, "saved: {}", path.display());
    let _ = writeln!(out, "replay: {replay}");
    out
}

/// The `hunt-merge` command: reads report files, prints one summary; exit 1
/// when any machine found something, 2 when a file is unreadable.
pub fn merge(files: &[PathBuf], format: Format) -> Exit {
    let mut parts = Vec::new();
    for path in files {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| crate::hunt::Part::parse(&text));
        match parsed {
            Ok(part) => parts.push(part),
            Err(e) => {
                eprintln!("error: {} is not a hunt report: {e}", path.display());
                return Exit::Usage;
            }
        }
    }
    let merged = match crate::hunt::merge(&parts) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let reports = parts;
    match format {
        Format::Json => println!("{}", json(&merged)),
        Format::Text => {
            let ranges: Vec<String> = merged
                .covered
                .iter()
                .map(|r| format!("{}..{}", r.start, r.end))
                .collect();
            println!(
                "{} reports, {} seeds{}: {}",
                reports.len(),
                merged.seeds_run,
                merged
                    .target
                    .as_ref()
                    .map_or(String::new(), |t| format!(" against {t}")),
                ranges.join(" ")
            );
            for gap in &merged.gaps {
                println!("gap: seeds {}..{} were not run", gap.start, gap.end);
            }
            for (seed, clause, file, replay) in &merged.findings {
                println!(
                    "found {clause} at seed {seed}: {} — {}",
                    file.as_ref()
                        .map_or("-".into(), |f| f.display().to_string()),
                    replay.as_deref().unwrap_or("-")
                );
            }
            if merged.findings.is_empty() {
                println!("clean");
            }
        }
    }
    if merged.findings.is_empty() {
        Exit::Clean
    } else {
        Exit::Violations
    }
}

use crate::hunt::live::Confirmation;

/// `hunt --target URL`: the live hunt, its progress line, the saved scenario.
fn run_live(args: &HuntArgs, url: &str) -> Exit {
    use crate::check::{CheckOptions, Target};
    use crate::hunt::live::{hunt_live, LiveHuntPlan};
    let plan = LiveHuntPlan {
        seeds: args.plan().seeds,
        users: usize::try_from(args.users).unwrap_or(usize::MAX),
        active_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        faults: args.faults.clone(),
        concurrency: args
            .concurrency
            .map_or_else(crate::hunt::live::default_concurrency, |k| k as usize),
        confirmations: args.confirmations as usize,
        shrink_budget: args.shrink_budget as usize,
        ack_timeout_ms: args.ack_timeout_ms,
        clauses: args.clauses.clone(),
    };
    let secret = match super::check::issuer_from(args.jwt_secret_file.as_deref()) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let mut options = CheckOptions {
        level: crate::spec::Level::Robust,
        seed: plan.seeds.first(),
        timeout_scale: args.timeout_scale,
        tokens: None,
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let bar = spinner();
    let budget = match &plan.seeds {
        crate::hunt::Seeds::Budget { budget, .. } => Some(*budget),
        crate::hunt::Seeds::Range(_) => None,
    };
    let outcome = runtime.block_on(async {
        let target = Target::resolve_with(url, &args.reach.reach()).await?;
        options.tokens = crate::check::live_tokens(&target, secret, options.patience()).await?;
        hunt_live(&target, &plan, &options, |p| {
            let rate = p.played as f64 / p.elapsed.as_secs_f64().max(0.001);
            let left = budget
                .map(|b| format!(", {} s left", b.saturating_sub(p.elapsed).as_secs()))
                .unwrap_or_default();
            bar.set_message(format!(
                "{}: {} scenarios ({rate:.2}/s), {} violating{left}",
                p.phase, p.played, p.violating
            ));
            bar.tick();
        })
        .await
    });
    bar.finish_and_clear();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let Some(finding) = &report.finding else {
        match args.format {
            Format::Json => println!(
                "{}",
                json(&crate::hunt::LiveHuntFile {
                    report,
                    scenario_file: None,
                    replay: None,
                })
            ),
            Format::Text => println!(
                "clean: no violation in {} scenarios against {url} ({:.1} s)",
                report.played,
                report.wall_ms as f64 / 1000.0
            ),
        }
        return Exit::Clean;
    };
    let Some(path) = save_minimal(args, finding.seed, finding.clause, &finding.minimal) else {
        return Exit::Usage;
    };
    // The trace of the play that broke it, beside the scenario.
    let trace_path = path.with_extension("seen.trace.txt");
    if let Err(e) = std::fs::write(&trace_path, &finding.seen_trace) {
        eprintln!("error: cannot write {}: {e}", trace_path.display());
        return Exit::Usage;
    }
    let replay = format!(
        "harness replay --target {url}{} --scenario {} --repeat {}",
        args.reach.reach().flags(),
        path.display(),
        finding.minimal_reproduced.1.max(5)
    );
    match args.format {
        Format::Json => println!(
            "{}",
            json(&crate::hunt::LiveHuntFile {
                report: report.clone(),
                scenario_file: Some(path),
                replay: Some(replay),
            })
        ),
        Format::Text => print!(
            "{}",
            live_text(finding, report.timers, &path, &trace_path, &replay)
        ),
    }
    match finding.confirmation {
        Confirmation::SeenOnce => Exit::SeenOnce,
        Confirmation::Confirmed | Confirmation::Flaky => Exit::Violations,
    }
}

/// A live finding for people: what was seen and how it held up; shrunk
/// only when confirmed.
fn live_text(
    finding: &crate::hunt::live::LiveFinding,
    timers: Option<crate::check::AnnouncedTimers>,
    path: &std::path::Path,
    trace_path: &std::path::Path,
    replay: &str,
) -> String {
    let mut out = String::new();
    let (n, of) = finding.reproduced;
    let (m, mof) = finding.minimal_reproduced;
    let verdict = match finding.confirmation {
        Confirmation::Confirmed => "confirmed",
        Confirmation::Flaky => "flaky: fewer than half of its replays broke it; not shrunk",
        Confirmation::SeenOnce => {
            "seen once: none of its replays broke it; not a confirmed finding, not shrunk"
        }
    };
    let _ = writeln!(
        out,
        "{}: {} — seed {}, reproduced {n}/{of} ({verdict})",
        finding.clause,
        finding.clause.statement(),
        finding.seed
    );
    let _ = writeln!(out, "what the play that broke it saw:");
    for v in &finding.seen {
        let _ = writeln!(
            out,
            "  [{}] {:.3}s {}",
            v.clause,
            v.at_ms as f64 / 1000.0,
            render::escape(&v.message)
        );
        for event in v.evidence.iter().take(8) {
            let _ = writeln!(
                out,
                "      {}",
                render::escape(&crate::trace::render_event(event))
            );
        }
    }
    if let Some(t) = timers {
        let _ = writeln!(
            out,
            "timing: the server's pingInterval {} ms, pingTimeout {} ms; the judges' bounds scale with --timeout-scale",
            t.ping_interval_ms, t.ping_timeout_ms
        );
    }
    if let Some((at_play, at_replays)) = &finding.load {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let _ = writeln!(
            out,
            "machine load (1/5/15 min, {cores} cores): {at_play} when it broke, {at_replays} after the replays"
        );
    }
    let _ = writeln!(out, "its trace: {}", trace_path.display());
    if finding.confirmation == Confirmation::Confirmed {
        let _ = writeln!(
            out,
            "shrunk in {} candidates to {} ({m}/{mof} of its plays broke {}):",
            finding.shrink_runs,
            render::shape(&finding.minimal),
            finding.clause
        );
        render::steps(&finding.minimal, &mut out);
    } else {
        let _ = writeln!(
            out,
            "not shrunk: the scenario as generated ({}):",
            render::shape(&finding.minimal)
        );
    }
    let _ = writeln!(out, "scenario: {}", path.display());
    let _ = writeln!(out, "replay: {replay}");
    out
}

/// The progress line both hunts draw.
fn spinner() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} hunting {elapsed} · {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

/// Saves the shrunk scenario to `--out` (default `hunt-<seed>.json`); `None`,
/// having said why, when it cannot be written: without the file the replay
/// line would point at nothing.
fn save_minimal(
    args: &HuntArgs,
    seed: u64,
    clause: crate::spec::Clause,
    minimal: &crate::scenario::Scenario,
) -> Option<PathBuf> {
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("hunt-{seed}.json")));
    match minimal.save(&path) {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("found {clause} at seed {seed}, but {e}");
            None
        }
    }
}

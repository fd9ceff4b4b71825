//! `harness hunt`: explore seeds (each with its own swarm fault mix) until a
//! violation, shrink it, save the minimal scenario and print how to replay it.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::checkers::{check_all, Violation};
use crate::cli::{Format, HuntArgs};
use crate::scenario::{Action, Scenario};
use crate::shrink::shrink;
use crate::spec::Clause;
use crate::world::simulate;

/// Most simulations a shrink may spend.
pub const SHRINK_BUDGET: usize = 400;

/// What a hunt found.
#[derive(Debug, Serialize, Deserialize)]
pub struct Finding {
    /// The seed whose scenario failed.
    pub seed: u64,
    /// The clause broken (the earliest violation's).
    pub clause: Clause,
    /// The violation as first seen.
    pub violation: Violation,
    /// The shrunk scenario.
    pub minimal: Scenario,
    /// Simulations spent shrinking.
    pub shrink_runs: usize,
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

/// Hunts until a violation or the end of the seeds/budget. Pure of I/O; the CLI
/// prints and saves.
pub fn hunt(args: &HuntArgs, mut on_seed: impl FnMut(u64)) -> (u64, Option<Finding>) {
    let world = args.world();
    let options = args.generate_options();
    let started = std::time::Instant::now();
    let seeds: Box<dyn Iterator<Item = u64>> = match &args.seeds {
        Some(range) => Box::new(range.clone()),
        None => Box::new(args.seed..),
    };
    let mut run = 0;
    for seed in seeds {
        if args.seeds.is_none() && started.elapsed() >= args.budget {
            break;
        }
        on_seed(seed);
        run += 1;
        let scenario = Scenario::generate(seed, &options);
        let outcome = simulate(&scenario, &world);
        let Some(first) = check_all(&outcome.trace, &scenario).into_iter().next() else {
            continue;
        };
        let (minimal, shrink_runs) = shrink(&scenario, &world, first.clause, SHRINK_BUDGET);
        return (
            run,
            Some(Finding {
                seed,
                clause: first.clause,
                violation: first,
                minimal,
                shrink_runs,
            }),
        );
    }
    (run, None)
}

/// The `hunt` command.
pub fn run(args: &HuntArgs) -> ExitCode {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} hunting {elapsed} · {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let (seeds_run, finding) = hunt(args, |seed| {
        bar.set_message(format!("seed {seed}"));
        bar.tick();
    });
    bar.finish_and_clear();
    let first_seed = args.seeds.as_ref().map_or(args.seed, |r| r.start);
    let Some(finding) = finding else {
        let report = HuntReport {
            first_seed,
            seeds_run,
            finding: None,
            scenario_file: None,
            replay: None,
        };
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            ),
            Format::Text => println!(
                "clean: no violation in {seeds_run} seeds ({first_seed}..{})",
                first_seed + seeds_run
            ),
        }
        return ExitCode::SUCCESS;
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("hunt-{}.json", finding.seed)));
    if let Err(e) = std::fs::write(
        &path,
        serde_json::to_string_pretty(&finding.minimal).unwrap_or_default(),
    ) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
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
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        Format::Text => {
            println!(
                "found: {} — {} (seed {}, after {seeds_run} seeds)",
                finding.clause,
                finding.clause.statement(),
                finding.seed
            );
            println!("  {}", finding.violation.message);
            let m = &finding.minimal;
            println!(
                "shrunk in {} simulations to {} users, {} steps, {} faults:",
                finding.shrink_runs,
                m.users.len(),
                m.steps.len(),
                m.faults.faults.len()
            );
            for user in &m.users {
                println!(
                    "  user {:<12} {:?} {:?} header={:?}",
                    user.name, user.profile, user.open, user.header
                );
            }
            for step in &m.steps {
                println!(
                    "  {:>9.3}s  {:<12} {}",
                    step.at_ms as f64 / 1000.0,
                    m.users[step.user].name,
                    describe(&step.action)
                );
            }
            for fault in &m.faults.faults {
                println!(
                    "  {:>9.3}s  {:<12} {:?} for {} ms",
                    fault.at_ms as f64 / 1000.0,
                    fault.host,
                    fault.kind,
                    fault.duration_ms
                );
            }
            println!("saved: {}", path.display());
            println!("replay: {replay}");
        }
    }
    ExitCode::from(1)
}

fn describe(action: &Action) -> String {
    match action {
        Action::Open => "open a tab".into(),
        Action::Close => "close the oldest tab".into(),
        Action::Send { to, content } => format!("send {content:?} to {to}"),
        Action::SendRaw { payload } => format!("send malformed {payload}"),
        Action::Poll => "poll the mailbox".into(),
        Action::Crash { down_ms } => format!("crash, restart after {down_ms} ms"),
    }
}

/// Several machines' `hunt --format json` reports as one campaign.
#[derive(Debug, Serialize)]
pub struct Campaign {
    /// Seeds run in all, counting overlaps once.
    pub seeds_run: u64,
    /// The seed ranges covered, merged and sorted (`end` excluded).
    pub covered: Vec<std::ops::Range<u64>>,
    /// Holes between the first and the last covered seed.
    pub gaps: Vec<std::ops::Range<u64>>,
    /// What was found, by seed: seed, clause, scenario file, replay command.
    pub findings: Vec<(u64, Clause, Option<PathBuf>, Option<String>)>,
}

/// Merges hunt reports: covered ranges, gaps, findings.
pub fn merge(reports: &[HuntReport]) -> Campaign {
    let mut ranges: Vec<std::ops::Range<u64>> = reports
        .iter()
        .filter(|r| r.seeds_run > 0)
        .map(|r| r.first_seed..r.first_seed + r.seeds_run)
        .collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut covered: Vec<std::ops::Range<u64>> = Vec::new();
    for range in ranges {
        match covered.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => covered.push(range),
        }
    }
    let gaps = covered.windows(2).map(|w| w[0].end..w[1].start).collect();
    let mut findings: Vec<_> = reports
        .iter()
        .filter_map(|r| {
            r.finding
                .as_ref()
                .map(|f| (f.seed, f.clause, r.scenario_file.clone(), r.replay.clone()))
        })
        .collect();
    findings.sort_by_key(|f| f.0);
    Campaign {
        seeds_run: covered.iter().map(|r| r.end - r.start).sum(),
        covered,
        gaps,
        findings,
    }
}

/// The `hunt-merge` command: reads report files, prints one summary; exit 1 when
/// any machine found something, 2 when a file is unreadable.
pub fn run_merge(files: &[PathBuf], format: Format) -> ExitCode {
    let mut reports = Vec::new();
    for path in files {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<HuntReport>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("error: {} is not a hunt report: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let campaign = merge(&reports);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&campaign).unwrap_or_default()
        ),
        Format::Text => {
            let ranges: Vec<String> = campaign
                .covered
                .iter()
                .map(|r| format!("{}..{}", r.start, r.end))
                .collect();
            println!(
                "{} reports, {} seeds: {}",
                reports.len(),
                campaign.seeds_run,
                ranges.join(" ")
            );
            for gap in &campaign.gaps {
                println!("gap: seeds {}..{} were not run", gap.start, gap.end);
            }
            for (seed, clause, file, replay) in &campaign.findings {
                println!(
                    "found {clause} at seed {seed}: {} — {}",
                    file.as_ref()
                        .map_or("-".into(), |f| f.display().to_string()),
                    replay.as_deref().unwrap_or("-")
                );
            }
            if campaign.findings.is_empty() {
                println!("clean");
            }
        }
    }
    if campaign.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(first_seed: u64, seeds_run: u64) -> HuntReport {
        HuntReport {
            first_seed,
            seeds_run,
            finding: None,
            scenario_file: None,
            replay: None,
        }
    }

    #[test]
    fn merging_joins_ranges_and_names_gaps() {
        let campaign = merge(&[report(100, 50), report(0, 50), report(40, 20)]);
        assert_eq!(campaign.covered, vec![0..60, 100..150]);
        assert_eq!(campaign.gaps, vec![60..100]);
        assert_eq!(campaign.seeds_run, 110);
        assert!(campaign.findings.is_empty());
    }
}

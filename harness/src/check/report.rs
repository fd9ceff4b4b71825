//! The check's report in three forms with the same content: text for people,
//! JSON for machines, JUnit XML for CI dashboards (via `quick-junit`).

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CheckReport, ClauseReport, Evidence, Verdict};
use crate::render::escape;
use crate::spec::Level;
use crate::trace::render_event;

fn level_name(level: Level) -> &'static str {
    level.name()
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Skip(_) => "SKIP",
    }
}

/// Evidence of one finding, indented: message, events, run.
fn describe(finding: &Evidence, out: &mut String) {
    let v = &finding.violation;
    let _ = writeln!(
        out,
        "      {:.3}s  {}",
        v.at_ms as f64 / 1000.0,
        escape(&v.message)
    );
    for event in &v.evidence {
        let _ = writeln!(out, "        {}", escape(&render_event(event)));
    }
    let _ = writeln!(
        out,
        "        (run {}; its scenario and trace are in --format json)",
        finding.run
    );
}

/// The report for people.
pub fn text(report: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "harness check {} — level {}, seed {}, users *.{}",
        report.url,
        level_name(report.level),
        report.seed,
        report.tag
    );
    match &report.server {
        Some(t) => {
            let _ = writeln!(
                out,
                "server: pingInterval {} ms, pingTimeout {} ms, maxPayload {} bytes",
                t.ping_interval_ms, t.ping_timeout_ms, t.max_payload
            );
            if let Some((interval, timeout)) = t.clamped_from {
                let _ = writeln!(
                    out,
                    "finding: the server announced pingInterval {interval} ms, pingTimeout {timeout} ms; \
                     the check waits at most {} ms for each",
                    super::handshake::TIMER_CAP_MS
                );
            }
        }
        None => {
            let _ = writeln!(out, "server: no Engine.IO handshake");
        }
    }
    for finding in &report.findings {
        let _ = writeln!(out, "finding: {}", escape(finding));
    }
    for run in &report.runs {
        let _ = writeln!(
            out,
            "run {:<14} {:>6.1}s  {:>4} events  {} violations",
            run.name,
            run.wall_ms as f64 / 1000.0,
            run.trace.events.len(),
            run.violations.len()
        );
    }
    let _ = writeln!(out);
    // The level column fits the longest level listed (`cluster` only at
    // --level cluster: a one-node report reads as before).
    let width = report
        .clauses
        .iter()
        .map(|c| level_name(c.level).len())
        .max()
        .unwrap_or(6);
    for clause in &report.clauses {
        line(clause, width, &mut out);
    }
    let failed = report
        .clauses
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .count();
    let skipped = report
        .clauses
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Skip(_)))
        .count();
    let _ = writeln!(
        out,
        "\nresult: {} — {} of {} clauses failed, {} skipped ({:.1} s)",
        if failed == 0 { "PASS" } else { "FAIL" },
        failed,
        report.clauses.len(),
        skipped,
        report.wall_ms as f64 / 1000.0
    );
    if failed > 0 {
        let _ = writeln!(out, "again: {}", report.rerun);
    }
    out
}

fn line(clause: &ClauseReport, width: usize, out: &mut String) {
    let _ = write!(
        out,
        "{:<3} {}  {:<width$}  {}",
        clause.clause.id(),
        verdict_name(&clause.verdict),
        level_name(clause.level),
        clause.statement
    );
    if let Verdict::Skip(reason) = &clause.verdict {
        let _ = write!(out, " — {reason}");
    }
    let _ = writeln!(out);
    for finding in clause.findings.iter().take(5) {
        describe(finding, out);
    }
    if clause.findings.len() > 5 {
        let _ = writeln!(
            out,
            "      … and {} more (see --format json)",
            clause.findings.len() - 5
        );
    }
}

/// The report for machines: every field, traces included.
pub fn json(report: &CheckReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// The report for CI: one test case per clause, failures with their evidence.
pub fn junit(report: &CheckReport) -> String {
    let mut suite = TestSuite::new(format!("chat-protocol v1 — {}", report.url));
    suite.set_time(Duration::from_millis(report.wall_ms));
    suite.add_property(("seed", report.seed.to_string().as_str()));
    suite.add_property(("level", level_name(report.level)));
    for clause in &report.clauses {
        let status = match &clause.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Skip(reason) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.as_str());
                status
            }
            Verdict::Fail => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let first = &clause.findings[0].violation.message;
                status.set_message(first.as_str());
                let mut evidence = String::new();
                for finding in &clause.findings {
                    describe(finding, &mut evidence);
                }
                evidence.push_str(&format!("again: {}\n", report.rerun));
                status.set_description(evidence);
                status
            }
        };
        let mut case = TestCase::new(
            format!("{} {}", clause.clause.id(), clause.statement),
            status,
        );
        case.set_classname(format!("contract.{}", level_name(clause.level)));
        suite.add_test_case(case);
    }
    let mut junit = Report::new("harness check");
    junit.add_test_suite(suite);
    junit.to_string().unwrap_or_default()
}

/// One clause's verdicts over several checks of one server (`check --repeat`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StabilityRow {
    /// The clause.
    pub clause: crate::spec::Clause,
    /// Checks that passed it.
    pub pass: usize,
    /// Checks that failed it.
    pub fail: usize,
    /// Checks that skipped it.
    pub skip: usize,
}

impl StabilityRow {
    /// The same verdict in every check.
    pub fn stable(&self) -> bool {
        [self.pass, self.fail, self.skip]
            .iter()
            .filter(|n| **n > 0)
            .count()
            <= 1
    }
}

/// Per clause, in contract order, how often each verdict came over `reports`
/// (one server, several seeds): a flaky server or a flaky check shows as a
/// clause with more than one verdict.
pub fn stability(reports: &[CheckReport]) -> Vec<StabilityRow> {
    let mut rows: Vec<StabilityRow> = Vec::new();
    for report in reports {
        for c in &report.clauses {
            let row = match rows.iter_mut().find(|r| r.clause == c.clause) {
                Some(row) => row,
                None => {
                    rows.push(StabilityRow {
                        clause: c.clause,
                        pass: 0,
                        fail: 0,
                        skip: 0,
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            match c.verdict {
                Verdict::Pass => row.pass += 1,
                Verdict::Fail => row.fail += 1,
                Verdict::Skip(_) => row.skip += 1,
            }
        }
    }
    rows
}

/// The stability table for people: one line a clause, its counts, and
/// UNSTABLE where the verdict changed from seed to seed, with the seeds.
pub fn stability_text(reports: &[CheckReport]) -> String {
    let mut out = String::new();
    let seeds: Vec<String> = reports.iter().map(|r| r.seed.to_string()).collect();
    let _ = writeln!(
        out,
        "verdicts over {} checks of {} (seeds {}):",
        reports.len(),
        reports.first().map_or("", |r| r.url.as_str()),
        seeds.join(", ")
    );
    let _ = writeln!(out, "clause   PASS  FAIL  SKIP");
    let rows = stability(reports);
    for row in &rows {
        let mark = if row.stable() {
            String::new()
        } else {
            let by = |want: &dyn Fn(&Verdict) -> bool| {
                reports
                    .iter()
                    .filter(|r| {
                        r.clauses
                            .iter()
                            .any(|c| c.clause == row.clause && want(&c.verdict))
                    })
                    .map(|r| r.seed.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!(
                "  UNSTABLE (FAIL on seeds {}; PASS on {})",
                by(&|v| *v == Verdict::Fail),
                by(&|v| *v == Verdict::Pass)
            )
        };
        let _ = writeln!(
            out,
            "{:<6} {:>5} {:>5} {:>5}{mark}",
            row.clause.id(),
            row.pass,
            row.fail,
            row.skip
        );
    }
    let unstable = rows.iter().filter(|r| !r.stable()).count();
    let _ = writeln!(
        out,
        "{}",
        if unstable == 0 {
            "every clause got the same verdict on every seed".to_owned()
        } else {
            format!("{unstable} clauses changed verdict from seed to seed: a flaky server, or a flaky check (tell us)")
        }
    );
    out
}

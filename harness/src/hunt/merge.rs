//! Several machines' hunt reports as one campaign: covered seed ranges, gaps,
//! findings. Simulated hunts (`hunt --format json`) and live ones (`hunt
//! --target URL --format json`) both merge, each kind with its own: a seed
//! against one server says nothing about another.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::live::LiveHuntReport;
use super::HuntReport;
use crate::spec::Clause;

/// What one machine's report says, whichever kind of hunt wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// `None` for the simulation, the URL for a live hunt.
    pub target: Option<String>,
    /// First seed tried.
    pub first_seed: u64,
    /// Seeds run from `first_seed`.
    pub seeds_run: u64,
    /// The finding's seed and clause.
    pub found: Option<(u64, Clause)>,
    /// Where the minimal scenario was written.
    pub scenario_file: Option<PathBuf>,
    /// The command that replays it.
    pub replay: Option<String>,
}

/// A live hunt's `--format json` output: the report, and where its finding
/// was saved.
#[derive(Debug, Serialize, Deserialize)]
pub struct LiveHuntFile {
    /// What the hunt did.
    pub report: LiveHuntReport,
    /// The minimal scenario, when something was found.
    pub scenario_file: Option<PathBuf>,
    /// The command that replays it.
    pub replay: Option<String>,
}

impl Part {
    /// Reads a report of either kind; the error says why it is neither.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(sim) = serde_json::from_str::<HuntReport>(text) {
            return Ok(sim.into());
        }
        match serde_json::from_str::<LiveHuntFile>(text) {
            Ok(live) => Ok(live.into()),
            Err(e) => Err(format!(
                "neither a simulated nor a live hunt's --format json ({e})"
            )),
        }
    }
}

impl From<HuntReport> for Part {
    fn from(r: HuntReport) -> Self {
        Self {
            target: None,
            first_seed: r.first_seed,
            seeds_run: r.seeds_run,
            found: r.finding.map(|f| (f.seed, f.clause)),
            scenario_file: r.scenario_file,
            replay: r.replay,
        }
    }
}

impl From<LiveHuntFile> for Part {
    fn from(f: LiveHuntFile) -> Self {
        Self {
            target: Some(f.report.target),
            first_seed: f.report.first_seed,
            seeds_run: f.report.played,
            found: f.report.finding.map(|x| (x.seed, x.clause)),
            scenario_file: f.scenario_file,
            replay: f.replay,
        }
    }
}

/// Several machines' reports as one campaign.
#[derive(Debug, Serialize)]
pub struct Merged {
    /// `None` for simulated hunts, the URL every live report names.
    pub target: Option<String>,
    /// Seeds run in all, counting overlaps once.
    pub seeds_run: u64,
    /// The seed ranges covered, merged and sorted (`end` excluded).
    pub covered: Vec<std::ops::Range<u64>>,
    /// Holes between the first and the last covered seed.
    pub gaps: Vec<std::ops::Range<u64>>,
    /// What was found, by seed: seed, clause, scenario file, replay command.
    pub findings: Vec<(u64, Clause, Option<PathBuf>, Option<String>)>,
}

/// Why reports cannot be one campaign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("these reports are not one campaign: {first} and {other} (merge each server's reports on their own)")]
pub struct Mismatch {
    /// The first report's world.
    pub first: String,
    /// A report from another.
    pub other: String,
}

/// Merges reports: covered ranges, gaps, findings; refused when they come
/// from different worlds (the simulation, or different servers).
pub fn merge(parts: &[Part]) -> Result<Merged, Mismatch> {
    let world = |t: &Option<String>| t.clone().unwrap_or_else(|| "the simulation".into());
    let target = parts.first().and_then(|p| p.target.clone());
    if let Some(other) = parts.iter().find(|p| p.target != target) {
        return Err(Mismatch {
            first: world(&target),
            other: world(&other.target),
        });
    }
    let mut ranges: Vec<std::ops::Range<u64>> = parts
        .iter()
        .filter(|r| r.seeds_run > 0)
        .map(|r| r.first_seed..r.first_seed.saturating_add(r.seeds_run))
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
    let mut findings: Vec<_> = parts
        .iter()
        .filter_map(|r| {
            r.found
                .map(|(seed, clause)| (seed, clause, r.scenario_file.clone(), r.replay.clone()))
        })
        .collect();
    findings.sort_by_key(|f| f.0);
    Ok(Merged {
        target,
        seeds_run: covered.iter().map(|r| r.end - r.start).sum(),
        covered,
        gaps,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(target: Option<&str>, first_seed: u64, seeds_run: u64) -> Part {
        Part {
            target: target.map(str::to_owned),
            first_seed,
            seeds_run,
            found: None,
            scenario_file: None,
            replay: None,
        }
    }

    #[test]
    fn merging_joins_ranges_and_names_gaps() {
        let campaign =
            merge(&[part(None, 100, 50), part(None, 0, 50), part(None, 40, 20)]).unwrap();
        assert_eq!(campaign.covered, vec![0..60, 100..150]);
        assert_eq!(campaign.gaps, vec![60..100]);
        assert_eq!(campaign.seeds_run, 110);
        assert!(campaign.findings.is_empty());
    }

    #[test]
    fn live_reports_merge_with_their_own_server_only() {
        let url = Some("http://127.0.0.1:3000");
        let mut found = part(url, 10, 4);
        found.found = Some((12, Clause::P2));
        let campaign = merge(&[part(url, 0, 10), found.clone()]).unwrap();
        assert_eq!(campaign.covered, vec![0..14]);
        assert_eq!(campaign.target.as_deref(), url);
        assert_eq!(campaign.findings[0].0, 12);
        let other = part(Some("http://127.0.0.1:4000"), 14, 10);
        let refused = merge(&[found.clone(), other]).unwrap_err();
        assert!(refused.to_string().contains("127.0.0.1:4000"), "{refused}");
        let refused = merge(&[part(None, 0, 10), found]).unwrap_err();
        assert!(refused.to_string().contains("the simulation"), "{refused}");
    }

    #[test]
    fn a_live_hunts_json_reads_back() {
        let text = r#"{"report": {"target": "http://127.0.0.1:9", "timers": null,
            "played": 7, "first_seed": 3, "finding": null, "wall_ms": 1000},
            "scenario_file": null, "replay": null}"#;
        let part = Part::parse(text).unwrap();
        assert_eq!(part.target.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!((part.first_seed, part.seeds_run), (3, 7));
        assert!(Part::parse("{\"seeds\": 1}").is_err());
    }
}

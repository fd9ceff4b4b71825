//! Several machines' hunt reports as one campaign: covered seed ranges, gaps,
//! findings.

use std::path::PathBuf;

use serde::Serialize;

use super::HuntReport;
use crate::spec::Clause;

/// Several machines' `hunt --format json` reports as one campaign.
#[derive(Debug, Serialize)]
pub struct Merged {
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
pub fn merge(reports: &[HuntReport]) -> Merged {
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
    Merged {
        seeds_run: covered.iter().map(|r| r.end - r.start).sum(),
        covered,
        gaps,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::HuntReport;

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

//! `harness replay --target URL --scenario FILE --repeat N`: a saved scenario
//! (from `hunt`, the simulation, or by hand) played against a live server over
//! real TCP, each user through a seeded fault proxy that applies the plan's
//! faults to its host, N times, each with fresh user names; then how often it
//! broke which clause. What a developer attaches to a bug report and runs
//! again after the fix.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{check_client, drive_faults, CheckError, CheckOptions, Target, PROBE_EVERY_MS};
use crate::judge::{check_all, Violation};
use crate::net::proxy::{FaultProxy, Mode};
use crate::net::transport::TcpConnector;
use crate::scenario::{Action, Scenario};
use crate::spec::Clause;
use crate::trace::{Recorder, Trace, TraceClock};
use crate::world::play;

/// One play of the scenario.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveRun {
    /// The suffix its user names carried (`alice.<tag>`).
    pub tag: String,
    /// What broke.
    pub violations: Vec<Violation>,
    /// Everything observed.
    pub trace: Trace,
}

/// All plays, and how reliably they broke the contract.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveReplay {
    /// Each play, in order.
    pub runs: Vec<LiveRun>,
}

impl LiveReplay {
    /// Plays that broke `clause` (any clause when `None`).
    pub fn reproduced(&self, clause: Option<Clause>) -> usize {
        self.runs
            .iter()
            .filter(|r| {
                r.violations
                    .iter()
                    .any(|v| clause.is_none_or(|c| v.clause == c))
            })
            .count()
    }

    /// Whether a strict majority of the plays broke `clause`: what makes a
    /// live finding confirmed, and a shrink candidate kept.
    pub fn broke_in_majority(&self, clause: Option<Clause>) -> bool {
        self.reproduced(clause) * 2 > self.runs.len()
    }

    /// The clause broken most often (ties: the contract's order), if any.
    pub fn main_clause(&self) -> Option<Clause> {
        self.main_clause_among(&[])
    }

    /// [`Self::main_clause`] among `wanted` only (empty: every clause).
    pub fn main_clause_among(&self, wanted: &[Clause]) -> Option<Clause> {
        let mut counts: BTreeMap<Clause, usize> = BTreeMap::new();
        for run in &self.runs {
            let mut seen: Vec<Clause> = run
                .violations
                .iter()
                .map(|v| v.clause)
                .filter(|c| wanted.is_empty() || wanted.contains(c))
                .collect();
            seen.sort_unstable();
            seen.dedup();
            for clause in seen {
                *counts.entry(clause).or_default() += 1;
            }
        }
        let best = counts.values().copied().max()?;
        counts.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }
}

/// The scenario with every user renamed `name.<tag>` (recipients too), in an
/// open world: plays never meet each other's users, mailboxes or retries.
pub fn retag(scenario: &Scenario, tag: &str) -> Scenario {
    let rename = |name: &str| {
        let keep = 32usize.saturating_sub(tag.len() + 1);
        let base: String = name.chars().take(keep).collect();
        format!("{base}.{tag}")
    };
    let names: BTreeMap<String, String> = scenario
        .users
        .iter()
        .map(|u| (u.name.clone(), rename(&u.name)))
        .collect();
    let mut s = scenario.clone();
    for user in &mut s.users {
        user.name = names[&user.name].clone();
    }
    for step in &mut s.steps {
        if let Action::Send { to, .. } = &mut step.action {
            if let Some(renamed) = names.get(to.as_str()) {
                *to = renamed.clone();
            }
        }
    }
    s.open_world = true;
    s
}

/// Plays `scenario` against `target` `repeat` times.
pub async fn replay_live(
    target: &Target,
    scenario: &Scenario,
    repeat: usize,
    options: &CheckOptions,
) -> Result<LiveReplay, CheckError> {
    replay_live_with(target, scenario, repeat, options, &check_client(options)).await
}

/// [`replay_live`] with the reference client configured as `client`.
pub async fn replay_live_with(
    target: &Target,
    scenario: &Scenario,
    repeat: usize,
    options: &CheckOptions,
    client: &crate::client::ClientConfig,
) -> Result<LiveReplay, CheckError> {
    let mut scenario = scenario.clone();
    if super::restart::restarts(&scenario.faults) {
        match &target.reach.restart {
            Some(command) => super::restart::as_declared(&mut scenario.faults, command),
            None => {
                return Err(CheckError::NeedsRestartCmd {
                    url: target.url.clone(),
                    at_ms: scenario
                        .faults
                        .faults
                        .iter()
                        .find(|f| f.is_on_server())
                        .map_or(0, |f| f.at_ms),
                })
            }
        }
    }
    let scenario = &scenario;
    // A deployment of several nodes (`--node`): user `u` is pinned to node
    // `u % n` through its own proxy, so every pair of nodes meets; the
    // observer asks the public URL.
    let mut upstreams = Vec::new();
    for url in &target.reach.nodes {
        let reach = super::Reach {
            socketio_path: target.reach.socketio_path.clone(),
            ca_cert: target.reach.ca_cert.clone(),
            ..super::Reach::default()
        };
        upstreams.push(super::Target::resolve_with(url, &reach).await?.addr);
    }
    if upstreams.is_empty() {
        upstreams.push(target.addr);
    }
    let mut runs = Vec::new();
    for i in 0..repeat.max(1) {
        // Fresh per play and per invocation, as a check's: a long-lived
        // server remembers mailboxes and retries across replays.
        // The scenario's seed in the tag too: a live hunt plays several
        // scenarios at once, and their names must never meet.
        let tag = format!(
            "{}{}{i}",
            super::Names::new(options.seed, super::fresh_tag_source()).tag,
            scenario.seed % 100
        );
        let tagged = retag(scenario, &tag);
        let mut proxies = Vec::new();
        for u in 0..tagged.users.len() {
            let upstream = upstreams[u % upstreams.len()];
            let proxy = FaultProxy::start(upstream, options.seed ^ (i * 1_000 + u) as u64)
                .await
                .map_err(|e| CheckError::Unreachable {
                    url: target.url.clone(),
                    reason: format!("cannot start a fault proxy: {e}"),
                })?;
            let latency = (tagged.faults.latency_ms_min, tagged.faults.latency_ms_max);
            proxy.set(Mode::with_faults(latency, &[], (0, 0)));
            proxies.push(proxy);
        }
        let started = Instant::now();
        let recorder = Recorder::new(TraceClock::Real(started));
        let observer = target.connector();
        let connectors: Vec<TcpConnector> =
            proxies.iter().map(|p| observer.via(p.addr())).collect();
        let patience = Duration::from_millis(super::restart::grace_ms(options));
        let restarter = target
            .reach
            .restart
            .as_ref()
            .map(|command| (command, &observer, patience));
        let (_, driven) = tokio::join!(
            play(
                &tagged,
                connectors,
                observer.clone(),
                &recorder,
                client,
                PROBE_EVERY_MS
            ),
            drive_faults(&tagged, &proxies, &recorder, restarter)
        );
        driven.map_err(|reason| CheckError::Restart {
            url: target.url.clone(),
            reason,
        })?;
        drop(proxies);
        let trace = recorder.trace();
        runs.push(LiveRun {
            tag,
            violations: check_all(&trace, &tagged),
            trace,
        });
    }
    Ok(LiveReplay { runs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Step, UserSpec};

    #[test]
    fn retagging_renames_users_and_recipients_and_keeps_names_valid() {
        let s = Scenario {
            seed: 1,
            users: vec![UserSpec::node("alice"), UserSpec::node(&"b".repeat(32))],
            steps: vec![Step {
                at_ms: 0,
                user: 0,
                action: Action::Send {
                    to: "b".repeat(32),
                    content: "hi".into(),
                },
            }],
            faults: crate::faults::FaultPlan::calm(),
            active_ms: 1_000,
            heal_ms: 1_000,
            open_world: false,
        };
        let t = retag(&s, "rx1");
        assert_eq!(t.users[0].name, "alice.rx1");
        assert!(crate::contract::is_valid_username(&t.users[1].name));
        assert_eq!(t.users[1].name.len(), 32);
        assert!(matches!(&t.steps[0].action, Action::Send { to, .. } if *to == t.users[1].name));
        assert!(t.open_world);
    }
}

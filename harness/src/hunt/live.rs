//! Hunting a live server (`harness hunt --target URL`): the simulation's
//! seeded scenarios played over real TCP, each user through its own fault
//! proxy, K at a time against the one server; the first violation is replayed
//! to measure how often it reproduces, then shrunk with the simulation's
//! shrinker, a candidate kept only when a majority of its replays break the
//! same clause.
//!
//! Scenarios are sized to the server's own timers, read from its Engine.IO
//! handshake: a server started with short timers is explored many times faster.
//! Plays use fresh user names each, so they never meet each other's users,
//! mailboxes or retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::shrink::shrink_batched;
use super::Seeds;
use crate::check::replay::{replay_live_with, LiveReplay};
use crate::check::{
    announced_timers, check_client, AnnouncedTimers, CheckError, CheckOptions, Target,
};
use crate::client::ClientConfig;
use crate::faults::FaultMenu;
use crate::judge::PUSH_BOUND_MS;
use crate::scenario::{GenerateOptions, Scenario};
use crate::spec::Clause;
use crate::world::{ServerTimers, DRAIN_MS};

/// What a live hunt explores and how hard it confirms.
#[derive(Clone, Debug)]
pub struct LiveHuntPlan {
    /// Which seeds (a range, or a wall-clock budget).
    pub seeds: Seeds,
    /// Users per scenario.
    pub users: usize,
    /// Active phase per scenario, ms.
    pub active_ms: u64,
    /// Faults the swarm may pick from.
    pub faults: FaultMenu,
    /// Scenarios played against the server at once (one when the menu has
    /// `restart` and the target a restart command).
    pub concurrency: usize,
    /// Replays that measure a finding's reproduction rate, and that judge each
    /// shrink candidate (kept on a strict majority).
    pub confirmations: usize,
    /// Most shrink candidates tried (each costs `confirmations` plays).
    pub shrink_budget: usize,
    /// How long the server waits for a push's ack before it falls back to the
    /// mailbox (not announced by Engine.IO; the contract's reference is 5 s).
    pub ack_timeout_ms: u64,
    /// Only violations of these clauses are findings (empty: any clause).
    pub clauses: Vec<Clause>,
}

/// How a hunt is going, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Scenarios played so far.
    pub played: u64,
    /// Of which broke a clause.
    pub violating: u64,
    /// Wall time since the hunt began.
    pub elapsed: Duration,
    /// What the hunt is doing now.
    pub phase: &'static str,
}

/// How far a live violation held up under its replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// A strict majority of the replays broke the clause again: shrunk.
    /// (Reports written before this was recorded were all shrunk: confirmed.)
    #[default]
    Confirmed,
    /// Some replays broke it, not a majority: a flaky finding, not shrunk
    /// (the shrinker keeps only candidates a majority of plays break).
    Flaky,
    /// No replay broke it: seen once. Not a finding yet: a slow play on a
    /// busy machine, or a rare race; its evidence and trace are kept.
    SeenOnce,
}

/// A violation found live, measured and (when confirmed) shrunk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveFinding {
    /// The seed whose scenario broke the contract.
    pub seed: u64,
    /// The clause it broke (the one broken most often over its replays).
    pub clause: Clause,
    /// Plays of the found scenario that broke `clause`, of `confirmations`.
    pub reproduced: (usize, usize),
    /// What the replays make of it.
    #[serde(default)]
    pub confirmation: Confirmation,
    /// The violations of `clause` in the play that first broke it, with
    /// their evidence: what was seen, whether or not it comes again.
    #[serde(default)]
    pub seen: Vec<crate::judge::Violation>,
    /// That play's whole trace, rendered (the file `hunt` saves beside the scenario).
    #[serde(default)]
    pub seen_trace: String,
    /// The machine's load average (1, 5, 15 min) when the play broke the
    /// clause and while it was replayed, where the OS tells it: a busy
    /// machine stretches every wait the contract bounds.
    #[serde(default)]
    pub load: Option<(String, String)>,
    /// The scenario as generated.
    pub scenario: Scenario,
    /// The smallest scenario that still broke `clause` in a majority of plays.
    pub minimal: Scenario,
    /// Its own reproduction rate, measured again.
    pub minimal_reproduced: (usize, usize),
    /// Shrink candidates tried.
    pub shrink_runs: usize,
}

/// The whole outcome of a live hunt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveHuntReport {
    /// The server hunted, as given: reports merge only when it is the same.
    pub target: String,
    /// The server's timers as announced (scenarios are sized to them).
    pub timers: Option<AnnouncedTimers>,
    /// Scenarios played while exploring.
    pub played: u64,
    /// The first seed tried.
    pub first_seed: u64,
    /// What broke, if anything did.
    pub finding: Option<LiveFinding>,
    /// Wall time, ms.
    pub wall_ms: u64,
}

/// Hunts `target`; `progress` hears about every batch and phase.
pub async fn hunt_live(
    target: &Target,
    plan: &LiveHuntPlan,
    options: &CheckOptions,
    mut progress: impl FnMut(Progress),
) -> Result<LiveHuntReport, CheckError> {
    let started = Instant::now();
    let mut plan = plan.clone();
    // On real TCP a restart is the user's command: without one there is none
    // to play. And it ends every play's sessions at once, so with restarts
    // the plays go one at a time (a play's judges know of its own restarts
    // only).
    plan.faults.restart &= target.reach.restart.is_some();
    if plan.faults.restart {
        plan.concurrency = 1;
    }
    let plan = &plan;
    let timers = announced_timers(target, options).await;
    let generate = GenerateOptions {
        users: plan.users,
        active_ms: plan.active_ms,
        faults: plan.faults.clone(),
        timers: timers.map_or_else(ServerTimers::default, |t| ServerTimers {
            ping_interval_ms: t.ping_interval_ms,
            ping_timeout_ms: t.ping_timeout_ms,
            ack_timeout_ms: plan.ack_timeout_ms,
        }),
        tokens: options.tokens.is_some(),
        client_mix: true,
    };
    let client = hunt_client(options);
    let scenario_of = |seed: u64| {
        let mut scenario = Scenario::generate(seed, &generate);
        let heal = heal_ms(&generate.timers, &client, options.scaled(1_000));
        scenario.heal_ms = heal.saturating_add(scenario.background_slack_ms(heal));
        // A loaded machine stretches every wait, M3's 100 ms bound with them.
        if options.timeout_scale > 1.0 {
            scenario.faults.push_bound_ms =
                Some((PUSH_BOUND_MS as f64 * options.timeout_scale).round() as u64);
        }
        scenario
    };
    let (mut played, mut violating) = (0, 0);
    let mut next = plan.seeds.first();
    let found = loop {
        let batch: Vec<u64> = (next..next.saturating_add(plan.concurrency.max(1) as u64))
            .filter(|seed| match &plan.seeds {
                Seeds::Range(range) => range.contains(seed),
                Seeds::Budget { .. } => true,
            })
            .collect();
        let over_budget = match &plan.seeds {
            Seeds::Budget { budget, .. } => started.elapsed() >= *budget,
            Seeds::Range(_) => false,
        };
        if batch.is_empty() || over_budget {
            break None;
        }
        next = next.saturating_add(batch.len() as u64);
        let client = &client;
        let plays = batch.iter().map(|&seed| {
            let scenario = scenario_of(seed);
            async move { (seed, plays(target, &scenario, 1, options, client).await) }
        });
        let mut first_failing = None;
        for (seed, outcome) in futures_util::future::join_all(plays).await {
            let replay = outcome?;
            played += 1;
            if let Some(clause) = replay.main_clause_among(&plan.clauses) {
                violating += 1;
                if first_failing.is_none() {
                    first_failing = Some((seed, clause, replay, load_average()));
                }
            }
        }
        progress(Progress {
            played,
            violating,
            elapsed: started.elapsed(),
            phase: "exploring",
        });
        if first_failing.is_some() {
            break first_failing;
        }
    };
    let finding = match found {
        None => None,
        Some((seed, clause, seen, load)) => {
            let tally = Tally {
                started,
                played,
                violating,
            };
            let found = Found {
                seed,
                clause,
                scenario: scenario_of(seed),
                seen,
                load,
            };
            Some(investigate(target, plan, options, found, tally, &mut progress).await?)
        }
    };
    Ok(LiveHuntReport {
        target: target.url.clone(),
        timers,
        played,
        first_seed: plan.seeds.first(),
        finding,
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Where exploring stopped, for the progress line while investigating.
#[derive(Clone, Copy)]
struct Tally {
    started: Instant,
    played: u64,
    violating: u64,
}

/// The play that first broke a clause while exploring.
struct Found {
    seed: u64,
    clause: Clause,
    scenario: Scenario,
    seen: LiveReplay,
    load: Option<String>,
}

/// The load average, as `/proc/loadavg` tells it (1, 5 and 15 minutes);
/// `None` where there is no such file. Outside any simulation: a live hunt
/// runs on the wall clock anyway.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let three: Vec<&str> = text.split_whitespace().take(3).collect();
    (three.len() == 3).then(|| three.join(" "))
}

/// Measures the found scenario's reproduction rate and, when a majority of
/// its replays break the clause again, shrinks it.
async fn investigate(
    target: &Target,
    plan: &LiveHuntPlan,
    options: &CheckOptions,
    found: Found,
    tally: Tally,
    progress: &mut impl FnMut(Progress),
) -> Result<LiveFinding, CheckError> {
    let Found {
        seed,
        clause: first_clause,
        scenario,
        seen,
        load,
    } = found;
    let mut report = |phase| {
        progress(Progress {
            played: tally.played,
            violating: tally.violating,
            elapsed: tally.started.elapsed(),
            phase,
        })
    };
    report("measuring the reproduction rate");
    let client = hunt_client(options);
    let replays = plays(target, &scenario, plan.confirmations, options, &client).await?;
    let clause = replays
        .main_clause_among(&plan.clauses)
        .unwrap_or(first_clause);
    let reproduced = (replays.reproduced(Some(clause)), replays.runs.len());
    let load = load.zip(load_average());
    let seen_run = seen
        .runs
        .iter()
        .find(|r| r.violations.iter().any(|v| v.clause == clause))
        .or(seen.runs.first());
    let seen_violations: Vec<crate::judge::Violation> = seen_run
        .map(|r| {
            r.violations
                .iter()
                .filter(|v| v.clause == clause || v.clause == first_clause)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let seen_trace = seen_run.map_or_else(String::new, |r| r.trace.render());
    let confirmation = match reproduced.0 {
        0 => Confirmation::SeenOnce,
        _ if replays.broke_in_majority(Some(clause)) => Confirmation::Confirmed,
        _ => Confirmation::Flaky,
    };
    // Never shrunk as if confirmed: the shrinker keeps a candidate only when
    // a majority of its plays break the clause, which a flaky or once-seen
    // scenario itself does not.
    let (minimal, minimal_reproduced, shrink_runs) = if confirmation == Confirmation::Confirmed {
        report("shrinking");
        let (minimal, shrink_runs) =
            shrink_live(target, plan, options, &client, &scenario, clause).await?;
        report("measuring the minimal scenario");
        let again = plays(target, &minimal, plan.confirmations, options, &client).await?;
        let measured = (again.reproduced(Some(clause)), again.runs.len());
        (minimal, measured, shrink_runs)
    } else {
        (scenario.clone(), reproduced, 0)
    };
    Ok(LiveFinding {
        seed,
        clause,
        reproduced,
        confirmation,
        seen: seen_violations,
        seen_trace,
        load,
        scenario,
        minimal_reproduced,
        minimal,
        shrink_runs,
    })
}

/// Shrinks `scenario` live, a candidate kept when a strict majority of its
/// plays break `clause`; the minimal scenario and the candidates tried.
async fn shrink_live(
    target: &Target,
    plan: &LiveHuntPlan,
    options: &CheckOptions,
    client: &ClientConfig,
    scenario: &Scenario,
    clause: Clause,
) -> Result<(Scenario, usize), CheckError> {
    // The shrinker is synchronous: it runs on a blocking thread and plays the
    // next `concurrency` candidates side by side on this runtime, each
    // `confirmations` times, keeping the first whose plays break the same
    // clause in a strict majority (most candidates fail, so judging them
    // together divides the wall time without changing the result).
    let handle = tokio::runtime::Handle::current();
    let (target_, options_, original) = (target.clone(), options.clone(), scenario.clone());
    let (confirmations, budget) = (plan.confirmations.max(1), plan.shrink_budget);
    let width = plan.concurrency.max(1);
    let client_ = client.clone();
    let (minimal, shrink_runs) = tokio::task::spawn_blocking(move || {
        shrink_batched(&original, budget, width, |batch| {
            let each = batch
                .iter()
                .map(|candidate| plays(&target_, candidate, confirmations, &options_, &client_));
            handle
                .block_on(futures_util::future::join_all(each))
                .into_iter()
                .map(|r| r.is_ok_and(|r| r.broke_in_majority(Some(clause))))
                .collect()
        })
    })
    .await
    .map_err(|e| CheckError::Unreachable {
        url: target.url.clone(),
        reason: format!("the shrinker stopped: {e}"),
    })?;
    Ok((minimal, shrink_runs))
}

/// `count` plays of `scenario` side by side (each with its own user names).
async fn plays(
    target: &Target,
    scenario: &Scenario,
    count: usize,
    options: &CheckOptions,
    client: &ClientConfig,
) -> Result<LiveReplay, CheckError> {
    let each = (0..count.max(1)).map(|_| replay_live_with(target, scenario, 1, options, client));
    let mut runs = Vec::new();
    for replay in futures_util::future::join_all(each).await {
        runs.extend(replay?.runs);
    }
    Ok(LiveReplay { runs })
}

/// The check's client, reconnecting faster (250 ms doubling to 1 s) and
/// giving up on a connect attempt sooner: a live scenario's heal phase waits
/// out the longest of them, and every play pays for it.
fn hunt_client(options: &CheckOptions) -> ClientConfig {
    ClientConfig {
        reconnect_delay_ms: 250,
        reconnect_delay_max_ms: 1_000,
        connect_timeout_ms: options.scaled(1_500),
        ..check_client(options)
    }
}

/// The default for `--concurrency` against a live server: a play spends its
/// time waiting on the server's timers, not on a core, so four per core
/// (at least 4, at most 16).
pub fn default_concurrency() -> usize {
    (crate::hunt::default_jobs() * 4).clamp(4, 16)
}

/// Long enough after the active phase (every fault ends within it) for what
/// it set in motion to settle, plus `margin_ms`, before the drain (one last
/// poll each, the final probe): the server noticing a dead peer and mailing
/// the pushes it left unacknowledged; a client noticing a dead server, or
/// giving up on a connect attempt lost in a black hole, then waiting out its
/// longest reconnect delay and connecting again. Waiting out the whole
/// reconnect schedule is not needed: once the faults end, the next attempt
/// gets through.
fn heal_ms(timers: &ServerTimers, client: &ClientConfig, margin_ms: u64) -> u64 {
    let server = timers.dead_peer_ms().saturating_add(timers.ack_timeout_ms);
    let client = client
        .connect_timeout_ms
        .max(timers.dead_peer_ms())
        .saturating_add(client.reconnect_delay_max_ms);
    server
        .max(client)
        .saturating_add(margin_ms)
        .saturating_add(DRAIN_MS)
}

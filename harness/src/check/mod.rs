//! `harness check`: black-box conformance of anyone's server, over real TCP.
//!
//! The same reference client, scenario format, trace and checkers as the
//! simulation, pointed at a URL. A check is a list of runs, one file each,
//! each recorded as a trace and judged by pure functions; this module only
//! sequences them ([`check`]) and judges each clause on their evidence:
//! - `http` (`endpoints.rs`): the plain endpoints' shapes and refusals (H1, T2,
//!   L1, L4, P4);
//! - `handshake`: an Engine.IO polling handshake, for the server's timers (T1);
//! - `core`: one calm scenario covering identity (every bad header, a
//!   browser's stripped websocket header, both username bounds), two tabs,
//!   pushes, the mailbox, refusals, malformed sends, with the raw-packet
//!   `abuse`r beside it (B1);
//! - `cursor`: the mailbox cursor over HTTP, before and after re-polls (L1, L2);
//! - `rust_socketio`: the core flow with a second, independent client;
//! - `robust` (`--level robust`): the scenario again through the seeded
//!   fault proxy: black hole until the ping timeout, reset, hold, lost poll
//!   response; and [`restart`] with `--restart-cmd`;
//! - [`secure`] (`--level secure`): contract v2's authenticated identity;
//! - `cluster` (`--level cluster`, `--node URL` per node): a deployment of
//!   several nodes as one server (N1–N4), users pinned to chosen nodes.
//!
//! Nothing here assumes more than the contract: a server may refuse or keep an
//! unregistered connection, may name its errors as it likes, may discard polled
//! entries or not.

mod abuse;
mod cluster;
mod core;
mod cursor;
mod endpoints;
mod evidence;
mod handshake;
mod probes;
pub mod replay;
pub mod report;
pub mod restart;
mod robust;
pub mod rules;
mod rust_socketio;
pub mod secure;
mod target;

pub use abuse::fuzz_run;
pub use restart::RestartCommand;

use abuse::{answers_to, send_and_answer, NOTHING};
use core::{core_run, DAVE_CONTENTS};
use restart::restart_run;
use robust::{drive_faults, robust_run};
pub use target::{Reach, Target};

use cursor::cursor_run;
use endpoints::http_run;
use handshake::handshake_run;
use probes::abbreviate;
use rules::{calm_deliveries, presence_is_announced, sessions_open};
use rust_socketio::rust_socketio_run;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::client::ClientConfig;
use crate::judge::Violation;
use crate::net::transport::{self, TcpConnector};
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario, Step, UserSpec};
use crate::spec::{Clause, Level};
use crate::trace::Trace;

/// How a check runs.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Core, or core plus the fault runs.
    pub level: Level,
    /// Names, jitter and fault timing derive from it.
    pub seed: u64,
    /// Multiplies every wait (slow servers, slow machines); never shrinks M3's
    /// 100 ms below the contract's.
    pub timeout_scale: f64,
    /// Contract v2: mints tokens with the secret the server shares
    /// (`--jwt-secret-file`). With it, a v2 server's runs identify by token;
    /// without it, a v2 server's A1–A6 are SKIP.
    pub tokens: Option<crate::token::TokenIssuer>,
}

impl CheckOptions {
    pub(crate) fn scaled(&self, ms: u64) -> u64 {
        (ms as f64 * self.timeout_scale).round().max(1.0) as u64
    }

    /// How long one answer may take: 5 s, scaled.
    pub fn patience(&self) -> Duration {
        Duration::from_millis(self.scaled(5_000))
    }
}

/// Why a check could not run at all (exit 2), as opposed to a server that fails it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The URL is not one this check can use.
    #[error(
        "'{url}' is not a server URL this check can use: {reason} (expected http://HOST[:PORT] or https://HOST[:PORT])"
    )]
    BadUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS to an `https://` server cannot be set up (a bad `--ca-cert`), or
    /// its certificate was refused.
    #[error("{url}: TLS: {reason}")]
    Tls {
        /// As given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A contract v2 server, and no secret to mint its users' tokens with.
    #[error("{url} is a contract v2 server (its /health says so): pass --jwt-secret-file PATH (or HARNESS_JWT_SECRET) so the users can present tokens")]
    NeedsSecret {
        /// As given.
        url: String,
    },
    /// Nothing answered HTTP at the address.
    #[error("server unreachable at {url}: {reason}")]
    Unreachable {
        /// As given.
        url: String,
        /// The last error.
        reason: String,
    },
    /// A scenario restarts the server, and no `--restart-cmd` says how.
    #[error("the scenario restarts the server at {at_ms} ms: pass --restart-cmd CMD (a command that restarts the server at {url}; add --restart-keeps-store if its store survives)")]
    NeedsRestartCmd {
        /// As given.
        url: String,
        /// When the first restart is due.
        at_ms: u64,
    },
    /// `--node` without `--level cluster`.
    #[error("--node names the nodes of a deployment of several nodes: it needs --level cluster")]
    NodesNeedCluster,
    /// The restart command failed, or the server did not come back after it.
    #[error("{url}: {reason}")]
    Restart {
        /// As given.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The server's Engine.IO timers, read from its handshake.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize)]
pub struct AnnouncedTimers {
    /// pingInterval, ms.
    pub ping_interval_ms: u64,
    /// pingTimeout, ms.
    pub ping_timeout_ms: u64,
    /// maxPayload, bytes (0: not announced).
    pub max_payload: u64,
    /// The announced (pingInterval, pingTimeout) when they were above what
    /// the check waits for, and were cut down to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped_from: Option<(u64, u64)>,
}

/// One recorded run of a check.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// `http`, `handshake`, `core`, `cursor`, `rust_socketio`, `robust`.
    pub name: &'static str,
    /// The scenario, for the runs that play one.
    pub scenario: Option<Scenario>,
    /// Everything observed.
    pub trace: Trace,
    /// What it found.
    pub violations: Vec<Violation>,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// Clauses the run reached by probes rather than by a played scenario
    /// (the secure run): judged on this evidence like the trace's.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub reached: BTreeSet<Clause>,
    /// Why the run could not judge what it is for, when that is so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Sentences (`N2.1`) the run's own probes exercised, besides what its
    /// trace shows.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub sentences: BTreeSet<String>,
    /// Why one clause the run is for could not be judged (N3 without
    /// `--kill-node-cmd`), when the others could.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub clause_notes: BTreeMap<Clause, String>,
}

impl Run {
    /// A finished run: its violations sorted by time, its wall time since `started`.
    fn new(
        name: &'static str,
        scenario: Option<Scenario>,
        trace: Trace,
        mut violations: Vec<Violation>,
        started: Instant,
    ) -> Self {
        violations.sort_by_key(|v| (v.at_ms, v.clause));
        Self {
            name,
            scenario,
            trace,
            violations,
            wall_ms: elapsed_ms(started),
            reached: BTreeSet::new(),
            note: None,
            sentences: BTreeSet::new(),
            clause_notes: BTreeMap::new(),
        }
    }
}

/// PASS, FAIL or SKIP, per clause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Exercised, nothing broken.
    Pass,
    /// Broken: see the findings.
    Fail,
    /// Not judged, and why.
    Skip(String),
}

/// A violation and the run that shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    /// The run.
    pub run: &'static str,
    /// The violation and its evidence.
    #[serde(flatten)]
    pub violation: Violation,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct ClauseReport {
    /// The clause.
    pub clause: Clause,
    /// MUST (core) or SHOULD (robust).
    pub level: Level,
    /// What the contract says.
    pub statement: &'static str,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// For a FAIL, what proves it.
    pub findings: Vec<Evidence>,
    /// The clause's sentences (`M2.4` …) and what judges each.
    pub sentences: &'static [crate::spec::Sentence],
}

/// The whole outcome of `harness check`.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The server.
    pub url: String,
    /// The level asked for.
    pub level: Level,
    /// The seed (jitter, fault timing).
    pub seed: u64,
    /// The suffix of this check's user names (`alice.<tag>`), fresh per check.
    pub tag: String,
    /// The timeout scale.
    pub timeout_scale: f64,
    /// Its timers, when the handshake worked.
    pub server: Option<AnnouncedTimers>,
    /// Per clause, in contract order.
    pub clauses: Vec<ClauseReport>,
    /// The runs, with their scenarios and traces.
    pub runs: Vec<Run>,
    /// Observations that are not clauses of the contract (CORS, clamped timers).
    pub findings: Vec<String>,
    /// The command that runs this check again.
    pub rerun: String,
    /// Wall time of the whole check, ms.
    pub wall_ms: u64,
}

impl CheckReport {
    /// The clauses that failed, in contract order.
    pub fn failed(&self) -> Vec<Clause> {
        self.clauses
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.clause)
            .collect()
    }

    /// Whether every clause of the level passed or was skipped.
    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }
}

/// Runs the check.
pub async fn check(target: &Target, options: &CheckOptions) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    if !target.reach.nodes.is_empty() && options.level != Level::Cluster {
        return Err(CheckError::NodesNeedCluster);
    }
    let connector = target.connector();
    wait_until_up(
        target,
        &connector,
        Duration::from_millis(options.scaled(10_000)),
    )
    .await?;
    // Names are fresh per check, not per seed: a server remembers mailboxes and
    // (sender, client_id) retries across checks, so a repeated name would meet
    // the previous check's state.
    let names = Names::new(options.seed, fresh_tag_source());

    let version = secure::contract_version(&connector, options.patience()).await;
    // A secret is used only with a server that says it is v2 (H2): a v1
    // server's runs identify by header whatever was given.
    let options = &CheckOptions {
        tokens: options
            .tokens
            .clone()
            .filter(|_| matches!(version, secure::Version::V2 { .. })),
        ..options.clone()
    };
    let mut runs = vec![http_run(&connector, &names, options).await];
    let findings = vec![endpoints::cors_finding(&connector, options.patience()).await];
    let (handshake, timers) = handshake_run(&connector, &names, options).await;
    runs.push(handshake);
    let core = core_run(&connector, &names, options, timers).await;
    runs.push(core);
    runs.push(cursor_run(&connector, &names, options).await);
    runs.push(rust_socketio_run(target, &names, options).await);
    if options.level == Level::Robust {
        runs.push(robust_run(&connector, &names, options, timers).await);
        if let Some(command) = &target.reach.restart {
            runs.push(restart_run(target, &connector, &names, options, command).await?);
        }
    }
    if options.level == Level::Secure {
        runs.push(secure::secure_run(&connector, &names, options, &version).await);
    }
    if options.level == Level::Cluster {
        let mut nodes = Vec::new();
        for url in &target.reach.nodes {
            let reach = Reach {
                socketio_path: target.reach.socketio_path.clone(),
                ca_cert: target.reach.ca_cert.clone(),
                ..Reach::default()
            };
            let node = Target::resolve_with(url, &reach).await?;
            wait_until_up(&node, &node.connector(), options.patience()).await?;
            nodes.push(cluster::Node {
                url: url.clone(),
                connector: node.connector(),
            });
        }
        let kill = target.reach.kill_node.as_deref();
        let adapter = target
            .reach
            .adapter
            .as_ref()
            .map(|(cut, heal)| (cut.as_str(), heal.as_str()));
        runs.push(
            cluster::cluster_run(&connector, &nodes, &names, options, timers, (kill, adapter))
                .await,
        );
    }

    let clauses = Clause::reported(options.level)
        // Every clause of a one-node report, so a report always has the same
        // lines (those above the level are SKIP with the reason); N1–N4 at
        // --level cluster.
        .map(|clause| judge(clause, options.level, &runs))
        .collect();
    Ok(CheckReport {
        url: target.url.clone(),
        level: options.level,
        seed: options.seed,
        tag: names.tag.clone(),
        timeout_scale: options.timeout_scale,
        server: timers,
        clauses,
        runs,
        findings,
        rerun: rerun_command(target, options),
        wall_ms: elapsed_ms(started),
    })
}

/// The server's Engine.IO timers, read from one polling handshake and cut to
/// what a check waits for, as [`check`] does; `None` when the handshake fails.
pub async fn announced_timers(target: &Target, options: &CheckOptions) -> Option<AnnouncedTimers> {
    let connector = target.connector();
    let names = Names::new(options.seed, fresh_tag_source());
    handshake::handshake_run(&connector, &names, options)
        .await
        .1
}

/// The token issuer live runs against `target` need: `None` for a v1 server
/// (a secret given is not used), the issuer from `secret` for a v2 one, and an
/// error for a v2 server without a secret: its users could not register, and
/// every play would blame it for that.
pub async fn live_tokens(
    target: &Target,
    secret: Option<crate::token::TokenIssuer>,
    patience: Duration,
) -> Result<Option<crate::token::TokenIssuer>, CheckError> {
    let connector = target.connector();
    match (secure::contract_version(&connector, patience).await, secret) {
        (secure::Version::V1, _) => Ok(None),
        (secure::Version::V2 { .. }, Some(issuer)) => Ok(Some(issuer)),
        (secure::Version::V2 { .. }, None) => Err(CheckError::NeedsSecret {
            url: target.url.clone(),
        }),
    }
}

/// The command line that repeats a check.
pub fn rerun_command(target: &Target, options: &CheckOptions) -> String {
    let mut line = format!(
        "harness check {}{} --level {} --seed {}",
        target.url,
        target.reach.flags(),
        options.level,
        options.seed
    );
    if options.timeout_scale != 1.0 {
        line.push_str(&format!(" --timeout-scale {}", options.timeout_scale));
    }
    line
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The runs that exercise each clause (a clause no run reached is skipped).
fn runs_for(clause: Clause) -> &'static [&'static str] {
    match clause {
        Clause::T1 => &["handshake", "core", "rust_socketio"],
        Clause::T2 | Clause::H1 => &["http"],
        Clause::I1 | Clause::I2 | Clause::I3 | Clause::M1 | Clause::M4 => &["core"],
        Clause::P1 | Clause::P2 | Clause::P3 | Clause::P4 => {
            &["core", "rust_socketio", "robust", "restart"]
        }
        Clause::M2 | Clause::M3 => &["core", "rust_socketio"],
        Clause::M5 => &["robust"],
        Clause::L1 => &["http", "core", "cursor"],
        Clause::L2 => &["cursor", "robust", "restart"],
        Clause::L3 => &[],
        Clause::L4 => &["http", "cursor", "restart"],
        Clause::B1 => &["http", "core", "cursor"],
        Clause::H2
        | Clause::A1
        | Clause::A2
        | Clause::A3
        | Clause::A4
        | Clause::A5
        | Clause::A6 => &["secure"],
        Clause::N1 | Clause::N2 | Clause::N3 | Clause::N4 => &["cluster"],
    }
}

/// How many of a clause's sentences need evidence before it may pass.
fn binding_count(clause: Clause) -> usize {
    clause
        .sentences()
        .iter()
        .filter(|s| evidence::binding(&s.kind))
        .count()
}

fn judge(clause: Clause, level: Level, runs: &[Run]) -> ClauseReport {
    let findings: Vec<Evidence> = runs
        .iter()
        .flat_map(|run| {
            run.violations
                .iter()
                .filter(|v| v.clause == clause)
                .map(|v| Evidence {
                    run: run.name,
                    violation: v.clone(),
                })
        })
        .collect();
    // Evidence per sentence: every MUST (and MUST NOT) of the clause
    // exercised by one of the runs that judge it.
    let judged: Vec<&Run> = runs
        .iter()
        .filter(|r| runs_for(clause).contains(&r.name))
        .collect();
    let exercised: std::collections::BTreeSet<String> =
        judged.iter().flat_map(|r| evidence::sentences(r)).collect();
    let missing: Vec<&crate::spec::Sentence> = clause
        .sentences()
        .iter()
        .filter(|s| evidence::binding(&s.kind) && !exercised.contains(&s.id))
        .collect();
    // A clause with no binding sentence (SHOULD, MAY, REF only) stands on
    // its clause's evidence.
    let reached = if binding_count(clause) > 0 {
        missing.is_empty()
    } else {
        judged
            .iter()
            .any(|r| evidence::exercised(r).contains(&clause))
    };
    let verdict = if !findings.is_empty() {
        Verdict::Fail
    } else if clause == Clause::L3 {
        Verdict::Skip("describes the reference client's poll period, not the server".into())
    } else if !level.judges(clause.level()) {
        Verdict::Skip(match clause.level() {
            Level::Secure => "contract v2 identity: run with --level secure".into(),
            Level::Cluster => "a deployment of several nodes: run with --level cluster and --node URL for each node".into(),
            _ => "judged under faults: run with --level robust".into(),
        })
    } else if let Some(note) = runs
        .iter()
        .filter(|r| runs_for(clause).contains(&r.name))
        .find_map(|r| r.clause_notes.get(&clause))
        .filter(|_| !reached)
    {
        Verdict::Skip(note.clone())
    } else if let Some(note) = runs
        .iter()
        .filter(|r| runs_for(clause).contains(&r.name))
        .find_map(|r| r.note.as_ref())
        .filter(|_| !reached)
    {
        Verdict::Skip(note.clone())
    } else if !reached && !missing.is_empty() && missing.len() < binding_count(clause) {
        Verdict::Skip(format!(
            "no evidence for {}: the runs that judge it ({}) never exercised {}",
            missing
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            runs_for(clause).join(", "),
            missing
                .iter()
                .map(|s| format!("\"{}\"", s.text))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    } else if !reached {
        Verdict::Skip(format!(
            "no evidence: none of the runs that judge it ({}) got that far (no registered session, no answer, or nothing accepted)",
            runs_for(clause).join(", ")
        ))
    } else {
        Verdict::Pass
    };
    ClauseReport {
        clause,
        level: clause.level(),
        statement: clause.statement(),
        verdict,
        findings,
        sentences: clause.sentences(),
    }
}

/// Waits for any HTTP answer to `/health`; only silence is "unreachable".
async fn wait_until_up(
    target: &Target,
    connector: &TcpConnector,
    patience: Duration,
) -> Result<(), CheckError> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            transport::request(connector, http::Method::GET, "/health", &[], None),
        )
        .await
        .unwrap_or(Err(transport::TransportError::Timeout));
        match attempt {
            Ok(_) => return Ok(()),
            // A refused certificate will not be accepted by waiting.
            Err(transport::TransportError::Connect(e))
                if target.tls.is_some() && e.kind() == std::io::ErrorKind::InvalidData =>
            {
                let hint = if target.reach.ca_cert.is_none() {
                    " (a self-signed or private CA's certificate: pass --ca-cert FILE)"
                } else {
                    ""
                };
                return Err(CheckError::Tls {
                    url: target.url.clone(),
                    reason: format!("{e}{hint}"),
                });
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(CheckError::Unreachable {
                    url: target.url.clone(),
                    reason: format!("{e} (waited {} s for /health)", patience.as_secs()),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Where a check's name tag comes from: the clock and the process id, outside
/// any simulation.
fn fresh_tag_source() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The run's user names, with a tag unique to this check, so checks against a
/// long-lived server (its mailboxes, its retry memory) do not see each other.
pub(crate) struct Names {
    tag: String,
    seed: u64,
}

impl Names {
    fn new(seed: u64, tag_source: u64) -> Self {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut n = tag_source;
        let mut tag: Vec<u8> = (0..5)
            .map(|_| {
                let d = DIGITS[(n % 36) as usize];
                n /= 36;
                d
            })
            .collect();
        tag.reverse();
        let tag = String::from_utf8(tag).expect("ASCII digits");
        Self { tag, seed }
    }

    fn user(&self, base: &str) -> String {
        format!("{base}.{}", self.tag)
    }

    /// A valid name of exactly 32 characters, using every allowed punctuation mark (I2).
    fn longest(&self) -> String {
        let mut name = format!("i2_{}.-", self.tag);
        while name.len() < 32 {
            name.push('z');
        }
        name
    }

    /// A valid one-character name (I2).
    fn shortest(&self) -> String {
        let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        (letters[(self.seed % 26) as usize] as char).to_string()
    }
}

// ---------------------------------------------------------------------------
// core: the calm scenario

fn user(name: String, open: OpenMode, header: HeaderPolicy, profile: Profile) -> UserSpec {
    UserSpec {
        name,
        profile,
        open,
        header,
        token: None,
        background: false,
        socketio_js: false,
    }
}

fn step(at_ms: u64, user: usize, action: Action) -> Step {
    Step {
        at_ms,
        user,
        action,
    }
}

fn send(to: &str, content: &str) -> Action {
    Action::Send {
        to: to.to_owned(),
        content: content.to_owned(),
    }
}

/// How often the check's observer probes `/api/online`.
const PROBE_EVERY_MS: u64 = 1_000;

/// A scenario on the check's calm network: `steps` in time order over a 6 s
/// active phase, a heal long enough for the last send (at `last_send_ms`) to
/// be acked or fall back to the mailbox, and M3's bound scaled with
/// `--timeout-scale`; identified by token for a v2 server.
fn calm_scenario(
    options: &CheckOptions,
    users: Vec<UserSpec>,
    mut steps: Vec<Step>,
    last_send_ms: u64,
) -> Scenario {
    steps.sort_by_key(|s| s.at_ms);
    let ack_ms = check_client(options).ack_timeout_ms;
    let active_ms = 6_000;
    for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps,
            faults: crate::faults::FaultPlan {
                latency_ms_min: 0,
                latency_ms_max: 0,
                faults: Vec::new(),
                push_bound_ms: (options.timeout_scale > 1.0)
                    .then(|| options.scaled(crate::judge::PUSH_BOUND_MS)),
            },
            active_ms,
            heal_ms: (last_send_ms + ack_ms + 1_000)
                .saturating_sub(active_ms)
                .max(2_000)
                + crate::world::DRAIN_MS
                + 1_000,
            open_world: true,
        },
    )
}

/// A v2 server (the check has its secret): every user of `scenario`
/// identifies by token ([`Scenario::identify_by_token`]); a v1 one is unchanged.
fn for_contract(options: &CheckOptions, mut scenario: Scenario) -> Scenario {
    if options.tokens.is_some() {
        scenario.identify_by_token();
    }
    scenario
}

/// The reference client's timers for a check: fast polls, scaled patience.
pub fn check_client(options: &CheckOptions) -> ClientConfig {
    ClientConfig {
        poll_interval_ms: options.scaled(2_000),
        connect_timeout_ms: options.scaled(3_000),
        request_timeout_ms: options.scaled(5_000),
        ack_timeout_ms: options.scaled(4_000),
        tokens: options.tokens.clone(),
        ..ClientConfig::default()
    }
}

//! `harness check`: black-box conformance of anyone's server, over real TCP.
//!
//! The same reference client, scenario format, trace and checkers as the
//! simulation, pointed at a URL. A check is a handful of runs, each recorded as
//! a trace and judged by pure functions:
//! - `http`: the plain endpoints' shapes and refusals (H1, T2, L1, B1);
//! - `handshake`: an Engine.IO polling handshake, for the server's timers (T1);
//! - `core`: one calm scenario covering identity (every bad header, a browser's
//!   stripped websocket header, both username bounds), two tabs, pushes, the
//!   mailbox, refusals, malformed sends, and a raw-packet abuser (B1);
//! - `cursor`: the mailbox cursor over HTTP, before and after re-polls (L1, L2);
//! - `rust_socketio`: the core flow with a second, independent client;
//! - `robust` (`--level robust`): the scenario again through the seeded fault
//!   proxy: black hole until the ping timeout, reset, hold, lost poll response;
//! - `cluster` (`--level cluster`, `--node URL` per node): a deployment of
//!   several nodes as one server (N1–N3), users pinned to chosen nodes.
//!
//! Nothing here assumes more than the contract: a server may refuse or keep an
//! unregistered connection, may name its errors as it likes, may discard polled
//! entries or not.

mod cluster;
mod evidence;
mod interop;
mod probes;
pub mod replay;
pub mod report;
pub mod restart;
pub mod rules;
pub mod secure;
mod target;

pub use restart::RestartCommand;
pub use target::{Reach, Target};

use interop::rust_socketio_run;
use probes::{abbreviate, cursor_run, handshake_run, http_run};
use rules::{
    abuse_harms_nobody, calm_deliveries, half_open_is_noticed, presence_is_announced,
    registered_are_listed, sessions_open,
};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::client::ClientConfig;
use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::judge::{check_all, Facts, Violation, PUSH_BOUND_MS};
use crate::net::malformed::{Malformed, Out};
use crate::net::proxy::{FaultProxy, Mode};
use crate::net::transport::{self, TcpConnector};
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario, Step, UserSpec};
use crate::spec::{Clause, Level};
use crate::trace::{Recorder, Trace, TraceClock, What};
use crate::world::{host_of, play, sleep_until_ms, DRAIN_MS};

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
    let findings = vec![probes::cors_finding(&connector, options.patience()).await];
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
    probes::handshake_run(&connector, &names, options).await.1
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

/// Contents of the messages to `dave`, which the cursor run reads back unaltered.
const DAVE_CONTENTS: [&str; 3] = [
    "first: plain",
    "second: héllo ✓ 漢字",
    "third: \"quoted\" \\ <b>",
];

/// Malformed `send_message` arguments (B1, M1).
fn malformed_payloads(to: &str) -> Vec<String> {
    vec![
        json!("just a string").to_string(),
        json!({}).to_string(),
        json!([1, 2, 3]).to_string(),
        json!({"to": to, "content": "", "client_id": "empty-content"}).to_string(),
        json!({"to": to, "content": "é".repeat(4097), "client_id": "4097-chars"}).to_string(),
        json!({"to": to, "content": "ok", "client_id": "c".repeat(65)}).to_string(),
        json!({"to": to, "content": "ok", "client_id": ""}).to_string(),
        json!({"to": to, "content": 42, "client_id": "number-content"}).to_string(),
        json!({"content": "no recipient", "client_id": "no-to"}).to_string(),
    ]
}

/// How often the check's observer probes `/api/online`.
const PROBE_EVERY_MS: u64 = 1_000;

/// When the raw-packet abuser starts, in the core run.
const ABUSE_AT_MS: u64 = 3_300;

fn core_scenario(names: &Names, options: &CheckOptions) -> Scenario {
    use HeaderPolicy::*;
    use OpenMode::*;
    use Profile::*;
    let users = vec![
        user(names.user("alice"), WebsocketFirst, Valid, Node), // 0
        user(names.user("bob"), PollingFirst, Valid, Node),     // 1
        user(names.user("carol"), WebsocketFirst, Valid, Node), // 2: never connects
        user(names.user("ghost"), WebsocketFirst, Absent, Node),
        user(names.user("empty"), PollingFirst, Empty, Node),
        user(names.user("bad"), WebsocketFirst, Invalid, Node),
        user(names.user("long"), PollingFirst, TooLong, Node),
        user(names.user("web"), WebsocketFirst, Valid, Browser), // 7: header stripped
        user(names.longest(), WebsocketFirst, Valid, Node),      // 8
        user(names.shortest(), PollingFirst, Valid, Node),       // 9
        user(names.user("mallory"), WebsocketFirst, Valid, Node), // 10: the raw abuser
        user(names.user("polly"), PollingOnly, Valid, Browser),  // 11: never upgrades
    ];
    let n = |i: usize| users[i].name.clone();
    let dave = names.user("dave");
    let mut steps = vec![step(0, 0, Action::Open)];
    steps.extend((3..=7).map(|u| step(0, u, Action::Open)));
    steps.extend([
        step(400, 1, Action::Open),
        step(800, 8, Action::Open),
        step(800, 9, Action::Open),
        step(800, 11, Action::Open),
        step(1_500, 0, Action::Open), // a second tab
        step(2_500, 0, send(&n(1), "hello bob")),
        step(2_550, 1, send(&n(0), &"é".repeat(4096))), // the longest valid content
        step(2_600, 8, send(&n(9), "bounds")),
        step(2_650, 0, send(&n(2), "to carol, offline")),
        step(2_700, 0, send(&dave, DAVE_CONTENTS[0])),
        step(2_710, 0, send(&dave, DAVE_CONTENTS[1])),
        step(2_720, 0, send(&dave, DAVE_CONTENTS[2])),
        step(2_750, 0, send(&n(3), "to ghost, unregistered")),
        step(2_850, 0, send("not a user!", "invalid recipient")),
        step(2_660, 0, send(&n(11), "to polly, over long-polling")),
        step(2_670, 11, send(&n(1), "from polly, over long-polling")),
    ]);
    steps.extend((3..=7).map(|u| step(2_800, u, send(&n(0), "from an unregistered connection"))));
    steps.extend(
        malformed_payloads(&n(1))
            .into_iter()
            .enumerate()
            .map(|(i, payload)| step(2_900 + i as u64, 0, Action::SendRaw { payload })),
    );
    steps.extend([
        step(3_200, 0, Action::Close), // the first tab; the second keeps alice online
        step(4_500, 9, Action::Close),
        step(5_000, 2, Action::Poll),
        step(5_500, 1, send(&n(9), "to a user who left")),
    ]);
    steps.sort_by_key(|s| s.at_ms);
    let ack_ms = check_client(options).ack_timeout_ms;
    for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps,
            faults: FaultPlan {
                latency_ms_min: 0,
                latency_ms_max: 0,
                faults: Vec::new(),
                push_bound_ms: (options.timeout_scale > 1.0).then(|| options.scaled(PUSH_BOUND_MS)),
            },
            active_ms: 6_000,
            heal_ms: (2_900 + ack_ms + 1_000).saturating_sub(6_000).max(2_000) + DRAIN_MS + 1_000,
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

async fn core_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
) -> Run {
    let started = Instant::now();
    let scenario = core_scenario(names, options);
    let recorder = Recorder::new(TraceClock::Real(started));
    let steps = abuse_packets(names, timers, options.seed);
    let window = Duration::from_millis(options.scaled(1_000));
    let abuser = abuse(
        connector,
        names,
        &recorder,
        options,
        steps,
        (
            ABUSE_AT_MS,
            window,
            scenario.end_ms().saturating_sub(DRAIN_MS),
        ),
    );
    let connectors = vec![connector.clone(); scenario.users.len()];
    let client = check_client(options);
    let ((), well_formed) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        abuser
    );
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    let slack = options.scaled(1_000);
    violations.extend(sessions_open(&facts));
    violations.extend(registered_are_listed(
        &facts,
        &[names.longest(), names.shortest()],
    ));
    violations.extend(presence_is_announced(&facts, slack));
    violations.extend(calm_deliveries(&facts, slack));
    violations.extend(abuse_harms_nobody(&facts, ABUSE_AT_MS, &well_formed));
    violations.extend(rules::reused_client_id_gets_no_old_ack(&facts));
    violations.extend(rules::one_argument_only(&facts));
    Run::new("core", Some(scenario), trace, violations, started)
}

/// What the abuser records for the answers that came after their frame's
/// gap, read once more at the end; and a window with no answer.
pub(crate) const LATE_ANSWERS: &str = "(late answers)";
/// The most frames one abuser exchange records (each abbreviated).
const MAX_ANSWER_FRAMES: usize = 24;
const NOTHING: &str = "(nothing)";

/// Ack ids of the fuzz sample: one a frame, from here on.
const FUZZ_ACKS_FROM: u64 = 100;

/// A registered client that sends broken packets on a raw websocket: the
/// fixed probes of [`abuse_packets`], then a seeded sample of [`Malformed`]
/// frames; then checks `/health`. Everything it sends and gets back is
/// recorded as `abuser`. Returns the requests (as recorded) a server may
/// accept as messages ([`abuse_harms_nobody`]).
async fn abuse(
    connector: &TcpConnector,
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
    steps: Vec<AbuseStep>,
    (at_ms, answer_window, done_by_ms): (u64, Duration, u64),
) -> Vec<String> {
    sleep_until_ms(recorder, at_ms).await;
    let name = names.user("mallory");
    // Answers are kept whole, frame by frame ([`answers_to`] bounds them):
    // an ack is attributed by its id, wherever it stands among them.
    let exchange = |request: &str, answer: String| {
        recorder.record(
            "abuser",
            What::Exchange {
                request: abbreviate(request),
                answer,
            },
        )
    };
    let path = "/socket.io/?EIO=4&transport=websocket";
    // A v2 server: the abuser is registered by a valid token (A2).
    let token = options
        .tokens
        .as_ref()
        .and_then(|issuer| issuer.mint(crate::token::TokenPolicy::Valid, &name));
    let connect = match &token {
        Some(token) => (
            format!("40{}", json!({ "token": token })),
            "40{\"token\": <valid token>}".to_owned(),
        ),
        None => ("40".to_owned(), "40".to_owned()),
    };
    let well_formed = steps
        .iter()
        .filter(|s| s.may_accept)
        .map(|s| abbreviate(&s.request()))
        .collect();
    // A server may close the abuser's connection over a packet it cannot
    // read: the abuser then connects again and goes on, so every probe after
    // it is still sent (and still judged). A CONNECT probe goes out first on
    // a connection of its own, and so does a frame that leaves its
    // connection waiting for an attachment (after the CONNECT): what follows
    // it on a shared connection would be read as part of it.
    let register = |mut opened: crate::net::transport::TcpWebSocket| {
        let connect = &connect;
        async move {
            let writes = [Out::Text(connect.0.clone())];
            let (answer, closed) = send_and_answer(&mut opened, &writes, answer_window).await;
            exchange(&connect.1, answer);
            (!closed).then_some(opened)
        }
    };
    let quick = (answer_window / 10).max(Duration::from_millis(50));
    let mut ws: Option<crate::net::transport::TcpWebSocket> = None;
    let total = steps.len();
    for (sent, step) in steps.into_iter().enumerate() {
        // The abuser is a registered user: it must be gone before the
        // scenario's last presence probe, or it would be listed online there.
        if recorder.now_ms() >= done_by_ms {
            exchange(
                "(abuser out of time)",
                format!("{} of {total} probes not sent", total - sent),
            );
            break;
        }
        if step.fresh || step.alone {
            let mut opened =
                match transport::websocket(connector, path, &[("username", &name)]).await {
                    Err(e) => {
                        exchange(&format!("websocket {path}"), format!("error: {e}"));
                        continue;
                    }
                    Ok(opened) => opened,
                };
            if step.alone {
                let Some(registered) = register(opened).await else {
                    continue;
                };
                opened = registered;
            }
            let (answer, _) = send_and_answer(&mut opened, &step.writes, answer_window).await;
            exchange(&step.request(), answer);
            let _ = opened.close(None).await;
            continue;
        }
        if ws.is_none() {
            match transport::websocket(connector, path, &[("username", &name)]).await {
                Err(e) => {
                    exchange(&format!("websocket {path}"), format!("error: {e}"));
                    break;
                }
                Ok(opened) => match register(opened).await {
                    Some(registered) => ws = Some(registered),
                    None => break,
                },
            }
        }
        let Some(open) = ws.as_mut() else { break };
        let window = if step.quick { quick } else { answer_window };
        let (answer, closed) = send_and_answer(open, &step.writes, window).await;
        exchange(&step.request(), answer);
        if closed {
            ws = None;
        }
    }
    if let Some(mut ws) = ws {
        // Answers that came after their frame's gap: judged by ack id.
        let (answer, _) = answers_to(&mut ws, LATE_ANSWERS, answer_window).await;
        if answer != NOTHING {
            exchange(LATE_ANSWERS, answer);
        }
        let _ = ws.close(None).await;
    }
    let outcome = transport::request(connector, http::Method::GET, "/health", &[], None).await;
    let answer = match outcome {
        Ok(r) => format!("{} {}", r.status, abbreviate(&r.body)),
        Err(e) => format!("error: {e}"),
    };
    exchange("GET /health", answer);
    well_formed
}

/// One thing the abuser sends and awaits an answer to.
struct AbuseStep {
    /// The frames, written back to back.
    writes: Vec<Out>,
    /// Whether a server may accept it as a message.
    may_accept: bool,
    /// Whether it goes out first on a fresh connection (a CONNECT).
    fresh: bool,
    /// Whether it goes out on a registered connection of its own, closed
    /// after: it leaves its connection waiting for more
    /// ([`Malformed::leaves_pending`]), which would swallow what follows.
    alone: bool,
    /// Whether the abuser moves on after a short gap instead of the whole
    /// answer window: a late answer is still attributed by its ack id
    /// ([`rules::abuser_acks`]), and the abuser reads its connection one
    /// window more at the end.
    quick: bool,
}

impl AbuseStep {
    fn text(frame: String, may_accept: bool) -> Self {
        Self {
            writes: vec![Out::Text(frame)],
            may_accept,
            fresh: false,
            alone: false,
            quick: false,
        }
    }

    /// The request as recorded: text frames as they are, attachments by size.
    fn request(&self) -> String {
        let parts: Vec<String> = self
            .writes
            .iter()
            .map(|w| match w {
                Out::Text(t) => t.clone(),
                Out::Binary(b) => format!("<binary attachment, {} bytes>", b.len()),
            })
            .collect();
        parts.join(" + ")
    }
}

/// What the abuser sends, in order: three messages under one `client_id`, the
/// second with other content, the third with the first's content to another
/// recipient (M1);
/// two arguments (M1); a payload claiming another `from` (M2); bad JSON twice;
/// an unknown event with an ack; a send without its argument; the seeded
/// sample of [`Malformed`] frames; a frame above maxPayload (B1).
fn abuse_packets(names: &Names, timers: Option<AnnouncedTimers>, seed: u64) -> Vec<AbuseStep> {
    let sink = names.user("m1sink");
    let reused = |ack_id: u64, to: &str, content: &str| {
        let event = json!(["send_message", {"to": to, "content": content, "client_id": "m1"}]);
        format!("42{ack_id}{event}")
    };
    let other_sink = names.user("m1other");
    let two_args = json!(["send_message", {"to": sink, "content": "m1 two arguments", "client_id": "m1-two"}, "extra"]);
    let forged = json!(["send_message", {"to": sink, "content": "m2 forged from", "client_id": "m2", "from": names.user("dave")}]);
    let mut steps = vec![
        AbuseStep::text(reused(rules::REUSED_ID_ACKS.0, &sink, "m1 first"), true),
        AbuseStep::text(
            reused(rules::REUSED_ID_ACKS.1, &sink, "m1 second, same client_id"),
            true,
        ),
        AbuseStep::text(
            reused(rules::REUSED_ID_OTHER_TO_ACK, &other_sink, "m1 first"),
            true,
        ),
        AbuseStep::text(format!("42{}{two_args}", rules::TWO_ARGS_ACK), true),
        AbuseStep::text(format!("42{}{forged}", rules::FORGED_FROM_ACK), true),
        AbuseStep::text(r#"42["send_message",{"to":"#.to_owned(), false),
        AbuseStep::text("42not json at all".to_owned(), false),
        AbuseStep::text(
            format!(
                r#"42{}["no_such_event",{{"x":1}}]"#,
                rules::UNKNOWN_EVENT_ACK
            ),
            false,
        ),
        AbuseStep::text(r#"422["send_message"]"#.to_owned(), false),
    ];
    // Frames a fuzzer reaches (B1), drawn from the check's seed.
    steps.extend(fuzz_steps(&Malformed::cover(seed), &sink));
    let max = timers.map_or(0, |t| t.max_payload);
    if max > 0 && max <= 8 << 20 {
        let content = "x".repeat(usize::try_from(max).unwrap_or(0) + 1);
        let big = json!(["send_message", {"to": names.user("dave"), "content": content, "client_id": "oversized"}]);
        steps.push(AbuseStep::text(format!("423{big}"), false));
    }
    steps
}

/// The abuser's steps for `sample`, addressing `sink`: each may be ignored
/// or refused; none may be accepted as a message, cost anyone else their
/// connection, or stop /health.
fn fuzz_steps(sample: &[Malformed], sink: &str) -> Vec<AbuseStep> {
    let mut steps = Vec::new();
    for (i, malformed) in sample.iter().enumerate() {
        let frames = malformed.frames(sink, FUZZ_ACKS_FROM + i as u64);
        let alone = malformed.leaves_pending();
        if alone || matches!(&frames[..], [Out::Text(_), Out::Binary(_)]) {
            // An attachment completes its event, and one that never comes
            // leaves the connection waiting: one exchange either way.
            steps.push(AbuseStep {
                writes: frames,
                may_accept: false,
                fresh: false,
                alone,
                quick: false,
            });
            continue;
        }
        for (n, out) in frames.into_iter().enumerate() {
            steps.push(AbuseStep {
                writes: vec![out],
                may_accept: malformed.may_accept(n),
                fresh: malformed.is_connect(),
                alone: false,
                quick: true,
            });
        }
    }
    steps
}

/// B1 for one sample of malformed frames, on its own: `alice` and `bob`
/// connect and exchange a message, the abuser sends `sample` on a raw
/// websocket, `alice` sends again; judged by every trace checker and by
/// [`abuse_harms_nobody`]. The property tests drive it with generated samples;
/// `check` sends a seeded sample of its own inside the core run.
pub async fn fuzz_run(
    target: &Target,
    options: &CheckOptions,
    sample: &[Malformed],
) -> Result<Run, CheckError> {
    let started = Instant::now();
    let connector = target.connector();
    wait_until_up(target, &connector, options.patience()).await?;
    let names = Names::new(options.seed, fresh_tag_source());
    let steps = fuzz_steps(sample, &names.user("m1sink"));
    let window_ms = options.scaled(300);
    let abuse_at_ms = 1_000;
    // Room for every answer window and a reconnect after each.
    let after_ms = abuse_at_ms + steps.len() as u64 * (window_ms + 200) + 500;
    use HeaderPolicy::Valid;
    let users = vec![
        user(
            names.user("alice"),
            OpenMode::WebsocketFirst,
            Valid,
            Profile::Node,
        ),
        user(
            names.user("bob"),
            OpenMode::PollingFirst,
            Valid,
            Profile::Node,
        ),
    ];
    let bob = users[1].name.clone();
    let scenario = for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps: vec![
                step(0, 0, Action::Open),
                step(0, 1, Action::Open),
                step(600, 0, send(&bob, "before the abuse")),
                step(after_ms, 0, send(&bob, "after the abuse")),
            ],
            faults: FaultPlan::default(),
            active_ms: after_ms + 1_000,
            heal_ms: options.scaled(1_500) + DRAIN_MS,
            open_world: true,
        },
    );
    let recorder = Recorder::new(TraceClock::Real(started));
    let client = check_client(options);
    let window = Duration::from_millis(window_ms);
    let ((), well_formed) = tokio::join!(
        play(
            &scenario,
            vec![connector.clone(); scenario.users.len()],
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        abuse(
            &connector,
            &names,
            &recorder,
            options,
            steps,
            (
                abuse_at_ms,
                window,
                scenario.end_ms().saturating_sub(DRAIN_MS)
            )
        )
    );
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    violations.extend(sessions_open(&facts));
    violations.extend(calm_deliveries(&facts, options.scaled(1_000)));
    violations.extend(abuse_harms_nobody(&facts, abuse_at_ms, &well_formed));
    Ok(Run::new("fuzz", Some(scenario), trace, violations, started))
}

/// Writes `writes` and collects what came back ([`answers_to`], awaiting
/// the answer to the first text frame).
async fn send_and_answer<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    writes: &[Out],
    window: Duration,
) -> (String, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for write in writes {
        let frame = match write {
            Out::Text(t) => Frame::text(t.clone()),
            Out::Binary(b) => Frame::binary(b.clone()),
        };
        if ws.send(frame).await.is_err() {
            return ("connection closed before sending".into(), true);
        }
    }
    let first = writes.iter().find_map(|w| match w {
        Out::Text(t) => Some(t.as_str()),
        Out::Binary(_) => None,
    });
    answers_to(ws, first.unwrap_or(""), window).await
}

async fn answers_to<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    packet: &str,
    window: Duration,
) -> (String, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let awaited = if packet.starts_with("40") {
        Some("40".to_owned()) // CONNECT: done at the namespace's answer
    } else {
        // An event (`42<id>[`) or a binary event (`45<n>-<id>[`) asking for an ack.
        packet
            .strip_prefix("42")
            .or_else(|| {
                packet
                    .strip_prefix("45")
                    .and_then(|r| r.split_once('-'))
                    .map(|(_, r)| r)
            })
            .and_then(|rest| rest.split_once('['))
            .filter(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(|(id, _)| format!("43{id}["))
    };
    // A frame that asks for no answer gets a short quiet window: a server
    // may ignore it, and waiting the whole window on each would outlast the
    // scenario. The late answers at the end get the whole window.
    let window = if awaited.is_some() || packet == LATE_ANSWERS {
        window
    } else {
        (window / 4).max(Duration::from_millis(250)).min(window)
    };
    let deadline = Instant::now() + window;
    let mut answers = Vec::new();
    let mut more = 0usize;
    let mut closed = false;
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        match frame {
            Some(Ok(Frame::Text(t))) if t.as_str() == "2" => {
                let _ = ws.send(Frame::text("3")).await;
            }
            Some(Ok(Frame::Text(t))) => {
                // A CONNECT is done at its answer, accepted or refused (`44`).
                let done = awaited
                    .as_deref()
                    .is_some_and(|a| t.as_str().starts_with(a))
                    || (awaited.as_deref() == Some("40") && t.as_str().starts_with("44"));
                // Each frame kept whole up to a bound, and so many of them:
                // a hostile server cannot grow the trace.
                if answers.len() < MAX_ANSWER_FRAMES {
                    answers.push(abbreviate(t.as_str()));
                } else {
                    more += 1;
                }
                if done {
                    break;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                closed = true;
                break;
            }
        }
    }
    if more > 0 {
        answers.push(format!("… {more} more frames"));
    }
    let mut answer = if answers.is_empty() {
        NOTHING.to_owned()
    } else {
        answers.join(" | ")
    };
    if closed {
        answer.push_str(" [connection closed]");
    }
    (answer, closed)
}

// ---------------------------------------------------------------------------
// robust: the scenario through the fault proxy

/// The robust scenario, one user per proxy: `ra` sends; `rb` is black-holed
/// until the server's ping timeout must have fired; `rc` is reset; `re` is held
/// and released; `rd` only polls and loses a poll response, then connects,
/// switches networks (its connection stalls) and reconnects at once, before the
/// server can notice the old connection is dead (P2's early reconnect).
fn robust_scenario(names: &Names, options: &CheckOptions, timers: AnnouncedTimers) -> Scenario {
    // At most `MAX_CLIENT_HOSTS` users, so each has its own host and proxy.
    let users: Vec<UserSpec> = ["ra", "rb", "rc", "rd", "re"]
        .iter()
        .map(|b| UserSpec::node(&names.user(b)))
        .collect();
    let mut users = users;
    users[2].open = OpenMode::PollingFirst;
    debug_assert!(users.len() <= crate::world::MAX_CLIENT_HOSTS);
    let n = |i: usize| users[i].name.clone();
    let silence = options.scaled(timers.ping_interval_ms + timers.ping_timeout_ms);
    let black_hole_ms = silence + options.scaled(3_000);
    let heal_at = 2_000 + black_hole_ms;
    let fault = |host: usize, at_ms: u64, duration_ms: u64, kind: FaultKind| Fault {
        at_ms,
        duration_ms,
        host: host_of(host, users.len()),
        kind,
    };
    let rd_back_at = 1_500 + options.scaled(3_000) + 500;
    let faults = vec![
        fault(3, 1_500, options.scaled(3_000), FaultKind::LosePollResponse),
        fault(3, rd_back_at + 1_000, 1, FaultKind::Stall),
        fault(1, 2_000, black_hole_ms, FaultKind::Partition),
        fault(2, 2_000, 1, FaultKind::Reset),
        fault(4, 2_000, options.scaled(2_000), FaultKind::Hold),
        // rc's websocket upgrades are refused all along: it lives on polling.
        fault(
            2,
            0,
            (heal_at + 1_000).max(rd_back_at + 2_000),
            FaultKind::StripUpgrade,
        ),
    ];
    let mut steps = vec![
        step(0, 0, Action::Open),
        step(0, 1, Action::Open),
        step(0, 2, Action::Open),
        step(0, 4, Action::Open),
        step(1_000, 0, send(&n(3), "to rd, who only polls")),
        step(2_000 + options.scaled(500), 3, Action::Poll),
        step(2_500, 0, send(&n(2), "to rc, around its reset")),
        step(2_500, 0, send(&n(4), "to re, held")),
        // Sent before the server can have noticed the silence: the push goes
        // into the black hole, unacknowledged (M5).
        step(2_100, 0, send(&n(1), "to rb, into the black hole")),
        step(heal_at + 500, 0, send(&n(1), "to rb, after the heal")),
        step(rd_back_at, 3, Action::Open),
        step(rd_back_at + 1_100, 3, Action::Crash { down_ms: 300 }),
    ];
    steps.sort_by_key(|s| s.at_ms);
    for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps,
            faults: FaultPlan {
                latency_ms_min: 1,
                latency_ms_max: 40,
                faults,
                push_bound_ms: None,
            },
            active_ms: (heal_at + 1_000).max(rd_back_at + 2_000),
            // The stall began before the black hole ended: the server has had its
            // ping timeout for both by the end of the active phase.
            heal_ms: options.scaled(10_000) + DRAIN_MS,
            open_world: true,
        },
    )
}

async fn robust_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
) -> Run {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let Some(timers) = timers else {
        recorder.record(
            "world",
            What::Exchange {
                request: "robust run".into(),
                answer: "skipped: no Engine.IO handshake, so no ping timers to wait for".into(),
            },
        );
        return Run::new("robust", None, recorder.trace(), Vec::new(), started);
    };
    let mut scenario = robust_scenario(names, options, timers);
    if connector.tls.is_some() {
        // The proxy sees ciphertext: it cannot tell a poll or an upgrade
        // from any other request. Said in the trace, not silently skipped.
        scenario.faults.faults.retain(|f| {
            !matches!(
                f.kind,
                FaultKind::LosePollResponse | FaultKind::StripUpgrade
            )
        });
        recorder.record(
            "world",
            What::Exchange {
                request: "lose_poll_response, strip_upgrade".into(),
                answer: "not injected: through TLS the fault proxy cannot see requests".into(),
            },
        );
    }
    let mut proxies = Vec::new();
    for i in 0..scenario.users.len() {
        match FaultProxy::start(connector.addr, options.seed ^ i as u64).await {
            Ok(proxy) => proxies.push(proxy),
            Err(e) => {
                recorder.record(
                    "world",
                    What::Exchange {
                        request: "start fault proxy".into(),
                        answer: e.to_string(),
                    },
                );
                return Run::new(
                    "robust",
                    Some(scenario),
                    recorder.trace(),
                    Vec::new(),
                    started,
                );
            }
        }
    }
    let latency = (
        scenario.faults.latency_ms_min,
        scenario.faults.latency_ms_max,
    );
    for proxy in &proxies {
        proxy.set(Mode::with_faults(latency, &[], (0, 0)));
    }
    let connectors: Vec<TcpConnector> = proxies.iter().map(|p| connector.via(p.addr())).collect();
    // No restart in this plan: the driver cannot fail.
    let driver = drive_faults(&scenario, &proxies, &recorder, None);
    let client = check_client(options);
    let (_, _) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        driver
    );
    drop(proxies);
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    violations.extend(half_open_is_noticed(
        &facts,
        1,
        options.scaled(timers.ping_interval_ms + timers.ping_timeout_ms),
    ));
    Run::new("robust", Some(scenario), trace, violations, started)
}

/// Restarting the server on real TCP: the command, the server to wait for
/// after it, and how long to wait.
pub(crate) type Restarter<'a> = (&'a RestartCommand, &'a TcpConnector, Duration);

/// Applies the plan's faults to the per-host proxies at their times, recording
/// them; a restart runs `restarter`'s command (the plan's end of it is when
/// the server answers again, whatever the plan said). `Err` when a restart
/// failed: the run says nothing about the server.
async fn drive_faults(
    scenario: &Scenario,
    proxies: &[FaultProxy],
    recorder: &Recorder,
    restarter: Option<Restarter<'_>>,
) -> Result<(), String> {
    let mut active: BTreeMap<String, Vec<FaultKind>> = BTreeMap::new();
    let latency = (
        scenario.faults.latency_ms_min,
        scenario.faults.latency_ms_max,
    );
    let users = scenario.users.len();
    let mut restarts = Vec::new();
    for (at_ms, starts, fault) in scenario.faults.transitions() {
        sleep_until_ms(recorder, at_ms).await;
        if let FaultKind::Restart { .. } = fault.kind {
            if !starts {
                continue;
            }
            let Some((command, server, patience)) = restarter else {
                return Err(
                    "the scenario restarts the server and no restart command was given".into(),
                );
            };
            restarts.push(tokio::spawn(command.clone().restart(
                server.clone(),
                recorder.clone(),
                patience,
            )));
            continue;
        }
        let kinds = active.entry(fault.host.clone()).or_default();
        if starts {
            kinds.push(fault.kind);
        } else if let Some(i) = kinds.iter().position(|k| *k == fault.kind) {
            kinds.remove(i);
        }
        recorder.record_at(at_ms, "world", What::fault(fault, starts));
        // Every user of the host has a proxy of its own: the fault is the host's.
        for proxy in (0..users)
            .filter(|&i| host_of(i, users) == fault.host)
            .filter_map(|i| proxies.get(i))
        {
            let (mut resets, mut stalls) = (proxy.mode().resets, proxy.mode().stalls);
            if starts {
                resets += u64::from(fault.kind == FaultKind::Reset);
                stalls += u64::from(fault.kind == FaultKind::Stall);
            }
            proxy.set(Mode::with_faults(latency, kinds, (resets, stalls)));
        }
    }
    for restart in restarts {
        restart
            .await
            .map_err(|e| format!("the restart task failed: {e}"))??;
    }
    Ok(())
}

/// `restart` (`--level robust` with `--restart-cmd`): the server restarted
/// mid-scenario by the user's command, mail on both sides of it, every user
/// reconnecting at once, a stale cursor, presence after
/// ([`restart::scenario`]); judged by the same checkers, what a store the
/// command does not keep lost exempted.
async fn restart_run(
    target: &Target,
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    command: &RestartCommand,
) -> Result<Run, CheckError> {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let scenario = restart::scenario(names, options, command);
    let connectors = vec![connector.clone(); scenario.users.len()];
    let patience = Duration::from_millis(restart::grace_ms(options));
    let client = check_client(options);
    let (_, restarted) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        drive_faults(
            &scenario,
            &[],
            &recorder,
            Some((command, connector, patience))
        )
    );
    restarted.map_err(|reason| CheckError::Restart {
        url: target.url.clone(),
        reason,
    })?;
    let trace = recorder.trace();
    let violations = check_all(&trace, &scenario);
    Ok(Run::new(
        "restart",
        Some(scenario),
        trace,
        violations,
        started,
    ))
}

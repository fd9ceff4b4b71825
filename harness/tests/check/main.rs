//! `harness check` against the reference server on loopback: it passes both
//! levels, and each bug switch fails the clause it breaks. The same check runs
//! against servers nobody here has seen, so nothing below relies on more than
//! the contract.

#[path = "../common/bin.rs"]
mod bin;
use bin::harness;

mod deployed;
mod fuzz;
mod hostile;
mod middlebox;
mod restart;
mod secure;
mod sentences;

use harness::check::{check, CheckOptions, CheckReport, Target, Verdict};
use harness::spec::{Clause, Level};
use server_under_test::{Bug, Config};

/// The reference server on 127.0.0.1, stopped when dropped.
struct Server {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        server_under_test::serve(listener, config).await.unwrap();
    });
    Server { url, task }
}

/// Short Engine.IO timers, so the robust level's black hole is short too.
fn quick(bugs: &[Bug]) -> Config {
    Config {
        ping_interval_ms: 500,
        ping_timeout_ms: 500,
        ack_timeout_ms: 500,
        bugs: bugs.iter().copied().collect(),
        ..Config::default()
    }
}

/// Checks the reference server with `bugs` on. Tests run side by side on a
/// shared machine: a timeout scale of 2 keeps waits (and M3's bound) roomy.
async fn check_reference(bugs: &[Bug], level: Level) -> CheckReport {
    let server = start(quick(bugs)).await;
    let target = Target::resolve(&server.url).await.unwrap();
    let options = CheckOptions {
        level,
        seed: 11,
        timeout_scale: 2.0,
        tokens: None,
    };
    check(&target, &options).await.expect("the server is up")
}

fn text(report: &CheckReport) -> String {
    harness::check::report::text(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_passes_core() {
    let report = check_reference(&[], Level::Core).await;
    assert!(report.passed(), "{}", text(&report));
    let verdict = |clause| {
        report
            .clauses
            .iter()
            .find(|c| c.clause == clause)
            .map(|c| c.verdict.clone())
    };
    assert_eq!(verdict(Clause::I3), Some(Verdict::Pass));
    assert!(matches!(verdict(Clause::M5), Some(Verdict::Skip(_))));
    assert!(matches!(verdict(Clause::L3), Some(Verdict::Skip(_))));
    assert_eq!(report.server.map(|t| t.ping_interval_ms), Some(500));
    // No origin configured: the CORS finding says a page elsewhere cannot.
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.contains("cannot send the username header")),
        "{:?}",
        report.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cors_finding_sees_a_configured_origin() {
    let server = start(Config {
        cors_origins: vec!["http://example.test".into()],
        ..quick(&[])
    })
    .await;
    let target = Target::resolve(&server.url).await.unwrap();
    let report = check(
        &target,
        &CheckOptions {
            level: Level::Core,
            seed: 2,
            timeout_scale: 2.0,
            tokens: None,
        },
    )
    .await
    .unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.contains("may send the username header")),
        "{:?}",
        report.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_passes_robust_and_no_ack_fallback_fails_m5() {
    let (good, bad) = tokio::join!(
        check_reference(&[], Level::Robust),
        check_reference(&[Bug::NoAckFallback], Level::Robust)
    );
    assert!(good.passed(), "{}", text(&good));
    assert!(good
        .clauses
        .iter()
        .any(|c| c.clause == Clause::M5 && c.verdict == Verdict::Pass));
    assert_eq!(bad.failed(), vec![Clause::M5], "{}", text(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_reconnect_under_last_sid_wins_fails_p2_in_the_robust_run() {
    let report = check_reference(&[Bug::LastSidWins], Level::Robust).await;
    let robust = report.runs.iter().find(|r| r.name == "robust").unwrap();
    assert!(
        robust.violations.iter().any(|v| v.clause == Clause::P2),
        "the stalled connection's timeout must not take rd offline:\n{}",
        text(&report)
    );
}

async fn bug_fails(bug: Bug, clause: Clause) {
    let report = check_reference(&[bug], Level::Core).await;
    assert!(
        report.failed().contains(&clause),
        "{bug} must fail {clause:?}:\n{}",
        text(&report)
    );
    let finding = &report
        .clauses
        .iter()
        .find(|c| c.clause == clause)
        .unwrap()
        .findings[0];
    assert!(
        !finding.violation.evidence.is_empty(),
        "a FAIL carries its evidence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_anonymous_fails_i3() {
    bug_fails(Bug::RegisterAnonymous, Clause::I3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_push_fails_m3() {
    bug_fails(Bug::NeverPush, Clause::M3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_sid_wins_fails_p2() {
    bug_fails(Bug::LastSidWins, Clause::P2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_presence_fails_p3() {
    bug_fails(Bug::StalePresence, Clause::P3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_a_stale_cursor_fails_l4() {
    bug_fails(Bug::IgnoreStaleCursor, Clause::L4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_the_payloads_from_fails_m2() {
    bug_fails(Bug::TrustPayloadFrom, Clause::M2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_reused_client_id_with_the_old_ack_fails_m1() {
    bug_fails(Bug::AckByClientIdOnly, Clause::M1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_extra_arguments_fails_m1() {
    bug_fails(Bug::ExtraArgs, Clause::M1).await;
}

// The command line: exit codes, messages, report files.

#[test]
fn bad_urls_and_arguments_exit_2_with_a_clear_message() {
    let (code, _, err) = harness(&["check", "ftp://127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("scheme 'ftp' is not supported"), "{err}");
    let (code, _, err) = harness(&["check", "not a url"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a server URL"), "{err}");
    let (code, _, err) = harness(&["check", "http://127.0.0.1:1/chat"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no path"), "{err}");
    let (code, _, err) = harness(&["check", "http://127.0.0.1:1", "--level", "paranoid"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("paranoid"), "{err}");
    let (code, _, err) = harness(&["check", "http://127.0.0.1:1", "--timeout-scale", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("outside"), "{err}");
}

#[test]
fn an_unreachable_server_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = harness(&["check", &url, "--timeout-scale", "0.1"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("server unreachable at"), "{err}");
}

#[test]
fn junit_and_json_reports_carry_every_clause() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(start(quick(&[Bug::NeverPush])));
    let dir = std::env::temp_dir().join(format!("harness-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("check.xml");
    let junit_arg = junit.to_str().unwrap();
    let common = [
        "check",
        server.url.as_str(),
        "--seed",
        "5",
        "--timeout-scale",
        "2",
    ];
    let (code, out, err) =
        harness(&[&common[..], &["--format", "junit", "--out", junit_arg]].concat());
    assert_eq!(code, 1, "never_push fails the check:\n{out}{err}");
    assert!(out.contains("M3  FAIL"), "{out}");
    assert!(out.contains("again: harness check"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    // A one-node report lists the clauses it did before N1–N4 existed.
    let listed = Clause::reported(harness::spec::Level::Core).count();
    assert_eq!(listed, 27);
    assert_eq!(xml.matches("<testcase").count(), listed, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("M3 an online recipient"), "{xml}");

    let (code, out, _) = harness(&[&common[..], &["--format", "json"]].concat());
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(json["seed"], 5);
    assert_eq!(json["clauses"].as_array().unwrap().len(), listed);
    let m3 = &json["clauses"].as_array().unwrap()
        [Clause::ALL.iter().position(|c| *c == Clause::M3).unwrap()];
    assert_eq!(m3["verdict"], "FAIL");
    assert!(m3["findings"][0]["evidence"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "core" && r["scenario"].is_object()));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_closes_a_websocket_frame_above_max_payload_b1() {
    // maxPayload is announced for every transport; engineioxide used to let
    // websocket frames through up to 64 MiB. The sender's own connection may
    // be closed (B1), and nothing above the limit is read.
    use futures_util::{SinkExt, StreamExt};
    let server = start(Config {
        max_payload_bytes: 10_000,
        ..quick(&[])
    })
    .await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("username", "mallory".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let _open = ws.next().await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("40"))
        .await
        .unwrap();
    let big = format!(
        r#"42["send_message",{{"to":"bob","content":"{}","client_id":"c"}}]"#,
        "x".repeat(20_000)
    );
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::text(big))
        .await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                None
                | Some(Err(_))
                | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return true,
                // Answer heartbeats: only the frame may close the connection.
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) if t.as_str() == "2" => {
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::text("3"))
                        .await;
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        closed,
        "a frame above maxPayload closes the sender's connection"
    );
}

/// A short saved scenario: alice and bob open, alice sends to bob (online).
fn short_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let scenario = serde_json::json!({
        "seed": 4,
        "users": [
            {"name": "alice", "profile": "node", "open": "websocket_first", "header": "valid"},
            {"name": "bob", "profile": "node", "open": "websocket_first", "header": "valid"}
        ],
        "steps": [
            {"at_ms": 0, "user": 0, "do": "open"},
            {"at_ms": 0, "user": 1, "do": "open"},
            {"at_ms": 1000, "user": 0, "do": "send", "to": "bob", "content": "hi bob"}
        ],
        "faults": {"latency_ms_min": 0, "latency_ms_max": 1, "faults": []},
        "active_ms": 2000,
        "heal_ms": 4000
    });
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("short.json");
    std::fs::write(&path, scenario.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_scenario_replays_against_a_live_server_with_its_reproduction_rate() {
    // The same file, played three times with fresh names: never_push breaks
    // M3 in every play; the correct server in none.
    let dir = std::env::temp_dir().join(format!("harness-live-{}", std::process::id()));
    let path = short_scenario(&dir);
    let run = |url: String| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            harness(&[
                "replay",
                "--target",
                &url,
                "--scenario",
                path.to_str().unwrap(),
                "--repeat",
                "3",
                "--timeout-scale",
                "2",
            ])
        })
    };
    let broken = start(quick(&[Bug::NeverPush])).await;
    let (code, out, err) = run(broken.url.clone()).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("reproduced 3/3 — M3"), "{out}");
    assert!(out.contains("first failing play"), "{out}");
    let correct = start(quick(&[])).await;
    let (code, out, err) = run(correct.url.clone()).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reproduced 0/3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunting_a_live_server_finds_measures_shrinks_and_saves_a_replayable_scenario() {
    // never_push over real TCP: generated scenarios, three at a time; the
    // first violation is M3, measured on two plays, shrunk live (a candidate
    // kept on a majority of its plays), saved, and the saved file replays.
    let broken = start(quick(&[Bug::NeverPush])).await;
    let dir = std::env::temp_dir().join(format!("harness-hunt-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("found.json");
    let (url, file) = (broken.url.clone(), path.to_str().unwrap().to_owned());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        harness(&[
            "hunt",
            "--target",
            &url,
            "--seeds",
            "1..7",
            "--users",
            "4",
            "--duration",
            "4s",
            "--faults",
            "none",
            "--concurrency",
            "3",
            "--confirmations",
            "2",
            "--shrink-budget",
            "2",
            "--ack-timeout-ms",
            "500",
            "--out",
            &file,
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("M3:"), "{out}");
    assert!(out.contains("reproduced 2/2"), "{out}");
    assert!(
        out.contains(&format!("replay: harness replay --target {}", broken.url)),
        "{out}"
    );
    let minimal = harness::scenario::Scenario::load(&path).expect("the shrunk scenario is saved");
    assert!(minimal.steps.len() <= 8, "{minimal:#?}");
    let (url, file) = (broken.url.clone(), path.to_str().unwrap().to_owned());
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        harness(&[
            "replay",
            "--target",
            &url,
            "--scenario",
            &file,
            "--repeat",
            "2",
            "--timeout-scale",
            "2",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("— M3"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 29: a violation its replays do not break again is reported as seen
/// once (evidence kept, never shrunk as if confirmed). The "server" is a
/// switch: never_push while the hunt explores, the correct reference server
/// from the moment it starts measuring the reproduction rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_violation_no_replay_breaks_again_is_seen_once_not_shrunk() {
    use harness::hunt::live::{hunt_live, Confirmation, LiveHuntPlan};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let broken = start(quick(&[Bug::NeverPush])).await;
    let correct = start(quick(&[])).await;
    let fixed = Arc::new(AtomicBool::new(false));
    let switch = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", switch.local_addr().unwrap());
    let upstream = |s: &Server| s.url.trim_start_matches("http://").to_owned();
    let (to_broken, to_correct) = (upstream(&broken), upstream(&correct));
    let forwarding = {
        let fixed = Arc::clone(&fixed);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = switch.accept().await {
                let to = if fixed.load(Ordering::SeqCst) {
                    &to_correct
                } else {
                    &to_broken
                };
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        })
    };
    let target = Target::resolve(&url).await.unwrap();
    let plan = LiveHuntPlan {
        seeds: harness::hunt::Seeds::Range(1..4),
        users: 4,
        active_ms: 4_000,
        faults: harness::FaultMenu::parse("none").unwrap(),
        concurrency: 3,
        confirmations: 2,
        shrink_budget: 4,
        ack_timeout_ms: 500,
        clauses: vec![],
    };
    let options = CheckOptions {
        level: Level::Core,
        seed: 1,
        timeout_scale: 2.0,
        tokens: None,
    };
    let report = hunt_live(&target, &plan, &options, |p| {
        if p.phase != "exploring" {
            fixed.store(true, Ordering::SeqCst);
        }
    })
    .await
    .expect("the hunt runs");
    forwarding.abort();
    let finding = report
        .finding
        .expect("never_push broke a clause while exploring");
    assert_eq!(finding.confirmation, Confirmation::SeenOnce, "{finding:#?}");
    assert_eq!(finding.reproduced, (0, 2));
    assert_eq!(finding.shrink_runs, 0, "never shrunk as if confirmed");
    assert_eq!(finding.minimal, finding.scenario);
    assert!(
        finding
            .seen
            .iter()
            .any(|v| v.clause == finding.clause && !v.evidence.is_empty()),
        "the play that broke it is kept with its evidence: {:#?}",
        finding.seen
    );
    assert!(!finding.seen_trace.is_empty());
}

//! Real clients through the fault proxy: socket.io-client in Node
//! (`interop/faulted.mjs`) and python-socketio (`interop/python_faulted.py`),
//! each with its user behind the harness's proxy, black-holed
//! for four seconds (half-open on both ends: only ping timeouts notice) and
//! then reset, while a second user sends to it. What the contract promises
//! must hold for a real client too: the server notices the dead connection
//! (P3), takes the user back when it reconnects (P1, P2), and nothing it
//! accepted is lost (M5, L2). The faults must be seen to happen, or the test
//! proves nothing: the client must have lost its connection twice.

use std::time::Duration;

use harness::faults::FaultKind;
use harness::net::proxy::{FaultProxy, Mode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{interop_dir, node_ready, python_ready, start_with};

const NODE: (&str, &str) = ("node", "faulted.mjs");
const PYTHON: (&str, &str) = ("python3", "python_faulted.py");

/// Plays `script` under `program` with its timeline (black hole 2–6 s,
/// reset at 12 s) against the reference server with `bugs`.
async fn faulted_run(
    (program, script): (&str, &str),
    transports: &str,
    tag: &str,
    bugs: &[server_under_test::Bug],
) -> Value {
    let server = start_with(server_under_test::Config {
        ping_interval_ms: 1_000,
        ping_timeout_ms: 1_000,
        ack_timeout_ms: 1_000,
        bugs: bugs.iter().copied().collect(),
        ..server_under_test::Config::default()
    })
    .await;
    let addr = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(addr, 7).await.unwrap();
    let proxy_url = format!("http://{}", proxy.addr());
    let mut child = tokio::process::Command::new(program)
        .arg(interop_dir().join(script))
        .args([&proxy_url, &server.url, tag, transports])
        .current_dir(interop_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the client says it is ready within 30 s")
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(&ready).ok(),
        Some(serde_json::json!({"ready": true})),
        "{ready}"
    );
    let started = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(started + Duration::from_millis(ms));
    at(2_000).await;
    proxy.set(Mode::with_faults((0, 0), &[FaultKind::Partition], (0, 0)));
    at(6_000).await;
    proxy.set(Mode::with_faults((0, 0), &[], (0, 0)));
    at(12_000).await;
    proxy.set(Mode::with_faults((0, 0), &[FaultKind::Reset], (1, 0)));
    let last = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the client finishes within 30 s of its last step")
        .unwrap()
        .unwrap_or_default();
    let _ = child.wait().await;
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// What a run must show, and the evidence that its faults happened: the
/// contract's breaches found, empty when it held. Panics when the faults did
/// not happen (no evidence, no verdict).
fn problems(run: &Value, tag: &str) -> Vec<String> {
    let alice = format!("alice.{tag}");
    let bob = format!("bob.{tag}");
    let log = run["log"].as_array().expect("a log");
    let of = |who: &str, event: &str| -> Vec<&Value> {
        log.iter()
            .filter(|e| e["who"] == who && e["event"] == event)
            .collect()
    };
    // Evidence: the black hole and the reset each cost alice her connection.
    let lost = of(&alice, "disconnect");
    assert!(
        lost.len() >= 2,
        "alice lost her connection {} times: {run:#}",
        lost.len()
    );
    assert!(
        of(&alice, "connect").len() >= 3,
        "alice did not come back twice: {run:#}"
    );
    let sends = run["sends"].as_array().expect("sends");
    assert_eq!(sends.len(), 3, "{run:#}");
    let mut found = Vec::new();
    // P3 then P1: bob heard alice go, during the black hole, and come back.
    let news: Vec<(&str, u64)> = log
        .iter()
        .filter(|e| e["who"] == bob.as_str() && e["data"]["username"] == alice.as_str())
        .filter_map(|e| Some((e["event"].as_str()?, e["at"].as_u64()?)))
        .collect();
    if !news
        .iter()
        .any(|(event, at)| *event == "user_offline" && (2_000..12_000).contains(at))
    {
        found.push(format!(
            "P3: the server never noticed alice's half-open connection: {news:?}"
        ));
    }
    if news.last().map(|n| n.0) != Some("user_online") {
        found.push(format!(
            "P2: bob's last news of alice is not user_online: {news:?}"
        ));
    }
    // P4: both online at the end.
    let online = run["online"]["users"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in [&alice, &bob] {
        if !online.iter().any(|u| u == name.as_str()) {
            found.push(format!(
                "P2: {name} is connected but not in /api/online {online:?}"
            ));
        }
    }
    // M5, L2: every message the server accepted reached alice, pushed or mailed.
    let pushed: Vec<u64> = of(&alice, "new_message")
        .iter()
        .filter_map(|e| e["data"]["id"].as_u64())
        .collect();
    let mailed: Vec<u64> = run["mail"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    for send in sends {
        let Some(id) = send["ack"]["id"].as_u64() else {
            found.push(format!("M2: bob's send was not accepted: {send}"));
            continue;
        };
        if !pushed.contains(&id) && !mailed.contains(&id) {
            found.push(format!(
                "M5: message {id} ({}) was accepted and never reached alice: pushed {pushed:?}, mailed {mailed:?}",
                send["n"]
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_through_a_black_hole_and_a_reset_loses_nothing() {
    if !node_ready() {
        return;
    }
    for (transports, tag) in [("websocket,polling", "fw"), ("polling,websocket", "fp")] {
        let run = faulted_run(NODE, transports, tag, &[]).await;
        assert_eq!(problems(&run, tag), Vec::<String>::new(), "{run:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_through_a_black_hole_sees_no_ack_fallback_lose_a_message() {
    if !node_ready() {
        return;
    }
    let run = faulted_run(
        NODE,
        "websocket,polling",
        "fb",
        &[server_under_test::Bug::NoAckFallback],
    )
    .await;
    let found = problems(&run, "fb");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("M5: message") && p.contains("(2)")),
        "the push into the black hole must be lost and seen lost: {found:?}\n{run:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socketio_through_a_black_hole_and_a_reset_loses_nothing() {
    if !python_ready() {
        return;
    }
    let run = faulted_run(PYTHON, "polling,websocket", "fy", &[]).await;
    assert_eq!(problems(&run, "fy"), Vec::<String>::new(), "{run:#}");
}

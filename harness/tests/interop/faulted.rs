//! Real clients through the fault proxy: socket.io-client in Node
//! (`interop/faulted.mjs`) and in headless Chromium (`interop/faulted.html`,
//! the same `faulted.js`), and python-socketio (`interop/python_faulted.py`),
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

use super::{interop_dir, posted_within, start_allowing_its_pages, start_with, Chromium, Server};

/// Who plays alice and bob on the timeline.
#[derive(Clone, Copy)]
enum Client {
    /// A script under a program, talking JSON lines on its stdout.
    Script(&'static str, &'static str),
    /// `faulted.html` in headless Chromium, posting to the server.
    Browser,
}

const NODE: Client = Client::Script("node", "faulted.mjs");
const PYTHON: Client = Client::Script("python3", "python_faulted.py");

/// What a client says, in order: it is ready, then how its run went.
#[derive(Clone, Copy, Debug)]
enum Word {
    Ready,
    Result,
}

/// A client playing the timeline.
enum Running {
    Script {
        child: tokio::process::Child,
        lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    },
    Browser {
        chromium: Chromium,
        url: String,
    },
}

impl Running {
    fn start(
        client: Client,
        server: &Server,
        proxy_url: &str,
        tag: &str,
        transports: &str,
    ) -> Self {
        match client {
            Client::Script(program, script) => {
                let mut child = tokio::process::Command::new(program)
                    .arg(interop_dir().join(script))
                    .args([proxy_url, &server.url, tag, transports])
                    .current_dir(interop_dir())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap_or_else(|e| panic!("{program} runs: {e}"));
                let lines = BufReader::new(child.stdout.take().unwrap()).lines();
                Running::Script { child, lines }
            }
            Client::Browser => {
                let url = format!(
                    "{}/interop/faulted.html?proxy={proxy_url}&tag={tag}&transports={transports}",
                    server.url
                );
                let chromium = Chromium::open(&url, tag);
                Running::Browser { chromium, url }
            }
        }
    }

    /// The client's next word: its ready line, then its result.
    async fn next(&mut self, server: &Server, limit: Duration, word: Word) -> Value {
        match self {
            Running::Script { lines, .. } => {
                let line = tokio::time::timeout(limit, lines.next_line())
                    .await
                    .unwrap_or_else(|_| panic!("the client's {word:?} within {limit:?}"))
                    .unwrap()
                    .unwrap_or_default();
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            }
            Running::Browser { url, .. } => {
                let slot = match word {
                    Word::Ready => &server.seen.ready,
                    Word::Result => &server.seen.result,
                };
                posted_within(slot, limit, url).await
            }
        }
    }

    async fn finish(self) {
        match self {
            Running::Script { mut child, .. } => {
                let _ = child.wait().await;
            }
            Running::Browser { chromium, .. } => chromium.close().await,
        }
    }
}

/// Plays `client` with its timeline (black hole 2–6 s, reset at 12 s)
/// against the reference server with `bugs`.
async fn faulted_run(
    client: Client,
    transports: &str,
    tag: &str,
    bugs: &[server_under_test::Bug],
) -> Value {
    let config = server_under_test::Config {
        ping_interval_ms: 1_000,
        ping_timeout_ms: 1_000,
        ack_timeout_ms: 1_000,
        bugs: bugs.iter().copied().collect(),
        ..server_under_test::Config::default()
    };
    let server = match client {
        Client::Script(..) => start_with(config).await,
        Client::Browser => start_allowing_its_pages(config).await,
    };
    let addr = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(addr, 7).await.unwrap();
    let proxy_url = format!("http://{}", proxy.addr());
    let mut running = Running::start(client, &server, &proxy_url, tag, transports);
    // A browser takes longer to start than a script.
    let ready = running
        .next(&server, Duration::from_secs(60), Word::Ready)
        .await;
    assert_eq!(ready, serde_json::json!({"ready": true}), "{ready}");
    let started = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(started + Duration::from_millis(ms));
    at(2_000).await;
    proxy.set(Mode::with_faults((0, 0), &[FaultKind::Partition], (0, 0)));
    at(6_000).await;
    proxy.set(Mode::with_faults((0, 0), &[], (0, 0)));
    at(12_000).await;
    proxy.set(Mode::with_faults((0, 0), &[FaultKind::Reset], (1, 0)));
    let last = running
        .next(&server, Duration::from_secs(30), Word::Result)
        .await;
    running.finish().await;
    last
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

/// With `no_ack_fallback`, message 2 (pushed while alice is in the black
/// hole) must be lost, and seen lost (M5).
fn assert_push_into_the_hole_lost(run: &Value, tag: &str) {
    let found = problems(run, tag);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("M5: message") && p.contains("(2)")),
        "the push into the black hole must be lost and seen lost: {found:?}\n{run:#}"
    );
}

pub(crate) async fn socket_io_client_through_a_black_hole_and_a_reset_loses_nothing() {
    for (transports, tag) in [("websocket,polling", "fw"), ("polling,websocket", "fp")] {
        let run = faulted_run(NODE, transports, tag, &[]).await;
        assert_eq!(problems(&run, tag), Vec::<String>::new(), "{run:#}");
    }
}

pub(crate) async fn socket_io_client_through_a_black_hole_sees_no_ack_fallback_lose_a_message() {
    let run = faulted_run(
        NODE,
        "websocket,polling",
        "fb",
        &[server_under_test::Bug::NoAckFallback],
    )
    .await;
    assert_push_into_the_hole_lost(&run, "fb");
}

pub(crate) async fn python_socketio_through_a_black_hole_and_a_reset_loses_nothing() {
    let run = faulted_run(PYTHON, "polling,websocket", "fy", &[]).await;
    assert_eq!(problems(&run, "fy"), Vec::<String>::new(), "{run:#}");
}

pub(crate) async fn a_browser_through_a_black_hole_and_a_reset_loses_nothing() {
    // Polling first: a browser's `username` header rides on XHR polling only
    // (the v1 way a browser registers, README "Real clients"); alice's
    // session then upgrades through the proxy, and comes back over polling.
    let run = faulted_run(Client::Browser, "polling,websocket", "fc", &[]).await;
    assert_eq!(run["client"], "browser", "{run:#}");
    assert_eq!(problems(&run, "fc"), Vec::<String>::new(), "{run:#}");
}

pub(crate) async fn a_browser_through_a_black_hole_sees_no_ack_fallback_lose_a_message() {
    let run = faulted_run(
        Client::Browser,
        "polling,websocket",
        "fd",
        &[server_under_test::Bug::NoAckFallback],
    )
    .await;
    assert_push_into_the_hole_lost(&run, "fd");
}

//! `harness check` against small hostile fakes (loopback only, bounded): a
//! clause whose evidence never happened is SKIP, never PASS; absurd announced
//! timers are cut down and reported; bytes from the server never reach the
//! terminal raw.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use harness::check::{check, report, CheckOptions, CheckReport, Target, Verdict};
use harness::spec::{Clause, Level};

/// Serves `app` on a free loopback port for as long as the returned task lives.
async fn fake(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

async fn check_core(url: &str) -> CheckReport {
    let target = Target::resolve(url).await.unwrap();
    let options = CheckOptions {
        level: Level::Core,
        seed: 3,
        timeout_scale: 1.0,
        tokens: None,
    };
    check(&target, &options)
        .await
        .expect("the fake answers HTTP")
}

fn verdict(report: &CheckReport, clause: Clause) -> &Verdict {
    &report
        .clauses
        .iter()
        .find(|c| c.clause == clause)
        .expect("the clause is in the report")
        .verdict
}

/// Clauses only a registered session can give evidence for (B1's sentences
/// need malformed frames answered on one).
const SESSION_CLAUSES: [Clause; 11] = [
    Clause::B1,
    Clause::I1,
    Clause::I3,
    Clause::P1,
    Clause::P2,
    Clause::P3,
    Clause::M1,
    Clause::M2,
    Clause::M3,
    Clause::M4,
    Clause::L2,
];

fn assert_nothing_vacuous(report: &CheckReport) {
    let text = report::text(report);
    for clause in SESSION_CLAUSES {
        assert!(
            !matches!(verdict(report, clause), Verdict::Pass),
            "{clause} passed although no session ever opened:\n{text}"
        );
    }
    assert!(!report.passed(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_500_everywhere_passes_nothing_it_never_did() {
    let (url, _task) = fake(
        axum::Router::new()
            .fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response() }),
    )
    .await;
    let report = check_core(&url).await;
    assert_nothing_vacuous(&report);
    assert!(matches!(verdict(&report, Clause::H1), Verdict::Fail));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_socket_io_passes_nothing_it_never_did() {
    // Healthy HTTP endpoints, but /socket.io/ answers nonsense (with an
    // escape sequence that must not reach a terminal raw).
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/api/online",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"users": []})) }),
        )
        .fallback(|| async { "garbage\u{1b}[2J".into_response() });
    let (url, _task) = fake(app).await;
    let report = check_core(&url).await;
    assert_nothing_vacuous(&report);
    assert!(matches!(verdict(&report, Clause::T1), Verdict::Fail));
    let text = report::text(&report);
    assert!(
        !text.contains('\u{1b}'),
        "server bytes are escaped:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_announced_timers_are_cut_down_and_reported() {
    // pingInterval 2^53 ms: the check must neither overflow nor wait for it.
    let handshake = r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":9007199254740992,"pingTimeout":18446744073709551615,"maxPayload":1000}"#;
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/socket.io/",
            axum::routing::get(move || async move { handshake }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no").into_response() });
    let (url, _task) = fake(app).await;
    let started = Instant::now();
    let report = check_core(&url).await;
    assert!(started.elapsed() < Duration::from_secs(120), "bounded");
    let timers = report.server.expect("the handshake was read");
    assert_eq!(timers.clamped_from, Some((9007199254740992, u64::MAX)));
    assert!(timers.ping_interval_ms <= 60_000 && timers.ping_timeout_ms <= 60_000);
    assert!(report::text(&report).contains("announced pingInterval 9007199254740992"));
    assert_nothing_vacuous(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_off_not_read_into_memory() {
    // Every answer is an endless stream of bytes: the harness reads at most
    // MAX_BODY_BYTES of each, so the check ends (here: nothing ever answered
    // in full, so the server counts as unreachable, exit 2) instead of
    // growing without bound.
    let endless = || async {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 << 10]);
        let stream =
            futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        axum::body::Body::from_stream(stream).into_response()
    };
    let (url, _task) = fake(axum::Router::new().fallback(endless)).await;
    let target = Target::resolve(&url).await.unwrap();
    let options = CheckOptions {
        level: Level::Core,
        seed: 3,
        timeout_scale: 1.0,
        tokens: None,
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), check(&target, &options))
        .await
        .expect("the check ends");
    let error = outcome.expect_err("no answer ever completes: unreachable");
    assert!(error.to_string().contains("bytes"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// rust_engineio 0.6.0's polling transport read a poll's body whatever its
/// status, and polled again at once after an empty one: against a server
/// that answers 404 with no body it spun for ever inside `connect()`, never
/// returning (vendor/rust_engineio-0.6.0-poll-status.patch). It must give up
/// with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socketio_gives_up_on_a_server_that_answers_404_with_no_body() {
    let (url, _task) = fake(axum::Router::new()).await;
    let connecting = rust_socketio::asynchronous::ClientBuilder::new(url)
        .reconnect(false)
        .connect();
    let outcome = tokio::time::timeout(Duration::from_secs(10), connecting).await;
    let Ok(outcome) = outcome else {
        panic!("rust_socketio was still connecting to an all-404 server after 10 s");
    };
    assert!(outcome.is_err(), "connected to a server without Engine.IO");
}

/// Issue 29: a fake that answers every path, `/api/messages?after=abc`
/// included, with 200 and binary garbage. No Engine.IO session can open, so
/// B1 ("malformed frames never disconnect others", "a clear error") has no
/// evidence: SKIP, never PASS; and the bad query answered 200 is L1's FAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_with_200_everywhere_passes_no_socket_clause_and_not_b1() {
    let garbage = || async {
        (
            [(http::header::CONTENT_TYPE, "application/octet-stream")],
            vec![0u8, 0xff, 0x1b, b'[', b'2', b'J', 0x80, 0xfe],
        )
            .into_response()
    };
    let (url, _task) = fake(axum::Router::new().fallback(garbage)).await;
    let report = check_core(&url).await;
    assert_nothing_vacuous(&report);
    let b1 = verdict(&report, Clause::B1);
    assert!(matches!(b1, Verdict::Skip(_)), "{b1:?}");
    assert!(matches!(verdict(&report, Clause::L1), Verdict::Fail));
}

/// The same server through the whole check: every wait bounded, every
/// session clause without evidence, T1 failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_no_routes_fails_t1_and_passes_nothing_it_never_did() {
    let (url, _task) = fake(axum::Router::new()).await;
    let report = tokio::time::timeout(Duration::from_secs(240), check_core(&url))
        .await
        .expect("the check of an all-404 server finishes");
    assert_nothing_vacuous(&report);
    assert!(matches!(verdict(&report, Clause::T1), Verdict::Fail));
}

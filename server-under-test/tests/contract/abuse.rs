//! The reference binary's serving loop under abuse, on loopback: idle and
//! slowloris connections are closed by the header-read timeout, a flood of
//! connections beyond the bound is turned away, and `/health` keeps answering.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

async fn start_tcp(limits: server_under_test::Limits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server_under_test::serve_tcp(
        listener,
        quick_config(),
        limits,
    ));
    url
}

/// Whether the server closed `stream` within `within` (EOF or reset).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_connections_are_closed_and_health_keeps_answering() {
    let url = start_tcp(server_under_test::Limits {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 1_000,
    })
    .await;
    let addr = url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHo").await.unwrap();
        slow.push(s);
    }
    // While they hang on, an honest request is served.
    let (status, _) = get(&url, "/health", None).await;
    assert_eq!(status, 200);
    for s in idle.iter_mut().chain(slow.iter_mut()) {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "a connection that never finished its headers is closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_are_turned_away_not_queued() {
    let url = start_tcp(server_under_test::Limits {
        header_read_timeout: Duration::from_secs(2),
        max_connections: 20,
    })
    .await;
    let addr = url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // The 21st is accepted by the kernel and closed by the server at once.
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await);
    // Once the held ones time out, the server serves again.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let (status, _) = get(&url, "/health", None).await;
    assert_eq!(status, 200);
}

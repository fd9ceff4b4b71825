use serde_json::json;
use server_under_test::Config;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_websocket_and_upgrade_all_register_t1() {
    // Each Engine.IO transport, and the upgrade, must lead to a registered user:
    // a message to each is pushed, which only happens to online recipients.
    let server = start(quick_config()).await;
    let sender = Peer::connect(&server.url, "sender").await;
    for (name, open) in [
        ("p", Open::Polling),
        ("w", Open::Websocket),
        ("u", Open::Upgrade),
    ] {
        let (mut peer, outcome) = Peer::open(&server.url, Some(name), open).await;
        assert_eq!(outcome, Seen::Connected, "{open:?}");
        let ack = sender.send(name, "hi", &format!("to-{name}")).await;
        assert_eq!(ack["delivery"], "websocket", "{open:?}");
        assert_eq!(peer.next_event("new_message").await["content"], "hi");
    }
    assert_eq!(online(&server.url).await, vec!["p", "sender", "u", "w"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_and_health_t2_h1() {
    // `get` asserts the JSON content type on every response, errors included.
    let server = start(quick_config()).await;
    assert_eq!(
        get(&server.url, "/health", None).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        get(&server.url, "/api/online", None).await,
        (200, json!({"users": []}))
    );
    let (status, body) = get(&server.url, "/no/such/path", None).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_origin_may_send_the_username_header_cors() {
    // A page on another origin must preflight the `username` header: the
    // configured origin gets it allowed, any other gets no CORS headers.
    let server = start(server_under_test::Config {
        cors_origins: vec!["http://app.test".into()],
        ..quick_config()
    })
    .await;
    let preflight = |origin: &'static str| {
        let url = format!("{}/api/messages", server.url);
        async move {
            reqwest::Client::new()
                .request(reqwest::Method::OPTIONS, url)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "username")
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("http://app.test").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://app.test");
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("username"));
    let other = preflight("http://evil.test").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`), as
/// bytes: what an intermediary would forward.
async fn exchange(url: &str, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_a_proxy_stripped_is_refused_and_the_session_stays_on_polling_t1() {
    // A proxy without WebSocket support forwards the upgrade request without
    // its hop-by-hop `Upgrade` header. The server must not answer 101 to it
    // (RFC 9110 §7.8: no switch the client did not ask for; engineioxide
    // 0.17.9 did, with `Connection: close`, which no client can use), and the
    // polling session must carry on: socket.io-client stays on polling.
    let server = start(Config {
        ping_interval_ms: 10_000,
        ping_timeout_ms: 10_000,
        ..quick_config()
    })
    .await;
    let base = "/socket.io/?EIO=4&transport=polling";
    let open = exchange(
        &server.url,
        format!("GET {base} HTTP/1.1\r\nHost: x\r\nusername: polly\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("an open packet, got {open}"))
        .to_owned();
    let session = format!("{base}&sid={sid}");
    let posted = exchange(
        &server.url,
        format!("POST {session} HTTP/1.1\r\nHost: x\r\nusername: polly\r\nContent-Length: 2\r\nConnection: close\r\n\r\n40"),
    )
    .await;
    assert!(posted.starts_with("HTTP/1.1 200"), "{posted}");
    let stripped = exchange(
        &server.url,
        format!(
            "GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: x\r\n\
             username: polly\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(
        stripped.starts_with("HTTP/1.1 400"),
        "an upgrade nobody asked for must be refused, got: {stripped}"
    );
    // The session is still there, on polling: its CONNECT answer waits.
    let polled = exchange(
        &server.url,
        format!(
            "GET {session} HTTP/1.1\r\nHost: x\r\nusername: polly\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(
        polled.starts_with("HTTP/1.1 200") && polled.contains("40{"),
        "{polled}"
    );
    assert_eq!(online(&server.url).await, vec!["polly"]);
}

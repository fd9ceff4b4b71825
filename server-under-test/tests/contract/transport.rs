use serde_json::json;

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

//! What the reference server's stack (engineioxide, socketioxide, patched in
//! `vendor/`) tells a client that sent something wrong. Every refusal says why,
//! in a bounded body; none is a bare status, a silent close, or a `101` followed
//! by a dropped connection; and nothing the client sent is half-accepted.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::raw::*;
use crate::support::*;

/// Sends `frame` and returns the error message the server answered with,
/// having checked that the connection then closed (the error comes first).
async fn refused_frame(url: &str, frame: &str) -> String {
    let mut ws = joined(url, "ann").await;
    ws.send(Message::text(frame)).await.unwrap();
    let mut error = None;
    while let Some(text) = next_text(&mut ws).await {
        if let Some(body) = text.strip_prefix("44") {
            let body: Value = serde_json::from_str(body).expect("CONNECT_ERROR carries JSON");
            error = Some(body["message"].as_str().expect("a message").to_owned());
        } else {
            panic!("unexpected frame after {frame:?}: {text}");
        }
    }
    error.unwrap_or_else(|| panic!("{frame:?} closed the connection without a word"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_does_not_parse_is_answered_with_an_error_then_closed_b1() {
    let server = start(quick_config()).await;
    for (frame, says) in [
        ("42[\"send_message\",{bad json", "invalid event name"),
        ("4x", "invalid packet type"),
        ("43[\"an ack without its id\"]", "invalid packet type"),
    ] {
        let message = refused_frame(&server.url, frame).await;
        assert!(
            message.starts_with("malformed packet"),
            "{frame:?}: {message}"
        );
        assert!(message.contains(says), "{frame:?}: {message}");
    }
    // The server is unharmed: an honest user still connects and is online.
    let ann = Peer::connect(&server.url, "ann").await;
    online_eventually(&server.url, &["ann"]).await;
    ann.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_id_above_i64_max_is_refused_and_its_message_not_accepted_m1_b1() {
    let server = start(quick_config()).await;
    let send = r#"["send_message",{"to":"bob","content":"hi","client_id":"c1"}]"#;
    let message = refused_frame(&server.url, &format!("42{}{send}", u64::MAX)).await;
    assert!(message.contains("invalid ack id"), "{message}");
    // Before the parser fix the id overflowed to "no ack": the message was
    // accepted and stored for bob while ann never heard back.
    let (status, body) = poll(&server.url, Some("bob"), "?after=0").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["messages"],
        serde_json::json!([]),
        "nothing half-accepted"
    );

    // The largest id that fits is a normal ack.
    let mut ws = joined(&server.url, "ann").await;
    ws.send(Message::text(format!("42{}{send}", i64::MAX)))
        .await
        .unwrap();
    let ack = next_text(&mut ws).await.unwrap();
    assert!(ack.starts_with(&format!("43{}[", i64::MAX)), "{ack}");
}

/// A raw HTTP request; returns the status and the body, which must say why.
async fn http(method: reqwest::Method, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
        .header("username", "ann")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: the body does not say why: {text:?}"));
    (status, body)
}

async fn polling_sid(url: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{url}/socket.io/?EIO=4&transport=polling"))
        .header("username", "ann")
        .send()
        .await
        .unwrap();
    let open = response.text().await.unwrap();
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    open["sid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_refusals_have_bodies_that_say_why_t1() {
    let server = start(server_under_test::Config {
        max_payload_bytes: 1_000,
        ..quick_config()
    })
    .await;
    let polling = |sid: &str| {
        format!(
            "{}/socket.io/?EIO=4&transport=polling&sid={sid}",
            server.url
        )
    };

    let sid = polling_sid(&server.url).await;
    let (status, body) = http(reqwest::Method::POST, &polling(&sid), vec![b'4'; 5_000]).await;
    assert_eq!(status, 413);
    assert!(
        body["message"].as_str().unwrap().contains("1000 bytes"),
        "{body}"
    );

    let sid = polling_sid(&server.url).await;
    let (status, body) = http(reqwest::Method::POST, &polling(&sid), b"\x1e\x1e".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("Bad request"),
        "{body}"
    );

    let handshake = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let (status, body) = http(reqwest::Method::POST, &handshake, b"40".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Bad handshake method"),
        "{body}"
    );

    let (status, body) = http(reqwest::Method::GET, &polling("AAAAAAAAAAAAAAAA"), vec![]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Session ID unknown"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_for_an_unknown_session_is_a_400_not_a_101_t1() {
    let server = start(quick_config()).await;
    let request = ws_request(&server.url, Some("AAAAAAAAAAAAAAAA"), "ann");
    let refused = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer in time");
    let response = match refused {
        Err(tungstenite::Error::Http(response)) => response,
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the upgrade for an unknown sid was accepted"),
    };
    assert_eq!(response.status().as_u16(), 400);
    let body: Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["message"], "Session ID unknown");

    // An upgrade for a session that already has its websocket is refused too.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&server.url, None, "ann"))
        .await
        .unwrap();
    let open: Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()[1..]).unwrap();
    let again = ws_request(&server.url, open["sid"].as_str(), "ann");
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(again)).await {
        Ok(Err(tungstenite::Error::Http(response))) => assert_eq!(response.status().as_u16(), 400),
        other => panic!(
            "a second websocket for one session: {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

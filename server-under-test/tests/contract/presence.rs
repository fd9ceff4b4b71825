use std::time::Duration;

use serde_json::json;

use crate::support::*;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coming_online_is_announced_to_others_once_p1() {
    // Announced to other users only, and not again for a second tab.
    let server = start(quick_config()).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let mut bob = Peer::connect(&server.url, "bob").await;
    assert_eq!(
        alice.next_event("user_online").await,
        json!({"username": "bob"})
    );
    let _bob_tab = Peer::connect(&server.url, "bob").await;
    assert!(alice.events_within("user_online", QUIET).await.is_empty());
    assert!(bob.events_within("user_online", QUIET).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_tab_keeps_user_online_when_first_closes_p2() {
    let server = start(quick_config()).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let first = Peer::connect(&server.url, "bob").await;
    let mut second = Peer::connect(&server.url, "bob").await;
    first.close().await;
    assert!(alice.events_within("user_offline", QUIET).await.is_empty());
    assert_eq!(online(&server.url).await, vec!["alice", "bob"]);
    let ack = alice.send("bob", "still there", "c1").await;
    assert_eq!(ack["delivery"], "websocket");
    assert_eq!(
        second.next_event("new_message").await["content"],
        "still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_connection_closing_announces_offline_p3_p4() {
    let server = start(quick_config()).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let bob = Peer::connect(&server.url, "bob").await;
    online_eventually(&server.url, &["alice", "bob"]).await;
    bob.close().await;
    assert_eq!(
        alice.next_event("user_offline").await,
        json!({"username": "bob"})
    );
    online_eventually(&server.url, &["alice"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_goes_offline_after_ping_timeout_p3() {
    // A raw polling client that connects, then never polls again: only the
    // Engine.IO ping timeout (300 + 300 ms here) can notice it is gone.
    let server = start(quick_config()).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let http = reqwest::Client::new();
    let base = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let open = http
        .get(&base)
        .header("username", "ghost")
        .send()
        .await
        .unwrap();
    let body = open.text().await.unwrap();
    let handshake: serde_json::Value = serde_json::from_str(&body[1..]).unwrap();
    let sid = handshake["sid"].as_str().unwrap();
    let post = http
        .post(format!("{base}&sid={sid}"))
        .body("40")
        .send()
        .await
        .unwrap();
    assert!(post.status().is_success());
    assert_eq!(
        alice.next_event("user_online").await,
        json!({"username": "ghost"})
    );
    assert_eq!(
        alice.next_event("user_offline").await,
        json!({"username": "ghost"})
    );
    assert_eq!(online(&server.url).await, vec!["alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_list_is_sorted_without_duplicates_p4() {
    let server = start(quick_config()).await;
    let _z = Peer::connect(&server.url, "zed").await;
    let _a = Peer::connect(&server.url, "amy").await;
    let _z2 = Peer::connect(&server.url, "zed").await;
    let _m = Peer::connect(&server.url, "Mia").await;
    assert_eq!(online(&server.url).await, vec!["Mia", "amy", "zed"]);
}

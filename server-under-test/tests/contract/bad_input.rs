use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn is_error(ack: &Value) -> bool {
    ack.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("error").is_some_and(Value::is_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_send_message_gets_an_error_ack_and_harms_nobody_b1() {
    // Every bad shape is refused with {"error": …}; afterwards the sender and the
    // other users are still connected, and the accepted message is unchanged.
    let server = start(quick_config()).await;
    let mallory = Peer::connect(&server.url, "mallory").await;
    let alice = Peer::connect(&server.url, "alice").await;
    let mut bob = Peer::connect(&server.url, "bob").await;
    let before = alice.send("carol", "keep me", "k1").await;

    let long = "x".repeat(5000);
    let bad: Vec<Vec<Value>> = vec![
        vec![],
        vec![json!("just a string")],
        vec![json!(42)],
        vec![json!([1, 2, 3])],
        vec![json!(null)],
        vec![json!({})],
        vec![json!({"to": "bob", "client_id": "c"})],
        vec![json!({"content": "x", "client_id": "c"})],
        vec![json!({"to": "bob", "content": "x"})],
        vec![json!({"to": "bob", "content": long, "client_id": "c"})],
        vec![json!({"to": "bob", "content": "", "client_id": "c"})],
        vec![json!({"to": "not valid!", "content": "x", "client_id": "c"})],
        vec![json!({"to": "", "content": "x", "client_id": "c"})],
        vec![json!({"to": 7, "content": "x", "client_id": "c"})],
        vec![json!({"to": "bob", "content": "x", "client_id": ""})],
        vec![json!({"to": "bob", "content": "x", "client_id": "c".repeat(65)})],
    ];
    for args in bad {
        let ack = mallory.emit_acked("send_message", args.clone()).await;
        assert!(is_error(&ack), "{args:?} → {ack}");
    }
    assert!(bob
        .events_within("new_message", Duration::from_millis(200))
        .await
        .is_empty());
    assert_eq!(online(&server.url).await, vec!["alice", "bob", "mallory"]);
    let (_, mail) = poll(&server.url, Some("carol"), "").await;
    assert_eq!(mail["messages"].as_array().unwrap().len(), 1);
    assert_eq!(mail["messages"][0]["id"], before["id"]);
    assert_eq!(mail["messages"][0]["content"], "keep me");
    let ack = mallory.send("bob", "still works", "ok").await;
    assert_eq!(ack["delivery"], "websocket");
    assert_eq!(bob.next_event("new_message").await["from"], "mallory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_is_answered_with_an_error_when_acked_b1() {
    let server = start(quick_config()).await;
    let alice = Peer::connect(&server.url, "alice").await;
    let ack = alice
        .emit_acked("delete_everything", vec![json!({"x": 1})])
        .await;
    assert!(is_error(&ack), "{ack}");
    alice.client.emit("also_unknown", json!(1)).await.unwrap();
    assert_eq!(
        alice.send("alice", "alive", "c").await["delivery"],
        "websocket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_at_the_limit_counts_characters_not_bytes_m1() {
    let server = start(quick_config()).await;
    let alice = Peer::connect(&server.url, "alice").await;
    let content = "é".repeat(4096);
    let ack = alice.send("bob", &content, "c").await;
    assert_eq!(ack["delivery"], "polling");
    let (_, mail) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(mail["messages"][0]["content"], content);
}

//! Each bug switch really breaks the clause it names; the harness relies on that.

use std::time::Duration;

use serde_json::json;
use server_under_test::Bug;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_anonymous_lets_a_headerless_connection_in() {
    let server = start_with_bug(Bug::RegisterAnonymous).await;
    let (_peer, outcome) = Peer::open(&server.url, None, Open::Websocket).await;
    assert_eq!(outcome, Seen::Connected);
    assert_eq!(online(&server.url).await, vec!["anonymous"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_push_sends_online_recipients_to_polling() {
    let server = start_with_bug(Bug::NeverPush).await;
    let alice = Peer::connect(&server.url, "alice").await;
    let mut bob = Peer::connect(&server.url, "bob").await;
    assert_eq!(alice.send("bob", "x", "c").await["delivery"], "polling");
    assert!(bob
        .events_within("new_message", Duration::from_millis(200))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_sid_wins_drops_a_user_whose_old_tab_closes() {
    let server = start_with_bug(Bug::LastSidWins).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let old = Peer::connect(&server.url, "bob").await;
    let _new = Peer::connect(&server.url, "bob").await;
    old.close().await;
    assert_eq!(
        alice.next_event("user_offline").await,
        json!({"username": "bob"})
    );
    assert_eq!(online(&server.url).await, vec!["alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_fallback_leaves_an_unacked_push_out_of_the_mailbox() {
    let server = start_with_bug(Bug::NoAckFallback).await;
    let alice = Peer::connect(&server.url, "alice").await;
    let mut bob = Peer::connect(&server.url, "bob").await;
    assert_eq!(alice.send("bob", "x", "c").await["delivery"], "websocket");
    bob.next_event("new_message").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, body) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(body["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_presence_keeps_a_closed_user_online() {
    let server = start_with_bug(Bug::StalePresence).await;
    let mut alice = Peer::connect(&server.url, "alice").await;
    let bob = Peer::connect(&server.url, "bob").await;
    bob.close().await;
    assert!(alice
        .events_within("user_offline", Duration::from_millis(300))
        .await
        .is_empty());
    assert_eq!(online(&server.url).await, vec!["alice", "bob"]);
}

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_without_valid_username_is_refused_and_never_registered_i3() {
    // The seed's bug and its neighbours: every invalid header gets CONNECT_ERROR
    // with the reference reason, and leaves no trace in presence or push.
    let server = start(quick_config()).await;
    let mut watcher = Peer::connect(&server.url, "watcher").await;
    let too_long = "x".repeat(33);
    let cases: [(Option<&str>, Open); 6] = [
        (None, Open::Upgrade),
        (None, Open::Websocket),
        (Some(""), Open::Polling),
        (Some("bad name"), Open::Upgrade),
        (Some("a/b"), Open::Websocket),
        (Some(&too_long), Open::Polling),
    ];
    for (header, open) in cases {
        let (_peer, outcome) = Peer::open(&server.url, header, open).await;
        assert_eq!(
            outcome,
            Seen::Refused(json!({"message": "missing or invalid username"})),
            "{header:?} over {open:?}"
        );
    }
    assert_eq!(online(&server.url).await, vec!["watcher"]);
    let presence = watcher
        .events_within("user_online", Duration::from_millis(300))
        .await;
    assert!(
        presence.is_empty(),
        "no user_online for refused connections: {presence:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_an_unregistered_name_goes_to_polling_i3_m4() {
    // "bob" tried to connect without the header: for the server bob is offline.
    let server = start(quick_config()).await;
    let alice = Peer::connect(&server.url, "alice").await;
    let (_bob, outcome) = Peer::open(&server.url, None, Open::Websocket).await;
    assert!(matches!(outcome, Seen::Refused(_)));
    let ack = alice.send("bob", "are you there?", "c1").await;
    assert_eq!(ack["delivery"], "polling");
    let (status, body) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["content"], "are you there?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_bounds_are_accepted_i2() {
    let server = start(quick_config()).await;
    let longest = "A-z.0_9".repeat(4) + "abcd";
    assert_eq!(longest.len(), 32);
    for name in ["a", longest.as_str()] {
        let (_peer, outcome) = Peer::open(&server.url, Some(name), Open::Upgrade).await;
        assert_eq!(outcome, Seen::Connected, "{name}");
    }
}

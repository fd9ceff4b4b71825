use serde_json::json;

use crate::support::*;

async fn server_with_mail(count: usize) -> Server {
    let server = start(quick_config()).await;
    let alice = Peer::connect(&server.url, "alice").await;
    for i in 0..count {
        alice.send("bob", &format!("m{i}"), &format!("c{i}")).await;
    }
    server
}

fn seqs(body: &serde_json::Value) -> Vec<u64> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_returns_entries_above_it_in_order_l1() {
    let server = server_with_mail(3).await;
    let (status, all) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&all), vec![1, 2, 3]);
    let entry = all["messages"][0].as_object().unwrap();
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["content", "from", "id", "seq", "to", "ts"]);
    let (_, tail) = poll(&server.url, Some("bob"), "?after=2").await;
    assert_eq!(seqs(&tail), vec![3]);
    let (_, none) = poll(&server.url, Some("alice"), "").await;
    assert_eq!(none, json!({"messages": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_poll_response_loses_nothing_l2() {
    // The response to after=0 is "lost": asking again with the same cursor must
    // return the same entries.
    let server = server_with_mail(2).await;
    let (_, first) = poll(&server.url, Some("bob"), "?after=0").await;
    let (_, again) = poll(&server.url, Some("bob"), "?after=0").await;
    assert_eq!(first, again);
    let (_, acked) = poll(&server.url, Some("bob"), "?after=1").await;
    assert_eq!(seqs(&acked), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_without_valid_username_is_401_l1() {
    let server = server_with_mail(1).await;
    for header in [None, Some(""), Some("b o b")] {
        let (status, body) = poll(&server.url, header, "").await;
        assert_eq!(status, 401, "{header:?}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cursor_is_400_and_loses_nothing_l1_b1() {
    let server = server_with_mail(1).await;
    for query in [
        "?after=",
        "?after=-1",
        "?after=%2B1",
        "?after=abc",
        "?after=1&after=2",
        "?after=99999999999999999999",
    ] {
        let (status, body) = poll(&server.url, Some("bob"), query).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].is_string(), "{query}");
    }
    let (_, body) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(seqs(&body), vec![1]);
}

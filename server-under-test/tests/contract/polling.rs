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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cursor_gets_409_with_latest_and_loses_nothing_l4() {
    // A cursor above every seq bob's mailbox assigned (one from before a
    // restart, or a client bug) must not acknowledge anything: 409 with the
    // latest seq, and every entry still there from 0.
    let server = server_with_mail(2).await;
    for query in ["?after=3", "?after=18446744073709551615"] {
        let (status, body) = poll(&server.url, Some("bob"), query).await;
        assert_eq!(status, 409, "{query}: {body}");
        assert!(body["error"].is_string(), "{body}");
        assert_eq!(body["latest"], json!(2), "{body}");
    }
    let (status, body) = poll(&server.url, Some("bob"), "?after=0").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&body), vec![1, 2]);
    // A cursor at the latest seq is not stale: nothing new, 200.
    let (status, body) = poll(&server.url, Some("bob"), "?after=2").await;
    assert_eq!((status, body), (200, json!({"messages": []})));
    // A mailbox that never got anything: latest 0.
    let (status, body) = poll(&server.url, Some("carol"), "?after=1").await;
    assert_eq!(status, 409);
    assert_eq!(body["latest"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_mailbox_is_paged_with_more_l1() {
    // L1 lets a server answer a prefix of at least 100 entries with "more":
    // the reference pages at 500, and the rest follows from the last seq.
    let count = server_under_test::http::PAGE_ENTRIES + 20;
    let server = server_with_mail(count).await;
    let (status, first) = poll(&server.url, Some("bob"), "").await;
    assert_eq!(status, 200);
    let got = seqs(&first);
    assert_eq!(got.len(), server_under_test::http::PAGE_ENTRIES);
    assert_eq!(first["more"], json!(true));
    let last = *got.last().unwrap();
    let (_, rest) = poll(&server.url, Some("bob"), &format!("?after={last}")).await;
    assert_eq!(seqs(&rest).len(), 20);
    assert!(rest.get("more").is_none(), "{rest}");
}

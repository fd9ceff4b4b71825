//! Contract v2 (A1–A6) on the reference server started with a JWT secret: the
//! token is identity, the `username` header is not, and each token bug switch
//! breaks exactly what it names.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use server_under_test::{Bug, Config, TokenKey};

use crate::raw::connect_raw;
use crate::support::*;

const SECRET: &[u8] = b"contract v2 test secret";

async fn v2(bugs: &[Bug]) -> Server {
    start(Config {
        auth: Some(TokenKey::new(SECRET.to_vec()).unwrap()),
        bugs: bugs.iter().copied().collect(),
        ..quick_config()
    })
    .await
}

/// An `exp` an hour after the test server's clock starts (its fixed
/// `epoch_unix_ms`), shifted by `shift` seconds.
fn exp(shift: i64) -> i64 {
    (Config::default().epoch_unix_ms / 1000) as i64 + 3_600 + shift
}

fn token(sub: &str, exp: i64, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn alg_none(sub: &str, exp: i64) -> String {
    use base64::Engine as _;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"sub": sub, "exp": exp}))
    )
}

fn connect_with(token: &str) -> String {
    format!("40{}", json!({ "token": token }))
}

async fn bearer_poll(url: &str, token: Option<&str>, header: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{url}/api/messages"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(header) = header {
        request = request.header("username", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_identity_and_the_header_is_not_h2_a1_a2_a3() {
    let server = v2(&[]).await;
    let (status, health) = get(&server.url, "/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        health,
        json!({"status": "ok", "contract": "v2", "auth": "jwt-hs256"})
    );

    let valid = token("alice", exp(0), SECRET);
    // A valid token for alice with bob's header is alice (A2).
    let (_alice, answer) = connect_raw(&server.url, Some("bob"), &connect_with(&valid)).await;
    assert!(answer.starts_with("40{"), "{answer}");
    online_eventually(&server.url, &["alice"]).await;

    for (why, bad) in [
        ("no token", None),
        ("expired", Some(token("carol", exp(-7_200), SECRET))),
        ("forged", Some(token("carol", exp(0), b"another secret"))),
        ("alg none", Some(alg_none("carol", exp(0)))),
    ] {
        let connect = bad.as_deref().map_or("40".to_owned(), connect_with);
        let (_ws, answer) = connect_raw(&server.url, Some("carol"), &connect).await;
        assert!(answer.starts_with("44{"), "{why}: {answer}");
        assert!(answer.contains("invalid token"), "{why}: {answer}");
        if let Some(bad) = &bad {
            assert!(!answer.contains(bad.as_str()), "A6: the token is echoed");
        }
    }
    assert_eq!(online(&server.url).await, vec!["alice".to_owned()], "I3");

    // Polls: Bearer only (A3).
    let (status, _) = bearer_poll(&server.url, None, Some("alice")).await;
    assert_eq!(status, 401, "a header is not identity in v2");
    let (status, body) = bearer_poll(&server.url, Some(&valid), Some("bob")).await;
    assert_eq!((status, body), (200, json!({"messages": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_bug_switch_breaks_what_it_names() {
    let valid = token("alice", exp(0), SECRET);
    let server = v2(&[Bug::TrustHeader]).await;
    let (_ws, answer) = connect_raw(&server.url, Some("bob"), &connect_with(&valid)).await;
    assert!(answer.starts_with("40{"), "{answer}");
    online_eventually(&server.url, &["bob"]).await;

    let server = v2(&[Bug::SkipExp]).await;
    let expired = token("alice", exp(-7_200), SECRET);
    let (_ws, answer) = connect_raw(&server.url, None, &connect_with(&expired)).await;
    assert!(answer.starts_with("40{"), "skip_exp: {answer}");

    let server = v2(&[Bug::AcceptAlgNone]).await;
    let (_ws, answer) =
        connect_raw(&server.url, None, &connect_with(&alg_none("alice", exp(0)))).await;
    assert!(answer.starts_with("40{"), "accept_alg_none: {answer}");

    let server = v2(&[Bug::MailboxByHeader]).await;
    let (status, _) = bearer_poll(&server.url, None, Some("alice")).await;
    assert_eq!(status, 200, "mailbox_by_header");
}

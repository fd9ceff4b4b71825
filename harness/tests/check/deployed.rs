//! Servers as teams deploy them: behind a TLS terminator with a certificate
//! of their own, Socket.IO mounted under a path of their own. The reference
//! server runs in-process behind a TLS terminator written here (rustls, a
//! self-signed certificate made per test), and `check`, `replay --target`
//! and the rerun lines reach it with `https://`, `--ca-cert` and `--path`.

use std::sync::Arc;
use std::time::Duration;

use harness::check::{check, CheckError, CheckOptions, Reach, Target, Verdict};
use harness::spec::{Clause, Level};
use server_under_test::Config;
use tokio_rustls::rustls;

use super::{quick, start, text};

/// A TLS terminator on 127.0.0.1 in front of `backend` (a load balancer's
/// job), serving a fresh self-signed certificate for 127.0.0.1; returns its
/// port and the certificate (PEM).
async fn terminator(backend: std::net::SocketAddr) -> (u16, String, tokio::task::JoinHandle<()>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, pem, task)
}

fn options(seed: u64) -> CheckOptions {
    CheckOptions {
        level: Level::Core,
        seed,
        timeout_scale: 2.0,
        tokens: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_tls_with_socketio_moved_passes_core_and_is_reached_again() {
    let server = start(Config {
        socketio_path: "/chat/socket.io".into(),
        ..quick(&[])
    })
    .await;
    let backend = server.url.trim_start_matches("http://").parse().unwrap();
    let (port, pem, task) = terminator(backend).await;
    let dir = std::env::temp_dir().join(format!("harness-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let reach = Reach {
        socketio_path: Some("/chat/socket.io/".into()),
        ca_cert: Some(ca.clone()),
        ..Reach::default()
    };
    let target = Target::resolve_with(&url, &reach).await.unwrap();
    let report = check(&target, &options(3)).await.unwrap();
    assert!(report.passed(), "{}", text(&report));
    // Evidence happened: the transport and the second client (rust_socketio
    // over native-tls, trusting the same CA) reached Socket.IO at its path.
    let verdict = |clause| {
        report
            .clauses
            .iter()
            .find(|c| c.clause == clause)
            .map(|c| c.verdict.clone())
    };
    assert_eq!(verdict(Clause::T1), Some(Verdict::Pass));
    assert_eq!(verdict(Clause::M3), Some(Verdict::Pass));
    let rust_socketio = report
        .runs
        .iter()
        .find(|r| r.name == "rust_socketio")
        .unwrap();
    assert!(
        rust_socketio
            .trace
            .events
            .iter()
            .any(|e| matches!(e.what, harness::trace::What::Connected)),
        "rust_socketio never connected through TLS: {}",
        text(&report)
    );
    assert_eq!(
        report.rerun,
        format!(
            "harness check {url} --path /chat/socket.io/ --ca-cert {} --level core --seed 3 --timeout-scale 2",
            ca.display()
        )
    );

    // The same server at the contract's path: nothing there, T1 fails.
    let unmoved = Target::resolve_with(
        &url,
        &Reach {
            ca_cert: Some(ca.clone()),
            ..Reach::default()
        },
    )
    .await
    .unwrap();
    let report = check(&unmoved, &options(4)).await.unwrap();
    assert!(report.failed().contains(&Clause::T1), "{}", text(&report));
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_nobody_vouches_for_is_refused_at_once_with_the_way_out() {
    let server = start(quick(&[])).await;
    let backend = server.url.trim_start_matches("http://").parse().unwrap();
    let (port, _pem, task) = terminator(backend).await;
    let target = Target::resolve(&format!("https://127.0.0.1:{port}"))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), check(&target, &options(5)))
        .await
        .expect("a refused certificate is not waited on");
    let Err(e @ CheckError::Tls { .. }) = outcome else {
        panic!("expected a TLS error, got {outcome:?}");
    };
    // Refused at the first attempt, not after retrying until the patience
    // ran out (that path says "waited N s").
    assert!(e.to_string().contains("--ca-cert FILE"), "{e}");
    assert!(!e.to_string().contains("waited"), "{e}");
    task.abort();
}

#[test]
fn the_cli_refuses_deployment_options_without_a_live_server() {
    for args in [
        &["hunt", "--seeds", "1..2", "--path", "/x/"][..],
        &["replay", "--seed", "1", "--ca-cert", "ca.pem"][..],
    ] {
        let (code, _stdout, stderr) = super::harness(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("add --target URL"), "{args:?}: {stderr}");
    }
}

/// A balancer sticky by cookie (HAProxy's `cookie SERVERID insert`, the
/// setup socket.io's docs recommend) in front of the reference server: the
/// handshake's answer sets the cookie, and any later request of a session
/// that does not carry it is answered as another node would, `400 Session ID
/// unknown` (contract N2). The check's client and rust_socketio keep cookies
/// per session as a browser does, so every polling session lives and core
/// passes; without the cookie T1 fails (polling-first and polling-only users
/// never connect, nor rust_socketio).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_sticky_by_cookie_is_followed_as_a_browser_does() {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let (router, _chat) = server_under_test::app(quick(&[]));
    let app = router.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let session = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("sid=")));
            let sticky = request
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(';').any(|c| c.trim() == "SERVERID=node-a"));
            if request.uri().path().starts_with("/socket.io") && session && !sticky {
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"code":1,"message":"Session ID unknown"}"#,
                )
                    .into_response();
            }
            let mut response = next.run(request).await;
            if !session {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    "SERVERID=node-a; path=/".parse().unwrap(),
                );
            }
            response
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let target = Target::resolve(&url).await.unwrap();
    let report = check(&target, &options(11)).await.expect("up");
    task.abort();
    let text = text(&report);
    // Every run clean behind the balancer: the check's own client, and
    // rust_socketio, whose rust_engineio keeps no cookies upstream
    // (vendor/rust_engineio-0.6.0-keep-cookies.patch).
    assert!(report.passed(), "{text}");
    for run in &report.runs {
        assert!(run.violations.is_empty(), "run {}: {text}", run.name);
    }
}

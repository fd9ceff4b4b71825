//! `harness check --level secure` (contract v2, H2 and A1–A6): a v2 reference
//! server passes it and core with token identity; each token bug switch fails
//! the clause it breaks; a v1 server fails it with the demonstration.

use harness::check::{check, CheckOptions, CheckReport, Target, Verdict};
use harness::spec::{Clause, Level};
use harness::token::{IssuerClock, TokenIssuer};
use server_under_test::{Bug, Config, TokenKey};

use super::{quick, start, text};

const SECRET: &[u8] = b"a secret shared with the harness";

/// The v2 reference server (with `bugs`), checked at `level` with the secret.
/// Its clock starts at the wall clock, as the binary's does.
async fn check_v2(bugs: &[Bug], level: Level, with_secret: bool) -> CheckReport {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let server = start(Config {
        auth: Some(TokenKey::new(SECRET.to_vec()).unwrap()),
        epoch_unix_ms: now_ms,
        ..quick(bugs)
    })
    .await;
    let target = Target::resolve(&server.url).await.unwrap();
    let options = CheckOptions {
        level,
        seed: 5,
        timeout_scale: 2.0,
        tokens: with_secret.then(|| TokenIssuer::new(SECRET.to_vec(), IssuerClock::Wall)),
    };
    check(&target, &options).await.expect("the server is up")
}

fn verdict(report: &CheckReport, clause: Clause) -> Verdict {
    report
        .clauses
        .iter()
        .find(|c| c.clause == clause)
        .map(|c| c.verdict.clone())
        .unwrap()
}

const SECURE: [Clause; 7] = [
    Clause::H2,
    Clause::A1,
    Clause::A2,
    Clause::A3,
    Clause::A4,
    Clause::A5,
    Clause::A6,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_server_passes_secure_and_core_with_token_identity() {
    let report = check_v2(&[], Level::Secure, true).await;
    assert!(report.passed(), "{}", text(&report));
    for clause in SECURE {
        assert_eq!(
            verdict(&report, clause),
            Verdict::Pass,
            "{clause}\n{}",
            text(&report)
        );
    }
    // The core clauses were judged on token identity, not skipped.
    for clause in [Clause::I3, Clause::P1, Clause::M3, Clause::M4, Clause::L2] {
        assert_eq!(verdict(&report, clause), Verdict::Pass, "{clause}");
    }
    let core = check_v2(&[], Level::Core, true).await;
    assert!(core.passed(), "{}", text(&core));
    assert!(matches!(verdict(&core, Clause::A1), Verdict::Skip(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_server_without_its_secret_is_skip_not_pass() {
    let report = check_v2(&[], Level::Secure, false).await;
    assert_eq!(verdict(&report, Clause::H2), Verdict::Pass);
    for clause in [Clause::A1, Clause::A2, Clause::A3, Clause::A4, Clause::A5] {
        match verdict(&report, clause) {
            Verdict::Skip(reason) => assert!(reason.contains("--jwt-secret-file"), "{reason}"),
            other => panic!("{clause}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_server_fails_secure_with_a_demonstration() {
    let server = start(quick(&[])).await;
    let target = Target::resolve(&server.url).await.unwrap();
    let options = CheckOptions {
        level: Level::Secure,
        seed: 6,
        timeout_scale: 2.0,
        tokens: None,
    };
    let report = check(&target, &options).await.unwrap();
    for clause in [Clause::A1, Clause::A2, Clause::A3] {
        assert_eq!(
            verdict(&report, clause),
            Verdict::Fail,
            "{clause}\n{}",
            text(&report)
        );
    }
    let rendered = text(&report);
    assert!(rendered.contains("read sec-victim"), "{rendered}");
    assert!(
        rendered.contains("connected and sent as sec-victim"),
        "{rendered}"
    );
    // Its v1 core clauses are unaffected.
    assert_eq!(verdict(&report, Clause::I3), Verdict::Pass);
}

async fn token_bug_fails(bug: Bug, clause: Clause) {
    let report = check_v2(&[bug], Level::Secure, true).await;
    assert_eq!(
        verdict(&report, clause),
        Verdict::Fail,
        "{bug} must fail {clause}\n{}",
        text(&report)
    );
    let good = [Clause::H2, Clause::A5, Clause::A6];
    for other in good.into_iter().filter(|c| *c != clause) {
        assert_ne!(verdict(&report, other), Verdict::Fail, "{bug}: {other}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_the_header_fails_a2() {
    token_bug_fails(Bug::TrustHeader, Clause::A2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_exp_fails_a1_and_a4() {
    token_bug_fails(Bug::SkipExp, Clause::A1).await;
    token_bug_fails(Bug::SkipExp, Clause::A4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_alg_none_fails_a1() {
    token_bug_fails(Bug::AcceptAlgNone, Clause::A1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_mailboxes_by_header_fails_a3() {
    token_bug_fails(Bug::MailboxByHeader, Clause::A3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_hunt_against_a_v2_server_needs_its_secret_and_then_blames_nothing() {
    // Without the secret the users could not register, and every play would
    // blame the server for it: the hunt refuses instead (exit 2). With it,
    // the generated users present tokens, and a correct server stays clean.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let server = start(Config {
        auth: Some(TokenKey::new(SECRET.to_vec()).unwrap()),
        epoch_unix_ms: now_ms,
        ..quick(&[])
    })
    .await;
    let secret = std::env::temp_dir().join(format!("harness-hunt-secret-{}", std::process::id()));
    std::fs::write(&secret, SECRET).unwrap();
    let hunt = |with_secret: bool| {
        let (url, secret) = (server.url.clone(), secret.to_str().unwrap().to_owned());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "hunt",
                "--target",
                &url,
                "--seeds",
                "1..4",
                "--users",
                "3",
                "--duration",
                "4s",
                "--faults",
                "none",
                "--concurrency",
                "3",
                "--ack-timeout-ms",
                "500",
                "--timeout-scale",
                "2",
            ];
            if with_secret {
                args.extend(["--jwt-secret-file", &secret]);
            }
            super::bin::harness(&args)
        })
    };
    let (code, _, err) = hunt(false).await.unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("contract v2 server") && err.contains("--jwt-secret-file"),
        "{err}"
    );
    let (code, out, err) = hunt(true).await.unwrap();
    let _ = std::fs::remove_file(&secret);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("clean: no violation in 3 scenarios"),
        "{out}"
    );
}

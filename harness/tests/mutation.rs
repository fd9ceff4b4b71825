//! The suite cargo-mutants runs against every mutant of `server-under-test`
//! (README "Mutation testing"): the harness's simulation over a seed range
//! (every fault kind, so the half-open and fallback paths the robust check
//! reaches are reached here too, in simulated time) and `harness check` at
//! core and, against the v2 server, secure; in one test binary, so a mutant
//! costs one incremental build and about half a minute of tests. A mutant is
//! caught when any of them fails: the harness, not the server's own unit
//! tests, is what is measured.

use std::time::Duration;

#[path = "common/churn.rs"]
mod churn;

use harness::check::{check, report, CheckOptions, Target};
use harness::judge::referee::Blame;
use harness::spec::Level;
use harness::token::{IssuerClock, TokenIssuer};
use harness::{Campaign, Reference};
use server_under_test::{Bug, Config, Limits, TokenKey};

/// Short Engine.IO timers: the robust level's black hole and the
/// simulation's heal phases are short too.
fn quick() -> Config {
    Config {
        ping_interval_ms: 500,
        ping_timeout_ms: 500,
        ack_timeout_ms: 500,
        ..Config::default()
    }
}

#[test]
fn the_simulation_over_a_seed_range_is_clean() {
    Campaign::new()
        .reference(Reference::new(quick()))
        .users(8)
        .duration(Duration::from_secs(30))
        .seeds(0..40)
        .shrink_budget(0)
        .run()
        .assert_clean();
}

/// A sleeping device must not be left showing users wrongly when the
/// presence news it could not take outgrows its send buffer (P2, P3).
#[test]
fn a_sleeping_device_is_not_left_with_stale_presence() {
    use harness::world::{simulate, WorldOptions};
    let scenario = churn::sleep_through_churn();
    let world = WorldOptions::reference(&[]);
    let outcome = simulate(&scenario, &world);
    assert_eq!(outcome.error, None);
    let violations = harness::judge::judge_run(&outcome, &scenario, &world.timers);
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The bug switches are part of what the harness measures: a mutant that
/// turns them off (or their plumbing) must not pass unnoticed.
#[test]
fn a_bug_switch_is_still_found() {
    let report = Campaign::new()
        .reference(Reference::new(Config {
            bugs: [Bug::NeverPush].into_iter().collect(),
            ..quick()
        }))
        .users(4)
        .duration(Duration::from_secs(20))
        .seeds(0..8)
        .shrink_budget(0)
        .run();
    let finding = report
        .finding
        .as_ref()
        .unwrap_or_else(|| panic!("never_push went unnoticed:\n{report}"));
    // The referee reads the server's own record (its observer) to blame it.
    let blame = finding.violation.ruling.as_ref().map(|r| r.blame);
    assert_eq!(blame, Some(Blame::Server), "{report}");
}

/// How the server under check is served: as the binary serves it (hyper's
/// builder with the real-TCP limits), or through the library's plain `serve`,
/// which `harness check` uses for its embedded reference server (no URL).
#[derive(Clone, Copy)]
enum Serve {
    Binary,
    Library,
}

async fn check_at(level: Level, config: Config, tokens: Option<TokenIssuer>, serve: Serve) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        match serve {
            Serve::Binary => {
                server_under_test::serve_tcp(listener, config, Limits::default()).await
            }
            Serve::Library => server_under_test::serve(listener, config).await,
        }
        .unwrap();
    });
    let target = Target::resolve(&url).await.unwrap();
    let options = CheckOptions {
        level,
        seed: 9,
        // Roomy on a busy machine, yet short enough that a check of a server
        // that answers nothing ends well inside the mutant's test timeout.
        timeout_scale: 1.5,
        tokens,
    };
    let outcome = check(&target, &options).await.expect("the server is up");
    server.abort();
    assert!(outcome.passed(), "{}", report::text(&outcome));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_core_passes() {
    check_at(Level::Core, quick(), None, Serve::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_secure_passes_the_v2_server() {
    const SECRET: &[u8] = b"a secret for the mutation suite";
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let config = Config {
        auth: Some(TokenKey::new(SECRET.to_vec()).unwrap()),
        epoch_unix_ms: now_ms,
        ..quick()
    };
    let tokens = TokenIssuer::new(SECRET.to_vec(), IssuerClock::Wall);
    check_at(Level::Secure, config, Some(tokens), Serve::Library).await;
}

//! The same client code and scenario on real loopback TCP: "if both arms pass,
//! you can trust the sim".

use harness::client::ClientConfig;
use harness::judge::check_all;
use harness::net::transport::TcpConnector;
use harness::scenario::{Action, Scenario, UserSpec};
use harness::trace::{Recorder, TraceClock};
use harness::world::play;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calm_scenario_passes_the_same_checkers_on_real_tcp() {
    let server = server_under_test::Config {
        ping_interval_ms: 1_000,
        ping_timeout_ms: 1_000,
        ack_timeout_ms: 1_000,
        ..Default::default()
    };
    let client = ClientConfig {
        poll_interval_ms: 1_000,
        ..ClientConfig::default()
    };
    let users = [UserSpec::node("alice"), UserSpec::node("bob")];
    let mut s = scenario(
        &users,
        vec![
            (0, 0, Action::Open),
            (0, 1, Action::Open),
            (700, 0, send("bob")),
            (900, 1, send("nobody")),
            (1_200, 1, Action::Close),
        ],
        vec![],
    );
    s.active_ms = 1_500;
    // Real time is not simulated time: M3's 100 ms bound would be a wall-clock
    // assertion on a shared machine, so this arm declares its links unknown-slow
    // and M3 is not judged; every other checker is.
    s.faults.latency_ms_max = 1_000;
    s.heal_ms = Scenario::heal_ms_for(
        &harness::world::Reference::new(server.clone()).timers(),
        client.poll_interval_ms,
    ) - 17_000
        - 5_000
        + 1_500;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connector = TcpConnector::plain(listener.local_addr().unwrap());
    let serving = tokio::spawn(server_under_test::serve(listener, server));
    let recorder = Recorder::new(TraceClock::Real(tokio::time::Instant::now()));
    let connectors = vec![connector.clone(); s.users.len()];
    play(&s, connectors, connector, &recorder, &client, 1_000).await;
    serving.abort();

    let trace = recorder.trace();
    let text = trace.render();
    assert_eq!(check_all(&trace, &s), vec![], "{text}");
    assert!(text.contains("delivery=Websocket"), "{text}");
    assert!(text.contains("user-offline       bob"), "{text}");
    assert!(text.contains(r#"online             ["alice"]"#), "{text}");
}

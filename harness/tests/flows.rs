//! The seed's own flows (snapshots/flows/*.json) against the reference server:
//! each passes every checker, and its rendered trace is pinned by an insta
//! snapshot in snapshots/, readable by someone who never saw the code.

use std::path::Path;

use harness::judge::check_all;
use harness::world::{simulate, WorldOptions};

fn run_flow(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    let scenario =
        harness::Scenario::load(&root.join("flows").join(format!("{name}.json"))).unwrap();
    // Fewer observer probes keep the pinned trace about the flow.
    let options = WorldOptions {
        probe_interval_ms: 30_000,
        ..WorldOptions::default()
    };
    let outcome = simulate(&scenario, &options);
    assert_eq!(outcome.error, None);
    let violations = check_all(&outcome.trace, &scenario);
    assert!(violations.is_empty(), "{name}: {violations:#?}");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root);
    settings.set_prepend_module_to_snapshot(false);
    let rendered = outcome.trace.render();
    settings.bind(|| insta::assert_snapshot!(name, rendered));
    outcome.trace.render()
}

#[test]
fn complete_flow_now_registers_and_announces_p1() {
    // "Complete Flow Now": login → connect with the header → registered → user_online.
    let trace = run_flow("complete_flow_now");
    assert!(trace.contains("shyam_patel#1    user-online        rama"));
}

#[test]
fn message_flow_pushes_over_websocket_m3() {
    let trace = run_flow("message_flow");
    assert!(trace.contains("delivery=Websocket"));
    assert!(
        trace.contains("rama#1           received           id=1 shyam_patel → rama via=Websocket")
    );
}

#[test]
fn before_broken_falls_back_to_polling_i3_m4() {
    // "Before (Broken)": no header → not registered → polling, 0–30 s later.
    let trace = run_flow("before_broken");
    assert!(trace.contains("connect-refused"));
    assert!(trace.contains("delivery=Polling"));
    assert!(trace.contains("via=Mailbox"));
}

#[test]
fn browser_websocket_first_strips_the_header_i1() {
    let trace = run_flow("browser_websocket_first");
    assert!(trace.contains("sent=false"));
    assert!(trace.contains("delivery=Polling"));
}

#[test]
fn reconnect_race_keeps_the_user_online_p2() {
    // rama's client dies behind a partition (its FIN is lost) and comes back
    // before the server notices; the old connection's ping timeout must not
    // take rama offline.
    let trace = run_flow("reconnect_race");
    assert!(trace.contains("rama#2           connected"));
    assert!(!trace.contains("user-offline       rama"), "{trace}");
}

//! Bring your own server: a chat server the harness did not write
//! (`rooms_chat`, on socketioxide with rooms) runs through the public API
//! only — `harness::Campaign` — exactly as a team's own `cargo test` would.

mod rooms_chat;

use std::time::Duration;

use harness::{Campaign, Clause, FaultMenu, Replay};
use rooms_chat::{serve, Defect};

#[test]
fn a_correct_server_of_our_own_is_clean_over_a_fixed_seed_range() {
    // Every fault kind, 12 seeds: a false positive here would blame a server
    // that keeps the contract, so this must stay clean.
    let report = Campaign::new()
        .server(|listener, env| serve(listener, env.clone(), Defect::None))
        .users(5)
        .duration(Duration::from_secs(40))
        .faults(FaultMenu::all())
        .seeds(0..12)
        .run();
    report.assert_clean();
    assert_eq!(report.seeds_run, 12, "every seed ran");
}

#[test]
fn presence_keyed_by_user_is_found_shrunk_and_replays() {
    // The seed's own bug (online[user] = sid): a second tab's close takes the
    // user offline. The campaign must find it as a presence clause, shrink it
    // to a handful of steps, and the shrunk scenario must replay byte for byte.
    let report = Campaign::new()
        .server(|listener, env| serve(listener, env, Defect::OneSidPerUser))
        .users(4)
        .duration(Duration::from_secs(40))
        .seeds(0..40)
        .run();
    assert!(!report.is_clean(), "the planted defect must be found");
    let finding = report.finding.as_ref().expect("a finding");
    assert!(
        matches!(
            finding.clause,
            Clause::P2 | Clause::P3 | Clause::P4 | Clause::M3 | Clause::M4
        ),
        "a presence defect shows as presence or its delivery symptom: {report}"
    );
    assert!(
        finding.minimal.steps.len() <= 6,
        "shrunk to at most 6 steps: {report}"
    );
    // The shrunk scenario replays byte for byte. The unshrunk seed may not:
    // socketioxide's rooms fan out in HashSet order, so two tabs of one user
    // can see the same push in either order; the report must then say so.
    assert_eq!(finding.minimal_replay, Replay::Identical, "{report}");
    // It opted in to the referee: the violation is classed as the server's.
    let ruling = finding.violation.ruling.as_ref().expect("ruled");
    assert_eq!(
        ruling.blame,
        harness::judge::referee::Blame::Server,
        "{report}"
    );
    let text = report.to_string();
    if let Replay::Diverged { line, .. } = &finding.replay {
        assert!(text.contains(&format!("DIVERGED at line {line}")), "{text}");
    }
    assert!(text.contains("replay: HARNESS_SCENARIO="), "{text}");
    // The saved scenario replays to the same violation through the same API.
    let saved = match &report.saved {
        Some(Ok(path)) => path.clone(),
        other => panic!("the shrunk scenario was saved: {other:?}"),
    };
    let again = Campaign::new()
        .server(|listener, env| serve(listener, env, Defect::OneSidPerUser))
        .scenario(saved)
        .run();
    let replayed = again.finding.expect("the saved scenario fails again");
    assert_eq!(replayed.clause, finding.clause);
    assert_eq!(replayed.minimal_trace, finding.minimal_trace);
}

#[test]
#[should_panic(expected = "the campaign is not clean")]
fn assert_clean_panics_with_the_report() {
    Campaign::new()
        .server(|listener, env| serve(listener, env, Defect::OneSidPerUser))
        .users(3)
        .duration(Duration::from_secs(30))
        .seeds(0..30)
        .shrink_budget(20)
        .run()
        .assert_clean();
}

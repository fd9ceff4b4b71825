//! No false positives at scale: the reference server, with no bug switch and
//! every fault kind, is clean at 10, 50 and 200 users over fixed seeds. A
//! violation here blames a correct server; one the referee classes
//! `harness` is a bug of ours, and the message says which.

use harness::judge::judge_run;
use harness::judge::referee::Blame;
use harness::world::{simulate, WorldOptions};

fn clean_over(users: usize, seeds: std::ops::Range<u64>) {
    let world = WorldOptions::default();
    for seed in seeds {
        let scenario = crate::support::generated(users, seed);
        let outcome = simulate(&scenario, &world);
        assert_eq!(outcome.error, None);
        let violations = judge_run(&outcome, &scenario, &world.timers);
        let ours: Vec<_> = violations
            .iter()
            .filter(|v| v.ruling.as_ref().is_some_and(|r| r.blame == Blame::Harness))
            .collect();
        assert!(
            ours.is_empty(),
            "{users} users, seed {seed}: the referee blames the HARNESS: {ours:#?}"
        );
        assert!(
            violations.is_empty(),
            "{users} users, seed {seed}: a correct server was blamed (harness sim --users {users} --seed {seed}): {violations:#?}"
        );
    }
}

#[test]
fn the_reference_server_is_clean_at_10_users() {
    clean_over(10, 1..16);
}

#[test]
fn the_reference_server_is_clean_at_50_users() {
    clean_over(50, 1..9);
}

#[test]
fn the_reference_server_is_clean_at_200_users() {
    clean_over(200, 1..4);
}

use harness::faults::FaultMenu;
use harness::scenario::{GenerateOptions, Scenario};
use harness::world::{simulate, WorldOptions};

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    // 20 seeds with random latency and every fault kind, each run twice: any
    // wall clock, unseeded randomness or hash order reaching the trace shows up
    // as a diff here.
    let options = GenerateOptions {
        users: 6,
        active_ms: 60_000,
        faults: FaultMenu::all(),
        ..GenerateOptions::default()
    };
    for seed in 0..20 {
        let scenario = Scenario::generate(seed, &options);
        let first = simulate(&scenario, &WorldOptions::default());
        let second = simulate(&scenario, &WorldOptions::default());
        assert_eq!(first.error, None);
        let (a, b) = (first.trace.render(), second.trace.render());
        if a != b {
            let line = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "seed {seed}: traces differ at line {line}:\n  {}\n  {}",
                a.lines().nth(line).unwrap_or(""),
                b.lines().nth(line).unwrap_or("")
            );
        }
        assert!(
            first.trace.events.len() > 50,
            "seed {seed}: a real run, not an empty one"
        );
    }
}

#[test]
fn a_v2_world_is_as_deterministic_tokens_and_expiry_included() {
    // Tokens are minted on simulated time from a fixed epoch and the server
    // judges `exp` on its simulated clock: nothing about v2 may vary run to run.
    let options = GenerateOptions {
        users: 6,
        active_ms: 40_000,
        faults: FaultMenu::all(),
        tokens: true,
        ..GenerateOptions::default()
    };
    for seed in 0..8 {
        let scenario = Scenario::generate(seed, &options);
        assert!(scenario.is_v2());
        let world = WorldOptions::reference_v2(&[]);
        let first = simulate(&scenario, &world);
        let second = simulate(&scenario, &world);
        assert_eq!(first.error, None);
        assert_eq!(first.trace.render(), second.trace.render(), "seed {seed}");
        assert!(first.trace.events.len() > 50, "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let options = GenerateOptions {
        users: 4,
        active_ms: 30_000,
        faults: FaultMenu::all(),
        ..GenerateOptions::default()
    };
    let hashes: std::collections::BTreeSet<String> = (0..5)
        .map(|seed| {
            simulate(
                &Scenario::generate(seed, &options),
                &WorldOptions::default(),
            )
            .trace
            .hash_hex()
        })
        .collect();
    assert_eq!(hashes.len(), 5);
}

#[test]
fn a_server_restart_is_the_same_whatever_ran_before_it_in_the_process() {
    // Tearing the server's host down drops its tasks in the order of tokio's
    // task ids, which count up across the process: spawning a few tasks
    // elsewhere first shifts them. The FINs and RSTs the dropped sockets
    // send must still leave in the same order (vendor/turmoil-0.7.2-
    // deterministic-teardown.patch), or the same seed diverges.
    let options = GenerateOptions {
        users: 6,
        active_ms: 30_000,
        faults: FaultMenu::default(),
        ..GenerateOptions::default()
    };
    let mut scenario = Scenario::generate(3, &options);
    scenario.faults.faults = vec![harness::faults::Fault {
        at_ms: 12_000,
        duration_ms: 1_000,
        host: harness::world::SERVER_HOST.into(),
        kind: harness::faults::FaultKind::Restart { keeps_store: true },
    }];
    let spare = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut traces = Vec::new();
    for shift in 0..4 {
        spare.block_on(async {
            for _ in 0..shift {
                tokio::spawn(async {}).await.expect("an empty task");
            }
        });
        let outcome = simulate(&scenario, &WorldOptions::default());
        assert_eq!(outcome.error, None);
        traces.push(outcome.trace.render());
    }
    let restarted = traces[0].matches("disconnected").count();
    assert!(restarted >= 4, "the restart ended sessions:\n{}", traces[0]);
    for (shift, trace) in traces.iter().enumerate().skip(1) {
        let diverged = traces[0].lines().zip(trace.lines()).find(|(a, b)| a != b);
        assert!(
            diverged.is_none() && traces[0] == *trace,
            "with {shift} tasks spawned before, the trace diverged: {diverged:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_report_rulings_included() {
    // The trace was identical run to run, but the referee named one of a
    // user's several connections by the order of the server's sids, which
    // engineioxide draws at random: `harness sim --users 10 --seed 4 --bug
    // register_anonymous` blamed dave#1 in one run and dave#3 in the next.
    // Rulings now go by registration order (judge::referee's unit test pins
    // it without depending on chance; this one guards the whole report).
    for (users, seed, bug) in [
        (10, 4, server_under_test::Bug::RegisterAnonymous),
        (30, 5, server_under_test::Bug::NeverPush),
    ] {
        let scenario = crate::support::generated(users, seed);
        let report = || {
            let mut out = String::new();
            for v in crate::support::run(&scenario, &[bug]).1 {
                harness::render::violation(&v, &mut out);
            }
            out
        };
        let (first, second) = (report(), report());
        assert!(first.contains("referee: server"), "{bug}: {first}");
        assert_eq!(first, second, "{bug}: seed {seed}, {users} users");
    }
}

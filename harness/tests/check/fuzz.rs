//! B1 under frames a fuzzer reaches: proptest draws samples of
//! [`Malformed`] frames, the abuser sends them to the reference server on
//! loopback while two users talk, and every trace checker plus
//! `abuse_harms_nobody` judges the run. The same samples against a server that
//! accepts extra arguments fail, so the property can fail.

use harness::check::{fuzz_run, CheckOptions, Run, Target};
use harness::net::malformed::Malformed;
use harness::spec::{Clause, Level};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence, TestRunner};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use server_under_test::Bug;

use super::{quick, start};

/// One generated frame: a kind and the seed of its parameters (both shrink to 0).
fn malformed() -> impl Strategy<Value = Malformed> {
    (0..Malformed::KINDS, any::<u64>())
        .prop_map(|(kind, seed)| Malformed::draw(kind, &mut SmallRng::seed_from_u64(seed)))
}

async fn fuzz(bugs: &[Bug], sample: &[Malformed]) -> Run {
    let server = start(quick(bugs)).await;
    let target = Target::resolve(&server.url).await.unwrap();
    let options = CheckOptions {
        level: Level::Core,
        seed: 5,
        timeout_scale: 2.0,
        tokens: None,
    };
    fuzz_run(&target, &options, sample)
        .await
        .expect("the server is up")
}

fn describe(run: &Run) -> String {
    let mut out = String::new();
    for v in &run.violations {
        out.push_str(&format!("{} @{} ms: {}\n", v.clause, v.at_ms, v.message));
    }
    out
}

#[test]
fn generated_malformed_frames_harm_nobody_on_the_reference_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Few cases, each a live run of a few seconds; every kind is also sent
    // by every `check` (its seeded sample), so this adds parameter variety.
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 4,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..RunnerConfig::default()
    });
    runner
        .run(&proptest::collection::vec(malformed(), 1..5), |sample| {
            let run = runtime.block_on(fuzz(&[], &sample));
            prop_assert!(
                run.violations.is_empty(),
                "{sample:?} harmed someone:\n{}",
                describe(&run)
            );
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_accepting_extra_arguments_fails_b1_under_the_same_frames() {
    let sample = [Malformed::ExtraArguments { extra: 2 }];
    assert!(fuzz(&[], &sample).await.violations.is_empty());
    let run = fuzz(&[Bug::ExtraArgs], &sample).await;
    let clauses: Vec<Clause> = run.violations.iter().map(|v| v.clause).collect();
    assert!(clauses.contains(&Clause::B1), "{}", describe(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_in_one_seeded_sample_harms_nobody() {
    let sample = Malformed::sample(1, usize::from(Malformed::KINDS));
    let run = fuzz(&[], &sample).await;
    assert!(run.violations.is_empty(), "{}", describe(&run));
    // Every frame was sent and answered or given its window.
    let exchanges = run
        .trace
        .events
        .iter()
        .filter(|e| e.actor == "abuser")
        .count();
    assert!(exchanges > usize::from(Malformed::KINDS), "{exchanges}");
}

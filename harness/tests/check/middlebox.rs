//! Faults that real deployments add between client and server, over real TCP
//! through the fault proxy, against the reference server on loopback.

use harness::check::replay::{replay_live, retag};
use harness::check::rules::half_open_is_noticed;
use harness::check::{CheckOptions, Target};
use harness::contract::Delivery;
use harness::faults::{Fault, FaultKind, FaultPlan};
use harness::judge::Facts;
use harness::scenario::{Action, Scenario, Step, UserSpec};
use harness::spec::{Clause, Level};
use harness::trace::What;
use harness::world::host_of;
use server_under_test::Config;

use super::start;

/// The README's engineioxide finding, over real TCP: a reader that stops
/// reading (a sleeping phone, a middlebox that holds the stream) while a flood
/// of pushes is on its way stalls the server's websocket writer; the server's
/// ping timeout must still end the session and take the user offline (P3).
/// Unpatched engineioxide 0.17.9 never notified the disconnect handler of a
/// session whose writer was stalled, so the user stayed online for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_under_a_flood_is_still_taken_offline_p3() {
    let server = start(Config {
        ping_interval_ms: 1_000,
        ping_timeout_ms: 1_000,
        ack_timeout_ms: 1_000,
        ..Config::default()
    })
    .await;
    let target = Target::resolve(&server.url).await.unwrap();
    let (victim, sender) = ("sleeper", "flooder");
    let users = vec![UserSpec::node(victim), UserSpec::node(sender)];
    let mut steps = vec![
        Step {
            at_ms: 0,
            user: 0,
            action: Action::Open,
        },
        Step {
            at_ms: 0,
            user: 1,
            action: Action::Open,
        },
    ];
    // About 5 MB of pushes: more than the server's send buffer on loopback
    // and the proxy's small window together.
    steps.extend((0..600).map(|i| Step {
        at_ms: 1_100 + i,
        user: 1,
        action: Action::Send {
            to: victim.into(),
            content: "é".repeat(4_096),
        },
    }));
    let scenario = Scenario {
        seed: 1,
        users,
        steps,
        faults: FaultPlan {
            latency_ms_min: 0,
            latency_ms_max: 0,
            faults: vec![Fault {
                at_ms: 1_000,
                duration_ms: 9_000,
                host: host_of(0, 2),
                kind: FaultKind::Backpressure,
            }],
            push_bound_ms: None,
        },
        active_ms: 10_000,
        heal_ms: 12_000,
        open_world: true,
    };
    let options = CheckOptions {
        level: Level::Robust,
        seed: 1,
        timeout_scale: 2.0,
        tokens: None,
    };
    let replay = replay_live(&target, &scenario, 1, &options).await.unwrap();
    let run = &replay.runs[0];
    // While the fault lasts, not only once it is over: the server's ping
    // timeout (1 s + 1 s) must take the sleeper offline within a second more.
    let played = retag(&scenario, &run.tag);
    let mut violations = run.violations.clone();
    violations.extend(half_open_is_noticed(
        &Facts::new(&run.trace, &played),
        0,
        2_000,
    ));
    let lines: Vec<String> = violations
        .iter()
        .map(|v| format!("{} @{} ms: {}", v.clause, v.at_ms, v.message))
        .collect();
    // The fault did what it models: the server could not write every push
    // and fell back to the mailbox while the victim's session was still open.
    let fell_back = run
        .trace
        .events
        .iter()
        .filter(|e| {
            matches!(
                &e.what,
                What::Accepted {
                    delivery: Delivery::Polling,
                    ..
                }
            ) && (1_000..10_000).contains(&e.at_ms)
        })
        .count();
    let offline = run.trace.events.iter().any(|e| {
        e.actor.starts_with("flooder")
            && matches!(&e.what, What::Presence { online: false, username } if username.starts_with(victim))
    });
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with(&Clause::P3.to_string())),
        "the sleeper stayed online: {lines:#?}"
    );
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(
        fell_back > 0,
        "no push ever had to fall back: the fault blocked nothing"
    );
    assert!(
        offline,
        "the flooder never heard user_offline for the sleeper"
    );
}

/// A load balancer whose idle timeout is shorter than the server's
/// pingInterval (nginx's `proxy_read_timeout`, an ALB's idle timeout, set
/// below what the Socket.IO server was started with): every quiet session in
/// front of it is closed between two pings. A correct server and client
/// survive the churn: the user comes back each time, and what was sent to
/// them meanwhile is pushed or mailed, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_below_the_ping_interval_cuts_sessions_and_loses_nothing() {
    let server = start(Config {
        ping_interval_ms: 3_000,
        ping_timeout_ms: 1_000,
        ack_timeout_ms: 1_000,
        ..Config::default()
    })
    .await;
    let target = Target::resolve(&server.url).await.unwrap();
    let users = vec![UserSpec::node("quiet"), UserSpec::node("talker")];
    let mut steps = vec![
        Step {
            at_ms: 0,
            user: 0,
            action: Action::Open,
        },
        Step {
            at_ms: 0,
            user: 1,
            action: Action::Open,
        },
    ];
    steps.extend((0..6).map(|i| Step {
        at_ms: 1_500 + i * 1_700,
        user: 1,
        action: Action::Send {
            to: "quiet".into(),
            content: format!("through the balancer #{i}"),
        },
    }));
    let scenario = Scenario {
        seed: 2,
        users,
        steps,
        faults: FaultPlan {
            latency_ms_min: 0,
            latency_ms_max: 0,
            faults: vec![Fault {
                at_ms: 0,
                duration_ms: 12_000,
                host: host_of(0, 2),
                kind: FaultKind::IdleTimeout { after_ms: 1_000 },
            }],
            push_bound_ms: None,
        },
        active_ms: 12_000,
        heal_ms: 10_000,
        open_world: true,
    };
    let options = CheckOptions {
        level: Level::Robust,
        seed: 2,
        timeout_scale: 2.0,
        tokens: None,
    };
    let replay = replay_live(&target, &scenario, 1, &options).await.unwrap();
    let run = &replay.runs[0];
    // The fault did what it models: the quiet user's sessions were cut.
    let cut = run
        .trace
        .events
        .iter()
        .filter(|e| {
            e.actor.starts_with("quiet")
                && e.at_ms < 12_000
                && matches!(e.what, What::Disconnected { .. })
        })
        .count();
    assert!(
        cut >= 2,
        "the balancer never cut the quiet session:\n{}",
        run.trace.render()
    );
    let lines: Vec<String> = run
        .violations
        .iter()
        .map(|v| format!("{} @{} ms: {}", v.clause, v.at_ms, v.message))
        .collect();
    assert!(lines.is_empty(), "{lines:#?}\n{}", run.trace.render());
}

//! `robust` (`--level robust`): the scenario again through the seeded fault
//! proxy: black hole until the ping timeout, reset, hold, lost poll
//! response; and the driver that applies a plan's faults on real TCP.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::rules::half_open_is_noticed;
use super::{
    check_client, for_contract, send, step, AnnouncedTimers, CheckOptions, Names, RestartCommand,
    Run, PROBE_EVERY_MS,
};
use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::judge::{check_all, Facts};
use crate::net::proxy::{FaultProxy, Mode};
use crate::net::transport::TcpConnector;
use crate::scenario::{Action, OpenMode, Scenario, UserSpec};
use crate::trace::{Recorder, TraceClock, What};
use crate::world::{host_of, play, sleep_until_ms, DRAIN_MS};

/// The robust scenario, one user per proxy: `ra` sends; `rb` is black-holed
/// until the server's ping timeout must have fired; `rc` is reset; `re` is held
/// and released; `rd` only polls and loses a poll response, then connects,
/// switches networks (its connection stalls) and reconnects at once, before the
/// server can notice the old connection is dead (P2's early reconnect).
pub(super) fn robust_scenario(
    names: &Names,
    options: &CheckOptions,
    timers: AnnouncedTimers,
) -> Scenario {
    // At most `MAX_CLIENT_HOSTS` users, so each has its own host and proxy.
    let users: Vec<UserSpec> = ["ra", "rb", "rc", "rd", "re"]
        .iter()
        .map(|b| UserSpec::node(&names.user(b)))
        .collect();
    let mut users = users;
    users[2].open = OpenMode::PollingFirst;
    debug_assert!(users.len() <= crate::world::MAX_CLIENT_HOSTS);
    let n = |i: usize| users[i].name.clone();
    let silence = options.scaled(timers.ping_interval_ms + timers.ping_timeout_ms);
    let black_hole_ms = silence + options.scaled(3_000);
    let heal_at = 2_000 + black_hole_ms;
    let fault = |host: usize, at_ms: u64, duration_ms: u64, kind: FaultKind| Fault {
        at_ms,
        duration_ms,
        host: host_of(host, users.len()),
        kind,
    };
    let rd_back_at = 1_500 + options.scaled(3_000) + 500;
    let faults = vec![
        fault(3, 1_500, options.scaled(3_000), FaultKind::LosePollResponse),
        fault(3, rd_back_at + 1_000, 1, FaultKind::Stall),
        fault(1, 2_000, black_hole_ms, FaultKind::Partition),
        fault(2, 2_000, 1, FaultKind::Reset),
        fault(4, 2_000, options.scaled(2_000), FaultKind::Hold),
        // rc's websocket upgrades are refused all along: it lives on polling.
        fault(
            2,
            0,
            (heal_at + 1_000).max(rd_back_at + 2_000),
            FaultKind::StripUpgrade,
        ),
    ];
    let mut steps = vec![
        step(0, 0, Action::Open),
        step(0, 1, Action::Open),
        step(0, 2, Action::Open),
        step(0, 4, Action::Open),
        step(1_000, 0, send(&n(3), "to rd, who only polls")),
        step(2_000 + options.scaled(500), 3, Action::Poll),
        step(2_500, 0, send(&n(2), "to rc, around its reset")),
        step(2_500, 0, send(&n(4), "to re, held")),
        // Sent before the server can have noticed the silence: the push goes
        // into the black hole, unacknowledged (M5).
        step(2_100, 0, send(&n(1), "to rb, into the black hole")),
        step(heal_at + 500, 0, send(&n(1), "to rb, after the heal")),
        step(rd_back_at, 3, Action::Open),
        step(rd_back_at + 1_100, 3, Action::Crash { down_ms: 300 }),
    ];
    steps.sort_by_key(|s| s.at_ms);
    for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps,
            faults: FaultPlan {
                latency_ms_min: 1,
                latency_ms_max: 40,
                faults,
                push_bound_ms: None,
            },
            active_ms: (heal_at + 1_000).max(rd_back_at + 2_000),
            // The stall began before the black hole ended: the server has had its
            // ping timeout for both by the end of the active phase.
            heal_ms: options.scaled(10_000) + DRAIN_MS,
            open_world: true,
        },
    )
}

pub(super) async fn robust_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
) -> Run {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let Some(timers) = timers else {
        recorder.record(
            "world",
            What::Exchange {
                request: "robust run".into(),
                answer: "skipped: no Engine.IO handshake, so no ping timers to wait for".into(),
            },
        );
        return Run::new("robust", None, recorder.trace(), Vec::new(), started);
    };
    let mut scenario = robust_scenario(names, options, timers);
    if connector.tls.is_some() {
        // The proxy sees ciphertext: it cannot tell a poll or an upgrade
        // from any other request. Said in the trace, not silently skipped.
        scenario.faults.faults.retain(|f| {
            !matches!(
                f.kind,
                FaultKind::LosePollResponse | FaultKind::StripUpgrade
            )
        });
        recorder.record(
            "world",
            What::Exchange {
                request: "lose_poll_response, strip_upgrade".into(),
                answer: "not injected: through TLS the fault proxy cannot see requests".into(),
            },
        );
    }
    let mut proxies = Vec::new();
    for i in 0..scenario.users.len() {
        match FaultProxy::start(connector.addr, options.seed ^ i as u64).await {
            Ok(proxy) => proxies.push(proxy),
            Err(e) => {
                recorder.record(
                    "world",
                    What::Exchange {
                        request: "start fault proxy".into(),
                        answer: e.to_string(),
                    },
                );
                return Run::new(
                    "robust",
                    Some(scenario),
                    recorder.trace(),
                    Vec::new(),
                    started,
                );
            }
        }
    }
    let latency = (
        scenario.faults.latency_ms_min,
        scenario.faults.latency_ms_max,
    );
    for proxy in &proxies {
        proxy.set(Mode::with_faults(latency, &[], (0, 0)));
    }
    let connectors: Vec<TcpConnector> = proxies.iter().map(|p| connector.via(p.addr())).collect();
    // No restart in this plan: the driver cannot fail.
    let driver = drive_faults(&scenario, &proxies, &recorder, None);
    let client = check_client(options);
    let (_, _) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        driver
    );
    drop(proxies);
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    violations.extend(half_open_is_noticed(
        &facts,
        1,
        options.scaled(timers.ping_interval_ms + timers.ping_timeout_ms),
    ));
    Run::new("robust", Some(scenario), trace, violations, started)
}

/// Restarting the server on real TCP: the command, the server to wait for
/// after it, and how long to wait.
pub(crate) type Restarter<'a> = (&'a RestartCommand, &'a TcpConnector, Duration);

/// Applies the plan's faults to the per-host proxies at their times, recording
/// them; a restart runs `restarter`'s command (the plan's end of it is when
/// the server answers again, whatever the plan said). `Err` when a restart
/// failed: the run says nothing about the server.
pub(super) async fn drive_faults(
    scenario: &Scenario,
    proxies: &[FaultProxy],
    recorder: &Recorder,
    restarter: Option<Restarter<'_>>,
) -> Result<(), String> {
    let mut active: BTreeMap<String, Vec<FaultKind>> = BTreeMap::new();
    let latency = (
        scenario.faults.latency_ms_min,
        scenario.faults.latency_ms_max,
    );
    let users = scenario.users.len();
    let mut restarts = Vec::new();
    for (at_ms, starts, fault) in scenario.faults.transitions() {
        sleep_until_ms(recorder, at_ms).await;
        if let FaultKind::Restart { .. } = fault.kind {
            if !starts {
                continue;
            }
            let Some((command, server, patience)) = restarter else {
                return Err(
                    "the scenario restarts the server and no restart command was given".into(),
                );
            };
            restarts.push(tokio::spawn(command.clone().restart(
                server.clone(),
                recorder.clone(),
                patience,
            )));
            continue;
        }
        let kinds = active.entry(fault.host.clone()).or_default();
        if starts {
            kinds.push(fault.kind);
        } else if let Some(i) = kinds.iter().position(|k| *k == fault.kind) {
            kinds.remove(i);
        }
        recorder.record_at(at_ms, "world", What::fault(fault, starts));
        // Every user of the host has a proxy of its own: the fault is the host's.
        for proxy in (0..users)
            .filter(|&i| host_of(i, users) == fault.host)
            .filter_map(|i| proxies.get(i))
        {
            let (mut resets, mut stalls) = (proxy.mode().resets, proxy.mode().stalls);
            if starts {
                resets += u64::from(fault.kind == FaultKind::Reset);
                stalls += u64::from(fault.kind == FaultKind::Stall);
            }
            proxy.set(Mode::with_faults(latency, kinds, (resets, stalls)));
        }
    }
    for restart in restarts {
        restart
            .await
            .map_err(|e| format!("the restart task failed: {e}"))??;
    }
    Ok(())
}

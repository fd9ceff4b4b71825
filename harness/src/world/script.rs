//! What runs on the client hosts, simulated or real alike: each host's users
//! playing their steps ([`HostScript`]), and the observer probing
//! `/api/online` ([`Observer`]). [`play`] runs them on real TCP.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{probe_online, ClientConfig, User};
use crate::net::transport::Connector;
use crate::scenario::{Action, Scenario};
use crate::trace::{Recorder, What};

use super::DRAIN_MS;

/// Probes `/api/online` every `every_ms`, and once more just before the end.
#[derive(Clone)]
pub struct Observer {
    /// Where probes go.
    pub recorder: Recorder,
    /// The probe period.
    pub every_ms: u64,
    /// The scenario's end.
    pub end_ms: u64,
    /// How long one probe may take.
    pub request_timeout: Duration,
}

impl Observer {
    /// Probes through `connector` until the end of the scenario; started
    /// again with a restarted server, it keeps to the same beat.
    pub async fn run<C: Connector>(self, connector: C) {
        let every_ms = self.every_ms.max(1);
        let mut at_ms = (self.recorder.now_ms() / every_ms + 1) * every_ms;
        while at_ms < self.end_ms - DRAIN_MS {
            sleep_until_ms(&self.recorder, at_ms).await;
            probe_online(&connector, &self.recorder, self.request_timeout).await;
            at_ms += every_ms;
        }
        sleep_until_ms(&self.recorder, self.end_ms - DRAIN_MS / 3).await;
        probe_online(&connector, &self.recorder, self.request_timeout).await;
    }
}

/// Plays `scenario` outside turmoil, on real TCP: user `i` through
/// `connectors[i]` (one shared server, or a fault proxy each), the observer
/// through `observer`, probing every `probe_every_ms`; then marks the heal phase
/// at the end of the active phase, as the simulation's world does.
pub async fn play<C: Connector, O: Connector>(
    scenario: &Scenario,
    connectors: Vec<C>,
    observer: O,
    recorder: &Recorder,
    client: &ClientConfig,
    probe_every_ms: u64,
) {
    let scripts = connectors.into_iter().enumerate().map(|(i, connector)| {
        HostScript {
            scenario: scenario.clone(),
            users: vec![i],
            connector,
            recorder: recorder.clone(),
            client: client.clone(),
        }
        .run()
    });
    let probes = Observer {
        recorder: recorder.clone(),
        every_ms: probe_every_ms,
        end_ms: scenario.end_ms(),
        request_timeout: Duration::from_millis(client.request_timeout_ms),
    }
    .run(observer);
    tokio::join!(futures_util::future::join_all(scripts), probes);
    recorder.record_at(scenario.active_ms, "world", What::HealPhase);
}

/// Sleeps until `at_ms` on the recorder's clock.
pub async fn sleep_until_ms(recorder: &Recorder, at_ms: u64) {
    let now = recorder.now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// The users of one client host and their steps: the script a host runs, on
/// simulated or real TCP alike (its clock is the recorder's).
pub struct HostScript<C: Connector> {
    /// The whole scenario (steps of other hosts' users are skipped).
    pub scenario: Scenario,
    /// Indexes of the users on this host.
    pub users: Vec<usize>,
    /// How the users reach the server.
    pub connector: C,
    /// Where events go.
    pub recorder: Recorder,
    /// Client timers.
    pub client: ClientConfig,
}

impl<C: Connector> HostScript<C> {
    /// Plays the users' steps, then drains their mailboxes, until the scenario ends.
    pub async fn run(self) {
        let end_ms = self.scenario.end_ms();
        let drain_at = end_ms.saturating_sub(DRAIN_MS);
        let (mut users, poll_loops) = self.start_users(drain_at);
        self.play_agenda(&mut users, drain_at).await;
        // Drain: one last poll each, once everything has healed (L2, M5).
        sleep_until_ms(&self.recorder, drain_at).await;
        for user in users.values() {
            user.poll().await;
        }
        sleep_until_ms(&self.recorder, end_ms).await;
        for user in users.values_mut() {
            user.shutdown();
        }
        for poll_loop in poll_loops {
            poll_loop.abort();
        }
    }

    /// This host's users, each with a poll loop running until `drain_at`.
    fn start_users(
        &self,
        drain_at: u64,
    ) -> (BTreeMap<usize, User<C>>, Vec<tokio::task::JoinHandle<()>>) {
        let until = tokio::time::Instant::now()
            + Duration::from_millis(drain_at.saturating_sub(self.recorder.now_ms()));
        let mut users = BTreeMap::new();
        let mut poll_loops = Vec::new();
        for &index in &self.users {
            let spec = self.scenario.users[index].clone();
            let seed = self.scenario.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let user = User::new(
                self.connector.clone(),
                self.recorder.clone(),
                self.client.clone(),
                spec,
                seed,
            );
            // Users poll out of phase, as real clients started at different times do.
            let offset = Duration::from_millis(seed % self.client.poll_interval_ms.max(1));
            poll_loops.push(user.spawn_poll_loop(offset, until));
            users.insert(index, user);
        }
        (users, poll_loops)
    }

    /// The agenda: scripted steps plus restarts after crashes, by time, until
    /// the drain (what would happen after it is not part of the run).
    async fn play_agenda(&self, users: &mut BTreeMap<usize, User<C>>, drain_at: u64) {
        let mut agenda: Vec<(u64, usize, Action)> = self
            .scenario
            .steps
            .iter()
            .filter(|s| users.contains_key(&s.user))
            .map(|s| (s.at_ms, s.user, s.action.clone()))
            .collect();
        let mut restarts: Vec<(u64, usize, usize)> = Vec::new();
        agenda.reverse();
        loop {
            let next_step = agenda.last().map(|s| s.0);
            let next_restart = restarts.iter().map(|r| r.0).min();
            let (at_ms, is_restart) = match (next_step, next_restart) {
                (Some(s), Some(r)) if r < s => (r, true),
                (Some(s), _) => (s, false),
                (None, Some(r)) => (r, true),
                (None, None) => break,
            };
            if at_ms >= drain_at {
                break;
            }
            sleep_until_ms(&self.recorder, at_ms).await;
            if is_restart {
                let i = restarts
                    .iter()
                    .position(|r| r.0 == at_ms)
                    .expect("restart due");
                let (_, index, tabs) = restarts.remove(i);
                let user = users.get_mut(&index).expect("user of this host");
                for _ in 0..tabs {
                    user.open();
                }
                continue;
            }
            let (_, index, action) = agenda.pop().expect("step due");
            let user = users.get_mut(&index).expect("user of this host");
            if let Some(down) = act(user, action).await {
                restarts.push((at_ms.saturating_add(down.down_ms), index, down.tabs));
            }
        }
    }
}

/// A crash: how long the client stays down and how many tabs it reopens.
struct Down {
    down_ms: u64,
    tabs: usize,
}

/// Does one step; a crash says when to come back.
async fn act<C: Connector>(user: &mut User<C>, action: Action) -> Option<Down> {
    match action {
        Action::Open => user.open(),
        Action::Close => user.close(),
        Action::Send { to, content } => user.send(&to, &content),
        Action::SendRaw { payload } => user
            .send_raw(serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload))),
        Action::Poll => user.poll().await,
        Action::Freeze { ms } => user.freeze(ms),
        Action::Crash { down_ms } => {
            let tabs = user.crash();
            return Some(Down { down_ms, tabs });
        }
    }
    None
}

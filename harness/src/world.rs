//! The simulated world, and the only module that touches turmoil: one host for
//! the reference server (with an observer probing `/api/online` over loopback
//! beside it), and client hosts carrying the users (grouped when there are
//! many). Faults from the plan are applied between simulation steps and
//! recorded in the trace.

use std::collections::BTreeMap;
use std::time::Duration;

use server_under_test::Config as ServerConfig;

use crate::client::{probe_online, ClientConfig, User};
use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::scenario::{Action, Scenario};
use crate::trace::{Recorder, Trace, TraceClock, What};
use crate::transport::{Connector, SimConnector};

/// The server's turmoil host name.
pub const SERVER_HOST: &str = "server";
/// The server's port.
pub const SERVER_PORT: u16 = 80;
/// Client hosts beyond which users share hosts. Turmoil's cost is per host per
/// tick, idle or not (measured: ~1.2 µs), so the world's hosts, not its users,
/// set the speed: 10 users on 10 hosts ran 513× real time, on 5 hosts 1000×,
/// and with the observer moved onto the server's host 1170×.
pub const MAX_CLIENT_HOSTS: usize = 5;
/// Before the end, every user polls once more and the observer probes presence.
pub const DRAIN_MS: u64 = 3_000;

/// How the world runs, besides the scenario.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    /// Turmoil's step; also the granularity of message latency.
    pub tick_ms: u64,
    /// The reference server's configuration (timers, bug switches).
    pub server: ServerConfig,
    /// The reference client's timers.
    pub client: ClientConfig,
    /// How often the observer probes `/api/online`.
    pub probe_interval_ms: u64,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            tick_ms: 10,
            server: ServerConfig::default(),
            client: ClientConfig::default(),
            probe_interval_ms: 5_000,
        }
    }
}

/// Client host names for `users` users.
pub fn client_hosts(users: usize) -> Vec<String> {
    let per_host = users_per_host(users);
    (0..users.div_ceil(per_host))
        .map(|h| format!("c{h}"))
        .collect()
}

/// The host a user runs on.
pub fn host_of(user: usize, users: usize) -> String {
    format!("c{}", user / users_per_host(users))
}

fn users_per_host(users: usize) -> usize {
    users.div_ceil(MAX_CLIENT_HOSTS).max(1)
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Everything observed.
    pub trace: Trace,
    /// A host's software failed (the server crashed, say): the run is invalid.
    pub error: Option<String>,
    /// Simulated time covered.
    pub simulated_ms: u64,
}

/// Runs `scenario` in turmoil and returns its trace.
pub fn simulate(scenario: &Scenario, options: &WorldOptions) -> Outcome {
    if let Some(fault) = scenario
        .faults
        .faults
        .iter()
        .find(|f| !f.kind.is_simulated())
    {
        return Outcome {
            trace: Trace::default(),
            error: Some(format!(
                "fault {:?} is not available in the simulation",
                fault.kind
            )),
            simulated_ms: 0,
        };
    }
    let end_ms = scenario.end_ms();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_millis(end_ms + 60_000))
        .tick_duration(Duration::from_millis(options.tick_ms))
        .min_message_latency(Duration::from_millis(scenario.faults.latency_ms_min))
        .max_message_latency(Duration::from_millis(
            scenario
                .faults
                .latency_ms_max
                .max(scenario.faults.latency_ms_min),
        ))
        .rng_seed(scenario.seed)
        .build();
    let recorder = Recorder::new(TraceClock::Simulated);

    let server_config = options.server.clone();
    let observer = Observer {
        recorder: recorder.clone(),
        every_ms: options.probe_interval_ms,
        end_ms,
        request_timeout: Duration::from_millis(options.client.request_timeout_ms),
    };
    sim.host(SERVER_HOST, move || {
        let (config, observer) = (server_config.clone(), observer.clone());
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", SERVER_PORT)).await?;
            // The observer lives on the server's host: its probes cross no
            // link, so no fault touches them, and it costs no host of its own
            // (turmoil's cost is per host per tick).
            tokio::spawn(observer.run(SimConnector {
                host: "127.0.0.1".into(),
                port: SERVER_PORT,
            }));
            server_under_test::serve(SimListener(listener), config).await?;
            Ok(())
        }
    });
    let connector = SimConnector {
        host: SERVER_HOST.into(),
        port: SERVER_PORT,
    };

    let mut per_host: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for user in 0..scenario.users.len() {
        per_host
            .entry(host_of(user, scenario.users.len()))
            .or_default()
            .push(user);
    }
    for (host, users) in per_host {
        let script = HostScript {
            scenario: scenario.clone(),
            users,
            connector: connector.clone(),
            recorder: recorder.clone(),
            client: options.client.clone(),
        };
        sim.client(host.as_str(), async move {
            script.run().await;
            Ok(())
        });
    }
    let mut links = Links::new(&scenario.faults);
    let mut heal_recorded = false;
    let error = loop {
        let now_ms = u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX);
        links.advance(now_ms, &sim, &recorder);
        if !heal_recorded && now_ms >= scenario.active_ms {
            recorder.record_at(now_ms, "world", What::HealPhase);
            heal_recorded = true;
        }
        match sim.step() {
            Ok(true) => break None,
            Ok(false) => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    Outcome {
        trace: recorder.trace(),
        error,
        simulated_ms: u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

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
    /// Probes through `connector` until the end of the scenario.
    pub async fn run<C: Connector>(self, connector: C) {
        let mut at_ms = self.every_ms;
        while at_ms < self.end_ms - DRAIN_MS {
            sleep_until_ms(&self.recorder, at_ms).await;
            probe_online(&connector, &self.recorder, self.request_timeout).await;
            at_ms += self.every_ms;
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
        let until = tokio::time::Instant::now()
            + Duration::from_millis(end_ms.saturating_sub(self.recorder.now_ms() + DRAIN_MS));
        let mut users: BTreeMap<usize, User<C>> = BTreeMap::new();
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
        // The agenda: scripted steps plus restarts after crashes, by time.
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
            if at_ms >= end_ms - DRAIN_MS {
                break; // what would happen after the drain is not part of the run
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
            match action {
                Action::Open => user.open(),
                Action::Close => user.close(),
                Action::Send { to, content } => user.send(&to, &content),
                Action::SendRaw { payload } => user.send_raw(
                    serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
                ),
                Action::Poll => user.poll().await,
                Action::Crash { down_ms } => {
                    let tabs = user.crash();
                    restarts.push((at_ms + down_ms, index, tabs));
                }
            }
        }
        // Drain: one last poll each, once everything has healed (L2, M5).
        sleep_until_ms(&self.recorder, end_ms - DRAIN_MS).await;
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
}

/// The link state of each client host, derived from the faults active on it.
struct Links<'a> {
    /// (time, starts?, fault), by time; ends before starts at equal times.
    transitions: Vec<(u64, bool, &'a Fault)>,
    next: usize,
    active: Vec<&'a Fault>,
}

impl<'a> Links<'a> {
    fn new(plan: &'a FaultPlan) -> Self {
        Self {
            transitions: plan.transitions(),
            next: 0,
            active: Vec::new(),
        }
    }

    fn advance(&mut self, now_ms: u64, sim: &turmoil::Sim<'_>, recorder: &Recorder) {
        while let Some(&(at_ms, starts, fault)) = self.transitions.get(self.next) {
            if at_ms > now_ms {
                break;
            }
            self.next += 1;
            if starts {
                self.active.push(fault);
            } else if let Some(i) = self.active.iter().position(|f| std::ptr::eq(*f, fault)) {
                self.active.remove(i);
            }
            recorder.record_at(at_ms, "world", What::fault(fault, starts));
            self.apply(&fault.host, sim);
        }
    }

    /// Sets the host's link to what its active faults add up to.
    fn apply(&self, host: &str, sim: &turmoil::Sim<'_>) {
        let kinds: Vec<FaultKind> = self
            .active
            .iter()
            .filter(|f| f.host == host)
            .map(|f| f.kind)
            .collect();
        sim.release(host, SERVER_HOST);
        sim.repair(host, SERVER_HOST);
        let to = kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Partition | FaultKind::PartitionToServer));
        let from = kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Partition | FaultKind::PartitionFromServer));
        match (to, from) {
            (true, true) => sim.partition(host, SERVER_HOST),
            (true, false) => sim.partition_oneway(host, SERVER_HOST),
            (false, true) => sim.partition_oneway(SERVER_HOST, host),
            (false, false) if kinds.contains(&FaultKind::Hold) => sim.hold(host, SERVER_HOST),
            (false, false) => {}
        }
    }
}

/// turmoil's listener as an axum listener, so `serve` runs on it unchanged.
pub struct SimListener(pub turmoil::net::TcpListener);

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

//! The simulated world, and the only module that drives turmoil's simulation:
//! one host for the server under test (with an observer probing `/api/online`
//! over loopback beside it), and client hosts carrying the users (grouped when
//! there are many). Faults from the plan are applied between simulation steps
//! and recorded in the trace.
//!
//! - [`server`]: how any server plugs in ([`Server`], [`Listener`], [`ServerEnv`])
//! - [`mod@reference`]: the reference server, plugged in through that same road
//! - `script` (re-exported): the users' and the observer's code, which [`play`]
//!   also runs on real TCP
//! - `links`: the fault plan as turmoil link state

mod links;
pub mod reference;
mod script;
pub mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::scenario::ServerTimers;
pub use crate::topology::{client_hosts, host_of, MAX_CLIENT_HOSTS, SERVER_HOST, SERVER_PORT};
pub use reference::Reference;
pub use script::{play, sleep_until_ms, HostScript, Observer};
pub use server::{Listener, Server, ServerEnv, ServerExit, SharedServer, SimClock};

use crate::client::ClientConfig;
use crate::net::transport::SimConnector;
use crate::scenario::Scenario;
use crate::trace::{Recorder, ServerRecord, Trace, TraceClock, What};
use links::Links;

/// Before the end, every user polls once more and the observer probes presence.
pub const DRAIN_MS: u64 = 3_000;
/// The default longest step while the network is idle ([`WorldOptions::idle_tick_ms`]).
pub const IDLE_TICK_MS: u64 = 250;

/// How the world runs, besides the scenario: which server, with which timers,
/// and the client's and observer's pace.
#[derive(Clone)]
pub struct WorldOptions {
    /// Turmoil's step; also the granularity of message latency.
    pub tick_ms: u64,
    /// The longest step while no message is on its way and nothing the
    /// scenario scripted is due (`tick_ms` turns the long steps off). Hosts'
    /// timers still fire at their instants inside a long step; a message one
    /// sends meanwhile (a ping, a reconnect, a poll) is handed over at the
    /// step's end, up to this much later than at `tick_ms`.
    pub idle_tick_ms: u64,
    /// The server under test.
    pub server: SharedServer,
    /// The timers the server runs with, as far as the harness must assume them.
    pub timers: ServerTimers,
    /// The reference client's timers.
    pub client: ClientConfig,
    /// How often the observer probes `/api/online`.
    pub probe_interval_ms: u64,
}

impl std::fmt::Debug for WorldOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldOptions")
            .field("tick_ms", &self.tick_ms)
            .field("idle_tick_ms", &self.idle_tick_ms)
            .field("timers", &self.timers)
            .field("client", &self.client)
            .field("probe_interval_ms", &self.probe_interval_ms)
            .finish_non_exhaustive()
    }
}

impl Default for WorldOptions {
    /// The reference server with no bug switch.
    fn default() -> Self {
        Self::with_server(Reference::default())
    }
}

impl WorldOptions {
    /// A world around the reference server with these bug switches.
    pub fn reference(bugs: &[server_under_test::Bug]) -> Self {
        Self::with_server(Reference::with_bugs(bugs))
    }

    /// The reference server as a contract v2 server (`--auth jwt` with
    /// [`SIM_JWT_SECRET`]), these bug switches on, and a client that mints
    /// its tokens with the same secret on the simulated clock.
    pub fn reference_v2(bugs: &[server_under_test::Bug]) -> Self {
        let mut world = Self::with_server(Reference::new(server_under_test::Config {
            auth: Some(
                server_under_test::TokenKey::new(SIM_JWT_SECRET.to_vec())
                    .expect("a non-empty secret"),
            ),
            bugs: bugs.iter().copied().collect(),
            ..server_under_test::Config::default()
        }));
        world.client.tokens = Some(crate::token::TokenIssuer::new(
            SIM_JWT_SECRET.to_vec(),
            crate::token::IssuerClock::Simulated {
                epoch_unix_ms: server::SIM_EPOCH_UNIX_MS,
            },
        ));
        world
    }

    /// The reference server for `scenario`: v2 when its users present tokens
    /// (a saved v2 scenario replays in a v2 world with nothing else said).
    pub fn reference_for(
        scenario: &crate::scenario::Scenario,
        bugs: &[server_under_test::Bug],
    ) -> Self {
        if scenario.is_v2() {
            Self::reference_v2(bugs)
        } else {
            Self::reference(bugs)
        }
    }

    /// A world around the reference server as configured: long steps while
    /// the network is idle (what it sends follows from what it receives, or
    /// from its heartbeat, whose lateness costs nothing).
    pub fn with_server(reference: Reference) -> Self {
        let timers = reference.timers();
        Self {
            idle_tick_ms: IDLE_TICK_MS,
            ..Self::foreign(Arc::new(reference), timers)
        }
    }

    /// A world around any server, assumed to run with `timers`; every step
    /// is `tick_ms` long. A server whose own timers send what the contract
    /// times (pushes flushed every 50 ms, say) must have them handed over
    /// on time; one whose sends follow what it receives may set
    /// `idle_tick_ms` (as the reference does) and run several times faster.
    pub fn foreign(server: SharedServer, timers: ServerTimers) -> Self {
        Self {
            tick_ms: 10,
            idle_tick_ms: 10,
            server,
            timers,
            client: ClientConfig::default(),
            probe_interval_ms: 5_000,
        }
    }
}

/// The HS256 secret the v2 reference server and the client share in the
/// simulation.
pub const SIM_JWT_SECRET: &[u8] = b"the simulation's shared secret";

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Everything observed.
    pub trace: Trace,
    /// A host's software failed (the server crashed, say): the run is invalid.
    pub error: Option<String>,
    /// Simulated time covered.
    pub simulated_ms: u64,
    /// What the server told of itself through [`ServerEnv::record`] (empty
    /// for a server that does not).
    pub server_log: Vec<ServerRecord>,
    /// Each connection's Socket.IO sid (`user#n` → sid), to pair it with the
    /// server's log; never rendered (sids are random).
    pub sids: std::collections::BTreeMap<String, String>,
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
                "fault {} is not available in the simulation",
                fault.kind.name()
            )),
            simulated_ms: 0,
            server_log: Vec::new(),
            sids: Default::default(),
        };
    }
    let end_ms = scenario.end_ms();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_millis(end_ms.saturating_add(60_000)))
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
    let env = ServerEnv::new(scenario.seed, options.timers, Some(recorder.clone()));
    let durable = env.durable_state();
    host_server(&mut sim, scenario, options, &recorder, env);
    host_clients(&mut sim, scenario, options, &recorder);

    let mut links = Links::new(&scenario.faults);
    let mut heal_recorded = false;
    let mut pace = Pace::new(scenario, options);
    let error = loop {
        let now_ms = u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX);
        links.advance(now_ms, &mut sim, &recorder, &durable);
        let idle = sim.is_network_idle();
        let woken = if idle {
            recorder.next_wake(now_ms)
        } else {
            None
        };
        sim.set_tick(Duration::from_millis(pace.next_tick(now_ms, idle, woken)));
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
        trace: recorder.take_trace(),
        error,
        simulated_ms: u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX),
        server_log: recorder.server_log(),
        sids: recorder.sids(),
    }
}

/// How far each step moves time: `tick_ms`, or, while no message is on its
/// way, as far as `idle_tick_ms` without passing the fine step in which
/// anything the scenario scripted is due (a step, a device waking, a fault
/// starting or ending, the heal, a probe, the drain) or a timer of the
/// reference client fires (it tells the recorder) — so what the harness's
/// side does happens as it would with fine steps, and turmoil's per-host
/// cost is paid once per long step instead of once per tick. Only the
/// server's own timers (pings, its ack timeout) and, on the client, a
/// polling transport's request timeouts (a long-poll unanswered past the
/// ping timeout, a POST past its request timeout) may fire inside a long
/// step; what follows them is handed over at its end. Those two are not
/// told: each poll would cut a long step at a deadline that almost never
/// comes, for a transport close (the reconnect's own timer is told) at most
/// one long step late.
struct Pace {
    fine: u64,
    idle: u64,
    /// When something scripted is due, sorted.
    due: Vec<u64>,
    next: usize,
}

impl Pace {
    fn new(scenario: &Scenario, options: &WorldOptions) -> Self {
        let end_ms = scenario.end_ms();
        let mut due = vec![scenario.active_ms, end_ms.saturating_sub(DRAIN_MS)];
        due.push(end_ms.saturating_sub(DRAIN_MS / 3));
        for step in &scenario.steps {
            due.push(step.at_ms);
            match step.action {
                crate::scenario::Action::Crash { down_ms } => {
                    due.push(step.at_ms.saturating_add(down_ms))
                }
                crate::scenario::Action::Freeze { ms } => due.push(step.at_ms.saturating_add(ms)),
                _ => {}
            }
        }
        for fault in &scenario.faults.faults {
            due.extend([fault.at_ms, fault.end_ms()]);
        }
        let every = options.probe_interval_ms.max(1);
        due.extend((1..=end_ms / every).map(|k| k * every));
        due.sort_unstable();
        due.dedup();
        Self {
            fine: options.tick_ms.max(1),
            idle: options.idle_tick_ms.max(options.tick_ms).max(1),
            due,
            next: 0,
        }
    }

    /// The next step's length at `now_ms`; `woken`: when the reference
    /// client's next timer is due (it tells the recorder).
    fn next_tick(&mut self, now_ms: u64, network_idle: bool, woken: Option<u64>) -> u64 {
        if !network_idle || self.idle <= self.fine {
            return self.fine;
        }
        while self.due.get(self.next).is_some_and(|&at| at < now_ms) {
            self.next += 1;
        }
        // Stop at the fine boundary at or before what is due next, and take
        // the fine step that contains it from there.
        let due = self.due.get(self.next).copied().into_iter().chain(woken);
        let limit = due.min().map_or(u64::MAX, |at| at / self.fine * self.fine);
        let room = limit.saturating_sub(now_ms) / self.fine * self.fine;
        room.clamp(self.fine, self.idle / self.fine * self.fine)
    }
}

/// The server's host: the server under test on its port, and the observer
/// beside it.
fn host_server(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    options: &WorldOptions,
    recorder: &Recorder,
    env: ServerEnv,
) {
    let observer = Observer {
        recorder: recorder.clone(),
        every_ms: options.probe_interval_ms,
        end_ms: scenario.end_ms(),
        request_timeout: Duration::from_millis(options.client.request_timeout_ms),
    };
    let server = Arc::clone(&options.server);
    sim.host(SERVER_HOST, move || {
        let (server, env, observer) = (Arc::clone(&server), env.clone(), observer.clone());
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", SERVER_PORT)).await?;
            // The observer lives on the server's host: its probes cross no
            // link, so no fault touches them, and it costs no host of its own
            // (turmoil's cost is per host per tick).
            tokio::spawn(observer.run(SimConnector {
                host: "127.0.0.1".into(),
                port: SERVER_PORT,
            }));
            match server.serve(Listener::new(listener), env).await {
                None => Ok(()),
                Some(error) => Err(format!("the server stopped: {error}").into()),
            }
        }
    });
}

/// The client hosts, each playing its users' part of the scenario.
fn host_clients(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    options: &WorldOptions,
    recorder: &Recorder,
) {
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
}

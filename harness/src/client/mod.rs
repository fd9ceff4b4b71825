//! The reference client: a socket.io-client look-alike written against
//! [`Connector`], so the same code runs on turmoil's and tokio's TCP.
//!
//! A [`User`] owns tabs (each a socket.io-client instance with its own Engine.IO
//! session and reconnection), a mailbox poll loop with a cursor (L1–L3), and a
//! de-duplicating inbox (M5). Every observable step is recorded in the trace.

mod http;
mod link;
mod session;

pub use http::{probe_online, probe_online_as};

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::contract::Message;
use crate::net::transport::Connector;
use crate::scenario::UserSpec;
use crate::token::{TokenIssuer, TokenPolicy};
use crate::trace::{Recorder, Via, What};
use session::{End, Session};

/// Client timers, with the seed's values as defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Mailbox poll period (L3: the seed's "0–30 second delay").
    pub poll_interval_ms: u64,
    /// First reconnect delay (seed: 1 s), doubled per attempt.
    pub reconnect_delay_ms: u64,
    /// Longest reconnect delay (socket.io-client default 5 s).
    pub reconnect_delay_max_ms: u64,
    /// Attempts before giving up (seed: 5).
    pub reconnect_attempts: u32,
    /// How long an HTTP request may take.
    pub request_timeout_ms: u64,
    /// How long opening a session, CONNECT included, may take (socket.io-client `timeout`).
    pub connect_timeout_ms: u64,
    /// How long `send_message` waits for its ack.
    pub ack_timeout_ms: u64,
    /// Contract v2: mints the tokens users with a token policy present, and
    /// the Bearer token of their polls. `None` for a v1 world.
    pub tokens: Option<TokenIssuer>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: crate::contract::POLL_INTERVAL_MS,
            reconnect_delay_ms: 1_000,
            reconnect_delay_max_ms: 5_000,
            reconnect_attempts: 5,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 20_000,
            ack_timeout_ms: 10_000,
            tokens: None,
        }
    }
}

/// What a user's client shares between its tabs and its poll loop.
pub(crate) struct Shared<C> {
    pub(super) connector: C,
    pub(super) recorder: Recorder,
    pub(super) config: ClientConfig,
    pub(super) spec: UserSpec,
    pub(super) next_conn: AtomicU32,
    pub(super) inbox: Mutex<Inbox>,
    pub(super) rng: Mutex<SmallRng>,
    /// While the device sleeps ([`User::freeze`]): when it wakes.
    pub(super) frozen_until: Mutex<Option<Instant>>,
    /// When the user's client started: a background tab's timer grid counts
    /// from it.
    pub(super) born: Instant,
    /// socket.io-client's send buffer ([`UserSpec::socketio_js`]): sends
    /// waiting for a connected tab, oldest first.
    pub(super) outbox: Mutex<VecDeque<Outgoing>>,
}

/// How many times socket.io-client's `retries` sends a message again after
/// its first attempt ([`UserSpec::socketio_js`]).
pub const RETRIES: u32 = 3;

/// A `send_message` on its way, with what a retry needs.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(super) client_id: String,
    pub(super) to: String,
    pub(super) content: String,
    /// 0 for the first attempt.
    pub(super) attempt: u32,
}

/// [`Shared::fires_at`] for a client started at `born`.
fn fire_time(background: bool, born: Instant, at: Instant) -> Instant {
    if !background {
        return at;
    }
    let since = u64::try_from(at.saturating_duration_since(born).as_millis()).unwrap_or(u64::MAX);
    let grid = if since < 300_000 { 1_000 } else { 60_000 };
    born + Duration::from_millis(since.div_ceil(grid).saturating_mul(grid))
}

/// Ids already shown, and the mailbox cursor.
#[derive(Default)]
pub(super) struct Inbox {
    pub(super) seen: BTreeSet<u64>,
    pub(super) cursor: u64,
}

impl<C: Connector> Shared<C> {
    pub(crate) fn record(&self, actor: &str, what: What) {
        self.recorder.record(actor, what);
    }

    /// When a timer set for `at` fires on this user's device: at once in a
    /// foreground tab; in a background tab ([`UserSpec::background`]) on the
    /// next whole second since the client started, and on the next whole
    /// minute once it has been hidden five minutes (Chrome's timer
    /// throttling and intensive throttling). Events that arrive (a ping, a
    /// push) are not timers: they are handled at once either way.
    pub(crate) fn fires_at(&self, at: Instant) -> Instant {
        let fires = fire_time(self.spec.background, self.born, at);
        self.wake_at(fires);
        fires
    }

    /// `after` from now, as a timeout's limit: the simulated world is told
    /// when it will fire (see [`Shared::wake_at`]).
    pub(crate) fn timer(&self, after: Duration) -> Duration {
        self.wake_at(Instant::now() + after);
        after
    }

    /// Tells the simulated world a timer of this client fires at `at`, so
    /// what it sends then leaves on time.
    fn wake_at(&self, at: Instant) {
        let ahead = u64::try_from(at.saturating_duration_since(Instant::now()).as_millis())
            .unwrap_or(u64::MAX);
        self.recorder
            .wake_at(self.recorder.now_ms().saturating_add(ahead));
    }

    /// The CONNECT auth payload of a v2 user (`{"token": …}`, A2): `None`
    /// for a v1 client and for [`TokenPolicy::Absent`].
    pub(crate) fn connect_auth(&self) -> Option<serde_json::Value> {
        let (issuer, policy) = (self.config.tokens.as_ref()?, self.spec.token?);
        let token = issuer.mint(policy, &self.spec.name)?;
        Some(serde_json::json!({ "token": token }))
    }

    /// A poll's identity: the `username` header (v1), or a valid Bearer token
    /// for the user (v2, A3).
    pub(crate) fn poll_identity(&self) -> (&'static str, String) {
        let name = &self.spec.name;
        let bearer = (self.spec.token.is_some())
            .then_some(self.config.tokens.as_ref())
            .flatten()
            .and_then(|issuer| issuer.mint(TokenPolicy::Valid, name));
        match bearer {
            Some(token) => ("authorization", format!("Bearer {token}")),
            None => ("username", name.clone()),
        }
    }

    /// Records a message's arrival; true when it is new (M5 de-duplication).
    pub(crate) fn receive(&self, actor: &str, message: &Message, via: Via) {
        self.receive_at(self.recorder.now_ms(), actor, message, via);
    }

    /// Records a message's arrival at `at_ms`: the entries of one poll arrive
    /// with the poll, at its time (on real TCP the clock could otherwise tick
    /// between the poll and its entries, and the checkers would see the entry
    /// arrive after the poll that returned it).
    pub(crate) fn receive_at(&self, at_ms: u64, actor: &str, message: &Message, via: Via) {
        let duplicate = !self.inbox.lock().unwrap().seen.insert(message.id);
        self.recorder.record_at(
            at_ms,
            actor,
            What::Received {
                id: message.id,
                from: message.from.clone(),
                to: message.to.clone(),
                via,
                duplicate,
            },
        );
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }
}

/// A command to a tab.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Outgoing),
    SendRaw {
        client_id: String,
        payload: Value,
    },
    Close,
    Crash,
    /// The device sleeps until `until`: nothing read, written or timed.
    Freeze {
        until: Instant,
    },
}

/// One socket.io-client instance: a task that keeps a session open, reconnecting.
struct Tab {
    commands: mpsc::UnboundedSender<Command>,
    connected: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tab {
    fn is_live(&self) -> bool {
        !self.task.is_finished()
    }
}

/// A user and their client.
pub struct User<C: Connector> {
    shared: Arc<Shared<C>>,
    tabs: Vec<Tab>,
    next_client_id: u32,
}

impl<C: Connector> User<C> {
    /// A user whose client talks through `connector`; `seed` drives its backoff jitter.
    pub fn new(
        connector: C,
        recorder: Recorder,
        config: ClientConfig,
        spec: UserSpec,
        seed: u64,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                connector,
                recorder,
                config,
                spec,
                next_conn: AtomicU32::new(0),
                inbox: Mutex::default(),
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
                frozen_until: Mutex::new(None),
                born: Instant::now(),
                outbox: Mutex::default(),
            }),
            tabs: Vec::new(),
            next_client_id: 0,
        }
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// Opens a new tab.
    pub fn open(&mut self) {
        let (commands, rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run_tab(
            Arc::clone(&self.shared),
            rx,
            Arc::clone(&connected),
        ));
        self.tabs.push(Tab {
            commands,
            connected,
            task,
        });
    }

    /// Closes the oldest live tab cleanly.
    pub fn close(&mut self) {
        if let Some(index) = self.tabs.iter().position(Tab::is_live) {
            let tab = self.tabs.remove(index);
            let _ = tab.commands.send(Command::Close);
        }
    }

    fn next_client_id(&mut self) -> String {
        self.next_client_id += 1;
        format!("{}-{}", self.shared.spec.name, self.next_client_id)
    }

    fn connected_tab(&self) -> Option<&Tab> {
        self.tabs
            .iter()
            .find(|t| t.is_live() && t.connected.load(Ordering::SeqCst))
    }

    /// Sends `content` to `to` from the oldest connected tab.
    pub fn send(&mut self, to: &str, content: &str) {
        let client_id = self.next_client_id();
        match self.connected_tab() {
            Some(tab) => {
                let _ = tab.commands.send(Command::Send(Outgoing {
                    client_id,
                    to: to.to_owned(),
                    content: content.to_owned(),
                    attempt: 0,
                }));
            }
            None if self.shared.spec.socketio_js => {
                self.shared.record(
                    &self.shared.spec.name,
                    What::Queued {
                        client_id: client_id.clone(),
                        to: to.to_owned(),
                    },
                );
                self.shared.outbox.lock().unwrap().push_back(Outgoing {
                    client_id,
                    to: to.to_owned(),
                    content: content.to_owned(),
                    attempt: 0,
                });
            }
            None => self.shared.record(
                &self.shared.spec.name,
                What::NotSent {
                    client_id,
                    to: to.to_owned(),
                },
            ),
        }
    }

    /// Sends a malformed payload (B1) from the oldest connected tab.
    pub fn send_raw(&mut self, payload: Value) {
        let client_id = self.next_client_id();
        if let Some(tab) = self.connected_tab() {
            let _ = tab.commands.send(Command::SendRaw { client_id, payload });
        }
    }

    /// The client process dies: every tab drops its sockets without a word.
    /// Returns how many tabs were live, to reopen after the restart.
    pub fn crash(&mut self) -> usize {
        let live: Vec<Tab> = self.tabs.drain(..).filter(Tab::is_live).collect();
        for tab in &live {
            let _ = tab.commands.send(Command::Crash);
        }
        live.len()
    }

    /// The device sleeps for `ms`: every live tab stops where it is, and the
    /// poll loop with them; all resume at the same instant.
    pub fn freeze(&mut self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        self.shared
            .record(&self.shared.spec.name, What::Frozen { ms });
        *self.shared.frozen_until.lock().unwrap() = Some(until);
        for tab in self.tabs.iter().filter(|t| t.is_live()) {
            let _ = tab.commands.send(Command::Freeze { until });
        }
    }

    /// Polls the mailbox once (L1, L2).
    pub async fn poll(&self) {
        http::poll_mailbox(&self.shared).await;
    }

    /// Runs the regular poll loop until `until` (L3): first poll after `offset`.
    pub fn spawn_poll_loop(&self, offset: Duration, until: Instant) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let period = Duration::from_millis(shared.config.poll_interval_ms);
            let mut next = Instant::now() + offset;
            while next < until {
                sleep_until(shared.fires_at(next)).await;
                // A sleeping device polls when it wakes, not before.
                let frozen = *shared.frozen_until.lock().unwrap();
                if let Some(wake) = frozen.filter(|w| *w > Instant::now()) {
                    sleep_until(wake).await;
                }
                http::poll_mailbox(&shared).await;
                next += period;
            }
        })
    }

    /// Stops every tab without recording (the end of a run).
    pub fn shutdown(&mut self) {
        for tab in self.tabs.drain(..) {
            tab.task.abort();
        }
    }
}

async fn run_tab<C: Connector>(
    shared: Arc<Shared<C>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    connected: Arc<AtomicBool>,
) {
    let mut failures = 0;
    loop {
        let conn_no = shared.next_conn.fetch_add(1, Ordering::SeqCst) + 1;
        let label = format!("{}#{conn_no}", shared.spec.name);
        let mut session = Session {
            shared: &shared,
            label,
            connected: &connected,
            next_ack_id: 0,
            pending: Vec::new(),
            acks_due: Vec::new(),
            early: Vec::new(),
        };
        let end = session.run(&mut commands).await;
        connected.store(false, Ordering::SeqCst);
        match end {
            End::ByClient | End::Refused => return,
            End::Lost => failures = 0,
            End::OpenFailed => {}
        }
        failures += 1;
        if failures > shared.config.reconnect_attempts {
            shared.record(&shared.spec.name, What::GaveUp);
            return;
        }
        let delay_ms = {
            let base = shared
                .config
                .reconnect_delay_ms
                .saturating_mul(1 << (failures - 1).min(16));
            let capped = base.min(shared.config.reconnect_delay_max_ms);
            // socket.io-client's randomizationFactor 0.5.
            let jitter = shared.rng.lock().unwrap().random_range(0..=capped / 2);
            (capped - capped / 4 + jitter).min(shared.config.reconnect_delay_max_ms)
        };
        shared.record(
            &shared.spec.name,
            What::ReconnectScheduled {
                attempt: failures,
                delay_ms,
            },
        );
        // Commands that arrive while down: a close or crash ends the tab.
        let mut wake = Instant::now() + Duration::from_millis(delay_ms);
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Close) | Some(Command::Crash) => return,
                    // A sleeping device's reconnect timer cannot fire.
                    Some(Command::Freeze { until }) => wake = wake.max(until),
                    Some(_) => {}
                },
                _ = sleep_until(shared.fires_at(wake)) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_tabs_timers_fire_on_a_second_then_a_minute_grid() {
        let born = Instant::now();
        let at = |ms: u64| born + Duration::from_millis(ms);
        // A foreground tab: when asked.
        assert_eq!(fire_time(false, born, at(1_234)), at(1_234));
        // Hidden under five minutes: the next whole second.
        assert_eq!(fire_time(true, born, at(1_234)), at(2_000));
        assert_eq!(fire_time(true, born, at(3_000)), at(3_000));
        // Hidden longer: the next whole minute.
        assert_eq!(fire_time(true, born, at(300_001)), at(360_000));
        assert_eq!(fire_time(true, born, at(420_000)), at(420_000));
    }
}

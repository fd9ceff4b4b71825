//! How a server enters the simulated world: the listener it serves on, the
//! environment it should take time and randomness from, and the [`Server`]
//! trait every server is plugged in through — the reference server included.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::scenario::ServerTimers;
use crate::trace::{Recorder, ServerEvent};

/// turmoil's TCP listener, as an axum listener: `axum::serve(listener, app)`
/// works on it unchanged. Servers not built on axum take the raw listener with
/// [`Listener::into_turmoil`].
pub struct Listener(turmoil::net::TcpListener);

impl Listener {
    pub(crate) fn new(inner: turmoil::net::TcpListener) -> Self {
        Self(inner)
    }

    /// The raw turmoil listener (`accept()` gives `turmoil::net::TcpStream`s,
    /// which implement tokio's `AsyncRead` and `AsyncWrite`).
    pub fn into_turmoil(self) -> turmoil::net::TcpListener {
        self.0
    }
}

impl axum::serve::Listener for Listener {
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

/// What a server needs from the world to be simulated faithfully: a clock that
/// runs on simulated time, randomness drawn from the run's seed, the timers the
/// harness assumes, and (optionally) a way to tell the harness what the server
/// itself saw.
///
/// A server that reads the wall clock (`SystemTime::now()`), the OS random
/// source (`rand::rng()`) or iterates a `HashMap` into what it sends makes its
/// traces differ run to run; the campaign notices and says so, but cannot
/// replay such a failure. Take time and randomness from here instead.
#[derive(Clone)]
pub struct ServerEnv {
    seed: u64,
    timers: ServerTimers,
    epoch_unix_ms: u64,
    recorder: Option<Recorder>,
    durable: Durable,
}

/// What a server keeps across restarts that keep its store: one value per
/// type, for one run.
#[derive(Clone, Default)]
pub(crate) struct Durable(Arc<Mutex<BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Durable {
    /// A restart that loses the store: everything kept is gone.
    pub(crate) fn lose(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl std::fmt::Debug for ServerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEnv")
            .field("seed", &self.seed)
            .field("timers", &self.timers)
            .field("epoch_unix_ms", &self.epoch_unix_ms)
            .finish_non_exhaustive()
    }
}

/// The simulated Unix time at the start of every run: 2025-10-09T00:00:00Z,
/// the seed document's date.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_759_968_000_000;

impl ServerEnv {
    pub(crate) fn new(seed: u64, timers: ServerTimers, recorder: Option<Recorder>) -> Self {
        Self {
            seed,
            timers,
            epoch_unix_ms: SIM_EPOCH_UNIX_MS,
            recorder,
            durable: Durable::default(),
        }
    }

    pub(crate) fn durable_state(&self) -> Durable {
        self.durable.clone()
    }

    /// What the server keeps in its store (mailboxes, message ids, retry
    /// memory: what the seed kept in Redis), made by `make` at the first
    /// call of the run and the same value at every later call — after a
    /// restart too, when the restart keeps the store
    /// ([`FaultKind::Restart`](crate::faults::FaultKind::Restart) with
    /// `keeps_store`). A restart that loses the store drops it, and the next
    /// call makes a fresh one. Everything else a server holds is lost at
    /// every restart, as a process's memory is.
    pub fn durable<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut kept = self.durable.0.lock().unwrap_or_else(|e| e.into_inner());
        let value = kept
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(make()) as Arc<dyn Any + Send + Sync>);
        Arc::clone(value)
            .downcast::<T>()
            .expect("kept under its own type id")
    }

    /// The run's seed, for servers that seed their own generators.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A generator seeded from the run (the same every time the seed is).
    pub fn rng(&self) -> SmallRng {
        SmallRng::seed_from_u64(self.seed ^ 0x5EED_0F5E_57E7_u64)
    }

    /// The timers the harness assumes the server runs with.
    pub fn timers(&self) -> ServerTimers {
        self.timers
    }

    /// Unix milliseconds now — at the server's start, or at its restart;
    /// add the runtime's elapsed time (`tokio::time::Instant`, simulated here,
    /// and starting afresh with a restarted host) for a message's `ts`.
    pub fn epoch_unix_ms(&self) -> u64 {
        let since_start = turmoil::sim_elapsed().unwrap_or_default();
        self.epoch_unix_ms
            .saturating_add(u64::try_from(since_start.as_millis()).unwrap_or(u64::MAX))
    }

    /// The clock to stamp messages with: simulated time as Unix milliseconds.
    pub fn clock(&self) -> SimClock {
        SimClock {
            epoch_unix_ms: self.epoch_unix_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    /// Tells the harness what the server itself saw (ground truth for the
    /// referee, never read by the black-box checkers). A no-op where nobody
    /// listens. Names are the contract's usernames; `sid` is any stable text
    /// the server uses for the connection.
    pub fn record(&self, event: ServerEvent) {
        if let Some(recorder) = &self.recorder {
            recorder.record_server(event);
        }
    }

    /// Whether [`ServerEnv::record`] goes anywhere (skip building events when not).
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }
}

/// Simulated time as Unix milliseconds, from [`ServerEnv::clock`].
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    epoch_unix_ms: u64,
    start: tokio::time::Instant,
}

impl SimClock {
    /// Now, in Unix milliseconds.
    pub fn now_unix_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.epoch_unix_ms.saturating_add(elapsed)
    }
}

/// How a server's serve future may end: `()`, or any `Result` whose error
/// prints. An end before the run's end is reported as a failed run.
pub trait ServerExit {
    /// The error, if the server stopped with one.
    fn into_error(self) -> Option<String>;
}

impl ServerExit for () {
    fn into_error(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> ServerExit for Result<(), E> {
    fn into_error(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// The future a [`Server`] starts (turmoil runs each host on one thread, so it
/// need not be `Send`).
pub type Serving = Pin<Box<dyn Future<Output = Option<String>>>>;

/// A chat server the world can host. Closures `Fn(Listener, ServerEnv) -> F`
/// are servers, for any `F: IntoFuture` whose output is a [`ServerExit`]:
/// `|listener, env| my_chat::serve(listener, env)` or
/// `|listener, _env| axum::serve(listener, my_chat::app())`.
pub trait Server: Send + Sync {
    /// Starts serving on `listener`; called again if the host restarts.
    fn serve(&self, listener: Listener, env: ServerEnv) -> Serving;
}

impl<F, Fut> Server for F
where
    F: Fn(Listener, ServerEnv) -> Fut + Send + Sync,
    Fut: IntoFuture,
    Fut::IntoFuture: 'static,
    Fut::Output: ServerExit,
{
    fn serve(&self, listener: Listener, env: ServerEnv) -> Serving {
        let serving = self(listener, env).into_future();
        Box::pin(async move { serving.await.into_error() })
    }
}

/// A server shared between runs (and threads).
pub type SharedServer = Arc<dyn Server>;

//! The reference server (`server-under-test`), plugged into the world through
//! the same [`Server`] trait as anyone's server: no private road.

use std::sync::Arc;

use server_under_test::{Bug, Config, Observed, Observer};

use super::server::{Listener, Server, ServerEnv, Serving};
use crate::scenario::ServerTimers;
use crate::trace::ServerEvent;

/// The reference server with a configuration (timers, bug switches).
#[derive(Clone, Debug, Default)]
pub struct Reference {
    config: Config,
}

impl Reference {
    /// The reference server as configured.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// The reference server with default timers and these bug switches on.
    pub fn with_bugs(bugs: &[Bug]) -> Self {
        Self::new(Config {
            bugs: bugs.iter().copied().collect(),
            ..Config::default()
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The timers it runs with.
    pub fn timers(&self) -> ServerTimers {
        ServerTimers {
            ping_interval_ms: self.config.ping_interval_ms,
            ping_timeout_ms: self.config.ping_timeout_ms,
            ack_timeout_ms: self.config.ack_timeout_ms,
        }
    }
}

impl Server for Reference {
    fn serve(&self, listener: Listener, env: ServerEnv) -> Serving {
        let config = Config {
            // Message `ts` counts from the world's epoch on simulated time.
            epoch_unix_ms: env.epoch_unix_ms(),
            ..self.config.clone()
        };
        // The store outlives a restart that keeps it; a fresh one counts its
        // ids from the (re)start's time, so none is ever handed out twice.
        let store: Arc<dyn server_under_test::Store> =
            env.durable(|| server_under_test::MemoryStore::booted_at(config.epoch_unix_ms));
        let observer = env.is_recording().then(|| {
            Arc::new(move |seen: Observed| env.record(ground_truth(seen))) as Arc<dyn Observer>
        });
        Box::pin(async move {
            server_under_test::serve_with_store(listener, config, observer, store)
                .await
                .err()
                .map(|e| e.to_string())
        })
    }
}

/// The reference server's own record, in the harness's terms.
fn ground_truth(seen: Observed) -> ServerEvent {
    match seen {
        Observed::Registered { user, sid } => ServerEvent::Registered { user, sid },
        Observed::Unregistered { user, sid, reason } => {
            ServerEvent::Unregistered { user, sid, reason }
        }
        Observed::NotRegistered { sid, reason } => ServerEvent::NotRegistered { sid, reason },
        Observed::Accepted {
            id,
            from,
            to,
            delivery,
        } => ServerEvent::Accepted {
            id,
            from,
            to,
            delivery: match delivery {
                server_under_test::store::Delivery::Websocket => "websocket",
                server_under_test::store::Delivery::Polling => "polling",
            }
            .into(),
        },
        Observed::Pushed { id, sid } => ServerEvent::Pushed { id, sid },
        Observed::PushAcked { id } => ServerEvent::PushAcked { id },
        Observed::Stored { id, to, reason } => ServerEvent::Stored {
            id,
            to,
            reason: reason.into(),
        },
    }
}

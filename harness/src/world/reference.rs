//! The reference server (`server-under-test`), plugged into the world through
//! the same [`Server`] trait as anyone's server: no private road.

use server_under_test::{Bug, Config};

use super::server::{Listener, Server, ServerEnv, ServerTimers, Serving};

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
        Box::pin(async move {
            server_under_test::serve(listener, config)
                .await
                .err()
                .map(|e| e.to_string())
        })
    }
}

//! Server time for message `ts` (M3), read from the async runtime's clock.
//!
//! Inside turmoil the runtime clock is simulated, so `ts` repeats run to run; on
//! real TCP it advances with real time from the wall-clock epoch read once at start.

use tokio::time::Instant;

/// Unix milliseconds = a fixed epoch + the runtime's elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch_unix_ms: u64,
    start: Instant,
}

impl Clock {
    /// Starts the clock now at `epoch_unix_ms`.
    pub fn start(epoch_unix_ms: u64) -> Self {
        Self {
            epoch_unix_ms,
            start: Instant::now(),
        }
    }

    /// The current server time in Unix milliseconds.
    pub fn now_unix_ms(&self) -> u64 {
        let elapsed_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.epoch_unix_ms.saturating_add(elapsed_ms)
    }
}

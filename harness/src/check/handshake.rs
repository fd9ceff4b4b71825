//! `handshake`: one Engine.IO polling handshake, for the server's timers (T1).

use tokio::time::Instant;

use super::probes::{finding, get};
use super::{AnnouncedTimers, CheckOptions, Names, Run};
use crate::net::packet::{EioPacket, Handshake};
use crate::net::transport::TcpConnector;
use crate::spec::Clause;
use crate::trace::{Recorder, TraceClock};

/// Longest pingInterval or pingTimeout the check will wait out.
pub const TIMER_CAP_MS: u64 = 60_000;

/// One polling handshake: T1's first step, and the pingInterval and
/// pingTimeout the server announces (cut to [`TIMER_CAP_MS`]), which the
/// runs after it wait by.
pub(super) async fn handshake_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
) -> (Run, Option<AnnouncedTimers>) {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let patience = options.patience();
    let name = names.user("probe");
    let (event, response) = get(
        connector,
        &recorder,
        "/socket.io/?EIO=4&transport=polling",
        Some(&name),
        patience,
        None,
    )
    .await;
    let open = response.as_ref().filter(|r| r.status == 200).and_then(|r| {
        EioPacket::decode_payload(&r.body)
            .ok()?
            .into_iter()
            .find_map(|p| match p {
                EioPacket::Open(h) => Some(h),
                _ => None,
            })
    });
    let (violations, timers) = match open {
        Some(Handshake {
            ping_interval,
            ping_timeout,
            max_payload,
            upgrades,
            ..
        }) => {
            let mut found = Vec::new();
            if !upgrades.iter().any(|u| u == "websocket") {
                found.push(finding(
                    Clause::T1,
                    &event,
                    "the polling handshake does not offer the websocket upgrade".into(),
                ));
            }
            // A hostile or broken server may announce 2^53 ms: the check waits
            // at most TIMER_CAP_MS per timer and says so in the report.
            let clamped = ping_interval > TIMER_CAP_MS || ping_timeout > TIMER_CAP_MS;
            let timers = AnnouncedTimers {
                ping_interval_ms: ping_interval.min(TIMER_CAP_MS),
                ping_timeout_ms: ping_timeout.min(TIMER_CAP_MS),
                max_payload,
                clamped_from: clamped.then_some((ping_interval, ping_timeout)),
            };
            (found, Some(timers))
        }
        None => (
            vec![finding(
                Clause::T1,
                &event,
                "GET /socket.io/?EIO=4&transport=polling did not answer an Engine.IO v4 open packet".into(),
            )],
            None,
        ),
    };
    let run = Run::new("handshake", None, recorder.trace(), violations, started);
    (run, timers)
}

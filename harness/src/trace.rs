//! The trace: every client-observable event and every injected fault, stamped
//! with simulated time, as plain serde data, and a fixed-column renderer for
//! human eyes. Random ids never enter it: connections are named `user#n`.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::contract::Delivery;
use serde::{Deserialize, Serialize};

use crate::faults::FaultKind;
use crate::scenario::{HeaderPolicy, OpenMode};

/// How a message reached a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A `new_message` push over the Engine.IO websocket transport.
    Websocket,
    /// A `new_message` push while the session was still on polling.
    PollingTransport,
    /// A mailbox entry from `GET /api/messages`.
    Mailbox,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A connection starts opening.
    ConnectAttempt {
        /// Transport order.
        open: OpenMode,
        /// The header policy; `header_sent` says whether it reached the handshake.
        header: HeaderPolicy,
        /// Whether the handshake request carried a `username` header at all.
        header_sent: bool,
    },
    /// The Engine.IO session could not be opened.
    OpenFailed {
        /// Why.
        reason: String,
    },
    /// The Engine.IO session is open (after the upgrade, when polling first).
    Opened {
        /// Server's ping interval.
        ping_interval_ms: u64,
        /// Server's ping timeout.
        ping_timeout_ms: u64,
    },
    /// A polling session switched to websocket.
    Upgraded,
    /// The websocket upgrade's handshake was refused (an HTTP status instead
    /// of `101`, or a `101` no client can use, as behind a proxy without
    /// `Upgrade` support): the session stays on polling.
    UpgradeRefused {
        /// The answer, in short.
        reason: String,
    },
    /// The namespace CONNECT was accepted.
    Connected,
    /// The device went to sleep for `ms` ([`crate::scenario::Action::Freeze`]).
    Frozen {
        /// How long.
        ms: u64,
    },
    /// The namespace CONNECT was refused with CONNECT_ERROR.
    ConnectRefused {
        /// The error data's `message`.
        message: String,
    },
    /// A `user_online` or `user_offline` event.
    Presence {
        /// Whose presence.
        username: String,
        /// `user_online` (true) or `user_offline` (false).
        online: bool,
    },
    /// `send_message` emitted with an ack request.
    Sent {
        /// The sender-unique id.
        client_id: String,
        /// Recipient.
        to: String,
    },
    /// A malformed `send_message` emitted (B1).
    SentRaw {
        /// The sender-unique id of this attempt.
        client_id: String,
    },
    /// `send_message` could not be emitted: no tab was connected.
    NotSent {
        /// The id the message would have had.
        client_id: String,
        /// Recipient.
        to: String,
    },
    /// socket.io-client's habit: a send issued while no tab was connected,
    /// kept to leave on the next connection.
    Queued {
        /// Its `client_id`.
        client_id: String,
        /// Recipient.
        to: String,
    },
    /// socket.io-client's habit: a send whose ack did not come (in time, or
    /// before its connection ended) sent again, same `client_id` (M1).
    Resent {
        /// Its `client_id`.
        client_id: String,
        /// Recipient.
        to: String,
        /// 1 for the first retry.
        attempt: u32,
    },
    /// The server accepted a message (M2).
    Accepted {
        /// The sender-unique id.
        client_id: String,
        /// The server's message id.
        id: u64,
        /// Push or mailbox.
        delivery: Delivery,
    },
    /// The server refused a message with `{"error"}`.
    Refused {
        /// The sender-unique id.
        client_id: String,
        /// The error reason.
        error: String,
    },
    /// No ack arrived: timeout, or the connection ended first.
    AckLost {
        /// The sender-unique id.
        client_id: String,
        /// Why.
        reason: String,
    },
    /// A message reached the client.
    Received {
        /// Message id.
        id: u64,
        /// Sender as the server says.
        from: String,
        /// Recipient as the server says.
        to: String,
        /// Push or mailbox.
        via: Via,
        /// The client had already shown this id (de-duplicated, M5).
        duplicate: bool,
    },
    /// A mailbox poll answered 200.
    Polled {
        /// The cursor sent.
        after: u64,
        /// The `seq`s returned.
        seqs: Vec<u64>,
    },
    /// A mailbox poll failed (status or transport).
    PollFailed {
        /// The cursor sent.
        after: u64,
        /// Why.
        reason: String,
    },
    /// The connection ended.
    Disconnected {
        /// Why: client close, crash, transport close, ping timeout, server disconnect.
        reason: String,
    },
    /// The client will try again.
    ReconnectScheduled {
        /// 1-based attempt number.
        attempt: u32,
        /// Backoff before it.
        delay_ms: u64,
    },
    /// The client stopped reconnecting after its last attempt.
    GaveUp,
    /// `GET /api/online` answered.
    OnlineProbe {
        /// The users listed.
        users: Vec<String>,
    },
    /// `GET /api/online` failed.
    ProbeFailed {
        /// Why.
        reason: String,
    },
    /// The world injected a fault.
    FaultStart {
        /// Affected client host (the server's own for a restart).
        host: String,
        /// What.
        fault: FaultKind,
    },
    /// The world healed a fault.
    FaultEnd {
        /// Affected client host (the server's own for a restart).
        host: String,
        /// What ended.
        fault: FaultKind,
    },
    /// The active phase ended; the network is healed from here on.
    HealPhase,
    /// A black-box probe (`harness check`): what was sent, what came back.
    Exchange {
        /// The request or packet, abbreviated.
        request: String,
        /// The answer (status, content type, body) or the error, abbreviated.
        answer: String,
    },
}

impl What {
    /// A fault starting (`starts`) or healing on its host's link.
    pub fn fault(fault: &crate::faults::Fault, starts: bool) -> Self {
        let (host, fault) = (fault.host.clone(), fault.kind);
        if starts {
            What::FaultStart { host, fault }
        } else {
            What::FaultEnd { host, fault }
        }
    }
}

/// One event: when, who, what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated (or, on real TCP, elapsed) time since the start, ms.
    pub at_ms: u64,
    /// `user#n` for a connection, `user` for polls and user actions,
    /// `observer`, or `world` for faults.
    pub actor: String,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// The events of one run, in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The events.
    pub events: Vec<Event>,
}

/// Where the time stamps of a recording come from.
#[derive(Clone, Copy, Debug)]
pub enum TraceClock {
    /// Turmoil's simulated clock.
    Simulated,
    /// The tokio clock, from this instant.
    Real(tokio::time::Instant),
}

impl TraceClock {
    /// Milliseconds since the start of the run.
    pub fn now_ms(&self) -> u64 {
        let elapsed = match self {
            TraceClock::Simulated => turmoil::sim_elapsed().unwrap_or_default(),
            TraceClock::Real(start) => start.elapsed(),
        };
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What a server saw of itself, told to the harness through
/// `ServerEnv::record` (ground truth for the referee; the black-box checkers
/// never read it). `sid` is whatever stable text the server names the
/// connection by; the reference client records the Socket.IO sid it was given
/// on CONNECT, so the two sides of one connection can be paired. In a
/// simulation both sides' sids are recorded as `sid-N` (the recorder numbers
/// them as they first appear: a server's sids are random, and the same seed
/// must give the same record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerEvent {
    /// A connection was registered as `user` (counts for presence).
    Registered {
        /// The user.
        user: String,
        /// The connection.
        sid: String,
    },
    /// A registered connection stopped counting for presence.
    Unregistered {
        /// The user.
        user: String,
        /// The connection.
        sid: String,
        /// Why (client disconnect, transport close, ping timeout …).
        reason: String,
    },
    /// A connection's CONNECT was refused, or it was kept unregistered (I3).
    NotRegistered {
        /// The connection.
        sid: String,
        /// Why.
        reason: String,
    },
    /// A message was accepted and acked.
    Accepted {
        /// Message id.
        id: u64,
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// `websocket` or `polling`, as acked.
        delivery: String,
    },
    /// A `new_message` push was written to a connection.
    Pushed {
        /// Message id.
        id: u64,
        /// The recipient's connection.
        sid: String,
    },
    /// A push was acknowledged by the recipient.
    PushAcked {
        /// Message id.
        id: u64,
    },
    /// A message entered the recipient's mailbox.
    Stored {
        /// Message id.
        id: u64,
        /// Recipient.
        to: String,
        /// Why: `offline`, `ack timeout`, `connection closed` …
        reason: String,
    },
    /// The server went down (recorded by the world, not the server): every
    /// registration it held ended with it.
    Restarted {
        /// Whether its store survived.
        keeps_store: bool,
    },
}

impl ServerEvent {
    /// The connection it names, if any.
    fn sid_mut(&mut self) -> Option<&mut String> {
        match self {
            ServerEvent::Registered { sid, .. }
            | ServerEvent::Unregistered { sid, .. }
            | ServerEvent::NotRegistered { sid, .. }
            | ServerEvent::Pushed { sid, .. } => Some(sid),
            ServerEvent::Accepted { .. }
            | ServerEvent::PushAcked { .. }
            | ServerEvent::Stored { .. }
            | ServerEvent::Restarted { .. } => None,
        }
    }
}

/// A [`ServerEvent`] with its time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// Simulated time, ms.
    pub at_ms: u64,
    /// What the server saw.
    #[serde(flatten)]
    pub event: ServerEvent,
}

/// A shared, append-only recording the actors write into.
#[derive(Clone, Debug)]
pub struct Recorder {
    clock: TraceClock,
    events: Arc<Mutex<Vec<Event>>>,
    server: Arc<Mutex<Vec<ServerRecord>>>,
    sids: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    /// In a simulation, each sid by the name it is recorded under (see
    /// [`Recorder::sid_name`]).
    sid_names: Arc<Mutex<std::collections::HashMap<String, String>>>,
    /// When the actors' timers are due (ms), earliest first: the world steps
    /// finely there (see `world::Pace`). Never part of the trace.
    /// A set: the same deadline named again (a session's loop names its
    /// heartbeat deadline at every turn) is one entry.
    wakes: Arc<Mutex<std::collections::BTreeSet<u64>>>,
}

impl Recorder {
    /// An empty recording on `clock`.
    pub fn new(clock: TraceClock) -> Self {
        Self {
            clock,
            events: Arc::default(),
            server: Arc::default(),
            sids: Arc::default(),
            sid_names: Arc::default(),
            wakes: Arc::default(),
        }
    }

    /// The name a sid is recorded under. A server draws its sids at random
    /// (engineioxide from the OS), which no seed decides; so in a simulation
    /// each sid is recorded as `sid-N`, N counting the distinct sids in the
    /// order either side first names them, and the saved server log and the
    /// referee's words read the same for the same seed. On real TCP the
    /// server's own sid stays, to find it in the server's logs.
    fn sid_name(&self, sid: &str) -> String {
        if !matches!(self.clock, TraceClock::Simulated) {
            return sid.to_owned();
        }
        let mut names = self.sid_names.lock().unwrap_or_else(|e| e.into_inner());
        let next = names.len() + 1;
        names
            .entry(sid.to_owned())
            .or_insert_with(|| format!("sid-{next}"))
            .clone()
    }

    /// An actor's timer is due at `at_ms`: whatever it sends then must leave
    /// on time, so the simulated world does not take a long step across it.
    pub(crate) fn wake_at(&self, at_ms: u64) {
        if matches!(self.clock, TraceClock::Simulated) {
            self.wakes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(at_ms);
        }
    }

    /// The earliest timer due at or after `now_ms`, forgetting those before.
    pub(crate) fn next_wake(&self, now_ms: u64) -> Option<u64> {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        while wakes.first().is_some_and(|&at| at < now_ms) {
            wakes.pop_first();
        }
        wakes.first().copied()
    }

    /// Notes the Socket.IO sid a connection (`user#n`) was given.
    pub fn note_sid(&self, label: &str, sid: &str) {
        let sid = self.sid_name(sid);
        self.sids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(label.to_owned(), sid);
    }

    /// Connection label → Socket.IO sid, for every connection that got one.
    pub fn sids(&self) -> std::collections::BTreeMap<String, String> {
        self.sids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records what the server saw of itself, now.
    pub fn record_server(&self, event: ServerEvent) {
        self.record_server_at(self.clock.now_ms(), event);
    }

    /// Records what befell the server at `at_ms` (the world's restarts).
    pub(crate) fn record_server_at(&self, at_ms: u64, mut event: ServerEvent) {
        if let Some(sid) = event.sid_mut() {
            *sid = self.sid_name(sid);
        }
        let record = ServerRecord { at_ms, event };
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    /// The server's own records so far, by time.
    pub fn server_log(&self) -> Vec<ServerRecord> {
        let mut records = self
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        records.sort_by_key(|r| r.at_ms);
        records
    }

    /// Records `what` by `actor` now.
    pub fn record(&self, actor: &str, what: What) {
        self.record_at(self.clock.now_ms(), actor, what);
    }

    /// Records `what` at a given time (the world's faults, stamped from outside).
    pub fn record_at(&self, at_ms: u64, actor: &str, what: What) {
        let event = Event {
            at_ms,
            actor: actor.to_owned(),
            what,
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    /// The clock's time now.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A copy of the recording so far, sorted by time (stable for equal times).
    pub fn trace(&self) -> Trace {
        let events = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Trace::in_time_order(events)
    }

    /// [`Recorder::trace`] for a run that is over: the events are moved out
    /// rather than copied (a 200-user run records ~150,000), and the
    /// recorder keeps none.
    pub fn take_trace(&self) -> Trace {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()));
        Trace::in_time_order(events)
    }
}

impl Trace {
    /// A recording sorted by time (stable: equal times keep their order).
    fn in_time_order(mut events: Vec<Event>) -> Trace {
        events.sort_by_key(|e| e.at_ms);
        Trace { events }
    }

    /// One line per event, fixed columns: time, actor, event, details.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            let _ = writeln!(out, "{}", render_event(event));
        }
        out
    }

    /// SHA-256 of the rendered trace, hex: equal hashes, byte-identical traces.
    pub fn hash_hex(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.render().as_bytes());
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// `   12.345s  alice#1          connected`
pub fn render_event(event: &Event) -> String {
    let (name, detail) = describe(&event.what);
    let secs = event.at_ms / 1000;
    let ms = event.at_ms % 1000;
    format!(
        "{secs:>6}.{ms:03}s  {:<16} {name:<18} {detail}",
        event.actor
    )
    .trim_end()
    .to_owned()
}

fn describe(what: &What) -> (&'static str, String) {
    match what {
        What::ConnectAttempt {
            open,
            header,
            header_sent,
        } => (
            "connect-attempt",
            format!("open={open:?} header={header:?} sent={header_sent}"),
        ),
        What::OpenFailed { reason } => ("open-failed", reason.clone()),
        What::Opened {
            ping_interval_ms,
            ping_timeout_ms,
        } => (
            "opened",
            format!("ping={ping_interval_ms}ms timeout={ping_timeout_ms}ms"),
        ),
        What::Upgraded => ("upgraded", "polling → websocket".into()),
        What::UpgradeRefused { reason } => (
            "upgrade-refused",
            format!("{reason}: the session stays on polling"),
        ),
        What::Frozen { ms } => ("frozen", format!("the device sleeps for {ms} ms")),
        What::Connected => ("connected", String::new()),
        What::ConnectRefused { message } => ("connect-refused", format!("{message:?}")),
        What::Presence {
            username,
            online: true,
        } => ("user-online", username.clone()),
        What::Presence {
            username,
            online: false,
        } => ("user-offline", username.clone()),
        What::Sent { client_id, to } => ("send", format!("{client_id} → {to}")),
        What::SentRaw { client_id } => ("send-malformed", client_id.clone()),
        What::NotSent { client_id, to } => {
            ("not-sent", format!("{client_id} → {to} (no connected tab)"))
        }
        What::Queued { client_id, to } => (
            "queued",
            format!("{client_id} → {to} (no connected tab: sent on connect)"),
        ),
        What::Resent {
            client_id,
            to,
            attempt,
        } => ("resend", format!("{client_id} → {to} (retry {attempt})")),
        What::Accepted {
            client_id,
            id,
            delivery,
        } => ("ack", format!("{client_id} id={id} delivery={delivery:?}")),
        What::Refused { client_id, error } => ("ack-error", format!("{client_id} {error:?}")),
        What::AckLost { client_id, reason } => ("ack-lost", format!("{client_id} ({reason})")),
        What::Received {
            id,
            from,
            to,
            via,
            duplicate,
        } => (
            if *duplicate {
                "received-again"
            } else {
                "received"
            },
            format!("id={id} {from} → {to} via={via:?}"),
        ),
        What::Polled { after, seqs } => ("poll", format!("after={after} seqs={seqs:?}")),
        What::PollFailed { after, reason } => ("poll-failed", format!("after={after} ({reason})")),
        What::Disconnected { reason } => ("disconnected", reason.clone()),
        What::ReconnectScheduled { attempt, delay_ms } => {
            ("reconnect", format!("attempt {attempt} in {delay_ms}ms"))
        }
        What::GaveUp => ("gave-up", String::new()),
        What::OnlineProbe { users } => ("online", format!("{users:?}")),
        What::ProbeFailed { reason } => ("online-failed", reason.clone()),
        What::FaultStart {
            fault: FaultKind::Restart { keeps_store },
            ..
        } => (
            "fault",
            format!("server down (restart; store {})", kept(*keeps_store)),
        ),
        What::FaultEnd {
            fault: FaultKind::Restart { keeps_store },
            ..
        } => (
            "healed",
            format!("server up again (store {})", kept(*keeps_store)),
        ),
        What::FaultStart { host, fault } => ("fault", format!("{fault:?} {host} ⇹ server")),
        What::FaultEnd { host, fault } => ("healed", format!("{fault:?} {host} ⇹ server")),
        What::HealPhase => (
            "heal-phase",
            "faults over; liveness judged from here".into(),
        ),
        What::Exchange { request, answer } => ("exchange", format!("{request} ⇒ {answer}")),
    }
}

/// The trace as a Mermaid sequence diagram: users, server and world as
/// participants, one arrow per event.
pub fn mermaid(trace: &Trace) -> String {
    let mut out = String::from("sequenceDiagram\n    participant world\n    participant server\n");
    for event in &trace.events {
        let (name, detail) = describe(&event.what);
        let actor = event.actor.replace('#', "_");
        let secs = event.at_ms as f64 / 1000.0;
        let line = match &event.what {
            What::FaultStart { .. } | What::FaultEnd { .. } | What::HealPhase => {
                format!("    Note over world,server: {secs:.3}s {name} {detail}")
            }
            What::Sent { .. }
            | What::Resent { .. }
            | What::SentRaw { .. }
            | What::ConnectAttempt { .. }
            | What::Polled { .. } => {
                format!("    {actor}->>server: {secs:.3}s {name} {detail}")
            }
            _ => format!("    server-->>{actor}: {secs:.3}s {name} {detail}"),
        };
        let _ = writeln!(out, "{}", line.replace(';', ",").trim_end());
    }
    out
}

fn kept(keeps_store: bool) -> &'static str {
    if keeps_store {
        "kept"
    } else {
        "lost"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fixed_columns() {
        let event = Event {
            at_ms: 1_234,
            actor: "alice#1".into(),
            what: What::Connected,
        };
        assert_eq!(
            render_event(&event),
            "     1.234s  alice#1          connected"
        );
    }

    #[test]
    fn events_round_trip_through_json() {
        let event = Event {
            at_ms: 5,
            actor: "bob".into(),
            what: What::Received {
                id: 3,
                from: "a".into(),
                to: "bob".into(),
                via: Via::Mailbox,
                duplicate: false,
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }
}

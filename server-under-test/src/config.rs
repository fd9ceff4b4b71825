//! Server configuration: Engine.IO timers, the M5 ack timeout, input limits, and the
//! bug switches that make the reference server deliberately wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::token::{Leniency, TokenKey};

/// Everything the reference server can be tuned with. `Default` gives socket.io's
/// own defaults, so a harness that reads `pingInterval`/`pingTimeout` from the
/// handshake sees what a stock python-socketio or Node server would send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Engine.IO `pingInterval` (socket.io default 25 s).
    pub ping_interval_ms: u64,
    /// Engine.IO `pingTimeout` (socket.io default 20 s).
    pub ping_timeout_ms: u64,
    /// How long a pushed `new_message` waits for a client ack before it is also
    /// stored in the mailbox (M5, reference 5 s).
    pub ack_timeout_ms: u64,
    /// How long a client may take between the Engine.IO handshake and the
    /// Socket.IO CONNECT (socket.io default 45 s).
    pub connect_timeout_ms: u64,
    /// Engine.IO `maxPayload` in bytes (socket.io default 1 MB); above it the
    /// sender's own connection may be closed (B1).
    pub max_payload_bytes: u64,
    /// Longest `content`, in Unicode scalar values (M1).
    pub max_content_chars: usize,
    /// Longest `client_id`, in characters (M1).
    pub max_client_id_chars: usize,
    /// Sustained sends per second one sender may make; beyond the burst the
    /// rest are refused with `{"error": "rate limited …"}`, never dropped.
    pub send_rate_per_s: u32,
    /// Sends one sender may make at once before the rate applies.
    pub send_burst: u32,
    /// Most entries one mailbox holds; a message to an offline recipient with a
    /// full mailbox is refused (never accepted and then lost). Fallbacks of
    /// already accepted messages (M5) are always stored.
    pub max_mailbox_entries: u64,
    /// Origins whose browser pages may call the server (CORS: the `username`
    /// header, GET and POST); empty allows no other origin.
    pub cors_origins: Vec<String>,
    /// Unix time in milliseconds at the moment the server starts; message `ts`
    /// is this plus the runtime clock's elapsed time. The binary reads the wall
    /// clock once for it; the simulation passes a constant so traces repeat.
    pub epoch_unix_ms: u64,
    /// Contract v2 (A1–A6): identity is an HS256 token signed with this key,
    /// and `/health` says so (H2). `None` is a v1 server (the `username` header).
    pub auth: Option<TokenKey>,
    /// Where Socket.IO is mounted: the contract's `/socket.io` (T1), or a
    /// deployment's own (a staging server behind a path-routing proxy).
    pub socketio_path: String,
    /// Deliberate defects, empty for the reference behaviour.
    pub bugs: Bugs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            ack_timeout_ms: 5_000,
            connect_timeout_ms: 45_000,
            max_payload_bytes: 1_000_000,
            max_content_chars: 4096,
            max_client_id_chars: 64,
            send_rate_per_s: 200,
            send_burst: 1_000,
            max_mailbox_entries: 100_000,
            cors_origins: Vec::new(),
            // 2025-10-09T00:00:00Z, the seed's date.
            epoch_unix_ms: 1_759_968_000_000,
            auth: None,
            socketio_path: "/socket.io".into(),
            bugs: Bugs::default(),
        }
    }
}

impl Config {
    /// `ping_interval_ms` as a `Duration`.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }
    /// `ping_timeout_ms` as a `Duration`.
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }
    /// `ack_timeout_ms` as a `Duration`.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
    /// `connect_timeout_ms` as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// The token defects switched on (v2).
    pub fn token_leniency(&self) -> Leniency {
        Leniency {
            skip_exp: self.has_bug(Bug::SkipExp),
            accept_alg_none: self.has_bug(Bug::AcceptAlgNone),
        }
    }
    /// Whether a bug switch is on.
    pub fn has_bug(&self, bug: Bug) -> bool {
        self.bugs.0.contains(&bug)
    }
}

/// A known failure class the reference server can reproduce on demand, so every
/// harness checker has a server it must reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// A connection without a valid username is registered anyway, as `anonymous` (breaks I3).
    RegisterAnonymous,
    /// Online recipients are sent to the mailbox, never pushed: the seed's symptom (breaks M3).
    NeverPush,
    /// Presence is `username → latest sid`, overwritten on connect and deleted on any disconnect: the seed's `online_users` (breaks P2).
    LastSidWins,
    /// `new_message` is pushed without an ack request and never falls back to the mailbox (breaks M5).
    NoAckFallback,
    /// Users are never removed from presence on disconnect (breaks P3, P4).
    StalePresence,
    /// A `from` field in the `send_message` payload is taken as the sender (breaks M2).
    TrustPayloadFrom,
    /// `send_message` reads its first argument and ignores the rest (breaks M1: one argument).
    ExtraArgs,
    /// v2: a valid `username` header wins over the token (breaks A2).
    TrustHeader,
    /// v2: a token's `exp` is never looked at (breaks A1, A4).
    SkipExp,
    /// v2: a token whose header says `alg: none` is believed unsigned (breaks A1).
    AcceptAlgNone,
    /// v2: `/api/messages` still takes the `username` header (breaks A3).
    MailboxByHeader,
    /// A poll whose cursor is above every seq the mailbox assigned is answered
    /// `200` with nothing instead of `409` (breaks L4: after a restart with a
    /// fresh store, new mail hides below every client's cursor).
    IgnoreStaleCursor,
    /// A repeat of a `client_id` gets the first message's ack whatever its
    /// `to` and `content`, as a retry cache keyed by (sender, client_id)
    /// alone answers (breaks M1: a client that restarts its counter loses
    /// every message it sends under a used id).
    AckByClientIdOnly,
    /// Several nodes: presence is kept per process, the seed's dict once per
    /// node: a user on another node is "not online", its messages go to the
    /// mailbox, and `/api/online` differs by node (breaks N1).
    PresencePerProcess,
    /// Several nodes: a message is pushed only to the accepting node's
    /// connections of the recipient, acked `websocket` all the same, with no
    /// fallback: a recipient on another node never gets it (breaks N1).
    PushLocalOnly,
    /// Several nodes: ids come from a counter per process, so two nodes hand
    /// out the same id (breaks N1: ids unique and increasing across nodes).
    IdsPerProcess,
    /// Several nodes: a dead node's presence entries never expire, so its
    /// users stay online for good (breaks N3).
    PresenceWithoutExpiry,
}

impl Bug {
    /// Whether the switch only changes a node of several (`--redis`): a
    /// single process behaves the same with it.
    pub fn cluster_only(self) -> bool {
        matches!(
            self,
            Bug::PresencePerProcess
                | Bug::PushLocalOnly
                | Bug::IdsPerProcess
                | Bug::PresenceWithoutExpiry
        )
    }

    /// Every switch, in a fixed order.
    pub const ALL: [Bug; 17] = [
        Bug::RegisterAnonymous,
        Bug::NeverPush,
        Bug::LastSidWins,
        Bug::NoAckFallback,
        Bug::StalePresence,
        Bug::TrustPayloadFrom,
        Bug::ExtraArgs,
        Bug::TrustHeader,
        Bug::SkipExp,
        Bug::AcceptAlgNone,
        Bug::MailboxByHeader,
        Bug::IgnoreStaleCursor,
        Bug::AckByClientIdOnly,
        Bug::PresencePerProcess,
        Bug::PushLocalOnly,
        Bug::IdsPerProcess,
        Bug::PresenceWithoutExpiry,
    ];

    /// The switch's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Bug::RegisterAnonymous => "register_anonymous",
            Bug::NeverPush => "never_push",
            Bug::LastSidWins => "last_sid_wins",
            Bug::NoAckFallback => "no_ack_fallback",
            Bug::StalePresence => "stale_presence",
            Bug::TrustPayloadFrom => "trust_payload_from",
            Bug::ExtraArgs => "extra_args",
            Bug::TrustHeader => "trust_header",
            Bug::SkipExp => "skip_exp",
            Bug::AcceptAlgNone => "accept_alg_none",
            Bug::MailboxByHeader => "mailbox_by_header",
            Bug::IgnoreStaleCursor => "ignore_stale_cursor",
            Bug::AckByClientIdOnly => "ack_by_client_id_only",
            Bug::PresencePerProcess => "presence_per_process",
            Bug::PushLocalOnly => "push_local_only",
            Bug::IdsPerProcess => "ids_per_process",
            Bug::PresenceWithoutExpiry => "presence_without_expiry",
        }
    }

    /// Parses a switch name as printed by [`Bug::name`].
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of bug switches that are on; ordered so it prints the same every time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs(pub BTreeSet<Bug>);

impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> Self {
        Bugs(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_names_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(Bug::from_name("no_such_bug"), None);
    }
}

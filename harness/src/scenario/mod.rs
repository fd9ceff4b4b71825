//! A scenario is plain data: who the users are, how their clients name themselves,
//! what they do when, and which faults the network suffers. It serialises to JSON
//! so a failing run can be saved, shared and replayed.

use serde::{Deserialize, Serialize};

use crate::faults::{FaultMenu, FaultPlan};
use crate::token::TokenPolicy;

mod file;
mod generate;
pub use file::{ScenarioError, MAX_ACTIVE_MS, MAX_STEPS, MAX_USERS};

/// How a client sends the `username` header (I1), modelling real clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// socket.io-client in Node: `extraHeaders` go on every request.
    Node,
    /// socket.io-client in a browser: `extraHeaders` go on polling requests only,
    /// never on a websocket-first open (browsers cannot set WebSocket headers).
    Browser,
}

/// Which Engine.IO transport the client opens with (socket.io-client `transports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenMode {
    /// `['websocket', 'polling']`: the seed's front end.
    WebsocketFirst,
    /// `['polling', 'websocket']`: handshake over polling, then upgrade.
    PollingFirst,
    /// `['polling']`: long-polling for the whole session, never upgrading
    /// (clients behind proxies without WebSocket support are configured so).
    PollingOnly,
}

/// What the client puts in the `username` header of its socket handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderPolicy {
    /// The user's name: the fix.
    Valid,
    /// No header at all: the seed's bug.
    Absent,
    /// An empty header.
    Empty,
    /// The name with characters outside `[A-Za-z0-9_.-]`.
    Invalid,
    /// The name padded past 32 characters.
    TooLong,
}

impl HeaderPolicy {
    /// The v2 counterpart of this v1 header policy: the valid header becomes
    /// a valid token, no header no token, and each broken header a broken
    /// token, so a scenario written for v1 keeps its registered and refused
    /// users.
    pub fn token_in_place(self) -> TokenPolicy {
        match self {
            HeaderPolicy::Valid => TokenPolicy::Valid,
            HeaderPolicy::Absent => TokenPolicy::Absent,
            HeaderPolicy::Empty => TokenPolicy::Forged,
            HeaderPolicy::Invalid => TokenPolicy::AlgNone,
            HeaderPolicy::TooLong => TokenPolicy::Tampered,
        }
    }
}

impl HeaderPolicy {
    /// The header value this policy sends for `name`, `None` for no header.
    pub fn value(self, name: &str) -> Option<String> {
        match self {
            HeaderPolicy::Valid => Some(name.to_owned()),
            HeaderPolicy::Absent => None,
            HeaderPolicy::Empty => Some(String::new()),
            HeaderPolicy::Invalid => Some(format!("{name} /!")),
            HeaderPolicy::TooLong => Some(format!("{name}{}", "x".repeat(33))),
        }
    }
}

macro_rules! spelled {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name as users type it and reports print it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

spelled!(Profile { Node => "node", Browser => "browser" });
spelled!(OpenMode { WebsocketFirst => "websocket-first", PollingFirst => "polling-first", PollingOnly => "polling-only" });
spelled!(HeaderPolicy {
    Valid => "valid",
    Absent => "absent",
    Empty => "empty",
    Invalid => "invalid",
    TooLong => "too-long",
});

/// One user and their client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// A valid username (I2); mailbox polls always use it, whatever the socket sends.
    pub name: String,
    /// Which client runs in the user's hands.
    pub profile: Profile,
    /// Which transport the client opens with.
    pub open: OpenMode,
    /// What the socket handshake carries.
    pub header: HeaderPolicy,
    /// Contract v2: the token the socket's CONNECT presents (its polls always
    /// carry a valid one, as they always carry the name in v1). `None` is a v1
    /// client, whose identity is the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenPolicy>,
    /// A background tab: its timers (heartbeat check, reconnect delays, the
    /// mailbox poll) fire on a 1 s grid, and on a 60 s grid once hidden five
    /// minutes, as browsers throttle them (socket.io #4040, #3259).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// socket.io-client's habits (`"socketio_js": true`): what is sent while
    /// no tab is connected waits in a buffer and leaves on the next
    /// connection (its `sendBuffer`), and a send whose ack does not come in
    /// time, or whose connection ends first, is sent again with the same
    /// `client_id`, up to [`crate::client::RETRIES`] times (its `retries`
    /// and `ackTimeout`): M1's retry clause under faults.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub socketio_js: bool,
}

impl UserSpec {
    /// A Node client opening with websocket and sending the header: the fixed seed.
    pub fn node(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            profile: Profile::Node,
            open: OpenMode::WebsocketFirst,
            header: HeaderPolicy::Valid,
            token: None,
            background: false,
            socketio_js: false,
        }
    }

    /// Whether the socket handshake request carries this header (I1): browsers
    /// drop `extraHeaders` on a websocket-first open.
    pub fn handshake_header(&self) -> Option<String> {
        match (self.profile, self.open) {
            (Profile::Browser, OpenMode::WebsocketFirst) => None,
            _ => self.header.value(&self.name),
        }
    }

    /// Whether a contract-keeping server registers this user's connections
    /// (I3; A2 for a v2 client, whose header is not identity).
    pub fn can_register(&self) -> bool {
        match self.token {
            Some(token) => token.registers(),
            None => self
                .handshake_header()
                .is_some_and(|h| crate::contract::is_valid_username(&h)),
        }
    }

    /// The `username` header the socket handshake actually carries: for
    /// [`TokenPolicy::OtherUserHeader`], [`IMPOSTOR`]'s name (a v2 server must
    /// register the token's user, never the header's).
    pub fn header_for_handshake(&self) -> Option<String> {
        match self.token {
            Some(TokenPolicy::OtherUserHeader) => Some(IMPOSTOR.to_owned()),
            _ => self.handshake_header(),
        }
    }
}

/// The name a [`TokenPolicy::OtherUserHeader`] client puts in its header: no
/// scenario user has it, so a server that believes the header registers a
/// name out of nowhere (I3, A2).
pub const IMPOSTOR: &str = "mallory";

/// Something a user does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Open a new tab: a new socket.io-client instance with its own connection.
    Open,
    /// Close the oldest open tab cleanly (socket.disconnect()).
    Close,
    /// Send `content` to `to` from the oldest connected tab.
    Send {
        /// Recipient username (any string: online, offline, unknown or self).
        to: String,
        /// Message text.
        content: String,
    },
    /// Send a malformed `send_message` payload (B1): this JSON as the argument.
    SendRaw {
        /// The argument, as JSON text.
        payload: String,
    },
    /// Poll the mailbox now, besides the regular poll loop.
    Poll,
    /// The device sleeps (a phone locks, a laptop lid closes): every tab's
    /// sockets stay open but nothing is read or written and no timer fires for
    /// `ms`; then the tabs resume on the sessions they had, as socket.io-client
    /// does when the page wakes (its overdue ping timer may end a session the
    /// server already timed out, and it reconnects).
    Freeze {
        /// How long the device sleeps.
        ms: u64,
    },
    /// The client process dies (no close packets, sockets dropped) and comes back
    /// after `down_ms`, reopening as many tabs as it had.
    Crash {
        /// How long the client stays down.
        down_ms: u64,
    },
}

/// A timed action of one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Simulated time of the action, from the start of the run.
    pub at_ms: u64,
    /// Index into [`Scenario::users`].
    pub user: usize,
    /// What the user does.
    #[serde(flatten)]
    pub action: Action,
}

/// Everything a run needs besides the seed that drives latency: users, steps,
/// faults, and the phase lengths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// The seed the run's randomness (latency, jitter, backoff) is drawn from.
    pub seed: u64,
    /// The users, in a fixed order.
    pub users: Vec<UserSpec>,
    /// The steps, sorted by time.
    pub steps: Vec<Step>,
    /// The network faults.
    pub faults: FaultPlan,
    /// Steps and faults happen in `[0, active_ms)`; then the network is healed.
    pub active_ms: u64,
    /// After the active phase: long enough for ping timeouts, reconnects, ack
    /// timeouts and one poll interval, so liveness is judged on a healed network.
    pub heal_ms: u64,
    /// Other clients may share the server (`harness check` against a live one):
    /// names outside the scenario are then not judged. A simulation is a closed
    /// world, where any other name online is a registration out of nowhere (I3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_world: bool,
}

/// Knobs for [`Scenario::generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Number of users.
    pub users: usize,
    /// Length of the active phase.
    pub active_ms: u64,
    /// Which faults swarm may pick from.
    pub faults: FaultMenu,
    /// The server's timers, which size the heal phase.
    pub timers: ServerTimers,
    /// Contract v2: users present tokens, most valid, some not.
    pub tokens: bool,
    /// Draw the clients' habits too: polling-only users and background tabs
    /// (each from a stream of its own, so turning them off changes nothing
    /// else). Off only to measure what they cost (`harness bench`).
    pub client_mix: bool,
}

impl Default for GenerateOptions {
    /// The CLI's `sim` defaults: 10 users, 120 s, every fault, socket.io's timers.
    fn default() -> Self {
        Self {
            users: 10,
            active_ms: 120_000,
            faults: FaultMenu::all(),
            timers: ServerTimers::default(),
            tokens: false,
            client_mix: true,
        }
    }
}

impl Scenario {
    /// Whether this is a contract v2 scenario: its users present tokens.
    pub fn is_v2(&self) -> bool {
        self.users.iter().any(|u| u.token.is_some())
    }

    /// Makes every user a contract v2 client (A2): each presents the token
    /// [`HeaderPolicy::token_in_place`] of its header policy. Users who already
    /// have a token policy keep it.
    pub fn identify_by_token(&mut self) {
        for user in &mut self.users {
            user.token.get_or_insert(user.header.token_in_place());
        }
    }

    /// The end of the run.
    pub fn end_ms(&self) -> u64 {
        self.active_ms.saturating_add(self.heal_ms)
    }

    /// What background tabs add to a heal phase of `heal_ms`: their timers
    /// (the heartbeat check that notices a dead server among them) fire up
    /// to a second late, or a minute once hidden five minutes.
    pub fn background_slack_ms(&self, heal_ms: u64) -> u64 {
        if !self.users.iter().any(|u| u.background) {
            0
        } else if self.active_ms.saturating_add(heal_ms) > 300_000 {
            60_000
        } else {
            1_000
        }
    }

    /// The heal phase needed for a server with these timers and a client that
    /// polls every `poll_interval_ms`: ping timeout detection, ack timeout, the
    /// whole reconnect backoff, one poll interval, and a margin.
    pub fn heal_ms_for(timers: &ServerTimers, poll_interval_ms: u64) -> u64 {
        timers
            .dead_peer_ms()
            .saturating_add(timers.ack_timeout_ms)
            .saturating_add(17_000)
            .saturating_add(poll_interval_ms)
            .saturating_add(5_000)
    }
}

/// The server's timers as the harness must assume them: Engine.IO's heartbeat
/// (a client reads it from the handshake, but the scenario's heal phase is
/// planned before any handshake) and the M5 ack timeout, which no handshake
/// announces. Defaults are socket.io's and the contract's reference values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTimers {
    /// Engine.IO `pingInterval` (socket.io default 25 s).
    pub ping_interval_ms: u64,
    /// Engine.IO `pingTimeout` (socket.io default 20 s).
    pub ping_timeout_ms: u64,
    /// How long a push waits for the recipient's ack before falling back (M5).
    pub ack_timeout_ms: u64,
}

impl Default for ServerTimers {
    fn default() -> Self {
        Self {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            ack_timeout_ms: 5_000,
        }
    }
}

impl ServerTimers {
    /// How long a silently dead connection may take to be noticed.
    pub fn dead_peer_ms(&self) -> u64 {
        self.ping_interval_ms.saturating_add(self.ping_timeout_ms)
    }
}

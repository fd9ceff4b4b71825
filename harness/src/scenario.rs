//! A scenario is plain data: who the users are, how their clients name themselves,
//! what they do when, and which faults the network suffers. It serialises to JSON
//! so a failing run can be saved, shared and replayed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::faults::{FaultMenu, FaultPlan};

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
}

impl UserSpec {
    /// A Node client opening with websocket and sending the header: the fixed seed.
    pub fn node(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            profile: Profile::Node,
            open: OpenMode::WebsocketFirst,
            header: HeaderPolicy::Valid,
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

    /// Whether a contract-keeping server registers this user's connections (I3).
    pub fn can_register(&self) -> bool {
        self.handshake_header()
            .is_some_and(|h| server_under_test::Username::parse(&h).is_ok())
    }
}

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
}

/// Names the generator picks from, then `u10`, `u11` … beyond them.
const NAMES: [&str; 10] = [
    "shyam_patel",
    "rama",
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
];

impl Scenario {
    /// The end of the run.
    pub fn end_ms(&self) -> u64 {
        self.active_ms + self.heal_ms
    }

    /// The heal phase needed for a server with these timers and a client that
    /// polls every `poll_interval_ms`: ping timeout detection, ack timeout, the
    /// whole reconnect backoff, one poll interval, and a margin.
    pub fn heal_ms_for(server: &server_under_test::Config, poll_interval_ms: u64) -> u64 {
        server.ping_interval_ms
            + server.ping_timeout_ms
            + server.ack_timeout_ms
            + 17_000
            + poll_interval_ms
            + 5_000
    }

    /// A mixed workload drawn from `seed`: users connect (some with a second tab),
    /// send to online, offline, unknown and own names, close and reopen; a few use
    /// broken header policies or the browser profile; faults per `FaultMenu::swarm`.
    pub fn generate(seed: u64, options: &GenerateOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let users: Vec<UserSpec> = (0..options.users)
            .map(|i| {
                let name = NAMES
                    .get(i)
                    .map_or_else(|| format!("u{i}"), |n| (*n).to_owned());
                let mut user = UserSpec::node(&name);
                if rng.random_bool(0.3) {
                    user.open = OpenMode::PollingFirst;
                }
                if rng.random_bool(0.2) {
                    user.profile = Profile::Browser;
                }
                if i > 0 && rng.random_bool(0.1) {
                    user.header = [
                        HeaderPolicy::Absent,
                        HeaderPolicy::Empty,
                        HeaderPolicy::Invalid,
                        HeaderPolicy::TooLong,
                    ][rng.random_range(0..4)];
                }
                user
            })
            .collect();
        let active_ms = options.active_ms.max(1_000);
        let mut steps = Vec::new();
        for (index, _) in users.iter().enumerate() {
            let mut at_ms = rng.random_range(0..active_ms.min(3_000));
            steps.push(Step {
                at_ms,
                user: index,
                action: Action::Open,
            });
            let mut tabs = 1;
            let mut sent = 0;
            loop {
                at_ms += rng.random_range(500..6_000);
                if at_ms >= active_ms {
                    break;
                }
                let roll = rng.random_range(0..100);
                let action = if roll < 60 {
                    sent += 1;
                    let to = match rng.random_range(0..10) {
                        0 => format!("nobody{}", rng.random_range(0..3)),
                        1 => users[index].name.clone(),
                        _ => users[rng.random_range(0..users.len())].name.clone(),
                    };
                    Action::Send {
                        to,
                        content: format!("{} #{sent}", users[index].name),
                    }
                } else if roll < 70 && tabs < 2 {
                    tabs += 1;
                    Action::Open
                } else if roll < 80 && tabs > 0 {
                    tabs -= 1;
                    Action::Close
                } else if roll < 88 && tabs == 0 {
                    tabs += 1;
                    Action::Open
                } else if roll < 93 {
                    Action::Poll
                } else if roll < 96 && options.faults.crash {
                    Action::Crash {
                        down_ms: rng.random_range(500..8_000),
                    }
                } else {
                    continue;
                };
                steps.push(Step {
                    at_ms,
                    user: index,
                    action,
                });
            }
        }
        steps.sort_by_key(|s| (s.at_ms, s.user));
        let hosts = crate::world::client_hosts(users.len());
        let faults = FaultPlan::swarm(&mut rng, &options.faults, &hosts, active_ms);
        let heal_ms = Self::heal_ms_for(
            &server_under_test::Config::default(),
            crate::client::ClientConfig::default().poll_interval_ms,
        );
        Self {
            seed,
            users,
            steps,
            faults,
            active_ms,
            heal_ms,
            open_world: false,
        }
    }
}

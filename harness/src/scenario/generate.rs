//! The swarm generator: a mixed, seeded workload of users, steps and faults.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ServerTimers;
use super::{Action, GenerateOptions, HeaderPolicy, OpenMode, Profile, Scenario, Step, UserSpec};
use crate::faults::FaultPlan;
use crate::token::TokenPolicy;

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

/// Seeds the draw of polling-only users apart from the rest.
const POLLING_ONLY_STREAM: u64 = 0x706f_6c6c_696e_6721;
/// Seeds the draw of background tabs apart from the rest.
const BACKGROUND_STREAM: u64 = 0x6869_6464_656e_7461;
/// Seeds the draw of socket.io-client's habits apart from the rest.
const SOCKETIO_JS_STREAM: u64 = 0x736f_636b_6574_6a73;
/// Seeds the draw of a server restart apart from the rest.
const RESTART_STREAM: u64 = 0x7265_7374_6172_7421;

impl Scenario {
    /// A mixed workload drawn from `seed`: users connect (some with a second tab),
    /// send to online, offline, unknown and own names, close and reopen; a few use
    /// broken header policies or the browser profile; faults per `FaultMenu::swarm`.
    pub fn generate(seed: u64, options: &GenerateOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let users = generate_users(&mut rng, options.users);
        let mut users = users;
        if options.tokens {
            draw_tokens(&mut rng, &mut users);
        }
        let active_ms = options.active_ms.max(1_000);
        let sleeps = options.faults.freeze.then(|| freeze_range(&options.timers));
        let steps = generate_steps(&mut rng, &users, active_ms, options.faults.crash, sleeps);
        let hosts = crate::topology::client_hosts(users.len());
        let mut faults = FaultPlan::swarm(&mut rng, &options.faults, &hosts, active_ms);
        // A server restart, from a stream of its own (every other draw of a
        // seed stays what it was).
        if options.faults.restart {
            let mut restarts = SmallRng::seed_from_u64(seed ^ RESTART_STREAM);
            if let Some(restart) = FaultPlan::draw_restart(&mut restarts, active_ms) {
                faults.faults.push(restart);
                faults
                    .faults
                    .sort_by(|a, b| (a.at_ms, &a.host).cmp(&(b.at_ms, &b.host)));
            }
        }
        // Some polling-first users never upgrade (`transports: ['polling']`,
        // as behind a proxy without WebSocket support): drawn from a stream
        // of their own, so every other draw of a seed stays what it was.
        let mut transports = SmallRng::seed_from_u64(seed ^ POLLING_ONLY_STREAM);
        for user in users.iter_mut().filter(|_| options.client_mix) {
            if user.open == OpenMode::PollingFirst && transports.random_bool(0.3) {
                user.open = OpenMode::PollingOnly;
            }
        }
        // Some browser users are background tabs, their timers throttled:
        // a stream of their own too.
        let mut tabs = SmallRng::seed_from_u64(seed ^ BACKGROUND_STREAM);
        for user in users.iter_mut().filter(|_| options.client_mix) {
            if user.profile == Profile::Browser && tabs.random_bool(0.3) {
                user.background = true;
            }
        }
        // Some users run socket.io-client with its habits (a send buffer
        // while offline, retries with the same client_id): a stream of
        // their own too.
        let mut js = SmallRng::seed_from_u64(seed ^ SOCKETIO_JS_STREAM);
        for user in users.iter_mut().filter(|_| options.client_mix) {
            user.socketio_js = js.random_bool(0.4);
        }
        let heal_ms = Self::heal_ms_for(&options.timers, crate::contract::POLL_INTERVAL_MS);
        let mut scenario = Self {
            seed,
            users,
            steps,
            faults,
            active_ms,
            heal_ms,
            open_world: false,
        };
        scenario.heal_ms = scenario
            .heal_ms
            .saturating_add(scenario.background_slack_ms(heal_ms));
        scenario
    }
}

/// Users with a mix of transports, client profiles and (for all but the
/// first) broken header policies.
fn generate_users(rng: &mut SmallRng, count: usize) -> Vec<UserSpec> {
    (0..count)
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
        .collect()
}

/// Contract v2: every user but the first may present a broken token (or
/// another user's header with a valid one); most present a valid token.
fn draw_tokens(rng: &mut SmallRng, users: &mut [UserSpec]) {
    // Every policy but the valid one, in `TokenPolicy::ALL`'s order.
    let broken = &TokenPolicy::ALL[1..];
    debug_assert!(!broken.contains(&TokenPolicy::Valid));
    for (i, user) in users.iter_mut().enumerate() {
        let token = if i > 0 && rng.random_bool(0.25) {
            broken[rng.random_range(0..broken.len())]
        } else {
            TokenPolicy::Valid
        };
        // A broken token comes without a header, so only the token can be
        // believed (A1); no token keeps its header, which must not be (A2).
        if !token.registers() && token != TokenPolicy::Absent {
            user.header = HeaderPolicy::Absent;
        }
        user.token = Some(token);
    }
}

/// How long a generated sleep lasts: from a second (a push waits unacked,
/// the session survives) to past the server's dead-peer time plus its ack
/// timeout (the server times the session out while a push waits; the client
/// wakes to an overdue heartbeat), sized to the server's own timers.
fn freeze_range(timers: &ServerTimers) -> (u64, u64) {
    let high = timers
        .dead_peer_ms()
        .saturating_add(timers.ack_timeout_ms)
        .saturating_mul(2);
    (1_000, high.max(2_000))
}

/// Each user opens early, then acts every 0.5–6 s until the active phase ends.
/// `sleeps`: the range of a device's sleep, when the menu has `freeze`; a sleep
/// ends within the active phase (a shorter draw where little is left).
fn generate_steps(
    rng: &mut SmallRng,
    users: &[UserSpec],
    active_ms: u64,
    crashes: bool,
    sleeps: Option<(u64, u64)>,
) -> Vec<Step> {
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
            } else if roll < 96 && crashes {
                Action::Crash {
                    down_ms: rng.random_range(500..8_000),
                }
            } else if let Some((low, high)) = sleeps.filter(|_| roll < 98) {
                let room = active_ms - at_ms;
                if room < low {
                    continue;
                }
                Action::Freeze {
                    ms: rng.random_range(low..=high.min(room)),
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
    steps
}

//! proptest strategies for scenarios. Small worlds (1–4 users, ≤ 15 steps,
//! ≤ 3 faults in 20 s) on fast server timers, so a case takes milliseconds and
//! shrinking reaches a handful of steps.

use harness::client::ClientConfig;
use harness::faults::{Fault, FaultKind, FaultPlan};
use harness::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario, Step, UserSpec};
use harness::token::TokenPolicy;
use harness::world::{client_hosts, Reference, WorldOptions, SIM_JWT_SECRET};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const ACTIVE_MS: u64 = 20_000;

/// Fast timers: ping 5 s + 5 s, ack 2 s, poll every 10 s.
pub fn world(bugs: &[server_under_test::Bug]) -> WorldOptions {
    world_of(bugs, false)
}

/// [`world`] for `scenario`: contract v2 (the simulation's shared secret on
/// both sides) when its users present tokens.
pub fn world_for(scenario: &Scenario, bugs: &[server_under_test::Bug]) -> WorldOptions {
    world_of(bugs, scenario.is_v2())
}

fn world_of(bugs: &[server_under_test::Bug], v2: bool) -> WorldOptions {
    let key = || server_under_test::TokenKey::new(SIM_JWT_SECRET.to_vec()).unwrap();
    let mut options = WorldOptions::with_server(Reference::new(server_under_test::Config {
        ping_interval_ms: 5_000,
        ping_timeout_ms: 5_000,
        ack_timeout_ms: 2_000,
        bugs: bugs.iter().copied().collect(),
        auth: v2.then(key),
        ..server_under_test::Config::default()
    }));
    options.client = ClientConfig {
        poll_interval_ms: 10_000,
        tokens: WorldOptions::reference_v2(&[]).client.tokens.filter(|_| v2),
        ..ClientConfig::default()
    };
    options.probe_interval_ms = 10_000;
    options
}

fn user(index: usize) -> impl Strategy<Value = UserSpec> {
    let header = prop_oneof![
        8 => Just(HeaderPolicy::Valid),
        1 => Just(HeaderPolicy::Absent),
        1 => prop_oneof![Just(HeaderPolicy::Empty), Just(HeaderPolicy::Invalid), Just(HeaderPolicy::TooLong)],
    ];
    let profile = prop_oneof![4 => Just(Profile::Node), 1 => Just(Profile::Browser)];
    let open = prop_oneof![
        3 => Just(OpenMode::WebsocketFirst),
        3 => Just(OpenMode::PollingFirst),
        1 => Just(OpenMode::PollingOnly),
    ];
    // A browser may be a background tab, its timers throttled.
    let background = prop_oneof![3 => Just(false), 1 => Just(true)];
    // socket.io-client's habits: buffering while offline, retries.
    let socketio_js = prop_oneof![2 => Just(false), 1 => Just(true)];
    (header, profile, open, background, socketio_js).prop_map(
        move |(header, profile, open, background, socketio_js)| UserSpec {
            name: NAMES[index].to_owned(),
            profile,
            open,
            header,
            token: None,
            background: background && profile == Profile::Browser,
            socketio_js,
        },
    )
}

fn action(users: usize) -> impl Strategy<Value = Action> {
    let to = prop_oneof![
        6 => (0..users).prop_map(|i| NAMES[i].to_owned()),
        1 => Just("nobody".to_owned()),
    ];
    prop_oneof![
        5 => Just(Action::Open),
        3 => Just(Action::Close),
        5 => to.prop_map(|to| Action::Send { content: format!("hi {to}"), to }),
        1 => Just(Action::Poll),
        1 => (500u64..5_000).prop_map(|down_ms| Action::Crash { down_ms }),
    ]
}

fn fault(hosts: Vec<String>) -> impl Strategy<Value = Fault> {
    let kind = prop_oneof![
        Just(FaultKind::Partition),
        Just(FaultKind::PartitionToServer),
        Just(FaultKind::PartitionFromServer),
        Just(FaultKind::Hold),
    ];
    (
        0..ACTIVE_MS / 100,
        1u64..60,
        proptest::sample::select(hosts),
        kind,
    )
        .prop_map(|(at, duration, host, kind)| Fault {
            at_ms: at * 100,
            duration_ms: (duration * 100).min(ACTIVE_MS - at * 100),
            host,
            kind,
        })
}

/// A restart of the server, about one scenario in four: down for 0.1 to 3 s,
/// its store kept or lost.
fn restart() -> impl Strategy<Value = Option<Fault>> {
    proptest::option::weighted(
        0.25,
        (1..ACTIVE_MS / 100 - 30, 1u64..=30, any::<bool>()).prop_map(|(at, down, keeps_store)| {
            Fault {
                at_ms: at * 100,
                duration_ms: down * 100,
                host: harness::world::SERVER_HOST.into(),
                kind: FaultKind::Restart { keeps_store },
            }
        }),
    )
}

/// A whole scenario.
pub fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..=4)
        .prop_flat_map(|n| {
            let users: Vec<_> = (0..n).map(user).collect();
            let steps = proptest::collection::vec(
                (0..ACTIVE_MS / 100, 0..n, action(n)).prop_map(|(at, user, action)| Step {
                    at_ms: at * 100,
                    user,
                    action,
                }),
                0..16,
            );
            let faults = proptest::collection::vec(fault(client_hosts(n)), 0..4);
            let latency = prop_oneof![3 => Just(10u64), 1 => Just(30), 1 => Just(100)];
            (users, steps, faults, latency, any::<u64>(), restart())
        })
        .prop_map(
            |(users, mut steps, mut faults, latency_ms_max, seed, restart)| {
                steps.sort_by_key(|s| (s.at_ms, s.user));
                faults.extend(restart);
                faults.sort_by(|a, b| (a.at_ms, &a.host).cmp(&(b.at_ms, &b.host)));
                let options = world(&[]);
                Scenario {
                    seed,
                    users,
                    steps,
                    faults: FaultPlan {
                        latency_ms_min: 1,
                        latency_ms_max,
                        faults,
                        push_bound_ms: None,
                    },
                    active_ms: ACTIVE_MS,
                    heal_ms: Scenario::heal_ms_for(
                        &options.timers,
                        options.client.poll_interval_ms,
                    ),
                    open_world: false,
                }
            },
        )
}

/// [`scenario`] for contract v2: every user presents a token, most valid; a
/// broken token comes without a header, so only the token can be believed.
pub fn scenario_v2() -> impl Strategy<Value = Scenario> {
    let token = prop_oneof![
        5 => Just(TokenPolicy::Valid),
        1 => Just(TokenPolicy::ExpiresMidSession),
        1 => Just(TokenPolicy::OtherUserHeader),
        1 => Just(TokenPolicy::Absent),
        2 => prop_oneof![
            Just(TokenPolicy::Expired),
            Just(TokenPolicy::Forged),
            Just(TokenPolicy::AlgNone),
            Just(TokenPolicy::Tampered),
        ],
    ];
    scenario()
        .prop_flat_map(move |s| {
            let n = s.users.len();
            (Just(s), proptest::collection::vec(token.clone(), n))
        })
        .prop_map(|(mut s, tokens)| {
            for (user, token) in s.users.iter_mut().zip(tokens) {
                if !token.registers() && token != TokenPolicy::Absent {
                    user.header = HeaderPolicy::Absent;
                }
                user.token = Some(token);
            }
            s
        })
}

//! `core`: one calm scenario covering identity (every bad header, a browser's
//! stripped websocket header, both username bounds), two tabs, pushes, the
//! mailbox, refusals, malformed sends, and the raw-packet abuser ([`super::abuse`]).

use std::time::Duration;
use tokio::time::Instant;

use serde_json::json;

use super::abuse::{abuse, abuse_packets};
use super::rules::{
    self, abuse_harms_nobody, calm_deliveries, presence_is_announced, registered_are_listed,
    sessions_open,
};
use super::{
    calm_scenario, check_client, send, step, user, AnnouncedTimers, CheckOptions, Names, Run,
    PROBE_EVERY_MS,
};
use crate::judge::{check_all, Facts};
use crate::net::transport::TcpConnector;
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario};
use crate::trace::{Recorder, TraceClock};
use crate::world::{play, DRAIN_MS};

/// Contents of the messages to `dave`, which the cursor run reads back unaltered.
pub(super) const DAVE_CONTENTS: [&str; 3] = [
    "first: plain",
    "second: héllo ✓ 漢字",
    "third: \"quoted\" \\ <b>",
];

/// Malformed `send_message` arguments (B1, M1).
pub(super) fn malformed_payloads(to: &str) -> Vec<String> {
    vec![
        json!("just a string").to_string(),
        json!({}).to_string(),
        json!([1, 2, 3]).to_string(),
        json!({"to": to, "content": "", "client_id": "empty-content"}).to_string(),
        json!({"to": to, "content": "é".repeat(4097), "client_id": "4097-chars"}).to_string(),
        json!({"to": to, "content": "ok", "client_id": "c".repeat(65)}).to_string(),
        json!({"to": to, "content": "ok", "client_id": ""}).to_string(),
        json!({"to": to, "content": 42, "client_id": "number-content"}).to_string(),
        json!({"content": "no recipient", "client_id": "no-to"}).to_string(),
    ]
}

/// When the raw-packet abuser starts, in the core run.
pub(super) const ABUSE_AT_MS: u64 = 3_300;

pub(super) fn core_scenario(names: &Names, options: &CheckOptions) -> Scenario {
    use HeaderPolicy::*;
    use OpenMode::*;
    use Profile::*;
    let users = vec![
        user(names.user("alice"), WebsocketFirst, Valid, Node), // 0
        user(names.user("bob"), PollingFirst, Valid, Node),     // 1
        user(names.user("carol"), WebsocketFirst, Valid, Node), // 2: never connects
        user(names.user("ghost"), WebsocketFirst, Absent, Node),
        user(names.user("empty"), PollingFirst, Empty, Node),
        user(names.user("bad"), WebsocketFirst, Invalid, Node),
        user(names.user("long"), PollingFirst, TooLong, Node),
        user(names.user("web"), WebsocketFirst, Valid, Browser), // 7: header stripped
        user(names.longest(), WebsocketFirst, Valid, Node),      // 8
        user(names.shortest(), PollingFirst, Valid, Node),       // 9
        user(names.user("mallory"), WebsocketFirst, Valid, Node), // 10: the raw abuser
        user(names.user("polly"), PollingOnly, Valid, Browser),  // 11: never upgrades
    ];
    let n = |i: usize| users[i].name.clone();
    let dave = names.user("dave");
    let mut steps = vec![step(0, 0, Action::Open)];
    steps.extend((3..=7).map(|u| step(0, u, Action::Open)));
    steps.extend([
        step(400, 1, Action::Open),
        step(800, 8, Action::Open),
        step(800, 9, Action::Open),
        step(800, 11, Action::Open),
        step(1_500, 0, Action::Open), // a second tab
        step(2_500, 0, send(&n(1), "hello bob")),
        step(2_550, 1, send(&n(0), &"é".repeat(4096))), // the longest valid content
        step(2_600, 8, send(&n(9), "bounds")),
        step(2_650, 0, send(&n(2), "to carol, offline")),
        step(2_700, 0, send(&dave, DAVE_CONTENTS[0])),
        step(2_710, 0, send(&dave, DAVE_CONTENTS[1])),
        step(2_720, 0, send(&dave, DAVE_CONTENTS[2])),
        step(2_750, 0, send(&n(3), "to ghost, unregistered")),
        step(2_850, 0, send("not a user!", "invalid recipient")),
        step(2_660, 0, send(&n(11), "to polly, over long-polling")),
        step(2_670, 11, send(&n(1), "from polly, over long-polling")),
    ]);
    steps.extend((3..=7).map(|u| step(2_800, u, send(&n(0), "from an unregistered connection"))));
    steps.extend(
        malformed_payloads(&n(1))
            .into_iter()
            .enumerate()
            .map(|(i, payload)| step(2_900 + i as u64, 0, Action::SendRaw { payload })),
    );
    steps.extend([
        step(3_200, 0, Action::Close), // the first tab; the second keeps alice online
        step(4_500, 9, Action::Close),
        step(5_000, 2, Action::Poll),
        step(5_500, 1, send(&n(9), "to a user who left")),
    ]);
    calm_scenario(options, users, steps, 2_900)
}

pub(super) async fn core_run(
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
) -> Run {
    let started = Instant::now();
    let scenario = core_scenario(names, options);
    let recorder = Recorder::new(TraceClock::Real(started));
    let steps = abuse_packets(names, timers, options.seed);
    let window = Duration::from_millis(options.scaled(1_000));
    let abuser = abuse(
        connector,
        names,
        &recorder,
        options,
        steps,
        (
            ABUSE_AT_MS,
            window,
            scenario.end_ms().saturating_sub(DRAIN_MS),
        ),
    );
    let connectors = vec![connector.clone(); scenario.users.len()];
    let client = check_client(options);
    let ((), well_formed) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        abuser
    );
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    let slack = options.scaled(1_000);
    violations.extend(sessions_open(&facts));
    violations.extend(registered_are_listed(
        &facts,
        &[names.longest(), names.shortest()],
    ));
    violations.extend(presence_is_announced(&facts, slack));
    violations.extend(calm_deliveries(&facts, slack));
    violations.extend(abuse_harms_nobody(&facts, ABUSE_AT_MS, &well_formed));
    violations.extend(rules::reused_client_id_gets_no_old_ack(&facts));
    violations.extend(rules::one_argument_only(&facts));
    Run::new("core", Some(scenario), trace, violations, started)
}

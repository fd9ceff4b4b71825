use harness::faults::{Fault, FaultKind};
use harness::judge::referee::Blame;
use harness::judge::Violation;
use harness::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario, UserSpec};
use harness::spec::Clause;
use harness::token::TokenPolicy;
use server_under_test::Bug;

use crate::support::*;

fn assert_clean(violations: &[Violation]) {
    assert!(
        violations.is_empty(),
        "the reference server must pass: {violations:#?}"
    );
}

/// The reference server passes `s`, and with `bug` on the checkers report
/// `clause`. Returns the reference run's rendered trace for further assertions.
fn reference_passes_bug_breaks(s: &Scenario, bug: Bug, clause: Clause) -> String {
    let (trace, violations) = run(s, &[]);
    assert_clean(&violations);
    let broken = run(s, &[bug]).1;
    assert!(
        broken.iter().any(|v| v.clause == clause),
        "expected a {clause} violation with --bug {bug}, got {:?}",
        broken.iter().map(|v| v.clause).collect::<Vec<_>>()
    );
    // The referee, comparing with the server's own record, blames the server
    // for every one of them: a bug switch is a server defect by construction.
    for v in &broken {
        let blame = v.ruling.as_ref().map(|r| r.blame);
        assert_eq!(blame, Some(Blame::Server), "--bug {bug}: {v:#?}");
    }
    trace.render()
}

/// alice and bob open a tab each at 0 s, then `more` happens.
fn alice_and_bob(more: Vec<(u64, usize, Action)>, faults: Vec<Fault>) -> Scenario {
    let users = [UserSpec::node("alice"), UserSpec::node("bob")];
    let mut steps = vec![(0, 0, Action::Open), (0, 1, Action::Open)];
    steps.extend(more);
    scenario(&users, steps, faults)
}

#[test]
fn unregistered_connections_stay_unregistered_i3() {
    // ghost connects without a username header (the seed's bug): the reference
    // refuses it; register_anonymous lets it in, and the checker must say I3.
    let ghost = UserSpec {
        header: HeaderPolicy::Absent,
        ..UserSpec::node("ghost")
    };
    let s = scenario(
        &[UserSpec::node("alice"), ghost],
        vec![
            (0, 0, Action::Open),
            (500, 1, Action::Open),
            (2_000, 0, send("ghost")),
            (3_000, 1, send("alice")),
        ],
        vec![],
    );
    reference_passes_bug_breaks(&s, Bug::RegisterAnonymous, Clause::I3);
}

#[test]
fn browser_websocket_first_is_unregistered_i1_i3() {
    // A browser cannot send headers on a websocket-first open: the user is not
    // registered, so a message to them goes to polling (M4) and arrives on a poll.
    let browser = UserSpec {
        profile: Profile::Browser,
        open: OpenMode::WebsocketFirst,
        ..UserSpec::node("rama")
    };
    let s = scenario(
        &[UserSpec::node("shyam_patel"), browser],
        vec![
            (0, 0, Action::Open),
            (0, 1, Action::Open),
            (2_000, 0, send("rama")),
        ],
        vec![],
    );
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let text = trace.render();
    assert!(text.contains("connect-refused"), "{text}");
    assert!(text.contains("delivery=Polling"), "{text}");
    assert!(text.contains("via=Mailbox"), "{text}");
}

#[test]
fn online_recipient_gets_a_push_within_100ms_m3() {
    let s = alice_and_bob(
        vec![(2_000, 0, send("bob")), (3_000, 1, send("alice"))],
        vec![],
    );
    reference_passes_bug_breaks(&s, Bug::NeverPush, Clause::M3);
}

#[test]
fn second_tab_keeps_user_online_p2() {
    // bob opens a second tab, then closes the first: the seed's last_sid_wins
    // drops bob from presence although a tab is still open.
    let s = alice_and_bob(
        vec![(2_000, 1, Action::Open), (4_000, 1, Action::Close)],
        vec![],
    );
    reference_passes_bug_breaks(&s, Bug::LastSidWins, Clause::P2);
}

#[test]
fn last_tab_closing_takes_user_offline_p3() {
    let s = alice_and_bob(vec![(3_000, 1, Action::Close)], vec![]);
    reference_passes_bug_breaks(&s, Bug::StalePresence, Clause::P3);
}

#[test]
fn crashed_client_behind_a_partition_goes_offline_after_ping_timeout_p3() {
    // bob's client dies while its link is cut: the FIN is lost, the server's side
    // is half-open, and only the Engine.IO ping timeout can take bob offline.
    let s = alice_and_bob(
        vec![(3_000, 1, Action::Crash { down_ms: 600_000 })],
        vec![fault(2_500, 2_000, "c1", FaultKind::Partition)],
    );
    let trace = reference_passes_bug_breaks(&s, Bug::StalePresence, Clause::P3);
    assert!(trace.contains("user-offline       bob"), "{trace}");
}

#[test]
fn push_into_a_dead_connection_falls_back_to_the_mailbox_m5() {
    // Server → bob is cut while alice sends: the push is lost on the wire and the
    // stream is dead for good. The reference stores it after the ack timeout and
    // bob's poll gets it; without the fallback it is lost.
    let s = alice_and_bob(
        vec![(5_000, 0, send("bob"))],
        vec![fault(4_000, 3_000, "c1", FaultKind::PartitionFromServer)],
    );
    let trace = reference_passes_bug_breaks(&s, Bug::NoAckFallback, Clause::M5);
    assert!(trace.contains("via=Mailbox"), "{trace}");
}

#[test]
fn a_stalled_writer_does_not_keep_a_closed_user_online_p3() {
    // engineioxide 0.17.9 (vendor/…-close-stalled-writer.patch): bob's link is
    // cut while alice floods him with pushes, so the server's websocket writer
    // blocks on a stream nobody reads; bob closes his tab behind the partition.
    // Only the ping timeout can notice, and its close_session used to wait for
    // that writer forever: bob stayed in /api/online for good (P3).
    let mut flood: Vec<(u64, usize, Action)> =
        (0..120).map(|i| (6_000 + i * 25, 0, send("bob"))).collect();
    flood.push((9_000, 1, Action::Close));
    let s = alice_and_bob(
        flood,
        vec![fault(5_000, 14_000, "c1", FaultKind::Partition)],
    );
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    assert!(
        trace.render().contains("user-offline       bob"),
        "{}",
        trace.render()
    );
}

/// Contract v2: alice presents a valid token; carol presents `policy` with a
/// `header`; each sends to the other.
fn v2_pair(policy: TokenPolicy, header: HeaderPolicy) -> Scenario {
    let alice = UserSpec {
        token: Some(TokenPolicy::Valid),
        ..UserSpec::node("alice")
    };
    let carol = UserSpec {
        token: Some(policy),
        header,
        ..UserSpec::node("carol")
    };
    scenario(
        &[alice, carol],
        vec![
            (0, 0, Action::Open),
            (500, 1, Action::Open),
            (2_000, 0, send("carol")),
            (3_000, 1, send("alice")),
        ],
        vec![],
    )
}

#[test]
fn a_v2_server_that_trusts_the_header_is_caught_a2() {
    // carol's valid token comes with mallory's header: registering mallory is
    // a name out of nowhere (A2, blamed on the server by its own record), and
    // carol, the token's user, is then missed as a recipient (M3).
    let s = v2_pair(TokenPolicy::OtherUserHeader, HeaderPolicy::Valid);
    assert_clean(&run(&s, &[]).1);
    let broken = run(&s, &[Bug::TrustHeader]).1;
    let a2: Vec<_> = broken.iter().filter(|v| v.clause == Clause::A2).collect();
    assert!(!a2.is_empty(), "{broken:#?}");
    assert!(
        a2.iter().any(|v| v.message.contains("'mallory'")),
        "{a2:#?}"
    );
    // carol without any token but her own header: registered by the header.
    let s = v2_pair(TokenPolicy::Absent, HeaderPolicy::Valid);
    reference_passes_bug_breaks(&s, Bug::TrustHeader, Clause::A2);
}

#[test]
fn a_v2_server_that_skips_exp_or_accepts_alg_none_is_caught_a1() {
    let s = v2_pair(TokenPolicy::Expired, HeaderPolicy::Absent);
    reference_passes_bug_breaks(&s, Bug::SkipExp, Clause::A1);
    let s = v2_pair(TokenPolicy::AlgNone, HeaderPolicy::Absent);
    reference_passes_bug_breaks(&s, Bug::AcceptAlgNone, Clause::A1);
}

#[test]
fn a_browser_registers_websocket_first_with_a_token_in_v2_a2() {
    // In v1 a browser cannot put the username header on a websocket: the
    // user is never registered. socket.io-client's `auth` travels in CONNECT,
    // so in v2 the same browser registers and gets its pushes.
    let browser = UserSpec {
        profile: Profile::Browser,
        open: OpenMode::WebsocketFirst,
        token: Some(TokenPolicy::Valid),
        ..UserSpec::node("rama")
    };
    let shyam = UserSpec {
        token: Some(TokenPolicy::Valid),
        ..UserSpec::node("shyam_patel")
    };
    let s = scenario(
        &[shyam, browser],
        vec![
            (0, 0, Action::Open),
            (0, 1, Action::Open),
            (2_000, 0, send("rama")),
        ],
        vec![],
    );
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let rendered = trace.render();
    assert!(rendered.contains("delivery=Websocket"), "{rendered}");
}

#[test]
fn a_token_expiring_mid_session_keeps_its_connection_and_reconnects_fresh_a4() {
    // The client mints a token expiring 3 s later at every connect: the open
    // connection outlives it (A4 allows that), and the client restarting
    // after a crash presents a fresh one.
    let carol = UserSpec {
        token: Some(TokenPolicy::ExpiresMidSession),
        ..UserSpec::node("carol")
    };
    let alice = UserSpec {
        token: Some(TokenPolicy::Valid),
        ..UserSpec::node("alice")
    };
    let s = scenario(
        &[alice, carol],
        vec![
            (0, 0, Action::Open),
            (0, 1, Action::Open),
            (6_000, 0, send("carol")),
            (8_000, 1, Action::Crash { down_ms: 500 }),
            (12_000, 0, send("carol")),
            (13_000, 1, send("alice")),
        ],
        vec![],
    );
    let (_, violations) = run(&s, &[]);
    assert_clean(&violations);
}

#[test]
fn a_v2_server_registering_the_tokenless_is_caught_a2_and_a5() {
    // register_anonymous in v2: carol, with no token at all, is let in as
    // `anonymous`; her messages then arrive from `anonymous`, not from the
    // user who sent them (A5, M2 with v2 identity).
    let s = v2_pair(TokenPolicy::Absent, HeaderPolicy::Absent);
    assert_clean(&run(&s, &[]).1);
    let broken = run(&s, &[Bug::RegisterAnonymous]).1;
    let clauses: Vec<Clause> = broken.iter().map(|v| v.clause).collect();
    assert!(clauses.contains(&Clause::A2), "{clauses:?}");
    assert!(clauses.contains(&Clause::A5), "{clauses:?}");
    assert!(
        !clauses.contains(&Clause::I3) && !clauses.contains(&Clause::M2),
        "v2 names its clauses: {clauses:?}"
    );
}

/// A server that answers nothing useful must not come out clean for want of
/// evidence: every other checker needs a connection to judge, so a valid user
/// who tried on a clean link and never got one is T1 (no Engine.IO session)
/// or P1 (a session, but CONNECT never succeeded).
#[test]
fn a_server_that_serves_nothing_fails_t1_not_clean() {
    let report = harness::Campaign::new()
        .server(
            |listener: harness::Listener, _env: harness::ServerEnv| async move {
                axum::serve(listener, axum::Router::new()).await
            },
        )
        .users(3)
        .duration(std::time::Duration::from_secs(20))
        .seeds(0..2)
        .shrink_budget(8)
        .run();
    let finding = report
        .finding
        .as_ref()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(finding.clause, Clause::T1, "{report}");
    assert!(
        finding.violation.message.contains("never got a connection"),
        "{}",
        finding.violation.message
    );
}

#[test]
fn valid_users_on_a_clean_link_get_connected_and_refusing_them_is_p1() {
    // alice's CONNECT never succeeding, as a server refusing every valid
    // user would leave it: the reference's own trace without her Connected.
    let s = alice_and_bob(vec![(2_000, 0, send("bob"))], vec![]);
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let refused = harness::trace::Trace {
        events: trace
            .events
            .iter()
            .filter(|e| {
                !(e.actor.starts_with("alice") && matches!(e.what, harness::trace::What::Connected))
            })
            .cloned()
            .collect(),
    };
    let found = harness::judge::valid_users_connect(&harness::judge::Facts::new(&refused, &s));
    assert!(
        found
            .iter()
            .any(|v| v.clause == Clause::P1 && v.message.contains("alice")),
        "{found:#?}"
    );
}

/// A device that sleeps for less than the heartbeat keeps its session: what
/// was pushed meanwhile is read on waking (late, so M3 does not judge it), and
/// nothing is lost.
#[test]
fn a_short_sleep_keeps_the_session_and_loses_nothing() {
    let s = alice_and_bob(
        vec![
            (2_000, 1, Action::Freeze { ms: 8_000 }),
            (3_000, 0, send("bob")),
            (12_000, 0, send("bob")),
        ],
        vec![],
    );
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let text = trace.render();
    assert!(text.contains("the device sleeps for 8000 ms"), "{text}");
    assert!(!text.contains("overdue on waking"), "{text}");
}

/// A device that sleeps past pingInterval + pingTimeout: the server times the
/// session out while a push to it waits for an ack; on waking the client's
/// overdue heartbeat ends the session before anything is read. The push must
/// have fallen back to the mailbox (M5): without the fallback it is lost.
#[test]
fn a_long_sleep_loses_nothing_and_no_ack_fallback_fails_m5() {
    let mut s = alice_and_bob(
        vec![
            (2_000, 1, Action::Freeze { ms: 60_000 }),
            (5_000, 0, send("bob")),
        ],
        vec![],
    );
    s.active_ms = 70_000;
    let text = reference_passes_bug_breaks(&s, Bug::NoAckFallback, Clause::M5);
    assert!(text.contains("overdue on waking"), "{text}");
}

/// A device asleep (its session alive) while another user's tabs churn: the
/// presence news for it outgrows its connection's send buffer. The server may
/// not drop news and leave it showing a user wrongly for good (P2, P3): it
/// disconnects the connection that fell behind, and the client reconnects to
/// the present. Before the fix (the reference server ignored the full buffer,
/// and socketioxide's `disconnect` did nothing on a full buffer: vendor/
/// socketioxide-0.18.9-disconnect-when-full.patch) alice's last news said bob
/// was offline while he was online, and carol online while she was not.
#[test]
fn presence_news_outgrowing_a_sleeping_devices_buffer_is_not_lost() {
    let s = crate::churn::sleep_through_churn();
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let text = trace.render();
    assert!(text.contains("the device sleeps for 22000 ms"), "{text}");
    // alice's sleeping connection was closed under her and she came back.
    assert!(text.contains("alice#2"), "{text}");
}

/// alice on a websocket, polly on long-polling for good (`transports:
/// ['polling']`, a browser behind a proxy without WebSocket support).
fn alice_and_polly(more: Vec<(u64, usize, Action)>) -> Scenario {
    let polly = UserSpec {
        profile: Profile::Browser,
        open: OpenMode::PollingOnly,
        ..UserSpec::node("polly")
    };
    let mut steps = vec![(0, 0, Action::Open), (0, 1, Action::Open)];
    steps.extend(more);
    scenario(&[UserSpec::node("alice"), polly], steps, vec![])
}

#[test]
fn a_user_who_never_upgrades_gets_pushes_and_presence_over_long_polling() {
    let s = alice_and_polly(vec![
        (2_000, 0, send("polly")),
        (3_000, 1, send("alice")),
        (4_000, 0, Action::Close),
        (6_000, 0, Action::Open),
    ]);
    let text = reference_passes_bug_breaks(&s, Bug::NeverPush, Clause::M3);
    // Judged as a push (M3), having come over the polling transport, and
    // presence news both ways reached the long-polling tab.
    let (trace, _) = run(&s, &[]);
    assert!(
        trace.events.iter().any(|e| e.actor == "polly#1"
            && matches!(
                e.what,
                harness::trace::What::Received {
                    via: harness::trace::Via::PollingTransport,
                    ..
                }
            )),
        "{text}"
    );
    assert!(
        !trace
            .events
            .iter()
            .any(|e| e.what == harness::trace::What::Upgraded),
        "{text}"
    );
    let polly_saw = |online: bool| {
        trace.events.iter().any(|e| {
            e.actor == "polly#1"
                && e.what
                    == harness::trace::What::Presence {
                        username: "alice".into(),
                        online,
                    }
        })
    };
    assert!(polly_saw(false) && polly_saw(true), "{text}");
    // Its tab stayed on one session all along: a poll loop that failed
    // would have ended it.
    assert!(!text.contains("polly#2"), "{text}");
}

#[test]
fn a_user_who_never_upgrades_is_taken_offline_when_it_leaves_p3() {
    let s = alice_and_polly(vec![(3_000, 1, Action::Close)]);
    reference_passes_bug_breaks(&s, Bug::StalePresence, Clause::P3);
}

#[test]
fn a_background_tab_notices_a_dead_link_late_and_loses_nothing() {
    // carol is a background browser tab: her heartbeat check runs on a 1 s
    // grid. A partition cuts her link; the server takes her offline, she
    // notices late, reconnects, and what alice sent meanwhile reaches her.
    let carol = UserSpec {
        profile: Profile::Browser,
        open: OpenMode::PollingFirst,
        background: true,
        ..UserSpec::node("carol")
    };
    let s = scenario(
        &[UserSpec::node("alice"), carol],
        vec![
            (0, 0, Action::Open),
            (0, 1, Action::Open),
            (5_000, 0, send("carol")),
            (9_000, 0, send("carol")),
        ],
        vec![fault(4_000, 60_000, "c1", FaultKind::Partition)],
    );
    let text = reference_passes_bug_breaks(&s, Bug::NoAckFallback, Clause::M5);
    assert!(text.contains("carol#2"), "carol came back: {text}");
}

/// alice and bob; bob leaves and finds two messages waiting when he is back
/// (his cursor moves to 2); then the server restarts, keeping its store or
/// not; bob leaves again and alice writes to him once before and once after
/// the restart, after bob's first poll since.
fn restart_after_mail(keeps_store: bool) -> Scenario {
    alice_and_bob(
        vec![
            (1_000, 1, Action::Close),
            (2_000, 0, send("bob")),
            (2_500, 0, send("bob")),
            (3_000, 1, Action::Poll),
            (3_500, 1, Action::Open),
            (6_000, 1, Action::Close),
            (7_000, 0, send("bob")),
            (12_000, 1, Action::Poll),
            (13_000, 0, send("bob")),
        ],
        vec![fault(
            9_000,
            1_500,
            harness::world::SERVER_HOST,
            FaultKind::Restart { keeps_store },
        )],
    )
}

#[test]
fn a_restart_that_keeps_the_store_loses_no_mail_and_presence_recovers() {
    // What bob's mailbox held at the restart survives it (L2), everyone
    // reconnects at once and presence converges (P1-P3); with a fresh store
    // mail from before the restart may go (nothing promised to keep it),
    // what comes after must not: bob's cursor (2) lies above the fresh
    // mailbox's seqs, the server answers 409 and bob polls again from 0
    // (L4). A server that answers 200 hides the new mail for good.
    for keeps_store in [true, false] {
        let s = restart_after_mail(keeps_store);
        let (trace, violations) = run(&s, &[]);
        assert_clean(&violations);
        let text = trace.render();
        assert!(text.contains("alice#2"), "alice came back: {text}");
        let stale = text.contains("stale cursor (409)");
        assert_eq!(
            stale, !keeps_store,
            "a 409 only after a fresh store: {text}"
        );
    }
    reference_passes_bug_breaks(
        &restart_after_mail(false),
        Bug::IgnoreStaleCursor,
        Clause::L4,
    );
}

#[test]
fn a_restarted_server_never_reuses_a_message_id_m2() {
    // Ids from before and after a restart with a fresh store: all distinct
    // and increasing, or bob's client (which de-duplicates by id) would
    // drop the new message as one it already has.
    let (trace, _) = run(&restart_after_mail(false), &[]);
    let ids: Vec<u64> = trace
        .events
        .iter()
        .filter_map(|e| match e.what {
            harness::trace::What::Accepted { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn socket_io_clients_habits_buffer_offline_sends_and_retry_with_the_same_client_id() {
    // alice runs socket.io-client with its habits. She writes to bob before
    // her tab is open: the send waits in the buffer and leaves when the tab
    // connects. Then her link holds everything for 12 s: her next message
    // waits past her ack timeout, so she sends it again, same client_id;
    // both arrive when the link lets go. The reference server remembers the
    // client_id (M1's MAY): both acks carry one id, and bob is shown the
    // message once.
    let alice = UserSpec {
        socketio_js: true,
        ..UserSpec::node("alice")
    };
    let s = scenario(
        &[alice, UserSpec::node("bob")],
        vec![
            (0, 1, Action::Open),
            (1_000, 0, send("bob")),
            (2_000, 0, Action::Open),
            (4_000, 0, send("bob")),
        ],
        vec![fault(3_000, 12_000, "c0", FaultKind::Hold)],
    );
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let text = trace.render();
    assert!(
        text.contains("queued") && text.contains("alice-1"),
        "{text}"
    );
    let resent = trace
        .events
        .iter()
        .filter(|e| matches!(&e.what, harness::trace::What::Resent { client_id, .. } if client_id == "alice-2"))
        .count();
    assert!(resent >= 1, "alice-2 was sent again: {text}");
    let ids: Vec<u64> = trace
        .events
        .iter()
        .filter_map(|e| match &e.what {
            harness::trace::What::Accepted { client_id, id, .. } if client_id == "alice-2" => {
                Some(*id)
            }
            _ => None,
        })
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|&id| id == ids[0]),
        "one id for every ack: {ids:?}\n{text}"
    );
    let shown = trace
        .events
        .iter()
        .filter(|e| {
            e.actor.starts_with("bob")
                && matches!(e.what, harness::trace::What::Received { id, .. } if id == ids[0])
        })
        .count();
    assert_eq!(shown, 1, "bob sees it once: {text}");
}

#[test]
fn socket_io_clients_upgrade_probe_races_a_long_poll_and_loses_nothing() {
    // alice runs socket.io-client polling first: her upgrade probe goes out
    // while a long-poll is in flight, the poll is let finish (the server
    // answers it), and only then does she send `5`. bob writes to her every
    // 10 ms from before she opens until well after: the server queues pushes
    // on polling, mid-upgrade and on the websocket. Every one must come,
    // once, on her one connection, some over each transport.
    let alice = UserSpec {
        socketio_js: true,
        open: OpenMode::PollingFirst,
        ..UserSpec::node("alice")
    };
    let mut steps = vec![(0, 1, Action::Open), (1_000, 0, Action::Open)];
    steps.extend((0..40).map(|i| (1_000 + 10 * i, 1, send("alice"))));
    let s = scenario(&[alice, UserSpec::node("bob")], steps, vec![]);
    let (trace, violations) = run(&s, &[]);
    assert_clean(&violations);
    let text = trace.render();
    // The probe went out before CONNECT's answer was in: engineioxide
    // answered the poll in flight with a NOOP once the probe came, and sent
    // all it queued since, CONNECT's answer included, over the websocket.
    let when = |what: harness::trace::What| {
        trace
            .events
            .iter()
            .position(|e| e.actor == "alice#1" && e.what == what)
    };
    let (upgraded, connected) = (
        when(harness::trace::What::Upgraded),
        when(harness::trace::What::Connected),
    );
    assert!(
        upgraded.is_some() && upgraded < connected,
        "the probe raced the polls:\n{text}"
    );
    let pushed: Vec<u64> = trace
        .events
        .iter()
        .filter_map(|e| match &e.what {
            harness::trace::What::Accepted {
                id,
                delivery: harness::contract::Delivery::Websocket,
                ..
            } => Some(*id),
            _ => None,
        })
        .collect();
    let mut got: Vec<u64> = trace
        .events
        .iter()
        .filter_map(|e| match &e.what {
            harness::trace::What::Received { id, .. } if e.actor == "alice#1" => Some(*id),
            _ => None,
        })
        .collect();
    got.sort_unstable();
    assert!(pushed.len() >= 30, "{text}");
    assert_eq!(
        got, pushed,
        "each push once, on her one connection:\n{text}"
    );
}

//! `cluster` (`--level cluster`, each node's URL given with `--node`): a
//! deployment of several nodes judged as one server (contract N1–N3).
//!
//! - **N1, one state.** A calm scenario whose users are pinned to nodes
//!   through each node's own URL, so every pair of nodes has a sender on one
//!   and a recipient on the other: pushes across nodes, presence announced
//!   across nodes, mail sent on one node and polled on another. The
//!   simulation's checkers and the core run's rules judge it as they judge
//!   one server; what they find here is N1 (the clause they name is quoted).
//!   Besides: `/api/online` asked on every node ([`every_node_agrees`]),
//!   each mailbox read on every node ([`one_mailbox`]), and a retry sent on
//!   another node ([`retry_on_any_node`]).
//! - **N2, sessions stay where they live.** Polling sessions through the
//!   public URL, each request carrying the session's cookies as a browser's
//!   do ([`sessions_stay`]); and a node asked for a session another node
//!   holds ([`foreign_session`]).
//! - **N3, a dead node takes its users with it** (`--kill-node-cmd`): a user
//!   alone on the last node, that node killed, and the first node watched
//!   for `2 × (pingInterval + pingTimeout)` ([`dead_node`]).
//!
//! N4 (losing the adapter) needs a node cut off from Redis, which only the
//! simulation can do to a deployment it does not own.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::probes::{answer_line, get_as};
use super::{
    abbreviate, answers_to, calm_deliveries, calm_scenario, check_client, presence_is_announced,
    send, send_and_answer, sessions_open, step, user, AnnouncedTimers, CheckOptions, Names, Run,
    PROBE_EVERY_MS,
};
use crate::client::probe_online_as;
use crate::judge::{check_all, Facts, Violation};
use crate::net::malformed::Out;
use crate::net::transport::{self, TcpConnector, TcpWebSocket};
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario};
use crate::spec::Clause;
use crate::trace::{Event, Recorder, TraceClock, What};
use crate::world::{play, sleep_until_ms, DRAIN_MS};

/// One node of the deployment, as `--node` gave it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its own URL.
    pub url: String,
    /// How to reach it.
    pub connector: TcpConnector,
}

/// Users a node carries in the scenario: `ws` and `poll` stay, `late`
/// comes and goes, `mail` never connects and only polls.
const PER_NODE: usize = 4;

/// Polling sessions opened through the public URL (N2): with two nodes and
/// no stickiness, each meets the other node on its second request.
const PUBLIC_SESSIONS: usize = 4;

/// The actor of the probes of node `i` (`observer@n1` …).
fn observer(i: usize) -> String {
    format!("observer@n{}", i + 1)
}

/// The node of the scenario's user `index`.
fn node_of(index: usize) -> usize {
    index / PER_NODE
}

/// Users on every node, each sending across nodes: to the `ws` user of the
/// next node (pushed there), to the first node's `ws` user (ids to one
/// recipient from every node), and to the next node's `mail` user (stored on
/// one node, polled on another, with an entry from that node too).
fn cluster_scenario(names: &Names, options: &CheckOptions, nodes: usize) -> Scenario {
    use HeaderPolicy::Valid;
    use OpenMode::*;
    use Profile::Node;
    let name = |i: usize, role: &str| names.user(&format!("n{}_{role}", i + 1));
    let mut users = Vec::new();
    for i in 0..nodes {
        users.push(user(name(i, "ws"), WebsocketFirst, Valid, Node));
        users.push(user(name(i, "poll"), PollingFirst, Valid, Node));
        users.push(user(name(i, "late"), WebsocketFirst, Valid, Node));
        users.push(user(name(i, "mail"), WebsocketFirst, Valid, Node));
    }
    let ws = |i: usize| PER_NODE * (i % nodes);
    let (poll, late, mail) = (|i| ws(i) + 1, |i| ws(i) + 2, |i| ws(i) + 3);
    let who = |u: usize| users[u].name.clone();
    let mut steps = Vec::new();
    for i in 0..nodes {
        let gap = 10 * i as u64;
        steps.extend([
            step(0, ws(i), Action::Open),
            step(300, poll(i), Action::Open),
            step(1_500 + gap, late(i), Action::Open),
            step(
                2_000 + gap,
                ws(i),
                send(&who(ws(i + 1)), "pushed across nodes"),
            ),
            step(
                2_100 + gap,
                poll(i),
                send(&who(ws(i + 1)), "over polling, across nodes"),
            ),
            step(
                // One recipient, from every node in turn and back to the
                // first, each send after the previous one's ack: ids must
                // increase (M2 across nodes).
                2_300 + 250 * i as u64,
                poll(i),
                send(&who(ws(0)), "to one recipient, from every node"),
            ),
            step(
                2_400 + gap,
                ws(i),
                send(&who(mail(i + 1)), "mailed on one node"),
            ),
            step(
                2_450 + gap,
                poll(i + 1),
                send(&who(mail(i + 1)), "mailed on its own node"),
            ),
            step(3_500 + gap, late(i), Action::Close),
            step(5_000 + gap, mail(i), Action::Poll),
        ]);
    }
    steps.push(step(
        2_300 + 250 * nodes as u64,
        poll(0),
        send(&who(ws(0)), "to one recipient, from the first node again"),
    ));
    calm_scenario(options, users, steps, 2_500)
}

/// The cluster run: the scenario across nodes, the mailboxes and a retry
/// read on every node, sessions through the public URL, and a dead node
/// when `kill` says how.
pub(super) async fn cluster_run(
    public: &TcpConnector,
    nodes: &[Node],
    names: &Names,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
    (kill, adapter): (Option<&str>, Option<(&str, &str)>),
) -> Run {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    if nodes.len() < 2 {
        let mut run = Run::new("cluster", None, recorder.trace(), Vec::new(), started);
        run.note = Some(format!(
            "{} node URL given: a deployment of several nodes is judged through each node's own URL (--node URL, once per node, at least two)",
            nodes.len()
        ));
        return run;
    }
    let scenario = cluster_scenario(names, options, nodes.len());
    let connectors = (0..scenario.users.len())
        .map(|u| nodes[node_of(u)].connector.clone())
        .collect();
    let client = check_client(options);
    let patience = options.patience();
    let node_probes = probe_every_node(nodes, &recorder, scenario.end_ms(), patience);
    tokio::join!(
        play(
            &scenario,
            connectors,
            public.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        node_probes
    );
    // The scenario is judged on what happened while it played: the probes
    // after it have users of their own.
    let played = recorder.trace();
    let mailboxes: Vec<String> = (0..nodes.len())
        .map(|i| scenario.users[PER_NODE * i + 3].name.clone())
        .collect();
    read_mailboxes(nodes, &mailboxes, &recorder, options).await;
    retry_probe(nodes, names, &recorder, options).await;
    public_sessions(public, names, &recorder, options).await;
    foreign_session_probe(nodes, names, &recorder, options).await;
    let mut n4 = None;
    if let Some(commands) = adapter {
        n4 = adapter_phase(nodes, names, &recorder, options, commands).await;
    }
    let mut note = None;
    if let Some(command) = kill {
        note = dead_node_phase(nodes, names, &recorder, options, timers, command).await;
    }

    let trace = recorder.trace();
    let facts = Facts::new(&played, &scenario);
    let slack = options.scaled(1_000);
    let mut across: Vec<Violation> = check_all(&played, &scenario);
    across.extend(sessions_open(&facts));
    across.extend(presence_is_announced(&facts, slack));
    across.extend(calm_deliveries(&facts, slack));
    let mut violations: Vec<Violation> = across
        .into_iter()
        .map(|v| across_nodes(v, &scenario))
        .collect();
    violations.extend(every_node_agrees(&facts, slack));
    violations.extend(ids_increase(&facts, &scenario));
    violations.extend(one_mailbox(&trace.events, &mailboxes));
    violations.extend(retry_on_any_node(&trace.events));
    violations.extend(sessions_stay(&trace.events));
    violations.extend(foreign_session(&trace.events));
    let bound = timers.map(n3_bound_ms);
    violations.extend(dead_node(&trace.events, bound.unwrap_or(0), slack));
    violations.extend(adapter_loss(&trace.events));

    let mut sentences = BTreeSet::new();
    let events = &trace.events;
    let accepted_across = facts.sent.values().any(|s| {
        s.accepted.is_some()
            && node_of_name(&scenario, &s.to)
                != node_of_name(&scenario, crate::judge::user_of(&s.conn))
    });
    let node_probes_answered = (0..nodes.len()).all(|i| {
        played
            .events
            .iter()
            .any(|e| e.actor == observer(i) && matches!(e.what, What::OnlineProbe { .. }))
    });
    if node_probes_answered
        && played
            .events
            .iter()
            .any(|e| matches!(e.what, What::Presence { .. }))
    {
        sentences.insert("N1.1".to_owned());
    }
    if accepted_across {
        sentences.extend(["N1.2".to_owned(), "N1.3".to_owned()]);
    }
    if mailboxes_read_on_two_nodes(events) {
        sentences.insert("N1.4".to_owned());
    }
    if retry_answered_on_two_nodes(events) {
        sentences.insert("N1.5".to_owned());
    }
    if public_session_answered(events) {
        sentences.insert("N2.1".to_owned());
    }
    if events.iter().any(|e| e.actor == FOREIGN && answered(e)) {
        sentences.insert("N2.2".to_owned());
    }
    let mut run = Run::new("cluster", Some(scenario), trace, violations, started);
    run.sentences = sentences;
    if kill.is_some() && note.is_none() && run.trace.events.iter().any(|e| e.actor == KILL) {
        run.reached.insert(Clause::N3);
    }
    let n3 = note.or_else(|| {
        kill.is_none().then(|| {
            "needs a node killed mid-check: pass --kill-node-cmd CMD (run with sh -c, the last node's URL as $1)"
                .to_owned()
        })
    });
    if let Some(n3) = n3 {
        run.clause_notes.insert(Clause::N3, n3);
    }
    if adapter.is_some() && n4.is_none() && adapter_exercised(&run.trace.events) {
        run.reached.insert(Clause::N4);
    }
    let n4 = n4.or_else(|| {
        adapter.is_none().then(|| {
            "needs the last node cut off from the shared state (Redis) while it serves: pass --adapter-cut-cmd CMD and --adapter-heal-cmd CMD (run with sh -c, the node's URL as $1)".to_owned()
        })
    });
    if let Some(n4) = n4 {
        run.clause_notes.insert(Clause::N4, n4);
    }
    run
}

/// The node a scenario user is pinned to, by name.
fn node_of_name(scenario: &Scenario, name: &str) -> Option<usize> {
    scenario
        .users
        .iter()
        .position(|u| u.name == name)
        .map(node_of)
}

/// A violation of the scenario across nodes is N1's: the deployment is not
/// one server. The clause the checker named is kept in the message.
fn across_nodes(mut v: Violation, scenario: &Scenario) -> Violation {
    let mut placed: Vec<String> = Vec::new();
    let conn_user = v.subject.conn.as_deref().map(crate::judge::user_of);
    for name in v.subject.user.as_deref().into_iter().chain(conn_user) {
        if let Some(node) = node_of_name(scenario, name) {
            let said = format!("{name} on n{}", node + 1);
            if !placed.contains(&said) {
                placed.push(said);
            }
        }
    }
    let placed = if placed.is_empty() {
        String::new()
    } else {
        format!(" ({})", placed.join(", "))
    };
    v.message = format!("{} across nodes{placed}: {}", v.clause, v.message);
    v.clause = Clause::N1;
    v
}

/// Probes `/api/online` on every node every [`PROBE_EVERY_MS`] until the
/// drain, each recorded as that node's observer.
async fn probe_every_node(nodes: &[Node], recorder: &Recorder, end_ms: u64, patience: Duration) {
    let probes = nodes.iter().enumerate().map(|(i, node)| {
        let recorder = recorder.clone();
        let connector = node.connector.clone();
        async move {
            let actor = observer(i);
            // Out of phase with the public observer, and each node with the next.
            let mut at_ms = PROBE_EVERY_MS / 2 + 50 * i as u64;
            while at_ms + DRAIN_MS < end_ms {
                sleep_until_ms(&recorder, at_ms).await;
                probe_online_as(&connector, &recorder, &actor, patience).await;
                at_ms += PROBE_EVERY_MS;
            }
        }
    });
    futures_util::future::join_all(probes).await;
}

/// N1 (presence): every node's `/api/online` lists exactly the users online
/// on any node, once a change has had `slack` to cross.
pub(crate) fn every_node_agrees(facts: &Facts<'_>, slack: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    for probe in facts
        .trace
        .events
        .iter()
        .filter(|e| e.actor.starts_with("observer@"))
    {
        let What::OnlineProbe { users: listed } = &probe.what else {
            continue;
        };
        let t = probe.at_ms;
        for spec in facts.scenario.users.iter().filter(|u| u.can_register()) {
            let name = spec.name.as_str();
            // Settled: no connection of the user opened or closed in the
            // last `slack` (a probe racing a change proves nothing).
            let settled = facts.conns_of(name).all(|c| {
                [c.attempt_at, c.connected_at, c.disconnected_at]
                    .into_iter()
                    .flatten()
                    .all(|at| at + slack <= t || at > t)
            });
            if !settled {
                continue;
            }
            let online = facts.is_online_at(name, t);
            let is_listed = listed.iter().any(|u| u == name);
            if online == is_listed {
                continue;
            }
            let node = facts
                .scenario
                .users
                .iter()
                .position(|u| u.name == name)
                .map_or(0, |i| node_of(i) + 1);
            let message = if online {
                format!(
                    "{}: /api/online leaves out {name}, who is online on n{node}",
                    &probe.actor["observer@".len()..]
                )
            } else {
                format!(
                    "{}: /api/online lists {name}, whose last connection (on n{node}) closed",
                    &probe.actor["observer@".len()..]
                )
            };
            let mut evidence = vec![probe.clone()];
            evidence.extend(
                facts
                    .conns_of(name)
                    .filter_map(|c| facts.connected_event(&c.label))
                    .take(3),
            );
            found.push(
                Violation {
                    clause: Clause::N1,
                    at_ms: t,
                    message,
                    evidence,
                    subject: Default::default(),
                    ruling: None,
                }
                .user(name),
            );
        }
    }
    // One finding per user and node is enough to see it.
    let mut seen = BTreeSet::new();
    found.retain(|v| seen.insert((v.subject.user.clone(), v.evidence[0].actor.clone())));
    found
}

/// N1 (M2 across nodes): a message sent after another to the same recipient
/// was acked carries a higher id, whichever nodes accepted them; no two
/// share an id.
pub(crate) fn ids_increase(facts: &Facts<'_>, scenario: &Scenario) -> Vec<Violation> {
    use crate::judge::{user_of, Sent};
    let mut found = Vec::new();
    let mut by_recipient: std::collections::BTreeMap<&str, Vec<&Sent>> =
        std::collections::BTreeMap::new();
    for sent in facts.sent.values().filter(|s| s.accepted.is_some()) {
        by_recipient.entry(sent.to.as_str()).or_default().push(sent);
    }
    let node = |s: &Sent| node_of_name(scenario, user_of(&s.conn)).map_or(0, |n| n + 1);
    for (to, sends) in by_recipient {
        for a in &sends {
            let Some((a_ack, a_id, _)) = &a.accepted else {
                continue;
            };
            for b in &sends {
                let Some((b_ack, b_id, _)) = &b.accepted else {
                    continue;
                };
                let wrong = if a.event == b.event {
                    None
                } else if a_id == b_id {
                    (a.event.at_ms < b.event.at_ms).then(|| format!("both got id {a_id}"))
                } else if b.event.at_ms > a_ack.at_ms && b_id < a_id {
                    Some(format!("id {b_id} after id {a_id}"))
                } else {
                    None
                };
                let Some(wrong) = wrong else { continue };
                found.push(Violation {
                    clause: Clause::N1,
                    at_ms: b_ack.at_ms,
                    message: format!(
                        "M2 across nodes: two messages to {to}, accepted on n{} then n{}, {wrong}: ids are not unique and increasing per recipient across nodes",
                        node(a),
                        node(b)
                    ),
                    evidence: vec![a.event.clone(), a_ack.clone(), b.event.clone(), b_ack.clone()],
                    subject: Default::default(),
                    ruling: None,
                });
            }
        }
    }
    found.truncate(3);
    found
}

// ---------------------------------------------------------------------------
// N1: one mailbox, read on every node

const MAILBOX: &str = "mailbox@";

/// Reads each mailbox on every node, from the start.
async fn read_mailboxes(
    nodes: &[Node],
    mailboxes: &[String],
    recorder: &Recorder,
    options: &CheckOptions,
) {
    for name in mailboxes {
        for (i, node) in nodes.iter().enumerate() {
            read_mailbox(
                &node.connector,
                recorder,
                &format!("{MAILBOX}n{}", i + 1),
                name,
                options,
            )
            .await;
        }
    }
}

/// `(seq, id)` of the entries an answer to `/api/messages` lists; `None`
/// unless it is a 200 with entries.
fn entries_of(answer: &str) -> Option<Vec<(u64, u64)>> {
    let json = ok_body(answer)?;
    let entries = json["messages"]
        .as_array()?
        .iter()
        .filter_map(|e| Some((e["seq"].as_u64()?, e["id"].as_u64()?)))
        .collect::<Vec<_>>();
    (!entries.is_empty()).then_some(entries)
}

/// The JSON body of a recorded `200 <content-type> {…}` answer.
fn ok_body(answer: &str) -> Option<Value> {
    let rest = answer.strip_prefix("200 ")?;
    serde_json::from_str(&rest[rest.find('{')?..]).ok()
}

fn mailboxes_read_on_two_nodes(events: &[Event]) -> bool {
    let readers: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.actor.starts_with(MAILBOX))
        .filter(
            |e| matches!(&e.what, What::Exchange { answer, .. } if entries_of(answer).is_some()),
        )
        .map(|e| e.actor.as_str())
        .collect();
    readers.len() >= 2
}

/// One read of a mailbox: its event, and its `(seq, id)` entries when it
/// answered 200 with some.
type MailboxRead<'e> = (&'e Event, Option<Vec<(u64, u64)>>);

/// N1 (mailbox): every node returns the same entries of one mailbox, in
/// one `seq` order.
pub(crate) fn one_mailbox(events: &[Event], mailboxes: &[String]) -> Vec<Violation> {
    let mut found = Vec::new();
    for name in mailboxes {
        let reads: Vec<MailboxRead<'_>> = events
            .iter()
            .filter(|e| e.actor.starts_with(MAILBOX))
            .filter_map(|e| match &e.what {
                What::Exchange { request, answer } if request.contains(&format!("{name:?}")) => {
                    Some((e, entries_of(answer)))
                }
                _ => None,
            })
            .collect();
        let Some((first, Some(reference))) = reads.iter().find(|(_, r)| r.is_some()) else {
            continue;
        };
        for (event, entries) in &reads {
            let entries = entries.clone().unwrap_or_default();
            if &entries != reference {
                found.push(Violation {
                    clause: Clause::N1,
                    at_ms: event.at_ms,
                    message: format!(
                        "the mailbox of {name} read on {} is not the one read on {}: (seq, id) {entries:?} instead of {reference:?}",
                        &event.actor[MAILBOX.len()..],
                        &first.actor[MAILBOX.len()..],
                    ),
                    evidence: vec![(*first).clone(), (*event).clone()],
                    subject: Default::default(),
                    ruling: None,
                });
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// N1: a retry on another node

const RETRY: &str = "retry@";
/// The retried message's ack ids: first send, repeat on the same node,
/// repeat on the next node, a different content under the same id there.
const RETRY_ACKS: [u64; 4] = [1, 2, 3, 4];

/// One user on the first two nodes at once sends one message, repeats it on
/// the same node, repeats it on the other node, then sends another content
/// under the same `client_id` there.
async fn retry_probe(nodes: &[Node], names: &Names, recorder: &Recorder, options: &CheckOptions) {
    let name = names.user("n_retry");
    let to = names.user("n_retry_to");
    let window = Duration::from_millis(options.scaled(2_000));
    let payload = |content: &str| json!({"to": to, "content": content, "client_id": format!("retry-{}", names.tag)});
    let plan = [
        (0, RETRY_ACKS[0], payload("sent once, retried")),
        (0, RETRY_ACKS[1], payload("sent once, retried")),
        (1, RETRY_ACKS[2], payload("sent once, retried")),
        (1, RETRY_ACKS[3], payload("another content, same client_id")),
    ];
    let mut sockets: Vec<Option<TcpWebSocket>> = Vec::new();
    for node in &nodes[..2] {
        let i = sockets.len();
        sockets.push(
            register(
                &node.connector,
                &name,
                recorder,
                &format!("{RETRY}n{}", i + 1),
                options,
            )
            .await,
        );
    }
    for (node, ack, body) in plan {
        let Some(ws) = sockets[node].as_mut() else {
            continue;
        };
        let packet = format!("42{ack}{}", json!(["send_message", body]));
        let (answer, _) = send_and_answer(ws, &[Out::Text(packet.clone())], window).await;
        record(recorder, &format!("{RETRY}n{}", node + 1), &packet, answer);
    }
    for ws in sockets.into_iter().flatten() {
        let mut ws = ws;
        let _ = ws.close(None).await;
    }
}

/// The ack to `42<ack>[…` among the retry probe's exchanges: its event and
/// the message id it carries (`None` for a refusal).
fn retry_ack(events: &[Event], ack: u64) -> Option<(&Event, Option<u64>)> {
    ack_of(events, RETRY, ack)
}

fn retry_answered_on_two_nodes(events: &[Event]) -> bool {
    retry_ack(events, RETRY_ACKS[0]).is_some() && retry_ack(events, RETRY_ACKS[2]).is_some()
}

/// N1 (M1 across nodes): a server that recognises a retry on the node that
/// took the message recognises it on any node; and no node gives the
/// original ack to a different content under the same `client_id`.
pub(crate) fn retry_on_any_node(events: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let Some((first, Some(id))) = retry_ack(events, RETRY_ACKS[0]) else {
        return found;
    };
    let evidence = |e: &Event| vec![first.clone(), e.clone()];
    let same_node = retry_ack(events, RETRY_ACKS[1]);
    if let (Some((_, Some(again))), Some((other, Some(there)))) =
        (same_node, retry_ack(events, RETRY_ACKS[2]))
    {
        if again == id && there != id {
            found.push(Violation {
                clause: Clause::N1,
                at_ms: other.at_ms,
                message: format!(
                    "M1 across nodes: a retry is recognised on the node that took the message (id {id} again) but not on another (id {there}): the recipient gets it twice"
                ),
                evidence: evidence(other),
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    if let Some((other, Some(there))) = retry_ack(events, RETRY_ACKS[3]) {
        if there == id {
            found.push(Violation {
                clause: Clause::N1,
                at_ms: other.at_ms,
                message: format!(
                    "M1 across nodes: another content under a used client_id got the original ack (id {id}) on another node: that message is lost"
                ),
                evidence: evidence(other),
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found
}

// ---------------------------------------------------------------------------
// N2: sessions through the public URL, and a session asked of the wrong node

const PUBLIC: &str = "session@public";
/// An event no handler has, without an ack request (B1: ignored).
const N2_PROBE_EVENT: &str = "42[\"n2_session_probe\"]";
const FOREIGN: &str = "session@other-node";

/// Opens [`PUBLIC_SESSIONS`] polling sessions through the public URL and
/// walks each through five requests (CONNECT, its answer, two events no
/// handler has, the close) and the pong to a ping the long-poll brought,
/// each carrying the cookies the handshake set.
/// Every one is answered at once by a server that keeps B1 (an unknown
/// event without an ack request is ignored); a long-poll after the first
/// would wait for the server's next ping, so there is none.
async fn public_sessions(
    public: &TcpConnector,
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
) {
    let name = names.user("n_public");
    for k in 0..PUBLIC_SESSIONS {
        let actor = format!("{PUBLIC}#{}", k + 1);
        let Some((sid, cookie)) = polling_handshake(public, &name, recorder, &actor, options).await
        else {
            continue;
        };
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let connect = connect_packet(&name, options);
        let session = PollingSession {
            connector: public,
            recorder,
            actor: &actor,
            path: &path,
            name: &name,
            cookie: cookie.as_deref(),
            options,
        };
        if !session.request(http::Method::POST, Some(&connect)).await.1 {
            continue;
        }
        // Long-polls until the namespace's CONNECT answer came (a client
        // sends nothing else before it), answering pings as a client does,
        // or the server would end the session at its ping timeout.
        let mut connected = false;
        for _ in 0..3 {
            let (response, ok) = session.request(http::Method::GET, None).await;
            let Some(response) = response.filter(|_| ok) else {
                break;
            };
            let packets: Vec<&str> = response.body.split('\u{1e}').collect();
            if packets.contains(&"2") && !session.request(http::Method::POST, Some("3")).await.1 {
                break;
            }
            if packets.iter().any(|p| p.starts_with("40")) {
                connected = true;
                break;
            }
        }
        if !connected {
            continue;
        }
        for body in [N2_PROBE_EVENT, N2_PROBE_EVENT, "1"] {
            if !session.request(http::Method::POST, Some(body)).await.1 {
                break;
            }
        }
    }
}

/// One Engine.IO polling session of a probe: where its requests go, as whom,
/// with which cookies, recorded as which actor.
struct PollingSession<'a> {
    connector: &'a TcpConnector,
    recorder: &'a Recorder,
    actor: &'a str,
    path: &'a str,
    name: &'a str,
    cookie: Option<&'a str>,
    options: &'a CheckOptions,
}

impl PollingSession<'_> {
    /// One request of the session, recorded ([`polling_request`]).
    async fn request(
        &self,
        method: http::Method,
        body: Option<&str>,
    ) -> (Option<transport::Response>, bool) {
        polling_request(
            self.connector,
            self.recorder,
            self.actor,
            (method, self.path, body),
            self.name,
            self.cookie,
            self.options,
        )
        .await
    }
}

fn public_session_answered(events: &[Event]) -> bool {
    events.iter().any(|e| {
        e.actor.starts_with(PUBLIC)
            && matches!(&e.what, What::Exchange { request, answer } if request.starts_with("POST") && answer.starts_with("200"))
    })
}

/// N2: every request of a session opened through the public URL reached
/// the node that holds it.
pub(crate) fn sessions_stay(events: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut actors: Vec<&str> = events
        .iter()
        .filter(|e| e.actor.starts_with(PUBLIC))
        .map(|e| e.actor.as_str())
        .collect();
    actors.dedup();
    for actor in actors {
        let session: Vec<&Event> = events.iter().filter(|e| e.actor == actor).collect();
        // The handshake opened a session; a later request of it went astray.
        let opened = session.first().is_some_and(
            |e| matches!(&e.what, What::Exchange { answer, .. } if answer.starts_with("200")),
        );
        if !opened {
            continue;
        }
        let astray = session[1..].iter().find(
            |e| matches!(&e.what, What::Exchange { answer, .. } if !answer.starts_with("200")),
        );
        if let Some(bad) = astray {
            let What::Exchange { answer, .. } = &bad.what else {
                unreachable!()
            };
            let why = if answer.contains("timed out") {
                "hung"
            } else if answer.starts_with("400") {
                "was refused as unknown"
            } else {
                "failed"
            };
            found.push(Violation {
                clause: Clause::N2,
                at_ms: bad.at_ms,
                message: format!(
                    "a request of an Engine.IO session opened through the public URL {why} ({}): the deployment does not route a session's requests to the node that holds it — the balancer is not sticky (route by cookie, or by the sid query parameter)",
                    abbreviate(answer)
                ),
                evidence: session.iter().take(4).map(|e| (*e).clone()).collect(),
                subject: Default::default(),
                ruling: None,
            });
        }
    }
    found.truncate(1);
    found
}

/// Opens a polling session on the first node and asks the second node for
/// it; then closes it where it lives.
async fn foreign_session_probe(
    nodes: &[Node],
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
) {
    let name = names.user("n_foreign");
    let actor = "session@n1";
    let Some((sid, _)) =
        polling_handshake(&nodes[0].connector, &name, recorder, actor, options).await
    else {
        return;
    };
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    polling_request(
        &nodes[1].connector,
        recorder,
        FOREIGN,
        (http::Method::GET, &path, None),
        &name,
        None,
        options,
    )
    .await;
    polling_request(
        &nodes[0].connector,
        recorder,
        actor,
        (http::Method::POST, &path, Some("1")),
        &name,
        None,
        options,
    )
    .await;
}

/// N2 (MUST NOT): a node asked for a session it does not hold answers, and
/// not with a `200`.
pub(crate) fn foreign_session(events: &[Event]) -> Vec<Violation> {
    events
        .iter()
        .filter(|e| e.actor == FOREIGN)
        .filter_map(|e| {
            let What::Exchange { answer, .. } = &e.what else {
                return None;
            };
            let wrong = if answer.starts_with("error") {
                Some("no answer")
            } else if answer.starts_with('2') {
                Some("a 2xx")
            } else {
                None
            }?;
            Some(Violation {
                clause: Clause::N2,
                at_ms: e.at_ms,
                message: format!(
                    "a node asked for an Engine.IO session another node holds gave {wrong} ({}) instead of 400 Session ID unknown",
                    abbreviate(answer)
                ),
                evidence: vec![e.clone()],
                subject: Default::default(),
                ruling: None,
            })
        })
        .collect()
}

fn answered(event: &Event) -> bool {
    matches!(&event.what, What::Exchange { answer, .. } if !answer.starts_with("error"))
}

// ---------------------------------------------------------------------------
// N3: a node that dies

const KILL: &str = "kill-node";
const WATCHER: &str = "watcher@n1";
const VICTIM: &str = "victim@";
const DEAD_MAIL: &str = "mailbox-after@n1";
/// The first node's `/api/online`, around the kill.
const SURVIVOR: &str = "survivor@n1";
/// The watcher's send to the victim after the kill.
const MEANWHILE_ACK: u64 = 7;
/// The watcher's send to an offline user before the kill.
const BEFORE_ACK: u64 = 8;

/// N3's bound: `2 × (pingInterval + pingTimeout)` as the server announced
/// them (before the check cut them to what it waits for).
fn n3_bound_ms(timers: AnnouncedTimers) -> u64 {
    let (interval, timeout) = timers
        .clamped_from
        .unwrap_or((timers.ping_interval_ms, timers.ping_timeout_ms));
    2 * (interval + timeout)
}

/// The longest N3 bound a check waits out: 5 minutes.
const MAX_N3_BOUND_MS: u64 = 300_000;

/// A user alone on the last node and a watcher on the first; mail stored
/// before; the last node killed; a message to the victim meanwhile; the
/// first node watched until the bound; both mailboxes read there. Returns
/// why N3 could not be judged, if so.
async fn dead_node_phase(
    nodes: &[Node],
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
    timers: Option<AnnouncedTimers>,
    command: &str,
) -> Option<String> {
    let Some(timers) = timers else {
        return Some("the server announced no Engine.IO timers, so its bound is unknown".into());
    };
    let bound = n3_bound_ms(timers);
    if bound > MAX_N3_BOUND_MS {
        return Some(format!(
            "its bound, 2 × (pingInterval + pingTimeout), is {} s, above the {} s a check waits",
            bound / 1_000,
            MAX_N3_BOUND_MS / 1_000
        ));
    }
    let last = nodes.last().expect("two nodes or more");
    let victim = names.user("n_gone");
    let watcher = names.user("n_watch");
    let keeper = names.user("n_keep");
    let window = Duration::from_millis(options.scaled(2_000));
    let victim_actor = format!("{VICTIM}n{}", nodes.len());
    let Some(victim_ws) =
        register(&last.connector, &victim, recorder, &victim_actor, options).await
    else {
        return Some("the victim could not register on the last node".into());
    };
    let victim_alive = keep_alive(victim_ws, recorder.clone(), victim_actor);
    let Some(mut watch) = register(&nodes[0].connector, &watcher, recorder, WATCHER, options).await
    else {
        victim_alive.abort();
        return Some("the watcher could not register on the first node".into());
    };
    let sent = |ack: u64, to: &str, content: &str| send_packet(ack, to, content, names, "n3");
    let exchange =
        |actor: &str, request: &str, answer: String| record(recorder, actor, request, answer);
    let before = sent(BEFORE_ACK, &keeper, "stored before a node died");
    let (answer, _) = send_and_answer(&mut watch, &[Out::Text(before.clone())], window).await;
    exchange(WATCHER, &before, answer);
    // Let the victim's presence settle everywhere before its node dies.
    read_for(
        &mut watch,
        Duration::from_millis(options.scaled(1_000)),
        recorder,
        WATCHER,
    )
    .await;
    probe_online_as(&nodes[0].connector, recorder, SURVIVOR, options.patience()).await;
    exchange(
        KILL,
        &format!("kill-node-cmd {}", last.url),
        "started".into(),
    );
    if let Err(why) = super::restart::run_shell(command, &[&last.url]).await {
        exchange(
            KILL,
            &format!("kill-node-cmd {}", last.url),
            format!("error: {why}"),
        );
        victim_alive.abort();
        return Some(format!("--kill-node-cmd failed: {why}"));
    }
    exchange(KILL, &format!("kill-node-cmd {}", last.url), "done".into());
    let killed_at = recorder.now_ms();
    let meanwhile = sent(MEANWHILE_ACK, &victim, "sent while its node lay dead");
    let (answer, _) = send_and_answer(&mut watch, &[Out::Text(meanwhile.clone())], window).await;
    exchange(WATCHER, &meanwhile, answer);
    // Watch the first node until the bound (and a probe's slack) has passed.
    let until = killed_at + bound + options.scaled(2_000);
    let mut open = true;
    let beat = Duration::from_millis(PROBE_EVERY_MS / 4);
    while recorder.now_ms() < until {
        if open {
            open = !read_for(&mut watch, beat, recorder, WATCHER).await;
        } else {
            tokio::time::sleep(beat).await;
        }
        probe_online_as(&nodes[0].connector, recorder, SURVIVOR, options.patience()).await;
    }
    victim_alive.abort();
    let _ = watch.close(None).await;
    for name in [&keeper, &victim] {
        read_mailbox(&nodes[0].connector, recorder, DEAD_MAIL, name, options).await;
    }
    None
}

/// N3: after the kill, the victim leaves the first node's `/api/online`
/// and the watcher hears `user_offline` within `bound_ms` (plus `slack`); the message sent
/// meanwhile and the one stored before are both in their mailboxes.
pub(crate) fn dead_node(events: &[Event], bound_ms: u64, slack: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    let Some(killed) = events.iter().find(|e| {
        e.actor == KILL && matches!(&e.what, What::Exchange { answer, .. } if answer == "done")
    }) else {
        return found;
    };
    let Some(victim) = events
        .iter()
        .find(|e| e.actor.starts_with(VICTIM))
        .and_then(|e| match &e.what {
            What::Exchange { request, .. } => request
                .split("username=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned),
            _ => None,
        })
    else {
        return found;
    };
    // The contract's bound, and the harness's own slack in seeing it.
    let due = killed.at_ms + bound_ms + slack;
    let violation = |at_ms: u64, message: String, evidence: Vec<Event>| Violation {
        clause: Clause::N3,
        at_ms,
        message,
        evidence,
        subject: Default::default(),
        ruling: None,
    };
    // Presence on the first node.
    let after: Vec<&Event> = events
        .iter()
        .filter(|e| e.at_ms > killed.at_ms && e.actor == SURVIVOR)
        .collect();
    let gone_at = after
        .iter()
        .find(|e| matches!(&e.what, What::OnlineProbe { users } if !users.contains(&victim)))
        .map(|e| e.at_ms);
    if gone_at.is_none_or(|at| at > due) {
        if let Some(last) = after.iter().rev().find(|e| e.at_ms <= due + 2_000) {
            found.push(violation(
                last.at_ms,
                format!(
                    "{victim}'s only connection was on the node that died, yet the first node still lists it {} ms after the kill (the bound, 2 × (pingInterval + pingTimeout), is {bound_ms} ms)",
                    last.at_ms - killed.at_ms
                ),
                vec![killed.clone(), (*last).clone()],
            ));
        }
    }
    let offline = format!("42[\"user_offline\",{{\"username\":\"{victim}\"}}]");
    let heard = events.iter().find(|e| {
        e.actor == WATCHER
            && e.at_ms > killed.at_ms
            && matches!(&e.what, What::Exchange { answer, .. } if answer.replace(' ', "").contains(&offline))
    });
    // A watcher whose own connection closed heard nothing, through no fault
    // of the node that died: no evidence either way.
    let watcher_closed = events.iter().any(|e| {
        e.actor == WATCHER
            && e.at_ms <= due
            && matches!(&e.what, What::Exchange { answer, .. } if answer.ends_with("[connection closed]"))
    });
    if !watcher_closed && heard.is_none_or(|e| e.at_ms > due) {
        found.push(violation(
            due,
            format!(
                "{victim}'s node died, and the watcher on the first node heard no user_offline for it within {bound_ms} ms"
            ),
            vec![killed.clone()],
        ));
    }
    // Nothing lost: the mail sent meanwhile, and the mail stored before.
    for (ack, nth) in [(MEANWHILE_ACK, 1), (BEFORE_ACK, 0)] {
        let Some((sent, id)) = acked_id(events, WATCHER, ack) else {
            continue; // refused, or unanswered: nothing was accepted
        };
        if let Some((read, false)) = mailbox_has(events, DEAD_MAIL, nth, id) {
            let when = if ack == MEANWHILE_ACK {
                "accepted for it while its node lay dead"
            } else {
                "stored before a node died"
            };
            found.push(violation(
                read.at_ms,
                format!("message {id}, {when}, is not in the mailbox the first node returns: lost"),
                vec![sent.clone(), read.clone()],
            ));
        }
    }
    found
}

// ---------------------------------------------------------------------------
// N4: a node cut off from the adapter

const ADAPTER: &str = "adapter-cmd";
const CUT_OFF: &str = "cut-off@";
const FAR: &str = "far@n1";
const HEALED: &str = "healed@";
const CUT_MAIL: &str = "mailbox-healed@n1";
/// The cut-off node's send to a user online on the first node.
const TO_FAR_ACK: u64 = 11;
/// The cut-off node's send to an offline user.
const TO_MAILBOX_ACK: u64 = 12;
/// Rounds of `/api/online` on every node after the heal, a second apart.
const HEALED_ROUNDS: usize = 5;

/// A user on the last node and one on the first; the last node cut off from
/// the shared state; a send from it to the first node's user and one to an
/// offline user; the heal; then every node's `/api/online` until they agree,
/// and both mailboxes read on the first node. Returns why N4 could not be
/// judged, if so.
async fn adapter_phase(
    nodes: &[Node],
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
    (cut, heal): (&str, &str),
) -> Option<String> {
    let last = nodes.last().expect("two nodes or more");
    let near = names.user("n_cut");
    let far = names.user("n_far");
    let mailbox = names.user("n_cut_mail");
    let window = Duration::from_millis(options.scaled(2_000));
    let near_actor = format!("{CUT_OFF}n{}", nodes.len());
    let mut near_ws = register(&last.connector, &near, recorder, &near_actor, options).await?;
    let Some(far_ws) = register(&nodes[0].connector, &far, recorder, FAR, options).await else {
        let _ = near_ws.close(None).await;
        return Some("the user on the first node could not register".into());
    };
    // The far user keeps reading (and answering pings) throughout.
    let far_alive = keep_alive(far_ws, recorder.clone(), FAR.to_owned());
    let exchange =
        |actor: &str, request: &str, answer: String| record(recorder, actor, request, answer);
    let command = |which: &str| format!("adapter-{which}-cmd {}", last.url);
    let sent = |ack: u64, to: &str| {
        send_packet(ack, to, "sent while cut off from the adapter", names, "n4")
    };
    if let Err(why) = super::restart::run_shell(cut, &[&last.url]).await {
        exchange(ADAPTER, &command("cut"), format!("error: {why}"));
        far_alive.abort();
        return Some(format!("--adapter-cut-cmd failed: {why}"));
    }
    exchange(ADAPTER, &command("cut"), "done".into());
    let span = Duration::from_millis(options.scaled(500));
    read_for(&mut near_ws, span, recorder, &near_actor).await;
    for (ack, to) in [(TO_FAR_ACK, &far), (TO_MAILBOX_ACK, &mailbox)] {
        let packet = sent(ack, to);
        let (answer, _) = send_and_answer(&mut near_ws, &[Out::Text(packet.clone())], window).await;
        exchange(&near_actor, &packet, answer);
    }
    let near_alive = keep_alive(near_ws, recorder.clone(), near_actor);
    let healed = super::restart::run_shell(heal, &[&last.url]).await;
    exchange(
        ADAPTER,
        &command("heal"),
        healed
            .as_ref()
            .map_or_else(|why| format!("error: {why}"), |()| "done".into()),
    );
    // Mail held while cut off is delivered once the adapter is back.
    tokio::time::sleep(Duration::from_millis(options.scaled(2_000))).await;
    for _ in 0..HEALED_ROUNDS {
        for (i, node) in nodes.iter().enumerate() {
            let actor = format!("{HEALED}n{}", i + 1);
            probe_online_as(&node.connector, recorder, &actor, options.patience()).await;
        }
        if healed_lists_agree(&recorder.trace().events, nodes.len()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(PROBE_EVERY_MS)).await;
    }
    far_alive.abort();
    near_alive.abort();
    let note = healed
        .err()
        .map(|why| format!("--adapter-heal-cmd failed: {why}"));
    for name in [&far, &mailbox] {
        read_mailbox(&nodes[0].connector, recorder, CUT_MAIL, name, options).await;
    }
    note
}

/// The last round of post-heal probes: one answer a node, all alike.
fn healed_lists_agree(events: &[Event], nodes: usize) -> bool {
    let lists: Vec<&Vec<String>> = events
        .iter()
        .rev()
        .filter(|e| e.actor.starts_with(HEALED))
        .take(nodes)
        .filter_map(|e| match &e.what {
            What::OnlineProbe { users } => Some(users),
            _ => None,
        })
        .collect();
    lists.len() == nodes && lists.windows(2).all(|w| w[0] == w[1])
}

fn adapter_exercised(events: &[Event]) -> bool {
    let done = |which: &str| {
        events.iter().any(|e| {
            e.actor == ADAPTER
                && matches!(&e.what, What::Exchange { request, answer } if request.starts_with(which) && answer == "done")
        })
    };
    done("adapter-cut") && done("adapter-heal")
}

/// The answer to `42<ack>[…` among the exchanges of the actors starting
/// with `actor_prefix`: its event and the message id it carries (`None`
/// for a refusal).
fn ack_of<'e>(
    events: &'e [Event],
    actor_prefix: &str,
    ack: u64,
) -> Option<(&'e Event, Option<u64>)> {
    let reply = format!("43{ack}[");
    let request_prefix = format!("42{ack}[");
    events
        .iter()
        .filter(|e| e.actor.starts_with(actor_prefix))
        .find_map(|e| match &e.what {
            What::Exchange { request, answer } if request.starts_with(&request_prefix) => {
                let frame = answer.split(" | ").find(|f| f.starts_with(&reply))?;
                let json: Value = serde_json::from_str(&frame[reply.len() - 1..]).ok()?;
                Some((e, json[0]["id"].as_u64()))
            }
            _ => None,
        })
}

/// The message id an ack to `42<ack>[…` accepted, with its event.
fn acked_id<'e>(events: &'e [Event], actor_prefix: &str, ack: u64) -> Option<(&'e Event, u64)> {
    ack_of(events, actor_prefix, ack).and_then(|(e, id)| Some((e, id?)))
}

/// Whether a mailbox read of `actor` (the `nth` read) lists message `id`.
fn mailbox_has<'e>(
    events: &'e [Event],
    actor: &str,
    nth: usize,
    id: u64,
) -> Option<(&'e Event, bool)> {
    let read = events.iter().filter(|e| e.actor == actor).nth(nth)?;
    let What::Exchange { answer, .. } = &read.what else {
        return None;
    };
    let kept = ok_body(answer)
        .and_then(|v| {
            v["messages"]
                .as_array()
                .map(|m| m.iter().any(|e| e["id"].as_u64() == Some(id)))
        })
        .unwrap_or(false);
    Some((read, kept))
}

/// N4: what the cut-off node acked arrived (pushed to the far user, or in
/// the mailbox once healed), and after the heal every node lists the same
/// users online.
pub(crate) fn adapter_loss(events: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    if !adapter_exercised(events) {
        return found;
    }
    let violation = |at_ms: u64, message: String, evidence: Vec<Event>| Violation {
        clause: Clause::N4,
        at_ms,
        message,
        evidence,
        subject: Default::default(),
        ruling: None,
    };
    if let Some((sent, id)) = acked_id(events, CUT_OFF, TO_FAR_ACK) {
        let pushed = events.iter().any(|e| {
            e.actor == FAR
                && matches!(&e.what, What::Exchange { answer, .. } if answer.split(" | ").any(|f| {
                    f.starts_with("42[\"new_message\"") && serde_json::from_str::<Value>(&f[2..]).ok().and_then(|v| v[1]["id"].as_u64()) == Some(id)
                }))
        });
        let stored = mailbox_has(events, CUT_MAIL, 0, id);
        if !pushed && !stored.is_some_and(|(_, kept)| kept) {
            let mut evidence = vec![sent.clone()];
            evidence.extend(stored.map(|(read, _)| read.clone()));
            found.push(violation(
                sent.at_ms,
                format!("a node cut off from the adapter acked message {id} for a user online on another node, and it never arrived there: neither pushed nor in the mailbox after the heal"),
                evidence,
            ));
        }
    }
    if let Some((sent, id)) = acked_id(events, CUT_OFF, TO_MAILBOX_ACK) {
        if let Some((read, false)) = mailbox_has(events, CUT_MAIL, 1, id) {
            found.push(violation(
                read.at_ms,
                format!("a node cut off from the adapter acked message {id} for an offline user, and the mailbox never had it: lost"),
                vec![sent.clone(), read.clone()],
            ));
        }
    }
    let probes: Vec<&Event> = events
        .iter()
        .filter(|e| e.actor.starts_with(HEALED))
        .collect();
    let nodes: BTreeSet<&str> = probes.iter().map(|e| e.actor.as_str()).collect();
    if !probes.is_empty() && !healed_lists_agree(events, nodes.len()) {
        let last: Vec<Event> = probes
            .iter()
            .rev()
            .take(nodes.len())
            .rev()
            .map(|e| (*e).clone())
            .collect();
        found.push(violation(
            last[0].at_ms,
            format!("after the adapter healed, the nodes still disagree on who is online ({} rounds of /api/online on every node)", probes.len() / nodes.len().max(1)),
            last,
        ));
    }
    found
}

// ---------------------------------------------------------------------------
// Requests and sessions of the probes

/// Records one exchange of a probe as `actor`, the request abbreviated.
fn record(recorder: &Recorder, actor: &str, request: &str, answer: String) {
    recorder.record(
        actor,
        What::Exchange {
            request: abbreviate(request),
            answer,
        },
    );
}

/// A `send_message` asking for ack `ack`, its `client_id` unique to this
/// check (`{probe}-{ack}-{tag}`).
fn send_packet(ack: u64, to: &str, content: &str, names: &Names, probe: &str) -> String {
    let client_id = format!("{probe}-{ack}-{}", names.tag);
    format!(
        "42{ack}{}",
        json!(["send_message", {"to": to, "content": content, "client_id": client_id}])
    )
}

/// What a connection that only listens records its frames under.
const WATCHING: &str = "(watching)";

/// Reads `ws` for `span`, answering the server's pings (a connection left
/// unread is dropped at its ping timeout), recording what came as `actor`.
/// Returns whether the connection closed.
async fn read_for(ws: &mut TcpWebSocket, span: Duration, recorder: &Recorder, actor: &str) -> bool {
    let until = Instant::now() + span;
    while Instant::now() < until {
        let left = until - Instant::now();
        let (answer, closed) = answers_to(
            ws,
            WATCHING,
            left.min(Duration::from_millis(PROBE_EVERY_MS)),
        )
        .await;
        if answer != super::NOTHING {
            record(recorder, actor, WATCHING, answer);
        }
        if closed {
            return true;
        }
    }
    false
}

/// Keeps a registered connection alive in the background, recording what
/// it receives as `actor`, until it closes or the handle is aborted.
fn keep_alive(
    mut ws: TcpWebSocket,
    recorder: Recorder,
    actor: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !read_for(
            &mut ws,
            Duration::from_millis(PROBE_EVERY_MS),
            &recorder,
            &actor,
        )
        .await
        {}
    })
}

/// The namespace CONNECT: `40`, or with the user's token for a v2 server.
fn connect_packet(name: &str, options: &CheckOptions) -> String {
    match options
        .tokens
        .as_ref()
        .and_then(|issuer| issuer.mint(crate::token::TokenPolicy::Valid, name))
    {
        Some(token) => format!("40{}", json!({ "token": token })),
        None => "40".to_owned(),
    }
}

/// What a record shows of a packet: never a token.
fn shown(packet: &str) -> String {
    if packet.starts_with("40{") {
        "40{\"token\": <valid token>}".to_owned()
    } else {
        abbreviate(packet)
    }
}

/// A websocket session of `name` on one node, registered (CONNECT answered
/// with `40`), recorded as `actor`; `None` when it could not register.
async fn register(
    connector: &TcpConnector,
    name: &str,
    recorder: &Recorder,
    actor: &str,
    options: &CheckOptions,
) -> Option<TcpWebSocket> {
    let path = "/socket.io/?EIO=4&transport=websocket";
    let record = |request: String, answer: String| {
        recorder.record(actor, What::Exchange { request, answer });
    };
    let mut ws = match transport::websocket(connector, path, &[("username", name)]).await {
        Ok(ws) => ws,
        Err(e) => {
            record(
                format!("websocket {path} username={name:?}"),
                format!("error: {e}"),
            );
            return None;
        }
    };
    let connect = connect_packet(name, options);
    let (answer, closed) =
        send_and_answer(&mut ws, &[Out::Text(connect.clone())], options.patience()).await;
    let registered = !closed && answer.split(" | ").any(|f| f.starts_with("40"));
    record(format!("{} username={name:?}", shown(&connect)), answer);
    registered.then_some(ws)
}

/// A polling handshake as `name`; its `sid` and the cookies it set.
async fn polling_handshake(
    connector: &TcpConnector,
    name: &str,
    recorder: &Recorder,
    actor: &str,
    options: &CheckOptions,
) -> Option<(String, Option<String>)> {
    let path = "/socket.io/?EIO=4&transport=polling";
    let (response, _) = polling_request(
        connector,
        recorder,
        actor,
        (http::Method::GET, path, None),
        name,
        None,
        options,
    )
    .await;
    let response = response?;
    let open = response.body.strip_prefix('0')?;
    let json: Value = serde_json::from_str(open.split('\u{1e}').next()?).ok()?;
    let sid = json["sid"].as_str()?.to_owned();
    sid.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        .then(|| (sid, response.cookie_header()))
}

/// One Engine.IO polling request, recorded; the response, and whether it
/// was a `200`.
async fn polling_request(
    connector: &TcpConnector,
    recorder: &Recorder,
    actor: &str,
    (method, path, body): (http::Method, &str, Option<&str>),
    name: &str,
    cookie: Option<&str>,
    options: &CheckOptions,
) -> (Option<transport::Response>, bool) {
    let mut headers = vec![("username", name)];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    let request = format!(
        "{method} {path}{}{}",
        body.map(|b| format!(" {}", shown(b))).unwrap_or_default(),
        if cookie.is_some() {
            " (with its cookies)"
        } else {
            ""
        }
    );
    let outcome = tokio::time::timeout(
        options.patience(),
        transport::request(connector, method, path, &headers, body.map(str::to_owned)),
    )
    .await
    .unwrap_or(Err(transport::TransportError::Timeout));
    let answer = match &outcome {
        Ok(r) => format!("{} {}", r.status, abbreviate(&r.body)),
        Err(e) => format!("error: {e}"),
    };
    let ok = answer.starts_with("200");
    recorder.record(actor, What::Exchange { request, answer });
    (outcome.ok(), ok)
}

/// Reads `name`'s whole mailbox (`GET /api/messages?after=0`) as that user
/// (the header, or a token for a v2 server), recorded as `actor` with the
/// body whole, for comparing.
async fn read_mailbox(
    connector: &TcpConnector,
    recorder: &Recorder,
    actor: &str,
    name: &str,
    options: &CheckOptions,
) {
    let path = "/api/messages?after=0";
    let tokens = options.tokens.as_ref();
    let (request, outcome) = get_as(connector, path, Some(name), options.patience(), tokens).await;
    // Whole up to the transport's bound: the entries are compared.
    let answer = answer_line(&outcome, |body| body.trim().to_owned());
    recorder.record(actor, What::Exchange { request, answer });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultPlan;

    fn at(at_ms: u64, actor: &str, request: &str, answer: &str) -> Event {
        Event {
            at_ms,
            actor: actor.into(),
            what: What::Exchange {
                request: request.into(),
                answer: answer.into(),
            },
        }
    }

    fn session(answers: &[&str]) -> Vec<Event> {
        let actor = format!("{PUBLIC}#1");
        let mut events = vec![at(
            0,
            &actor,
            "GET /socket.io/?EIO=4&transport=polling",
            "200 0{\"sid\":\"a\"}",
        )];
        events.extend(
            answers
                .iter()
                .enumerate()
                .map(|(i, a)| at(10 + i as u64, &actor, "POST /socket.io/?sid=a 40", a)),
        );
        events
    }

    #[test]
    fn a_session_that_meets_another_node_is_n2() {
        let sticky = session(&["200 ok", "200 40{\"sid\":\"b\"}", "200 ok"]);
        assert!(sessions_stay(&sticky).is_empty());
        assert!(public_session_answered(&sticky));
        let astray = session(&[
            "200 ok",
            "400 {\"code\":1,\"message\":\"Session ID unknown\"}",
        ]);
        let found = sessions_stay(&astray);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].clause, Clause::N2);
        assert!(
            found[0].message.contains("not sticky"),
            "{}",
            found[0].message
        );
        let hung = session(&["error: timed out"]);
        assert!(sessions_stay(&hung)[0].message.contains("hung"));
    }

    #[test]
    fn a_node_that_answers_another_nodes_session_with_200_is_n2() {
        let refused = [at(5, FOREIGN, "GET /socket.io/?sid=a", "400 {\"code\":1}")];
        assert!(foreign_session(&refused).is_empty());
        let taken = [at(5, FOREIGN, "GET /socket.io/?sid=a", "200 6")];
        assert_eq!(foreign_session(&taken)[0].clause, Clause::N2);
        let hung = [at(5, FOREIGN, "GET /socket.io/?sid=a", "error: timed out")];
        assert_eq!(foreign_session(&hung).len(), 1);
    }

    fn retry(acks: [&str; 4]) -> Vec<Event> {
        RETRY_ACKS
            .iter()
            .zip(acks)
            .enumerate()
            .map(|(i, (ack, answer))| {
                let node = if i < 2 { "retry@n1" } else { "retry@n2" };
                at(
                    i as u64,
                    node,
                    &format!("42{ack}[\"send_message\",{{}}]"),
                    &format!("43{ack}[{answer}]"),
                )
            })
            .collect()
    }

    #[test]
    fn a_retry_recognised_on_one_node_only_is_n1() {
        let shared = retry([
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":6,"delivery":"polling"}"#,
        ]);
        assert!(retry_on_any_node(&shared).is_empty());
        assert!(retry_answered_on_two_nodes(&shared));
        // No retry memory at all: M1 allows it, on every node alike.
        let none = retry([
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":6,"delivery":"polling"}"#,
            r#"{"id":7,"delivery":"polling"}"#,
            r#"{"id":8,"delivery":"polling"}"#,
        ]);
        assert!(retry_on_any_node(&none).is_empty());
        let per_node = retry([
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":5,"delivery":"polling"}"#,
            r#"{"id":7,"delivery":"polling"}"#,
            r#"{"id":5,"delivery":"polling"}"#,
        ]);
        let found = retry_on_any_node(&per_node);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|v| v.clause == Clause::N1));
    }

    #[test]
    fn mailboxes_that_differ_by_node_are_n1() {
        let name = "o.x".to_owned();
        let read = |node: &str, body: &str| {
            at(
                1,
                &format!("{MAILBOX}{node}"),
                &format!("GET /api/messages?after=0 username={name:?}"),
                &format!("200 application/json {body}"),
            )
        };
        let both = r#"{"messages":[{"seq":1,"id":3},{"seq":2,"id":9}]}"#;
        let same = [read("n1", both), read("n2", both)];
        assert!(one_mailbox(&same, std::slice::from_ref(&name)).is_empty());
        assert!(mailboxes_read_on_two_nodes(&same));
        let split = [
            read("n1", both),
            read("n2", r#"{"messages":[{"seq":1,"id":9}]}"#),
        ];
        let found = one_mailbox(&split, std::slice::from_ref(&name));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("read on n2"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_dead_nodes_user_left_online_or_its_mail_lost_is_n3() {
        let victim = "gone.x";
        let offline = format!("42[\"user_offline\",{{\"username\":\"{victim}\"}}]");
        let mailbox = |ids: &str| format!("200 application/json {{\"messages\":[{ids}]}}");
        let base = |listed_until: u64, heard: bool, kept: &str| {
            let mut events = vec![
                at(
                    0,
                    "victim@n2",
                    &format!("40 username=\"{victim}\""),
                    "40{\"sid\":\"v\"}",
                ),
                at(
                    10,
                    WATCHER,
                    "428[\"send_message\",{}]",
                    "438[{\"id\":1,\"delivery\":\"polling\"}]",
                ),
                at(100, KILL, "kill-node-cmd http://n2", "done"),
                at(
                    110,
                    WATCHER,
                    "427[\"send_message\",{}]",
                    "437[{\"id\":2,\"delivery\":\"websocket\"}]",
                ),
            ];
            for t in (1..=10).map(|k| 100 + 1_000 * k) {
                let users = if t <= listed_until {
                    vec![victim.to_owned()]
                } else {
                    vec![]
                };
                events.push(Event {
                    at_ms: t,
                    actor: SURVIVOR.into(),
                    what: What::OnlineProbe { users },
                });
            }
            if heard {
                events.push(at(2_500, WATCHER, "(watching)", &offline));
            }
            events.push(at(
                11_000,
                DEAD_MAIL,
                "GET /api/messages?after=0 username=\"keep\"",
                &mailbox(r#"{"seq":1,"id":1}"#),
            ));
            events.push(at(
                11_001,
                DEAD_MAIL,
                "GET /api/messages?after=0 username=\"gone\"",
                &mailbox(kept),
            ));
            events.sort_by_key(|e| e.at_ms);
            events
        };
        let bound = 4_000;
        assert!(dead_node(&base(2_000, true, r#"{"seq":1,"id":2}"#), bound, 500).is_empty());
        let forever = dead_node(&base(u64::MAX, true, r#"{"seq":1,"id":2}"#), bound, 500);
        assert_eq!(forever.len(), 1, "{forever:?}");
        assert!(forever[0].message.contains("still lists"));
        let silent = dead_node(&base(2_000, false, r#"{"seq":1,"id":2}"#), bound, 500);
        assert!(silent[0].message.contains("no user_offline"));
        let lost = dead_node(&base(2_000, true, ""), bound, 500);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].message.contains("message 2") && lost[0].message.contains("lost"));
        assert!(lost.iter().all(|v| v.clause == Clause::N3));
    }

    #[test]
    fn a_node_cut_off_that_acks_what_it_lost_is_n4() {
        let mailbox = |ids: &str| format!("200 application/json {{\"messages\":[{ids}]}}");
        let world =
            |to_far: &str, to_mailbox: &str, pushed: bool, stored: &str, lists: [&str; 2]| {
                let mut events = vec![
                    at(0, ADAPTER, "adapter-cut-cmd http://n2", "done"),
                    at(
                        10,
                        "cut-off@n2",
                        "4211[\"send_message\",{}]",
                        &format!("4311[{to_far}]"),
                    ),
                    at(
                        11,
                        "cut-off@n2",
                        "4212[\"send_message\",{}]",
                        &format!("4312[{to_mailbox}]"),
                    ),
                    at(20, ADAPTER, "adapter-heal-cmd http://n2", "done"),
                ];
                if pushed {
                    events.push(at(30, FAR, "(watching)", r#"42["new_message",{"id":5}]"#));
                }
                for (i, users) in lists.iter().enumerate() {
                    let users = users
                        .split(',')
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect();
                    events.push(Event {
                        at_ms: 40 + i as u64,
                        actor: format!("{HEALED}n{}", i + 1),
                        what: What::OnlineProbe { users },
                    });
                }
                events.push(at(50, CUT_MAIL, "GET far", &mailbox("")));
                events.push(at(51, CUT_MAIL, "GET mail", &mailbox(stored)));
                events
            };
        let refused = r#"{"error":"unreachable"}"#;
        let agree = ["a,b", "a,b"];
        // Refusing while cut off, or acking what then arrived: nothing lost.
        assert!(adapter_loss(&world(refused, refused, false, "", agree)).is_empty());
        let kept = world(
            r#"{"id":5,"delivery":"websocket"}"#,
            r#"{"id":6,"delivery":"polling"}"#,
            true,
            r#"{"seq":1,"id":6}"#,
            agree,
        );
        assert!(adapter_loss(&kept).is_empty());
        assert!(adapter_exercised(&kept));
        // Acked as pushed, never pushed nor stored; acked as stored, not stored.
        let lost = world(
            r#"{"id":5,"delivery":"websocket"}"#,
            r#"{"id":6,"delivery":"polling"}"#,
            false,
            "",
            agree,
        );
        let found = adapter_loss(&lost);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|v| v.clause == Clause::N4));
        // Healed, and the nodes still disagree.
        let split = adapter_loss(&world(refused, refused, false, "", ["a,b", "a"]));
        assert_eq!(split.len(), 1);
        assert!(split[0].message.contains("disagree"));
    }

    /// Two users on each of two nodes, as [`cluster_scenario`] places them.
    fn two_node_scenario() -> Scenario {
        Scenario {
            seed: 1,
            users: ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]
                .iter()
                .map(|n| crate::scenario::UserSpec::node(n))
                .collect(),
            steps: vec![],
            faults: FaultPlan::calm(),
            active_ms: 6_000,
            heal_ms: 4_000,
            open_world: true,
        }
    }

    fn ev(at_ms: u64, actor: &str, what: What) -> Event {
        Event {
            at_ms,
            actor: actor.into(),
            what,
        }
    }

    fn sent_and_acked(at_ms: u64, conn: &str, client_id: &str, to: &str, id: u64) -> [Event; 2] {
        [
            ev(
                at_ms,
                conn,
                What::Sent {
                    client_id: client_id.into(),
                    to: to.into(),
                },
            ),
            ev(
                at_ms + 5,
                conn,
                What::Accepted {
                    client_id: client_id.into(),
                    id,
                    delivery: crate::contract::Delivery::Polling,
                },
            ),
        ]
    }

    #[test]
    fn ids_that_go_back_or_repeat_across_nodes_are_n1() {
        let scenario = two_node_scenario();
        let judge = |ids: [u64; 3]| {
            let mut events = Vec::new();
            events.extend(sent_and_acked(100, "a1#1", "x-1", "a0", ids[0]));
            events.extend(sent_and_acked(400, "b1#1", "x-2", "a0", ids[1]));
            events.extend(sent_and_acked(700, "a1#1", "x-3", "a0", ids[2]));
            let trace = crate::trace::Trace { events };
            let facts = Facts::new(&trace, &scenario);
            ids_increase(&facts, &scenario)
        };
        assert!(judge([1, 2, 3]).is_empty());
        // Gaps are fine: another recipient's messages took the ids between.
        assert!(judge([4, 9, 30]).is_empty());
        let back = judge([600, 12, 601]);
        assert_eq!(back.len(), 1, "{back:?}");
        assert_eq!(back[0].clause, Clause::N1);
        assert!(back[0].message.contains("n2"), "{}", back[0].message);
        let twice = judge([5, 5, 6]);
        assert!(
            twice.iter().any(|v| v.message.contains("both got id 5")),
            "{twice:?}"
        );
    }

    #[test]
    fn a_node_whose_online_list_leaves_out_another_nodes_user_is_n1() {
        let scenario = two_node_scenario();
        let judge = |listed_by_n2: Vec<&str>| {
            let mut events = vec![
                ev(0, "a0#1", What::Connected),
                ev(0, "b0#1", What::Connected),
                ev(
                    3_000,
                    "observer@n1",
                    What::OnlineProbe {
                        users: vec!["a0".into(), "b0".into()],
                    },
                ),
                ev(
                    3_050,
                    "observer@n2",
                    What::OnlineProbe {
                        users: listed_by_n2.iter().map(|u| u.to_string()).collect(),
                    },
                ),
            ];
            // A probe racing a change proves nothing.
            events.push(ev(3_900, "a1#1", What::Connected));
            events.push(ev(
                4_000,
                "observer@n2",
                What::OnlineProbe {
                    users: listed_by_n2.iter().map(|u| u.to_string()).collect(),
                },
            ));
            let trace = crate::trace::Trace { events };
            let facts = Facts::new(&trace, &scenario);
            every_node_agrees(&facts, 1_000)
        };
        assert!(judge(vec!["a0", "b0"]).is_empty());
        let found = judge(vec!["b0"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].clause, Clause::N1);
        assert!(
            found[0].message.contains("n2: /api/online leaves out a0"),
            "{}",
            found[0].message
        );
        let stale = judge(vec!["a0", "b0", "b3"]);
        assert!(
            stale.iter().any(|v| v.message.contains("lists b3")),
            "{stale:?}"
        );
    }
}

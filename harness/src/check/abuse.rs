//! `abuse`: a registered client that sends broken packets on a raw websocket
//! while the core scenario plays (B1, M1), and the fuzz run over the seeded
//! sample of malformed frames; what it sent and got back is recorded as
//! `abuser` and judged by the rules.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::probes::abbreviate;
use super::rules::{self, abuse_harms_nobody, calm_deliveries, sessions_open};
use super::{
    check_client, for_contract, fresh_tag_source, send, step, user, wait_until_up, AnnouncedTimers,
    CheckError, CheckOptions, Names, Run, Target, PROBE_EVERY_MS,
};
use crate::faults::FaultPlan;
use crate::judge::{check_all, Facts};
use crate::net::malformed::{Malformed, Out};
use crate::net::transport::{self, TcpConnector};
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario};
use crate::trace::{Recorder, TraceClock, What};
use crate::world::{play, sleep_until_ms, DRAIN_MS};

/// What the abuser records for the answers that came after their frame's
/// gap, read once more at the end; and a window with no answer.
pub(crate) const LATE_ANSWERS: &str = "(late answers)";
/// The most frames one abuser exchange records (each abbreviated).
pub(super) const MAX_ANSWER_FRAMES: usize = 24;
pub(super) const NOTHING: &str = "(nothing)";

/// Ack ids of the fuzz sample: one a frame, from here on.
pub(super) const FUZZ_ACKS_FROM: u64 = 100;

/// A registered client that sends broken packets on a raw websocket: the
/// fixed probes of [`abuse_packets`], then a seeded sample of [`Malformed`]
/// frames; then checks `/health`. Everything it sends and gets back is
/// recorded as `abuser`. Returns the requests (as recorded) a server may
/// accept as messages ([`abuse_harms_nobody`]).
pub(super) async fn abuse(
    connector: &TcpConnector,
    names: &Names,
    recorder: &Recorder,
    options: &CheckOptions,
    steps: Vec<AbuseStep>,
    (at_ms, answer_window, done_by_ms): (u64, Duration, u64),
) -> Vec<String> {
    sleep_until_ms(recorder, at_ms).await;
    let name = names.user("mallory");
    // Answers are kept whole, frame by frame ([`answers_to`] bounds them):
    // an ack is attributed by its id, wherever it stands among them.
    let exchange = |request: &str, answer: String| {
        recorder.record(
            "abuser",
            What::Exchange {
                request: abbreviate(request),
                answer,
            },
        )
    };
    let path = "/socket.io/?EIO=4&transport=websocket";
    // A v2 server: the abuser is registered by a valid token (A2).
    let token = options
        .tokens
        .as_ref()
        .and_then(|issuer| issuer.mint(crate::token::TokenPolicy::Valid, &name));
    let connect = match &token {
        Some(token) => (
            format!("40{}", json!({ "token": token })),
            "40{\"token\": <valid token>}".to_owned(),
        ),
        None => ("40".to_owned(), "40".to_owned()),
    };
    let well_formed = steps
        .iter()
        .filter(|s| s.may_accept)
        .map(|s| abbreviate(&s.request()))
        .collect();
    // A server may close the abuser's connection over a packet it cannot
    // read: the abuser then connects again and goes on, so every probe after
    // it is still sent (and still judged). A CONNECT probe goes out first on
    // a connection of its own, and so does a frame that leaves its
    // connection waiting for an attachment (after the CONNECT): what follows
    // it on a shared connection would be read as part of it.
    let register = |mut opened: crate::net::transport::TcpWebSocket| {
        let connect = &connect;
        async move {
            let writes = [Out::Text(connect.0.clone())];
            let (answer, closed) = send_and_answer(&mut opened, &writes, answer_window).await;
            exchange(&connect.1, answer);
            (!closed).then_some(opened)
        }
    };
    let quick = (answer_window / 10).max(Duration::from_millis(50));
    let mut ws: Option<crate::net::transport::TcpWebSocket> = None;
    let total = steps.len();
    for (sent, step) in steps.into_iter().enumerate() {
        // The abuser is a registered user: it must be gone before the
        // scenario's last presence probe, or it would be listed online there.
        if recorder.now_ms() >= done_by_ms {
            exchange(
                "(abuser out of time)",
                format!("{} of {total} probes not sent", total - sent),
            );
            break;
        }
        if step.fresh || step.alone {
            let mut opened =
                match transport::websocket(connector, path, &[("username", &name)]).await {
                    Err(e) => {
                        exchange(&format!("websocket {path}"), format!("error: {e}"));
                        continue;
                    }
                    Ok(opened) => opened,
                };
            if step.alone {
                let Some(registered) = register(opened).await else {
                    continue;
                };
                opened = registered;
            }
            let (answer, _) = send_and_answer(&mut opened, &step.writes, answer_window).await;
            exchange(&step.request(), answer);
            let _ = opened.close(None).await;
            continue;
        }
        if ws.is_none() {
            match transport::websocket(connector, path, &[("username", &name)]).await {
                Err(e) => {
                    exchange(&format!("websocket {path}"), format!("error: {e}"));
                    break;
                }
                Ok(opened) => match register(opened).await {
                    Some(registered) => ws = Some(registered),
                    None => break,
                },
            }
        }
        let Some(open) = ws.as_mut() else { break };
        let window = if step.quick { quick } else { answer_window };
        let (answer, closed) = send_and_answer(open, &step.writes, window).await;
        exchange(&step.request(), answer);
        if closed {
            ws = None;
        }
    }
    if let Some(mut ws) = ws {
        // Answers that came after their frame's gap: judged by ack id.
        let (answer, _) = answers_to(&mut ws, LATE_ANSWERS, answer_window).await;
        if answer != NOTHING {
            exchange(LATE_ANSWERS, answer);
        }
        let _ = ws.close(None).await;
    }
    let outcome = transport::request(connector, http::Method::GET, "/health", &[], None).await;
    let answer = match outcome {
        Ok(r) => format!("{} {}", r.status, abbreviate(&r.body)),
        Err(e) => format!("error: {e}"),
    };
    exchange("GET /health", answer);
    well_formed
}

/// One thing the abuser sends and awaits an answer to.
pub(super) struct AbuseStep {
    /// The frames, written back to back.
    writes: Vec<Out>,
    /// Whether a server may accept it as a message.
    may_accept: bool,
    /// Whether it goes out first on a fresh connection (a CONNECT).
    fresh: bool,
    /// Whether it goes out on a registered connection of its own, closed
    /// after: it leaves its connection waiting for more
    /// ([`Malformed::leaves_pending`]), which would swallow what follows.
    alone: bool,
    /// Whether the abuser moves on after a short gap instead of the whole
    /// answer window: a late answer is still attributed by its ack id
    /// ([`rules::abuser_acks`]), and the abuser reads its connection one
    /// window more at the end.
    quick: bool,
}

impl AbuseStep {
    fn text(frame: String, may_accept: bool) -> Self {
        Self {
            writes: vec![Out::Text(frame)],
            may_accept,
            fresh: false,
            alone: false,
            quick: false,
        }
    }

    /// The request as recorded: text frames as they are, attachments by size.
    fn request(&self) -> String {
        let parts: Vec<String> = self
            .writes
            .iter()
            .map(|w| match w {
                Out::Text(t) => t.clone(),
                Out::Binary(b) => format!("<binary attachment, {} bytes>", b.len()),
            })
            .collect();
        parts.join(" + ")
    }
}

/// What the abuser sends, in order: three messages under one `client_id`, the
/// second with other content, the third with the first's content to another
/// recipient (M1);
/// two arguments (M1); a payload claiming another `from` (M2); bad JSON twice;
/// an unknown event with an ack; a send without its argument; the seeded
/// sample of [`Malformed`] frames; a frame above maxPayload (B1).
pub(super) fn abuse_packets(
    names: &Names,
    timers: Option<AnnouncedTimers>,
    seed: u64,
) -> Vec<AbuseStep> {
    let sink = names.user("m1sink");
    let reused = |ack_id: u64, to: &str, content: &str| {
        let event = json!(["send_message", {"to": to, "content": content, "client_id": "m1"}]);
        format!("42{ack_id}{event}")
    };
    let other_sink = names.user("m1other");
    let two_args = json!(["send_message", {"to": sink, "content": "m1 two arguments", "client_id": "m1-two"}, "extra"]);
    let forged = json!(["send_message", {"to": sink, "content": "m2 forged from", "client_id": "m2", "from": names.user("dave")}]);
    let mut steps = vec![
        AbuseStep::text(reused(rules::REUSED_ID_ACKS.0, &sink, "m1 first"), true),
        AbuseStep::text(
            reused(rules::REUSED_ID_ACKS.1, &sink, "m1 second, same client_id"),
            true,
        ),
        AbuseStep::text(
            reused(rules::REUSED_ID_OTHER_TO_ACK, &other_sink, "m1 first"),
            true,
        ),
        AbuseStep::text(format!("42{}{two_args}", rules::TWO_ARGS_ACK), true),
        AbuseStep::text(format!("42{}{forged}", rules::FORGED_FROM_ACK), true),
        AbuseStep::text(r#"42["send_message",{"to":"#.to_owned(), false),
        AbuseStep::text("42not json at all".to_owned(), false),
        AbuseStep::text(
            format!(
                r#"42{}["no_such_event",{{"x":1}}]"#,
                rules::UNKNOWN_EVENT_ACK
            ),
            false,
        ),
        AbuseStep::text(r#"422["send_message"]"#.to_owned(), false),
    ];
    // Frames a fuzzer reaches (B1), drawn from the check's seed.
    steps.extend(fuzz_steps(&Malformed::cover(seed), &sink));
    let max = timers.map_or(0, |t| t.max_payload);
    if max > 0 && max <= 8 << 20 {
        let content = "x".repeat(usize::try_from(max).unwrap_or(0) + 1);
        let big = json!(["send_message", {"to": names.user("dave"), "content": content, "client_id": "oversized"}]);
        steps.push(AbuseStep::text(format!("423{big}"), false));
    }
    steps
}

/// The abuser's steps for `sample`, addressing `sink`: each may be ignored
/// or refused; none may be accepted as a message, cost anyone else their
/// connection, or stop /health.
pub(super) fn fuzz_steps(sample: &[Malformed], sink: &str) -> Vec<AbuseStep> {
    let mut steps = Vec::new();
    for (i, malformed) in sample.iter().enumerate() {
        let frames = malformed.frames(sink, FUZZ_ACKS_FROM + i as u64);
        let alone = malformed.leaves_pending();
        if alone || matches!(&frames[..], [Out::Text(_), Out::Binary(_)]) {
            // An attachment completes its event, and one that never comes
            // leaves the connection waiting: one exchange either way.
            steps.push(AbuseStep {
                writes: frames,
                may_accept: false,
                fresh: false,
                alone,
                quick: false,
            });
            continue;
        }
        for (n, out) in frames.into_iter().enumerate() {
            steps.push(AbuseStep {
                writes: vec![out],
                may_accept: malformed.may_accept(n),
                fresh: malformed.is_connect(),
                alone: false,
                quick: true,
            });
        }
    }
    steps
}

/// B1 for one sample of malformed frames, on its own: `alice` and `bob`
/// connect and exchange a message, the abuser sends `sample` on a raw
/// websocket, `alice` sends again; judged by every trace checker and by
/// [`abuse_harms_nobody`]. The property tests drive it with generated samples;
/// `check` sends a seeded sample of its own inside the core run.
pub async fn fuzz_run(
    target: &Target,
    options: &CheckOptions,
    sample: &[Malformed],
) -> Result<Run, CheckError> {
    let started = Instant::now();
    let connector = target.connector();
    wait_until_up(target, &connector, options.patience()).await?;
    let names = Names::new(options.seed, fresh_tag_source());
    let steps = fuzz_steps(sample, &names.user("m1sink"));
    let window_ms = options.scaled(300);
    let abuse_at_ms = 1_000;
    // Room for every answer window and a reconnect after each.
    let after_ms = abuse_at_ms + steps.len() as u64 * (window_ms + 200) + 500;
    use HeaderPolicy::Valid;
    let users = vec![
        user(
            names.user("alice"),
            OpenMode::WebsocketFirst,
            Valid,
            Profile::Node,
        ),
        user(
            names.user("bob"),
            OpenMode::PollingFirst,
            Valid,
            Profile::Node,
        ),
    ];
    let bob = users[1].name.clone();
    let scenario = for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps: vec![
                step(0, 0, Action::Open),
                step(0, 1, Action::Open),
                step(600, 0, send(&bob, "before the abuse")),
                step(after_ms, 0, send(&bob, "after the abuse")),
            ],
            faults: FaultPlan::default(),
            active_ms: after_ms + 1_000,
            heal_ms: options.scaled(1_500) + DRAIN_MS,
            open_world: true,
        },
    );
    let recorder = Recorder::new(TraceClock::Real(started));
    let client = check_client(options);
    let window = Duration::from_millis(window_ms);
    let ((), well_formed) = tokio::join!(
        play(
            &scenario,
            vec![connector.clone(); scenario.users.len()],
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        abuse(
            &connector,
            &names,
            &recorder,
            options,
            steps,
            (
                abuse_at_ms,
                window,
                scenario.end_ms().saturating_sub(DRAIN_MS)
            )
        )
    );
    let trace = recorder.trace();
    let mut violations = check_all(&trace, &scenario);
    let facts = Facts::new(&trace, &scenario);
    violations.extend(sessions_open(&facts));
    violations.extend(calm_deliveries(&facts, options.scaled(1_000)));
    violations.extend(abuse_harms_nobody(&facts, abuse_at_ms, &well_formed));
    Ok(Run::new("fuzz", Some(scenario), trace, violations, started))
}

/// Writes `writes` and collects what came back ([`answers_to`], awaiting
/// the answer to the first text frame).
pub(super) async fn send_and_answer<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    writes: &[Out],
    window: Duration,
) -> (String, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for write in writes {
        let frame = match write {
            Out::Text(t) => Frame::text(t.clone()),
            Out::Binary(b) => Frame::binary(b.clone()),
        };
        if ws.send(frame).await.is_err() {
            return ("connection closed before sending".into(), true);
        }
    }
    let first = writes.iter().find_map(|w| match w {
        Out::Text(t) => Some(t.as_str()),
        Out::Binary(_) => None,
    });
    answers_to(ws, first.unwrap_or(""), window).await
}

pub(super) async fn answers_to<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    packet: &str,
    window: Duration,
) -> (String, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let awaited = if packet.starts_with("40") {
        Some("40".to_owned()) // CONNECT: done at the namespace's answer
    } else {
        // An event (`42<id>[`) or a binary event (`45<n>-<id>[`) asking for an ack.
        packet
            .strip_prefix("42")
            .or_else(|| {
                packet
                    .strip_prefix("45")
                    .and_then(|r| r.split_once('-'))
                    .map(|(_, r)| r)
            })
            .and_then(|rest| rest.split_once('['))
            .filter(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(|(id, _)| format!("43{id}["))
    };
    // A frame that asks for no answer gets a short quiet window: a server
    // may ignore it, and waiting the whole window on each would outlast the
    // scenario. The late answers at the end get the whole window.
    let window = if awaited.is_some() || packet == LATE_ANSWERS {
        window
    } else {
        (window / 4).max(Duration::from_millis(250)).min(window)
    };
    let deadline = Instant::now() + window;
    let mut answers = Vec::new();
    let mut more = 0usize;
    let mut closed = false;
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        match frame {
            Some(Ok(Frame::Text(t))) if t.as_str() == "2" => {
                let _ = ws.send(Frame::text("3")).await;
            }
            Some(Ok(Frame::Text(t))) => {
                // A CONNECT is done at its answer, accepted or refused (`44`).
                let done = awaited
                    .as_deref()
                    .is_some_and(|a| t.as_str().starts_with(a))
                    || (awaited.as_deref() == Some("40") && t.as_str().starts_with("44"));
                // Each frame kept whole up to a bound, and so many of them:
                // a hostile server cannot grow the trace.
                if answers.len() < MAX_ANSWER_FRAMES {
                    answers.push(abbreviate(t.as_str()));
                } else {
                    more += 1;
                }
                if done {
                    break;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                closed = true;
                break;
            }
        }
    }
    if more > 0 {
        answers.push(format!("… {more} more frames"));
    }
    let mut answer = if answers.is_empty() {
        NOTHING.to_owned()
    } else {
        answers.join(" | ")
    };
    if closed {
        answer.push_str(" [connection closed]");
    }
    (answer, closed)
}

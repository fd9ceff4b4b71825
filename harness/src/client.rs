//! The reference client: a socket.io-client look-alike written against
//! [`Connector`], so the same code runs on turmoil's and tokio's TCP.
//!
//! A [`User`] owns tabs (each a socket.io-client instance with its own Engine.IO
//! session and reconnection), a mailbox poll loop with a cursor (L1–L3), and a
//! de-duplicating inbox (M5). Every observable step is recorded in the trace.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use server_under_test::store::{Accepted, MailboxEntry, Message};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use crate::packet::{EioPacket, Handshake, SioPacket};
use crate::scenario::{OpenMode, Profile, UserSpec};
use crate::trace::{Recorder, Via, What};
use crate::transport::{self, Connector, TransportError};

/// Client timers, with the seed's values as defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Mailbox poll period (L3: the seed's "0–30 second delay").
    pub poll_interval_ms: u64,
    /// First reconnect delay (seed: 1 s), doubled per attempt.
    pub reconnect_delay_ms: u64,
    /// Longest reconnect delay (socket.io-client default 5 s).
    pub reconnect_delay_max_ms: u64,
    /// Attempts before giving up (seed: 5).
    pub reconnect_attempts: u32,
    /// How long an HTTP request may take.
    pub request_timeout_ms: u64,
    /// How long opening a session, CONNECT included, may take (socket.io-client `timeout`).
    pub connect_timeout_ms: u64,
    /// How long `send_message` waits for its ack.
    pub ack_timeout_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 30_000,
            reconnect_delay_ms: 1_000,
            reconnect_delay_max_ms: 5_000,
            reconnect_attempts: 5,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 20_000,
            ack_timeout_ms: 10_000,
        }
    }
}

/// What a user's client shares between its tabs and its poll loop.
struct Shared<C> {
    connector: C,
    recorder: Recorder,
    config: ClientConfig,
    spec: UserSpec,
    next_conn: AtomicU32,
    inbox: Mutex<Inbox>,
    rng: Mutex<SmallRng>,
}

/// Ids already shown, and the mailbox cursor.
#[derive(Default)]
struct Inbox {
    seen: BTreeSet<u64>,
    cursor: u64,
}

impl<C: Connector> Shared<C> {
    fn record(&self, actor: &str, what: What) {
        self.recorder.record(actor, what);
    }

    /// Records a message's arrival; true when it is new (M5 de-duplication).
    fn receive(&self, actor: &str, message: &Message, via: Via) {
        let duplicate = !self.inbox.lock().unwrap().seen.insert(message.id);
        self.record(
            actor,
            What::Received {
                id: message.id,
                from: message.from.clone(),
                to: message.to.clone(),
                via,
                duplicate,
            },
        );
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }
}

/// A command to a tab.
#[derive(Debug)]
enum Command {
    Send {
        client_id: String,
        to: String,
        content: String,
    },
    SendRaw {
        client_id: String,
        payload: Value,
    },
    Close,
    Crash,
}

/// One socket.io-client instance: a task that keeps a session open, reconnecting.
struct Tab {
    commands: mpsc::UnboundedSender<Command>,
    connected: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tab {
    fn is_live(&self) -> bool {
        !self.task.is_finished()
    }
}

/// A user and their client.
pub struct User<C: Connector> {
    shared: Arc<Shared<C>>,
    tabs: Vec<Tab>,
    next_client_id: u32,
}

impl<C: Connector> User<C> {
    /// A user whose client talks through `connector`; `seed` drives its backoff jitter.
    pub fn new(
        connector: C,
        recorder: Recorder,
        config: ClientConfig,
        spec: UserSpec,
        seed: u64,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                connector,
                recorder,
                config,
                spec,
                next_conn: AtomicU32::new(0),
                inbox: Mutex::default(),
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            }),
            tabs: Vec::new(),
            next_client_id: 0,
        }
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// Opens a new tab.
    pub fn open(&mut self) {
        let (commands, rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run_tab(
            Arc::clone(&self.shared),
            rx,
            Arc::clone(&connected),
        ));
        self.tabs.push(Tab {
            commands,
            connected,
            task,
        });
    }

    /// Closes the oldest live tab cleanly.
    pub fn close(&mut self) {
        if let Some(index) = self.tabs.iter().position(Tab::is_live) {
            let tab = self.tabs.remove(index);
            let _ = tab.commands.send(Command::Close);
        }
    }

    fn next_client_id(&mut self) -> String {
        self.next_client_id += 1;
        format!("{}-{}", self.shared.spec.name, self.next_client_id)
    }

    fn connected_tab(&self) -> Option<&Tab> {
        self.tabs
            .iter()
            .find(|t| t.is_live() && t.connected.load(Ordering::SeqCst))
    }

    /// Sends `content` to `to` from the oldest connected tab.
    pub fn send(&mut self, to: &str, content: &str) {
        let client_id = self.next_client_id();
        match self.connected_tab() {
            Some(tab) => {
                let _ = tab.commands.send(Command::Send {
                    client_id,
                    to: to.to_owned(),
                    content: content.to_owned(),
                });
            }
            None => self.shared.record(
                &self.shared.spec.name,
                What::NotSent {
                    client_id,
                    to: to.to_owned(),
                },
            ),
        }
    }

    /// Sends a malformed payload (B1) from the oldest connected tab.
    pub fn send_raw(&mut self, payload: Value) {
        let client_id = self.next_client_id();
        if let Some(tab) = self.connected_tab() {
            let _ = tab.commands.send(Command::SendRaw { client_id, payload });
        }
    }

    /// The client process dies: every tab drops its sockets without a word.
    /// Returns how many tabs were live, to reopen after the restart.
    pub fn crash(&mut self) -> usize {
        let live: Vec<Tab> = self.tabs.drain(..).filter(Tab::is_live).collect();
        for tab in &live {
            let _ = tab.commands.send(Command::Crash);
        }
        live.len()
    }

    /// Polls the mailbox once (L1, L2).
    pub async fn poll(&self) {
        poll_mailbox(&self.shared).await;
    }

    /// Runs the regular poll loop until `until` (L3): first poll after `offset`.
    pub fn spawn_poll_loop(&self, offset: Duration, until: Instant) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let period = Duration::from_millis(shared.config.poll_interval_ms);
            let mut next = Instant::now() + offset;
            while next < until {
                sleep_until(next).await;
                poll_mailbox(&shared).await;
                next += period;
            }
        })
    }

    /// Stops every tab without recording (the end of a run).
    pub fn shutdown(&mut self) {
        for tab in self.tabs.drain(..) {
            tab.task.abort();
        }
    }
}

async fn poll_mailbox<C: Connector>(shared: &Shared<C>) {
    let name = &shared.spec.name;
    let after = shared.inbox.lock().unwrap().cursor;
    let path = format!("/api/messages?after={after}");
    let outcome = timeout(
        shared.request_timeout(),
        transport::request(
            &shared.connector,
            http::Method::GET,
            &path,
            &[("username", name)],
            None,
        ),
    )
    .await
    .unwrap_or(Err(TransportError::Timeout));
    let response = match outcome {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            let reason = format!("status {}: {}", r.status, r.body);
            return shared.record(name, What::PollFailed { after, reason });
        }
        Err(e) => {
            return shared.record(
                name,
                What::PollFailed {
                    after,
                    reason: e.to_string(),
                },
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct Mailbox {
        messages: Vec<MailboxEntry>,
    }
    let entries = match serde_json::from_str::<Mailbox>(&response.body) {
        Ok(m) => m.messages,
        Err(e) => {
            return shared.record(
                name,
                What::PollFailed {
                    after,
                    reason: format!("bad body: {e}"),
                },
            );
        }
    };
    shared.record(
        name,
        What::Polled {
            after,
            seqs: entries.iter().map(|e| e.seq).collect(),
        },
    );
    for entry in &entries {
        shared.receive(name, &entry.message, Via::Mailbox);
    }
    if let Some(last) = entries.iter().map(|e| e.seq).max() {
        let mut inbox = shared.inbox.lock().unwrap();
        inbox.cursor = inbox.cursor.max(last);
    }
}

/// How a session ended.
enum End {
    OpenFailed,
    Refused,
    Lost,
    ByClient,
}

async fn run_tab<C: Connector>(
    shared: Arc<Shared<C>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    connected: Arc<AtomicBool>,
) {
    let mut failures = 0;
    loop {
        let conn_no = shared.next_conn.fetch_add(1, Ordering::SeqCst) + 1;
        let label = format!("{}#{conn_no}", shared.spec.name);
        let mut session = Session {
            shared: &shared,
            label,
            connected: &connected,
            next_ack_id: 0,
            pending: Vec::new(),
            early: Vec::new(),
        };
        let end = session.run(&mut commands).await;
        connected.store(false, Ordering::SeqCst);
        match end {
            End::ByClient | End::Refused => return,
            End::Lost => failures = 0,
            End::OpenFailed => {}
        }
        failures += 1;
        if failures > shared.config.reconnect_attempts {
            shared.record(&shared.spec.name, What::GaveUp);
            return;
        }
        let delay_ms = {
            let base = shared
                .config
                .reconnect_delay_ms
                .saturating_mul(1 << (failures - 1).min(16));
            let capped = base.min(shared.config.reconnect_delay_max_ms);
            // socket.io-client's randomizationFactor 0.5.
            let jitter = shared.rng.lock().unwrap().random_range(0..=capped / 2);
            (capped - capped / 4 + jitter).min(shared.config.reconnect_delay_max_ms)
        };
        shared.record(
            &shared.spec.name,
            What::ReconnectScheduled {
                attempt: failures,
                delay_ms,
            },
        );
        // Commands that arrive while down: a close or crash ends the tab.
        let wake = Instant::now() + Duration::from_millis(delay_ms);
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Close) | Some(Command::Crash) => return,
                    Some(_) => {}
                },
                _ = sleep_until(wake) => break,
            }
        }
    }
}

/// A sent event waiting for its ack.
struct PendingAck {
    ack_id: u64,
    client_id: String,
    deadline: Instant,
}

/// One Engine.IO session with its Socket.IO namespace connection.
struct Session<'a, C> {
    shared: &'a Shared<C>,
    label: String,
    connected: &'a AtomicBool,
    next_ack_id: u64,
    pending: Vec<PendingAck>,
    /// Socket.IO packets that arrived over polling right after CONNECT.
    early: Vec<String>,
}

type Ws<C> = WebSocketStream<<C as Connector>::Stream>;

impl<C: Connector> Session<'_, C> {
    fn record(&self, what: What) {
        self.shared.record(&self.label, what);
    }

    async fn run(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> End {
        let spec = &self.shared.spec;
        let header = spec.handshake_header();
        self.record(What::ConnectAttempt {
            open: spec.open,
            header: spec.header,
            header_sent: header.is_some(),
        });
        let limit = Duration::from_millis(self.shared.config.connect_timeout_ms);
        let opened = match timeout(limit, self.open(header.as_deref())).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                self.record(What::OpenFailed {
                    reason: e.to_string(),
                });
                return End::OpenFailed;
            }
            Err(_) => {
                self.record(What::OpenFailed {
                    reason: "timed out".into(),
                });
                return End::OpenFailed;
            }
        };
        let (ws, handshake, refused) = opened;
        if refused {
            return End::Refused;
        }
        let end = self.serve(ws, &handshake, commands).await;
        for lost in std::mem::take(&mut self.pending) {
            self.shared.record(
                &self.label,
                What::AckLost {
                    client_id: lost.client_id,
                    reason: "connection ended".into(),
                },
            );
        }
        end
    }

    /// Opens the session and connects the namespace. Returns the websocket, the
    /// handshake, and whether CONNECT was refused.
    async fn open(
        &mut self,
        header: Option<&str>,
    ) -> Result<(Ws<C>, Handshake, bool), TransportError> {
        let connector = &self.shared.connector;
        let handshake_headers: Vec<(&str, &str)> =
            header.map(|h| ("username", h)).into_iter().collect();
        // Browsers cannot put headers on a WebSocket; Node's client can.
        let ws_headers: &[(&str, &str)] = match self.shared.spec.profile {
            Profile::Node => &handshake_headers,
            Profile::Browser => &[],
        };
        match self.shared.spec.open {
            OpenMode::WebsocketFirst => {
                let mut ws = transport::websocket(
                    connector,
                    "/socket.io/?EIO=4&transport=websocket",
                    ws_headers,
                )
                .await?;
                let handshake = self.opened(Some(next_eio(&mut ws).await?))?;
                send_sio(&mut ws, &SioPacket::Connect(None)).await?;
                let refused = loop {
                    match next_eio(&mut ws).await? {
                        EioPacket::Ping(_) => {
                            send_eio(&mut ws, &EioPacket::Pong(String::new())).await?
                        }
                        EioPacket::Message(data) => {
                            if let Some(refused) = self.on_connect_reply(&data) {
                                break refused;
                            }
                        }
                        EioPacket::Close => {
                            return Err(TransportError::Protocol("closed before CONNECT".into()))
                        }
                        _ => {}
                    }
                };
                Ok((ws, handshake, refused))
            }
            OpenMode::PollingFirst => {
                self.open_polling_then_upgrade(&handshake_headers, ws_headers)
                    .await
            }
        }
    }

    /// socket.io-client's default: handshake and CONNECT over polling, then upgrade.
    async fn open_polling_then_upgrade(
        &mut self,
        polling_headers: &[(&str, &str)],
        ws_headers: &[(&str, &str)],
    ) -> Result<(Ws<C>, Handshake, bool), TransportError> {
        let connector = &self.shared.connector;
        let base = "/socket.io/?EIO=4&transport=polling";
        let first =
            transport::request(connector, http::Method::GET, base, polling_headers, None).await?;
        if first.status != 200 {
            return Err(TransportError::Protocol(format!(
                "handshake status {}: {}",
                first.status, first.body
            )));
        }
        let first_packet = EioPacket::decode_payload(&first.body)
            .map_err(|e| TransportError::Protocol(e.to_string()))?
            .into_iter()
            .next();
        let handshake = self.opened(first_packet)?;
        let session = format!("{base}&sid={}", handshake.sid);
        let post = |body: String| {
            transport::request(
                connector,
                http::Method::POST,
                &session,
                polling_headers,
                Some(body),
            )
        };
        let posted = post(EioPacket::Message(SioPacket::Connect(None).encode()).encode()).await?;
        if posted.status != 200 {
            return Err(TransportError::Protocol(format!(
                "POST status {}",
                posted.status
            )));
        }
        // Long-poll until the namespace answers, answering pings on the way.
        let refused = loop {
            let got = transport::request(
                connector,
                http::Method::GET,
                &session,
                polling_headers,
                None,
            )
            .await?;
            if got.status != 200 {
                return Err(TransportError::Protocol(format!(
                    "poll status {}",
                    got.status
                )));
            }
            let mut answer = None;
            for packet in EioPacket::decode_payload(&got.body)
                .map_err(|e| TransportError::Protocol(e.to_string()))?
            {
                match packet {
                    EioPacket::Ping(_) => {
                        post(EioPacket::Pong(String::new()).encode()).await?;
                    }
                    // Whatever follows CONNECT in the same payload came over polling.
                    EioPacket::Message(data) if answer.is_some() => self.early.push(data),
                    EioPacket::Message(data) => answer = self.on_connect_reply(&data),
                    EioPacket::Close => {
                        return Err(TransportError::Protocol("closed before CONNECT".into()))
                    }
                    _ => {}
                }
            }
            if let Some(refused) = answer {
                break refused;
            }
        };
        let path = format!(
            "/socket.io/?EIO=4&transport=websocket&sid={}",
            handshake.sid
        );
        let mut ws = transport::websocket(connector, &path, ws_headers).await?;
        if !refused {
            send_eio(&mut ws, &EioPacket::Ping("probe".into())).await?;
            loop {
                match next_eio(&mut ws).await? {
                    EioPacket::Pong(p) if p == "probe" => break,
                    EioPacket::Noop => {}
                    other => {
                        return Err(TransportError::Protocol(format!(
                            "expected 3probe, got {other:?}"
                        )))
                    }
                }
            }
            send_eio(&mut ws, &EioPacket::Upgrade).await?;
        }
        if !refused {
            self.record(What::Upgraded);
        }
        Ok((ws, handshake, refused))
    }

    /// Takes the Engine.IO open packet and records the opened session.
    fn opened(&self, packet: Option<EioPacket>) -> Result<Handshake, TransportError> {
        let handshake = match packet {
            Some(EioPacket::Open(h)) => h,
            other => {
                return Err(TransportError::Protocol(format!(
                    "expected open, got {other:?}"
                )))
            }
        };
        self.record(What::Opened {
            ping_interval_ms: handshake.ping_interval,
            ping_timeout_ms: handshake.ping_timeout,
        });
        Ok(handshake)
    }

    /// Reads the namespace's answer to CONNECT: `Some(refused)` once it came.
    fn on_connect_reply(&mut self, data: &str) -> Option<bool> {
        match SioPacket::decode(data) {
            Ok(SioPacket::Connect(_)) => {
                self.connected.store(true, Ordering::SeqCst);
                self.record(What::Connected);
                Some(false)
            }
            Ok(SioPacket::ConnectError(data)) => {
                let message = data
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| data.to_string(), str::to_owned);
                self.record(What::ConnectRefused { message });
                Some(true)
            }
            _ => None,
        }
    }

    /// The connected session: heartbeats, events, acks and commands until it ends.
    async fn serve(
        &mut self,
        mut ws: Ws<C>,
        handshake: &Handshake,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> End {
        let silence_limit = Duration::from_millis(handshake.ping_interval + handshake.ping_timeout);
        let mut heartbeat_deadline = Instant::now() + silence_limit;
        for data in std::mem::take(&mut self.early) {
            match self.on_message(&mut ws, &data, Via::PollingTransport).await {
                Ok(true) => {}
                Ok(false) => {
                    self.record(What::Disconnected {
                        reason: "server disconnect".into(),
                    });
                    return End::Lost;
                }
                Err(e) => {
                    self.record(What::Disconnected {
                        reason: e.to_string(),
                    });
                    return End::Lost;
                }
            }
        }
        loop {
            let ack_deadline = self.pending.iter().map(|p| p.deadline).min();
            let reason = tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Send { client_id, to, content }) => {
                        let payload = json!({"to": to, "content": content, "client_id": client_id});
                        self.record(What::Sent { client_id: client_id.clone(), to });
                        match self.emit_send(&mut ws, client_id, payload).await { Ok(()) => continue, Err(e) => e.to_string() }
                    }
                    Some(Command::SendRaw { client_id, payload }) => {
                        self.record(What::SentRaw { client_id: client_id.clone() });
                        match self.emit_send(&mut ws, client_id, payload).await { Ok(()) => continue, Err(e) => e.to_string() }
                    }
                    Some(Command::Close) | None => {
                        let _ = send_sio(&mut ws, &SioPacket::Disconnect).await;
                        let _ = ws.close(None).await;
                        self.record(What::Disconnected { reason: "client close".into() });
                        return End::ByClient;
                    }
                    Some(Command::Crash) => {
                        drop(ws);
                        self.record(What::Disconnected { reason: "client crashed".into() });
                        return End::ByClient;
                    }
                },
                frame = ws.next() => match frame {
                    Some(Ok(Frame::Text(text))) => match EioPacket::decode(text.as_str()) {
                        Ok(EioPacket::Ping(_)) => {
                            heartbeat_deadline = Instant::now() + silence_limit;
                            match send_eio(&mut ws, &EioPacket::Pong(String::new())).await { Ok(()) => continue, Err(e) => e.to_string() }
                        }
                        Ok(EioPacket::Message(data)) => match self.on_message(&mut ws, &data, Via::Websocket).await {
                            Ok(true) => continue,
                            Ok(false) => "server disconnect".to_owned(),
                            Err(e) => e.to_string(),
                        },
                        Ok(EioPacket::Close) => "server close".to_owned(),
                        Ok(_) => continue,
                        Err(e) => format!("bad packet: {e}"),
                    },
                    Some(Ok(Frame::Close(_))) | None => "transport close".to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => format!("transport error: {e}"),
                },
                _ = sleep_until(heartbeat_deadline) => "ping timeout".to_owned(),
                _ = sleep_until(ack_deadline.unwrap_or_else(far_future)), if ack_deadline.is_some() => {
                    let now = Instant::now();
                    let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.deadline <= now);
                    self.pending = kept;
                    for p in expired {
                        self.record(What::AckLost { client_id: p.client_id, reason: "ack timeout".into() });
                    }
                    continue;
                }
            };
            self.record(What::Disconnected { reason });
            return End::Lost;
        }
    }

    async fn emit_send(
        &mut self,
        ws: &mut Ws<C>,
        client_id: String,
        payload: Value,
    ) -> Result<(), TransportError> {
        self.next_ack_id += 1;
        let ack_id = self.next_ack_id;
        let deadline = Instant::now() + Duration::from_millis(self.shared.config.ack_timeout_ms);
        self.pending.push(PendingAck {
            ack_id,
            client_id,
            deadline,
        });
        let packet = SioPacket::Event {
            name: "send_message".into(),
            args: vec![payload],
            ack_id: Some(ack_id),
        };
        send_sio(ws, &packet).await
    }

    /// Handles a Socket.IO packet; `Ok(false)` when the server disconnected us.
    async fn on_message(
        &mut self,
        ws: &mut Ws<C>,
        data: &str,
        via: Via,
    ) -> Result<bool, TransportError> {
        match SioPacket::decode(data) {
            Ok(SioPacket::Event { name, args, ack_id }) => {
                let first = args.into_iter().next().unwrap_or(Value::Null);
                match name.as_str() {
                    "user_online" | "user_offline" => {
                        let username = first
                            .get("username")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        self.record(What::Presence {
                            username,
                            online: name == "user_online",
                        });
                    }
                    "new_message" => match serde_json::from_value::<Message>(first) {
                        Ok(message) => self.shared.receive(&self.label, &message, via),
                        Err(e) => tracing::warn!("{}: malformed new_message: {e}", self.label),
                    },
                    _ => {}
                }
                if let Some(ack_id) = ack_id {
                    send_sio(
                        ws,
                        &SioPacket::Ack {
                            ack_id,
                            args: Vec::new(),
                        },
                    )
                    .await?;
                }
            }
            Ok(SioPacket::Ack { ack_id, args }) => {
                if let Some(index) = self.pending.iter().position(|p| p.ack_id == ack_id) {
                    let client_id = self.pending.remove(index).client_id;
                    let first = args.into_iter().next().unwrap_or(Value::Null);
                    let what = match serde_json::from_value::<Accepted>(first.clone()) {
                        Ok(a) => What::Accepted {
                            client_id,
                            id: a.id,
                            delivery: a.delivery,
                        },
                        Err(_) => What::Refused {
                            client_id,
                            error: first
                                .get("error")
                                .and_then(Value::as_str)
                                .map_or_else(|| first.to_string(), str::to_owned),
                        },
                    };
                    self.record(what);
                }
            }
            Ok(SioPacket::Disconnect) => return Ok(false),
            Ok(_) => {}
            Err(e) => tracing::warn!("{}: unreadable packet {data:?}: {e}", self.label),
        }
        Ok(true)
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn next_eio<S>(ws: &mut WebSocketStream<S>) -> Result<EioPacket, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Frame::Text(text))) => {
                return EioPacket::decode(text.as_str())
                    .map_err(|e| TransportError::Protocol(e.to_string()))
            }
            Some(Ok(Frame::Close(_))) | None => {
                return Err(TransportError::Protocol("websocket closed".into()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

async fn send_eio<S>(ws: &mut WebSocketStream<S>, packet: &EioPacket) -> Result<(), TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Frame::text(packet.encode()))
        .await
        .map_err(Into::into)
}

async fn send_sio<S>(ws: &mut WebSocketStream<S>, packet: &SioPacket) -> Result<(), TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send_eio(ws, &EioPacket::Message(packet.encode())).await
}

/// Probes `GET /api/online` once (P4).
pub async fn probe_online<C: Connector>(
    connector: &C,
    recorder: &Recorder,
    request_timeout: Duration,
) {
    let outcome = timeout(
        request_timeout,
        transport::request(connector, http::Method::GET, "/api/online", &[], None),
    )
    .await
    .unwrap_or(Err(TransportError::Timeout));
    let what = match outcome {
        Ok(r) if r.status == 200 => match serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| serde_json::from_value::<Vec<String>>(v["users"].clone()).ok())
        {
            Some(users) => What::OnlineProbe { users },
            None => What::ProbeFailed {
                reason: format!("bad body: {}", r.body),
            },
        },
        Ok(r) => What::ProbeFailed {
            reason: format!("status {}", r.status),
        },
        Err(e) => What::ProbeFailed {
            reason: e.to_string(),
        },
    };
    recorder.record("observer", what);
}

//! One Engine.IO session and its Socket.IO namespace connection: open (polling
//! first or websocket first, with the upgrade), CONNECT, heartbeats, sends and
//! their acks, pushes and their acks, and how the session ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use super::link::{Link, Polling};
use super::{Command, Outgoing, Shared, RETRIES};
use crate::contract::{Accepted, Message};
use crate::net::packet::{EioPacket, Handshake, SioPacket};
use crate::net::transport::{self, Connector, TransportError};
use crate::scenario::{OpenMode, Profile};
use crate::trace::{Via, What};

/// How a session ended.
pub(super) enum End {
    OpenFailed,
    Refused,
    Lost,
    ByClient,
}

/// A sent event waiting for its ack.
pub(super) struct PendingAck {
    pub(super) ack_id: u64,
    pub(super) client_id: String,
    pub(super) deadline: Instant,
    /// A `send_message` (not a raw payload): what a retry sends again.
    pub(super) message: Option<Outgoing>,
}

/// One Engine.IO session with its Socket.IO namespace connection.
pub(super) struct Session<'a, C> {
    pub(super) shared: &'a Shared<C>,
    pub(super) label: String,
    pub(super) connected: &'a AtomicBool,
    pub(super) next_ack_id: u64,
    pub(super) pending: Vec<PendingAck>,
    /// Acks for pushes received over long-polling, written together once the
    /// payload that brought them is handled (engine.io-client's write buffer).
    pub(super) acks_due: Vec<SioPacket>,
    /// Socket.IO packets that arrived over polling right after CONNECT.
    pub(super) early: Vec<String>,
}

impl<C: Connector> Session<'_, C> {
    fn record(&self, what: What) {
        self.shared.record(&self.label, what);
    }

    pub(super) async fn run(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> End {
        let spec = &self.shared.spec;
        let header = spec.header_for_handshake();
        self.record(What::ConnectAttempt {
            open: spec.open,
            header: spec.header,
            header_sent: header.is_some(),
        });
        let limit = self
            .shared
            .timer(Duration::from_millis(self.shared.config.connect_timeout_ms));
        let opened = match timeout(limit, self.open(header.as_deref())).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return self.open_failed(e.to_string()),
            Err(_) => return self.open_failed("timed out".into()),
        };
        let (link, handshake, refused) = opened;
        if refused {
            return End::Refused;
        }
        let end = self.serve(link, &handshake, commands).await;
        let mut retry = Vec::new();
        for lost in std::mem::take(&mut self.pending) {
            self.shared.record(
                &self.label,
                What::AckLost {
                    client_id: lost.client_id,
                    reason: "connection ended".into(),
                },
            );
            retry.extend(lost.message.and_then(|m| self.retry_of(m)));
        }
        // socket.io-client keeps them for the next connection, ahead of
        // anything buffered since.
        let mut outbox = self.shared.outbox.lock().unwrap();
        for message in retry.into_iter().rev() {
            outbox.push_front(message);
        }
        end
    }

    /// Opening failed. A polling-first session can fail in its upgrade after
    /// CONNECT was already answered: that session was connected, so it ends as
    /// a disconnect (the client abandons it; the server notices by its ping
    /// timeout), never as a second, contradictory "open failed".
    fn open_failed(&self, reason: String) -> End {
        if self.connected.load(Ordering::SeqCst) {
            self.record(What::Disconnected {
                reason: format!("upgrade failed ({reason}): session abandoned"),
            });
            End::Lost
        } else {
            self.record(What::OpenFailed { reason });
            End::OpenFailed
        }
    }

    /// Opens the session and connects the namespace. Returns the websocket, the
    /// handshake, and whether CONNECT was refused.
    async fn open(
        &mut self,
        header: Option<&str>,
    ) -> Result<(Link<C>, Handshake, bool), TransportError> {
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
                send_sio(&mut ws, &SioPacket::Connect(self.shared.connect_auth())).await?;
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
                Ok((Link::Websocket(ws), handshake, refused))
            }
            OpenMode::PollingFirst => {
                self.open_polling(&handshake_headers, Some(ws_headers))
                    .await
            }
            OpenMode::PollingOnly => self.open_polling(&handshake_headers, None).await,
        }
    }

    /// Handshake and CONNECT over polling, then (socket.io-client's default)
    /// the upgrade with `ws_headers`; without them (`transports:
    /// ['polling']`), or when the upgrade is refused with an HTTP status (a
    /// proxy without `Upgrade` support), the session stays on polling, as
    /// socket.io-client's does.
    async fn open_polling(
        &mut self,
        polling_headers: &[(&str, &str)],
        ws_headers: Option<&[(&str, &str)]>,
    ) -> Result<(Link<C>, Handshake, bool), TransportError> {
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
        // A balancer's stickiness cookie (N2: HAProxy's `cookie … insert`)
        // goes back on every later request of the session, as a browser's
        // and Node's cookie-keeping clients send it.
        let cookie = first.cookie_header();
        let polling_owned: Vec<(&str, &str)> = polling_headers
            .iter()
            .copied()
            .chain(cookie.as_deref().map(|c| ("cookie", c)))
            .collect();
        let ws_owned: Option<Vec<(&str, &str)>> = ws_headers.map(|ws| {
            ws.iter()
                .copied()
                .chain(cookie.as_deref().map(|c| ("cookie", c)))
                .collect()
        });
        let polling_headers = &polling_owned[..];
        let ws_headers = ws_owned.as_deref();
        let session = format!("{base}&sid={}", handshake.sid);
        let connect =
            EioPacket::Message(SioPacket::Connect(self.shared.connect_auth()).encode()).encode();
        post(connector, &session, polling_headers, connect).await?;
        if let (Some(ws_headers), true) = (ws_headers, self.shared.spec.socketio_js) {
            return self
                .race_upgrade(handshake, &session, polling_headers, ws_headers)
                .await;
        }
        // Long-poll until the namespace answers, answering pings on the way.
        let mut answer = None;
        while answer.is_none() {
            let got = transport::request(
                connector,
                http::Method::GET,
                &session,
                polling_headers,
                None,
            )
            .await?;
            for _ in 0..self.opening_poll(got, &mut answer)? {
                let pong = EioPacket::Pong(String::new()).encode();
                post(connector, &session, polling_headers, pong).await?;
            }
        }
        let refused = answer == Some(true);
        let Some(ws_headers) = ws_headers else {
            let link = self.polling_link(session, polling_headers, &handshake);
            return Ok((link, handshake, refused));
        };
        let path = upgrade_path(&handshake.sid);
        let mut ws = match transport::websocket(connector, &path, ws_headers).await {
            Ok(ws) => ws,
            // socket.io-client's probe fails on any refused handshake and
            // the session stays on polling; a network failure is not a refusal.
            Err(TransportError::WebSocket(refusal)) if !refused && is_refusal(&refusal) => {
                self.upgrade_refused(&refusal);
                let link = self.polling_link(session, polling_headers, &handshake);
                return Ok((link, handshake, refused));
            }
            Err(e) => return Err(e),
        };
        if !refused {
            probe(&mut ws).await?;
            send_eio(&mut ws, &EioPacket::Upgrade).await?;
            self.record(What::Upgraded);
        }
        Ok((Link::Websocket(ws), handshake, refused))
    }

    /// socket.io-client's order ([`UserSpec::socketio_js`]): the upgrade
    /// probe runs while a long-poll is in flight. Polls go on (answering
    /// pings, taking CONNECT's answer and what follows it) until the probe is
    /// answered; then the poll in flight is let finish (a server answers it,
    /// with a NOOP if nothing else) and only then does `5` go over the
    /// websocket, as engine.io-client's `pause` does. What the server queued
    /// during the upgrade must come on one transport or the other. A refused
    /// probe leaves the session on polling.
    ///
    /// [`UserSpec::socketio_js`]: crate::scenario::UserSpec::socketio_js
    async fn race_upgrade(
        &mut self,
        handshake: Handshake,
        session: &str,
        polling_headers: &[(&str, &str)],
        ws_headers: &[(&str, &str)],
    ) -> Result<(Link<C>, Handshake, bool), TransportError> {
        let shared = self.shared;
        let connector = &shared.connector;
        let get =
            || transport::request(connector, http::Method::GET, session, polling_headers, None);
        let ws_path = upgrade_path(&handshake.sid);
        let mut probing = std::pin::pin!(async {
            let mut ws = transport::websocket(connector, &ws_path, ws_headers).await?;
            probe(&mut ws).await?;
            Ok::<_, TransportError>(ws)
        });
        let mut poll = Box::pin(get());
        let mut answer = None;
        // `Some(Some(ws))` once the probe is answered, `Some(None)` once refused.
        let mut probed = None;
        let ws = loop {
            tokio::select! {
                got = &mut poll => {
                    for _ in 0..self.opening_poll(got?, &mut answer)? {
                        let pong = EioPacket::Pong(String::new()).encode();
                        post(connector, session, polling_headers, pong).await?;
                    }
                    match (&mut probed, answer) {
                        (_, Some(true)) | (Some(None), Some(false)) => {
                            let link = self.polling_link(session.to_owned(), polling_headers, &handshake);
                            return Ok((link, handshake, answer == Some(true)));
                        }
                        (Some(ws @ Some(_)), _) => break ws.take(),
                        _ => poll = Box::pin(get()),
                    }
                }
                result = &mut probing, if probed.is_none() => {
                    probed = Some(match result {
                        Ok(ws) => Some(ws),
                        Err(TransportError::WebSocket(refusal)) if is_refusal(&refusal) => {
                            self.upgrade_refused(&refusal);
                            None
                        }
                        Err(e) => return Err(e),
                    });
                }
            }
        };
        let mut ws = ws.expect("the loop breaks only once probed");
        send_eio(&mut ws, &EioPacket::Upgrade).await?;
        self.record(What::Upgraded);
        // CONNECT's answer not polled yet: it comes over the websocket.
        while answer.is_none() {
            match next_eio(&mut ws).await? {
                EioPacket::Ping(_) => send_eio(&mut ws, &EioPacket::Pong(String::new())).await?,
                EioPacket::Message(data) => answer = self.on_connect_reply(&data),
                EioPacket::Close => {
                    return Err(TransportError::Protocol("closed before CONNECT".into()))
                }
                _ => {}
            }
        }
        Ok((Link::Websocket(ws), handshake, answer == Some(true)))
    }

    /// Takes one long-poll's answer while opening: CONNECT's answer into
    /// `answer` (what follows it in the same payload came over polling and is
    /// kept), and how many pings to answer.
    fn opening_poll(
        &mut self,
        got: transport::Response,
        answer: &mut Option<bool>,
    ) -> Result<usize, TransportError> {
        if got.status != 200 {
            return Err(TransportError::Protocol(format!(
                "poll status {}",
                got.status
            )));
        }
        let mut pings = 0;
        for packet in EioPacket::decode_payload(&got.body)
            .map_err(|e| TransportError::Protocol(e.to_string()))?
        {
            match packet {
                EioPacket::Ping(_) => pings += 1,
                EioPacket::Message(data) if answer.is_some() => self.early.push(data),
                EioPacket::Message(data) => *answer = self.on_connect_reply(&data),
                EioPacket::Close => {
                    return Err(TransportError::Protocol("closed before CONNECT".into()))
                }
                _ => {}
            }
        }
        Ok(pings)
    }

    /// The session stays on long-polling.
    fn polling_link(
        &self,
        session: String,
        polling_headers: &[(&str, &str)],
        handshake: &Handshake,
    ) -> Link<C> {
        let config = &self.shared.config;
        let silence = handshake
            .ping_interval
            .saturating_add(handshake.ping_timeout)
            .saturating_add(config.request_timeout_ms);
        Link::Polling(Polling::start(
            self.shared.connector.clone(),
            session,
            polling_headers,
            Duration::from_millis(silence),
            Duration::from_millis(config.request_timeout_ms),
        ))
    }

    fn upgrade_refused(&self, refusal: &tokio_tungstenite::tungstenite::Error) {
        let reason = match refusal {
            tokio_tungstenite::tungstenite::Error::Http(answer) => {
                format!("status {}", answer.status().as_u16())
            }
            other => other.to_string(),
        };
        self.record(What::UpgradeRefused { reason });
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
            Ok(SioPacket::Connect(data)) => {
                self.connected.store(true, Ordering::SeqCst);
                self.record(What::Connected);
                // The sid pairs this connection with the server's own record
                // (the referee); it is random, so it stays out of the trace.
                if let Some(sid) = data
                    .as_ref()
                    .and_then(|d| d.get("sid"))
                    .and_then(Value::as_str)
                {
                    self.shared.recorder.note_sid(&self.label, sid);
                }
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
        mut link: Link<C>,
        handshake: &Handshake,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> End {
        let silence_limit = Duration::from_millis(
            handshake
                .ping_interval
                .saturating_add(handshake.ping_timeout),
        );
        let mut heartbeat_deadline = Instant::now() + silence_limit;
        // The two timers live across the loop and are moved only when their
        // deadline does: a pass per packet made and dropped two of tokio's
        // timer entries and told the world of both wakes, ~150,000 times in
        // a 200-user run.
        let mut heartbeat = Box::pin(sleep_until(self.shared.fires_at(heartbeat_deadline)));
        let mut ack_timer = Box::pin(sleep_until(far_future()));
        let mut ack_armed: Option<Instant> = None;
        for data in std::mem::take(&mut self.early) {
            match self
                .on_message(&mut link, &data, Via::PollingTransport)
                .await
            {
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
        // socket.io-client's send buffer leaves on the connection that opens
        // first, in one write (empty unless the user has its habits).
        let buffered: Vec<Outgoing> = self.shared.outbox.lock().unwrap().drain(..).collect();
        let packets: Vec<SioPacket> = buffered.into_iter().map(|m| self.prepare(m)).collect();
        if let Err(e) = link.send_sio_all(&packets).await {
            // Their acks are pending: the end of this session retries them.
            self.record(What::Disconnected {
                reason: e.to_string(),
            });
            return End::Lost;
        }
        loop {
            if !self.acks_due.is_empty() && !link.has_queued() {
                let acks = std::mem::take(&mut self.acks_due);
                if let Err(e) = link.send_sio_all(&acks).await {
                    self.record(What::Disconnected {
                        reason: e.to_string(),
                    });
                    return End::Lost;
                }
            }
            let ack_deadline = self.pending.iter().map(|p| p.deadline).min();
            if let Some(deadline) = ack_deadline.filter(|&d| ack_armed != Some(d)) {
                ack_armed = Some(deadline);
                ack_timer.as_mut().reset(self.shared.fires_at(deadline));
            }
            let reason = tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Send(message)) => {
                        match self.emit_message(&mut link, message).await { Ok(()) => continue, Err(e) => e.to_string() }
                    }
                    Some(Command::SendRaw { client_id, payload }) => {
                        self.record(What::SentRaw { client_id: client_id.clone() });
                        match self.emit_send(&mut link, client_id, payload).await { Ok(()) => continue, Err(e) => e.to_string() }
                    }
                    Some(Command::Close) => {
                        let _ = link.send_sio(&SioPacket::Disconnect).await;
                        link.close().await;
                        self.record(What::Disconnected { reason: "client close".into() });
                        return End::ByClient;
                    }
                    // The run is over (`User::shutdown` dropped the tab while
                    // aborting it): nothing happened that a checker should
                    // see, so nothing is recorded.
                    None => return End::ByClient,
                    Some(Command::Crash) => {
                        drop(link);
                        self.record(What::Disconnected { reason: "client crashed".into() });
                        return End::ByClient;
                    }
                    // Asleep: the socket stays open, unread and unwritten.
                    // On waking, socket.io-client's overdue ping-timeout timer
                    // fires before anything buffered is read: a session the
                    // heartbeat gave up on ends, and the tab reconnects.
                    Some(Command::Freeze { until }) => {
                        sleep_until(until).await;
                        if Instant::now() < heartbeat_deadline {
                            continue;
                        }
                        "ping timeout (overdue on waking)".to_owned()
                    }
                },
                packet = link.next() => match packet {
                    Ok(EioPacket::Ping(_)) => {
                        heartbeat_deadline = Instant::now() + silence_limit;
                        heartbeat.as_mut().reset(self.shared.fires_at(heartbeat_deadline));
                        match link.send(&EioPacket::Pong(String::new())).await { Ok(()) => continue, Err(e) => e.to_string() }
                    }
                    Ok(EioPacket::Message(data)) => {
                        let via = link.via();
                        match self.on_message(&mut link, &data, via).await {
                            Ok(true) => continue,
                            Ok(false) => "server disconnect".to_owned(),
                            Err(e) => e.to_string(),
                        }
                    }
                    Ok(EioPacket::Close) => "server close".to_owned(),
                    Ok(_) => continue,
                    Err(reason) => reason,
                },
                _ = &mut heartbeat => "ping timeout".to_owned(),
                _ = &mut ack_timer, if ack_deadline.is_some() => {
                    let now = Instant::now();
                    let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.deadline <= now);
                    self.pending = kept;
                    let mut failed = None;
                    for p in expired {
                        self.record(What::AckLost { client_id: p.client_id, reason: "ack timeout".into() });
                        if let Some(again) = p.message.and_then(|m| self.retry_of(m)) {
                            if let Err(e) = self.emit_message(&mut link, again).await {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    match failed { Some(reason) => reason, None => continue }
                }
            };
            self.record(What::Disconnected { reason });
            return End::Lost;
        }
    }

    /// The next attempt at `message`, if socket.io-client's habits are on and
    /// retries remain.
    fn retry_of(&self, message: Outgoing) -> Option<Outgoing> {
        (self.shared.spec.socketio_js && message.attempt < RETRIES).then(|| Outgoing {
            attempt: message.attempt + 1,
            ..message
        })
    }

    /// Sends `message` (recorded as sent, or resent for a retry), asking
    /// for an ack.
    async fn emit_message(
        &mut self,
        link: &mut Link<C>,
        message: Outgoing,
    ) -> Result<(), TransportError> {
        let packet = self.prepare(message);
        link.send_sio(&packet).await
    }

    /// Records `message` as sent (or resent, for a retry), awaits its ack,
    /// and returns its packet.
    fn prepare(&mut self, message: Outgoing) -> SioPacket {
        let Outgoing {
            client_id,
            to,
            content,
            attempt,
        } = message.clone();
        let payload = json!({"to": to, "content": content, "client_id": client_id});
        if attempt == 0 {
            self.record(What::Sent {
                client_id: client_id.clone(),
                to,
            });
        } else {
            self.record(What::Resent {
                client_id: client_id.clone(),
                to,
                attempt,
            });
        }
        self.awaiting_ack(client_id, payload, Some(message))
    }

    async fn emit_send(
        &mut self,
        link: &mut Link<C>,
        client_id: String,
        payload: Value,
    ) -> Result<(), TransportError> {
        let packet = self.awaiting_ack(client_id, payload, None);
        link.send_sio(&packet).await
    }

    /// A `send_message` packet asking for an ack, its ack awaited.
    fn awaiting_ack(
        &mut self,
        client_id: String,
        payload: Value,
        message: Option<Outgoing>,
    ) -> SioPacket {
        self.next_ack_id += 1;
        let ack_id = self.next_ack_id;
        let deadline = Instant::now() + Duration::from_millis(self.shared.config.ack_timeout_ms);
        self.pending.push(PendingAck {
            ack_id,
            client_id,
            deadline,
            message,
        });
        SioPacket::Event {
            name: "send_message".into(),
            args: vec![payload],
            ack_id: Some(ack_id),
        }
    }

    /// Handles a Socket.IO packet; `Ok(false)` when the server disconnected us.
    async fn on_message(
        &mut self,
        link: &mut Link<C>,
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
                    let ack = SioPacket::Ack {
                        ack_id,
                        args: Vec::new(),
                    };
                    match link {
                        Link::Polling(_) => self.acks_due.push(ack),
                        Link::Websocket(_) => link.send_sio(&ack).await?,
                    }
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

/// A websocket handshake the server answered, but not with a usable `101`.
fn is_refusal(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(error, Error::Http(_) | Error::Protocol(_))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// A `POST` of `body` to the polling `session` while opening; anything but
/// `200` fails the opening.
async fn post<C: Connector>(
    connector: &C,
    session: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<(), TransportError> {
    let posted =
        transport::request(connector, http::Method::POST, session, headers, Some(body)).await?;
    if posted.status != 200 {
        return Err(TransportError::Protocol(format!(
            "POST status {}",
            posted.status
        )));
    }
    Ok(())
}

/// Where a polling session's websocket upgrade goes.
fn upgrade_path(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=websocket&sid={sid}")
}

/// The upgrade probe on a fresh websocket: `2probe`, then `3probe` back
/// (NOOPs skipped); anything else fails it.
async fn probe<S>(ws: &mut WebSocketStream<S>) -> Result<(), TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send_eio(ws, &EioPacket::Ping("probe".into())).await?;
    loop {
        match next_eio(ws).await? {
            EioPacket::Pong(p) if p == "probe" => return Ok(()),
            EioPacket::Noop => {}
            other => {
                return Err(TransportError::Protocol(format!(
                    "expected 3probe, got {other:?}"
                )))
            }
        }
    }
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

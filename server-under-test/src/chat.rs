//! The Socket.IO side of the contract: who may connect (I3), presence fan-out
//! (P1–P3), and accepting, pushing and falling back messages (M2–M5).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::AckError;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::{Bug, Config};
use crate::observe::{Observed, Observer};
use crate::presence::{ConnNo, Mode, Presence};
use crate::store::{Accepted, Delivery, Message, Remembered, Store};
use crate::token::{self, InvalidToken};
use crate::username::{InvalidUsername, Username};
use crate::wire::{self, ErrorBody, PresenceEvent, Refusal, SendMessage};

/// The name under which [`Bug::RegisterAnonymous`] registers a connection.
pub const ANONYMOUS: &str = "anonymous";

/// The room every registered connection is in, on every node.
pub const REGISTERED_ROOM: &str = "registered";

/// The room of one user's connections, on every node.
fn user_room(username: &str) -> String {
    format!("user:{username}")
}

/// The Socket.IO adapter of a deployment of several nodes: socketioxide's
/// own Redis adapter, carrying pushes, acks and presence events across nodes.
pub type ClusterAdapter = socketioxide_redis::RedisAdapter<socketioxide::adapter::Emitter>;

/// The chat: configuration, storage, and the presence and push state. One
/// process is the default (`A` = [`LocalAdapter`]); a node of a deployment
/// of several runs over [`ClusterAdapter`] with its shared state in Redis
/// ([`Chat::clustered`]).
pub struct Chat<A: Adapter = LocalAdapter> {
    config: Config,
    clock: Clock,
    store: Arc<dyn Store>,
    state: Mutex<ChatState<A>>,
    observer: Option<Arc<dyn Observer>>,
    cluster: Option<Cluster>,
}

struct ChatState<A: Adapter> {
    /// Per sender: tokens left and when they were counted (a token bucket).
    send_budget: BTreeMap<String, (f64, tokio::time::Instant)>,
    /// This process's registered connections.
    presence: Presence<SocketRef<A>>,
    /// Pushed messages not yet acknowledged by any recipient connection (M5),
    /// by message id.
    unacked: BTreeMap<u64, UnackedPush>,
}

struct UnackedPush {
    message: Message,
    conns: BTreeSet<ConnNo>,
}

/// Who a connection is, known from its handshake before CONNECT is answered.
#[derive(Clone, Debug)]
struct Identity {
    username: String,
}

/// Set once the connection is in the presence registry.
#[derive(Clone, Copy, Debug)]
struct Registration(ConnNo);

/// The `CONNECT_ERROR` reason for a connection without a valid identity (I3,
/// A2): the v1 wire reason, or what is wrong with the token (never the token).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConnectRefused(String);

impl<A: Adapter> Chat<A> {
    /// Who a request claims to be: the `username` header (v1), or the token
    /// (v2, A1) with the header ignored unless [`Bug::TrustHeader`] or, for
    /// polls, [`Bug::MailboxByHeader`] lets it win.
    pub fn identify(
        &self,
        headers: &axum::http::HeaderMap,
        token: Result<&str, InvalidToken>,
        header_wins: bool,
    ) -> Result<Username, String> {
        let Some(key) = &self.config.auth else {
            return Username::from_headers(headers).map_err(|reason| reason.to_string());
        };
        if header_wins {
            if let Ok(username) = Username::from_headers(headers) {
                return Ok(username);
            }
        }
        token
            .and_then(|token| {
                key.verify(
                    token,
                    self.clock.now_unix_ms(),
                    self.config.token_leniency(),
                )
            })
            .map_err(|reason| format!("invalid token: {reason}"))
    }

    /// A chat over `store`, with its clock started now.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let mode = Mode::from_bugs(|bug| config.has_bug(bug));
        Self {
            clock: Clock::start(config.epoch_unix_ms),
            config,
            store,
            state: Mutex::new(ChatState {
                send_budget: BTreeMap::new(),
                presence: Presence::new(mode),
                unacked: BTreeMap::new(),
            }),
            observer: None,
            cluster: None,
        }
    }

    /// The same chat as one node of a deployment of several, its shared
    /// state in `cluster` (N1).
    pub fn clustered(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The deployment's shared state, when this is one node of several.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The shared presence: the cluster's, unless [`Bug::PresencePerProcess`]
    /// keeps each node's own (the seed's dict, once per process).
    fn shared_presence(&self) -> Option<&Cluster> {
        self.cluster
            .as_ref()
            .filter(|_| !self.config.has_bug(Bug::PresencePerProcess))
    }

    /// Whether a dead node's presence entries stop counting (N3).
    fn with_expiry(&self) -> bool {
        !self.config.has_bug(Bug::PresenceWithoutExpiry)
    }

    /// The users online now on any node, sorted (P4, N1): this process's own
    /// without a cluster.
    pub async fn online_everywhere(&self) -> Result<Vec<String>, redis::RedisError> {
        match self.shared_presence() {
            Some(cluster) => Ok(cluster
                .online(self.with_expiry())
                .await?
                .into_iter()
                .collect()),
            None => Ok(self.online_users()),
        }
    }

    /// The same chat, telling `observer` what it sees.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, event: impl FnOnce() -> Observed) {
        if let Some(observer) = &self.observer {
            observer.observe(event());
        }
    }

    /// Appends to the mailbox, and tells the observer why.
    fn store_message(&self, message: Message, reason: &'static str) {
        let (id, to) = (message.id, message.to.clone());
        self.store.append_to_mailbox(message);
        self.observe(|| Observed::Stored { id, to, reason });
    }

    /// The configuration the chat runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store behind the chat.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The users online now, sorted (P4).
    pub fn online_users(&self) -> Vec<String> {
        self.state().presence.online_users()
    }

    fn state(&self) -> MutexGuard<'_, ChatState<A>> {
        // Every critical section leaves the maps consistent before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// P1: registers a connection about to be answered with CONNECT, and tells
    /// the other users if this user just came online.
    fn register(&self, socket: &SocketRef<A>, username: &str) {
        let mut state = self.state();
        let registered = state.presence.register(username, socket.clone());
        socket.extensions.insert(Registration(registered.conn_no));
        self.observe(|| Observed::Registered {
            user: username.to_owned(),
            sid: socket.id.to_string(),
        });
        info!("🟢 User '{username}' connected (sid: {})", socket.id);
        if self.cluster.is_some() {
            socket.join([REGISTERED_ROOM.to_owned(), user_room(username)]);
        }
        // Across nodes the cluster decides who came online ([`Chat::announce`]).
        if registered.came_online && self.shared_presence().is_none() {
            let others = state.presence.connections_except(username);
            let behind = emit_all(&others, wire::USER_ONLINE, &PresenceEvent { username });
            drop(state);
            disconnect_behind(behind, wire::USER_ONLINE);
        }
    }

    /// P2, P3: forgets a closed connection; the user goes offline with its last one.
    /// Pushes still waiting for this connection's ack go to the mailbox at once (M5).
    /// Returns whose connection it was, when it was registered.
    fn unregister(&self, socket: &SocketRef<A>, reason: &str) -> Option<String> {
        let Registration(conn_no) = socket.extensions.remove::<Registration>()?;
        let mut whose = None;
        if let Some(Identity { username }) = socket.extensions.get::<Identity>() {
            self.observe(|| Observed::Unregistered {
                user: username,
                sid: socket.id.to_string(),
                reason: reason.to_owned(),
            });
        }
        let mut state = self.state();
        let mut behind = Vec::new();
        if let Some(gone) = state.presence.unregister(conn_no) {
            whose = Some(gone.username.clone());
            if gone.went_offline && self.shared_presence().is_none() {
                info!("⚪ User {} went offline", gone.username);
                let others = state.presence.connections_except(&gone.username);
                let event = PresenceEvent {
                    username: &gone.username,
                };
                behind = emit_all(&others, wire::USER_OFFLINE, &event);
            }
        }
        let orphaned: Vec<u64> = state
            .unacked
            .iter()
            .filter(|(_, push)| push.conns.contains(&conn_no))
            .map(|(id, _)| *id)
            .collect();
        for id in orphaned {
            if let Some(push) = state.unacked.remove(&id) {
                info!(
                    "📬 Message {id} for {} stored for polling: its connection closed before acking",
                    push.message.to
                );
                self.store_message(push.message, "connection closed");
            }
        }
        drop(state);
        disconnect_behind(behind, wire::USER_OFFLINE);
        whose
    }

    /// P1 across nodes: tells every node's registered connections of the
    /// other users that `username` came online, if it did.
    async fn announce_connected(&self, socket: &SocketRef<A>, username: &str) {
        let Some(cluster) = self.shared_presence() else {
            return;
        };
        match cluster.connected(username, self.with_expiry()).await {
            Ok(true) => self.announce(socket, wire::USER_ONLINE, username).await,
            Ok(false) => {}
            Err(e) => error!("❌ presence of {username} not shared (Redis: {e})"),
        }
    }

    /// P2, P3 across nodes: a closed connection; `user_offline` everywhere
    /// when it was the user's last on any node.
    async fn closed(&self, socket: &SocketRef<A>, reason: &str) {
        let Some(username) = self.unregister(socket, reason) else {
            return;
        };
        let Some(cluster) = self.shared_presence() else {
            return;
        };
        match cluster.disconnected(&username, self.with_expiry()).await {
            Ok(true) => {
                info!("⚪ User {username} went offline on every node");
                self.announce(socket, wire::USER_OFFLINE, &username).await;
            }
            Ok(false) => {}
            Err(e) => error!("❌ departure of {username} not shared (Redis: {e})"),
        }
    }

    /// Emits a presence event to the registered connections of every other
    /// user on every node, through the adapter.
    async fn announce(&self, socket: &SocketRef<A>, event: &str, username: &str) {
        let sent = socket
            .broadcast()
            .within(REGISTERED_ROOM)
            .except(user_room(username))
            .emit(event, &PresenceEvent { username })
            .await;
        if let Err(e) = sent {
            warn!("⚠️ {event} for {username} not sent to every node: {e}");
        }
    }

    /// N3: keeps this node alive in the shared state and, when another node
    /// stops refreshing its entry, tells this node's connections that its
    /// users (those online nowhere else) went offline. Runs until the chat
    /// is dropped.
    pub fn spawn_heartbeat(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let chat = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut mourned = BTreeSet::new();
            loop {
                let Some(chat) = chat.upgrade() else { return };
                let Some(cluster) = chat.cluster.clone() else {
                    return;
                };
                let every = cluster.refresh_every();
                if let Err(e) = chat.sweep(&cluster, &mut mourned).await {
                    warn!("⚠️ cannot reach the shared state (Redis: {e}); again in {every:?}");
                }
                drop(chat);
                tokio::time::sleep(every).await;
            }
        })
    }

    async fn sweep(
        &self,
        cluster: &Cluster,
        mourned: &mut BTreeSet<String>,
    ) -> Result<(), redis::RedisError> {
        cluster.refresh().await?;
        if self.shared_presence().is_none() || !self.with_expiry() {
            return Ok(());
        }
        let presence = cluster.presence().await?;
        let online: BTreeSet<String> = presence
            .values()
            .filter(|(alive, _)| *alive)
            .flat_map(|(_, users)| users.iter().cloned())
            .collect();
        for (node, (alive, users)) in presence {
            if alive {
                mourned.remove(&node);
                continue;
            }
            if !mourned.insert(node.clone()) {
                continue;
            }
            warn!("💀 node {node} stopped refreshing its presence: its users went offline");
            for user in users.difference(&online) {
                let state = self.state();
                let others = state.presence.connections_except(user);
                let behind = emit_all(
                    &others,
                    wire::USER_OFFLINE,
                    &PresenceEvent { username: user },
                );
                drop(state);
                disconnect_behind(behind, wire::USER_OFFLINE);
            }
        }
        Ok(())
    }

    /// M2–M5 on one node of several: as [`Chat::accept`], with ids, the
    /// mailbox and the retry memory in the shared state, and the push to the
    /// recipient's connections on every node through the adapter. Nothing
    /// is acked that was not stored or handed on: a node that cannot reach
    /// Redis refuses (N4).
    async fn accept_shared(
        self: &Arc<Self>,
        socket: &SocketRef<A>,
        from: &str,
        request: SendMessage,
    ) -> Result<Accepted, Refusal> {
        let cluster = self.cluster.as_ref().expect("a node of a cluster");
        if !self.spend_send_token(&mut self.state(), from) {
            return Err(Refusal::RateLimited(self.config.send_rate_per_s));
        }
        let unavailable = |e: redis::RedisError| {
            warn!("⚠️ send_message from {from} refused: the shared state is unreachable ({e})");
            Refusal::Unavailable
        };
        if let Some(original) = cluster
            .recall(from, &request.client_id)
            .await
            .map_err(unavailable)?
        {
            return self.answer_repeat(from, &request, original);
        }
        let to = request.to.as_str().to_owned();
        let id = cluster
            .next_id(self.config.has_bug(Bug::IdsPerProcess))
            .await
            .map_err(unavailable)?;
        let message = Message {
            id,
            from: from.to_owned(),
            to: to.clone(),
            content: request.content.clone(),
            ts: self.clock.now_unix_ms(),
        };
        let online = match self.shared_presence() {
            Some(cluster) => cluster
                .online(self.with_expiry())
                .await
                .map_err(unavailable)?
                .contains(&to),
            None => self.state().presence.is_online(&to),
        };
        let delivery = if online && !self.config.has_bug(Bug::NeverPush) {
            if self.config.has_bug(Bug::PushLocalOnly) {
                let local: Vec<SocketRef<A>> = self
                    .state()
                    .presence
                    .connections_of(&to)
                    .into_iter()
                    .map(|(_, s)| s.clone())
                    .collect();
                for s in local {
                    let _ = s.emit(wire::NEW_MESSAGE, &message);
                }
            } else {
                let acks = socket
                    .within(user_room(&to))
                    .timeout(self.config.ack_timeout())
                    .emit_with_ack::<_, Value>(wire::NEW_MESSAGE, &message)
                    .await
                    .map_err(|e| {
                        warn!("⚠️ push of message {id} not handed on: {e}");
                        Refusal::Unavailable
                    })?;
                self.observe(|| Observed::Pushed {
                    id,
                    sid: String::new(),
                });
                let (chat, cluster, to) = (Arc::clone(self), cluster.clone(), to.clone());
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let mut acks = std::pin::pin!(acks);
                    while let Some((_, ack)) = acks.next().await {
                        if matches!(ack, Ok(_) | Err(AckError::Decode(_))) {
                            chat.observe(|| Observed::PushAcked { id });
                            return;
                        }
                    }
                    // M5: no connection on any node acked in time.
                    match cluster.append(message).await {
                        Ok(_) => chat.observe(|| Observed::Stored {
                            id,
                            to,
                            reason: "ack timeout",
                        }),
                        Err(e) => error!("❌ message {id} unacked and not stored (Redis: {e})"),
                    }
                });
            }
            Delivery::Websocket
        } else {
            let full = cluster.mailbox_len(&to).await.map_err(unavailable)?
                >= self.config.max_mailbox_entries;
            if full {
                return Err(Refusal::MailboxFull);
            }
            cluster.append(message).await.map_err(unavailable)?;
            Delivery::Polling
        };
        let accepted = Accepted { id, delivery };
        let remembered = Remembered {
            accepted,
            to: to.clone(),
            content: request.content,
        };
        if let Err(e) = cluster
            .remember(from, &request.client_id, &remembered)
            .await
        {
            // Accepted and stored or pushed: the ack stands; a retry may be
            // taken for a new message (M1 allows it).
            warn!(
                "⚠️ retry memory for {from}/{} not kept: {e}",
                request.client_id
            );
        }
        self.observe(|| Observed::Accepted {
            id,
            from: from.to_owned(),
            to,
            delivery,
        });
        Ok(accepted)
    }

    /// M1: a repeat of a used `(from, client_id)`. Only the same message
    /// again is a retry, answered with the original ack; another one under
    /// a used id would otherwise be answered with the old ack and lost.
    fn answer_repeat(
        &self,
        from: &str,
        request: &SendMessage,
        original: Remembered,
    ) -> Result<Accepted, Refusal> {
        if self.config.has_bug(Bug::AckByClientIdOnly) {
            return Ok(original.accepted);
        }
        if original.to == request.to.as_str() && original.content == request.content {
            debug!("retry of client_id {} from {from}", request.client_id);
            return Ok(original.accepted);
        }
        Err(Refusal::ClientIdReused)
    }

    /// M2–M5: accepts a validated message from `from` and delivers it.
    fn accept(self: &Arc<Self>, from: &str, request: SendMessage) -> Result<Accepted, Refusal> {
        let mut state = self.state();
        if !self.spend_send_token(&mut state, from) {
            return Err(Refusal::RateLimited(self.config.send_rate_per_s));
        }
        if let Some(original) = self.store.recall(from, &request.client_id) {
            return self.answer_repeat(from, &request, original);
        }
        let (to_kept, content_kept) = (request.to.clone(), request.content.clone());
        let to = request.to.as_str();
        let message = Message {
            id: self.store.next_message_id(),
            from: from.to_owned(),
            to: to.to_owned(),
            content: request.content,
            ts: self.clock.now_unix_ms(),
        };
        let conns: Vec<(ConnNo, SocketRef<A>)> = state
            .presence
            .connections_of(to)
            .into_iter()
            .map(|(no, s)| (no, s.clone()))
            .collect();
        let id = message.id;
        let push = !conns.is_empty() && !self.config.has_bug(Bug::NeverPush);
        let delivery = if push {
            info!("💬 Real-time message: {from} → {to}");
            let delivery = self.push(&mut state, message, conns);
            if delivery == Delivery::Websocket {
                info!("✅ Message delivered to {to} via WebSocket");
            }
            delivery
        } else if self.store.mailbox_len(to) >= self.config.max_mailbox_entries {
            // Refused before anything is accepted: never accepted and then lost.
            return Err(Refusal::MailboxFull);
        } else {
            info!("📬 Message {id} stored for polling: {to} is offline");
            self.store_message(message, "offline");
            Delivery::Polling
        };
        let accepted = Accepted { id, delivery };
        self.store.remember(
            from,
            &request.client_id,
            Remembered {
                accepted,
                to: to_kept.to_string(),
                content: content_kept,
            },
        );
        self.observe(|| Observed::Accepted {
            id,
            from: from.to_owned(),
            to: to.to_owned(),
            delivery,
        });
        Ok(accepted)
    }

    /// A token bucket per sender: `send_burst` at once, `send_rate_per_s` after.
    fn spend_send_token(&self, state: &mut ChatState<A>, from: &str) -> bool {
        let now = tokio::time::Instant::now();
        let (rate, burst) = (
            f64::from(self.config.send_rate_per_s),
            f64::from(self.config.send_burst),
        );
        let (tokens, at) = state
            .send_budget
            .entry(from.to_owned())
            .or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// M3, M5: emits `new_message` to every connection with an ack request, and
    /// arranges the mailbox fallback.
    /// Returns how the message actually travels: `websocket` when at least one
    /// push was written, `polling` when none could be (every connection closed
    /// or its send buffer full) and the message went to the mailbox instead, so
    /// the sender's ack tells the truth (M2).
    fn push(
        self: &Arc<Self>,
        state: &mut ChatState<A>,
        message: Message,
        conns: Vec<(ConnNo, SocketRef<A>)>,
    ) -> Delivery {
        let id = message.id;
        if self.config.has_bug(Bug::NoAckFallback) {
            for (_, socket) in &conns {
                if socket.emit(wire::NEW_MESSAGE, &message).is_ok() {
                    self.observe(|| Observed::Pushed {
                        id,
                        sid: socket.id.to_string(),
                    });
                }
            }
            return Delivery::Websocket;
        }
        let mut waiting = BTreeSet::new();
        for (conn_no, socket) in conns {
            let sent = socket
                .timeout(self.config.ack_timeout())
                .emit_with_ack::<_, Value>(wire::NEW_MESSAGE, &message);
            let ack = match sent {
                Ok(ack) => ack,
                Err(e) => {
                    warn!("⚠️ push of message {id} to {} failed: {e}", socket.id);
                    continue;
                }
            };
            self.observe(|| Observed::Pushed {
                id,
                sid: socket.id.to_string(),
            });
            waiting.insert(conn_no);
            let chat = Arc::clone(self);
            tokio::spawn(async move {
                match ack.await {
                    // Any answer is an acknowledgement, whatever it carries.
                    Ok(_) | Err(AckError::Decode(_)) => chat.push_acked(id),
                    Err(_) => chat.push_unacked(id),
                }
            });
        }
        if waiting.is_empty() {
            // Every connection closed or full under us: straight to the mailbox (M5).
            self.store_message(message, "no connection took it");
            Delivery::Polling
        } else {
            state.unacked.insert(
                id,
                UnackedPush {
                    message,
                    conns: waiting,
                },
            );
            Delivery::Websocket
        }
    }

    fn push_acked(&self, id: u64) {
        if self.state().unacked.remove(&id).is_some() {
            debug!("message {id} acknowledged by its recipient");
            self.observe(|| Observed::PushAcked { id });
        }
    }

    /// M5: no ack in time (or the connection failed): the mailbox gets a copy.
    fn push_unacked(&self, id: u64) {
        let push = self.state().unacked.remove(&id);
        if let Some(push) = push {
            info!(
                "📬 Message {id} for {} stored for polling: no ack within {} ms",
                push.message.to, self.config.ack_timeout_ms
            );
            self.store_message(push.message, "ack timeout");
        }
    }
}

/// Emits a presence event to every socket in `sockets`. Returns the ones whose
/// send buffer is full (a client that stopped reading: a sleeping phone):
/// they would miss this news for good and show the user wrongly ever after
/// (P1–P3), so the caller disconnects them with [`disconnect_behind`] once the
/// state lock is released, and their client reconnects to the present.
#[must_use]
fn emit_all<A: Adapter, T: serde::Serialize>(
    sockets: &[&SocketRef<A>],
    event: &str,
    data: &T,
) -> Vec<SocketRef<A>> {
    let mut behind = Vec::new();
    for socket in sockets {
        // A socket that closed meanwhile gets its own user_offline path.
        if let Err(socketioxide::SendError::Socket(
            socketioxide::SocketError::InternalChannelFull,
        )) = socket.emit(event, data)
        {
            behind.push((*socket).clone());
        }
    }
    behind
}

/// Disconnects the sockets that could not be told `event` (see [`emit_all`]);
/// the transport closes under them even though the DISCONNECT packet cannot be
/// queued (vendor/socketioxide-0.18.9-disconnect-when-full.patch).
fn disconnect_behind<A: Adapter>(behind: Vec<SocketRef<A>>, event: &str) {
    for socket in behind {
        warn!(
            "🐢 {}: send buffer full, {event} could not be queued; disconnected so its client reconnects to the current presence",
            socket.id
        );
        let _ = socket.disconnect();
    }
}

/// The Socket.IO builder with the chat's timers and limits.
fn builder(config: &Config) -> socketioxide::SocketIoBuilder {
    socketioxide::SocketIo::builder()
        .req_path(config.socketio_path.clone())
        .ping_interval(config.ping_interval())
        .ping_timeout(config.ping_timeout())
        .connect_timeout(config.connect_timeout())
        .ack_timeout(config.ack_timeout())
        .max_payload(config.max_payload_bytes)
        // maxPayload is announced for every transport, but engineioxide caps
        // websocket messages separately (64 MiB by default): hold them to it.
        .ws_max_message_size(usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX))
        .ws_max_frame_size(usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX))
}

/// Builds the Socket.IO layer for the chat, configured from `chat.config()`.
pub fn socket_io_layer(chat: Arc<Chat>) -> socketioxide::layer::SocketIoLayer {
    let (layer, io) = builder(chat.config()).with_state(chat).build_layer();
    use socketioxide::handler::ConnectHandler;
    io.ns("/", on_connect.with(identify::<LocalAdapter>));
    layer
}

/// The Socket.IO layer of one node of several: socketioxide's Redis adapter
/// (`adapter`, on the deployment's Redis) carries its emits and acks to the
/// other nodes.
pub async fn clustered_socket_io_layer(
    chat: Arc<Chat<ClusterAdapter>>,
    adapter: socketioxide_redis::RedisAdapterCtr<socketioxide_redis::drivers::redis::RedisDriver>,
) -> Result<socketioxide::layer::SocketIoLayer<ClusterAdapter>, socketioxide::adapter::AdapterError>
{
    let (layer, io) = builder(chat.config())
        .with_adapter::<ClusterAdapter>(adapter)
        .with_state(chat)
        .build_layer();
    use socketioxide::handler::ConnectHandler;
    io.ns("/", on_connect.with(identify::<ClusterAdapter>))
        .await
        .map_err(|e| {
            socketioxide::adapter::AdapterError::from(
                Box::new(e) as Box<dyn std::error::Error + Send>
            )
        })?;
    Ok(layer)
}

/// Connect middleware (I1–I3): runs before CONNECT is answered. A connection
/// without a valid `username` on its handshake request is refused, so it is never
/// registered; an accepted one gets its handlers before any event can arrive.
async fn identify<A: Adapter>(
    socket: SocketRef<A>,
    State(chat): State<Arc<Chat<A>>>,
    TryData(auth): TryData<Value>,
) -> Result<(), ConnectRefused> {
    let token = token::from_connect_auth(auth.as_ref().ok());
    let header_wins = chat.config.has_bug(Bug::TrustHeader);
    let username = match chat.identify(&socket.req_parts().headers, token, header_wins) {
        Ok(username) => username.to_string(),
        Err(reason) if chat.config.has_bug(Bug::RegisterAnonymous) => {
            warn!("⚠️ Connection without username (sid: {}): {reason}; registering as {ANONYMOUS} (bug register_anonymous)", socket.id);
            ANONYMOUS.to_owned()
        }
        Err(reason) => {
            warn!(
                "⚠️ Connection without username (sid: {}): {reason}",
                socket.id
            );
            chat.observe(|| Observed::NotRegistered {
                sid: socket.id.to_string(),
                reason: reason.clone(),
            });
            return Err(ConnectRefused(match chat.config.auth {
                None => InvalidUsername::WIRE_REASON.to_owned(),
                Some(_) => reason,
            }));
        }
    };
    if chat.config.has_bug(Bug::ExtraArgs) {
        socket.on(wire::SEND_MESSAGE, send_message_first_arg::<A>);
    } else {
        socket.on(wire::SEND_MESSAGE, send_message::<A>);
    }
    socket.on_fallback(unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    // Registered before CONNECT goes out, so a client that acts the moment it is
    // connected (or a message sent to it then) never meets a half-registered
    // user. Should answering CONNECT fail, socketioxide never calls the
    // disconnect handler: the settle check below undoes the registration.
    chat.register(&socket, &username);
    chat.announce_connected(&socket, &username).await;
    socket.extensions.insert(Identity { username });
    let (settling, chat) = (socket.clone(), Arc::clone(&chat));
    tokio::spawn(async move {
        tokio::time::sleep(CONNECT_SETTLE).await;
        if !settling.connected() {
            chat.closed(&settling, "CONNECT never answered").await;
        }
    });
    Ok(())
}

/// Long enough for socketioxide to have answered CONNECT after the middleware.
const CONNECT_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs after CONNECT was answered; registration already happened in [`identify`].
async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    debug!("namespace connected: {}", socket.id);
}

async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    State(chat): State<Arc<Chat<A>>>,
) {
    info!("🔌 Client disconnected: {} ({reason:?})", socket.id);
    chat.closed(&socket, &format!("{reason:?}")).await;
}

/// M1, M2, B1: validates and accepts a message; every refusal is an error ack.
async fn send_message<A: Adapter>(
    socket: SocketRef<A>,
    State(chat): State<Arc<Chat<A>>>,
    TryData(payload): TryData<(Value,)>,
    ack: AckSender<A>,
) {
    // A 1-tuple makes socketioxide deserialize every argument, so a second
    // one fails here instead of being dropped unseen (M1: one argument).
    let payload = payload.ok().map(|(value,)| value);
    handle_send(socket, chat, payload, ack).await;
}

/// [`Bug::ExtraArgs`]: reads the first argument only, as socketioxide does
/// for a plain `TryData<Value>`, so `["send_message", {…}, "extra"]` passes.
async fn send_message_first_arg<A: Adapter>(
    socket: SocketRef<A>,
    State(chat): State<Arc<Chat<A>>>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    handle_send(socket, chat, payload.ok(), ack).await;
}

async fn handle_send<A: Adapter>(
    socket: SocketRef<A>,
    chat: Arc<Chat<A>>,
    payload: Option<Value>,
    ack: AckSender<A>,
) {
    let outcome = match socket.extensions.get::<Identity>() {
        None => Err(Refusal::NotRegistered),
        Some(identity) => {
            // [`Bug::TrustPayloadFrom`]: the payload's `from`, when present, wins.
            let claimed = payload
                .as_ref()
                .and_then(|p| p.get("from"))
                .and_then(Value::as_str)
                .filter(|_| chat.config.has_bug(Bug::TrustPayloadFrom))
                .map(str::to_owned);
            let from = claimed.unwrap_or(identity.username);
            match SendMessage::parse(payload.as_ref(), &chat.config) {
                Err(refusal) => Err(refusal),
                Ok(request) if chat.cluster.is_some() => {
                    chat.accept_shared(&socket, &from, request).await
                }
                Ok(request) => chat.accept(&from, request),
            }
        }
    };
    // A sender that writes faster than it reads its acks fills its own send
    // buffer: the ack waits for room (backpressure) instead of being dropped,
    // for as long as the heartbeat would keep a silent connection.
    let within = chat.config.ping_interval() + chat.config.ping_timeout();
    let sent = match &outcome {
        Ok(accepted) => tokio::time::timeout(within, ack.send_when_ready(accepted)).await,
        Err(refusal) => {
            info!("🚫 send_message refused (sid: {}): {refusal}", socket.id);
            tokio::time::timeout(within, ack.send_when_ready(&ErrorBody::new(refusal))).await
        }
    };
    let failure = match sent {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("its send buffer stayed full for {within:?}"),
    };
    // The sender asked for an ack and cannot get it (its connection is gone
    // or it never read): the message, if accepted, is not affected (a retry
    // with the same client_id gets the original ack, M1), but say so loudly.
    error!("❌ send_message ack to {} not sent: {failure}", socket.id);
}

/// B1: an unknown event is ignored, or answered with an error when an ack is asked for.
async fn unknown_event<A: Adapter>(socket: SocketRef<A>, Event(event): Event, ack: AckSender<A>) {
    debug!("unknown event '{event}' from {}", socket.id);
    let _ = ack.send(&ErrorBody::new(format!("unknown event '{event}'")));
}

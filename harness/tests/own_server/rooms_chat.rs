//! A second chat server of the contract, written directly on socketioxide as
//! a team might write theirs — not for the harness, and choosing differently
//! from the reference server wherever the contract allows:
//!
//! - a connection without a valid `username` is kept, unregistered (I3's
//!   other option), instead of being refused;
//! - fan-out goes through socketioxide's rooms (`user:<name>` per user,
//!   `registered` for everyone registered) instead of a registry of sockets;
//! - its own store: one `Vec` per mailbox, entries never discarded by polls;
//! - errors worded its own way.
//!
//! `Defect::OneSidPerUser` plants the seed's own bug: presence keyed by user
//! (`online[user] = sid`), so a second tab's close takes the user offline.
//!
//! It takes time and randomness only from [`ServerEnv`], so its traces repeat,
//! and tells the referee its side through `ServerEnv::record`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State as HttpState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use futures_util::StreamExt;
use harness::{Listener, ServerEnv, ServerEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;

/// A planted defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// Correct.
    None,
    /// Presence keyed by user: the latest connection wins, any close goes offline.
    OneSidPerUser,
}

/// What lives and dies with the process.
#[derive(Default)]
struct Rooms {
    /// Open registered connections per user (or, with the defect, the last one).
    online: BTreeMap<String, BTreeSet<Sid>>,
}

/// What the seed kept in Redis: kept across a restart that keeps the store
/// (`ServerEnv::durable`), started afresh otherwise.
struct Store {
    next_id: u64,
    /// Mailboxes: (seq, message) in order; seq = index + 1.
    mail: BTreeMap<String, Vec<Value>>,
    /// (sender, client_id) → (to, content, ack): retries get the original ack.
    sent: BTreeMap<(String, String), (String, String, Value)>,
}

impl Store {
    /// A fresh store counts ids from the time it starts (ms × 1000 since the
    /// world's epoch), so a restart never hands out an id twice (M2; clients
    /// de-duplicate by id).
    fn new(env: &ServerEnv) -> Self {
        let since = env
            .epoch_unix_ms()
            .saturating_sub(harness::world::server::SIM_EPOCH_UNIX_MS);
        Self {
            next_id: since.saturating_mul(1_000),
            mail: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }
}

struct Chat {
    defect: Defect,
    /// The harness's hook: this server opts in to telling the referee what it
    /// saw (registrations, accepts, stores).
    env: ServerEnv,
    clock: harness::world::SimClock,
    rooms: Mutex<Rooms>,
    store: Arc<Mutex<Store>>,
}

impl Chat {
    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, message: &Value) {
        let to = message["to"].as_str().unwrap_or_default().to_owned();
        self.env.record(ServerEvent::Stored {
            id: message["id"].as_u64().unwrap_or_default(),
            to: to.clone(),
            reason: "mailbox".into(),
        });
        self.kept()
            .mail
            .entry(to)
            .or_default()
            .push(message.clone());
    }
}

fn valid(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn username(headers: &HeaderMap) -> Option<String> {
    let name = headers.get("username")?.to_str().ok()?;
    valid(name).then(|| name.to_owned())
}

/// Serves the chat on `listener` until it fails.
pub async fn serve(listener: Listener, env: ServerEnv, defect: Defect) -> std::io::Result<()> {
    let timers = env.timers();
    let chat = Arc::new(Chat {
        defect,
        clock: env.clock(),
        env: env.clone(),
        rooms: Mutex::default(),
        store: env.durable(|| Mutex::new(Store::new(&env))),
    });
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(timers.ping_interval_ms))
        .ping_timeout(Duration::from_millis(timers.ping_timeout_ms))
        .ack_timeout(Duration::from_millis(timers.ack_timeout_ms))
        .with_state(Arc::clone(&chat))
        .build_layer();
    io.ns("/", on_connect.with(identify));
    let app = axum::Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/online", get(online))
        .route("/api/messages", get(messages))
        .with_state(chat)
        .layer(layer);
    axum::serve(listener, app).await
}

/// Runs before CONNECT is answered: every connection is accepted; one with a
/// valid name is registered at once, so nothing sent to it right after its
/// CONNECT finds it offline.
async fn identify(
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
) -> Result<(), std::convert::Infallible> {
    socket.on("send_message", send_message);
    socket.on_disconnect(on_disconnect);
    let Some(name) = username(&socket.req_parts().headers) else {
        return Ok(()); // kept, unregistered: no rooms, no presence, sends refused
    };
    socket.extensions.insert(Name(name.clone()));
    socket.join(["registered".to_owned(), format!("user:{name}")]);
    let came_online = {
        let mut rooms = chat.rooms();
        let sids = rooms.online.entry(name.clone()).or_default();
        if chat.defect == Defect::OneSidPerUser {
            sids.clear();
        }
        let came_online = sids.is_empty();
        sids.insert(socket.id);
        came_online
    };
    chat.env.record(ServerEvent::Registered {
        user: name.clone(),
        sid: socket.id.to_string(),
    });
    if came_online {
        let _ = io
            .to("registered")
            .except(format!("user:{name}"))
            .emit("user_online", &json!({"username": name}))
            .await;
    }
    // Should answering CONNECT fail, no disconnect handler runs: undo it then.
    let settling = socket.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !settling.connected() {
            leave(&settling, &io, &chat).await;
        }
    });
    Ok(())
}

async fn on_connect(_socket: SocketRef) {}

#[derive(Clone)]
struct Name(String);

async fn on_disconnect(socket: SocketRef, io: SocketIo, State(chat): State<Arc<Chat>>) {
    leave(&socket, &io, &chat).await;
}

async fn leave(socket: &SocketRef, io: &SocketIo, chat: &Chat) {
    let Some(Name(name)) = socket.extensions.remove::<Name>() else {
        return;
    };
    chat.env.record(ServerEvent::Unregistered {
        user: name.clone(),
        sid: socket.id.to_string(),
        reason: "disconnected".into(),
    });
    let went_offline = {
        let mut rooms = chat.rooms();
        let Some(sids) = rooms.online.get_mut(&name) else {
            return;
        };
        let was_there = sids.remove(&socket.id);
        let gone = sids.is_empty();
        if gone {
            rooms.online.remove(&name);
        }
        // With the defect the map was keyed by user: any close empties it.
        if chat.defect == Defect::OneSidPerUser && !was_there {
            rooms.online.remove(&name);
            true
        } else {
            was_there && gone
        }
    };
    if went_offline {
        let _ = io
            .to("registered")
            .except(format!("user:{name}"))
            .emit("user_offline", &json!({"username": name}))
            .await;
    }
}

#[derive(Deserialize)]
struct Send {
    to: String,
    content: String,
    client_id: String,
}

fn refuse(ack: AckSender, why: &str) {
    let _ = ack.send(&json!({"error": why}));
}

async fn send_message(
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let Some(Name(from)) = socket.extensions.get::<Name>() else {
        return refuse(ack, "not registered: send a valid username header");
    };
    let Some(send) = payload
        .ok()
        .and_then(|p| serde_json::from_value::<Send>(p).ok())
    else {
        return refuse(ack, "send_message takes {to, content, client_id}");
    };
    let chars = send.content.chars().count();
    if !valid(&send.to)
        || !(1..=4096).contains(&chars)
        || !(1..=64).contains(&send.client_id.chars().count())
    {
        return refuse(ack, "bad recipient, content or client_id");
    }
    let key = (from.clone(), send.client_id.clone());
    let (message, online) = {
        let online = chat.rooms().online.contains_key(&send.to);
        let mut rooms = chat.kept();
        if let Some((to, content, original)) = rooms.sent.get(&key) {
            if *to == send.to && *content == send.content {
                let _ = ack.send(original);
            } else {
                refuse(ack, "client_id already used for another message");
            }
            return;
        }
        rooms.next_id += 1;
        let message = json!({
            "id": rooms.next_id, "from": from, "to": send.to,
            "content": send.content, "ts": chat.clock.now_unix_ms(),
        });
        (message, online)
    };
    let id = message["id"].clone();
    let delivery = if online { "websocket" } else { "polling" };
    let answer = json!({"id": id, "delivery": delivery});
    chat.kept()
        .sent
        .insert(key, (send.to.clone(), send.content.clone(), answer.clone()));
    chat.env.record(ServerEvent::Accepted {
        id: message["id"].as_u64().unwrap_or_default(),
        from: from.clone(),
        to: send.to.clone(),
        delivery: delivery.into(),
    });
    if !online {
        chat.store(&message);
        let _ = ack.send(&answer);
        return;
    }
    let pushed = io
        .to(format!("user:{}", send.to))
        .emit_with_ack::<_, Value>("new_message", &message)
        .await;
    let _ = ack.send(&answer);
    // M5: one ack from any of the recipient's connections is enough; none in
    // time (or every connection closed) puts a copy in the mailbox.
    let acked = match pushed {
        Ok(stream) => {
            stream
                .any(|(_, answer)| async move { answer.is_ok() })
                .await
        }
        Err(_) => false,
    };
    if !acked {
        chat.store(&message);
    }
}

async fn online(HttpState(chat): HttpState<Arc<Chat>>) -> impl IntoResponse {
    let users: Vec<String> = chat.rooms().online.keys().cloned().collect();
    Json(json!({"users": users}))
}

#[derive(Deserialize)]
struct After {
    after: Option<String>,
}

async fn messages(
    HttpState(chat): HttpState<Arc<Chat>>,
    headers: HeaderMap,
    Query(query): Query<After>,
) -> impl IntoResponse {
    let Some(name) = username(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "who are you?"})),
        );
    };
    let after = match query.after.as_deref() {
        None => 0,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            match text.parse::<u64>() {
                Ok(after) => after,
                Err(_) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": "after overflows"})),
                    )
                }
            }
        }
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "after must be digits"})),
            )
        }
    };
    let store = chat.kept();
    let mailbox = store.mail.get(&name).map(Vec::as_slice).unwrap_or_default();
    // L4: a cursor above every seq assigned (from before a restart that lost
    // the store) discards nothing and says where the mailbox is.
    let latest = mailbox.len() as u64;
    if after > latest {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "cursor above the latest seq", "latest": latest})),
        );
    }
    let entries: Vec<Value> = mailbox
        .iter()
        .enumerate()
        .map(|(i, m)| (i as u64 + 1, m))
        .filter(|(seq, _)| *seq > after)
        .map(|(seq, m)| {
            let mut entry = m.clone();
            entry["seq"] = json!(seq);
            entry
        })
        .collect();
    (StatusCode::OK, Json(json!({"messages": entries})))
}

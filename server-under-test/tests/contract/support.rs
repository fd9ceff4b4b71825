//! Shared fixtures: the reference server on a loopback port, and rust_socketio
//! peers whose every callback lands in a channel the test reads in order.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use server_under_test::{Bug, Config};
use tokio::sync::mpsc;

/// How long a test waits for something that must happen.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A reference server on 127.0.0.1, stopped when dropped.
pub struct Server {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fast timers so timeouts are observable within a test.
pub fn quick_config() -> Config {
    Config {
        ping_interval_ms: 300,
        ping_timeout_ms: 300,
        ack_timeout_ms: 400,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        server_under_test::serve(listener, config).await.unwrap();
    });
    Server {
        url: format!("http://{addr}"),
        task,
    }
}

pub async fn start_with_bug(bug: Bug) -> Server {
    start(Config {
        bugs: [bug].into_iter().collect(),
        ..quick_config()
    })
    .await
}

/// Something a peer observed.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Connected,
    /// CONNECT_ERROR with its data.
    Refused(Value),
    /// A server event with its first argument.
    Event(String, Value),
    Closed,
}

/// A rust_socketio client and what it saw.
pub struct Peer {
    pub client: Client,
    seen: mpsc::UnboundedReceiver<Seen>,
}

/// How a peer opens and names itself.
#[derive(Clone, Copy, Debug)]
pub enum Open {
    Polling,
    Websocket,
    Upgrade,
}

impl Peer {
    /// Connects with `username` as the handshake header (`None`: no header) and
    /// waits for CONNECT or CONNECT_ERROR.
    pub async fn open(url: &str, username: Option<&str>, open: Open) -> (Peer, Seen) {
        let (tx, seen) = mpsc::unbounded_channel();
        let transport = match open {
            Open::Polling => TransportType::Polling,
            Open::Websocket => TransportType::Websocket,
            Open::Upgrade => TransportType::WebsocketUpgrade,
        };
        let mut builder = ClientBuilder::new(url)
            .transport_type(transport)
            .reconnect(false);
        if let Some(username) = username {
            builder = builder.opening_header("username", username);
        }
        let on = |tx: mpsc::UnboundedSender<Seen>, f: fn(Payload) -> Seen| {
            move |payload: Payload, _: Client| {
                let _ = tx.send(f(payload));
                async {}.boxed()
            }
        };
        let any_tx = tx.clone();
        builder = builder
            .on(Event::Connect, on(tx.clone(), |_| Seen::Connected))
            .on(Event::Close, on(tx.clone(), |_| Seen::Closed))
            .on(Event::Error, on(tx.clone(), refused))
            .on_any(move |event, payload, _| {
                if let Event::Custom(name) = event {
                    let _ = any_tx.send(Seen::Event(name, first(payload)));
                }
                async {}.boxed()
            });
        let client = builder.connect().await.expect("socket.io handshake");
        let mut peer = Peer { client, seen };
        let outcome = peer
            .next_matching(|s| matches!(s, Seen::Connected | Seen::Refused(_)))
            .await;
        (peer, outcome)
    }

    /// Connects over polling, then upgrades, as a registered user.
    pub async fn connect(url: &str, username: &str) -> Peer {
        let (peer, outcome) = Peer::open(url, Some(username), Open::Upgrade).await;
        assert_eq!(outcome, Seen::Connected, "{username} must be accepted");
        peer
    }

    /// Emits `event` with `args` and an ack request; returns the ack's first argument.
    pub async fn emit_acked(&self, event: &str, args: Vec<Value>) -> Value {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        self.client
            .emit_with_ack(event, Payload::Text(args), PATIENCE, move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    // rust_socketio hands an ack's argument list over as one array.
                    let ack = match first(payload) {
                        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                        other => other,
                    };
                    let _ = tx.send(ack);
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(PATIENCE, rx)
            .await
            .expect("ack in time")
            .expect("ack")
    }

    /// `send_message` to `to` with an ack (M1).
    pub async fn send(&self, to: &str, content: &str, client_id: &str) -> Value {
        self.emit_acked(
            "send_message",
            vec![json!({"to": to, "content": content, "client_id": client_id})],
        )
        .await
    }

    /// The next observation that matches, within [`PATIENCE`].
    pub async fn next_matching(&mut self, wanted: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let seen = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .expect("expected observation did not arrive in time")
                .expect("peer channel open");
            if wanted(&seen) {
                return seen;
            }
        }
    }

    /// The data of the next `event`.
    pub async fn next_event(&mut self, event: &str) -> Value {
        match self
            .next_matching(|s| matches!(s, Seen::Event(name, _) if name == event))
            .await
        {
            Seen::Event(_, data) => data,
            _ => unreachable!(),
        }
    }

    /// Every `event` seen within `window`, in order.
    pub async fn events_within(&mut self, event: &str, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut found = Vec::new();
        while let Ok(Some(seen)) = tokio::time::timeout_at(deadline, self.seen.recv()).await {
            if let Seen::Event(name, data) = seen {
                if name == event {
                    found.push(data);
                }
            }
        }
        found
    }

    pub async fn close(self) {
        self.client.disconnect().await.expect("disconnect");
    }
}

fn first(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        Payload::Text(_) => Value::Null,
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(_) => Value::Null,
    }
}

/// rust_socketio reports CONNECT_ERROR as an Error callback with a prefix.
fn refused(payload: Payload) -> Seen {
    let text = match first(payload) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let data = text
        .split_once(": ")
        .and_then(|(_, json)| serde_json::from_str(json).ok())
        .unwrap_or(Value::String(text));
    Seen::Refused(data)
}

/// `GET /api/online` → the users list (P4).
pub async fn online(url: &str) -> Vec<String> {
    let (status, body) = get(url, "/api/online", None).await;
    assert_eq!(status, 200);
    serde_json::from_value(body["users"].clone()).expect("users is a list of strings")
}

/// `GET /api/messages?after=…` as `username`: status and JSON body (L1).
pub async fn poll(url: &str, username: Option<&str>, query: &str) -> (u16, Value) {
    get(url, &format!("/api/messages{query}"), username).await
}

/// A GET whose body must be JSON with the JSON content type (T2).
pub async fn get(url: &str, path: &str, username: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{url}{path}"));
    if let Some(username) = username {
        request = request.header("username", username);
    }
    let response = request.send().await.expect("http request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "T2 on {path}"
    );
    (status, response.json().await.expect("JSON body"))
}

/// Polls until `wanted` holds for the online list, within [`PATIENCE`].
pub async fn online_eventually(url: &str, wanted: &[&str]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let users = online(url).await;
        if users == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "online stayed {users:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `user`'s mailbox until it is not empty, within [`PATIENCE`].
pub async fn mail_eventually(url: &str, user: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, body) = poll(url, Some(user), "").await;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if !messages.is_empty() {
            return messages;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user}'s mailbox stayed empty"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Reference server for the chat presence wire contract v1
//! (`shared/contract/chat-protocol.md`).
//!
//! - [`username`]: who a connection claims to be (I1, I2)
//! - [`presence`]: who is online, counted per connection (P1–P4)
//! - [`store`]: message ids, mailboxes and cursors (M2, L1, L2)
//! - [`wire`]: event names, payload validation, error shapes (M1, B1)
//! - [`chat`]: the Socket.IO handlers (I3, P1–P3, M2–M5)
//! - [`http`]: `/api/online`, `/api/messages`, `/health` (P4, L1, H1)
//! - [`cluster`]: the shared state of a deployment of several nodes, in Redis (N1–N4)
//! - [`config`]: timers, limits, and the bug switches
//! - [`observe`]: what the server saw of itself, for a harness's referee
//!
//! [`serve`] runs it on any listener: `tokio::net::TcpListener` in the binary,
//! turmoil's listener in the harness's simulation.
#![warn(missing_docs)]

pub mod chat;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod http;
pub mod observe;
pub mod presence;
pub mod store;
pub mod token;
pub mod username;
pub mod wire;

use std::sync::Arc;

pub use chat::Chat;
pub use config::{Bug, Bugs, Config};
pub use observe::{Observed, Observer};
pub use store::{MemoryStore, Store};
pub use token::TokenKey;
pub use username::Username;

/// The whole server as one axum router: HTTP routes and Socket.IO on one port (T2).
pub fn app(config: Config) -> (axum::Router, Arc<Chat>) {
    let store = Arc::new(MemoryStore::booted_at(config.epoch_unix_ms));
    let chat = Arc::new(Chat::new(config, store));
    (router(Arc::clone(&chat)), chat)
}

/// The router for an existing chat (to run it over another store).
pub fn router(chat: Arc<Chat>) -> axum::Router {
    let cors = http::cors(&chat.config().cors_origins);
    http::routes(Arc::clone(&chat))
        .layer(chat::socket_io_layer(chat))
        .layer(cors)
}

/// Serves the reference server on `listener` until the listener fails for good.
pub async fn serve<L>(listener: L, config: Config) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    serve_observed(listener, config, None).await
}

/// Like [`serve`], telling `observer` (if any) what the server sees of itself.
pub async fn serve_observed<L>(
    listener: L,
    config: Config,
    observer: Option<Arc<dyn Observer>>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let store = Arc::new(MemoryStore::booted_at(config.epoch_unix_ms));
    serve_with_store(listener, config, observer, store).await
}

/// Like [`serve_observed`], over `store` (one kept across restarts, say).
pub async fn serve_with_store<L>(
    listener: L,
    config: Config,
    observer: Option<Arc<dyn Observer>>,
    store: Arc<dyn Store>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let chat = Chat::new(config, store);
    let chat = match observer {
        Some(observer) => chat.observed_by(observer),
        None => chat,
    };
    axum::serve(listener, router(Arc::new(chat))).await
}

/// Limits for serving on real TCP, against slow and idle clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A connection must send a request's headers within this, also when it
    /// idles between requests (slowloris, idle keep-alive connections).
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once; beyond it new ones are closed at once, so
    /// a flood cannot exhaust the process's descriptors.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Serves on real TCP through hyper's builder with `limits`: what the binary
/// runs. WebSocket upgrades are served as usual; once upgraded a connection is
/// the Engine.IO heartbeat's to watch.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    config: Config,
    limits: Limits,
) -> std::io::Result<()> {
    let (router, _chat) = app(config);
    serve_router_tcp(listener, router, limits).await
}

/// Why a node of several could not join its deployment.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Redis refused, or is not there.
    #[error("cannot reach the deployment's Redis at {url}: {source}")]
    Redis {
        /// As given (without credentials).
        url: String,
        /// What redis-rs said.
        source: redis::RedisError,
    },
    /// socketioxide's Redis adapter could not subscribe.
    #[error("socketioxide's Redis adapter could not start: {0}")]
    Adapter(String),
}

/// One node of a deployment of several (contract N1–N4): the whole server as
/// one router, its shared state in the Redis at `redis_url` (mailboxes, ids,
/// retries, presence per node with a liveness key), and its pushes, acks and
/// presence events crossing nodes through socketioxide's Redis adapter.
/// Starts the node's heartbeat (N3).
pub async fn cluster_app(
    config: Config,
    redis_url: &str,
    node: &str,
) -> Result<(axum::Router, Arc<Chat<chat::ClusterAdapter>>), JoinError> {
    let shown = redis_url
        .split('@')
        .next_back()
        .unwrap_or(redis_url)
        .to_owned();
    let redis_error = |source| JoinError::Redis {
        url: shown.clone(),
        source,
    };
    // socketioxide-redis speaks RESP3 (pushes on one connection).
    let url = if redis_url.contains("protocol=") {
        redis_url.to_owned()
    } else if redis_url.contains('?') {
        format!("{redis_url}&protocol=resp3")
    } else {
        format!("{redis_url}?protocol=resp3")
    };
    let client = redis::Client::open(url).map_err(redis_error)?;
    let manager = client.get_connection_manager().await.map_err(redis_error)?;
    // A dead node's entry outlives it by at most one heartbeat period
    // (pingInterval + pingTimeout): its users are offline within N3's
    // 2 × (pingInterval + pingTimeout).
    let ttl_ms = config.ping_interval_ms + config.ping_timeout_ms;
    let cluster = cluster::Cluster::join(node, manager, ttl_ms)
        .await
        .map_err(redis_error)?;
    let adapter = socketioxide_redis::RedisAdapterCtr::new_with_redis(&client)
        .await
        .map_err(redis_error)?;
    let store = Arc::new(MemoryStore::booted_at(config.epoch_unix_ms));
    let chat = Arc::new(Chat::new(config, store).clustered(cluster));
    let layer = chat::clustered_socket_io_layer(Arc::clone(&chat), adapter)
        .await
        .map_err(|e| JoinError::Adapter(e.to_string()))?;
    let cors = http::cors(&chat.config().cors_origins);
    let router = http::routes(Arc::clone(&chat)).layer(layer).layer(cors);
    chat.spawn_heartbeat();
    Ok((router, chat))
}

/// Serves `router` on real TCP through hyper's builder with `limits`.
pub async fn serve_router_tcp(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                "🚫 {peer}: {} connections already open; closed",
                limits.max_connections
            );
            continue;
        };
        // Small frames are the whole traffic: Nagle would add tens of ms to a push (M3).
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|req: ::http::Request<hyper::body::Incoming>| {
                req.map(axum::body::Body::new)
            });
        tokio::spawn(async move {
            // HTTP/1 only (all the contract needs): hyper-util's auto builder
            // first sniffs for an HTTP/2 preface with no timeout at all, which
            // would keep an idle connection forever.
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let service = hyper_util::service::TowerToHyperService::new(service);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("{peer}: connection ended: {e}");
            }
            drop(slot);
        });
    }
}

//! Reference server for the chat presence wire contract v1
//! (`shared/contract/chat-protocol.md`).
//!
//! - [`username`]: who a connection claims to be (I1, I2)
//! - [`presence`]: who is online, counted per connection (P1–P4)
//! - [`store`]: message ids, mailboxes and cursors (M2, L1, L2)
//! - [`wire`]: event names, payload validation, error shapes (M1, B1)
//! - [`chat`]: the Socket.IO handlers (I3, P1–P3, M2–M5)
//! - [`http`]: `/api/online`, `/api/messages`, `/health` (P4, L1, H1)
//! - [`config`]: timers, limits, and the bug switches
//! - [`observe`]: what the server saw of itself, for a harness's referee
//!
//! [`serve`] runs it on any listener: `tokio::net::TcpListener` in the binary,
//! turmoil's listener in the harness's simulation.
#![warn(missing_docs)]

pub mod chat;
pub mod clock;
pub mod config;
pub mod http;
pub mod observe;
pub mod presence;
pub mod store;
pub mod username;
pub mod wire;

use std::sync::Arc;

pub use chat::Chat;
pub use config::{Bug, Bugs, Config};
pub use observe::{Observed, Observer};
pub use store::{MemoryStore, Store};
pub use username::Username;

/// The whole server as one axum router: HTTP routes and Socket.IO on one port (T2).
pub fn app(config: Config) -> (axum::Router, Arc<Chat>) {
    let chat = Arc::new(Chat::new(config, Arc::new(MemoryStore::new())));
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
    let (router, _chat) = app(config);
    axum::serve(listener, router).await
}

/// Like [`serve`], telling `observer` what the server sees of itself.
pub async fn serve_observed<L>(
    listener: L,
    config: Config,
    observer: Arc<dyn Observer>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let chat = Arc::new(Chat::new(config, Arc::new(MemoryStore::new())).observed_by(observer));
    axum::serve(listener, router(chat)).await
}

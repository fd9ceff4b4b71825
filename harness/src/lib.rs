//! Deterministic simulation and conformance harness for the chat presence
//! protocol (`shared/contract/chat-protocol.md`).
//!
//! Plug a server in, let the harness generate seeded scenarios, play them in a
//! simulated network full of faults, judge every trace against the contract,
//! and hand back the smallest failing scenario with the line that replays it:
//!
//! ```no_run
//! # async fn serve(_l: harness::Listener, _e: harness::ServerEnv) -> std::io::Result<()> { Ok(()) }
//! // In a server crate's tests/contract.rs (`harness` as a dev-dependency):
//! harness::Campaign::new()
//!     .server(|listener, env| serve(listener, env))
//!     .seeds(0..20)
//!     .run()
//!     .assert_clean();
//! ```
//!
//! The crate, by role:
//!
//! - the contract: [`spec`] (clauses and levels), [`contract`] (the wire's data
//!   model: usernames, acks, messages)
//! - what a run is: [`scenario`] (users, steps, [`faults`], the server's
//!   timers), [`topology`] (which hosts exist, who runs where), [`trace`]
//!   (events, recorder, renderer)
//! - who runs: [`net`] (packets, connectors, the TCP fault proxy), [`client`]
//!   (the reference client), [`world`] (the turmoil simulation, and how any
//!   server plugs into it)
//! - who judges: [`judge`] (pure checkers over a trace, per clause family)
//! - what users call: [`campaign`] (the library API), [`hunt`] (explore and
//!   shrink), [`check`] (black-box conformance over real TCP, and live replays),
//!   [`mod@bench`] (measurements), [`cli`] (the `harness` command), with
//!   [`render`] the text they share (escaped, in the words users type)
#![warn(missing_docs)]

pub mod bench;
pub mod campaign;
pub mod check;
pub mod cli;
pub mod client;
pub mod contract;
pub mod faults;
pub mod hunt;
pub mod judge;
pub mod net;
pub mod render;
pub mod scenario;
pub mod spec;
pub mod token;
pub mod topology;
pub mod trace;
pub mod world;

/// The simulated network the harness runs servers in: the harness's own
/// turmoil (a patched 0.7.2), so a server that needs turmoil itself (to dial
/// out of its host, say) uses this one, whatever turmoil version its crate
/// depends on.
pub use turmoil;

pub use campaign::{Campaign, CampaignReport, Finding, Replay};
pub use faults::FaultMenu;
pub use scenario::Scenario;
pub use spec::Clause;
pub use trace::ServerEvent;
pub use world::{Listener, Reference, Server, ServerEnv, ServerTimers};

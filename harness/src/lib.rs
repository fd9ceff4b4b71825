//! Deterministic simulation and conformance harness for the chat presence
//! protocol (`shared/contract/chat-protocol.md`).
//!
//! - [`packet`]: Engine.IO / Socket.IO packets, pure
//! - [`transport`]: the connector trait, HTTP and WebSocket over any TCP
//! - [`client`]: the reference client (tabs, reconnection, acks, polling, de-dup)
//! - [`scenario`]: users, steps and faults as data
//! - [`faults`]: the fault plan and its turmoil semantics
//! - [`world`]: the turmoil simulation (the only module that touches turmoil's sim)
//! - [`trace`]: events, the recorder, the renderer
//! - [`checkers`]: pure invariant checks over a trace
//! - [`shrink`]: from a failing scenario to a minimal one
//! - [`spec`]: the contract's clauses
#![warn(missing_docs)]

pub mod bench;
pub mod check;
pub mod checkers;
pub mod cli;
pub mod client;
pub mod faults;
pub mod hunt;
pub mod packet;
pub mod proxy;
pub mod scenario;
pub mod shrink;
pub mod spec;
pub mod trace;
pub mod transport;
pub mod world;

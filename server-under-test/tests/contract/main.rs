//! The reference server against the wire contract, clause by clause, over real
//! loopback TCP with rust_socketio as an independent client.

mod abuse;
mod auth;
mod bad_input;
mod bugs;
mod cli;
mod errors;
mod identity;
mod messaging;
mod polling;
mod presence;
mod raw;
mod support;
mod transport;

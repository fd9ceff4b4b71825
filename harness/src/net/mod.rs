//! The wire: Engine.IO / Socket.IO packets (pure), the connector trait with
//! HTTP and WebSocket over any TCP (turmoil's or tokio's), and the TCP fault
//! proxy that brings the fault plan to real networks; the malformed frames a
//! fuzzer reaches; TLS for `https://` targets.

pub mod malformed;
pub mod packet;
pub mod proxy;
pub mod tls;
pub mod transport;

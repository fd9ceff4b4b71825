//! The contract's clauses (`specs/clauses.md`): every checker, report line and
//! snapshot names one.

use serde::{Deserialize, Serialize};

/// A clause of the wire contract v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Clause {
    /// Socket.IO v5 over Engine.IO v4; polling, websocket, upgrade.
    T1,
    /// HTTP endpoints on the same port; JSON content type.
    T2,
    /// Identity in the `username` header of the handshake request.
    I1,
    /// Valid username: 1–32 of `[A-Za-z0-9_.-]`.
    I2,
    /// No valid username, never registered.
    I3,
    /// Registered on connect; `user_online` to others.
    P1,
    /// Online while any registered connection is open.
    P2,
    /// Offline with the last connection; `user_offline` to others.
    P3,
    /// `/api/online` lists exactly the online users, sorted.
    P4,
    /// `send_message` shape and limits.
    M1,
    /// Ack shape; ids; `from` is the registered sender.
    M2,
    /// Online recipient: pushed, acked `websocket`, within 100 ms.
    M3,
    /// Offline recipient: mailbox, acked `polling`.
    M4,
    /// Unacknowledged pushes fall back to the mailbox; nothing lost.
    M5,
    /// Mailbox entries with `seq`, cursor polling.
    L1,
    /// A poll acknowledges up to its cursor and never loses above it.
    L2,
    /// The client polls every 30 s.
    L3,
    /// `/health`.
    H1,
    /// Malformed input gets a clear error and harms nobody.
    B1,
}

/// Conformance level: every MUST is core; the SHOULDs under faults are robust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The MUSTs.
    Core,
    /// The SHOULDs, judged under injected faults.
    Robust,
}

impl Clause {
    /// Every clause, in contract order.
    pub const ALL: [Clause; 19] = [
        Clause::T1,
        Clause::T2,
        Clause::I1,
        Clause::I2,
        Clause::I3,
        Clause::P1,
        Clause::P2,
        Clause::P3,
        Clause::P4,
        Clause::M1,
        Clause::M2,
        Clause::M3,
        Clause::M4,
        Clause::M5,
        Clause::L1,
        Clause::L2,
        Clause::L3,
        Clause::H1,
        Clause::B1,
    ];

    /// The clause id as the contract writes it.
    pub fn id(self) -> &'static str {
        match self {
            Clause::T1 => "T1",
            Clause::T2 => "T2",
            Clause::I1 => "I1",
            Clause::I2 => "I2",
            Clause::I3 => "I3",
            Clause::P1 => "P1",
            Clause::P2 => "P2",
            Clause::P3 => "P3",
            Clause::P4 => "P4",
            Clause::M1 => "M1",
            Clause::M2 => "M2",
            Clause::M3 => "M3",
            Clause::M4 => "M4",
            Clause::M5 => "M5",
            Clause::L1 => "L1",
            Clause::L2 => "L2",
            Clause::L3 => "L3",
            Clause::H1 => "H1",
            Clause::B1 => "B1",
        }
    }

    /// Parses an id such as `M5`.
    pub fn from_id(id: &str) -> Option<Clause> {
        Clause::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Core (MUST) or robust (SHOULD under faults).
    pub fn level(self) -> Level {
        match self {
            Clause::M5 => Level::Robust,
            _ => Level::Core,
        }
    }

    /// One line saying what the clause demands.
    pub fn statement(self) -> &'static str {
        match self {
            Clause::T1 => "Socket.IO v5 over Engine.IO v4 at /socket.io/: polling, websocket and the upgrade",
            Clause::T2 => "HTTP endpoints share the port; every JSON response is application/json",
            Clause::I1 => "identity is the `username` header of the Engine.IO handshake request",
            Clause::I2 => "a valid username is 1 to 32 characters of [A-Za-z0-9_.-]",
            Clause::I3 => "a connection without a valid username is never registered",
            Clause::P1 => "a valid connection is registered; user_online goes to the other users",
            Clause::P2 => "a user is online while any registered connection is open",
            Clause::P3 => "the last connection closing takes the user offline; user_offline goes to the others",
            Clause::P4 => "GET /api/online lists exactly the online users, sorted, without duplicates",
            Clause::M1 => "send_message carries {to, content, client_id} within limits, with an ack",
            Clause::M2 => "acks are {id, delivery} or {error}; ids increase per recipient; from is the sender",
            Clause::M3 => "an online recipient gets new_message, ack websocket, within 100 ms on a healthy network",
            Clause::M4 => "an offline recipient's message is stored in the mailbox, ack polling",
            Clause::M5 => "an unacknowledged push falls back to the mailbox; nothing accepted is lost",
            Clause::L1 => "GET /api/messages?after=N returns mailbox entries above N in seq order",
            Clause::L2 => "a poll acknowledges up to its cursor and never discards above it",
            Clause::L3 => "the reference client polls every 30 s",
            Clause::H1 => "GET /health answers {\"status\": \"ok\"}",
            Clause::B1 => "malformed input gets a clear error, never crashes or disconnects others",
        }
    }
}

impl std::fmt::Display for Clause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for clause in Clause::ALL {
            assert_eq!(Clause::from_id(clause.id()), Some(clause));
        }
        assert_eq!(Clause::from_id("Z9"), None);
    }
}

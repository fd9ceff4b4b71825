//! The contract's clauses (`specs/clauses.md`): every checker, report line and
//! snapshot names one.

use serde::{Deserialize, Serialize};

/// A clause of the wire contract (v1, and v2's identity clauses).
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
    /// A stale cursor (above every seq assigned) gets 409 with `latest`, discards nothing.
    L4,
    /// `/health`.
    H1,
    /// Malformed input gets a clear error and harms nobody.
    B1,
    /// v2: `/health` states `"contract": "v2"` and `"auth": "jwt-hs256"`.
    H2,
    /// v2: identity is an HS256 JWT with the shared secret; `sub`, `exp`.
    A1,
    /// v2: the token in CONNECT's auth payload; registered iff valid; the header is not identity.
    A2,
    /// v2: `/api/messages` needs `Authorization: Bearer`; only the token's mailbox.
    A3,
    /// v2: an expired token may keep its open connection; new connections and polls refused.
    A4,
    /// v2: `from` is the sender's token `sub`.
    A5,
    /// v2 (SHOULD): tokens never appear in responses, errors or acks.
    A6,
    /// Several nodes: every clause holds for the deployment as a whole.
    N1,
    /// Several nodes: every request of a session reaches the node that holds it.
    N2,
    /// Several nodes (SHOULD): a node that dies takes its users offline; nothing is lost.
    N3,
    /// Several nodes (SHOULD): losing the adapter loses nothing.
    N4,
}

/// Conformance level: every MUST is core; the SHOULDs under faults are robust;
/// secure is core plus contract v2's authenticated identity (H2, A1–A6);
/// cluster is core plus the deployment of several nodes (N1–N4).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The MUSTs.
    Core,
    /// The SHOULDs, judged under injected faults.
    Robust,
    /// Core plus authenticated identity (contract v2): a v1 server fails it.
    Secure,
    /// Core plus a deployment of several nodes (N1–N4), judged through the
    /// public URL and each node's own.
    Cluster,
}

impl Level {
    /// The name users type (`--level core`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Core => "core",
            Level::Robust => "robust",
            Level::Secure => "secure",
            Level::Cluster => "cluster",
        }
    }

    /// Whether a check at this level judges a clause of level `clause`:
    /// robust adds the SHOULDs under faults to core, secure adds v2's identity.
    pub fn judges(self, clause: Level) -> bool {
        clause == Level::Core || clause == self
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Clause {
    /// Every clause, in contract order.
    pub const ALL: [Clause; 31] = [
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
        Clause::L4,
        Clause::H1,
        Clause::B1,
        Clause::H2,
        Clause::A1,
        Clause::A2,
        Clause::A3,
        Clause::A4,
        Clause::A5,
        Clause::A6,
        Clause::N1,
        Clause::N2,
        Clause::N3,
        Clause::N4,
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
            Clause::L4 => "L4",
            Clause::H1 => "H1",
            Clause::B1 => "B1",
            Clause::H2 => "H2",
            Clause::A1 => "A1",
            Clause::A2 => "A2",
            Clause::A3 => "A3",
            Clause::A4 => "A4",
            Clause::A5 => "A5",
            Clause::A6 => "A6",
            Clause::N1 => "N1",
            Clause::N2 => "N2",
            Clause::N3 => "N3",
            Clause::N4 => "N4",
        }
    }

    /// Parses an id such as `M5`.
    pub fn from_id(id: &str) -> Option<Clause> {
        Clause::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Core (MUST), robust (SHOULD under faults) or secure (contract v2).
    pub fn level(self) -> Level {
        match self {
            Clause::M5 | Clause::L4 => Level::Robust,
            Clause::H2
            | Clause::A1
            | Clause::A2
            | Clause::A3
            | Clause::A4
            | Clause::A5
            | Clause::A6 => Level::Secure,
            Clause::N1 | Clause::N2 | Clause::N3 | Clause::N4 => Level::Cluster,
            _ => Level::Core,
        }
    }

    /// The clauses a report at `level` lists: every clause, but those of a
    /// deployment of several nodes only at `--level cluster` (a one-node
    /// report reads as it did before the N clauses existed).
    pub fn reported(level: Level) -> impl Iterator<Item = Clause> {
        Clause::ALL
            .into_iter()
            .filter(move |c| c.level() != Level::Cluster || level == Level::Cluster)
    }

    /// Its normative sentences, from `specs/clauses.json`.
    pub fn sentences(self) -> &'static [Sentence] {
        catalogue()
            .iter()
            .find(|entry| entry.id == self.id())
            .map_or(&[], |entry| entry.sentences.as_slice())
    }

    /// One line saying what the clause demands, from `specs/clauses.json`.
    pub fn statement(self) -> &'static str {
        catalogue()
            .iter()
            .find(|entry| entry.id == self.id())
            .map_or("(missing from specs/clauses.json)", |entry| {
                entry.statement.as_str()
            })
    }
}

/// One entry of `specs/clauses.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClauseEntry {
    /// Clause id.
    pub id: String,
    /// `core` or `robust`.
    pub level: Level,
    /// One line.
    pub statement: String,
    /// Checkers (names in `checkers::CHECKERS`) that judge it on a trace.
    pub checkers: Vec<String>,
    /// Black-box rules and probes of `harness check` (names in `check::rules::RULES`).
    #[serde(default)]
    pub checks: Vec<String>,
    /// Tests that exercise it, as `path::test_name`.
    pub tests: Vec<String>,
    /// Its normative sentences, one by one (`M2.4`), each with what judges
    /// it and the test that shows a server breaking it caught.
    #[serde(default)]
    pub sentences: Vec<Sentence>,
}

/// One normative sentence of a clause.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Sentence {
    /// `<clause>.<n>`, e.g. `M2.4`.
    pub id: String,
    /// `MUST`, `MUST NOT`, `SHOULD`, `MAY`, or `REF` (describes the reference
    /// client or server, not a requirement on servers).
    pub kind: String,
    /// The sentence, shortened.
    pub text: String,
    /// The trace checkers and check rules that judge it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
    /// Tests in which a server breaking it is caught, as `path::test_name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    /// Why nothing probes it (only a `MAY` or a `REF` may say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprobed: Option<String>,
    /// What its probes do not reach yet, said out loud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
}

/// The machine-readable clause list, compiled in from `specs/clauses.json`.
pub fn catalogue() -> &'static [ClauseEntry] {
    static CATALOGUE: std::sync::OnceLock<Vec<ClauseEntry>> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(|| {
        serde_json::from_str(include_str!("../../specs/clauses.json"))
            .expect("specs/clauses.json is valid (tested)")
    })
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

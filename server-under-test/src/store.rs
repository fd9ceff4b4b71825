//! Where accepted messages live: the id sequence (M2), the mailboxes with their
//! `seq` cursors (L1, L2), and the retry memory for `client_id` (M1).
//!
//! The seed kept these in Redis; [`MemoryStore`] is the default. A store's methods
//! are short and never wait on the network in this crate, so they are plain
//! synchronous calls made under no lock of the caller's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A message as the contract shows it in `new_message` and mailbox entries (M3, L1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Server-assigned, unique, strictly increasing (M2).
    pub id: u64,
    /// The sender's registered username, never taken from the payload (M2).
    pub from: String,
    /// The recipient.
    pub to: String,
    /// 1 to 4096 Unicode scalar values (M1).
    pub content: String,
    /// Server time of acceptance, Unix milliseconds (M3).
    pub ts: u64,
}

/// One mailbox entry: a message and its position in the recipient's mailbox (L1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxEntry {
    /// From 1, strictly increasing per recipient in the order entries enter (L1).
    pub seq: u64,
    /// The stored message, flattened into the entry on the wire.
    #[serde(flatten)]
    pub message: Message,
}

/// How an accepted message is on its way, as acknowledged to the sender (M2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Pushed to the recipient's open connections (M3).
    Websocket,
    /// Stored for the recipient's next poll (M4).
    Polling,
}

/// The success ack of `send_message` (M2): `{"id": …, "delivery": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The message id.
    pub id: u64,
    /// Push or mailbox.
    pub delivery: Delivery,
}

/// Storage behind the handlers. Implement it to back the server with another
/// store (the seed's Redis) without touching the handlers.
pub trait Store: Send + Sync + 'static {
    /// The next message id: unique and strictly increasing across all messages,
    /// hence per recipient too (M2).
    fn next_message_id(&self) -> u64;

    /// Appends `message` to its recipient's mailbox and returns its `seq` (L1),
    /// which is above every `seq` handed out before for that recipient.
    fn append_to_mailbox(&self, message: Message) -> u64;

    /// The recipient's entries with `seq > after`, in `seq` order (L1). Entries at
    /// or below `after` are acknowledged by the caller and may be discarded (L2).
    fn mailbox_after(&self, recipient: &str, after: u64) -> Vec<MailboxEntry>;

    /// The highest `seq` the recipient's mailbox ever assigned, 0 if none (L4).
    fn last_seq(&self, recipient: &str) -> u64;

    /// How many entries the recipient's mailbox holds now.
    fn mailbox_len(&self, recipient: &str) -> u64;

    /// What was accepted for `(sender, client_id)`, if anything (M1 retries).
    fn recall(&self, sender: &str, client_id: &str) -> Option<Remembered>;

    /// Remembers what was accepted for `(sender, client_id)`.
    fn remember(&self, sender: &str, client_id: &str, remembered: Remembered);
}

/// An accepted send, kept so that a retry gets its original ack (M1) and a
/// reused `client_id` with another message does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    /// The ack given.
    pub accepted: Accepted,
    /// The recipient it was for.
    pub to: String,
    /// Its content.
    pub content: String,
}

/// The in-memory store: one lock, ordered maps, nothing random.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    last_message_id: u64,
    mailboxes: BTreeMap<String, Mailbox>,
    // Lookup only, never iterated: its order cannot reach a response.
    accepted: HashMap<(String, String), Remembered>,
}

#[derive(Debug, Default)]
struct Mailbox {
    last_seq: u64,
    entries: Vec<MailboxEntry>,
}

/// The Unix time message ids count from (2025-10-09T00:00:00Z, the seed's
/// date): see [`MemoryStore::booted_at`].
pub const ID_EPOCH_UNIX_MS: u64 = 1_759_968_000_000;

impl MemoryStore {
    /// An empty store whose ids start at 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store for a server started at `now_unix_ms`: its ids start
    /// above the milliseconds since [`ID_EPOCH_UNIX_MS`] × 1000, so a server
    /// restarted with a fresh store never hands out an id it handed out
    /// before (M2: unique; clients de-duplicate by id and would drop a reused
    /// one), as long as it accepted fewer than 1000 messages per millisecond
    /// of uptime. The ids stay below 2^53 (JavaScript's exact integers) for
    /// two centuries.
    pub fn booted_at(now_unix_ms: u64) -> Self {
        let store = Self::default();
        store.memory().last_message_id = now_unix_ms
            .saturating_sub(ID_EPOCH_UNIX_MS)
            .saturating_mul(1_000);
        store
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic while holding the lock cannot leave the maps half-written
        // (every update is a single push or insert), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn next_message_id(&self) -> u64 {
        let mut memory = self.memory();
        memory.last_message_id += 1;
        memory.last_message_id
    }

    fn append_to_mailbox(&self, message: Message) -> u64 {
        let mut memory = self.memory();
        let mailbox = memory.mailboxes.entry(message.to.clone()).or_default();
        mailbox.last_seq += 1;
        let seq = mailbox.last_seq;
        mailbox.entries.push(MailboxEntry { seq, message });
        seq
    }

    fn mailbox_after(&self, recipient: &str, after: u64) -> Vec<MailboxEntry> {
        let mut memory = self.memory();
        let Some(mailbox) = memory.mailboxes.get_mut(recipient) else {
            return Vec::new();
        };
        // L2: the poll acknowledges everything up to `after`; only that is dropped.
        mailbox.entries.retain(|entry| entry.seq > after);
        mailbox.entries.clone()
    }

    fn last_seq(&self, recipient: &str) -> u64 {
        self.memory()
            .mailboxes
            .get(recipient)
            .map_or(0, |m| m.last_seq)
    }

    fn mailbox_len(&self, recipient: &str) -> u64 {
        self.memory()
            .mailboxes
            .get(recipient)
            .map_or(0, |m| m.entries.len() as u64)
    }

    fn recall(&self, sender: &str, client_id: &str) -> Option<Remembered> {
        self.memory()
            .accepted
            .get(&(sender.to_owned(), client_id.to_owned()))
            .cloned()
    }

    fn remember(&self, sender: &str, client_id: &str, remembered: Remembered) {
        self.memory()
            .accepted
            .insert((sender.to_owned(), client_id.to_owned()), remembered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, to: &str) -> Message {
        Message {
            id,
            from: "a".into(),
            to: to.into(),
            content: format!("m{id}"),
            ts: 0,
        }
    }

    #[test]
    fn a_fresh_store_after_a_restart_never_reuses_an_id_m2() {
        let first = MemoryStore::booted_at(ID_EPOCH_UNIX_MS);
        assert_eq!(first.next_message_id(), 1, "the first boot counts from 1");
        let before: Vec<u64> = (0..999).map(|_| first.next_message_id()).collect();
        // Restarted one millisecond later with nothing kept.
        let second = MemoryStore::booted_at(ID_EPOCH_UNIX_MS + 1);
        let after = second.next_message_id();
        assert!(before.iter().all(|&id| id < after), "{after} reuses an id");
        assert_eq!(
            MemoryStore::booted_at(0).next_message_id(),
            1,
            "no underflow"
        );
    }

    #[test]
    fn ids_strictly_increase_m2() {
        let store = MemoryStore::new();
        let ids: Vec<u64> = (0..5).map(|_| store.next_message_id()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn seq_is_per_recipient_from_one_l1() {
        let store = MemoryStore::new();
        assert_eq!(store.append_to_mailbox(message(1, "b")), 1);
        assert_eq!(store.append_to_mailbox(message(2, "c")), 1);
        assert_eq!(store.append_to_mailbox(message(3, "b")), 2);
        let seqs: Vec<u64> = store.mailbox_after("b", 0).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    #[test]
    fn a_lost_poll_response_loses_nothing_l2() {
        // Polling with the same cursor twice (the first response lost) returns the
        // same entries; only a higher cursor drops them.
        let store = MemoryStore::new();
        store.append_to_mailbox(message(1, "b"));
        store.append_to_mailbox(message(2, "b"));
        let first = store.mailbox_after("b", 0);
        assert_eq!(store.mailbox_after("b", 0), first);
        assert_eq!(store.mailbox_after("b", 1).len(), 1);
        assert_eq!(
            store.mailbox_after("b", 0).len(),
            1,
            "seq 1 was acknowledged"
        );
    }

    #[test]
    fn late_fallback_lands_above_every_cursor_handed_out_l1() {
        let store = MemoryStore::new();
        store.append_to_mailbox(message(1, "b"));
        store.append_to_mailbox(message(2, "b"));
        store.mailbox_after("b", 2);
        // Message 0 is older but enters the mailbox later (M5 fallback).
        assert_eq!(store.append_to_mailbox(message(0, "b")), 3);
        assert_eq!(store.mailbox_after("b", 2)[0].message.id, 0);
    }

    #[test]
    fn retries_are_remembered_per_sender_m1() {
        let store = MemoryStore::new();
        let kept = Remembered {
            accepted: Accepted {
                id: 7,
                delivery: Delivery::Polling,
            },
            to: "b".into(),
            content: "hi".into(),
        };
        store.remember("a", "c1", kept.clone());
        assert_eq!(store.recall("a", "c1"), Some(kept));
        assert_eq!(store.recall("b", "c1"), None);
        assert_eq!(store.last_seq("b"), 0);
        store.append_to_mailbox(message(1, "b"));
        store.mailbox_after("b", 1);
        assert_eq!(
            store.last_seq("b"),
            1,
            "a poll's discard keeps the last seq (L4)"
        );
    }
}

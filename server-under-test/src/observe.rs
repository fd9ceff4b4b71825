//! What the server saw of itself, told to whoever watches: the harness's
//! referee compares it with what the clients saw, to tell a server's fault
//! from a harness's. Observing changes nothing the server does.

use crate::store::Delivery;

/// One thing the server did or saw, per connection (`sid`: the Socket.IO sid
/// the client got in its CONNECT answer) or per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A connection was accepted as `user`: it counts for presence from now on.
    Registered {
        /// The user.
        user: String,
        /// The connection.
        sid: String,
    },
    /// A registered connection ended (its disconnect handler ran).
    Unregistered {
        /// The user.
        user: String,
        /// The connection.
        sid: String,
        /// socketioxide's disconnect reason, or why the server dropped it.
        reason: String,
    },
    /// A connection's CONNECT was refused (I3).
    NotRegistered {
        /// The connection.
        sid: String,
        /// Why.
        reason: String,
    },
    /// A message was accepted and acked.
    Accepted {
        /// The id.
        id: u64,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// How it was acked.
        delivery: Delivery,
    },
    /// A `new_message` push went to one of the recipient's connections.
    Pushed {
        /// The message.
        id: u64,
        /// The connection.
        sid: String,
    },
    /// A recipient's connection acknowledged a push.
    PushAcked {
        /// The message.
        id: u64,
    },
    /// A message entered the recipient's mailbox.
    Stored {
        /// The message.
        id: u64,
        /// The recipient.
        to: String,
        /// `offline`, `ack timeout`, `connection closed`, `no connection took it`.
        reason: &'static str,
    },
}

/// Hears what the server observes.
pub trait Observer: Send + Sync + 'static {
    /// Called as it happens, from the server's tasks.
    fn observe(&self, event: Observed);
}

impl<F: Fn(Observed) + Send + Sync + 'static> Observer for F {
    fn observe(&self, event: Observed) {
        self(event)
    }
}

//! The shared state of a deployment of several nodes (contract N1–N4), kept
//! in Redis: presence per node with a liveness key that expires when its node
//! stops refreshing it (N3), the id counter, the mailboxes with their `seq`,
//! and the retry memory. Pushes, their acks and presence events cross nodes
//! through socketioxide's own Redis adapter (`socketioxide-redis`), not here.
//!
//! Every call is one or a few Redis commands; a call that cannot reach Redis
//! returns the error, and the caller refuses what it cannot do (N4) instead
//! of acking it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::ConnectionManager;
use redis::RedisError;

use crate::store::{Accepted, MailboxEntry, Message, Remembered};

/// One node's handle on the deployment's shared state.
#[derive(Clone)]
pub struct Cluster {
    node: String,
    redis: ConnectionManager,
    /// How long a node's liveness key outlives its last refresh, ms: a dead
    /// node's users count as offline after at most this.
    ttl_ms: u64,
    /// Where ids come from with [`crate::Bug::IdsPerProcess`].
    local_ids: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

/// A retry record as stored (M1).
#[derive(serde::Serialize, serde::Deserialize)]
struct Retry {
    id: u64,
    delivery: crate::store::Delivery,
    to: String,
    content: String,
}

const PREFIX: &str = "chat";

fn key(parts: &[&str]) -> String {
    let mut key = PREFIX.to_owned();
    for part in parts {
        key.push(':');
        key.push_str(part);
    }
    key
}

impl Cluster {
    /// Joins the deployment as `node` through `redis`; a dead node's users go
    /// offline `ttl_ms` after its last refresh.
    pub async fn join(
        node: &str,
        redis: ConnectionManager,
        ttl_ms: u64,
    ) -> Result<Self, RedisError> {
        let cluster = Self {
            node: node.to_owned(),
            redis,
            ttl_ms: ttl_ms.max(100),
            local_ids: std::sync::Arc::new(AtomicU64::new(0)),
        };
        let mut redis = cluster.redis.clone();
        redis::cmd("SADD")
            .arg(key(&["nodes"]))
            .arg(node)
            .query_async::<()>(&mut redis)
            .await?;
        // A node restarted under the same id starts with no connections.
        redis::cmd("DEL")
            .arg(key(&["presence", node]))
            .query_async::<()>(&mut redis)
            .await?;
        cluster.refresh().await?;
        Ok(cluster)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How often [`Cluster::refresh`] must run: a third of the liveness ttl.
    pub fn refresh_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ttl_ms / 3)
    }

    /// Keeps this node alive for another ttl (N3).
    pub async fn refresh(&self) -> Result<(), RedisError> {
        let mut redis = self.redis.clone();
        redis::cmd("SET")
            .arg(key(&["alive", &self.node]))
            .arg(1)
            .arg("PX")
            .arg(self.ttl_ms)
            .query_async::<()>(&mut redis)
            .await
    }

    /// One more registered connection of `user` on this node; whether the
    /// user was offline everywhere before (P1 across nodes).
    pub async fn connected(&self, user: &str, with_expiry: bool) -> Result<bool, RedisError> {
        let was_online = self.online(with_expiry).await?.contains(user);
        let mut redis = self.redis.clone();
        redis::cmd("HINCRBY")
            .arg(key(&["presence", &self.node]))
            .arg(user)
            .arg(1)
            .query_async::<i64>(&mut redis)
            .await?;
        Ok(!was_online)
    }

    /// One registered connection of `user` on this node closed; whether the
    /// user is now offline everywhere (P3 across nodes).
    pub async fn disconnected(&self, user: &str, with_expiry: bool) -> Result<bool, RedisError> {
        let mut redis = self.redis.clone();
        let presence = key(&["presence", &self.node]);
        let left: i64 = redis::cmd("HINCRBY")
            .arg(&presence)
            .arg(user)
            .arg(-1)
            .query_async(&mut redis)
            .await?;
        if left <= 0 {
            redis::cmd("HDEL")
                .arg(&presence)
                .arg(user)
                .query_async::<()>(&mut redis)
                .await?;
        }
        Ok(!self.online(with_expiry).await?.contains(user))
    }

    /// Users per node, as each node wrote them, and whether the node is
    /// alive (this node always is).
    pub async fn presence(&self) -> Result<BTreeMap<String, (bool, BTreeSet<String>)>, RedisError> {
        let mut redis = self.redis.clone();
        let nodes: BTreeSet<String> = redis::cmd("SMEMBERS")
            .arg(key(&["nodes"]))
            .query_async(&mut redis)
            .await?;
        let mut out = BTreeMap::new();
        for node in nodes {
            let counts: BTreeMap<String, i64> = redis::cmd("HGETALL")
                .arg(key(&["presence", &node]))
                .query_async(&mut redis)
                .await?;
            let alive = node == self.node
                || redis::cmd("EXISTS")
                    .arg(key(&["alive", &node]))
                    .query_async::<bool>(&mut redis)
                    .await?;
            let users = counts
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(u, _)| u)
                .collect();
            out.insert(node, (alive, users));
        }
        Ok(out)
    }

    /// Users online on any live node (P4 across nodes); with
    /// `with_expiry == false` ([`crate::Bug::PresenceWithoutExpiry`]) a dead
    /// node's users too.
    pub async fn online(&self, with_expiry: bool) -> Result<BTreeSet<String>, RedisError> {
        Ok(self
            .presence()
            .await?
            .into_values()
            .filter(|(alive, _)| *alive || !with_expiry)
            .flat_map(|(_, users)| users)
            .collect())
    }

    /// The next message id, unique and increasing across the deployment (M2);
    /// per process with `per_process` ([`crate::Bug::IdsPerProcess`]).
    pub async fn next_id(&self, per_process: bool) -> Result<u64, RedisError> {
        if per_process {
            return Ok(self.local_ids.fetch_add(1, Ordering::Relaxed) + 1);
        }
        let mut redis = self.redis.clone();
        redis::cmd("INCR")
            .arg(key(&["next_id"]))
            .query_async(&mut redis)
            .await
    }

    /// Appends to the recipient's one mailbox; its `seq` (L1).
    pub async fn append(&self, message: Message) -> Result<u64, RedisError> {
        let mut redis = self.redis.clone();
        let to = message.to.clone();
        let seq: u64 = redis::cmd("INCR")
            .arg(key(&["seq", &to]))
            .query_async(&mut redis)
            .await?;
        let entry = MailboxEntry { seq, message };
        let json = serde_json::to_string(&entry).expect("a mailbox entry serializes");
        redis::cmd("RPUSH")
            .arg(key(&["mail", &to]))
            .arg(json)
            .query_async::<()>(&mut redis)
            .await?;
        Ok(seq)
    }

    /// The recipient's entries above `after`, in `seq` order (L1).
    pub async fn mailbox_after(
        &self,
        recipient: &str,
        after: u64,
    ) -> Result<Vec<MailboxEntry>, RedisError> {
        let mut redis = self.redis.clone();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(key(&["mail", recipient]))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await?;
        let mut entries: Vec<MailboxEntry> = raw
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .filter(|e: &MailboxEntry| e.seq > after)
            .collect();
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    /// The highest `seq` the recipient's mailbox assigned (L4).
    pub async fn last_seq(&self, recipient: &str) -> Result<u64, RedisError> {
        let mut redis = self.redis.clone();
        let seq: Option<u64> = redis::cmd("GET")
            .arg(key(&["seq", recipient]))
            .query_async(&mut redis)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// How many entries the recipient's mailbox holds.
    pub async fn mailbox_len(&self, recipient: &str) -> Result<u64, RedisError> {
        let mut redis = self.redis.clone();
        redis::cmd("LLEN")
            .arg(key(&["mail", recipient]))
            .query_async(&mut redis)
            .await
    }

    /// What was accepted for `(sender, client_id)` on any node (M1).
    pub async fn recall(
        &self,
        sender: &str,
        client_id: &str,
    ) -> Result<Option<Remembered>, RedisError> {
        let mut redis = self.redis.clone();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(key(&["retry", sender]))
            .arg(client_id)
            .query_async(&mut redis)
            .await?;
        Ok(raw
            .and_then(|json| serde_json::from_str::<Retry>(&json).ok())
            .map(|r| Remembered {
                accepted: Accepted {
                    id: r.id,
                    delivery: r.delivery,
                },
                to: r.to,
                content: r.content,
            }))
    }

    /// Remembers what was accepted for `(sender, client_id)`.
    pub async fn remember(
        &self,
        sender: &str,
        client_id: &str,
        remembered: &Remembered,
    ) -> Result<(), RedisError> {
        let retry = Retry {
            id: remembered.accepted.id,
            delivery: remembered.accepted.delivery,
            to: remembered.to.clone(),
            content: remembered.content.clone(),
        };
        let mut redis = self.redis.clone();
        redis::cmd("HSET")
            .arg(key(&["retry", sender]))
            .arg(client_id)
            .arg(serde_json::to_string(&retry).expect("a retry serializes"))
            .query_async::<()>(&mut redis)
            .await
    }
}

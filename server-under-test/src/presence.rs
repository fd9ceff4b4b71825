//! Who is online (P1–P4): registered connections counted per user.
//!
//! Pure bookkeeping over an opaque connection handle `T`, so it is tested without
//! sockets. Every iteration is over ordered maps (username, then connection
//! number), so fan-out order is the same on every run, whatever the random sids.

use std::collections::BTreeMap;

use crate::config::Bug;

/// The server's number for a registered connection, in registration order.
pub type ConnNo = u64;

/// How presence is kept: the contract's way, or one of the seed's broken ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// P2: a user is online while any registered connection is open.
    #[default]
    PerConnection,
    /// [`Bug::LastSidWins`]: one connection per user, the latest; any disconnect
    /// of that user removes it.
    LastSidWins,
    /// [`Bug::StalePresence`]: disconnects are ignored.
    Stale,
}

impl Mode {
    /// The mode the bug switches ask for.
    pub fn from_bugs(has_bug: impl Fn(Bug) -> bool) -> Self {
        if has_bug(Bug::LastSidWins) {
            Mode::LastSidWins
        } else if has_bug(Bug::StalePresence) {
            Mode::Stale
        } else {
            Mode::PerConnection
        }
    }
}

/// The presence registry.
#[derive(Debug)]
pub struct Presence<T> {
    mode: Mode,
    next_conn_no: ConnNo,
    users: BTreeMap<String, BTreeMap<ConnNo, T>>,
    owners: BTreeMap<ConnNo, String>,
}

/// What a registration changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Registered {
    /// The new connection's number.
    pub conn_no: ConnNo,
    /// The user was offline before (P1: announce `user_online`).
    pub came_online: bool,
}

/// What a disconnect changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Unregistered {
    /// Whose connection it was.
    pub username: String,
    /// That was the user's last connection (P3: announce `user_offline`).
    pub went_offline: bool,
}

impl<T> Presence<T> {
    /// An empty registry.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            next_conn_no: 0,
            users: BTreeMap::new(),
            owners: BTreeMap::new(),
        }
    }

    /// Registers a connection for `username` (P1).
    pub fn register(&mut self, username: &str, handle: T) -> Registered {
        self.next_conn_no += 1;
        let conn_no = self.next_conn_no;
        let conns = self.users.entry(username.to_owned()).or_default();
        let came_online = conns.is_empty();
        if self.mode == Mode::LastSidWins {
            conns.clear();
        }
        conns.insert(conn_no, handle);
        self.owners.insert(conn_no, username.to_owned());
        Registered {
            conn_no,
            came_online,
        }
    }

    /// Forgets a closed connection (P2, P3). `None` when it was never registered
    /// or is already forgotten.
    pub fn unregister(&mut self, conn_no: ConnNo) -> Option<Unregistered> {
        if self.mode == Mode::Stale {
            return None;
        }
        let username = self.owners.remove(&conn_no)?;
        let conns = self.users.get_mut(&username)?;
        let removed = match self.mode {
            Mode::LastSidWins => {
                // The seed's `del online_users[username]`: whichever sid left.
                let had_any = !conns.is_empty();
                conns.clear();
                had_any
            }
            _ => conns.remove(&conn_no).is_some(),
        };
        if !removed {
            return None;
        }
        let went_offline = conns.is_empty();
        if went_offline {
            self.users.remove(&username);
        }
        Some(Unregistered {
            username,
            went_offline,
        })
    }

    /// Whether `username` has a registered connection here.
    pub fn is_online(&self, username: &str) -> bool {
        self.users.get(username).is_some_and(|c| !c.is_empty())
    }

    /// The online users, sorted, without duplicates (P4).
    pub fn online_users(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// The connections of `username`, oldest first.
    pub fn connections_of(&self, username: &str) -> Vec<(ConnNo, &T)> {
        self.users
            .get(username)
            .map(|conns| conns.iter().map(|(no, t)| (*no, t)).collect())
            .unwrap_or_default()
    }

    /// Every registered connection of the users other than `username`, sorted by
    /// username then connection number (P1, P3 fan-out).
    pub fn connections_except(&self, username: &str) -> Vec<&T> {
        self.users
            .iter()
            .filter(|(user, _)| user.as_str() != username)
            .flat_map(|(_, conns)| conns.values())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_connection_announces_second_tab_does_not_p1() {
        let mut p = Presence::new(Mode::PerConnection);
        assert!(p.register("a", ()).came_online);
        assert!(!p.register("a", ()).came_online);
        assert_eq!(p.online_users(), vec!["a"]);
    }

    #[test]
    fn early_reconnect_survives_old_connection_timeout_p2() {
        let mut p = Presence::new(Mode::PerConnection);
        let old = p.register("a", ()).conn_no;
        let _new = p.register("a", ()).conn_no;
        let gone = p.unregister(old).unwrap();
        assert!(!gone.went_offline);
        assert!(p.is_online("a"));
    }

    #[test]
    fn last_connection_closing_takes_user_offline_p3() {
        let mut p = Presence::new(Mode::PerConnection);
        let c = p.register("a", ()).conn_no;
        assert_eq!(
            p.unregister(c),
            Some(Unregistered {
                username: "a".into(),
                went_offline: true
            })
        );
        assert!(!p.is_online("a"));
        assert_eq!(p.unregister(c), None, "a second close changes nothing");
    }

    #[test]
    fn online_list_is_sorted_and_fan_out_ordered_p4() {
        let mut p = Presence::new(Mode::PerConnection);
        p.register("zed", 1);
        p.register("amy", 2);
        p.register("zed", 3);
        p.register("bob", 4);
        assert_eq!(p.online_users(), vec!["amy", "bob", "zed"]);
        assert_eq!(p.connections_except("bob"), vec![&2, &1, &3]);
    }

    #[test]
    fn last_sid_wins_bug_drops_user_on_old_connection_close() {
        let mut p = Presence::new(Mode::LastSidWins);
        let old = p.register("a", ()).conn_no;
        p.register("a", ());
        assert!(p.unregister(old).unwrap().went_offline);
        assert!(!p.is_online("a"));
    }

    #[test]
    fn stale_presence_bug_never_removes() {
        let mut p = Presence::new(Mode::Stale);
        let c = p.register("a", ()).conn_no;
        assert_eq!(p.unregister(c), None);
        assert!(p.is_online("a"));
    }
}

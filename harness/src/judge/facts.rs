//! Indexes over one trace that every checker shares: connections, sends and
//! their fates, receipts by user, the heal phase.

use std::collections::{BTreeMap, HashMap};

use super::{POLL_SLACK_MS, TICK_SLACK_MS};
use crate::contract::Delivery;
use crate::faults::{FaultKind, FaultPlan};
use crate::scenario::{OpenMode, Scenario};
use crate::trace::{Event, Trace, What};
use crate::world::host_of;

/// What one connection went through (client view).
#[derive(Clone, Debug, Default)]
pub struct Conn {
    /// `user#n`.
    pub label: String,
    /// The user's name.
    pub user: String,
    /// When it started opening.
    pub attempt_at: Option<u64>,
    /// When CONNECT was accepted.
    pub connected_at: Option<u64>,
    /// When it ended.
    pub disconnected_at: Option<u64>,
    /// Opened websocket first.
    pub websocket_first: bool,
    /// When a polling-first session's upgrade completed.
    pub upgraded_at: Option<u64>,
}

impl Conn {
    /// On long-polling at `at_ms`: opened that way and not upgraded yet.
    pub fn is_polling_at(&self, at_ms: u64) -> bool {
        !self.websocket_first && self.upgraded_at.is_none_or(|u| u > at_ms)
    }

    /// Open (CONNECT accepted, not yet ended) at `at_ms`.
    pub fn is_open_at(&self, at_ms: u64) -> bool {
        self.connected_at.is_some_and(|c| c <= at_ms)
            && self.disconnected_at.is_none_or(|d| d > at_ms)
    }
}

/// One `send_message` and its fate.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The `Sent` event.
    pub event: Event,
    /// Recipient.
    pub to: String,
    /// The sender's connection label.
    pub conn: String,
    /// The ack event, when accepted.
    pub accepted: Option<(Event, u64, Delivery)>,
    /// socket.io-client's retries ([`What::Resent`]): when each left.
    pub resent: Vec<u64>,
    /// Acks of a retry that carried another id: the server took the retry
    /// for a new message (M1 allows it), which must arrive too.
    pub also_accepted: Vec<(Event, u64, Delivery)>,
}

/// Indexes over a trace that the checkers share.
pub struct Facts<'a> {
    /// The trace.
    pub trace: &'a Trace,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Connections by label.
    pub conns: BTreeMap<String, Conn>,
    /// Sends by client id.
    pub sent: BTreeMap<String, Sent>,
    /// Message id → client id of its accepting ack.
    pub by_id: BTreeMap<u64, String>,
    /// Received events by user.
    pub received: BTreeMap<String, Vec<&'a Event>>,
    /// The start of the heal phase, if the run had one.
    pub heal_at: Option<u64>,
    /// The time of the last event.
    pub end_ms: u64,
    /// When each user's device slept ([`What::Frozen`]): `[from, to)` in ms.
    pub frozen: BTreeMap<String, Vec<(u64, u64)>>,
    /// The server's restarts as they happened (the world's, or on real TCP
    /// `--restart-cmd`'s, fault events): down at, up again at (the end if
    /// never), and whether the store was kept.
    pub restarts: Vec<(u64, u64, bool)>,
    /// Each scenario user's index, by name.
    /// Looked up only, never iterated: no order of it reaches a verdict.
    users: HashMap<&'a str, usize>,
    /// Each user's successful polls ([`What::Polled`]), in trace order.
    polls: BTreeMap<String, Vec<&'a Event>>,
}

/// The user part of `user#n`.
pub fn user_of(actor: &str) -> &str {
    actor.split('#').next().unwrap_or(actor)
}

impl<'a> Facts<'a> {
    /// Indexes `trace`.
    pub fn new(trace: &'a Trace, scenario: &'a Scenario) -> Self {
        let mut facts = Facts {
            trace,
            scenario,
            conns: BTreeMap::new(),
            sent: BTreeMap::new(),
            by_id: BTreeMap::new(),
            received: BTreeMap::new(),
            heal_at: None,
            end_ms: trace.events.last().map_or(0, |e| e.at_ms),
            frozen: BTreeMap::new(),
            restarts: Vec::new(),
            users: scenario
                .users
                .iter()
                .enumerate()
                .rev() // the first of a repeated name wins, as `position` did
                .map(|(i, u)| (u.name.as_str(), i))
                .collect(),
            polls: BTreeMap::new(),
        };
        for event in &trace.events {
            fn conn<'m>(conns: &'m mut BTreeMap<String, Conn>, actor: &str) -> &'m mut Conn {
                conns.entry(actor.to_owned()).or_insert_with(|| Conn {
                    label: actor.to_owned(),
                    user: user_of(actor).to_owned(),
                    ..Conn::default()
                })
            }
            match &event.what {
                What::ConnectAttempt { open, .. } => {
                    let conn = conn(&mut facts.conns, &event.actor);
                    conn.attempt_at = Some(event.at_ms);
                    conn.websocket_first = *open == OpenMode::WebsocketFirst;
                }
                What::Upgraded => {
                    conn(&mut facts.conns, &event.actor).upgraded_at = Some(event.at_ms)
                }
                What::Connected => {
                    conn(&mut facts.conns, &event.actor).connected_at = Some(event.at_ms)
                }
                What::Disconnected { .. } => {
                    conn(&mut facts.conns, &event.actor).disconnected_at = Some(event.at_ms)
                }
                What::Sent { client_id, to } => {
                    facts.sent.insert(
                        client_id.clone(),
                        Sent {
                            event: event.clone(),
                            to: to.clone(),
                            conn: event.actor.clone(),
                            accepted: None,
                            resent: Vec::new(),
                            also_accepted: Vec::new(),
                        },
                    );
                }
                What::Resent { client_id, .. } => {
                    if let Some(sent) = facts.sent.get_mut(client_id) {
                        sent.resent.push(event.at_ms);
                    }
                }
                What::Accepted {
                    client_id,
                    id,
                    delivery,
                } => {
                    if let Some(sent) = facts.sent.get_mut(client_id) {
                        let ack = (event.clone(), *id, *delivery);
                        match &sent.accepted {
                            None => sent.accepted = Some(ack),
                            Some((_, first, _)) if first == id => {}
                            Some(_) if sent.also_accepted.iter().any(|a| a.1 == *id) => {}
                            Some(_) => sent.also_accepted.push(ack),
                        }
                    }
                    facts.by_id.entry(*id).or_insert_with(|| client_id.clone());
                }
                What::Received { .. } => {
                    facts
                        .received
                        .entry(user_of(&event.actor).to_owned())
                        .or_default()
                        .push(event);
                }
                What::HealPhase => facts.heal_at = Some(event.at_ms),
                What::Polled { .. } => facts
                    .polls
                    .entry(event.actor.clone())
                    .or_default()
                    .push(event),
                What::FaultStart {
                    fault: FaultKind::Restart { keeps_store },
                    ..
                } => facts.restarts.push((event.at_ms, u64::MAX, *keeps_store)),
                What::FaultEnd {
                    fault: FaultKind::Restart { .. },
                    ..
                } => {
                    if let Some(open) = facts.restarts.iter_mut().rfind(|r| r.1 == u64::MAX) {
                        open.1 = event.at_ms;
                    }
                }
                What::Frozen { ms } => facts
                    .frozen
                    .entry(user_of(&event.actor).to_owned())
                    .or_default()
                    .push((event.at_ms, event.at_ms.saturating_add(*ms))),
                _ => {}
            }
        }
        for restart in &mut facts.restarts {
            restart.1 = restart.1.min(facts.end_ms);
        }
        facts
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.scenario.faults
    }

    /// The scenario's user by name.
    pub fn user_index(&self, name: &str) -> Option<usize> {
        self.users.get(name).copied()
    }

    /// `user`'s successful polls, in trace order.
    pub(crate) fn polls_of(&self, user: &str) -> impl Iterator<Item = &'a Event> + '_ {
        self.polls.get(user).into_iter().flatten().copied()
    }

    /// Whether a contract-keeping server may register `name` at all.
    pub fn can_register(&self, name: &str) -> bool {
        self.user_index(name)
            .is_some_and(|i| self.scenario.users[i].can_register())
    }

    pub(crate) fn host(&self, name: &str) -> Option<String> {
        self.user_index(name)
            .map(|i| host_of(i, self.scenario.users.len()))
    }

    /// The link of `name`'s host stayed clean over `[from, to]`, and `name`'s
    /// device was awake throughout: a sleeping client reads nothing, so what
    /// the contract promises on a healthy network is not owed to it.
    pub(crate) fn is_link_clean(&self, name: &str, from_ms: u64, to_ms: u64) -> bool {
        let asleep = self
            .frozen
            .get(name)
            .is_some_and(|spans| spans.iter().any(|&(a, b)| a <= to_ms && from_ms < b));
        let restarted = self
            .restarts
            .iter()
            .any(|&(down, up, _)| down <= to_ms && up >= from_ms);
        !asleep
            && !restarted
            && self
                .host(name)
                .is_some_and(|h| !self.plan().touches(&h, from_ms, to_ms))
    }

    /// The server restart, if any, that may have taken from `to` a message
    /// sent at `sent_at_ms` and acked `delivery`, before `until_ms`:
    ///
    /// - one going down after the send (or before the server was back up)
    ///   that lost the store; or, for a push,
    ///   any — an unacknowledged push lives in the process's memory until
    ///   its ack timeout stores it (M5), and a process that goes down first
    ///   takes it along;
    /// - one that lost the store before the send, while `to` still held a
    ///   cursor from before it: the fresh mailbox numbers from 1 again (L1),
    ///   and once its entries reach that cursor the cursor is no longer above
    ///   the latest seq (no 409, L4) and the entries at or below it hide.
    ///   Until `to`'s first successful poll answered by the new process
    ///   (one the old process answered as it went down does not count: hunt
    ///   seed 133 at 50 users), what was stored may be among them; from
    ///   that poll on, the cursor is corrected (409, then from 0) or
    ///   overtaken.
    ///
    /// What such a restart took is not owed; what a kept store held is.
    pub(crate) fn restart_took(
        &self,
        to: &str,
        sent_at_ms: u64,
        delivery: Delivery,
        until_ms: u64,
    ) -> Option<u64> {
        self.restarts
            .iter()
            .copied()
            .find(|&(down, up, keeps_store)| {
                // Sent before the server was surely back: on real TCP the
                // command's exact moment of going down is not known.
                let took_along = sent_at_ms < up
                    && down <= until_ms
                    && (!keeps_store || delivery == Delivery::Websocket);
                // The first poll the new process answered: one answered in
                // flight as the old one went down still moved the cursor.
                let hid_below_a_cursor = !keeps_store
                    && down <= sent_at_ms
                    && self
                        .first_poll_after(to, up)
                        .is_none_or(|(at, after)| after > 0 && sent_at_ms < at);
                took_along || hid_below_a_cursor
            })
            .map(|(down, _, _)| down)
    }

    /// `user`'s first successful poll after `at_ms`: when, and its cursor.
    pub(crate) fn first_poll_after(&self, user: &str, at_ms: u64) -> Option<(u64, u64)> {
        self.polls_of(user).find_map(|e| match e.what {
            What::Polled { after, .. } if e.at_ms > at_ms => Some((e.at_ms, after)),
            _ => None,
        })
    }

    /// The longest a link crossing may take on a clean link: the plan's
    /// highest latency, rounded up to a step.
    pub(crate) fn crossing_ms(&self) -> u64 {
        self.plan().latency_ms_max.saturating_add(TICK_SLACK_MS)
    }

    /// `user`'s successful polls whose request surely left after `at_ms`.
    /// A poll is recorded when its answer arrives, and a fault can hold an
    /// answer the server gave long before (hunt seed 1172, 3 users, 20 s:
    /// answered at 3.1 s, delivered at 7.4 s). So: answered at least a
    /// window after `at_ms`, over a link clean for that window before, where
    /// the window holds a clean round trip with a connection opened first
    /// (four crossings at the plan's highest latency) and never less than
    /// [`POLL_SLACK_MS`].
    pub(crate) fn polls_asked_after<'s>(
        &'s self,
        user: &'s str,
        at_ms: u64,
    ) -> impl Iterator<Item = &'a Event> + 's {
        let window = POLL_SLACK_MS.max(self.crossing_ms().saturating_mul(4));
        self.polls_of(user).filter(move |e| {
            e.at_ms >= at_ms.saturating_add(window)
                && self.is_link_clean(user, e.at_ms - window, e.at_ms)
        })
    }

    pub(crate) fn conns_of<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Conn> + 's {
        self.conns.values().filter(move |c| c.user == name)
    }

    /// When `name` first received message `id`, if ever.
    pub fn first_receipt(&self, name: &str, id: u64) -> Option<&'a Event> {
        self.received
            .get(name)?
            .iter()
            .copied()
            .find(|e| matches!(e.what, What::Received { id: got, .. } if got == id))
    }

    pub(crate) fn is_online_at(&self, name: &str, at_ms: u64) -> bool {
        self.can_register(name) && self.conns_of(name).any(|c| c.is_open_at(at_ms))
    }

    pub(crate) fn connected_event(&self, label: &str) -> Option<Event> {
        self.trace
            .events
            .iter()
            .find(|e| e.actor == label && e.what == What::Connected)
            .cloned()
    }
}

//! Who may do what: unregistered connections stay unregistered (I3), `from`
//! is the sender (M2), bad sends are refused (M2, B1).

use std::collections::BTreeMap;

use crate::spec::Clause;
use crate::token::TokenPolicy;
use crate::trace::{Via, What};

use super::{user_of, violation, Facts, Sent, Violation};

/// I3: connections without a valid username never see presence or pushes, never
/// get a send accepted, and their names never show as online. In a v2 world the
/// same facts break A1 (an invalid token was believed) or A2 (no token, or the
/// header taken for identity).
pub fn unregistered_stay_unregistered(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    let v2 = facts.scenario.is_v2();
    let clause_for = |name: &str| {
        let token = facts
            .user_index(name)
            .and_then(|i| facts.scenario.users[i].token);
        match token {
            Some(
                TokenPolicy::Expired
                | TokenPolicy::Forged
                | TokenPolicy::AlgNone
                | TokenPolicy::Tampered,
            ) => Clause::A1,
            _ if v2 => Clause::A2,
            _ => Clause::I3,
        }
    };
    let lacked = if v2 { "valid token" } else { "valid username" };
    for event in &facts.trace.events {
        let user = user_of(&event.actor);
        let is_conn = event.actor.contains('#');
        if is_conn && facts.user_index(user).is_some() && !facts.can_register(user) {
            let what = match &event.what {
                What::Connected => None, // a server MAY keep it connected, unregistered
                What::Presence { .. } => Some("received a presence event"),
                What::Received {
                    via: Via::Websocket | Via::PollingTransport,
                    ..
                } => Some("received a pushed message"),
                What::Accepted { .. } => Some("had a send_message accepted"),
                _ => None,
            };
            if let Some(what) = what {
                found.push(
                    violation(
                        clause_for(user),
                        event.at_ms,
                        format!("{}, which presented no {lacked}, {what}", event.actor),
                        vec![event.clone()],
                    )
                    .user(user)
                    .conn(&event.actor),
                );
            }
        }
        // In an open world other clients may be online under other names.
        let judged = |name: &str| {
            !facts.can_register(name)
                && (!facts.scenario.open_world || facts.user_index(name).is_some())
        };
        let named = match &event.what {
            What::OnlineProbe { users } => users.iter().filter(|u| judged(u)).cloned().collect(),
            What::Presence { username, .. } if judged(username) => vec![username.clone()],
            _ => Vec::new(),
        };
        for name in named {
            found.push(violation(
                clause_for(&name),
                event.at_ms,
                format!("'{name}' was reported online, but no connection of that name presented a {lacked}"),
                vec![event.clone()],
            )
            .user(&name));
        }
    }
    found
}

/// M2: every received message names its real sender and recipient (A5 in a
/// v2 world), and no two sends share an id.
pub fn from_is_the_sender(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut ids: BTreeMap<u64, &Sent> = BTreeMap::new();
    for sent in facts.sent.values() {
        let Some((ack, id, _)) = &sent.accepted else {
            continue;
        };
        if let Some(other) = ids.insert(*id, sent) {
            found.push(
                violation(
                    Clause::M2,
                    ack.at_ms,
                    format!("two different messages were acked with the same id {id}"),
                    vec![other.event.clone(), sent.event.clone(), ack.clone()],
                )
                .message_id(*id),
            );
        }
    }
    for events in facts.received.values() {
        for event in events {
            let What::Received { id, from, to, .. } = &event.what else {
                continue;
            };
            let Some(sent) = ids.get(id) else { continue };
            let sender = user_of(&sent.conn);
            if from != sender || *to != sent.to {
                // In v2 the sender is the token's user: A5 is M2 with v2 identity.
                let clause = if facts.scenario.is_v2() {
                    Clause::A5
                } else {
                    Clause::M2
                };
                found.push(
                    violation(
                        clause,
                        event.at_ms,
                        format!(
                            "message {id} arrived as {from} → {to}, but {sender} sent it to {}",
                            sent.to
                        ),
                        vec![sent.event.clone(), (*event).clone()],
                    )
                    .message_id(*id),
                );
            }
        }
    }
    found
}

/// M2, B1: a send to an invalid recipient name, or a malformed `send_message`,
/// is answered with `{"error"}` and accepts nothing; a malformed one is answered
/// at all (a connection that ends first is not judged: maxPayload MAY close it).
pub fn bad_sends_are_refused(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for sent in facts.sent.values() {
        if let Some((ack, id, _)) = &sent.accepted {
            if !crate::contract::is_valid_username(&sent.to) {
                found.push(
                    violation(
                        Clause::M2,
                        ack.at_ms,
                        format!(
                            "a message to {:?}, not a valid username, was accepted as {id}",
                            sent.to
                        ),
                        vec![sent.event.clone(), ack.clone()],
                    )
                    .message_id(*id),
                );
            }
        }
    }
    for event in &facts.trace.events {
        let What::SentRaw { client_id } = &event.what else {
            continue;
        };
        let answer = facts.trace.events.iter().find(|e| {
            matches!(&e.what,
                What::Accepted { client_id: c, .. } | What::AckLost { client_id: c, .. }
                if c == client_id)
        });
        let message = match answer.map(|a| &a.what) {
            Some(What::Accepted { id, .. }) => {
                format!("a malformed send_message ({client_id}) was accepted as message {id}")
            }
            Some(What::AckLost { reason, .. }) if reason == "ack timeout" => {
                format!(
                    "a malformed send_message ({client_id}) got no answer: no ack {{\"error\"}}"
                )
            }
            // B1: only a frame above maxPayload may close the sender's own
            // connection, and the generator's malformed payloads are small.
            // A connection the server (or the transport) ended right after,
            // on a link no fault touched, is the server's answer to the
            // packet: no {error} ack, just a closed connection.
            Some(What::AckLost { reason, .. }) if reason == "connection ended" => {
                let user = user_of(&event.actor);
                let ended_by_server = facts.trace.events.iter().any(|e| {
                    e.actor == event.actor
                        && e.at_ms >= event.at_ms
                        && matches!(&e.what, What::Disconnected { reason }
                            if reason != "client close" && reason != "client crashed" && !reason.starts_with("upgrade failed"))
                });
                let answer_at = answer.map_or(event.at_ms, |a| a.at_ms);
                if !ended_by_server
                    || !facts.is_link_clean(user, event.at_ms.saturating_sub(1_000), answer_at)
                {
                    continue;
                }
                format!(
                    "a malformed send_message ({client_id}) closed the sender's connection instead of an ack {{\"error\"}}"
                )
            }
            _ => continue,
        };
        let answer = answer.expect("matched above");
        found.push(violation(
            Clause::B1,
            answer.at_ms,
            message,
            vec![event.clone(), answer.clone()],
        ));
    }
    found
}

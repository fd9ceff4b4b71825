//! Where messages go: pushes to online recipients (M3), mail to offline ones
//! (M4, L1), and nothing accepted lost once healed (M5, L2).

use crate::contract::Delivery;
use crate::spec::Clause;
use crate::trace::{Via, What};

use super::{user_of, violation, Facts, Violation, PUSH_BOUND_MS};

/// M3: a message to a recipient connected over a clean, fast link is acked
/// `websocket` and pushed within 100 ms.
pub fn online_recipients_get_pushes(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    if !facts.plan().is_latency_healthy() {
        return found;
    }
    for sent in facts.sent.values() {
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        // Sent again: the first attempt's ack never came in time, so the
        // way was not healthy (and which attempt was accepted is unknown).
        if !sent.resent.is_empty() {
            continue;
        }
        let t = sent.event.at_ms;
        let sender = user_of(&sent.conn);
        let Some(sender_conn) = facts.conns.get(&sent.conn) else {
            continue;
        };
        let recipient_polls = {
            let mut open = facts
                .conns_of(&sent.to)
                .filter(|c| c.is_open_at(t))
                .peekable();
            open.peek().is_some() && open.all(|c| c.is_polling_at(t))
        };
        let bound = facts.plan().push_bound_ms.unwrap_or(PUSH_BOUND_MS)
            + polling_allowance_ms(facts, sender_conn.is_polling_at(t), recipient_polls);
        let deadline = t + bound;
        let Some(sender_since) = sender_conn.connected_at else {
            continue;
        };
        if !facts.is_link_clean(sender, sender_since, deadline) || !facts.can_register(&sent.to) {
            continue;
        }
        let healthy_recipient = facts.conns_of(&sent.to).find(|c| {
            c.connected_at
                .is_some_and(|since| since < t && facts.is_link_clean(&sent.to, since, deadline))
                && c.disconnected_at.is_none_or(|d| d > deadline)
        });
        let Some(recipient) = healthy_recipient else {
            continue;
        };
        let mut evidence = vec![sent.event.clone(), ack.clone()];
        evidence.extend(facts.connected_event(&recipient.label));
        if *delivery != Delivery::Websocket {
            found.push(violation(
                Clause::M3,
                ack.at_ms,
                format!("message {id} to {}, online on a healthy link, was acked {delivery} instead of websocket", sent.to),
                evidence,
            )
            .user(&sent.to)
            .conn(&recipient.label)
            .message_id(*id));
            continue;
        }
        let pushed = facts.received.get(&sent.to).and_then(|events| {
            events.iter().find(|e| matches!(e.what, What::Received { id: got, via: Via::Websocket | Via::PollingTransport, .. } if got == *id))
        });
        match pushed {
            Some(push) if push.at_ms <= deadline => {}
            other => {
                evidence.extend(other.map(|e| (*e).clone()));
                found.push(
                    violation(
                        Clause::M3,
                        deadline,
                        format!(
                            "message {id} to {} was not pushed within {bound} ms of the send",
                            sent.to
                        ),
                        evidence,
                    )
                    .user(&sent.to)
                    .conn(&recipient.label)
                    .message_id(*id),
                );
            }
        }
    }
    found
}

/// What long-polling adds to M3's bound on the way it must take, in link
/// crossings at the plan's highest latency (each rounded up to a tick): a
/// sender on polling may open a connection before its POST (two crossings:
/// while opening, and after a request failed, the client has none kept); a
/// recipient on polling whose poll was just
/// answered (with the ack or push before this one, say) has the push wait for
/// the next poll: that answer's way back, a new connection, the request and
/// the push's way back (four crossings more than a websocket's one). The
/// contract's 100 ms is a websocket's; for a polling session it bounds the
/// server's part.
fn polling_allowance_ms(facts: &Facts<'_>, sender_polls: bool, recipient_polls: bool) -> u64 {
    let crossings = 2 * u64::from(sender_polls) + 4 * u64::from(recipient_polls);
    facts.crossing_ms().saturating_mul(crossings)
}

/// M4, L1: a message to a recipient who cannot be online is acked `polling`,
/// and the recipient's next successful poll returns it.
pub fn offline_recipients_get_mail(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for sent in facts.sent.values() {
        let Some((ack, id, delivery)) = &sent.accepted else {
            continue;
        };
        let t = sent.event.at_ms;
        let never_tried = facts
            .conns_of(&sent.to)
            .all(|c| c.attempt_at.is_none_or(|a| a > ack.at_ms + 1_000));
        if facts.can_register(&sent.to) && !never_tried {
            continue;
        }
        if *delivery != Delivery::Polling {
            found.push(violation(
                Clause::M4,
                ack.at_ms,
                format!("message {id} to {}, who was not online, was acked {delivery} instead of polling", sent.to),
                vec![sent.event.clone(), ack.clone()],
            )
            .user(&sent.to)
            .message_id(*id));
            continue;
        }
        if facts.user_index(&sent.to).is_none() || facts.is_online_at(&sent.to, t) {
            continue;
        }
        // The first poll surely asked after the store (which came before
        // the ack reached the sender).
        let next_poll = facts.polls_asked_after(&sent.to, ack.at_ms).next();
        if let Some(poll) = next_poll {
            if facts
                .restart_took(&sent.to, t, *delivery, poll.at_ms)
                .is_some()
            {
                continue; // the server's fresh store no longer had it
            }
            let got = facts
                .first_receipt(&sent.to, *id)
                .is_some_and(|r| r.at_ms <= poll.at_ms);
            if !got {
                found.push(violation(
                    Clause::L1,
                    poll.at_ms,
                    format!("message {id} was acked polling but {}'s next successful poll did not return it", sent.to),
                    vec![sent.event.clone(), ack.clone(), poll.clone()],
                )
                .user(&sent.to)
                .message_id(*id));
            }
        }
    }
    found
}

/// M5, L2 (liveness): once healed, every accepted message to a user of the
/// scenario has reached that user, by push or by poll.
pub fn nothing_accepted_is_lost(facts: &Facts<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    if facts.heal_at.is_none() {
        return found;
    }
    let accepted = facts.sent.values().flat_map(|sent| {
        sent.accepted
            .iter()
            .chain(&sent.also_accepted)
            .map(move |ack| (sent, ack))
    });
    for (sent, (ack, id, delivery)) in accepted {
        if facts.user_index(&sent.to).is_none() || facts.first_receipt(&sent.to, *id).is_some() {
            continue;
        }
        if facts
            .restart_took(&sent.to, sent.event.at_ms, *delivery, facts.end_ms)
            .is_some()
        {
            continue; // a restart took it along, and nothing promised to keep it
        }
        let mut clause = match delivery {
            Delivery::Websocket => Clause::M5,
            Delivery::Polling => Clause::L2,
        };
        let mut evidence = vec![sent.event.clone(), ack.clone()];
        let mut why = String::new();
        if let Some(poll) = stale_cursor_answered(facts, &sent.to, ack.at_ms) {
            // After a restart that lost the store every cursor the client
            // holds is above the fresh mailbox's seqs: a 200 there hides
            // what arrives from then on (L4 says 409).
            clause = Clause::L4;
            why = format!(
                "; after the server restarted with a fresh store, {} polled with its old cursor and got 200 instead of 409 (L4), so new mail hid below it",
                sent.to
            );
            evidence.push(poll.clone());
        }
        found.push(
            violation(
                clause,
                facts.end_ms,
                format!(
                    "message {id} to {} was accepted ({delivery}) and never arrived, by push or poll{why}",
                    sent.to
                ),
                evidence,
            )
            .user(&sent.to)
            .message_id(*id),
        );
    }
    found
}

/// The recipient's first successful poll after a restart that lost the
/// store, if it went with a cursor above 0 (from before the restart), got
/// 200 with nothing, and came before `by_ms` or after: the stale cursor L4
/// is about.
fn stale_cursor_answered<'a>(
    facts: &Facts<'a>,
    user: &str,
    by_ms: u64,
) -> Option<&'a crate::trace::Event> {
    let &(down, _, _) = facts
        .restarts
        .iter()
        .rfind(|&&(down, _, keeps_store)| !keeps_store && down <= by_ms)?;
    facts.polls_of(user).find(|e| e.at_ms > down).filter(
        |e| matches!(&e.what, What::Polled { after, seqs } if *after > 0 && seqs.is_empty()),
    )
}

//! Text for people, shared by the CLI and the library's reports: scenarios,
//! violations and summaries, in the words users type (`websocket-first`, not
//! `WebsocketFirst`), with every byte that came from a server escaped before it
//! can reach a terminal.

use std::fmt::Write as _;
use std::time::Duration;

use crate::judge::{Summary, Violation};
use crate::scenario::{Action, Scenario};
use crate::trace::render_event;

/// `text` with control characters (ESC, NUL, CR …) escaped, so bytes a server
/// chose cannot move a cursor, clear a screen or forge a report line.
pub fn escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Seconds with milliseconds: `12.345s`.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// What a step does, in words.
pub fn action(action: &Action) -> String {
    match action {
        Action::Open => "open a tab".into(),
        Action::Close => "close the oldest tab".into(),
        Action::Send { to, content } => format!("send {content:?} to {to}"),
        Action::SendRaw { payload } => format!("send malformed {payload}"),
        Action::Poll => "poll the mailbox".into(),
        Action::Crash { down_ms } => format!("crash, restart after {down_ms} ms"),
        Action::Freeze { ms } => format!("the device sleeps for {ms} ms"),
    }
}

/// The scenario's shape on one line.
pub fn shape(scenario: &Scenario) -> String {
    format!(
        "{} users, {} steps, {} faults, active {} + heal {}",
        scenario.users.len(),
        scenario.steps.len(),
        scenario.faults.faults.len(),
        humantime::format_duration(Duration::from_millis(scenario.active_ms)),
        humantime::format_duration(Duration::from_millis(scenario.heal_ms)),
    )
}

/// Users, then the fault plan: what runs before anything runs.
pub fn plan(scenario: &Scenario, out: &mut String) {
    users(scenario, out);
    let plan = &scenario.faults;
    let _ = writeln!(
        out,
        "fault plan: latency {}..{} ms, {} faults",
        plan.latency_ms_min,
        plan.latency_ms_max,
        plan.faults.len()
    );
    faults(scenario, out);
}

fn users(scenario: &Scenario, out: &mut String) {
    for user in &scenario.users {
        let _ = writeln!(
            out,
            "  user {:<12} {} {} header={}{}{}",
            escape(&user.name),
            user.profile,
            user.open,
            user.header,
            if user.background { " background" } else { "" },
            if user.socketio_js { " socketio-js" } else { "" }
        );
    }
}

fn faults(scenario: &Scenario, out: &mut String) {
    for fault in &scenario.faults.faults {
        let _ = writeln!(
            out,
            "  {:>10}  {:<12} {} for {} ms{}",
            secs(fault.at_ms),
            fault.host,
            fault.kind.name(),
            fault.duration_ms,
            match fault.kind {
                crate::faults::FaultKind::Restart { keeps_store: true } => ", store kept",
                crate::faults::FaultKind::Restart { keeps_store: false } => ", store lost",
                _ => "",
            }
        );
    }
}

/// Users, steps and faults: a shrunk scenario in full.
pub fn steps(scenario: &Scenario, out: &mut String) {
    users(scenario, out);
    for step in &scenario.steps {
        let name = scenario
            .users
            .get(step.user)
            .map_or("?", |u| u.name.as_str());
        let _ = writeln!(
            out,
            "  {:>10}  {:<12} {}",
            secs(step.at_ms),
            name,
            escape(&action(&step.action))
        );
    }
    faults(scenario, out);
}

/// `violations: I3×13 M2×4 (server 17)`, or `violations: none`.
pub fn counts(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return "violations: none".into();
    }
    let mut by_clause = std::collections::BTreeMap::new();
    let mut by_blame = std::collections::BTreeMap::new();
    for v in violations {
        *by_clause.entry(v.clause).or_insert(0) += 1;
        if let Some(r) = &v.ruling {
            *by_blame.entry(r.blame).or_insert(0) += 1;
        }
    }
    let counts: Vec<String> = by_clause.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    let blames: Vec<String> = by_blame
        .iter()
        .map(|(b, n)| format!("{} {n}", b.name()))
        .collect();
    if blames.is_empty() {
        format!("violations: {}", counts.join(" "))
    } else {
        format!("violations: {} ({})", counts.join(" "), blames.join(", "))
    }
}

/// One violation: clause, the referee's class, time, message, the clause's
/// statement, the ruling's reason, and the evidence (an `/api/online` list
/// longer than a screen line is cut down to what concerns the subject).
pub fn violation(v: &Violation, out: &mut String) {
    let blame = v
        .ruling
        .as_ref()
        .map_or(String::new(), |r| format!("{} · ", r.blame.name()));
    let _ = writeln!(
        out,
        "  [{}] {blame}{} {} — {}",
        v.clause,
        secs(v.at_ms),
        escape(&v.message),
        v.clause.statement()
    );
    if let Some(r) = &v.ruling {
        let _ = writeln!(
            out,
            "      referee: {} — {}",
            r.blame.name(),
            escape(&r.why)
        );
    }
    for e in &v.evidence {
        let _ = writeln!(
            out,
            "      {}",
            escape(&evidence(e, v.subject.user.as_deref()))
        );
    }
}

/// Names listed before an `/api/online` probe is summarised.
const ONLINE_LIST_MAX: usize = 8;

fn evidence(e: &crate::trace::Event, user: Option<&str>) -> String {
    match (&e.what, user) {
        (crate::trace::What::OnlineProbe { users }, Some(user))
            if users.len() > ONLINE_LIST_MAX =>
        {
            let state = if users.iter().any(|u| u == user) {
                "present in"
            } else {
                "absent from"
            };
            format!(
                "{:>11}  {:<16} {:<18} {user} {state} /api/online ({} users listed)",
                secs(e.at_ms),
                e.actor,
                "online",
                users.len()
            )
        }
        _ => render_event(e),
    }
}

/// The summary line.
pub fn summary(s: &Summary) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    format!(
        "summary: {} sent, {} accepted ({} via websocket, {} via polling), {} refused, {} lost, {} duplicates; push latency p50 {} p99 {}; {} events",
        s.sent, s.accepted, s.acked_websocket, s.acked_polling, s.refused, s.lost, s.duplicates,
        ms(s.push_latency_p50_ms), ms(s.push_latency_p99_ms), s.events
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(escape("a\u{1b}[2Jb\u{0}c\nd"), "a\\u{1b}[2Jb\\u{0}c\nd");
        assert_eq!(escape("plain — ünïcode"), "plain — ünïcode");
    }

    #[test]
    fn seconds_keep_their_milliseconds() {
        assert_eq!(secs(1_460), "1.460s");
        assert_eq!(secs(5), "0.005s");
    }
}

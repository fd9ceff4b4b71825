//! The server's restart on real TCP (`--restart-cmd`): a command the harness
//! runs where a plan has a [`FaultKind::Restart`] — `systemctl restart chat`,
//! `docker restart chat`, a script that kills the process and starts it again
//! — and, with `check --level robust`, the `restart` run: mail stored before,
//! every user reconnecting at once after, a stale cursor, presence after.
//!
//! The command is the user's, so it is held to bounds like a server is: it
//! runs under `sh -c` for at most [`COMMAND_TIMEOUT`] (then it is killed),
//! at most [`STDERR_CAP`] bytes of its stderr are kept for the error, and it
//! must exit 0; then the server must answer `/health` again within the
//! check's patience. Otherwise the check stops (exit 2) naming the command:
//! a restart that did not happen says nothing about the server.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use tokio::time::Instant;

use super::{
    check_client, drive_faults, send, step, CheckError, CheckOptions, Names, Run, Target,
    PROBE_EVERY_MS,
};
use crate::faults::{FaultKind, FaultPlan};
use crate::judge::check_all;
use crate::net::transport::{self, TcpConnector};
use crate::scenario::{Action, HeaderPolicy, OpenMode, Profile, Scenario};
use crate::trace::{Recorder, TraceClock, What};
use crate::world::{play, SERVER_HOST};

/// How long a restart command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a failed command's stderr its error keeps.
pub const STDERR_CAP: usize = 4 * 1024;

/// A command that restarts the server under test, and what it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartCommand {
    /// Run with `sh -c`; it returns once the server process was replaced
    /// (the harness then waits for `/health` itself).
    pub command: String,
    /// Whether the server's store (mailboxes, message ids, retry memory)
    /// survives it, as with Redis behind the server; judged accordingly:
    /// what a kept store held must still arrive.
    pub keeps_store: bool,
}

impl RestartCommand {
    /// The fault it plays.
    pub fn fault(&self) -> FaultKind {
        FaultKind::Restart {
            keeps_store: self.keeps_store,
        }
    }

    /// The options that give it again, quoted for a shell.
    pub fn flags(&self) -> String {
        let mut flags = format!(" --restart-cmd {}", quoted(&self.command));
        if self.keeps_store {
            flags.push_str(" --restart-keeps-store");
        }
        flags
    }

    /// Runs the command, bounded; `Err` says why it is not a restart.
    pub async fn run(&self) -> Result<(), String> {
        run_shell(&self.command, &[]).await
    }
}

/// `command` quoted for a shell, for the lines that rerun a command.
pub(crate) fn quoted(command: &str) -> String {
    shlex::try_quote(command).map_or_else(
        |_| "'<a command with a NUL byte>'".into(),
        |q| q.into_owned(),
    )
}

/// Runs `command` with `sh -c`, `args` as its `$1`, `$2` …, bounded by
/// [`COMMAND_TIMEOUT`]; `Err` says how it failed, with the start of its stderr.
pub(crate) async fn run_shell(command: &str, args: &[&str]) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .arg("harness")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `sh -c`: {e}"))?;
    let mut stderr = child.stderr.take();
    let outcome = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let mut kept = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            // Read to the end (a full pipe would block the command), keep
            // the first STDERR_CAP bytes.
            let mut chunk = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_CAP.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&chunk[..room]);
            }
        }
        (child.wait().await, kept)
    })
    .await;
    match outcome {
        Err(_) => Err(format!(
            "still running after {} s: killed",
            COMMAND_TIMEOUT.as_secs()
        )),
        Ok((Err(e), _)) => Err(format!("cannot wait for it: {e}")),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), stderr)) => {
            let said = String::from_utf8_lossy(&stderr);
            let said = said.trim();
            Err(if said.is_empty() {
                format!("it exited with {status}")
            } else {
                format!("it exited with {status}: {said}")
            })
        }
    }
}

impl RestartCommand {
    /// Restarts the server as a fault: recorded when the command starts and
    /// once `/health` answers again (the server is up), on `recorder`.
    pub(crate) async fn restart(
        self,
        server: TcpConnector,
        recorder: Recorder,
        patience: Duration,
    ) -> Result<(), String> {
        let fault = self.fault();
        let host = SERVER_HOST.to_owned();
        recorder.record(
            "world",
            What::FaultStart {
                host: host.clone(),
                fault,
            },
        );
        self.run()
            .await
            .map_err(|why| format!("the restart command `{}` failed: {why}", self.command))?;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let answer = tokio::time::timeout(
                Duration::from_secs(2),
                transport::request(&server, http::Method::GET, "/health", &[], None),
            )
            .await;
            if matches!(answer, Ok(Ok(_))) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "after the restart command `{}` the server did not answer /health within {} s",
                    self.command,
                    patience.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        recorder.record("world", What::FaultEnd { host, fault });
        Ok(())
    }
}

/// Whether `plan` restarts the server (and so needs a restart command on real
/// TCP).
pub fn restarts(plan: &FaultPlan) -> bool {
    plan.faults
        .iter()
        .any(|f| matches!(f.kind, FaultKind::Restart { .. }))
}

/// The plan with every restart keeping the store or not as `command` says:
/// on real TCP the server decides that, not the draw.
pub fn as_declared(plan: &mut FaultPlan, command: &RestartCommand) {
    for fault in &mut plan.faults {
        if let FaultKind::Restart { keeps_store } = &mut fault.kind {
            *keeps_store = command.keeps_store;
        }
    }
}

/// How long after the restart begins the scenario waits before acting again:
/// the command's time to bring the server back, 15 s (scaled).
pub fn grace_ms(options: &CheckOptions) -> u64 {
    options.scaled(15_000)
}

/// The `restart` run's scenario: sa and sc (polling-first) and sd (a
/// polling-only browser) online; sb offline, mail waiting for him before the
/// restart, one poll (his cursor moves); the restart at 3 s; after it sb polls
/// with his old cursor (a fresh store must answer 409, L4), sa writes to sb
/// (mail) and to sc (a push to a reconnected user), sd leaves (presence after
/// the storm).
pub(crate) fn scenario(
    names: &Names,
    options: &CheckOptions,
    command: &RestartCommand,
) -> Scenario {
    let user = |base: &str, open: OpenMode, profile: Profile| {
        super::user(names.user(base), open, HeaderPolicy::Valid, profile)
    };
    let users = vec![
        user("sa", OpenMode::WebsocketFirst, Profile::Node),
        user("sb", OpenMode::WebsocketFirst, Profile::Node),
        user("sc", OpenMode::PollingFirst, Profile::Node),
        user("sd", OpenMode::PollingOnly, Profile::Browser),
    ];
    let (sb, sc) = (users[1].name.clone(), users[2].name.clone());
    let restart_at = 3_000;
    let back = restart_at + grace_ms(options);
    let mut steps = vec![
        step(0, 0, Action::Open),
        step(0, 2, Action::Open),
        step(0, 3, Action::Open),
        step(
            800,
            0,
            send(&sb, "to sb, stored and read before the restart"),
        ),
        step(1_600, 1, Action::Poll),
        step(2_200, 0, send(&sb, "to sb, stored before the restart")),
        step(back, 1, Action::Poll),
        step(back + 500, 0, send(&sb, "to sb, after the restart")),
        step(back + 500, 0, send(&sc, "to sc, reconnected")),
        step(back + 1_000, 1, Action::Poll),
        step(back + 1_500, 3, Action::Close),
    ];
    steps.sort_by_key(|s| s.at_ms);
    let active_ms = back + 3_000;
    super::for_contract(
        options,
        Scenario {
            seed: options.seed,
            users,
            steps,
            faults: FaultPlan {
                latency_ms_min: 0,
                latency_ms_max: 0,
                faults: vec![crate::faults::Fault {
                    at_ms: restart_at,
                    duration_ms: 1,
                    host: SERVER_HOST.into(),
                    kind: command.fault(),
                }],
                push_bound_ms: None,
            },
            active_ms,
            heal_ms: options.scaled(8_000) + crate::world::DRAIN_MS,
            open_world: true,
        },
    )
}

/// `restart` (`--level robust` with `--restart-cmd`): the server restarted
/// mid-scenario by the user's command, mail on both sides of it, every user
/// reconnecting at once, a stale cursor, presence after
/// ([`restart::scenario`]); judged by the same checkers, what a store the
/// command does not keep lost exempted.
pub(super) async fn restart_run(
    target: &Target,
    connector: &TcpConnector,
    names: &Names,
    options: &CheckOptions,
    command: &RestartCommand,
) -> Result<Run, CheckError> {
    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let scenario = scenario(names, options, command);
    let connectors = vec![connector.clone(); scenario.users.len()];
    let patience = Duration::from_millis(grace_ms(options));
    let client = check_client(options);
    let (_, restarted) = tokio::join!(
        play(
            &scenario,
            connectors,
            connector.clone(),
            &recorder,
            &client,
            PROBE_EVERY_MS
        ),
        drive_faults(
            &scenario,
            &[],
            &recorder,
            Some((command, connector, patience))
        )
    );
    restarted.map_err(|reason| CheckError::Restart {
        url: target.url.clone(),
        reason,
    })?;
    let trace = recorder.trace();
    let violations = check_all(&trace, &scenario);
    Ok(Run::new(
        "restart",
        Some(scenario),
        trace,
        violations,
        started,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> RestartCommand {
        RestartCommand {
            command: text.into(),
            keeps_store: false,
        }
    }

    #[tokio::test]
    async fn a_command_must_exit_0_and_says_why_not() {
        assert_eq!(command("true").run().await, Ok(()));
        let failed = command("echo no such unit >&2; exit 5")
            .run()
            .await
            .unwrap_err();
        assert!(
            failed.contains("exit status: 5") && failed.contains("no such unit"),
            "{failed}"
        );
    }

    #[tokio::test]
    async fn a_command_that_floods_stderr_is_read_to_the_end_and_capped() {
        let failed = command("head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 1")
            .run()
            .await
            .unwrap_err();
        assert!(failed.len() < STDERR_CAP + 100, "{} bytes", failed.len());
    }

    #[test]
    fn flags_quote_the_command_for_a_shell() {
        let flags = RestartCommand {
            command: "docker restart 'chat' && sleep 2".into(),
            keeps_store: true,
        }
        .flags();
        assert_eq!(
            flags,
            " --restart-cmd \"docker restart 'chat' && sleep 2\" --restart-keeps-store"
        );
        let words = shlex::split(flags.trim()).unwrap();
        assert_eq!(words[1], "docker restart 'chat' && sleep 2");
    }
}

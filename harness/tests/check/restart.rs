//! `--restart-cmd`: the reference binary, started by a script, restarted by
//! another mid-scenario (the process killed, a new one on the same port, its
//! in-memory store gone).

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::check::{check, CheckOptions, Reach, RestartCommand, Target, Verdict};
use harness::faults::{Fault, FaultKind, FaultPlan};
use harness::scenario::{Action, Scenario, Step, UserSpec};
use harness::spec::{Clause, Level};

use crate::bin::harness;

/// The reference binary beside the harness's, built if `cargo test -p
/// harness` alone did not build it.
fn reference_binary() -> PathBuf {
    let harness = Path::new(env!("CARGO_BIN_EXE_harness"));
    let bin = harness.with_file_name("server-under-test");
    if !bin.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "server-under-test"])
            .status()
            .expect("run cargo build");
        assert!(built.success(), "cargo build -p server-under-test");
    }
    bin
}

/// The reference binary on a free loopback port, run by `start.sh`; the
/// restart command kills it and runs `start.sh` again. Killed when dropped.
struct Deployment {
    dir: PathBuf,
    url: String,
    restart: String,
}

impl Deployment {
    fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("harness-restart-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let start = format!(
            "{bin:?} --addr 127.0.0.1:{port} --ping-interval-ms 500 --ping-timeout-ms 500 --ack-timeout-ms 500 >/dev/null 2>&1 &\necho $! > {pid:?}\n",
            bin = reference_binary(),
            pid = dir.join("pid"),
        );
        std::fs::write(dir.join("start.sh"), start).expect("write start.sh");
        let restart = format!(
            "pid=$(cat {pid:?}); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done; sh {start:?}",
            pid = dir.join("pid"),
            start = dir.join("start.sh"),
        );
        let started = Command::new("sh")
            .arg(dir.join("start.sh"))
            .status()
            .expect("run start.sh");
        assert!(started.success());
        Deployment {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            restart,
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_reference_binary_passes_the_restart_run() {
    let deployment = Deployment::start("check");
    let reach = Reach {
        restart: Some(RestartCommand {
            command: deployment.restart.clone(),
            keeps_store: false,
        }),
        ..Reach::default()
    };
    let target = Target::resolve_with(&deployment.url, &reach).await.unwrap();
    let options = CheckOptions {
        level: Level::Robust,
        seed: 5,
        timeout_scale: 1.0,
        tokens: None,
    };
    let report = check(&target, &options).await.expect("the restarts worked");
    let text = harness::check::report::text(&report);
    let run = report
        .runs
        .iter()
        .find(|r| r.name == "restart")
        .expect("a restart run");
    let rendered = run.trace.render();
    assert!(
        rendered.contains("server down (restart; store lost)")
            && rendered.contains("server up again"),
        "the command ran as a fault:\n{rendered}"
    );
    assert!(
        rendered.contains("stale cursor (409)"),
        "sb's cursor from before the restart met a 409 (L4):\n{rendered}"
    );
    assert!(
        run.violations.is_empty(),
        "the reference passes the restart run:\n{text}"
    );
    for clause in [Clause::L4, Clause::P3, Clause::L2] {
        let verdict = &report
            .clauses
            .iter()
            .find(|c| c.clause == clause)
            .unwrap()
            .verdict;
        assert_eq!(*verdict, Verdict::Pass, "{clause:?}:\n{text}");
    }
    assert!(
        report.rerun.contains("--restart-cmd '"),
        "the rerun line restarts too: {}",
        report.rerun
    );
}

/// alice writes to offline bob, the server restarts at 1 s, bob polls at 6 s.
fn mail_across_a_restart() -> Scenario {
    let step = |at_ms, user, action| Step {
        at_ms,
        user,
        action,
    };
    Scenario {
        seed: 3,
        users: vec![UserSpec::node("alice"), UserSpec::node("bob")],
        steps: vec![
            step(0, 0, Action::Open),
            step(
                500,
                0,
                Action::Send {
                    to: "bob".into(),
                    content: "before the restart".into(),
                },
            ),
            step(6_000, 1, Action::Poll),
        ],
        faults: FaultPlan {
            faults: vec![Fault {
                at_ms: 1_000,
                duration_ms: 1,
                host: harness::world::SERVER_HOST.into(),
                kind: FaultKind::Restart { keeps_store: true },
            }],
            ..FaultPlan::calm()
        },
        active_ms: 7_000,
        heal_ms: 6_000,
        open_world: false,
    }
}

#[test]
fn a_store_declared_kept_that_the_restart_lost_fails_l2_and_no_command_is_a_clear_error() {
    let deployment = Deployment::start("replay");
    let file = deployment.dir.join("scenario.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&mail_across_a_restart()).unwrap(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let replay = |more: &[&str]| {
        let mut args = vec!["replay", "--target", &deployment.url, "--scenario", file];
        args.extend_from_slice(more);
        harness(&args)
    };

    // No way to restart: refused before anything runs, naming the option.
    let (code, _, err) = replay(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--restart-cmd"), "{err}");

    // The binary's store is in memory: declared lost, the mail from before
    // the restart is not owed.
    let (code, out, err) = replay(&["--restart-cmd", &deployment.restart]);
    assert_eq!(code, 0, "{out}{err}");

    // Declared kept (as a Redis-backed deployment would be), the same loss
    // is the server's: L2.
    let (code, out, err) = replay(&[
        "--restart-cmd",
        &deployment.restart,
        "--restart-keeps-store",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("[L2]") && out.contains("never arrived"),
        "{out}"
    );

    // A command that fails stops the replay: it says nothing of the server.
    let (code, _, err) = replay(&["--restart-cmd", "echo cannot reach the host >&2; exit 3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach the host"), "{err}");
}

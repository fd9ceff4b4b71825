//! The `harness` binary: exit codes, the seed and the replay line.

#[path = "../common/bin.rs"]
mod bin;
use bin::harness;

#[test]
fn a_clean_run_exits_0_and_ends_with_the_trace_hash() {
    let (code, out, _) = harness(&["sim", "--seed", "3", "--clients", "3", "--duration", "20s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("seed: 3\n"), "{out}");
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("trace-hash: "),
        "{out}"
    );
}

#[test]
fn a_violation_exits_1_with_the_clause_and_the_replay_command() {
    let (code, out, _) = harness(&[
        "sim",
        "--seed",
        "5",
        "--clients",
        "3",
        "--duration",
        "20s",
        "--faults",
        "none",
        "--bug",
        "register_anonymous",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[I3]"), "{out}");
    assert!(out.contains("replay: harness replay --seed 5 --users 3 --duration 20s --faults none --bug register_anonymous"), "{out}");
}

#[test]
fn the_replay_prints_the_same_hash_as_the_run() {
    let args = ["--seed", "5", "--clients", "4", "--duration", "30s"];
    let hash = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("trace-hash"))
            .map(str::to_owned)
    };
    let (_, sim, _) = harness(&[&["sim"][..], &args].concat());
    let (_, replay, _) = harness(&[&["replay"][..], &args].concat());
    assert!(hash(&sim).is_some());
    assert_eq!(hash(&sim), hash(&replay));
    assert!(
        replay.contains("connect-attempt"),
        "replay prints the full trace"
    );
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    for (args, needle) in [
        (vec!["sim", "--bug", "nope"], "unknown bug 'nope'"),
        (vec!["sim", "--faults", "flood"], "unknown fault 'flood'"),
        (vec!["sim", "--duration", "soon"], "--duration"),
        (vec!["sim", "--clients", "0"], "--users"),
        (vec!["sim", "--users", "1001"], "--users"),
        (
            vec!["sim", "--duration", "99999999999h"],
            "outside 1s..=24h",
        ),
        (vec!["hunt", "--duration", "0s"], "outside 1s..=24h"),
        (vec!["check", "http://127.0.0.1:99999"], "not a TCP port"),
        (
            vec!["check", "http://user:secret@127.0.0.1:1"],
            "credentials",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec!["bench", "--only", "everything"],
            "possible values: simulation",
        ),
        (
            vec!["sim", "--bug", "presence_per_process"],
            "deployment of several",
        ),
        (
            vec![
                "check",
                "http://127.0.0.1:1",
                "--node",
                "http://127.0.0.1:2",
            ],
            "needs --level cluster",
        ),
        (
            vec![
                "hunt",
                "--target",
                "http://127.0.0.1:1",
                "--node",
                "http://127.0.0.1:2",
                "--kill-node-cmd",
                "true",
            ],
            "not for a hunt",
        ),
        (
            vec!["check", "http://127.0.0.1:1", "--kill-node-cmd", "true"],
            "--node",
        ),
    ] {
        let (code, _, err) = harness(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("secret"),
            "a URL's password is never echoed: {err}"
        );
    }
}

#[test]
fn hunt_finds_a_bug_shrinks_it_and_the_saved_scenario_replays_it() {
    let dir = std::env::temp_dir().join(format!("harness-hunt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("found.json");
    let file = file.to_str().unwrap();
    let (code, out, err) = harness(&[
        "hunt",
        "--seeds",
        "5..8",
        "--clients",
        "3",
        "--duration",
        "20s",
        "--faults",
        "none",
        "--bug",
        "register_anonymous",
        "--out",
        file,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("found: I3"), "{out}");
    let replay = format!("replay: harness replay --scenario {file} --bug register_anonymous");
    assert!(out.contains(&replay), "{out}");
    let (code, out, _) = harness(&["sim", "--scenario", file, "--bug", "register_anonymous"]);
    assert_eq!(code, 1, "the saved scenario still fails: {out}");
    assert!(out.contains("[I3]"), "{out}");
    let (code, out, _) = harness(&["sim", "--scenario", file]);
    assert_eq!(code, 0, "the reference server passes it: {out}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--clause` hunts for the symptom a team reports: `last_sid_wins` first
/// shows as M3 (a user shown offline gets mail instead of pushes); asked for
/// P2, the hunt passes that over and finds the presence defect itself.
#[test]
fn hunt_for_one_clause_passes_the_others_over() {
    let dir = std::env::temp_dir().join(format!("harness-clause-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p2.json");
    let file = file.to_str().unwrap();
    let hunt = |extra: &[&str]| {
        let mut args = vec![
            "hunt",
            "--seeds",
            "1..3",
            "--bug",
            "last_sid_wins",
            "--jobs",
            "1",
            "--out",
            file,
        ];
        args.extend_from_slice(extra);
        harness(&args)
    };
    let (code, out, err) = hunt(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("found: M3"), "{out}");
    let (code, out, err) = hunt(&["--clause", "p2"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("found: P2"), "{out}");
    let (code, _, err) = hunt(&["--clause", "Z9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown clause 'Z9'"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hunt_over_a_clean_range_exits_0() {
    let (code, out, _) = harness(&[
        "hunt",
        "--seeds",
        "1..3",
        "--clients",
        "2",
        "--duration",
        "10s",
        "--faults",
        "none",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("clean: no violation in 2 seeds (1..3)"),
        "{out}"
    );
}

#[test]
fn a_missing_or_bad_scenario_file_exits_2() {
    let (code, _, err) = harness(&["sim", "--scenario", "/nonexistent/scenario.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read scenario"), "{err}");
    let bad = std::env::temp_dir().join(format!("harness-bad-{}.json", std::process::id()));
    std::fs::write(&bad, "{\"users\": 3}").unwrap();
    let (code, _, err) = harness(&["sim", "--scenario", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a scenario"), "{err}");
    std::fs::remove_file(bad).ok();
}

/// A live hunt's `--format json` as `hunt --target` writes it.
fn live_report(target: &str, first_seed: u64, played: u64, found: Option<u64>) -> String {
    let finding = found.map(|seed| {
        let scenario = serde_json::json!({"seed": seed, "users": [], "steps": [],
            "faults": {"latency_ms_min": 0, "latency_ms_max": 0, "faults": []},
            "active_ms": 1000, "heal_ms": 1000});
        serde_json::json!({"seed": seed, "clause": "P2", "reproduced": [4, 5],
            "scenario": scenario, "minimal": scenario, "minimal_reproduced": [5, 5],
            "shrink_runs": 3})
    });
    serde_json::json!({
        "report": {"target": target, "timers": null, "played": played,
            "first_seed": first_seed, "finding": finding, "wall_ms": 60000},
        "scenario_file": found.map(|s| format!("hunt-{s}.json")),
        "replay": found.map(|s| format!("harness replay --target {target} --scenario hunt-{s}.json")),
    })
    .to_string()
}

#[test]
fn live_hunt_reports_merge_per_server_and_refuse_another() {
    let dir = std::env::temp_dir().join(format!("harness-live-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let staging = "http://127.0.0.1:8000";
    let a = write("a.json", live_report(staging, 0, 40, None));
    let b = write("b.json", live_report(staging, 40, 13, Some(52)));
    let (code, out, err) = harness(&["hunt-merge", &a, &b]);
    assert_eq!(code, 1, "a finding fails the campaign: {out}{err}");
    assert!(
        out.contains(&format!("2 reports, 53 seeds against {staging}: 0..53")),
        "{out}"
    );
    assert!(out.contains("found P2 at seed 52: hunt-52.json"), "{out}");
    let other = write("c.json", live_report("http://127.0.0.1:9000", 53, 10, None));
    let (code, _, err) = harness(&["hunt-merge", &a, &other]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not one campaign") && err.contains("127.0.0.1:9000"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hunt_reports_from_several_machines_merge_into_one_campaign() {
    let dir = std::env::temp_dir().join(format!("harness-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let machine = |seeds: &str, bug: Option<&str>| {
        let scenario = dir.join(format!("found-{seeds}.json"));
        let mut args = vec![
            "hunt",
            "--seeds",
            seeds,
            "--clients",
            "2",
            "--duration",
            "10s",
            "--faults",
            "none",
            "--format",
            "json",
            "--out",
            scenario.to_str().unwrap(),
        ];
        if let Some(bug) = bug {
            args.extend(["--bug", bug]);
        }
        let (_, out, err) = harness(&args);
        let report = dir.join(format!("report-{seeds}.json"));
        std::fs::write(&report, out).unwrap_or_else(|e| panic!("{e}: {err}"));
        report.to_str().unwrap().to_owned()
    };
    let a = machine("1..3", None);
    let b = machine("5..7", None);
    let (code, out, err) = harness(&["hunt-merge", &a, &b]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 reports, 4 seeds: 1..3 5..7"), "{out}");
    assert!(out.contains("gap: seeds 3..5 were not run"), "{out}");
    let c = machine("5..8", Some("register_anonymous"));
    let (code, out, _) = harness(&["hunt-merge", &a, &b, &c, "--format", "json"]);
    assert_eq!(code, 1, "a finding anywhere fails the campaign: {out}");
    let campaign: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(campaign["findings"][0][1], "I3", "{out}");
    let (code, _, err) = harness(&["hunt-merge", dir.join("nope.json").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a hunt report"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_hunt_that_cannot_save_its_scenario_says_so_and_exits_2() {
    // A replay line pointing at a file that was never written would send the
    // user chasing nothing: the hunt must fail loudly instead.
    let (code, out, err) = harness(&[
        "hunt",
        "--seeds",
        "1..4",
        "--users",
        "4",
        "--duration",
        "30s",
        "--bug",
        "never_push",
        "--out",
        "/nonexistent/dir/hunt.json",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("cannot write scenario"), "{err}");
    assert!(!out.contains("replay:"), "{out}");
}

#[test]
fn a_scenario_with_absurd_values_is_refused_not_run() {
    let dir = std::env::temp_dir().join(format!("harness-absurd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("absurd.json");
    let (_, _, _) = harness(&[
        "hunt",
        "--seeds",
        "1..4",
        "--users",
        "4",
        "--duration",
        "30s",
        "--bug",
        "never_push",
        "--out",
        path.to_str().unwrap(),
    ]);
    let mut scenario: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    scenario["active_ms"] = serde_json::json!(u64::MAX);
    std::fs::write(&path, scenario.to_string()).unwrap();
    let (code, _, err) = harness(&["sim", "--scenario", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("active_ms"), "{err}");
}

#[test]
fn a_hunt_gives_the_same_report_bytes_on_one_job_or_four() {
    // Seeds run side by side, each thread taking the next seed as it frees
    // up, results read in seed order: the finding, the shrunk scenario and
    // seeds_run must not depend on the pool's size. The finding is seed 26
    // of 1..40, past four jobs' read-ahead, so later seeds finish before it.
    let dir = std::env::temp_dir().join(format!("harness-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("hunt.json");
    let run = |jobs: &str| {
        let (code, stdout, stderr) = harness(&[
            "hunt",
            "--seeds",
            "1..40",
            "--users",
            "2",
            "--duration",
            "20s",
            "--bug",
            "no_ack_fallback",
            "--format",
            "json",
            "--jobs",
            jobs,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "no_ack_fallback is found: {stdout}{stderr}");
        (stdout, std::fs::read_to_string(&out).unwrap())
    };
    let one = run("1");
    let report: serde_json::Value = serde_json::from_str(&one.0).unwrap();
    assert_eq!(report["seeds_run"], 26, "{}", one.0);
    let four = run("4");
    assert_eq!(one.0, four.0, "the JSON report is byte-identical");
    assert_eq!(one.1, four.1, "the saved shrunk scenario is byte-identical");
}

//! The binary's arguments: absurd timers are refused with a clear message
//! instead of a server whose heartbeat panics (0) or never fires (u64::MAX).

fn run(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server-under-test"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn absurd_timers_are_refused_with_a_clear_message() {
    for (flag, value) in [
        ("--ping-interval-ms", "0"),
        ("--ping-timeout-ms", "0"),
        ("--ack-timeout-ms", "18446744073709551615"),
        ("--ping-interval-ms", "18446744073709551615"),
        ("--max-payload-bytes", "0"),
    ] {
        let (code, err) = run(&["--addr", "127.0.0.1:0", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(
            err.contains("not in"),
            "{flag} {value}: the range is named: {err}"
        );
    }
}

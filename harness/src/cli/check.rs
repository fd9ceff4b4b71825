//! `harness check`: resolve the target (or start the embedded reference
//! server), run the black-box check, render the report.

use super::args::CheckFormat;
use super::{CheckArgs, Exit};
use crate::check::{check, report, CheckOptions, Target};
use crate::token::{IssuerClock, TokenIssuer, TokenPolicy};

/// The `check` command.
pub fn run(args: &CheckArgs) -> Exit {
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let tokens = match token_issuer(args) {
        Ok(tokens) => tokens,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let options = CheckOptions {
        level: args.level,
        seed,
        timeout_scale: args.timeout_scale,
        tokens,
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let quiet = args.format != CheckFormat::Text || args.out.is_some();
    let outcome = runtime.block_on(async {
        let embedded;
        let url = match &args.url {
            Some(url) => url.clone(),
            None => {
                embedded = start_reference().await?;
                eprintln!(
                    "no URL given: checking the embedded reference server at {embedded} \
                     (pass a URL to check yours)"
                );
                embedded.clone()
            }
        };
        let target = Target::resolve_with(&url, &args.reach.reach()).await?;
        let mut reports = Vec::new();
        for n in 0..args.repeat {
            let options = CheckOptions {
                seed: seed.wrapping_add(n),
                ..options.clone()
            };
            if !quiet {
                eprintln!(
                    "checking {} at level {} with seed {} …",
                    target.url, args.level, options.seed
                );
            }
            let report = check(&target, &options).await?;
            if args.repeat > 1 {
                let failed = report.failed();
                eprintln!(
                    "seed {}: {}",
                    options.seed,
                    if failed.is_empty() {
                        "PASS".to_owned()
                    } else {
                        format!(
                            "FAIL {}",
                            failed.iter().map(|c| c.id()).collect::<Vec<_>>().join(" ")
                        )
                    }
                );
            }
            reports.push(report);
        }
        Ok::<_, crate::check::CheckError>(reports)
    });
    let mut reports = match outcome {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if reports.len() > 1 {
        let table = report::stability_text(&reports);
        let rendered = match args.format {
            CheckFormat::Json => serde_json::to_string_pretty(&serde_json::json!({
                "seeds": reports.iter().map(|r| r.seed).collect::<Vec<_>>(),
                "clauses": report::stability(&reports),
                "failed": reports.iter().filter(|r| !r.passed()).map(|r| serde_json::json!({"seed": r.seed, "again": r.rerun})).collect::<Vec<_>>(),
            }))
            .unwrap_or_default() + "\n",
            _ => table.clone(),
        };
        if let Err(exit) = deliver(args, &rendered, &table) {
            return exit;
        }
        for failed in reports.iter().filter(|r| !r.passed()) {
            println!("again: {}", failed.rerun);
        }
        return if reports.iter().all(|r| r.passed()) {
            Exit::Clean
        } else {
            Exit::Violations
        };
    }
    let report = reports.remove(0);
    let rendered = match args.format {
        CheckFormat::Text => report::text(&report),
        CheckFormat::Json => report::json(&report),
        CheckFormat::Junit => report::junit(&report),
    };
    if let Err(exit) = deliver(args, &rendered, &report::text(&report)) {
        return exit;
    }
    if report.passed() {
        Exit::Clean
    } else {
        Exit::Violations
    }
}

/// Writes `rendered` to `--out` and prints `text` with the file's name, or
/// prints `rendered` when there is no `--out`.
fn deliver(args: &CheckArgs, rendered: &str, text: &str) -> Result<(), Exit> {
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, rendered) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Err(Exit::Usage);
            }
            print!("{text}");
            println!("report: {}", path.display());
        }
        None => print!("{rendered}"),
    }
    Ok(())
}

/// Starts the reference server on a free loopback port, in this process, for
/// as long as the runtime lives; its URL.
async fn start_reference() -> Result<String, crate::check::CheckError> {
    use axum::serve::ListenerExt;
    let unreachable = |reason: String| crate::check::CheckError::Unreachable {
        url: "the embedded reference server".into(),
        reason,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| unreachable(format!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| unreachable(e.to_string()))?;
    let config = server_under_test::Config {
        // Outside any simulation the wall clock is the server's clock.
        epoch_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
        ..server_under_test::Config::default()
    };
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(server_under_test::serve(listener, config));
    Ok(format!("http://{addr}"))
}

/// A seed for a check run (outside any simulation, so the clock may be read).
fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000_000)
}

/// The environment variable that may hold a v2 server's secret.
pub const SECRET_ENV: &str = "HARNESS_JWT_SECRET";

/// The `token` command: prints a token of `policy` for `user`.
pub fn mint(user: &str, secret_file: Option<&std::path::Path>, policy: TokenPolicy) -> Exit {
    if !crate::contract::is_valid_username(user) {
        eprintln!("error: '{user}' is not a valid username (1 to 32 of [A-Za-z0-9_.-])");
        return Exit::Usage;
    }
    match issuer_from(secret_file) {
        Ok(Some(issuer)) => {
            println!("{}", issuer.mint(policy, user).unwrap_or_default());
            Exit::Clean
        }
        Ok(None) => {
            eprintln!("error: a token needs the secret: --jwt-secret-file PATH or {SECRET_ENV}");
            Exit::Usage
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

/// The token issuer for a v2 server, from `--jwt-secret-file` or
/// [`SECRET_ENV`]; `None` when neither is given.
fn token_issuer(args: &CheckArgs) -> Result<Option<TokenIssuer>, String> {
    issuer_from(args.jwt_secret_file.as_deref())
}

/// The issuer from `--jwt-secret-file` or [`SECRET_ENV`], if either is given.
pub(super) fn issuer_from(
    secret_file: Option<&std::path::Path>,
) -> Result<Option<TokenIssuer>, String> {
    let secret = match (secret_file, std::env::var(SECRET_ENV)) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| format!("cannot read --jwt-secret-file {}: {e}", path.display()))?,
        (None, Ok(secret)) => secret.into_bytes(),
        (None, Err(_)) => return Ok(None),
    };
    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
    if secret.is_empty() {
        return Err("the JWT secret is empty".into());
    }
    Ok(Some(TokenIssuer::new(secret.to_vec(), IssuerClock::Wall)))
}

//! The `harness` command line: parse, run, render, exit code. Library code
//! never sees these types: each command builds a plain plan, runs it, and
//! renders the result. Every report starts with the seed and ends with the one
//! command that replays the run.

mod args;
mod check;
mod hunt;
mod live;
mod sim;

pub use args::{CheckArgs, HuntArgs, SimArgs};

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// How a command ended, as the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: clean (or a report was printed and nothing failed).
    Clean,
    /// 1: the server broke a clause.
    Violations,
    /// 2: bad arguments, unreadable input, an unreachable target, a failed run.
    Usage,
    /// 3: a live hunt saw a clause broken once, and none of its replays broke
    /// it again: not a confirmed finding (its evidence is printed and kept).
    SeenOnce,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Clean => 0,
            Exit::Violations => 1,
            Exit::Usage => 2,
            Exit::SeenOnce => 3,
        })
    }
}

/// What `harness --version` says: the harness's version and the contract it
/// checks (a test keeps the clause list in step with [`Clause::ALL`](crate::spec::Clause::ALL)).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (contract v1: T1-T2 I1-I3 P1-P4 M1-M5 L1-L4 H1 B1; contract v2: H2 A1-A6; several nodes: N1-N4)"
);

/// Deterministic simulation and conformance harness for the chat presence protocol.
#[derive(Debug, Parser)]
#[command(name = "harness", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seeded simulation against the reference server and judge its trace.
    Sim(SimArgs),
    /// Re-run a simulation and print its full trace, one line per event; with
    /// --target, play a saved --scenario against a live server --repeat times.
    Replay {
        #[command(flatten)]
        sim: SimArgs,
        /// Print a Mermaid sequence diagram instead of the event list.
        #[arg(long)]
        mermaid: bool,
        /// A running server's root URL: play the --scenario file against it over
        /// real TCP, each user through a fault proxy applying the plan's faults.
        #[arg(long, value_name = "URL", requires = "scenario")]
        target: Option<String>,
        /// With --target: how many times to play it (the reproduction rate), 1 to 100.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
        repeat: u64,
        /// With --target: multiply every wait by this, 0.1 to 100.
        #[arg(long, default_value_t = 1.0, value_parser = args::parse_scale)]
        timeout_scale: f64,
        /// With --target, against a contract v2 server: the shared HS256
        /// secret, in a file (or HARNESS_JWT_SECRET).
        #[arg(long, value_name = "PATH")]
        jwt_secret_file: Option<std::path::PathBuf>,
        /// With --target: how the server is deployed (--path, --ca-cert).
        #[command(flatten)]
        reach: args::ReachArgs,
    },
    /// Explore seeds and fault mixes until a violation, then shrink it to a
    /// minimal scenario and print the command that replays it.
    Hunt(HuntArgs),
    /// Merge `hunt --format json` reports from several machines into one summary.
    HuntMerge {
        /// The report files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Summary format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check a server black-box over real TCP, clause by clause (with no URL:
    /// the embedded reference server, started on loopback).
    Check(CheckArgs),
    /// Mint a contract v2 test token (HS256, `sub` = USER) with a server's
    /// shared secret, for curl or a client under test; printed to stdout.
    Token {
        /// The username the token proves (its `sub`).
        user: String,
        /// The secret, in a file (trailing newline ignored); or HARNESS_JWT_SECRET.
        #[arg(long, value_name = "PATH")]
        jwt_secret_file: Option<std::path::PathBuf>,
        /// What kind of token: valid, expired, forged, alg_none, tampered …
        #[arg(long, default_value = "valid", value_parser = parse_token_policy)]
        policy: crate::token::TokenPolicy,
    },
    /// Measure simulation speed, hunt speed, the real-network baseline and the
    /// reference server's push latency (build with --release).
    Bench {
        /// Fewer sizes and repetitions: about a minute.
        #[arg(long)]
        quick: bool,
        /// Run only these sections (repeatable; default: every one).
        #[arg(long, value_enum, value_name = "SECTION")]
        only: Vec<crate::bench::Section>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Report format of `sim`, `hunt` and `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For machines.
    Json,
}

/// The runtime for the commands that talk to real servers; a failure to
/// start it is reported and becomes exit 2.
fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            Exit::Usage
        })
}

/// Pretty JSON of a report (serialising plain data cannot fail).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("reports serialise")
}

/// Runs the command line.
pub fn main() -> ExitCode {
    // RUST_LOG=server_under_test=info shows the reference server's own log
    // (its connects, disconnects and deliveries) beside a run, on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Clean.into()
            };
        }
    };
    let exit = match cli.command {
        Command::Sim(args) => sim::run(&args, sim::Show::Report),
        Command::Replay { reach, .. } if reach.check_only().is_some() => {
            eprintln!(
                "error: {} is for harness check --level cluster, not for a replay",
                reach.check_only().unwrap_or_default()
            );
            Exit::Usage
        }
        Command::Replay {
            sim,
            mermaid,
            target: Some(url),
            repeat,
            timeout_scale,
            jwt_secret_file,
            reach,
        } => live::run(
            &sim,
            &url,
            live::Play {
                repeat,
                timeout_scale,
                mermaid,
                secret_file: jwt_secret_file,
                reach: reach.reach(),
            },
        ),
        Command::Replay { reach, .. } if reach.given() => {
            eprintln!("error: --path, --ca-cert, --restart-cmd and --node are for a live server: add --target URL");
            Exit::Usage
        }
        Command::Replay { sim, mermaid, .. } => sim::run(
            &sim,
            if mermaid {
                sim::Show::Mermaid
            } else {
                sim::Show::Trace
            },
        ),
        Command::Hunt(args) => hunt::run(&args),
        Command::HuntMerge { files, format } => hunt::merge(&files, format),
        Command::Check(args) => check::run(&args),
        Command::Token {
            user,
            jwt_secret_file,
            policy,
        } => check::mint(&user, jwt_secret_file.as_deref(), policy),
        Command::Bench {
            quick,
            only,
            format,
        } => {
            if cfg!(debug_assertions) {
                eprintln!("note: a debug build; numbers mean little without --release");
            }
            let report = crate::bench::run(quick, &only, |what| eprintln!("bench: {what} …"));
            match format {
                Format::Text => print!("{}", crate::bench::text(&report)),
                Format::Json => println!("{}", json(&report)),
            }
            Exit::Clean
        }
    };
    exit.into()
}

fn parse_token_policy(name: &str) -> Result<crate::token::TokenPolicy, String> {
    use crate::token::TokenPolicy;
    TokenPolicy::ALL
        .into_iter()
        .filter(|p| !matches!(p, TokenPolicy::Absent | TokenPolicy::OtherUserHeader))
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = TokenPolicy::ALL
                .iter()
                .filter(|p| !matches!(p, TokenPolicy::Absent | TokenPolicy::OtherUserHeader))
                .map(|p| p.name())
                .collect();
            format!("unknown token policy '{name}'; known: {}", known.join(", "))
        })
}

#[cfg(test)]
mod version_tests {
    use super::VERSION;
    use crate::spec::Clause;

    /// The clauses `--version` names, ranges expanded (`P1-P4`), are exactly
    /// the clauses the harness judges.
    #[test]
    fn the_version_names_every_clause_the_harness_checks() {
        let mut named = Vec::new();
        for word in VERSION.split(|c: char| c.is_whitespace() || c == ';' || c == ')') {
            let (from, to) = word.split_once('-').unwrap_or((word, word));
            let Some(letter) = from.chars().next().filter(char::is_ascii_uppercase) else {
                continue;
            };
            let (Ok(a), Ok(b)) = (
                from[1..].parse::<u32>(),
                to.trim_start_matches(letter).parse::<u32>(),
            ) else {
                continue;
            };
            named.extend((a..=b).map(|n| format!("{letter}{n}")));
        }
        named.sort();
        let mut all: Vec<String> = Clause::ALL.iter().map(|c| c.id().to_owned()).collect();
        all.sort();
        assert_eq!(named, all, "{VERSION}");
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
    }
}

//! `harness replay --target URL --scenario FILE [--repeat N]`: a saved
//! scenario against a live server, each play's verdict, the reproduction rate,
//! and the first failing play's trace.

use std::fmt::Write as _;

use super::{Exit, SimArgs};
use crate::check::replay::replay_live;
use crate::check::{live_tokens, CheckOptions, Target};
use crate::render;
use crate::scenario::Scenario;

/// How to play a scenario live.
pub struct Play {
    /// How many times.
    pub repeat: u64,
    /// Multiplies every wait.
    pub timeout_scale: f64,
    /// Print the failing play as a Mermaid diagram.
    pub mermaid: bool,
    /// A v2 server's secret, in a file.
    pub secret_file: Option<std::path::PathBuf>,
    /// How the server is deployed.
    pub reach: crate::check::Reach,
}

/// Runs the live replay.
pub fn run(args: &SimArgs, url: &str, play: Play) -> Exit {
    let Play {
        repeat,
        timeout_scale,
        mermaid,
        secret_file,
        reach,
    } = play;
    let secret = match super::check::issuer_from(secret_file.as_deref()) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let Some(path) = &args.scenario else {
        eprintln!("error: replay --target needs --scenario FILE");
        return Exit::Usage;
    };
    let scenario = match Scenario::load(path) {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let mut options = CheckOptions {
        level: crate::spec::Level::Robust,
        seed: scenario.seed,
        timeout_scale,
        tokens: None,
    };
    eprintln!(
        "playing {} ({}) against {url}, {repeat} time(s) …",
        path.display(),
        render::shape(&scenario)
    );
    let outcome = runtime.block_on(async {
        let target = Target::resolve_with(url, &reach).await?;
        options.tokens = live_tokens(&target, secret, options.patience()).await?;
        // A v2 server: a v1 scenario's users present the tokens their
        // header policies stand for.
        let mut scenario = scenario.clone();
        if options.tokens.is_some() {
            scenario.identify_by_token();
        }
        replay_live(
            &target,
            &scenario,
            usize::try_from(repeat).unwrap_or(1),
            &options,
        )
        .await
    });
    let replay = match outcome {
        Ok(replay) => replay,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let mut out = String::new();
    for (i, play) in replay.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "play {} (users *.{}): {}",
            i + 1,
            play.tag,
            render::counts(&play.violations)
        );
    }
    let clause = replay.main_clause();
    let reproduced = replay.reproduced(clause);
    match clause {
        Some(clause) => {
            let _ = writeln!(
                out,
                "reproduced {reproduced}/{} — {clause}: {}",
                replay.runs.len(),
                clause.statement()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "reproduced 0/{}: every play kept the contract",
                replay.runs.len()
            );
        }
    }
    if let Some(failing) = replay.runs.iter().find(|r| !r.violations.is_empty()) {
        let _ = writeln!(out, "first failing play (users *.{}):", failing.tag);
        for v in &failing.violations {
            render::violation(v, &mut out);
        }
        let trace = if mermaid {
            crate::trace::mermaid(&failing.trace)
        } else {
            failing.trace.render()
        };
        out.push_str(&render::escape(&trace));
    }
    print!("{out}");
    if reproduced > 0 {
        Exit::Violations
    } else {
        Exit::Clean
    }
}

//! `harness replay --target URL --scenario FILE [--repeat N]`: a saved
//! scenario against a live server, each play's verdict, the reproduction rate,
//! and the first failing play's trace.

use std::fmt::Write as _;

use super::{Exit, SimArgs};
use crate::check::replay::replay_live;
use crate::check::{CheckOptions, Target};
use crate::render;
use crate::scenario::Scenario;

/// Runs the live replay.
pub fn run(args: &SimArgs, url: &str, repeat: u64, timeout_scale: f64, mermaid: bool) -> Exit {
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
    let options = CheckOptions {
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
        let target = Target::resolve(url).await?;
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

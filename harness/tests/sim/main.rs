//! The simulated world: determinism, and every checker against the reference
//! server (must pass) and its matching bug switch (must fail).

mod checkers;
#[path = "../common/churn.rs"]
mod churn;
mod determinism;
mod real_arm;
mod scale;
mod sessions;
mod support;

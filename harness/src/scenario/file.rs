//! Scenario files: load with every value checked (a hand-edited or hostile file
//! gets a clear error, never a panic, a wrap-around or a silently ignored
//! step), and save.

use std::path::{Path, PathBuf};

use super::{Action, Scenario};
use crate::faults::FaultKind;

/// Most users a scenario may have.
pub const MAX_USERS: usize = 1_000;
/// Most steps a scenario may have.
pub const MAX_STEPS: usize = 100_000;
/// Longest active (and heal) phase: one simulated day.
pub const MAX_ACTIVE_MS: u64 = 24 * 3_600_000;
/// Largest scenario file read.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a scenario cannot be loaded, saved or run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any scenario.
    #[error("{path} is {bytes} bytes: larger than any scenario ({MAX_FILE_BYTES} bytes at most)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The file is not scenario JSON.
    #[error("{path} is not a scenario: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The scenario's values are out of range or inconsistent.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file (or `<scenario>` for one built in code).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The scenario could not be written.
    #[error("cannot write scenario {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let read = |source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(read)?.len();
        if bytes > MAX_FILE_BYTES {
            return Err(ScenarioError::TooLarge {
                path: path.to_owned(),
                bytes,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let scenario: Scenario =
            serde_json::from_str(&text).map_err(|source| ScenarioError::Parse {
                path: path.to_owned(),
                source,
            })?;
        scenario
            .validate()
            .map_err(|reason| ScenarioError::Invalid {
                path: path.to_owned(),
                reason,
            })?;
        Ok(scenario)
    }

    /// Writes the scenario as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ScenarioError> {
        let text = serde_json::to_string_pretty(self).expect("a scenario always serialises");
        std::fs::write(path, text).map_err(|source| ScenarioError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Whether every value is in range and consistent: users and steps within
    /// bounds, every step naming a user and falling inside the active phase,
    /// every fault on an existing host and inside the active phase.
    pub fn validate(&self) -> Result<(), String> {
        if self.users.is_empty() || self.users.len() > MAX_USERS {
            return Err(format!(
                "{} users; a scenario has 1 to {MAX_USERS}",
                self.users.len()
            ));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(format!(
                "{} steps; a scenario has at most {MAX_STEPS}",
                self.steps.len()
            ));
        }
        for (what, ms) in [("active_ms", self.active_ms), ("heal_ms", self.heal_ms)] {
            if ms > MAX_ACTIVE_MS {
                return Err(format!("{what} = {ms}: at most {MAX_ACTIVE_MS} (one day)"));
            }
        }
        if let Some(step) = self.steps.iter().find(|s| s.user >= self.users.len()) {
            return Err(format!(
                "a step names user {} but there are {} users",
                step.user,
                self.users.len()
            ));
        }
        if let Some(step) = self.steps.iter().find(|s| s.at_ms >= self.active_ms) {
            return Err(format!(
                "a step at {} ms lies after the active phase ({} ms): it would never run",
                step.at_ms, self.active_ms
            ));
        }
        // A device asleep into the heal phase would be judged as if awake.
        if let Some((step, ms)) = self.steps.iter().find_map(|s| match s.action {
            Action::Freeze { ms } if s.at_ms.saturating_add(ms) > self.active_ms => Some((s, ms)),
            _ => None,
        }) {
            return Err(format!(
                "a freeze at {} ms for {ms} ms outlasts the active phase ({} ms): the device must be awake for the heal",
                step.at_ms, self.active_ms
            ));
        }
        if let Some(user) = self
            .users
            .iter()
            .find(|u| !crate::contract::is_valid_username(&u.name))
        {
            return Err(format!(
                "user name {:?} is not a valid username (1 to 32 of [A-Za-z0-9_.-])",
                user.name
            ));
        }
        let hosts = crate::topology::client_hosts(self.users.len());
        for fault in &self.faults.faults {
            let on_server = matches!(fault.kind, FaultKind::Restart { .. });
            if on_server != fault.is_on_server() {
                return Err(format!(
                    "a {} fault names host {:?}: a restart strikes host {:?}, every other fault a client host",
                    fault.kind.name(),
                    fault.host,
                    crate::topology::SERVER_HOST
                ));
            }
            if !on_server && !hosts.contains(&fault.host) {
                return Err(format!(
                    "a fault names host {:?}; this scenario's hosts are {}",
                    fault.host,
                    hosts.join(", ")
                ));
            }
            // Down and back up in one instant would be ordered up first (ends
            // sort before starts), leaving the server down for good.
            if on_server && fault.duration_ms == 0 {
                return Err("a restart lasts at least 1 ms (the time the server is down)".into());
            }
            if fault.end_ms() > self.active_ms {
                return Err(format!(
                    "a {} fault ends at {} ms, after the active phase ({} ms)",
                    fault.kind.name(),
                    fault.end_ms(),
                    self.active_ms
                ));
            }
        }
        if self.faults.latency_ms_max > 60_000 || self.faults.latency_ms_min > 60_000 {
            return Err("latency above 60 s per message".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Action, GenerateOptions, Scenario, Step};

    fn generated() -> Scenario {
        Scenario::generate(
            3,
            &GenerateOptions {
                users: 4,
                active_ms: 20_000,
                ..GenerateOptions::default()
            },
        )
    }

    #[test]
    fn generated_scenarios_are_valid() {
        for seed in 0..20 {
            let s = Scenario::generate(seed, &GenerateOptions::default());
            assert_eq!(s.validate(), Ok(()), "seed {seed}");
        }
    }

    #[test]
    fn out_of_range_values_are_refused_with_a_reason() {
        let mut late = generated();
        late.steps.push(Step {
            at_ms: late.active_ms,
            user: 0,
            action: Action::Poll,
        });
        assert!(late
            .validate()
            .unwrap_err()
            .contains("after the active phase"));
        let mut asleep = generated();
        asleep.steps.push(Step {
            at_ms: asleep.active_ms - 1_000,
            user: 0,
            action: Action::Freeze { ms: 5_000 },
        });
        assert!(asleep
            .validate()
            .unwrap_err()
            .contains("outlasts the active phase"));
        let mut huge = generated();
        huge.active_ms = u64::MAX;
        assert!(huge.validate().unwrap_err().contains("active_ms"));
        let mut nobody = generated();
        nobody.steps[0].user = 99;
        assert!(nobody.validate().unwrap_err().contains("user 99"));
        let mut bad_name = generated();
        bad_name.users[0].name = "a b".into();
        assert!(bad_name
            .validate()
            .unwrap_err()
            .contains("not a valid username"));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = std::env::temp_dir().join(format!("harness-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let s = generated();
        s.save(&path).unwrap();
        assert_eq!(Scenario::load(&path).unwrap(), s);
        std::fs::write(&path, "{").unwrap();
        assert!(Scenario::load(&path)
            .unwrap_err()
            .to_string()
            .contains("is not a scenario"));
    }
}

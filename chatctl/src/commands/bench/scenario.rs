//! The scenario file: a TOML list of `[[scenario]]` tables, each with a `name` and a
//! `kind` (`load`, `sweep`, `idle`, `history`) and the settings of that kind. Every
//! setting is checked when the file is read, so a typo stops the run before any client
//! connects.

use std::path::Path;

use serde::Deserialize;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the expected shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (with line and column).
        source: Box<toml::de::Error>,
    },
    /// A setting is out of range.
    #[error("scenario {name:?}: {reason}")]
    Invalid {
        /// The scenario.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `--only` named no scenario of the file.
    #[error("no scenario named {wanted:?} (the file has: {known})")]
    Unknown {
        /// The name asked for.
        wanted: String,
        /// The names in the file.
        known: String,
    },
}

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// The scenarios, run in file order.
    #[serde(rename = "scenario", default)]
    pub scenarios: Vec<Scenario>,
}

/// One scenario: what to measure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scenario {
    /// A fixed population sending at a fixed rate for a fixed time.
    Load(LoadSpec),
    /// The same population, the rate raised step by step until it breaks.
    Sweep(SweepSpec),
    /// Idle authenticated connections: edge memory per connection.
    Idle(IdleSpec),
    /// History pages from one very long chat.
    History(HistorySpec),
}

/// Who talks, where, and how much: shared by `load` and `sweep`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// The scenario's name (`--only`).
    pub name: String,
    /// Connected clients, each its own user.
    pub clients: usize,
    /// Group chats; chat `r` has the `r`-th contiguous slice of the clients.
    pub chats: usize,
    /// Clients that send; sender `s` sends to chat `s % chats`.
    pub senders: usize,
    /// Members of each chat who never connect: every message makes a push request
    /// (with its unread badge) for each of them.
    #[serde(default)]
    pub offline_members: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// How long to send, in seconds.
    pub duration_s: f64,
}

/// A `load` population whose rate grows by `factor` each step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The scenario's name (`--only`).
    pub name: String,
    /// Connected clients, each its own user.
    pub clients: usize,
    /// Group chats.
    pub chats: usize,
    /// Clients that send.
    pub senders: usize,
    /// Messages per second of the first step.
    pub start_rate: f64,
    /// Each step's rate is the previous one's times this (> 1).
    pub factor: f64,
    /// No step goes above this rate.
    pub max_rate: f64,
    /// Seconds of sending per step.
    pub step_s: f64,
    /// A step whose p99 reaches this many milliseconds ends the sweep.
    #[serde(default = "default_p99_limit_ms")]
    pub p99_limit_ms: f64,
}

fn default_p99_limit_ms() -> f64 {
    100.0
}

/// Idle connections, measured at several counts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleSpec {
    /// The scenario's name (`--only`).
    pub name: String,
    /// Connection counts to measure, one after the other.
    pub connections: Vec<usize>,
    /// Seconds to wait after the last `hello` before sampling the edge's memory.
    #[serde(default = "default_settle_s")]
    pub settle_s: f64,
}

fn default_settle_s() -> f64 {
    5.0
}

/// A chat seeded with many messages, then read page by page at random places.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySpec {
    /// The scenario's name (`--only`).
    pub name: String,
    /// Messages written straight into MongoDB.
    pub messages: u64,
    /// History requests to measure.
    pub requests: u64,
    /// Requests in flight at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Page size (`limit`).
    #[serde(default = "default_page")]
    pub limit: u32,
    /// No request starts after this many seconds of measuring (a slow server must not
    /// make the run endless); the report says how many were made.
    #[serde(default = "default_history_max_s")]
    pub max_s: f64,
}

fn default_history_max_s() -> f64 {
    600.0
}

fn default_parallel() -> usize {
    4
}

fn default_page() -> u32 {
    50
}

/// The most messages one page may ask for (the api's maximum).
const MAX_PAGE: u32 = 200;

impl Scenario {
    /// The scenario's name.
    pub fn name(&self) -> &str {
        match self {
            Scenario::Load(spec) => &spec.name,
            Scenario::Sweep(spec) => &spec.name,
            Scenario::Idle(spec) => &spec.name,
            Scenario::History(spec) => &spec.name,
        }
    }

    /// The same scenario sending for `seconds` (a load's duration, a sweep's step).
    pub fn with_duration(mut self, seconds: f64) -> Self {
        match &mut self {
            Scenario::Load(spec) => spec.duration_s = seconds,
            Scenario::Sweep(spec) => spec.step_s = seconds,
            Scenario::Idle(_) | Scenario::History(_) => {}
        }
        self
    }

    /// Checks every setting; the error names the scenario and the setting.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |reason: String| ScenarioError::Invalid { name: self.name().to_owned(), reason };
        match self {
            Scenario::Load(spec) => {
                check_population(spec.clients, spec.chats, spec.senders).map_err(invalid)?;
                positive("rate", spec.rate).map_err(invalid)?;
                positive("duration_s", spec.duration_s).map_err(invalid)
            }
            Scenario::Sweep(spec) => {
                check_population(spec.clients, spec.chats, spec.senders).map_err(invalid)?;
                positive("start_rate", spec.start_rate).map_err(invalid)?;
                positive("step_s", spec.step_s).map_err(invalid)?;
                positive("p99_limit_ms", spec.p99_limit_ms).map_err(invalid)?;
                if !(spec.factor > 1.0 && spec.factor.is_finite()) {
                    return Err(invalid(format!("factor must be greater than 1, not {}", spec.factor)));
                }
                if !(spec.max_rate >= spec.start_rate && spec.max_rate.is_finite()) {
                    return Err(invalid(format!("max_rate must be at least start_rate ({})", spec.start_rate)));
                }
                Ok(())
            }
            Scenario::Idle(spec) => {
                if spec.connections.is_empty() || spec.connections.contains(&0) {
                    return Err(invalid("connections must list one or more counts, each at least 1".into()));
                }
                if !(spec.settle_s >= 0.0 && spec.settle_s.is_finite()) {
                    return Err(invalid(format!("settle_s must be 0 or more, not {}", spec.settle_s)));
                }
                Ok(())
            }
            Scenario::History(spec) => {
                if spec.limit == 0 || spec.limit > MAX_PAGE {
                    return Err(invalid(format!("limit must be 1 to {MAX_PAGE}, not {}", spec.limit)));
                }
                if spec.messages <= u64::from(spec.limit) {
                    return Err(invalid(format!("messages must be more than limit ({})", spec.limit)));
                }
                if spec.requests == 0 || spec.parallel == 0 {
                    return Err(invalid("requests and parallel must be at least 1".into()));
                }
                positive("max_s", spec.max_s).map_err(invalid)
            }
        }
    }
}

/// Clients, chats and senders that fit together: every chat has a member, and every
/// sender is a member of the chat it sends to.
fn check_population(clients: usize, chats: usize, senders: usize) -> Result<(), String> {
    if chats == 0 || clients < chats {
        return Err(format!("chats must be 1 to clients ({clients}), not {chats}"));
    }
    if senders == 0 || senders > clients {
        return Err(format!("senders must be 1 to clients ({clients}), not {senders}"));
    }
    for sender in 0..senders {
        let (chat, place) = (sender % chats, sender / chats);
        if place >= crate::commands::bench::population::chat_members(clients, chats, chat).len() {
            return Err(format!("sender {sender} would be member {place} of chat {chat}, which is smaller"));
        }
    }
    Ok(())
}

fn positive(setting: &str, value: f64) -> Result<(), String> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(format!("{setting} must be greater than 0, not {value}"))
    }
}

impl ScenarioFile {
    /// Reads and checks a scenario file.
    pub fn read(path: &Path) -> Result<ScenarioFile, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        ScenarioFile::parse(&text).map_err(|error| match error {
            ScenarioError::Parse { source, .. } => ScenarioError::Parse { path: path.display().to_string(), source },
            other => other,
        })
    }

    /// Parses and checks scenario TOML.
    pub fn parse(text: &str) -> Result<ScenarioFile, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text)
            .map_err(|source| ScenarioError::Parse { path: String::new(), source: Box::new(source) })?;
        let mut seen = std::collections::HashSet::new();
        for scenario in &file.scenarios {
            scenario.validate()?;
            if !seen.insert(scenario.name()) {
                return Err(ScenarioError::Invalid {
                    name: scenario.name().to_owned(),
                    reason: "two scenarios have this name".into(),
                });
            }
        }
        Ok(file)
    }

    /// The scenarios to run: all of them, or the one named by `--only`.
    pub fn select(self, only: Option<&str>) -> Result<Vec<Scenario>, ScenarioError> {
        let Some(wanted) = only else {
            return Ok(self.scenarios);
        };
        let known = self.scenarios.iter().map(Scenario::name).collect::<Vec<_>>().join(", ");
        match self.scenarios.into_iter().find(|scenario| scenario.name() == wanted) {
            Some(scenario) => Ok(vec![scenario]),
            None => Err(ScenarioError::Unknown { wanted: wanted.to_owned(), known }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Scenario, ScenarioError, ScenarioFile};

    const FILE: &str = r#"
        [[scenario]]
        name = "A"
        kind = "load"
        clients = 20
        chats = 2
        senders = 2
        rate = 20
        duration_s = 2

        [[scenario]]
        name = "idle"
        kind = "idle"
        connections = [10, 20]
    "#;

    #[test]
    fn a_file_parses_and_one_scenario_is_selected_by_name() {
        let file = ScenarioFile::parse(FILE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.scenarios.len(), 2);
        let only = file.clone().select(Some("idle")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&only[..], [Scenario::Idle(spec)] if spec.settle_s == 5.0));
        assert!(matches!(file.select(Some("B")), Err(ScenarioError::Unknown { known, .. }) if known == "A, idle"));
    }

    #[test]
    fn typos_and_impossible_settings_are_refused_with_the_scenario_name() {
        let typo = FILE.replace("senders = 2", "sendres = 2");
        assert!(matches!(ScenarioFile::parse(&typo), Err(ScenarioError::Parse { .. })));
        let zero = FILE.replace("rate = 20", "rate = 0");
        let error = ScenarioFile::parse(&zero).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("\"A\"") && error.contains("rate"), "{error}");
        let too_many = FILE.replace("senders = 2", "senders = 21");
        assert!(matches!(ScenarioFile::parse(&too_many), Err(ScenarioError::Invalid { .. })));
        let unknown_kind = FILE.replace("kind = \"idle\"", "kind = \"nap\"");
        assert!(matches!(ScenarioFile::parse(&unknown_kind), Err(ScenarioError::Parse { .. })));
    }

    #[test]
    fn the_repository_scenario_file_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/scenarios.toml");
        let file = ScenarioFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = file.scenarios.iter().map(Scenario::name).collect();
        assert_eq!(names, ["A", "B", "sweep", "idle", "history"]);
        let smoke = ScenarioFile::read(&path.with_file_name("smoke.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(smoke.scenarios.len(), 4);
        for other in ["push.toml", "write-path.toml"] {
            let file = ScenarioFile::read(&path.with_file_name(other)).unwrap_or_else(|e| panic!("{other}: {e}"));
            assert_eq!(file.scenarios.len(), 1, "{other}");
        }
    }

    #[test]
    fn the_duration_override_applies_to_loads_and_sweep_steps() {
        let file = ScenarioFile::parse(FILE).unwrap_or_else(|e| panic!("{e}"));
        let shorter = file.scenarios[0].clone().with_duration(0.5);
        assert!(matches!(shorter, Scenario::Load(spec) if spec.duration_s == 0.5));
    }
}

//! `chatctl bench`: an open-loop load generator that runs against any deployment.
//!
//! A scenario file (TOML) lists what to measure; each scenario prints one JSON line on
//! stdout, and all of them together a Markdown table (to `--markdown` or stderr) and,
//! for sweeps, an SVG plot (`--plot`). The library entry point is [`run_scenario`], so
//! the end-to-end tests drive the same code against an in-process stack.
//!
//! Layout, one job per file:
//! - [`scenario`]: the scenario file and its checks;
//! - [`population`]: users, tokens and group chats created over REST;
//! - [`client`]: one WebSocket client (connect, read, send its share, ping);
//! - [`fleet`]: many clients on their own worker threads, steered through a phase;
//! - [`schedule`]: the open-loop schedule and the due time carried in each text;
//! - [`latency`]: sharded HDR histograms and percentiles;
//! - [`load`]: the `load` and `sweep` scenarios;
//! - [`idle`]: edge memory per idle connection;
//! - [`history`]: a seeded million-message chat read page by page;
//! - [`resources`]: CPU and memory from `/proc`;
//! - [`report`]: the JSON report and the Markdown tables;
//! - [`plot`]: the sweep's SVG.

pub mod client;
pub mod fleet;
pub mod history;
pub mod idle;
pub mod latency;
pub mod load;
pub mod plot;
pub mod population;
pub mod report;
pub mod resources;
pub mod scenario;
pub mod schedule;

use std::{path::PathBuf, time::Duration};

use clap::Args;
use serde::de::DeserializeOwned;

pub use report::ScenarioReport;
pub use resources::Watched;
pub use scenario::{Scenario, ScenarioError, ScenarioFile};

use crate::progress::Progress;

/// Arguments of `chatctl bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The scenario file (TOML).
    #[arg(long, default_value = "bench/scenarios.toml")]
    pub scenarios: PathBuf,
    /// Run only the scenario with this name.
    #[arg(long)]
    pub only: Option<String>,
    /// Seconds of sending, replacing each load's `duration_s` and each sweep's `step_s`.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Base URL of the REST API.
    #[arg(long, env = "CHAT_BENCH_API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// WebSocket URL of an edge.
    #[arg(long, env = "CHAT_BENCH_WS_URL", default_value = "ws://127.0.0.1:8082/ws")]
    pub ws_url: String,
    /// HS256 secret the deployment accepts.
    #[arg(long, env = "CHAT_JWT_SECRET", default_value = chat_core::auth::DEV_SECRET, hide_env_values = true)]
    pub jwt_secret: String,
    /// Issuer put in the tokens (empty: none).
    #[arg(long, env = "CHAT_JWT_ISSUER", default_value = chat_core::auth::DEV_ISSUER)]
    pub jwt_issuer: String,
    /// Audience put in the tokens.
    #[arg(long, env = "CHAT_JWT_AUDIENCE", default_value = chat_core::auth::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
    /// Worker threads of the clients (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last send for deliveries still on their way.
    #[arg(long, default_value_t = 10.0)]
    pub drain_s: f64,
    /// A process of the stack whose CPU to measure, as NAME=PID (repeatable; name the
    /// edge `ws-edge` to get its CPU per delivery and its memory per connection).
    #[arg(long = "pid", value_name = "NAME=PID", value_parser = parse_watched)]
    pub pids: Vec<Watched>,
    /// A file of NAME=PID lines, as `--pid` (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// MongoDB of the deployment, for seeding the history scenario.
    #[arg(long, env = "CHAT_MONGODB_URI")]
    pub mongodb_uri: Option<String>,
    /// Its database.
    #[arg(long, env = "CHAT_MONGODB_DB", default_value = "chat")]
    pub mongodb_db: String,
    /// Publish each load message straight to `chat.live.<chat_id>.bench` on this NATS
    /// server instead of sending it over WebSocket: measures the edge's fan-out alone,
    /// without the write path (nothing is persisted).
    #[arg(long, env = "CHAT_BENCH_INJECT_NATS_URL", value_name = "URL")]
    pub inject_nats_url: Option<String>,
    /// Write the Markdown tables here instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Draw each sweep's p50/p99 against deliveries/s to this SVG file (a sweep other
    /// than the first gets its name appended).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// Where the deployment is and how to load it: everything but the scenario.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the REST API.
    pub api_url: String,
    /// WebSocket URL of an edge.
    pub ws_url: String,
    /// HS256 secret for the tokens.
    pub jwt_secret: String,
    /// `iss` of the tokens.
    pub jwt_issuer: Option<String>,
    /// `aud` of the tokens.
    pub jwt_audience: String,
    /// Worker threads of the clients.
    pub threads: usize,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Wait after the last send.
    pub drain: Duration,
    /// Processes whose CPU is measured.
    pub watched: Vec<Watched>,
    /// MongoDB, for the history scenario.
    pub mongodb_uri: Option<String>,
    /// Its database.
    pub mongodb_db: String,
    /// NATS to publish load messages to directly (the edge's fan-out alone), if any.
    pub inject_nats_url: Option<String>,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The scenario file.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A flag or a PID file.
    #[error("{0}")]
    Flag(String),
    /// A token could not be signed.
    #[error("signing a token: {0}")]
    Token(jsonwebtoken::errors::Error),
    /// A REST call failed on the way.
    #[error("{url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// A REST call got an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A chat would have had no members.
    #[error("chat {0} would have no members")]
    EmptyChat(usize),
    /// The clients' runtime could not start.
    #[error("starting the client threads: {0}")]
    Runtime(std::io::Error),
    /// Clients could not connect.
    #[error("{failed} of {total} clients could not connect; the first: {first}")]
    Connect {
        /// How many failed.
        failed: usize,
        /// How many tried.
        total: usize,
        /// The first error.
        first: String,
    },
    /// The history scenario has nowhere to seed.
    #[error("the history scenario writes to MongoDB: set --mongodb-uri or CHAT_MONGODB_URI")]
    NoMongo,
    /// MongoDB failed.
    #[error("mongodb: {0}")]
    Mongo(mongodb::error::Error),
    /// A chat the bench created is gone.
    #[error("chat {0} vanished during the bench")]
    ChatVanished(String),
    /// A store operation failed.
    #[error("store: {0}")]
    Store(#[from] chat_store::StoreError),
    /// The plot could not be drawn.
    #[error("plotting {path}: {reason}")]
    Plot {
        /// The SVG file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Parses `NAME=PID`.
fn parse_watched(text: &str) -> Result<Watched, String> {
    let (name, pid) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=PID"))?;
    let pid = pid.trim().parse().map_err(|_| format!("{text:?}: the PID is not a number"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?}: the name is empty"));
    }
    Ok(Watched { name: name.to_owned(), pid })
}

impl Settings {
    /// The settings of the command line; checks that every named process exists.
    pub fn from_args(args: &BenchArgs) -> Result<Settings, BenchError> {
        let mut watched = args.pids.clone();
        if let Some(path) = &args.pid_file {
            let text = std::fs::read_to_string(path)
                .map_err(|error| BenchError::Flag(format!("--pid-file {}: {error}", path.display())))?;
            for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
                watched.push(
                    parse_watched(line).map_err(|error| BenchError::Flag(format!("{}: {error}", path.display())))?,
                );
            }
        }
        for process in &watched {
            if resources::process_ticks(process.pid).is_none() {
                return Err(BenchError::Flag(format!("--pid {}={}: no such process", process.name, process.pid)));
            }
        }
        if !(args.drain_s >= 0.0 && args.drain_s.is_finite()) {
            return Err(BenchError::Flag(format!("--drain-s must be 0 or more, not {}", args.drain_s)));
        }
        if args.duration.is_some_and(|seconds| !(seconds > 0.0 && seconds.is_finite())) {
            return Err(BenchError::Flag("--duration must be greater than 0".into()));
        }
        let threads = match args.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        };
        Ok(Settings {
            api_url: args.api_url.trim_end_matches('/').to_owned(),
            ws_url: args.ws_url.clone(),
            jwt_secret: args.jwt_secret.clone(),
            jwt_issuer: Some(args.jwt_issuer.clone()).filter(|issuer| !issuer.is_empty()),
            jwt_audience: args.jwt_audience.clone(),
            threads,
            connect_concurrency: args.connect_concurrency.max(1),
            drain: Duration::from_secs_f64(args.drain_s),
            watched,
            mongodb_uri: args.mongodb_uri.clone(),
            mongodb_db: args.mongodb_db.clone(),
            inject_nats_url: args.inject_nats_url.clone(),
        })
    }
}

/// A tag unique to one scenario run: user ids and texts start with it, so nothing of
/// an earlier run against the same deployment is counted or reused.
pub fn run_tag() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let millis = schedule::unix_us_now() / 1000;
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("b{}{}", base36(millis), base36(u64::from(count)))
}

fn base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP client for the REST calls.
fn http_client() -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| BenchError::Http { url: String::new(), source })
}

/// The JSON body of a successful response, or an error naming the URL and status.
async fn json_response<T: DeserializeOwned>(
    url: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, BenchError> {
    let http = |source| BenchError::Http { url: url.to_owned(), source };
    let response = response.map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        return Err(BenchError::Status { url: url.to_owned(), status: status.as_u16(), body });
    }
    response.json().await.map_err(http)
}

/// Runs one scenario and returns its report. The caller's runtime drives the REST
/// calls; the clients get a runtime of their own with `settings.threads` workers.
pub async fn run_scenario(
    settings: &Settings,
    scenario: &Scenario,
    progress: &Progress,
) -> Result<ScenarioReport, BenchError> {
    scenario.validate()?;
    let sampler = resources::Sampler::new(settings.watched.clone(), settings.threads);
    let mut warnings = Vec::new();
    let figures = match scenario {
        Scenario::Load(spec) => {
            let shape = load::Shape {
                clients: spec.clients,
                chats: spec.chats,
                senders: spec.senders,
                offline_members: spec.offline_members,
            };
            let population = load::Population::start(settings, shape, progress).await?;
            let step = population.step(settings, &sampler, 1, spec.rate, spec.duration_s, progress).await;
            population.fleet.stop().await;
            if let Some(warning) = load::saturation_warning(&step) {
                eprintln!("warning: {warning}");
                warnings.push(warning);
            }
            report::Figures::Load(Box::new(step))
        }
        Scenario::Sweep(spec) => {
            let shape =
                load::Shape { clients: spec.clients, chats: spec.chats, senders: spec.senders, offline_members: 0 };
            let population = load::Population::start(settings, shape, progress).await?;
            let figures = load::sweep(settings, &population, &sampler, spec, progress, &mut warnings).await;
            population.fleet.stop().await;
            report::Figures::Sweep(figures)
        }
        Scenario::Idle(spec) => {
            let figures = idle::run(settings, &sampler, spec, progress).await?;
            for point in figures.points.iter().filter(|point| point.connected < point.connections) {
                let warning = format!(
                    "only {} of {} idle connections were accepted; the first refusal: {}",
                    point.connected,
                    point.connections,
                    point.first_error.as_deref().unwrap_or("unknown")
                );
                eprintln!("warning: {warning}");
                warnings.push(warning);
            }
            if sampler.edge_rss().is_none() {
                warnings.push("no --pid ws-edge=PID: the edge's memory was not measured".into());
            }
            report::Figures::Idle(figures)
        }
        Scenario::History(spec) => {
            let figures = history::run(settings, spec, progress).await?;
            if figures.requests < figures.requests_planned {
                let warning = format!(
                    "only {} of {} history requests were made within max_s = {} s",
                    figures.requests, figures.requests_planned, spec.max_s
                );
                eprintln!("warning: {warning}");
                warnings.push(warning);
            }
            report::Figures::History(figures)
        }
    };
    Ok(ScenarioReport { scenario: scenario.name().to_owned(), figures, warnings })
}

/// `chatctl bench`: runs the selected scenarios, printing one JSON line per scenario on
/// stdout as it finishes, then the Markdown tables and the sweep plots.
pub async fn run(args: &BenchArgs, progress: &Progress) -> Result<Vec<ScenarioReport>, BenchError> {
    let settings = Settings::from_args(args)?;
    let mut scenarios = ScenarioFile::read(&args.scenarios)?.select(args.only.as_deref())?;
    if let Some(seconds) = args.duration {
        scenarios = scenarios.into_iter().map(|scenario| scenario.with_duration(seconds)).collect();
    }
    let mut reports = Vec::new();
    let mut failure = None;
    for scenario in &scenarios {
        eprintln!("scenario {}", scenario.name());
        match run_scenario(&settings, scenario, progress).await {
            Ok(report) => {
                let line = serde_json::to_string(&report).unwrap_or_default();
                println!("{line}");
                reports.push(report);
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    write_outputs(args, &reports)?;
    match failure {
        Some(error) => Err(error),
        None => Ok(reports),
    }
}

/// The Markdown tables and the sweep plots.
fn write_outputs(args: &BenchArgs, reports: &[ScenarioReport]) -> Result<(), BenchError> {
    let table = report::markdown(reports);
    match &args.markdown {
        Some(path) => std::fs::write(path, &table)
            .map_err(|source| BenchError::Write { path: path.display().to_string(), source })?,
        None => eprint!("{table}"),
    }
    let sweeps = reports.iter().filter_map(|report| match &report.figures {
        report::Figures::Sweep(sweep) => Some((&report.scenario, sweep)),
        _ => None,
    });
    for (index, (name, sweep)) in sweeps.enumerate() {
        let Some(path) = &args.plot else {
            eprintln!("(pass --plot FILE.svg for a plot of sweep {name})");
            continue;
        };
        let path = if index == 0 { path.clone() } else { path.with_file_name(format!("{name}-{}", file_name(path))) };
        plot::sweep_svg(&path, &format!("chatctl bench: {name}"), &sweep.steps)?;
    }
    Ok(())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "sweep.svg".into())
}

#[cfg(test)]
mod tests {
    use super::{base36, parse_watched, run_tag};

    #[test]
    fn pids_parse_as_name_equals_number() {
        let watched = parse_watched("ws-edge=42").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((watched.name.as_str(), watched.pid), ("ws-edge", 42));
        assert!(parse_watched("edge").is_err());
        assert!(parse_watched("edge=x").is_err());
        assert!(parse_watched("=3").is_err());
    }

    #[test]
    fn run_tags_are_valid_ids_and_differ() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 1), "101");
        let (a, b) = (run_tag(), run_tag());
        assert_ne!(a, b);
        assert!(chat_nats::subjects::is_valid_id(&format!("{a}-9999")));
    }
}

//! What a scenario reports: one JSON object per scenario (printed as one line), and the
//! same figures as Markdown tables for people.

use std::fmt::Write;

use serde::Serialize;

use super::{
    latency::{Lag, Percentiles},
    resources::Usage,
};

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: String,
    /// Its figures, tagged with its `kind`.
    #[serde(flatten)]
    pub figures: Figures,
    /// Anything that makes the figures doubtful (a saturated generator).
    pub warnings: Vec<String>,
}

/// Figures by kind of scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Figures {
    /// A fixed rate.
    Load(Box<StepFigures>),
    /// Rising rates.
    Sweep(SweepFigures),
    /// Idle connections.
    Idle(IdleFigures),
    /// History pages.
    History(HistoryFigures),
}

/// One fixed-rate run (a `load` scenario, or one step of a sweep).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFigures {
    /// Connected clients.
    pub clients: usize,
    /// Group chats.
    pub chats: usize,
    /// Sending clients.
    pub senders: usize,
    /// Members of each chat who never connect (each message is a push request for each).
    pub offline_members: usize,
    /// Offered rate, messages per second.
    pub rate_msg_s: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Messages in the schedule.
    pub messages_scheduled: u64,
    /// Messages actually sent.
    pub messages_sent: u64,
    /// Deliveries expected: every member of the chat, sender included, per message.
    pub expected_deliveries: u64,
    /// `msg.created` frames of this step received before the drain ended.
    pub received_deliveries: u64,
    /// Expected minus received (never negative).
    pub lost: u64,
    /// Received deliveries per second of the measured window.
    pub deliveries_per_s: f64,
    /// Receive time minus scheduled send time.
    pub latency_ms: Percentiles,
    /// Actual minus scheduled send time.
    pub send_lag_ms: Lag,
    /// `error` frames (rejected sends, rate limits).
    pub errors: u64,
    /// Connections the server closed during the step.
    pub connections_closed: u64,
    /// Edge CPU µs per delivery, when the edge's PID was given.
    pub edge_cpu_us_per_delivery: Option<f64>,
    /// CPU µs of every watched process per delivery.
    pub stack_cpu_us_per_delivery: Option<f64>,
    /// True when the generator's workers were saturated.
    pub client_saturated: bool,
    /// CPU of the stack, the box and the generator over the window.
    pub resources: Usage,
}

/// A sweep: one entry per step, and where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepFigures {
    /// The p99 limit, in ms.
    pub p99_limit_ms: f64,
    /// The steps run, in order.
    pub steps: Vec<StepFigures>,
    /// The highest rate of a step with p99 under the limit and nothing lost.
    pub highest_sustained_rate_msg_s: Option<f64>,
    /// The deliveries per second of that step.
    pub highest_sustained_deliveries_per_s: Option<f64>,
    /// Why the sweep ended.
    pub stopped_because: String,
}

/// Idle connections at several counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleFigures {
    /// One entry per count.
    pub points: Vec<IdlePoint>,
}

/// Edge memory at one count of idle connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdlePoint {
    /// Connections asked for.
    pub connections: usize,
    /// Connections that got `hello`.
    pub connected: usize,
    /// Why the first failed connection failed, if any did.
    pub first_error: Option<String>,
    /// Edge RSS before connecting, in bytes.
    pub edge_rss_before_bytes: Option<u64>,
    /// Edge RSS after settling, in bytes.
    pub edge_rss_after_bytes: Option<u64>,
    /// (after − before) / connected.
    pub bytes_per_connection: Option<f64>,
    /// The same for the generator's own RSS: what one simulated client costs it.
    pub client_bytes_per_connection: Option<f64>,
    /// Connections the server closed while they were idle.
    pub connections_closed: u64,
}

/// History pages from a long chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryFigures {
    /// Messages in the chat.
    pub messages: u64,
    /// Seconds spent writing them.
    pub seed_s: f64,
    /// Requests the scenario asked for.
    pub requests_planned: u64,
    /// Requests made (fewer when `max_s` ran out).
    pub requests: u64,
    /// Requests in flight at once.
    pub parallel: usize,
    /// Page size.
    pub limit: u32,
    /// Request latency, every band together.
    pub latency_ms: Percentiles,
    /// The same per depth band, in the order the requests cycle through them.
    pub bands: Vec<HistoryBand>,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Requests that failed or returned another page size than asked.
    pub errors: u64,
}

/// History pages read at one depth of the chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBand {
    /// Where: `first page`, `newest 1 %`, `25 %`, … `oldest 1 %`.
    pub band: String,
    /// Requests made in this band.
    pub requests: u64,
    /// Requests that failed or returned another page size than asked.
    pub errors: u64,
    /// Their latency.
    pub latency_ms: Percentiles,
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.digits$}"))
}

const LOAD_HEADER: &str = "| scenario | clients | chats | msg/s | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | lost | send lag p99 ms | edge µs/del | stack µs/del | box busy % | client busy % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

fn load_row(out: &mut String, name: &str, step: &StepFigures) {
    let l = &step.latency_ms;
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} | {} | {} | {:.0}{} |",
        step.clients,
        step.chats,
        step.rate_msg_s,
        step.deliveries_per_s,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        step.lost,
        step.send_lag_ms.p99,
        opt(step.edge_cpu_us_per_delivery, 2),
        opt(step.stack_cpu_us_per_delivery, 2),
        opt(step.resources.box_busy_pct, 0),
        step.resources.client.worker_busy_pct,
        if step.client_saturated { " (saturated)" } else { "" },
    );
}

/// The reports as Markdown: one table per kind of scenario.
pub fn markdown(reports: &[ScenarioReport]) -> String {
    let mut loads = String::new();
    let mut idle = String::new();
    let mut history = String::new();
    let mut notes = String::new();
    for report in reports {
        let name = &report.scenario;
        match &report.figures {
            Figures::Load(step) => load_row(&mut loads, name, step),
            Figures::Sweep(sweep) => {
                for (index, step) in sweep.steps.iter().enumerate() {
                    load_row(&mut loads, &format!("{name} step {}", index + 1), step);
                }
                let _ = writeln!(
                    notes,
                    "- {name}: highest sustained rate {} msg/s ({} deliveries/s); stopped because {}.",
                    opt(sweep.highest_sustained_rate_msg_s, 0),
                    opt(sweep.highest_sustained_deliveries_per_s, 0),
                    sweep.stopped_because
                );
            }
            Figures::Idle(figures) => {
                for point in &figures.points {
                    let _ = writeln!(
                        idle,
                        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                        point.connections,
                        point.connected,
                        point.edge_rss_before_bytes.map_or("–".into(), |b| b.to_string()),
                        point.edge_rss_after_bytes.map_or("–".into(), |b| b.to_string()),
                        opt(point.bytes_per_connection, 0),
                        opt(point.client_bytes_per_connection, 0),
                        point.connections_closed,
                    );
                }
            }
            Figures::History(figures) => {
                let l = &figures.latency_ms;
                let _ = writeln!(
                    history,
                    "| {name} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
                    figures.messages,
                    figures.requests,
                    figures.parallel,
                    figures.limit,
                    l.p50,
                    l.p99,
                    l.max,
                    figures.requests_per_s,
                    figures.errors,
                );
                for band in &figures.bands {
                    let l = &band.latency_ms;
                    let _ = writeln!(
                        history,
                        "| {name}: {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | – | {} |",
                        band.band,
                        figures.messages,
                        band.requests,
                        figures.parallel,
                        figures.limit,
                        l.p50,
                        l.p99,
                        l.max,
                        band.errors,
                    );
                }
            }
        }
        for warning in &report.warnings {
            let _ = writeln!(notes, "- {name}: {warning}");
        }
    }
    let mut out = String::new();
    if !loads.is_empty() {
        let _ = write!(out, "### Send → deliver\n\n{LOAD_HEADER}{loads}\n");
    }
    if !idle.is_empty() {
        let _ = write!(
            out,
            "### Idle connections\n\n| scenario | connections | connected | edge RSS before | edge RSS after | edge bytes/connection | client bytes/connection | closed |\n|---|---|---|---|---|---|---|---|\n{idle}\n"
        );
    }
    if !history.is_empty() {
        let _ = write!(
            out,
            "### History pages\n\n| scenario | messages | requests | parallel | limit | p50 ms | p99 ms | max ms | requests/s | errors |\n|---|---|---|---|---|---|---|---|---|---|\n{history}\n"
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "{notes}");
    }
    out
}

//! The `load` and `sweep` scenarios: create the population, connect it, then run one
//! step at a fixed rate (`load`) or steps of rising rate until latency or loss says
//! stop (`sweep`).

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use super::{
    BenchError, Settings,
    client::{Phase, Plan, Sends},
    fleet::Fleet,
    latency::{Lag, Percentiles},
    population::{self, GroupChat},
    report::{StepFigures, SweepFigures},
    resources::Sampler,
    schedule::Step,
};
use crate::progress::Progress;

/// Time between announcing a step and its first message, so every client has it.
const STEP_LEAD: Duration = Duration::from_millis(300);
/// How often progress and the drain are checked.
const POLL: Duration = Duration::from_millis(20);
/// Quiet time between the steps of a sweep.
const BETWEEN_STEPS: Duration = Duration::from_secs(1);
/// Histogram shards per worker thread.
const SHARDS_PER_THREAD: usize = 4;

/// How many clients, chats, senders and never connected members a population has.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Connected clients, each its own user.
    pub clients: usize,
    /// Group chats, each a contiguous slice of the clients.
    pub chats: usize,
    /// Clients that send.
    pub senders: usize,
    /// Members of each chat who never connect.
    pub offline_members: usize,
}

/// Who is connected, in which chats, and who sends where.
#[derive(Debug)]
pub struct Population {
    /// The run's tag (user ids, message texts).
    pub tag: String,
    /// The chats.
    pub chats: Vec<GroupChat>,
    /// Senders.
    pub senders: usize,
    /// Clients.
    pub clients: usize,
    /// Members of each chat who never connect.
    pub offline_members: usize,
    /// The connected clients.
    pub fleet: Fleet,
    /// Where messages are published directly, when the edge's fan-out is measured alone.
    pub injector: Option<async_nats::Client>,
}

impl Population {
    /// Creates users and chats, and connects every client.
    pub async fn start(settings: &Settings, shape: Shape, progress: &Progress) -> Result<Population, BenchError> {
        let Shape { clients, chats, senders, offline_members } = shape;
        let tag = super::run_tag();
        let users = population::users(settings, &tag, clients)?;
        let http = super::http_client()?;
        let offline = population::Offline { tag: &tag, per_chat: offline_members };
        let groups = population::create_chats(settings, &http, &users, chats, offline, progress).await?;
        let mut plans: Vec<Plan> =
            users.into_iter().enumerate().map(|(index, user)| Plan { index, token: user.token, sends: None }).collect();
        let injector = match &settings.inject_nats_url {
            Some(url) => Some(
                async_nats::connect(url.as_str())
                    .await
                    .map_err(|error| BenchError::Flag(format!("--inject-nats-url {url}: {error}")))?,
            ),
            None => None,
        };
        // Injected messages are published by the generator, not sent by clients.
        let client_senders = if injector.is_some() { 0 } else { senders };
        for sender in 0..client_senders {
            let chat = &groups[sender % chats];
            let client = chat.members.start + sender / chats;
            plans[client].sends = Some(Sends { sender: sender as u64, chat_id: chat.id.clone() });
        }
        let fleet = Fleet::connect(settings, plans, progress).await?;
        if fleet.failed() > 0 {
            let failed = fleet.failed();
            let first = fleet.first_error.clone().unwrap_or_default();
            fleet.stop().await;
            return Err(BenchError::Connect { failed, total: clients, first });
        }
        Ok(Population { tag, chats: groups, senders, clients, offline_members, fleet, injector })
    }

    /// Deliveries a step should produce: each message reaches every member of its chat.
    fn expected(&self, step: &Step) -> u64 {
        (0..self.senders)
            .map(|sender| step.messages_of(sender as u64) * self.chats[sender % self.chats.len()].members.len() as u64)
            .sum()
    }

    /// Runs one step at `rate` msg/s for `seconds` and measures it.
    pub async fn step(
        &self,
        settings: &Settings,
        sampler: &Sampler,
        id: u32,
        rate: f64,
        seconds: f64,
        progress: &Progress,
    ) -> StepFigures {
        let shards = settings.threads.max(1) * SHARDS_PER_THREAD;
        let start = Instant::now() + STEP_LEAD;
        let step = Arc::new(Step::new(&self.tag, id, start, rate, seconds, self.senders, shards));
        let expected = self.expected(&step);
        self.fleet.set_phase(Phase::Step(step.clone()));
        if let Some(nats) = &self.injector {
            let chats = self.chats.iter().map(|chat| chat.id.clone()).collect();
            tokio::spawn(inject(nats.clone(), step.clone(), chats));
        }
        tokio::time::sleep_until(start.into()).await;
        let closed_before = self.fleet.closed();
        let before = sampler.sample();
        let bar = progress.bar(&format!("send {rate:.0}/s"), step.total);
        while Instant::now() < step.end() {
            bar.set_position(step.sent.load(Ordering::Relaxed));
            tokio::time::sleep(POLL * 5).await;
        }
        bar.finish_and_clear();
        let deadline = step.end() + settings.drain;
        while step.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let after = sampler.sample();
        let usage = sampler.usage(&before, &after);
        let received = step.received.load(Ordering::Relaxed);
        let (latency, lag) = step.recorder.merged();
        let per_delivery = |cpu_s: f64| (received > 0).then(|| cpu_s * 1e6 / received as f64);
        let watched_any = !sampler.watched().is_empty();
        StepFigures {
            clients: self.clients,
            chats: self.chats.len(),
            senders: self.senders,
            offline_members: self.offline_members,
            rate_msg_s: rate,
            duration_s: seconds,
            messages_scheduled: step.total,
            messages_sent: step.sent.load(Ordering::Relaxed),
            expected_deliveries: expected,
            received_deliveries: received,
            lost: expected.saturating_sub(received),
            deliveries_per_s: if usage.window_s > 0.0 { received as f64 / usage.window_s } else { 0.0 },
            latency_ms: Percentiles::of(&latency),
            send_lag_ms: Lag::of(&lag),
            errors: step.errors.load(Ordering::Relaxed),
            connections_closed: self.fleet.closed().saturating_sub(closed_before),
            edge_cpu_us_per_delivery: sampler.edge_cpu_s(&usage).and_then(per_delivery),
            stack_cpu_us_per_delivery: if watched_any { per_delivery(usage.stack_cpu_s) } else { None },
            client_saturated: usage.client.saturated,
            resources: usage,
        }
    }
}

/// Publishes a step's messages on schedule as `msg.created`-shaped frames on each
/// chat's live subject, which edges forward to every local member unchanged. Message
/// `k` goes to the chat its sender `k % senders` would have sent to.
async fn inject(nats: async_nats::Client, step: Arc<Step>, chats: Vec<String>) {
    for k in 0..step.total {
        let due = step.due(k);
        tokio::time::sleep_until(due.into()).await;
        let lag = Instant::now().saturating_duration_since(due);
        let chat = &chats[((k % step.senders) as usize) % chats.len()];
        let frame = format!(
            r#"{{"type":"msg.created","chat_id":"{chat}","message":{{"chat_id":"{chat}","text":"{}"}}}}"#,
            step.text(k)
        );
        if let Err(error) = nats.publish(chat_nats::subjects::live_bench(chat), frame.into()).await {
            eprintln!("warning: injecting message {k} failed: {error}");
            return;
        }
        step.record_send(0, lag);
    }
    let _ = nats.flush().await;
}

/// The warning for a saturated generator, if it was.
pub fn saturation_warning(step: &StepFigures) -> Option<String> {
    step.client_saturated.then(|| {
        format!(
            "the load generator's {} worker threads were {:.0}% busy at {:.0} msg/s: figures may measure the client, not the server (raise --threads or run chatctl bench on another machine)",
            step.resources.client.threads, step.resources.client.worker_busy_pct, step.rate_msg_s
        )
    })
}

/// Why a sweep step ends the sweep, if it does.
pub fn step_failure(step: &StepFigures, p99_limit_ms: f64) -> Option<String> {
    if step.lost > 0 {
        Some(format!(
            "{} of {} deliveries were lost at {:.0} msg/s",
            step.lost, step.expected_deliveries, step.rate_msg_s
        ))
    } else if step.latency_ms.p99 >= p99_limit_ms {
        Some(format!(
            "p99 reached {:.1} ms (limit {p99_limit_ms} ms) at {:.0} msg/s",
            step.latency_ms.p99, step.rate_msg_s
        ))
    } else {
        None
    }
}

/// Runs the steps of a sweep on a connected population.
pub async fn sweep(
    settings: &Settings,
    population: &Population,
    sampler: &Sampler,
    spec: &super::scenario::SweepSpec,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> SweepFigures {
    let mut rate = spec.start_rate;
    let mut steps: Vec<StepFigures> = Vec::new();
    let mut best: Option<(f64, f64)> = None;
    let mut id = 0;
    let stopped_because = loop {
        id += 1;
        let step = population.step(settings, sampler, id, rate, spec.step_s, progress).await;
        if let Some(warning) = saturation_warning(&step) {
            eprintln!("warning: {warning}");
            warnings.push(warning);
        }
        let failure = step_failure(&step, spec.p99_limit_ms);
        if failure.is_none() {
            best = Some((step.rate_msg_s, step.deliveries_per_s));
        }
        steps.push(step);
        if let Some(failure) = failure {
            break failure;
        }
        if rate >= spec.max_rate {
            break format!("max_rate {} msg/s was reached", spec.max_rate);
        }
        rate = (rate * spec.factor).min(spec.max_rate);
        tokio::time::sleep(BETWEEN_STEPS).await;
    };
    SweepFigures {
        p99_limit_ms: spec.p99_limit_ms,
        steps,
        highest_sustained_rate_msg_s: best.map(|(rate, _)| rate),
        highest_sustained_deliveries_per_s: best.map(|(_, deliveries)| deliveries),
        stopped_because,
    }
}

//! The open-loop send schedule. Message `k` of a step is due at `start + k / rate`,
//! sent by sender `k % senders`; a sender that wakes up late sends at once and the
//! delay is recorded as send lag, so slowness anywhere shows in the figures instead of
//! lowering the offered rate. Each message's text carries its due time, so a receiver
//! computes the latency from the scheduled time without any shared state.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::latency::Recorder;

/// One step of constant rate: what every client needs to send and to measure.
#[derive(Debug)]
pub struct Step {
    /// The run's tag, so messages of an earlier run are never counted.
    pub run: String,
    /// The step number within the run.
    pub id: u32,
    /// When message 0 is due.
    pub start: Instant,
    /// The same moment, in µs since the Unix epoch.
    pub start_unix_us: u64,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Messages in the step.
    pub total: u64,
    /// Senders taking turns.
    pub senders: u64,
    /// Latency and lag.
    pub recorder: Recorder,
    /// Messages sent so far.
    pub sent: AtomicU64,
    /// Deliveries received so far.
    pub received: AtomicU64,
    /// `error` frames received (a rejected send, a rate limit).
    pub errors: AtomicU64,
}

impl Step {
    /// A step starting at `start`, sending `rate` msg/s for `seconds`.
    pub fn new(run: &str, id: u32, start: Instant, rate: f64, seconds: f64, senders: usize, shards: usize) -> Step {
        let lead = start.saturating_duration_since(Instant::now());
        let start_unix_us = unix_us_now() + lead.as_micros() as u64;
        Step {
            run: run.to_owned(),
            id,
            start,
            start_unix_us,
            rate,
            total: ((rate * seconds).round() as u64).max(1),
            senders: senders as u64,
            recorder: Recorder::new(shards),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The messages sender `sender` sends in this step.
    pub fn messages_of(&self, sender: u64) -> u64 {
        if sender >= self.total { 0 } else { (self.total - sender).div_ceil(self.senders) }
    }

    /// Offset of message `k` from the start.
    fn offset(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// When message `k` is due.
    pub fn due(&self, k: u64) -> Instant {
        self.start + self.offset(k)
    }

    /// When the schedule ends: one interval after the last message is due.
    pub fn end(&self) -> Instant {
        self.due(self.total)
    }

    /// The text of message `k`: `<run>.<step>.<due µs since the epoch>`.
    pub fn text(&self, k: u64) -> String {
        format!("{}.{}.{}", self.run, self.id, self.start_unix_us + self.offset(k).as_micros() as u64)
    }

    /// The due time (µs since the epoch) of a message text of this step, if it is one.
    pub fn due_us_of(&self, text: &str) -> Option<u64> {
        let rest = text.strip_prefix(self.run.as_str())?.strip_prefix('.')?;
        let (step, due) = rest.split_once('.')?;
        if step.parse::<u32>().ok()? != self.id {
            return None;
        }
        due.parse().ok()
    }

    /// Counts a send made `lag` after it was due.
    pub fn record_send(&self, client: usize, lag: Duration) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.recorder.send_lag(client, lag.as_micros() as u64);
    }

    /// Counts a delivery received at `now_us` of a message due at `due_us`.
    pub fn record_delivery(&self, client: usize, due_us: u64, now_us: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.recorder.delivery(client, now_us.saturating_sub(due_us));
    }
}

/// Now, in µs since the Unix epoch (the clock every client shares).
pub fn unix_us_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_micros() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Step;

    #[test]
    fn senders_share_the_messages_and_texts_carry_their_due_time() {
        let step = Step::new("r1", 3, Instant::now(), 10.0, 1.05, 3, 1);
        assert_eq!(step.total, 11);
        let per_sender: Vec<u64> = (0..3).map(|s| step.messages_of(s)).collect();
        assert_eq!(per_sender, vec![4, 4, 3]);
        assert_eq!(step.due(5) - step.due(0), Duration::from_millis(500));
        let text = step.text(5);
        assert_eq!(step.due_us_of(&text), Some(step.start_unix_us + 500_000));
        let other_step = Step::new("r1", 4, Instant::now(), 10.0, 1.0, 3, 1);
        assert_eq!(other_step.due_us_of(&text), None, "another step's message is not counted");
        assert_eq!(step.due_us_of("r10.3.5"), None, "another run's message is not counted");
    }
}

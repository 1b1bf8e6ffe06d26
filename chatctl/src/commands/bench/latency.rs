//! Latency recording: HDR histograms in microseconds, sharded by client so that worker
//! threads rarely wait for each other, and merged once a step is over.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest value a histogram keeps apart (a minute, in µs); larger ones count as it.
const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept.
const PRECISION: u8 = 3;

/// A new, empty histogram of microseconds.
pub fn histogram() -> Histogram<u64> {
    // Constant bounds that `new_with_bounds` accepts: this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, PRECISION).expect("constant bounds that new_with_bounds accepts")
}

/// Two histograms per shard: delivery latency and send lag.
#[derive(Debug)]
struct Shard {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
}

/// Latency and send lag of one step, written by every client.
#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
}

impl Recorder {
    /// A recorder with `shards` shards (a few per worker thread).
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Mutex::new(Shard { latency: histogram(), lag: histogram() })).collect();
        Recorder { shards }
    }

    fn shard(&self, client: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[client % self.shards.len()].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One delivery, `us` after its scheduled send time.
    pub fn delivery(&self, client: usize, us: u64) {
        self.shard(client).latency.saturating_record(us.max(1));
    }

    /// One send, `us` after its scheduled time.
    pub fn send_lag(&self, client: usize, us: u64) {
        self.shard(client).lag.saturating_record(us.max(1));
    }

    /// Every shard merged: (latency, send lag).
    pub fn merged(&self) -> (Histogram<u64>, Histogram<u64>) {
        let (mut latency, mut lag) = (histogram(), histogram());
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds on both sides, so adding cannot fail.
            let _ = latency.add(&shard.latency);
            let _ = lag.add(&shard.lag);
        }
        (latency, lag)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value seen.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a µs histogram, in ms (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |quantile: f64| ms(histogram.value_at_quantile(quantile));
        if histogram.is_empty() {
            return Percentiles { p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, max: 0.0 };
        }
        Percentiles { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), p999: ms(0.999), max: self::ms(histogram.max()) }
    }
}

/// Send lag in milliseconds: how late sends left the client.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lag {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Lag {
    /// The lag figures of a µs histogram, in ms.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let all = Percentiles::of(histogram);
        Lag { p50: all.p50, p99: all.p99, max: all.max }
    }
}

/// Microseconds to milliseconds, to the microsecond.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{Percentiles, Recorder};

    #[test]
    fn shards_merge_into_one_distribution() {
        let recorder = Recorder::new(4);
        for client in 0..1000 {
            recorder.delivery(client, 1000 + client as u64);
            recorder.send_lag(client, 10);
        }
        let (latency, lag) = recorder.merged();
        assert_eq!((latency.len(), lag.len()), (1000, 1000));
        let figures = Percentiles::of(&latency);
        assert!((figures.p50 - 1.5).abs() < 0.01, "{figures:?}");
        assert!(figures.p50 <= figures.p90 && figures.p90 <= figures.p99 && figures.p99 <= figures.max);
        assert_eq!(Percentiles::of(&super::histogram()).max, 0.0);
    }
}

//! A token bucket: `rate` tokens per second, at most `burst` saved up.

use std::time::Instant;

/// Per-connection command budget.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: None,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Milliseconds until the next token.
    pub fn retry_after_ms(&self) -> u64 {
        (((1.0 - self.tokens).max(0.0) / self.rate) * 1000.0).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20, 40);
        assert!((0..40).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert_eq!(bucket.retry_after_ms(), 50);
        assert!(bucket.take(start + Duration::from_millis(50)));
        assert!(!bucket.take(start + Duration::from_millis(50)));
        let later = start + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| bucket.take(later)).count(), 40);
    }
}

//! Per-user budgets shared by every edge and api replica: token buckets kept in Redis.
//! The message budget is one; the budgets of other writes ([`crate::write_budget`])
//! are others, each under a key of its own kind.
//!
//! A bucket holds `burst` messages and refills at `per_second`, so any stretch of `t`
//! seconds admits at most `burst + per_second × t` messages, and no window boundary
//! lets a second burst through right after the first (the fixed one-second windows this
//! replaces admitted twice the rate within milliseconds). It is stored as the generic
//! cell rate algorithm stores it, as one number per user: the time at which the bucket
//! is full again ([`BucketRule`], the pure part). A message is admitted while that time
//! is at most `burst - 1` refill intervals ahead, and each admission moves it one
//! interval on.
//!
//! A send must not wait for Redis: each replica decides locally, from the time Redis
//! last reported for the user plus what it admitted since, and a background task
//! reports its admissions to Redis a few milliseconds later (one pipeline for all
//! users, one small script per user that moves the time on and answers it). Within one
//! replica the limit is exact; a replica learns what the other replicas admitted when
//! it reports its own next admission, so across replicas a user can exceed the budget
//! by what they send to each further replica within [`SYNC_DELAY`] of their first
//! message there. Redis being down must not stop chat: then each replica enforces the
//! budget on its own admissions only, and each edge's per-connection limit still
//! applies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Notify;

use crate::connect::LazyRedis;

/// How long admissions are collected before they are added to Redis in one round trip.
pub const SYNC_DELAY: Duration = Duration::from_millis(5);

/// The kind of the message budget in its Redis key.
pub const MESSAGES: &str = "msg";

/// Moves one user's bucket on by `ARGV[1]` admissions at `ARGV[2]` (µs since the
/// epoch), `ARGV[3]` µs each, and answers when it is full again. The key expires once
/// the bucket is full (a missing key is a full bucket), a second later for clock skew
/// between replicas. `%.0f`: Lua 5.1 would print a large number in exponent notation.
const ADMIT_SCRIPT: &str = r"
local now = tonumber(ARGV[2])
local full_at = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now) + tonumber(ARGV[1]) * tonumber(ARGV[3])
redis.call('SET', KEYS[1], string.format('%.0f', full_at), 'PX', math.ceil((full_at - now) / 1000) + 1000)
return full_at
";

/// The answer of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget.
    Allowed,
    /// Over it; retry after this many milliseconds.
    Limited {
        /// Milliseconds until the bucket holds a message again.
        retry_after_ms: u64,
    },
}

/// A bucket's size and refill rate, and the arithmetic on the time it is full again
/// (microseconds since the epoch, as every replica and the Redis script count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRule {
    /// Microseconds per refilled message.
    interval_us: u64,
    /// Messages a full bucket holds (at least 1).
    burst: u64,
}

impl BucketRule {
    /// `per_second` messages refilled each second, `burst` held at most (0 counts as
    /// 1); `None` when `per_second` is 0 (no budget).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        BucketRule::per(Duration::from_secs(1), per_second, burst)
    }

    /// `count` refilled every `period` (a minute, an hour), `burst` held at most (0
    /// counts as 1); `None` when `count` is 0 (no budget).
    pub fn per(period: Duration, count: u32, burst: u32) -> Option<Self> {
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        (count > 0)
            .then(|| BucketRule { interval_us: (period_us / u64::from(count)).max(1), burst: u64::from(burst.max(1)) })
    }

    /// When a bucket that is full again at `full_at` is full again after `count` more
    /// admissions at `now`: an admission takes a message from what is there now, so a
    /// bucket full since before `now` starts from `now`.
    pub fn after(&self, full_at: u64, now: u64, count: u64) -> u64 {
        full_at.max(now).saturating_add(count.saturating_mul(self.interval_us))
    }

    /// Whether a bucket full again at `full_at` holds a message at `now`; if not, the
    /// microseconds until it does.
    pub fn check(&self, full_at: u64, now: u64) -> Result<(), u64> {
        let owed = full_at.saturating_sub(now);
        let allowed = (self.burst - 1) * self.interval_us;
        if owed <= allowed { Ok(()) } else { Err(owed - allowed) }
    }
}

/// Counts one kind of write (messages, read marks, ...) per user across all replicas.
/// Cheap to clone.
#[derive(Clone)]
pub struct UserBudget {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    redis: LazyRedis,
    /// Names the kind in the Redis key, so each kind has buckets of its own.
    kind: &'static str,
    rule: BucketRule,
    buckets: Mutex<HashMap<String, Bucket>>,
    pending: Arc<Notify>,
}

/// One user's bucket, as this replica knows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// When the bucket is full again as Redis last answered (every replica's reported
    /// admissions), or as this replica counted while Redis could not answer.
    full_at: u64,
    /// Admitted here and not yet sent to Redis.
    unsent: u64,
    /// Sent to Redis, answer not yet back.
    in_flight: u64,
}

impl Bucket {
    /// When the bucket is full again, counting this replica's unreported admissions.
    fn full_at(&self, rule: &BucketRule, now: u64) -> u64 {
        rule.after(self.full_at, now, self.unsent + self.in_flight)
    }
}

impl UserBudget {
    /// The message budget: `per_second` messages with bursts of `burst`; a
    /// `per_second` of 0 disables it.
    pub fn messages(redis: LazyRedis, per_second: u32, burst: u32) -> Self {
        UserBudget::new(redis, MESSAGES, BucketRule::new(per_second, burst))
    }

    /// A budget of `kind` (its name in the Redis key) under `rule`; `None` disables it.
    /// Starts the task that reports admissions to Redis; it ends when the last clone of
    /// the budget is dropped.
    pub fn new(redis: LazyRedis, kind: &'static str, rule: Option<BucketRule>) -> Self {
        let Some(rule) = rule else {
            return UserBudget { shared: None };
        };
        let pending = Arc::new(Notify::new());
        let shared = Arc::new(Shared { redis, kind, rule, buckets: Mutex::default(), pending: pending.clone() });
        tokio::spawn(report_admissions(Arc::downgrade(&shared), pending));
        UserBudget { shared: Some(shared) }
    }

    /// Counts one write of `user_id`, without waiting for Redis.
    pub fn take(&self, user_id: &str) -> Verdict {
        let Some(shared) = &self.shared else { return Verdict::Allowed };
        let now = unix_micros();
        let first_unsent = {
            let mut buckets = shared.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let bucket = buckets.entry(user_id.to_owned()).or_default();
            if let Err(wait_us) = shared.rule.check(bucket.full_at(&shared.rule, now), now) {
                return Verdict::Limited { retry_after_ms: wait_us.div_ceil(1000) };
            }
            bucket.unsent += 1;
            bucket.unsent == 1
        };
        if first_unsent {
            shared.pending.notify_one();
        }
        Verdict::Allowed
    }
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Adds the admissions of every user to Redis, [`SYNC_DELAY`] after the first one, and
/// records the times Redis answers.
async fn report_admissions(shared: Weak<Shared>, pending: Arc<Notify>) {
    loop {
        // Wakes up now and then to notice that the budget was dropped.
        if tokio::time::timeout(Duration::from_secs(1), pending.notified()).await.is_err() {
            if shared.strong_count() == 0 {
                return;
            }
            continue;
        }
        tokio::time::sleep(SYNC_DELAY).await;
        let Some(shared) = shared.upgrade() else { return };
        let now = unix_micros();
        let batch = take_unsent(&shared, now);
        if batch.is_empty() {
            continue;
        }
        let answers = add_to_redis(&shared, &batch, now).await;
        record_answers(&shared, &batch, answers.as_deref(), now);
    }
}

/// (user, admissions) of every user with unsent admissions; they move to `in_flight`.
/// Users whose bucket is full again with nothing on the way are forgotten.
fn take_unsent(shared: &Shared, now: u64) -> Vec<(String, u64)> {
    let mut buckets = shared.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    buckets.retain(|_, bucket| bucket.full_at(&shared.rule, now) > now);
    buckets
        .iter_mut()
        .filter(|(_, bucket)| bucket.unsent > 0)
        .map(|(user, bucket)| {
            let unsent = std::mem::take(&mut bucket.unsent);
            bucket.in_flight += unsent;
            (user.clone(), unsent)
        })
        .collect()
}

/// One [`ADMIT_SCRIPT`] call per user in one pipeline; the times the buckets are full
/// again, or `None` when Redis cannot be reached. `EVAL` rather than `EVALSHA`: a
/// pipeline cannot load a script a node lacks (after a restart or a failover), and the
/// server caches the compiled body anyway.
async fn add_to_redis(shared: &Shared, batch: &[(String, u64)], now: u64) -> Option<Vec<u64>> {
    let mut pipe = redis::pipe();
    for (user, count) in batch {
        pipe.cmd("EVAL")
            .arg(ADMIT_SCRIPT)
            .arg(1)
            .arg(crate::redis_keys::user_budget(user, shared.kind))
            .arg(*count)
            .arg(now)
            .arg(shared.rule.interval_us);
    }
    let result: Result<Vec<u64>, redis::RedisError> = async {
        let mut connection = shared.redis.get().await?;
        pipe.query_async(&mut connection).await
    }
    .await;
    match result {
        Ok(answers) => Some(answers),
        Err(error) => {
            tracing::debug!(%error, kind = shared.kind, "budget not shared: Redis unavailable");
            None
        }
    }
}

/// Moves the batch from `in_flight` into `full_at`: Redis's answer when there is one
/// (it never moves a bucket back), this replica's own count otherwise.
fn record_answers(shared: &Shared, batch: &[(String, u64)], answers: Option<&[u64]>, now: u64) {
    let mut buckets = shared.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    for (i, (user, count)) in batch.iter().enumerate() {
        let Some(bucket) = buckets.get_mut(user) else { continue };
        bucket.in_flight = bucket.in_flight.saturating_sub(*count);
        bucket.full_at = match answers.and_then(|a| a.get(i)) {
            Some(answer) => bucket.full_at.max(*answer),
            None => shared.rule.after(bucket.full_at, now, *count),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    fn rule(per_second: u32, burst: u32) -> BucketRule {
        BucketRule::new(per_second, burst).unwrap_or_else(|| panic!("a budget"))
    }

    /// Admits at `now` as long as the bucket allows; returns how many fit.
    fn burst_at(rule: &BucketRule, full_at: &mut u64, now: u64, tries: u64) -> u64 {
        let mut admitted = 0;
        for _ in 0..tries {
            if rule.check(*full_at, now).is_ok() {
                *full_at = rule.after(*full_at, now, 1);
                admitted += 1;
            }
        }
        admitted
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_refills_at_the_rate() {
        let rule = rule(10, 20);
        let mut full_at = 0;
        let start = 1_700_000_000 * SECOND;
        assert_eq!(burst_at(&rule, &mut full_at, start, 30), 20, "the burst");
        assert_eq!(rule.check(full_at, start), Err(SECOND / 10), "the next one in 100 ms");
        assert_eq!(burst_at(&rule, &mut full_at, start + SECOND / 10 - 1, 5), 0, "not a microsecond early");
        assert_eq!(burst_at(&rule, &mut full_at, start + SECOND / 2, 10), 5, "half a second refills five");
        assert_eq!(burst_at(&rule, &mut full_at, start + 10 * SECOND, 30), 20, "a rested bucket is full again");
    }

    #[test]
    fn a_burst_across_a_second_boundary_is_refused() {
        // The fixed windows admitted 10 at x.990 s and 10 more at (x+1).010 s.
        let rule = rule(10, 10);
        let mut full_at = 0;
        let boundary = 1_700_000_001 * SECOND;
        assert_eq!(burst_at(&rule, &mut full_at, boundary - 10_000, 10), 10);
        assert_eq!(burst_at(&rule, &mut full_at, boundary + 10_000, 10), 0, "20 ms later: nothing refilled yet");
        assert_eq!(rule.check(full_at, boundary + 10_000), Err(80_000), "retry after 80 ms");
        let in_any_second = burst_at(&rule, &mut full_at, boundary + SECOND - 10_000, 20);
        assert_eq!(10 + in_any_second, 20, "burst + rate × 1 s within the second after the first burst");
    }

    #[test]
    fn admissions_counted_together_equal_admissions_one_by_one() {
        let rule = rule(3, 5);
        let now = 1_700_000_000 * SECOND;
        let mut one_by_one = now - 7 * SECOND;
        for _ in 0..4 {
            one_by_one = rule.after(one_by_one, now, 1);
        }
        assert_eq!(rule.after(now - 7 * SECOND, now, 4), one_by_one);
        assert_eq!(rule.after(now + SECOND, now, 2), now + SECOND + 2 * 333_333, "an owing bucket keeps owing");
        assert!(BucketRule::new(0, 10).is_none(), "0 per second is no budget");
        let single = super::BucketRule::new(3, 0).unwrap_or_else(|| panic!("a budget"));
        assert_eq!(single.check(0, now), Ok(()), "a burst of 0 still admits one");
        assert!(single.check(single.after(0, now, 1), now).is_err(), "and then waits for the refill");
    }

    #[test]
    fn a_rule_per_minute_or_hour_refills_one_every_period_over_count() {
        let per_minute = BucketRule::per(Duration::from_secs(60), 30, 5).unwrap_or_else(|| panic!("a budget"));
        let now = 1_700_000_000 * SECOND;
        let mut full_at = 0;
        assert_eq!(burst_at(&per_minute, &mut full_at, now, 10), 5, "the burst");
        assert_eq!(per_minute.check(full_at, now), Err(2 * SECOND), "then one every two seconds");
        let per_hour = BucketRule::per(Duration::from_secs(3600), 50, 50).unwrap_or_else(|| panic!("a budget"));
        let mut full_at = 0;
        assert_eq!(burst_at(&per_hour, &mut full_at, now, 60), 50);
        assert_eq!(per_hour.check(full_at, now), Err(72 * SECOND), "then one every 72 s");
        assert!(BucketRule::per(Duration::from_secs(60), 0, 5).is_none(), "0 is no budget");
    }

    /// A budget state holding user `u`'s bucket.
    fn with_bucket(bucket: Bucket) -> Shared {
        let redis = LazyRedis::new(&crate::config::RedisArgs { redis_url: "redis://127.0.0.1:1".into() })
            .unwrap_or_else(|error| panic!("{error}"));
        let shared = Shared {
            redis,
            kind: MESSAGES,
            rule: rule(10, 10),
            buckets: Mutex::default(),
            pending: Arc::new(Notify::new()),
        };
        shared.buckets.lock().unwrap_or_else(PoisonError::into_inner).insert("u".into(), bucket);
        shared
    }

    fn bucket(shared: &Shared) -> Option<Bucket> {
        shared.buckets.lock().unwrap_or_else(PoisonError::into_inner).get("u").copied()
    }

    #[test]
    fn answers_from_redis_include_other_replicas() {
        let now = 1_700_000_000 * SECOND;
        let shared = with_bucket(Bucket { full_at: 0, unsent: 3, in_flight: 0 });
        let batch = take_unsent(&shared, now);
        assert_eq!(batch, vec![("u".to_owned(), 3)]);
        let sent = bucket(&shared).unwrap_or_default();
        assert_eq!((sent.unsent, sent.in_flight, sent.full_at(&shared.rule, now)), (0, 3, now + 300_000));
        // Another replica admitted 5 just before: Redis answers 8 intervals ahead.
        record_answers(&shared, &batch, Some(&[now + 800_000]), now);
        let answered = bucket(&shared).unwrap_or_default();
        assert_eq!((answered.in_flight, answered.full_at(&shared.rule, now)), (0, now + 800_000));
        assert_eq!(shared.rule.check(answered.full_at, now), Ok(()), "two left");
        assert!(shared.rule.check(now + 1_000_000, now).is_err(), "none left after two more");
    }

    #[test]
    fn without_redis_the_local_count_still_holds_and_full_buckets_are_forgotten() {
        let now = 1_700_000_000 * SECOND;
        let shared = with_bucket(Bucket { full_at: now + 200_000, unsent: 4, in_flight: 0 });
        let batch = take_unsent(&shared, now);
        record_answers(&shared, &batch, None, now);
        assert_eq!(bucket(&shared).map(|b| b.full_at), Some(now + 600_000));
        assert_eq!(take_unsent(&shared, now + 600_000), vec![]);
        assert_eq!(bucket(&shared), None, "a full bucket needs no entry");
    }
}

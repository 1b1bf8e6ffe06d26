//! The per-user message budget shared by every edge and api replica: a one-second
//! window counted in Redis.
//!
//! A send must not wait for Redis: each replica decides locally, from the count Redis
//! last reported for the window plus what it admitted since, and a background task
//! adds its admissions to Redis a few milliseconds later (one pipeline for all users)
//! and reads the window's total back. Within one replica the limit is exact; a replica
//! learns the other replicas' count for a window when it reports its own first
//! admission of that window, so across replicas a user can exceed the budget by what
//! they sent to each further replica within [`SYNC_DELAY`] of their first message
//! there. Redis being down must not stop chat: then each replica enforces the
//! budget on its own counts only, and each edge's per-connection limit still applies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Notify;

use crate::connect::LazyRedis;

/// How long admissions are collected before they are added to Redis in one round trip.
pub const SYNC_DELAY: Duration = Duration::from_millis(5);

/// The answer of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget.
    Allowed,
    /// Over it; retry after this many milliseconds.
    Limited {
        /// Milliseconds to the next window.
        retry_after_ms: u64,
    },
}

/// Counts messages per user per second across all replicas. Cheap to clone.
#[derive(Clone)]
pub struct UserMessageBudget {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    redis: LazyRedis,
    per_second: u32,
    windows: Mutex<HashMap<String, Window>>,
    pending: Arc<Notify>,
}

/// One user's count in the current window, as this replica knows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Unix second of the window.
    second: u64,
    /// The window's total in Redis at the last answer (every replica's admissions).
    reported: u64,
    /// Admitted here and not yet added to Redis.
    unsent: u64,
    /// Added to Redis, answer not yet back.
    in_flight: u64,
}

impl Window {
    fn count(&self) -> u64 {
        self.reported + self.unsent + self.in_flight
    }
}

impl UserMessageBudget {
    /// A budget of `per_second` messages; 0 disables it. Starts the task that reports
    /// admissions to Redis; it ends when the last clone of the budget is dropped.
    pub fn new(redis: LazyRedis, per_second: u32) -> Self {
        if per_second == 0 {
            return UserMessageBudget { shared: None };
        }
        let pending = Arc::new(Notify::new());
        let shared = Arc::new(Shared { redis, per_second, windows: Mutex::default(), pending: pending.clone() });
        tokio::spawn(report_admissions(Arc::downgrade(&shared), pending));
        UserMessageBudget { shared: Some(shared) }
    }

    /// Counts one message of `user_id`, without waiting for Redis.
    pub fn take(&self, user_id: &str) -> Verdict {
        let Some(shared) = &self.shared else { return Verdict::Allowed };
        let now_ms = unix_millis();
        let second = now_ms / 1000;
        let first_unsent = {
            let mut windows = shared.windows.lock().unwrap_or_else(PoisonError::into_inner);
            let window = windows.entry(user_id.to_owned()).or_default();
            if window.second != second {
                *window = Window { second, ..Window::default() };
            }
            if window.count() >= u64::from(shared.per_second) {
                return Verdict::Limited { retry_after_ms: 1000 - now_ms % 1000 };
            }
            window.unsent += 1;
            window.unsent == 1
        };
        if first_unsent {
            shared.pending.notify_one();
        }
        Verdict::Allowed
    }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Adds the admissions of every user to Redis, [`SYNC_DELAY`] after the first one, and
/// records the totals Redis answers.
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
        let batch = take_unsent(&shared);
        if batch.is_empty() {
            continue;
        }
        let totals = add_to_redis(&shared.redis, &batch).await;
        record_totals(&shared, &batch, totals.as_deref());
    }
}

/// (user, window second, admissions) of every user with unsent admissions; they move to
/// `in_flight`. Windows of past seconds are forgotten.
fn take_unsent(shared: &Shared) -> Vec<(String, u64, u64)> {
    let second = unix_millis() / 1000;
    let mut windows = shared.windows.lock().unwrap_or_else(PoisonError::into_inner);
    windows.retain(|_, window| window.second + 1 >= second);
    windows
        .iter_mut()
        .filter(|(_, window)| window.unsent > 0)
        .map(|(user, window)| {
            let unsent = std::mem::take(&mut window.unsent);
            window.in_flight += unsent;
            (user.clone(), window.second, unsent)
        })
        .collect()
}

/// INCRBY and EXPIRE for each entry in one pipeline; the totals, or `None` when Redis
/// cannot be reached.
async fn add_to_redis(redis: &LazyRedis, batch: &[(String, u64, u64)]) -> Option<Vec<u64>> {
    let mut pipe = redis::pipe();
    for (user, second, count) in batch {
        let key = crate::redis_keys::message_budget(user, *second);
        pipe.incr(&key, *count).expire(&key, 2).ignore();
    }
    let result: Result<Vec<u64>, redis::RedisError> = async {
        let mut connection = redis.get().await?;
        pipe.query_async(&mut connection).await
    }
    .await;
    match result {
        Ok(totals) => Some(totals),
        Err(error) => {
            tracing::debug!(%error, "message budget not shared: Redis unavailable");
            None
        }
    }
}

/// Moves the batch from `in_flight` to `reported`: the Redis totals when there are
/// some, this replica's own counts otherwise.
fn record_totals(shared: &Shared, batch: &[(String, u64, u64)], totals: Option<&[u64]>) {
    let mut windows = shared.windows.lock().unwrap_or_else(PoisonError::into_inner);
    for (i, (user, second, count)) in batch.iter().enumerate() {
        let Some(window) = windows.get_mut(user) else { continue };
        if window.second != *second {
            continue;
        }
        window.in_flight = window.in_flight.saturating_sub(*count);
        window.reported = match totals.and_then(|t| t.get(i)) {
            Some(total) => window.reported.max(*total),
            None => window.reported + count,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget state holding one window of user `u` in the current second.
    fn with_window(reported: u64, unsent: u64) -> (Shared, u64) {
        let redis = LazyRedis::new(&crate::config::RedisArgs { redis_url: "redis://127.0.0.1:1".into() })
            .unwrap_or_else(|error| panic!("{error}"));
        let shared = Shared { redis, per_second: 10, windows: Mutex::default(), pending: Arc::new(Notify::new()) };
        let second = unix_millis() / 1000;
        let window = Window { second, reported, unsent, in_flight: 0 };
        shared.windows.lock().unwrap_or_else(PoisonError::into_inner).insert("u".into(), window);
        (shared, second)
    }

    fn window(shared: &Shared) -> Window {
        shared.windows.lock().unwrap_or_else(PoisonError::into_inner)["u"]
    }

    #[test]
    fn totals_from_redis_include_other_replicas() {
        let (shared, second) = with_window(0, 3);
        let batch = take_unsent(&shared);
        assert_eq!(batch, vec![("u".to_owned(), second, 3)]);
        let sent = window(&shared);
        assert_eq!((sent.unsent, sent.in_flight, sent.count()), (0, 3, 3));
        // Another replica admitted 5 in the same window: Redis answers 8.
        record_totals(&shared, &batch, Some(&[8]));
        let answered = window(&shared);
        assert_eq!((answered.reported, answered.in_flight, answered.count()), (8, 0, 8));
    }

    #[test]
    fn without_redis_the_local_count_still_holds() {
        let (shared, _) = with_window(2, 4);
        let batch = take_unsent(&shared);
        record_totals(&shared, &batch, None);
        assert_eq!(window(&shared).count(), 6);
    }
}

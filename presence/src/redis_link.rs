//! Redis as an optional dependency. Every step has a deadline: while Redis is away the
//! reconnecting client would otherwise hold a call for its whole retry schedule (about
//! ten seconds). A failed or late step marks Redis down; while it is down, steps are
//! skipped at once, and a check every second marks it up again when it answers.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use chat_core::connect::LazyRedis;
use chat_core::redis_conn::RedisConnection;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

/// How long one step may take (a healthy Redis answers in well under a millisecond).
const STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a recovery check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a down Redis is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The worker's Redis connection and whether it currently answers.
pub struct RedisLink {
    redis: LazyRedis,
    up: AtomicBool,
}

impl RedisLink {
    /// Wraps the connection; it counts as down until [`RedisLink::check`] succeeds.
    pub fn new(redis: LazyRedis) -> Self {
        RedisLink { redis, up: AtomicBool::new(false) }
    }

    /// Runs one step on Redis; `None` when Redis is down, fails or is too slow.
    pub async fn call<T, F, Fut>(&self, step: F) -> Option<T>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.up.load(Ordering::Relaxed) {
            return None;
        }
        let attempt = async {
            let connection = self.redis.get().await?;
            step(connection).await
        };
        match tokio::time::timeout(STEP_TIMEOUT, attempt).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.failed(&error);
                None
            }
            Err(_) => {
                self.mark_down(&format!("no answer within {STEP_TIMEOUT:?}"));
                None
            }
        }
    }

    /// Records a failed step: a connection problem marks Redis down.
    fn failed(&self, error: &redis::RedisError) {
        let unreachable = error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error();
        if unreachable {
            self.mark_down(&error.to_string());
        } else {
            tracing::warn!(%error, "redis step failed");
        }
    }

    fn mark_down(&self, error: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error, "redis unavailable; presence and typing degrade until it answers");
        }
    }

    /// Checks Redis (connecting if needed; in a cluster, every master and the cluster's
    /// state); marks it up when it answers. Returns whether it did.
    pub async fn check(&self) -> bool {
        let ping = async { self.redis.get().await?.check().await };
        let answered = matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_)));
        if answered && !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("redis available");
        }
        answered
    }

    /// Checks a down Redis every second until `shutdown`.
    pub async fn watch(&self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    if !self.up.load(Ordering::Relaxed) {
                        self.check().await;
                    }
                }
            }
        }
    }
}

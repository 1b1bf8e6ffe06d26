//! The per-user message budget shared by every edge and api replica: a one-second
//! window counted in Redis. Redis being down must not stop chat, so then the budget is
//! not enforced (fail open) and each edge's per-connection limit still applies.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::connect::LazyRedis;

/// The answer of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget (or Redis is unavailable).
    Allowed,
    /// Over it; retry after this many milliseconds.
    Limited {
        /// Milliseconds to the next window.
        retry_after_ms: u64,
    },
}

/// Counts messages per user per second across all replicas.
#[derive(Clone)]
pub struct UserMessageBudget {
    redis: LazyRedis,
    per_second: u32,
}

impl UserMessageBudget {
    /// A budget of `per_second` messages; 0 disables it.
    pub fn new(redis: LazyRedis, per_second: u32) -> Self {
        UserMessageBudget { redis, per_second }
    }

    /// Counts one message of `user_id`.
    pub async fn take(&self, user_id: &str) -> Verdict {
        if self.per_second == 0 {
            return Verdict::Allowed;
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let window = now_ms / 1000;
        let key = crate::redis_keys::message_budget(user_id, window);
        let count: Result<(u64,), redis::RedisError> = async {
            let mut connection = self.redis.get().await?;
            redis::pipe().atomic().incr(&key, 1u64).expire(&key, 2).ignore().query_async(&mut connection).await
        }
        .await;
        match count {
            Ok((count,)) if count > u64::from(self.per_second) => {
                Verdict::Limited { retry_after_ms: 1000 - now_ms % 1000 }
            }
            Ok(_) => Verdict::Allowed,
            Err(error) => {
                tracing::debug!(%error, "message budget unavailable; not enforced");
                Verdict::Allowed
            }
        }
    }
}

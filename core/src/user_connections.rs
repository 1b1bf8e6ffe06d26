//! The edges' count of WebSocket connections per user across every edge, in Redis: one
//! sorted set per user ([`crate::redis_keys::user_connections`]) of connection ids scored by when they
//! stop counting. An edge adds a connection when it opens (one script that first drops
//! the expired ones, so the count and the addition are one step), moves every score
//! on at each presence heartbeat, and removes it when it closes; the connections of
//! an edge that died stop counting within [`CONN_TTL`]. When Redis cannot answer a
//! connection is admitted, and each edge's own count (its registry) is the limit, as it
//! always is too; after a failure Redis is left alone for [`REDIS_PAUSE`], so that an
//! outage slows down one upgrade, not each.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{connect::LazyRedis, redis_keys};

/// How long a connection counts without a heartbeat: three presence heartbeats.
pub const CONN_TTL: Duration = Duration::from_secs(3 * chat_nats::presence::CONN_HEARTBEAT_S);

/// The longest a step waits for Redis: an upgrade then admits on this edge's count
/// alone, a close leaves the connection to expire.
const REDIS_WAIT: Duration = Duration::from_millis(500);

/// Drops the user's expired connections (scores at most `ARGV[1]`, ms since the
/// epoch); if fewer than `ARGV[2]` remain, adds `ARGV[4]` counting until `ARGV[3]`
/// and answers 1, else 0. The key lives as long as its latest connection counts.
const ADMIT_SCRIPT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// How long Redis is left alone after it failed to answer, so that while it is down
/// an upgrade does not wait [`REDIS_WAIT`] each time.
const REDIS_PAUSE: Duration = Duration::from_secs(5);

/// Counts each user's connections across edges. Cheap to clone.
#[derive(Clone)]
pub struct UserConnections {
    redis: LazyRedis,
    max_per_user: usize,
    /// Until when Redis is not asked, after a failure.
    paused_until: Arc<Mutex<Option<Instant>>>,
}

impl UserConnections {
    /// At most `max_per_user` connections per user, counted in `redis`.
    pub fn new(redis: LazyRedis, max_per_user: usize) -> Self {
        UserConnections { redis, max_per_user, paused_until: Arc::default() }
    }

    /// Whether the user may open `conn_id`: false when their connections on every edge
    /// are at the limit already; true, and counted, otherwise or when Redis cannot say.
    pub async fn admit(&self, user_id: &str, conn_id: &str) -> bool {
        let now = unix_millis();
        let mut script = redis::pipe();
        script
            .cmd("EVAL")
            .arg(ADMIT_SCRIPT)
            .arg(1)
            .arg(redis_keys::user_connections(user_id))
            .arg(now)
            .arg(self.max_per_user)
            .arg(now + ttl_ms())
            .arg(conn_id);
        match self.query::<(i64,)>(script, "admission").await {
            Some((answer,)) => answer == 1,
            None => true,
        }
    }

    /// Keeps counting these connections (`(user, its connection ids)`) for another
    /// [`CONN_TTL`]: one pipeline for all of them.
    pub async fn refresh(&self, by_user: &[(std::sync::Arc<str>, Vec<std::sync::Arc<str>>)]) {
        if by_user.is_empty() {
            return;
        }
        let until = unix_millis() + ttl_ms();
        let mut pipe = redis::pipe();
        for (user_id, conns) in by_user {
            let key = redis_keys::user_connections(user_id);
            // XX: a connection closed meanwhile is not brought back.
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&key).arg("XX");
            for conn_id in conns {
                zadd.arg(until).arg(conn_id.as_ref());
            }
            pipe.add_command(zadd).ignore();
            pipe.cmd("PEXPIREAT").arg(&key).arg(until).ignore();
        }
        self.query::<()>(pipe, "refresh").await;
    }

    /// Stops counting `conn_id` (when Redis cannot be told, it expires).
    pub async fn release(&self, user_id: &str, conn_id: &str) {
        let mut remove = redis::pipe();
        remove.cmd("ZREM").arg(redis_keys::user_connections(user_id)).arg(conn_id).ignore();
        self.query::<()>(remove, "release").await;
    }

    /// Runs `pipe` within [`REDIS_WAIT`]; `None` when Redis cannot answer in time
    /// (the connection manager would keep retrying a server that is down).
    async fn query<T: redis::FromRedisValue>(&self, pipe: redis::Pipeline, step: &'static str) -> Option<T> {
        let paused_until = *self.paused_until.lock().unwrap_or_else(PoisonError::into_inner);
        if paused_until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let answer = tokio::time::timeout(REDIS_WAIT, async {
            let mut redis = self.redis.get().await?;
            pipe.query_async::<T>(&mut redis).await
        })
        .await;
        let failure = match answer {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        tracing::debug!(error = failure, step, "connections not counted across edges: Redis unavailable");
        *self.paused_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REDIS_PAUSE);
        None
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(CONN_TTL.as_millis()).unwrap_or(u64::MAX)
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

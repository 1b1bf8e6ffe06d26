//! A user's connections in Redis and the online/offline transitions they cause (layout
//! in [`chat_core::presence_state`]). Every transition is decided by one atomic step on
//! the user's own keys (one hash tag, so it stays on one Redis Cluster shard), so two
//! replicas never both announce it: going online is adding the marker
//! [`ANNOUNCED_MEMBER`] (`ZADD NX` answers 1 only once), going offline is removing it
//! (in a Lua script, once no connection is left and the grace has passed). The online
//! set is kept beside, as the sweeper's index and the gauge's source.

use chat_core::redis_conn::RedisConnection;
use chat_core::{presence_state::ANNOUNCED_MEMBER, redis_keys};
use redis::{AsyncCommands, RedisResult, Script};

/// Drops expired connections; if none is left, the user is announced online and the
/// grace since the last connection has passed, removes the marker. Returns
/// `{outcome, last_seen_ms}` with the outcome codes of [`Swept::from_reply`].
const SWEEP_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(0', now)
if redis.call('ZCOUNT', KEYS[1], '(0', '+inf') > 0 then return {0, 0} end
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then return {3, 0} end
local seen = tonumber(redis.call('GET', KEYS[2]))
if seen and now - seen < tonumber(ARGV[2]) then return {1, 0} end
if not seen then
  seen = now
  redis.call('SET', KEYS[2], seen)
end
redis.call('ZREM', KEYS[1], ARGV[3])
return {2, seen}
";

/// What one sweep of a user found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// A connection is still open.
    Online,
    /// No connection left, but the grace since the last one has not passed yet.
    Pending,
    /// The user just went offline (announce it); they were last seen then.
    WentOffline {
        /// When they were last connected (ms since the epoch).
        last_seen_ms: i64,
    },
    /// The user was not announced online (a stale entry of the online set).
    NotOnline,
}

impl Swept {
    /// Decodes the script's `{outcome, last_seen_ms}` reply.
    fn from_reply((outcome, last_seen_ms): (i64, i64)) -> Swept {
        match outcome {
            0 => Swept::Online,
            1 => Swept::Pending,
            2 => Swept::WentOffline { last_seen_ms },
            _ => Swept::NotOnline,
        }
    }
}

/// The per-user Redis steps, with the script loaded once per process.
pub struct ConnState {
    sweep: Script,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState { sweep: Script::new(SWEEP_SCRIPT) }
    }
}

impl ConnState {
    /// Records an open connection (opened or confirmed) valid until `expires_ms`; true
    /// when it made the user online, which the caller then announces.
    pub async fn connected(
        &self,
        redis: &mut RedisConnection,
        user_id: &str,
        conn_id: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> RedisResult<bool> {
        let conns = redis_keys::conns(user_id);
        let (announced,): (i64,) = redis::pipe()
            .atomic()
            // GT: a late, older heartbeat never shortens a connection's life.
            .cmd("ZADD")
            .arg(&conns)
            .arg("GT")
            .arg(expires_ms)
            .arg(conn_id)
            .ignore()
            .set(redis_keys::last_seen(user_id), now_ms)
            .ignore()
            .cmd("ZADD")
            .arg(&conns)
            .arg("NX")
            .arg(0)
            .arg(ANNOUNCED_MEMBER)
            .query_async(redis)
            .await?;
        if announced == 1 {
            let _: i64 = redis.sadd(redis_keys::ONLINE, user_id).await?;
        }
        Ok(announced == 1)
    }

    /// Records a closed connection. Never announces: the sweeper does, after the grace,
    /// so a reconnect within the grace is no offline/online flap.
    pub async fn disconnected(
        &self,
        redis: &mut RedisConnection,
        user_id: &str,
        conn_id: &str,
        now_ms: i64,
    ) -> RedisResult<()> {
        redis::pipe()
            .atomic()
            .zrem(redis_keys::conns(user_id), conn_id)
            .ignore()
            .set(redis_keys::last_seen(user_id), now_ms)
            .ignore()
            .exec_async(redis)
            .await
    }

    /// Sweeps one user: drops their expired connections and, when none is left and the
    /// grace has passed, turns them offline.
    pub async fn sweep(
        &self,
        redis: &mut RedisConnection,
        user_id: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> RedisResult<Swept> {
        let reply = self
            .sweep
            .key(redis_keys::conns(user_id))
            .key(redis_keys::last_seen(user_id))
            .arg(now_ms)
            .arg(grace_ms)
            .arg(ANNOUNCED_MEMBER)
            .invoke_async(redis)
            .await?;
        Ok(Swept::from_reply(reply))
    }

    /// Removes a user who is not online from the online set. A connection that made
    /// them online in the meantime put the marker back before its own `SADD`; seeing
    /// the marker after the `SREM`, this adds them back, so an online user is never
    /// left out of the sweeps. The two keys are in different slots, so the `SREM` is
    /// awaited before the marker is read (in a cluster, one pipeline would send them to
    /// their nodes concurrently, and the read could see the state before the `SREM`).
    pub async fn forget_online(&self, redis: &mut RedisConnection, user_id: &str) -> RedisResult<()> {
        let _: i64 = redis.srem(redis_keys::ONLINE, user_id).await?;
        let marker: Option<f64> = redis.zscore(redis_keys::conns(user_id), ANNOUNCED_MEMBER).await?;
        if marker.is_some() {
            let _: i64 = redis.sadd(redis_keys::ONLINE, user_id).await?;
        }
        Ok(())
    }

    /// One page of the online set (`SSCAN`): the next cursor (0 when done) and users.
    pub async fn online_page(&self, redis: &mut RedisConnection, cursor: u64) -> RedisResult<(u64, Vec<String>)> {
        redis::cmd("SSCAN").arg(redis_keys::ONLINE).arg(cursor).arg("COUNT").arg(500).query_async(redis).await
    }

    /// How many users are online.
    pub async fn online_count(&self, redis: &mut RedisConnection) -> RedisResult<i64> {
        redis.scard(redis_keys::ONLINE).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replies_map_to_outcomes() {
        assert_eq!(Swept::from_reply((0, 0)), Swept::Online);
        assert_eq!(Swept::from_reply((1, 0)), Swept::Pending);
        assert_eq!(Swept::from_reply((2, 1_700_000_000_000)), Swept::WentOffline { last_seen_ms: 1_700_000_000_000 });
        assert_eq!(Swept::from_reply((3, 0)), Swept::NotOnline);
    }
}

//! Reading presence from Redis, for the api (`GET /api/users/presence`,
//! `chat.rpc.presence`) and the notifier (whom to push). The presence worker is the
//! only writer.
//!
//! Layout of one user's state (keys in [`crate::redis_keys`]):
//! - `conns(user)`: sorted set, member = connection id, score = the connection's expiry
//!   (ms since the epoch), plus the marker [`ANNOUNCED_MEMBER`] with score 0 while the
//!   user is announced online. A user is online iff a member has a score above now, so
//!   the marker never counts as a connection;
//! - `last_seen(user)`: when the user was last connected (ms since the epoch).

use chat_nats::presence::{Presence, Status};
use chrono::{DateTime, Utc};

use crate::redis_keys;

/// Member of `conns(user)` (score 0) present while the user is announced online; it is
/// what makes the online/offline transitions happen once. Not a valid connection id.
pub const ANNOUNCED_MEMBER: &str = "~announced";

/// The presence of each user, in the order asked, in one pipeline (one round trip to a
/// server; one per node holding some of the users in a cluster): online iff a
/// connection has not expired; `last_seen` is now when online, else the stored value.
pub async fn read(
    conn: &mut crate::redis_conn::RedisConnection,
    user_ids: &[String],
) -> Result<Vec<Presence>, redis::RedisError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let live_from = format!("({}", now.timestamp_millis());
    let mut pipe = redis::pipe();
    for user_id in user_ids {
        pipe.zcount(redis_keys::conns(user_id), &live_from, "+inf").get(redis_keys::last_seen(user_id));
    }
    let replies: Vec<Option<i64>> = pipe.query_async(conn).await?;
    Ok(user_ids
        .iter()
        .zip(replies.chunks(2))
        .map(|(user_id, reply)| {
            let live = reply.first().copied().flatten().unwrap_or(0);
            let stored = reply.get(1).copied().flatten();
            presence_of(user_id, live, stored, now)
        })
        .collect())
}

/// Which of `user_ids` have a connection that has not expired, in the order asked,
/// without their last-seen times: what deciding whom to push needs. One `SMISMEMBER`
/// of the online set first: a user outside it is taken as not connected without
/// reading their connections, so a chat whose members are mostly offline costs about
/// one command, not one per member; those inside it are confirmed by one `ZCOUNT`
/// each (the set also holds users whose connections expired or closed a moment ago).
///
/// A user joins the online set just after their first connection's marker, so for a
/// moment a connected user can be outside it and read as not connected: the caller
/// then pushes to a device that is online, which is harmless, where the opposite error
/// would lose a push.
pub async fn connected_among(
    conn: &mut crate::redis_conn::RedisConnection,
    user_ids: &[String],
) -> Result<Vec<bool>, redis::RedisError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let in_online_set: Vec<bool> =
        redis::cmd("SMISMEMBER").arg(redis_keys::ONLINE).arg(user_ids).query_async(conn).await?;
    let candidates: Vec<&String> =
        user_ids.iter().zip(&in_online_set).filter(|(_, listed)| **listed).map(|(id, _)| id).collect();
    if candidates.is_empty() {
        return Ok(vec![false; user_ids.len()]);
    }
    let live_from = format!("({}", Utc::now().timestamp_millis());
    let mut pipe = redis::pipe();
    for user_id in &candidates {
        pipe.zcount(redis_keys::conns(user_id), &live_from, "+inf");
    }
    let live_counts: Vec<i64> = pipe.query_async(conn).await?;
    let mut live = live_counts.into_iter();
    Ok(in_online_set.into_iter().map(|listed| listed && live.next().unwrap_or(0) > 0).collect())
}

/// One user's presence from their live connection count and stored last-seen time.
fn presence_of(user_id: &str, live_conns: i64, last_seen_ms: Option<i64>, now: DateTime<Utc>) -> Presence {
    let (status, last_seen) = if live_conns > 0 {
        (Status::Online, Some(now))
    } else {
        (Status::Offline, last_seen_ms.and_then(DateTime::from_timestamp_millis))
    };
    Presence { user_id: user_id.to_owned(), status, last_seen }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_connection_means_online_and_seen_now() {
        let now = Utc::now();
        let presence = presence_of("u1", 2, Some(5), now);
        assert_eq!(presence, Presence { user_id: "u1".into(), status: Status::Online, last_seen: Some(now) });
    }

    #[test]
    fn offline_users_keep_their_stored_last_seen_or_none() {
        let now = Utc::now();
        let seen = presence_of("u1", 0, Some(1_700_000_000_123), now);
        assert_eq!(seen.status, Status::Offline);
        assert_eq!(seen.last_seen.map(|at| at.timestamp_millis()), Some(1_700_000_000_123));
        let never = presence_of("u2", 0, None, now);
        assert_eq!(never, Presence { user_id: "u2".into(), status: Status::Offline, last_seen: None });
    }

    #[test]
    fn the_marker_cannot_be_a_connection_id() {
        assert!(!chat_nats::subjects::is_valid_id(ANNOUNCED_MEMBER));
    }
}

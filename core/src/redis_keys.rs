//! Redis key names, in one place. Keys that one operation touches together share a
//! hash tag (`{…}`), so they stay on one shard of a Redis Cluster.

/// Sorted set of a user's open connections: member `conn_id`, score = expiry (ms since
/// the epoch), refreshed by the edges' heartbeats.
pub fn conns(user_id: &str) -> String {
    format!("presence:{{{user_id}}}:conns")
}

/// When the user was last connected (ms since the epoch).
pub fn last_seen(user_id: &str) -> String {
    format!("presence:{{{user_id}}}:last_seen")
}

/// Set of the users currently online (for the gauge and the expiry sweep).
pub const ONLINE: &str = "presence:online";

/// Marker that throttles typing signals to one per chat, user and second.
pub fn typing_throttle(chat_id: &str, user_id: &str) -> String {
    format!("typing:{{{chat_id}}}:{user_id}:throttle")
}

/// A user's typing state in a chat, expiring by itself.
pub fn typing(chat_id: &str, user_id: &str) -> String {
    format!("typing:{{{chat_id}}}:{user_id}")
}

/// A user's message count in one one-second window.
pub fn message_budget(user_id: &str, window_s: u64) -> String {
    format!("rate:{{{user_id}}}:msg:{window_s}")
}

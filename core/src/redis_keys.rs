//! Redis key names, in one place. Keys that one operation touches together share a
//! hash tag (`{…}`), so they stay in one slot, on one shard of a Redis Cluster.
//!
//! | key | tag | touched together by |
//! |---|---|---|
//! | [`conns`], [`last_seen`] | the user | presence: the `MULTI` of a connection report, the sweep script |
//! | [`typing_throttle`], [`typing`] | the chat | presence: the typing script |
//! | [`user_budget`] | the user | edge and api: the token bucket script (one key) |
//! | [`user_connections`] | the user | edge: the admission script (one key), `ZADD XX` + `PEXPIREAT` |
//! | [`directory_budget`] | the user | api: `INCR` + `EXPIRE` of one window's counter |
//! | [`push_sent`] | the message | notifier: `SMISMEMBER`, then `SADD` + `EXPIRE` |
//! | [`ONLINE`] | none (one key) | presence: `SADD`, `SREM`, `SSCAN`, `SCARD`, each alone |
//!
//! Steps that span users (the api's presence read, the budget's report of every user's
//! admissions) are plain pipelines: in a cluster they are split per slot
//! ([`crate::redis_conn`]), so they need no common tag. The one step that touches
//! [`ONLINE`] and a user's key and depends on their order awaits them one by one.

/// Sorted set of a user's open connections: member `conn_id`, score = expiry (ms since
/// the epoch), refreshed by the edges' heartbeats.
pub fn conns(user_id: &str) -> String {
    format!("presence:{{{user_id}}}:conns")
}

/// When the user was last connected (ms since the epoch).
pub fn last_seen(user_id: &str) -> String {
    format!("presence:{{{user_id}}}:last_seen")
}

/// Sorted set of a user's WebSocket connections on every edge, for the per-user
/// connection limit: member `conn_id`, score = when it stops counting (ms since the
/// epoch), moved on by the edges' heartbeats. Apart from [`conns`], which the presence
/// worker keeps from the edges' reports some time after they happen.
pub fn user_connections(user_id: &str) -> String {
    format!("limit:{{{user_id}}}:connections")
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

/// A user's bucket of one kind of write (`msg` for messages, see
/// [`crate::write_budget`] for the others): when it is full again (µs since the
/// epoch); no key is a full bucket. The `:bucket` suffix keeps the message bucket
/// apart from the fixed-window counters of older releases (`rate:{user}:msg:<second>`),
/// which expire by themselves.
pub fn user_budget(user_id: &str, kind: &str) -> String {
    format!("rate:{{{user_id}}}:{kind}:bucket")
}

/// How many directory searches a user made in one window (`window` names its length
/// and its number since the epoch); expires with the window.
pub fn directory_budget(user_id: &str, window: &str) -> String {
    format!("rate:{{{user_id}}}:directory:{window}")
}

/// Set of the users a push request for this message was published for; kept as long
/// as the `PUSH` stream keeps requests, so a redelivered event never makes a second
/// one, however late it comes.
pub fn push_sent(message_id: &str) -> String {
    format!("push:{{{message_id}}}:sent")
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn keys_used_together_share_a_slot_and_users_and_chats_spread() {
        for id in ["u1", "a-much-longer-user-id_42", "x"] {
            assert_eq!(Slot::for_key(conns(id)), Slot::for_key(last_seen(id)), "{id}");
            assert_eq!(Slot::for_key(typing_throttle(id, "u1")), Slot::for_key(typing(id, "u2")), "{id}");
        }
        assert_ne!(Slot::for_key(conns("u1")), Slot::for_key(conns("u2")), "each user has a slot of their own");
        assert_ne!(Slot::for_key(typing("c1", "u")), Slot::for_key(typing("c2", "u")), "so does each chat");
    }
}

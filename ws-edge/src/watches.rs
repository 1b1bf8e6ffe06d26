//! Presence watches that follow membership: what a `presence.watch` follows is what the
//! api says its viewer may see, asked when the watch is set and again whenever a chat
//! event of this edge adds or removes the viewer or someone they watch. So a user
//! removed from the last chat shared with the viewer stops being followed (the viewer
//! gets them offline and never seen, as for anyone hidden), and one who comes to share
//! a chat with them is followed without a new watch.

use std::{sync::Arc, time::Duration};

use chat_nats::{
    rpc::{self, PresenceReply, PresenceRequest},
    subjects,
};

use crate::{
    outbox::{ConnHandle, Outbound},
    protocol::ServerFrame,
    registry::{Registry, Watch},
};

/// How long the api may take to answer a presence snapshot.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The api did not answer the snapshot.
#[derive(Debug, thiserror::Error)]
#[error("presence unavailable")]
pub struct Unavailable;

/// Which presences a check of a watch sends to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// Every watched user's: the answer to a `presence.watch`.
    All,
    /// Only those the viewer may now see and could not before, or the reverse: a
    /// check after a membership change, where the others' presence is what the
    /// viewer already has.
    Changed,
}

/// Asks the api for the snapshot of `watch`, follows the users it may see and queues
/// the presences `send` names to `conn`; nothing when the connection has asked
/// another watch since.
pub async fn follow(
    nats: &async_nats::Client,
    registry: &Registry,
    conn: &ConnHandle,
    watch: &Watch,
    send: Send,
) -> Result<(), Unavailable> {
    let request = PresenceRequest { user_ids: watch.user_ids.clone(), viewer: Some(watch.viewer.clone()) };
    let body = serde_json::to_vec(&request).map_err(|_| Unavailable)?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, nats.request(subjects::rpc(rpc::PRESENCE), body.into())).await;
    let reply = answer
        .ok()
        .and_then(Result::ok)
        .and_then(|m| serde_json::from_slice::<PresenceReply>(&m.payload).ok())
        .ok_or(Unavailable)?;
    let visible: Vec<String> = watch.user_ids.iter().filter(|id| !reply.hidden.contains(id)).cloned().collect();
    let Some(before) = registry.follow(&conn.conn_id, watch, visible.clone()) else { return Ok(()) };
    let flipped = |id: &str| visible.iter().any(|v| v == id) != before.iter().any(|b| &**b == id);
    for presence in reply.users.iter().filter(|presence| send == Send::All || flipped(&presence.user_id)) {
        let frame = ServerFrame::Presence(presence).to_text();
        conn.offer(Outbound::Event { frame: frame.into(), persisted_at_micros: None, droppable: true });
    }
    Ok(())
}

/// Checks again, in the background, every watch that a membership change of
/// `user_ids` may change. A watch the api cannot answer for now keeps what it follows.
pub fn recheck(nats: &async_nats::Client, registry: &Arc<Registry>, user_ids: &[&str]) {
    let touched = registry.watches_touched_by(user_ids);
    if touched.is_empty() {
        return;
    }
    let (nats, registry) = (nats.clone(), registry.clone());
    tokio::spawn(async move {
        for (conn, watch) in touched {
            if let Err(error) = follow(&nats, &registry, &conn, &watch, Send::Changed).await {
                tracing::warn!(%error, conn_id = %conn.conn_id, "cannot check a presence watch again");
            }
        }
    });
}

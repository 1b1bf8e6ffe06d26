//! `presence.watch`: the connection follows up to 200 users' presence. The set replaces
//! the previous one; a snapshot comes first (from the api over `chat.rpc.presence`),
//! then every change from `presence.changed.<user_id>`. The api answers the snapshot
//! for this user's eyes: users whose presence they may not see come back offline and
//! never seen, and named in `hidden`, whose changes this connection does not follow.
//! So the set followed is decided when the watch is set; a client watches again to
//! pick up users it came to share a chat with.

use std::time::Duration;

use chat_nats::{
    commands::Actor,
    model::ErrorCode,
    rpc::{self, PresenceReply, PresenceRequest},
    subjects,
};

use super::reply_error;
use crate::{
    outbox::{ConnHandle, Outbound},
    protocol::ServerFrame,
    session::Session,
    state::EdgeState,
};

/// Most users one connection watches.
pub const MAX_WATCHED: usize = 200;

/// Handles one `presence.watch`.
pub async fn handle(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    reference: Option<String>,
    mut user_ids: Vec<String>,
) -> &'static str {
    let refer = reference.as_deref();
    user_ids.sort();
    user_ids.dedup();
    if user_ids.len() > MAX_WATCHED {
        reply_error(conn, refer, ErrorCode::TooLarge, "at most 200 users", None);
        return "invalid";
    }
    if let Some(bad) = user_ids.iter().find(|id| !subjects::is_valid_id(id)) {
        reply_error(conn, refer, ErrorCode::Invalid, &format!("invalid user id {bad:?}"), None);
        return "invalid";
    }
    // Nothing is followed until the api has said whom this user may see.
    edge.hub.watch(&session.user_id, &session.conn_id, Vec::new());
    if user_ids.is_empty() {
        return "accepted";
    }
    let viewer = Actor { user_id: session.user_id.to_string(), roles: session.roles.clone() };
    let request = PresenceRequest { user_ids: user_ids.clone(), viewer: Some(viewer) };
    let Ok(body) = serde_json::to_vec(&request) else { return "failed" };
    let answer =
        tokio::time::timeout(Duration::from_secs(5), edge.nats.request(subjects::rpc(rpc::PRESENCE), body.into()))
            .await;
    let Some(reply) =
        answer.ok().and_then(Result::ok).and_then(|m| serde_json::from_slice::<PresenceReply>(&m.payload).ok())
    else {
        reply_error(conn, refer, ErrorCode::Unavailable, "presence unavailable; watch again later", None);
        return "failed";
    };
    user_ids.retain(|id| !reply.hidden.contains(id));
    edge.hub.watch(&session.user_id, &session.conn_id, user_ids);
    for presence in &reply.users {
        let frame = ServerFrame::Presence(presence).to_text();
        conn.offer(Outbound::Event { frame: frame.into(), persisted_at_micros: None, droppable: true });
    }
    "accepted"
}

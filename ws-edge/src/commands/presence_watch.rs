//! `presence.watch`: the connection follows up to 200 users' presence. The set replaces
//! the previous one; a snapshot comes first (from the api over `chat.rpc.presence`),
//! then every change from `presence.changed.<user_id>`. The api answers the snapshot
//! for this user's eyes: users whose presence they may not see come back offline and
//! never seen, and named in `hidden`, whose changes this connection does not follow.
//! Membership changes seen by this edge check the watch again ([`watches`]).

use chat_nats::{commands::Actor, model::ErrorCode, subjects};

use super::reply_error;
use crate::{outbox::ConnHandle, session::Session, state::EdgeState, watches};

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
    let viewer = Actor { user_id: session.user_id.to_string(), roles: session.roles.clone() };
    let Some(watch) = edge.hub.registry().request_watch(viewer, &session.conn_id, user_ids) else { return "failed" };
    if watch.user_ids.is_empty() {
        return "accepted";
    }
    match watches::follow(&edge.nats, edge.hub.registry(), conn, &watch, watches::Send::All).await {
        Ok(()) => "accepted",
        Err(_) => {
            reply_error(conn, refer, ErrorCode::Unavailable, "presence unavailable; watch again later", None);
            "failed"
        }
    }
}

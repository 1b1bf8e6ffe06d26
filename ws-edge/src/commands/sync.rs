//! `sync`: a reconnecting client names its last seen seq per chat and gets what it
//! missed, from the api over `chat.rpc.sync`. The edge also learns from the answer
//! which chats to start or stop delivering.

use std::{collections::BTreeMap, time::Duration};

use chat_nats::{
    model::ErrorCode,
    rpc::{self, RpcError, SyncRequest, SyncResult},
    subjects,
};

use super::reply_error;
use crate::{
    outbox::{ConnHandle, Outbound},
    protocol::ServerFrame,
    registry::JOINED_SEQ_UNKNOWN,
    session::Session,
    state::EdgeState,
};

/// How long the api may take to answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Handles one `sync`.
pub async fn handle(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    reference: Option<String>,
    chats: BTreeMap<String, u64>,
) -> &'static str {
    let refer = reference.as_deref();
    if chats.len() > rpc::SYNC_MAX_CHATS {
        let reason = format!("at most {} chats in one sync", rpc::SYNC_MAX_CHATS);
        reply_error(conn, refer, ErrorCode::Invalid, &reason, None);
        return "invalid";
    }
    if let Some(bad) = chats.keys().find(|id| !subjects::is_valid_id(id)) {
        reply_error(conn, refer, ErrorCode::Invalid, &format!("invalid chat id {bad:?}"), None);
        return "invalid";
    }
    let request = SyncRequest { user_id: session.user_id.to_string(), chats };
    let Ok(body) = serde_json::to_vec(&request) else { return "failed" };
    let answer = tokio::time::timeout(SYNC_TIMEOUT, edge.nats.request(subjects::rpc(rpc::SYNC), body.into())).await;
    let payload = match answer {
        Ok(Ok(message)) => message.payload,
        _ => {
            reply_error(conn, refer, ErrorCode::Unavailable, "sync unavailable; retry", None);
            return "failed";
        }
    };
    let result: SyncResult = match serde_json::from_slice(&payload) {
        Ok(result) => result,
        Err(_) => {
            let reason = serde_json::from_slice::<RpcError>(&payload).map(|e| e.error).unwrap_or_default();
            tracing::warn!(reason, "sync failed");
            reply_error(conn, refer, ErrorCode::Unavailable, "sync unavailable; retry", None);
            return "failed";
        }
    };
    for chat in &result.new_chats {
        edge.hub.join(&session.user_id, &chat.id, JOINED_SEQ_UNKNOWN).await;
    }
    for chat_id in &result.removed_chats {
        edge.hub.leave(&session.user_id, chat_id);
    }
    let frame = ServerFrame::SyncResult { reference: refer, result: &result };
    match serde_json::to_string(&frame) {
        Ok(text) => {
            conn.offer(Outbound::Frame(text.into()));
            "accepted"
        }
        Err(_) => "failed",
    }
}

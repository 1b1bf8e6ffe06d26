//! Deliveries on `user.<user_id>.<event>`: joined chats start flowing and left ones
//! stop, rejections go
//! back to the connection that sent the command, and copies of events go to every
//! connection of the user.

use bytes::Bytes;
use chat_nats::{commands::Rejection, events::UserEvent};

use crate::{hub::Hub, protocol::ServerFrame};

/// Handles one delivery for a local user.
pub async fn handle(hub: &Hub, user_id: &str, subject: &str, payload: Bytes) {
    let event = subject.splitn(3, '.').nth(2).unwrap_or_default();
    match event {
        "rejected" => {
            let Ok(rejection) = serde_json::from_slice::<Rejection>(&payload) else { return };
            let Some(conn_id) = rejection.conn_id.as_deref() else { return };
            let frame = ServerFrame::Error {
                reference: rejection.reference.as_deref(),
                code: rejection.code,
                message: &rejection.message,
                client_msg_id: rejection.client_msg_id.as_deref(),
                retry_after_ms: None,
            }
            .to_text();
            hub.deliver_to_conn(user_id, conn_id, frame.into());
        }
        "chat.joined" | "chat.left" => match serde_json::from_slice::<UserEvent>(&payload) {
            Ok(UserEvent::ChatJoined { chat_id, .. }) => hub.join(user_id, &chat_id).await,
            Ok(UserEvent::ChatLeft { chat_id, .. }) => hub.leave(user_id, &chat_id),
            Err(error) => tracing::warn!(%error, user_id, "unreadable user delivery"),
        },
        "msg.created" => {
            if let Some(frame) = crate::hub::utf8(payload) {
                hub.deliver_to_user(user_id, &frame, event);
            }
        }
        other => tracing::debug!(user_id, event = other, "ignored user delivery"),
    }
}

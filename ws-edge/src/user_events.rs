//! Deliveries on `user.<user_id>.<event>`, through one edge-wide subscription to
//! `user.>`: joined chats start flowing (from the event that made the user a member,
//! replayed when this edge was not delivering the chat to them) and left ones stop, and
//! copies of events go to every connection of the user. Deliveries for users without a
//! connection here are skipped. (Rejections come on this edge's own outcome subjects,
//! [`outcomes`](crate::outcomes).)
//!
//! One subscription per edge instead of one per connected user: user deliveries are
//! rare (joins, leaves, resend copies), while a subscription per user cost every
//! connection a NATS channel and a task.

use bytes::Bytes;
use chat_nats::{
    events::{UserDeliveryKind, UserEvent},
    subjects,
};
use futures::StreamExt;

use crate::{
    feeds::utf8,
    hub::Hub,
    registry::{AbortOnDrop, JOINED_SEQ_UNKNOWN},
};

/// Subscribes to `user.>` (in place before this returns) and serves it.
pub async fn start(nats: &async_nats::Client, hub: Hub) -> Result<AbortOnDrop, async_nats::SubscribeError> {
    let mut subscriber = nats.subscribe(subjects::USER_ALL).await?;
    Ok(AbortOnDrop(tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let Some(user_id) = subjects::user_id_of(&message.subject) else { continue };
            if !hub.registry().has_user(user_id) {
                continue;
            }
            let Some(kind) = subjects::user_delivery_of(&message.subject) else {
                tracing::debug!(user_id, subject = %message.subject, "ignored user delivery of an unknown kind");
                continue;
            };
            handle(&hub, user_id, kind, message.payload).await;
        }
    })))
}

/// Handles one delivery for a local user.
pub async fn handle(hub: &Hub, user_id: &str, kind: UserDeliveryKind, payload: Bytes) {
    match kind {
        UserDeliveryKind::ChatJoined | UserDeliveryKind::ChatLeft => {
            match serde_json::from_slice::<UserEvent>(&payload) {
                Ok(UserEvent::ChatJoined { chat_id, stream_seq: Some(stream_seq), .. }) => {
                    hub.join_from(user_id, &chat_id, stream_seq).await
                }
                Ok(UserEvent::ChatJoined { chat_id, stream_seq: None, .. }) => {
                    hub.join(user_id, &chat_id, JOINED_SEQ_UNKNOWN).await
                }
                Ok(UserEvent::ChatLeft { chat_id, .. }) => hub.leave(user_id, &chat_id),
                Err(error) => tracing::warn!(%error, user_id, "unreadable user delivery"),
            }
        }
        UserDeliveryKind::MsgCreated => {
            if let Some(frame) = utf8(payload) {
                hub.deliver_to_user(user_id, &frame, kind.name());
            }
        }
    }
}

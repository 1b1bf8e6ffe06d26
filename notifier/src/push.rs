//! Push requests: every member who is offline when a message arrives (and has not
//! muted the chat) gets one on `push.<user_id>`, deduplicated per message and user:
//! JetStream drops a request published again under its `Nats-Msg-Id` within two
//! minutes, and a Redis set per message (`push:{<message_id>}:sent`, kept a day like
//! the requests) remembers whom a request was published for, so an event redelivered
//! later, to this notifier or another replica, makes none again. Without Redis only
//! the two-minute window holds.

use chat_core::connect::LazyRedis;
use chat_nats::{
    events::{PUSH_PREVIEW_CHARS, PushRequest},
    model::{ChatKind, Message},
    publish::{Outgoing, PublishError, publish_all},
    subjects,
};
use chat_store::Store;

use crate::{badges::Badges, directory::Directory};

/// Why push requests could not be made (the event is retried).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// MongoDB failed.
    #[error(transparent)]
    Store(#[from] chat_store::StoreError),
    /// JetStream failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Makes the push requests for one new message.
pub async fn for_message(
    store: &Store,
    directory: &mut Directory,
    badges: &mut Badges,
    redis: &LazyRedis,
    js: &async_nats::jetstream::Context,
    message: &Message,
) -> Result<usize, PushError> {
    let members = directory.members(store, &message.chat_id).await?;
    let recipients: Vec<String> =
        members.iter().map(|m| m.user_id.clone()).filter(|id| id != &message.sender_id).collect();
    if recipients.is_empty() {
        return Ok(0);
    }
    let offline = offline_among(redis, &recipients).await;
    if offline.is_empty() {
        return Ok(0);
    }
    let muted: Vec<&str> = members.iter().filter(|m| m.muted).map(|m| m.user_id.as_str()).collect();
    let Some(chat) = directory.label(store, &message.chat_id).await? else { return Ok(0) };
    let sender_name = directory.name(store, &message.sender_id).await?;
    let chat_title = match chat.kind {
        ChatKind::Direct => sender_name.clone(),
        ChatKind::Group => chat.title.clone().unwrap_or_default(),
    };
    let wanted: Vec<String> = offline.into_iter().filter(|u| !muted.contains(&u.as_str())).collect();
    let already = already_pushed(redis, &message.id, &wanted).await;
    let to_push: Vec<String> = wanted.into_iter().filter(|u| !already.contains(u)).collect();
    let badges = badges.of(store, &to_push).await?;
    let mut outgoing = Vec::new();
    let mut pushed_to = Vec::new();
    for user_id in to_push {
        let request = PushRequest {
            v: chat_nats::PAYLOAD_VERSION,
            user_id: user_id.clone(),
            chat_id: message.chat_id.clone(),
            chat_title: chat_title.clone(),
            message_id: message.id.clone(),
            seq: message.seq,
            sender_id: message.sender_id.clone(),
            sender_name: sender_name.clone(),
            preview: message.text.chars().take(PUSH_PREVIEW_CHARS).collect(),
            badge: badges.get(&user_id).copied().unwrap_or(0),
        };
        let Ok(body) = serde_json::to_vec(&request) else { continue };
        let msg_id = format!("push:{}:{user_id}", message.id);
        outgoing.push(Outgoing::new(subjects::push(&user_id), msg_id, body.into()));
        pushed_to.push(user_id);
    }
    let count = outgoing.len();
    publish_all(js, outgoing).await?;
    remember_pushed(redis, &message.id, &pushed_to).await;
    Ok(count)
}

/// How long the record of a message's push requests is kept: as long as `PUSH` keeps
/// the requests.
const PUSH_RECORD_TTL_S: i64 = 24 * 3600;

/// The users among `user_ids` a request for this message was already published for
/// (none when Redis cannot tell).
async fn already_pushed(redis: &LazyRedis, message_id: &str, user_ids: &[String]) -> Vec<String> {
    if user_ids.is_empty() {
        return Vec::new();
    }
    let answer: Result<Vec<bool>, redis::RedisError> = async {
        let mut connection = redis.get().await?;
        redis::cmd("SMISMEMBER")
            .arg(chat_core::redis_keys::push_sent(message_id))
            .arg(user_ids)
            .query_async(&mut connection)
            .await
    }
    .await;
    match answer {
        Ok(flags) => user_ids.iter().zip(flags).filter(|(_, sent)| *sent).map(|(id, _)| id.clone()).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read which push requests were made; relying on the stream's dedupe");
            Vec::new()
        }
    }
}

/// Records that requests for this message were published for `user_ids`.
async fn remember_pushed(redis: &LazyRedis, message_id: &str, user_ids: &[String]) {
    if user_ids.is_empty() {
        return;
    }
    let key = chat_core::redis_keys::push_sent(message_id);
    let result: Result<(), redis::RedisError> = async {
        let mut connection = redis.get().await?;
        redis::pipe()
            .atomic()
            .sadd(&key, user_ids)
            .ignore()
            .expire(&key, PUSH_RECORD_TTL_S)
            .ignore()
            .query_async(&mut connection)
            .await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "cannot record the push requests made; a late redelivery may repeat them");
    }
}

/// The users among `user_ids` who are offline (no connection that has not expired).
/// Without Redis nobody's presence is known; everyone is treated as offline, so a push
/// is never lost (at worst a device that is online gets one too).
async fn offline_among(redis: &LazyRedis, user_ids: &[String]) -> Vec<String> {
    let connected = match redis.get().await {
        Ok(mut connection) => chat_core::presence_state::connected_among(&mut connection, user_ids).await,
        Err(error) => Err(error),
    };
    match connected {
        Ok(connected) => {
            user_ids.iter().zip(connected).filter(|(_, connected)| !connected).map(|(id, _)| id.clone()).collect()
        }
        Err(error) => {
            tracing::warn!(%error, "presence unknown; pushing to every member");
            user_ids.to_vec()
        }
    }
}

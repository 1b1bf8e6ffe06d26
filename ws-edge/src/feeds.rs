//! NATS feeds into local sockets: one task per chat with local members, subscribed to
//! the chat's persisted events (`chat.evt.<chat_id>.>`) and live signals
//! (`chat.live.<chat_id>.>`), and one edge-wide feed of presence changes. An event is
//! serialised once, by its publisher; the same bytes go to every socket.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures::StreamExt;

use crate::{
    metrics,
    outbox::Outbound,
    registry::{AbortOnDrop, ChatSockets, Registry},
    signals,
};

/// A chat's event and live-signal subscriptions.
pub type ChatSubscribers = (async_nats::Subscriber, async_nats::Subscriber);

/// Subscribes to one chat's events and live signals.
pub async fn subscribe_chat(nats: &async_nats::Client, chat_id: &str) -> Option<ChatSubscribers> {
    let events = nats.subscribe(chat_nats::subjects::chat_events(chat_id)).await;
    let live = nats.subscribe(chat_nats::subjects::chat_live(chat_id)).await;
    match (events, live) {
        (Ok(events), Ok(live)) => Some((events, live)),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, chat_id, "cannot subscribe to a chat");
            None
        }
    }
}

/// Starts a chat's feed, with subscriptions made beforehand or, failing that, its own.
pub fn start_chat_feed(
    nats: &async_nats::Client,
    chat_id: &str,
    sockets: Arc<ChatSockets>,
    prepared: Option<ChatSubscribers>,
) -> AbortOnDrop {
    let nats = nats.clone();
    let chat_id = chat_id.to_owned();
    AbortOnDrop(tokio::spawn(async move {
        let subscribers = match prepared {
            Some(subscribers) => subscribers,
            None => match subscribe_chat(&nats, &chat_id).await {
                Some(subscribers) => subscribers,
                None => return,
            },
        };
        chat_feed(&sockets, subscribers).await;
    }))
}

async fn chat_feed(sockets: &ChatSockets, (events, live): ChatSubscribers) {
    let mut both = futures::stream::select(events, live);
    let mut last_seq = 0;
    while let Some(message) = both.next().await {
        let Some(frame) = utf8(message.payload.clone()) else { continue };
        let kind = chat_nats::subjects::tail_after_chat(&message.subject).unwrap_or("other");
        if message.subject.starts_with("chat.live.") {
            let delivery = signals::live_delivery(kind, &message.payload);
            fan_out(sockets, &frame, kind, None, delivery.skip_user.as_deref(), delivery.droppable);
            continue;
        }
        // Every publish reaches core subscribers, also a retried one that JetStream
        // stores once: a persister that retries a publish after a lost ack, or replays a
        // command, sends an event again. Events of a chat are published in seq order, so
        // one at or below the last seq delivered is such a copy.
        if let Some(seq) = event_seq(&message) {
            if seq <= last_seq {
                metrics::DROPPED_REPUBLISHED.inc();
                continue;
            }
            last_seq = seq;
        }
        let persisted_at = message
            .headers
            .as_ref()
            .and_then(|h| h.get(chat_nats::headers::PERSISTED_AT_MICROS))
            .and_then(|v| v.as_str().parse::<i64>().ok());
        fan_out(sockets, &frame, kind, persisted_at, None, false);
    }
}

/// The seq of a persisted event, from its `Nats-Msg-Id` (`<chat_id>:<seq>`).
fn event_seq(message: &async_nats::Message) -> Option<u64> {
    let id = message.headers.as_ref()?.get(async_nats::header::NATS_MESSAGE_ID)?;
    id.as_str().rsplit_once(':')?.1.parse().ok()
}

/// Queues the same bytes to every socket of the chat (but `skip_user`'s). The last
/// socket's copy carries the persistence time, so `chat_delivery_seconds` gets one
/// observation per event.
fn fan_out(
    sockets: &ChatSockets,
    frame: &Utf8Bytes,
    kind: &str,
    persisted_at_micros: Option<i64>,
    skip_user: Option<&str>,
    droppable: bool,
) {
    let recipients = sockets.lock();
    let last = recipients.len().saturating_sub(1);
    let mut queued = 0u64;
    for (i, recipient) in recipients.iter().enumerate() {
        if skip_user == Some(&*recipient.user_id) {
            continue;
        }
        let timed = if i == last { persisted_at_micros } else { None };
        let outbound = Outbound::Event { frame: frame.clone(), persisted_at_micros: timed, droppable };
        if recipient.conn.offer(outbound) {
            queued += 1;
        }
    }
    drop(recipients);
    metrics::events_sent(kind).inc_by(queued);
}

/// Hands every presence change (`presence.changed.*`) to the local connections that
/// watch that user; the subscription is made before this returns.
pub async fn start_presence_feed(
    nats: &async_nats::Client,
    registry: Arc<Registry>,
) -> Result<AbortOnDrop, async_nats::SubscribeError> {
    let mut subscriber = nats.subscribe(chat_nats::subjects::PRESENCE_CHANGED_ALL).await?;
    Ok(AbortOnDrop(tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let Some(user_id) = chat_nats::subjects::presence_changed_user(&message.subject) else { continue };
            let watchers = registry.watchers_of(user_id);
            if watchers.is_empty() {
                continue;
            }
            let Some(frame) = utf8(message.payload) else { continue };
            let mut queued = 0u64;
            for conn in watchers {
                let outbound = Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable: true };
                if conn.offer(outbound) {
                    queued += 1;
                }
            }
            metrics::events_sent("presence").inc_by(queued);
        }
    })))
}

/// The payload as a text frame, if it is UTF-8 (everything on the bus is JSON).
pub fn utf8(payload: Bytes) -> Option<Utf8Bytes> {
    Utf8Bytes::try_from(payload).ok()
}

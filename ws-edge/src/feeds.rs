//! NATS feeds into local sockets: one task per chat with local members, subscribed to
//! the chat's persisted events (`chat.evt.<chat_id>.>`) and live signals
//! (`chat.live.<chat_id>.>`), and one edge-wide feed of presence changes. An event is
//! serialised once, by its publisher; the same bytes go to every socket.
//!
//! A chat's feed is also where its membership changes take effect for local users, in
//! the order of the chat's events: a member added while the chat has a feed here joins
//! the fan-out right before the event that adds them, a removed one leaves it right
//! after theirs, and a member this edge hears of later (the notifier's `chat.joined`)
//! gets the chat replayed from `CHAT_EVT` from that event on before joining the
//! fan-out ([`catch_up`]).

use std::sync::{Arc, Weak};

use bytes::Bytes;
use chat_nats::events::{ChatEvent, EventBody};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{
    catch_up, metrics,
    outbox::Outbound,
    registry::{AbortOnDrop, CatchUp, ChatFeed, ChatSockets, FeedRequest, JOINED_SEQ_UNKNOWN, Registry},
    signals, watches,
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

/// What a chat's feed needs beyond its sockets: the bus, and the registry it tells
/// about members who join or leave through the chat's own events.
#[derive(Clone)]
pub struct FeedContext {
    /// Core NATS.
    pub nats: async_nats::Client,
    /// JetStream, to replay `CHAT_EVT` to new members.
    pub js: async_nats::jetstream::Context,
    /// The registry; weak, because the registry owns the feeds.
    pub registry: Weak<Registry>,
}

/// Starts a chat's feed, with subscriptions made beforehand or, failing that, its own.
pub fn start_chat_feed(
    context: &FeedContext,
    chat_id: &str,
    sockets: Arc<ChatSockets>,
    prepared: Option<ChatSubscribers>,
) -> ChatFeed {
    let context = context.clone();
    let chat_id: Arc<str> = Arc::from(chat_id);
    let (catch_ups, queued) = mpsc::unbounded_channel();
    let task = AbortOnDrop(tokio::spawn(async move {
        let subscribers = match prepared {
            Some(subscribers) => subscribers,
            None => match subscribe_chat(&context.nats, &chat_id).await {
                Some(subscribers) => subscribers,
                None => return,
            },
        };
        let mut feed = Feed { context, chat_id, sockets, last_seq: 0 };
        feed.run(subscribers, queued).await;
    }));
    ChatFeed { task, catch_ups }
}

/// The state of one chat's feed task.
struct Feed {
    context: FeedContext,
    chat_id: Arc<str>,
    sockets: Arc<ChatSockets>,
    /// The seq of the last persisted event fanned out.
    last_seq: u64,
}

impl Feed {
    async fn run(&mut self, (events, live): ChatSubscribers, mut requests: mpsc::UnboundedReceiver<FeedRequest>) {
        let mut both = futures::stream::select(events, live);
        loop {
            // Events first: a request was sent after NATS handed this feed every event
            // that reached the edge before it, and must come after them.
            tokio::select! {
                biased;
                next = both.next() => match next {
                    Some(message) => self.deliver(&message),
                    None => return,
                },
                Some(request) = requests.recv() => match request {
                    FeedRequest::CatchUp(catch_up) => self.catch_up(catch_up).await,
                    FeedRequest::Leave(user_id) => {
                        if let Some(registry) = self.context.registry.upgrade() {
                            registry.leave(&user_id, &self.chat_id);
                        }
                    }
                },
            }
        }
    }

    fn deliver(&mut self, message: &async_nats::Message) {
        let Some(frame) = utf8(message.payload.clone()) else { return };
        let kind = chat_nats::subjects::tail_after_chat(&message.subject).unwrap_or("other");
        if chat_nats::subjects::is_live(&message.subject) {
            let delivery = signals::live_delivery(kind, &message.payload);
            let only = Recipients { skip_user: delivery.skip_user.as_deref(), message_seq: None };
            fan_out(&self.sockets, &frame, kind, None, only, delivery.droppable);
            return;
        }
        // Every publish reaches core subscribers, also a retried one that JetStream
        // stores once: a persister that retries a publish after a lost ack, or replays a
        // command, sends an event again. Events of a chat are published in seq order, so
        // one at or below the last seq delivered is such a copy.
        let seq = event_seq(message);
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                metrics::DROPPED_REPUBLISHED.inc();
                return;
            }
            self.last_seq = seq;
        }
        let membership = membership_change(kind, &message.payload);
        if !membership.joined.is_empty()
            && let Some(registry) = self.context.registry.upgrade()
        {
            // A member who joins on this edge's watch gets the event that made them one
            // and everything after it from this feed, without waiting for the notifier.
            for user_id in &membership.joined {
                registry.attach(user_id, &self.chat_id, seq.unwrap_or(JOINED_SEQ_UNKNOWN));
            }
        }
        let persisted_at = message
            .headers
            .as_ref()
            .and_then(|h| h.get(chat_nats::headers::PERSISTED_AT_MICROS))
            .and_then(|v| v.as_str().parse::<i64>().ok());
        let only = Recipients { skip_user: None, message_seq: message_seq(message) };
        fan_out(&self.sockets, &frame, kind, persisted_at, only, false);
        // The removed member got the removal itself and nothing after it, even while
        // the notifier is down or behind.
        if let (Some(user_id), Some(registry)) = (&membership.left, self.context.registry.upgrade()) {
            registry.leave(user_id, &self.chat_id);
        }
        if let Some(registry) = self.context.registry.upgrade() {
            let changed: Vec<&str> = membership.joined.iter().chain(&membership.left).map(String::as_str).collect();
            if !changed.is_empty() {
                watches::recheck(&self.context.nats, &registry, &changed);
            }
        }
    }

    /// Replays the chat from the event that made `catch_up.user_id` a member: what the
    /// other sockets already had goes to theirs alone, then they join the fan-out, so
    /// they see that event first and every later one once, in order. The core
    /// subscription was in place before the replay starts, so what the replay does not
    /// reach is waiting there.
    async fn catch_up(&mut self, catch_up: CatchUp) {
        let Some(registry) = self.context.registry.upgrade() else { return };
        let user_id = catch_up.user_id.as_str();
        if !registry.is_member(user_id, &self.chat_id) {
            return;
        }
        if self.sockets.has_user(user_id) {
            // Attached already by the event itself, on this feed.
            registry.attach(user_id, &self.chat_id, JOINED_SEQ_UNKNOWN);
            return;
        }
        let replayed = match catch_up::events_from(&self.context.js, &self.chat_id, catch_up.stream_seq).await {
            Ok(replayed) => replayed,
            Err(error) => {
                tracing::warn!(%error, chat_id = %self.chat_id, user_id, "cannot replay a chat to a new member; delivering from now on");
                registry.attach(user_id, &self.chat_id, JOINED_SEQ_UNKNOWN);
                return;
            }
        };
        let conns = registry.connections_of(user_id);
        // The replay starts with the event that made them a member: its seq is theirs.
        let mut joined_seq = JOINED_SEQ_UNKNOWN;
        let mut replayed = replayed.into_iter().peekable();
        while let Some(message) = replayed.next_if(|m| event_seq(m).is_some_and(|seq| seq <= self.last_seq)) {
            let kind = chat_nats::subjects::tail_after_chat(&message.subject).unwrap_or("other");
            let membership = membership_change(kind, &message.payload);
            if joined_seq == JOINED_SEQ_UNKNOWN && membership.joined.iter().any(|joined| joined == user_id) {
                joined_seq = event_seq(&message).unwrap_or(JOINED_SEQ_UNKNOWN);
            }
            if message_seq(&message).is_some_and(|seq| seq < joined_seq) {
                continue;
            }
            let Some(frame) = utf8(message.payload.clone()) else { continue };
            for conn in &conns {
                conn.offer(Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable: false });
            }
            metrics::events_sent(kind).inc_by(conns.len() as u64);
            if membership.left.as_deref() == Some(user_id) {
                registry.leave(user_id, &self.chat_id);
                return;
            }
        }
        registry.attach(user_id, &self.chat_id, joined_seq);
        watches::recheck(&self.context.nats, &registry, &[user_id]);
        for message in replayed {
            self.deliver(&message);
        }
    }
}

/// Who an event makes a member or a former member.
#[derive(Debug, Default, PartialEq)]
struct MembershipChange {
    joined: Vec<String>,
    left: Option<String>,
}

/// Reads only membership events (rare); every other event is forwarded unparsed.
fn membership_change(kind: &str, payload: &[u8]) -> MembershipChange {
    if !matches!(kind, "chat.created" | "member.added" | "member.removed") {
        return MembershipChange::default();
    }
    match serde_json::from_slice::<ChatEvent>(payload).map(|event| event.body) {
        Ok(EventBody::ChatCreated { chat }) => {
            MembershipChange { joined: chat.participants.into_iter().map(|m| m.user_id).collect(), left: None }
        }
        Ok(EventBody::MemberAdded { user_id, .. }) => MembershipChange { joined: vec![user_id], left: None },
        Ok(EventBody::MemberRemoved { user_id, .. }) => MembershipChange { joined: Vec::new(), left: Some(user_id) },
        _ => MembershipChange::default(),
    }
}

/// The seq of a persisted event, from its `Nats-Msg-Id` (`<chat_id>:<seq>`).
fn event_seq(message: &async_nats::Message) -> Option<u64> {
    let id = message.headers.as_ref()?.get(async_nats::header::NATS_MESSAGE_ID)?;
    id.as_str().rsplit_once(':')?.1.parse().ok()
}

/// The seq of the message an edit or deletion in a `since_join` chat is about
/// ([`chat_nats::headers::MESSAGE_SEQ`]); events of other chats have none.
fn message_seq(message: &async_nats::Message) -> Option<u64> {
    message.headers.as_ref()?.get(chat_nats::headers::MESSAGE_SEQ)?.as_str().parse().ok()
}

/// Which sockets of a chat an event skips.
#[derive(Debug, Clone, Copy)]
struct Recipients<'a> {
    /// The author of a typing signal.
    skip_user: Option<&'a str>,
    /// Members who joined after this message (an edit or deletion of it in a
    /// `since_join` chat) may not read it.
    message_seq: Option<u64>,
}

/// Queues the same bytes to every socket of the chat that `only` lets through. The
/// last socket's copy carries the persistence time, so `chat_delivery_seconds` gets one
/// observation per event.
fn fan_out(
    sockets: &ChatSockets,
    frame: &Utf8Bytes,
    kind: &str,
    persisted_at_micros: Option<i64>,
    only: Recipients<'_>,
    droppable: bool,
) {
    let recipients = sockets.lock();
    let last = recipients.len().saturating_sub(1);
    let mut queued = 0u64;
    for (i, recipient) in recipients.iter().enumerate() {
        if only.skip_user == Some(&*recipient.user_id) || only.message_seq.is_some_and(|seq| recipient.joined_seq > seq)
        {
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

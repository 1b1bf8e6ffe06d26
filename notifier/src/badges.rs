//! Unread badges for push requests without a count at the store per push.
//!
//! A badge is a member's unread messages across their chats. Counting them at the store
//! costs about a millisecond plus a little per unread message, for every offline member
//! of every message (docs/benchmarks.md). So this replica keeps, per chat, the unread
//! count of each member it has counted, exact up to the chat's last event it handled,
//! and moves it with the events that follow: a new message of someone else adds one.
//! What it cannot follow it forgets, and the member is counted again at the next push:
//!
//! - a read mark (`chat.live.<chat>.read`, core NATS, published after the mark is
//!   stored): that member's count in that chat;
//! - a delete, or a chat (re)created: every count of the chat;
//! - a membership event: that member's count;
//! - an event that does not follow the last one handled (a seq skipped, as a crash or
//!   another replica's share of the stream leaves, or an older event): every count of
//!   the chat; the same event again (a redelivery) changes nothing;
//! - a reconnection to NATS (read marks may have been missed): everything;
//! - age: a count is used for [`TTL`] at most, so a read mark lost anyway costs a badge
//!   too high for that long, never a push.
//!
//! A count is only kept when it is exact up to the handled event: bounded by that seq,
//! and only when the member's read mark is not past it (else they read messages whose
//! events are still to come, which would be added again).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_nats::events::{ChatEvent, EventBody, LiveSignal};
use chat_store::{Store, StoreError, participants::ReadPosition};
use futures::{FutureExt, StreamExt, TryStreamExt};

/// How long a count is used before it is made again at the store.
pub const TTL: Duration = Duration::from_secs(600);

/// Most chats followed; beyond it everything is forgotten and counted again.
const MAX_CHATS: usize = 50_000;

/// Counts made at the store at the same time for one message.
const COUNTS_AT_ONCE: usize = 8;

/// One chat as this replica follows it.
#[derive(Debug)]
struct ChatCounts {
    /// The seq of the chat's last event handled here.
    through: u64,
    /// Unread messages of each counted member up to `through`, and when they were
    /// counted at the store.
    unread: HashMap<String, (u64, Instant)>,
}

/// Unread counts per chat and member, moved by the events handled here.
#[derive(Debug, Default)]
pub struct Badges {
    chats: HashMap<String, ChatCounts>,
}

/// A count the store has to make: a member's unread messages in one chat after their
/// read mark, up to `up_to` (`None`: up to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Count {
    user_id: String,
    chat_id: String,
    after_seq: u64,
    up_to: Option<u64>,
}

impl Badges {
    /// Follows one event of `CHAT_EVT`, in the order of the stream, before its pushes.
    pub fn observe(&mut self, event: &ChatEvent) {
        if !self.chats.contains_key(&event.chat_id) && self.chats.len() >= MAX_CHATS {
            self.chats.clear();
        }
        let counts = self
            .chats
            .entry(event.chat_id.clone())
            .or_insert_with(|| ChatCounts { through: event.seq, unread: HashMap::new() });
        if event.seq == counts.through {
            return;
        }
        if event.seq != counts.through + 1 {
            counts.unread.clear();
            counts.through = event.seq;
            return;
        }
        counts.through = event.seq;
        match &event.body {
            EventBody::MsgCreated { message } => {
                for (user_id, (unread, _)) in counts.unread.iter_mut() {
                    if *user_id != message.sender_id {
                        *unread += 1;
                    }
                }
            }
            EventBody::MsgDeleted { .. } | EventBody::ChatCreated { .. } => counts.unread.clear(),
            EventBody::MemberAdded { user_id, .. } | EventBody::MemberRemoved { user_id, .. } => {
                counts.unread.remove(user_id);
            }
            EventBody::MsgEdited { .. }
            | EventBody::ChatUpdated { .. }
            | EventBody::ChatModerated { .. }
            | EventBody::MemberMuted { .. } => {}
        }
    }

    /// Forgets a member's count in a chat (their read mark moved).
    pub fn forget(&mut self, chat_id: &str, user_id: &str) {
        if let Some(counts) = self.chats.get_mut(chat_id) {
            counts.unread.remove(user_id);
        }
    }

    /// Forgets every count.
    pub fn forget_all(&mut self) {
        self.chats.clear();
    }

    /// The badge of each of `user_ids` (0 for a user in no chat): what is known, plus
    /// counts at the store for the rest, several at a time, kept where they are exact.
    pub async fn of(&mut self, store: &Store, user_ids: &[String]) -> Result<HashMap<String, u64>, StoreError> {
        let mut badges: HashMap<String, u64> = user_ids.iter().map(|id| (id.clone(), 0)).collect();
        if user_ids.is_empty() {
            return Ok(badges);
        }
        let positions = store.read_positions(user_ids).await?;
        let to_count = self.add_known(&positions, &mut badges, Instant::now());
        let counted: Vec<(Count, u64)> = futures::stream::iter(to_count)
            .map(|count| async move {
                let up_to = count.up_to.unwrap_or(u64::MAX);
                let unread = store.count_unread(&count.chat_id, &count.user_id, count.after_seq, up_to).await?;
                Ok::<_, StoreError>((count, unread))
            })
            .buffer_unordered(COUNTS_AT_ONCE)
            .try_collect()
            .await?;
        let now = Instant::now();
        for (count, unread) in counted {
            *badges.entry(count.user_id.clone()).or_insert(0) += unread;
            self.keep(count, unread, now);
        }
        Ok(badges)
    }

    /// Adds the counts known and fresh to `badges`; returns the counts to make.
    fn add_known(&self, positions: &[ReadPosition], badges: &mut HashMap<String, u64>, now: Instant) -> Vec<Count> {
        let mut to_count = Vec::new();
        for position in positions {
            let chat = self.chats.get(&position.chat_id);
            let known = chat
                .and_then(|chat| chat.unread.get(&position.user_id))
                .filter(|(_, at)| now.duration_since(*at) < TTL);
            match known {
                Some((unread, _)) => *badges.entry(position.user_id.clone()).or_insert(0) += unread,
                None => to_count.push(Count {
                    user_id: position.user_id.clone(),
                    chat_id: position.chat_id.clone(),
                    after_seq: position.last_read_seq,
                    // Exact up to the last event handled, if that is not behind the
                    // read mark; otherwise counted to the end and not kept.
                    up_to: chat.map(|chat| chat.through).filter(|through| *through >= position.last_read_seq),
                }),
            }
        }
        to_count
    }

    /// Keeps a count that is exact up to the chat's last handled event.
    fn keep(&mut self, count: Count, unread: u64, now: Instant) {
        let Some(up_to) = count.up_to else { return };
        if let Some(chat) = self.chats.get_mut(&count.chat_id)
            && chat.through == up_to
        {
            chat.unread.insert(count.user_id, (unread, now));
        }
    }
}

/// Read marks heard on core NATS, which make [`Badges`] forget a member's count.
pub struct ReadMarks {
    client: async_nats::Client,
    signals: async_nats::Subscriber,
    connects: u64,
}

impl ReadMarks {
    /// Subscribes to every chat's read signals.
    pub async fn subscribe(client: &async_nats::Client) -> Result<Self, async_nats::SubscribeError> {
        let signals = client.subscribe(chat_nats::subjects::LIVE_READS_ALL).await?;
        let connects = client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        Ok(ReadMarks { client: client.clone(), signals, connects })
    }

    /// Applies every read mark heard so far; after a reconnection, forgets everything.
    pub fn apply(&mut self, badges: &mut Badges) {
        let connects = self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        if connects != self.connects {
            self.connects = connects;
            badges.forget_all();
        }
        loop {
            match self.signals.next().now_or_never() {
                Some(Some(signal)) => match serde_json::from_slice::<LiveSignal>(&signal.payload) {
                    Ok(LiveSignal::Read { chat_id, user_id, .. }) => badges.forget(&chat_id, &user_id),
                    Ok(LiveSignal::Typing { .. }) => {}
                    Err(_) => badges.forget_all(),
                },
                Some(None) => {
                    tracing::warn!("read marks can no longer be heard; counting every badge");
                    badges.forget_all();
                    return;
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_nats::model::{Message, Role};

    fn message(chat_id: &str, seq: u64, sender_id: &str) -> ChatEvent {
        let message = Message {
            id: format!("{chat_id}-{seq}"),
            chat_id: chat_id.into(),
            seq,
            updated_seq: seq,
            sender_id: sender_id.into(),
            client_msg_id: format!("k{seq}"),
            text: "hi".into(),
            reply_to: None,
            created_at: chrono::Utc::now(),
            edited_at: None,
            deleted_at: None,
        };
        ChatEvent::new(chat_id, seq, EventBody::MsgCreated { message })
    }

    fn position(chat_id: &str, user_id: &str, last_read_seq: u64) -> ReadPosition {
        ReadPosition { chat_id: chat_id.into(), user_id: user_id.into(), last_read_seq }
    }

    /// Badges for `positions` from what is known, and the counts still to make.
    fn known(badges: &Badges, positions: &[ReadPosition]) -> (HashMap<String, u64>, Vec<Count>) {
        let mut sums = HashMap::new();
        let to_count = badges.add_known(positions, &mut sums, Instant::now());
        (sums, to_count)
    }

    /// Badges following chat `c` up to seq 10, with u1 counted at 3 unread and u2 at 0.
    fn following_c() -> Badges {
        let mut badges = Badges::default();
        badges.observe(&message("c", 10, "u9"));
        let now = Instant::now();
        for (user_id, unread) in [("u1", 3), ("u2", 0)] {
            let count = Count { user_id: user_id.into(), chat_id: "c".into(), after_seq: 7, up_to: Some(10) };
            badges.keep(count, unread, now);
        }
        badges
    }

    #[test]
    fn a_message_of_someone_else_adds_one_and_the_senders_own_adds_nothing() {
        let mut badges = following_c();
        badges.observe(&message("c", 11, "u2"));
        badges.observe(&message("c", 12, "u9"));
        let (sums, to_count) = known(&badges, &[position("c", "u1", 7), position("c", "u2", 0)]);
        assert!(to_count.is_empty());
        assert_eq!((sums["u1"], sums["u2"]), (5, 1));
    }

    #[test]
    fn the_same_event_again_changes_nothing_and_a_skipped_or_older_seq_forgets_the_chat() {
        let mut badges = following_c();
        badges.observe(&message("c", 11, "u9"));
        badges.observe(&message("c", 11, "u9"));
        assert_eq!(known(&badges, &[position("c", "u1", 7)]).0["u1"], 4, "a redelivery counts once");
        badges.observe(&message("c", 13, "u9"));
        let (_, to_count) = known(&badges, &[position("c", "u1", 7)]);
        assert_eq!(to_count, [Count { user_id: "u1".into(), chat_id: "c".into(), after_seq: 7, up_to: Some(13) }]);

        let mut badges = following_c();
        badges.observe(&message("c", 9, "u9"));
        assert_eq!(known(&badges, &[position("c", "u1", 7)]).1.len(), 1, "an older event: counted again");
    }

    #[test]
    fn a_read_mark_a_membership_change_or_a_delete_forgets_what_it_changes() {
        let mut badges = following_c();
        badges.forget("c", "u1");
        let (sums, to_count) = known(&badges, &[position("c", "u1", 9), position("c", "u2", 0)]);
        assert_eq!((to_count.len(), sums["u2"]), (1, 0), "only u1 is counted again");

        let mut badges = following_c();
        let removed = ChatEvent::new("c", 11, EventBody::MemberRemoved { user_id: "u2".into(), role: Role::Member });
        badges.observe(&removed);
        let added = ChatEvent::new("c", 12, EventBody::MemberAdded { user_id: "u1".into(), role: Role::Member });
        badges.observe(&added);
        assert_eq!(known(&badges, &[position("c", "u1", 7), position("c", "u2", 0)]).1.len(), 2);

        let mut badges = following_c();
        let deleted = EventBody::MsgDeleted { message_id: "c-9".into(), deleted_at: chrono::Utc::now() };
        badges.observe(&ChatEvent::new("c", 11, deleted));
        assert_eq!(known(&badges, &[position("c", "u1", 7), position("c", "u2", 0)]).1.len(), 2);
    }

    #[test]
    fn a_count_is_kept_only_when_exact_up_to_the_last_event_handled() {
        let mut badges = Badges::default();
        // A chat with no event handled here: counted to the end, not kept.
        let (_, to_count) = known(&badges, &[position("d", "u1", 4)]);
        assert_eq!(to_count[0].up_to, None);
        badges.keep(to_count[0].clone(), 2, Instant::now());
        assert_eq!(known(&badges, &[position("d", "u1", 4)]).1.len(), 1);

        // A read mark past the last event handled: not bounded there, not kept.
        badges.observe(&message("d", 20, "u9"));
        assert_eq!(known(&badges, &[position("d", "u1", 21)]).1[0].up_to, None);

        // A count made while another event was handled is not kept either.
        let count = known(&badges, &[position("d", "u1", 4)]).1.remove(0);
        assert_eq!(count.up_to, Some(20));
        badges.observe(&message("d", 21, "u9"));
        badges.keep(count, 16, Instant::now());
        assert_eq!(known(&badges, &[position("d", "u1", 4)]).1.len(), 1);
    }

    #[test]
    fn a_count_older_than_the_ttl_is_made_again() {
        let badges = following_c();
        let mut sums = HashMap::new();
        let later = Instant::now() + TTL;
        assert_eq!(badges.add_known(&[position("c", "u1", 7)], &mut sums, later).len(), 1);
    }
}

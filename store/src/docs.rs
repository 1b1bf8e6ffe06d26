//! Document shapes as stored, and their conversion to the public model. Sequence
//! numbers are `i64` in BSON (it has no unsigned integers) and `u64` in the model.

use bson::serde_helpers::chrono_datetime_as_bson_datetime as bson_time;
use chat_nats::model::{Chat, ChatKind, ChatMember, ChatMode, HistoryVisibility, LastMessage, Message, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many characters of a message `last_message` keeps.
pub const PREVIEW_CHARS: usize = 200;

/// Optional BSON dates.
pub(crate) mod bson_time_opt {
    use bson::serde_helpers::chrono_datetime_as_bson_datetime as inner;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => inner::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<bson::DateTime>::deserialize(d)?.map(|at| at.to_chrono()))
    }
}

/// `chats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatDoc {
    /// Chat id.
    #[serde(rename = "_id")]
    pub id: String,
    /// `direct` or `group`.
    #[serde(rename = "type")]
    pub kind: ChatKind,
    /// Group title.
    pub title: Option<String>,
    /// Creator.
    pub created_by: String,
    /// Creation time.
    #[serde(with = "bson_time")]
    pub created_at: DateTime<Utc>,
    /// Latest activity.
    #[serde(with = "bson_time")]
    pub updated_at: DateTime<Utc>,
    /// The highest seq reserved so far.
    pub last_seq: i64,
    /// Newest message summary.
    pub last_message: Option<LastMessageDoc>,
    /// Members, embedded for the membership index.
    pub participants: Vec<MemberDoc>,
    /// The platform's course or group id; unique when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Both member ids sorted, for direct chats; unique when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_key: Option<String>,
    /// The latest rename, so a redelivered `chat.update` republishes its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<ChangeMark>,
    /// The latest removal, so a redelivered `member.remove` republishes its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removal: Option<RemovalMark>,
    /// Which history later members read; chats stored before the setting read `all`.
    #[serde(default)]
    pub history_visibility: HistoryVisibility,
    /// Who may post, slow mode, frozen; chats stored before moderation are open.
    #[serde(default)]
    pub mode: ChatMode,
    /// The latest `chat.moderate` or `member.mute`, so a redelivery republishes its
    /// event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_moderation: Option<ChangeMark>,
}

/// `chat_heads`: where a chat ends, the document every message moves. Kept apart from
/// the chat document, which carries every participant and costs the store about three
/// times as much to update; the chat's own `last_seq`, `last_message` and `updated_at`
/// are a copy that trails it ([`crate::heads`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadDoc {
    /// The chat's id.
    #[serde(rename = "_id")]
    pub chat_id: String,
    /// The highest seq reserved so far.
    pub last_seq: i64,
    /// Newest message summary.
    pub last_message: Option<LastMessageDoc>,
    /// When a message or an event last moved it.
    #[serde(with = "bson_time")]
    pub updated_at: DateTime<Utc>,
    /// The chat's `history_visibility`, so that a member's history page reads one
    /// document for its bounds; absent in heads written before it was kept here, whose
    /// readers take it from the chat document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_visibility: Option<HistoryVisibility>,
}

impl HeadDoc {
    /// The head a chat document describes (a new chat's, or an old chat's first).
    pub fn of(chat: &ChatDoc) -> Self {
        HeadDoc {
            chat_id: chat.id.clone(),
            last_seq: chat.last_seq,
            last_message: chat.last_message.clone(),
            updated_at: chat.updated_at,
            history_visibility: Some(chat.history_visibility),
        }
    }
}

/// Which command made a change, and the seq of its event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMark {
    /// The command id.
    pub command_id: String,
    /// The event's seq.
    pub seq: i64,
}

/// A removal: who, with which role, by which command, at which seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalMark {
    /// The command id.
    pub command_id: String,
    /// The event's seq.
    pub seq: i64,
    /// Who was removed.
    pub user_id: String,
    /// Their role.
    pub role: Role,
}

/// An embedded member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDoc {
    /// The member.
    pub user_id: String,
    /// Their role.
    pub role: Role,
    /// Until when a moderator muted them, a copy of their membership's, so that chat
    /// views show it.
    #[serde(with = "bson_time_opt", default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<DateTime<Utc>>,
}

/// The embedded newest-message summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessageDoc {
    /// Message id.
    pub id: String,
    /// Its seq.
    pub seq: i64,
    /// Sender.
    pub sender_id: String,
    /// Text preview.
    pub text: String,
    /// Sent at.
    #[serde(with = "bson_time")]
    pub created_at: DateTime<Utc>,
}

/// `messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDoc {
    /// Message id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Chat.
    pub chat_id: String,
    /// Creation seq.
    pub seq: i64,
    /// Latest change seq.
    pub updated_seq: i64,
    /// Sender.
    pub sender_id: String,
    /// Sender's idempotency key.
    pub client_msg_id: String,
    /// Text; empty once deleted.
    pub text: String,
    /// Answered message.
    pub reply_to: Option<String>,
    /// Creation time.
    #[serde(with = "bson_time")]
    pub created_at: DateTime<Utc>,
    /// Last edit.
    #[serde(with = "bson_time_opt", default)]
    pub edited_at: Option<DateTime<Utc>>,
    /// Soft deletion.
    #[serde(with = "bson_time_opt", default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The command of the latest edit or delete, so a redelivery republishes its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<String>,
}

/// `participants`: one per chat member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantDoc {
    /// `<chat_id>:<user_id>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Chat.
    pub chat_id: String,
    /// Member.
    pub user_id: String,
    /// Role.
    pub role: Role,
    /// When they joined.
    #[serde(with = "bson_time")]
    pub joined_at: DateTime<Utc>,
    /// The seq of the event that made them a member; a role change keeps it, so a
    /// member promoted in a `since_join` chat still reads from their joining.
    pub joined_seq: i64,
    /// The seq of their latest role change (its `member.added` event), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_seq: Option<i64>,
    /// Everything up to this seq is read.
    pub last_read_seq: i64,
    /// Push notifications off (the member's own choice; unrelated to `muted_until`).
    pub muted: bool,
    /// Sending off until then, set by a moderator with `member.mute`; read with the
    /// role on every send the pipeline has not checked yet.
    #[serde(with = "bson_time_opt", default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<DateTime<Utc>>,
    /// The command that added them, so a redelivered command republishes its events.
    #[serde(default)]
    pub added_by: Option<String>,
}

impl ParticipantDoc {
    /// The seq of their latest membership event: joining, or a role change.
    pub fn membership_seq(&self) -> i64 {
        self.role_seq.unwrap_or(self.joined_seq)
    }

    /// The document id for a member.
    pub fn key(chat_id: &str, user_id: &str) -> String {
        format!("{chat_id}:{user_id}")
    }
}

/// `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDoc {
    /// The token's `sub`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// The name folded for case-insensitive prefix search.
    #[serde(default)]
    pub name_key: String,
    /// Platform roles.
    pub roles: Vec<String>,
    /// Last upsert.
    #[serde(with = "bson_time")]
    pub updated_at: DateTime<Utc>,
}

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl From<MessageDoc> for Message {
    fn from(doc: MessageDoc) -> Self {
        Message {
            id: doc.id,
            chat_id: doc.chat_id,
            seq: seq(doc.seq),
            updated_seq: seq(doc.updated_seq),
            sender_id: doc.sender_id,
            client_msg_id: doc.client_msg_id,
            text: doc.text,
            reply_to: doc.reply_to,
            created_at: doc.created_at,
            edited_at: doc.edited_at,
            deleted_at: doc.deleted_at,
        }
    }
}

impl From<ChatDoc> for Chat {
    fn from(doc: ChatDoc) -> Self {
        Chat {
            id: doc.id,
            kind: doc.kind,
            title: doc.title,
            created_by: doc.created_by,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            last_seq: seq(doc.last_seq),
            last_message: doc.last_message.map(|m| LastMessage {
                id: m.id,
                seq: seq(m.seq),
                sender_id: m.sender_id,
                text: m.text,
                created_at: m.created_at,
            }),
            participants: doc
                .participants
                .into_iter()
                .map(|m| ChatMember { user_id: m.user_id, role: m.role, muted_until: m.muted_until })
                .collect(),
            external_id: doc.external_id,
            history_visibility: doc.history_visibility,
            mode: doc.mode,
        }
    }
}

impl LastMessageDoc {
    /// The summary of a stored message.
    pub fn of(message: &MessageDoc) -> Self {
        LastMessageDoc {
            id: message.id.clone(),
            seq: message.seq,
            sender_id: message.sender_id.clone(),
            text: message.text.chars().take(PREVIEW_CHARS).collect(),
            created_at: message.created_at,
        }
    }
}

/// Converts a `u64` seq to BSON's `i64`, saturating (a chat will not reach 2^63 events).
pub fn bson_seq(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

//! Events: what happened, as published by the persister to `chat.evt.<chat_id>.<event>`
//! (`CHAT_EVT`), plus the user-scoped deliveries on `user.<user_id>.<event>`.
//!
//! A chat event is serialised exactly as clients receive it over WebSocket (plus `v` and
//! `id`), so an edge forwards the bytes it got from NATS without parsing them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr, VariantArray, VariantNames};

use crate::model::{Chat, ChatMode, Message, Role, timestamp};

/// A persisted chat event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatEvent {
    /// Payload version, always 1.
    pub v: u8,
    /// `<chat_id>:<seq>`; also the `Nats-Msg-Id`, so a republished event is stored once.
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// The chat sequence number of this event.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

impl ChatEvent {
    /// Builds an event with its deterministic id.
    pub fn new(chat_id: &str, seq: u64, body: EventBody) -> Self {
        ChatEvent { v: crate::PAYLOAD_VERSION, id: format!("{chat_id}:{seq}"), chat_id: chat_id.to_owned(), seq, body }
    }
}

/// The kinds of persisted events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type")]
pub enum EventBody {
    /// A message was posted.
    #[serde(rename = "msg.created")]
    #[strum(serialize = "msg.created")]
    MsgCreated {
        /// The stored message.
        message: Message,
    },
    /// A message's text changed.
    #[serde(rename = "msg.edited")]
    #[strum(serialize = "msg.edited")]
    MsgEdited {
        /// The message after the edit (with `edited_at` and `updated_seq`).
        message: Message,
    },
    /// A message was deleted; its tombstone keeps its place.
    #[serde(rename = "msg.deleted")]
    #[strum(serialize = "msg.deleted")]
    MsgDeleted {
        /// The message.
        message_id: String,
        /// When.
        #[serde(with = "timestamp")]
        #[schemars(schema_with = "timestamp::schema")]
        deleted_at: DateTime<Utc>,
    },
    /// A chat was created.
    #[serde(rename = "chat.created")]
    #[strum(serialize = "chat.created")]
    ChatCreated {
        /// The chat as stored.
        chat: Chat,
    },
    /// A chat was renamed.
    #[serde(rename = "chat.updated")]
    #[strum(serialize = "chat.updated")]
    ChatUpdated {
        /// The chat after the change.
        chat: Chat,
    },
    /// Someone joined a chat, or an existing member's role changed.
    #[serde(rename = "member.added")]
    #[strum(serialize = "member.added")]
    MemberAdded {
        /// The member.
        user_id: String,
        /// Their role.
        role: Role,
    },
    /// Someone left or was removed.
    #[serde(rename = "member.removed")]
    #[strum(serialize = "member.removed")]
    MemberRemoved {
        /// The former member.
        user_id: String,
        /// The role they had.
        role: Role,
    },
    /// The chat's mode changed.
    #[serde(rename = "chat.moderated")]
    #[strum(serialize = "chat.moderated")]
    ChatModerated {
        /// The whole mode after the change.
        mode: ChatMode,
    },
    /// A member was muted or unmuted.
    #[serde(rename = "member.muted")]
    #[strum(serialize = "member.muted")]
    MemberMuted {
        /// The member.
        user_id: String,
        /// When the mute ends; `null` when unmuted.
        #[serde(with = "timestamp::option", default)]
        #[schemars(schema_with = "timestamp::option::schema")]
        until: Option<DateTime<Utc>>,
    },
}

impl EventBody {
    /// The wire name, also the last tokens of its subject.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Which event it is, which names its subject.
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::MsgCreated { .. } => EventKind::MsgCreated,
            EventBody::MsgEdited { .. } => EventKind::MsgEdited,
            EventBody::MsgDeleted { .. } => EventKind::MsgDeleted,
            EventBody::ChatCreated { .. } => EventKind::ChatCreated,
            EventBody::ChatUpdated { .. } => EventKind::ChatUpdated,
            EventBody::MemberAdded { .. } => EventKind::MemberAdded,
            EventBody::MemberRemoved { .. } => EventKind::MemberRemoved,
            EventBody::ChatModerated { .. } => EventKind::ChatModerated,
            EventBody::MemberMuted { .. } => EventKind::MemberMuted,
        }
    }
}

/// Every kind of persisted event: the last tokens of `chat.evt.<chat_id>.<kind>`, so
/// that a subject is built or read without spelling an event's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString, VariantArray)]
pub enum EventKind {
    /// An [`EventBody::MsgCreated`].
    #[strum(serialize = "msg.created")]
    MsgCreated,
    /// An [`EventBody::MsgEdited`].
    #[strum(serialize = "msg.edited")]
    MsgEdited,
    /// An [`EventBody::MsgDeleted`].
    #[strum(serialize = "msg.deleted")]
    MsgDeleted,
    /// An [`EventBody::ChatCreated`].
    #[strum(serialize = "chat.created")]
    ChatCreated,
    /// An [`EventBody::ChatUpdated`].
    #[strum(serialize = "chat.updated")]
    ChatUpdated,
    /// An [`EventBody::MemberAdded`].
    #[strum(serialize = "member.added")]
    MemberAdded,
    /// An [`EventBody::MemberRemoved`].
    #[strum(serialize = "member.removed")]
    MemberRemoved,
    /// An [`EventBody::ChatModerated`].
    #[strum(serialize = "chat.moderated")]
    ChatModerated,
    /// An [`EventBody::MemberMuted`].
    #[strum(serialize = "member.muted")]
    MemberMuted,
}

impl EventKind {
    /// The wire name, the last tokens of the subject.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The kind a subject's last tokens name; `None` for one this code does not know.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// Deliveries addressed to every connection of one user (`user.<user_id>.<event>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// The user became a member of a chat: edges start delivering it, from the event
    /// that made them one.
    #[serde(rename = "chat.joined")]
    #[strum(serialize = "chat.joined")]
    ChatJoined {
        /// Payload version.
        v: u8,
        /// The chat.
        chat_id: String,
        /// Their role.
        role: Role,
        /// Where that event (`chat.created` or `member.added`) is stored in `CHAT_EVT`:
        /// an edge that was not delivering the chat yet replays it from there, so the
        /// user gets the event and everything after it, in order. Absent from older
        /// notifiers; the edge then starts with the next live event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_seq: Option<u64>,
        /// When the membership was stored.
        #[serde(with = "timestamp")]
        #[schemars(schema_with = "timestamp::schema")]
        at: DateTime<Utc>,
    },
    /// The user left or was removed: edges stop delivering the chat to them.
    #[serde(rename = "chat.left")]
    #[strum(serialize = "chat.left")]
    ChatLeft {
        /// Payload version.
        v: u8,
        /// The chat.
        chat_id: String,
        /// When.
        #[serde(with = "timestamp")]
        #[schemars(schema_with = "timestamp::schema")]
        at: DateTime<Utc>,
    },
}

impl UserEvent {
    /// The wire name, the same as its [`UserDeliveryKind`]'s.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Which delivery it is, which names its subject.
    pub fn kind(&self) -> UserDeliveryKind {
        match self {
            UserEvent::ChatJoined { .. } => UserDeliveryKind::ChatJoined,
            UserEvent::ChatLeft { .. } => UserDeliveryKind::ChatLeft,
        }
    }
}

/// Every kind of user-scoped delivery: the last tokens of `user.<user_id>.<kind>`, and
/// so what its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString, VariantArray)]
pub enum UserDeliveryKind {
    /// A [`UserEvent::ChatJoined`].
    #[strum(serialize = "chat.joined")]
    ChatJoined,
    /// A [`UserEvent::ChatLeft`].
    #[strum(serialize = "chat.left")]
    ChatLeft,
    /// A copy of a chat's `msg.created` [`ChatEvent`] for one user's connections: a
    /// resent `client_msg_id` is answered to its sender only.
    #[strum(serialize = "msg.created")]
    MsgCreated,
}

impl UserDeliveryKind {
    /// The wire name, the last tokens of the subject.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The kind a subject's last tokens name; `None` for one this code does not know.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// Live-only signals on `chat.live.<chat_id>.<signal>`, shaped as client frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type")]
pub enum LiveSignal {
    /// A member's read mark moved.
    #[serde(rename = "read")]
    #[strum(serialize = "read")]
    Read {
        /// The chat.
        chat_id: String,
        /// The reader.
        user_id: String,
        /// Their new mark.
        up_to_seq: u64,
    },
    /// A member started or stopped typing; a `start` expires by itself after 6 s.
    #[serde(rename = "typing")]
    #[strum(serialize = "typing")]
    Typing {
        /// The chat.
        chat_id: String,
        /// The typist.
        user_id: String,
        /// `start` or `stop`.
        state: TypingState,
    },
}

impl LiveSignal {
    /// The wire name, also the last token of its subject.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Which signal it is, which names its subject.
    pub fn kind(&self) -> LiveSignalKind {
        match self {
            LiveSignal::Read { .. } => LiveSignalKind::Read,
            LiveSignal::Typing { .. } => LiveSignalKind::Typing,
        }
    }

    /// Who caused it (edges do not echo a signal to its author's sockets).
    pub fn user_id(&self) -> &str {
        match self {
            LiveSignal::Read { user_id, .. } | LiveSignal::Typing { user_id, .. } => user_id,
        }
    }
}

/// Every kind of live signal: the last token of `chat.live.<chat_id>.<kind>`, so that
/// a subscriber knows a signal's kind without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString, VariantArray)]
pub enum LiveSignalKind {
    /// A [`LiveSignal::Read`].
    #[strum(serialize = "read")]
    Read,
    /// A [`LiveSignal::Typing`].
    #[strum(serialize = "typing")]
    Typing,
}

impl LiveSignalKind {
    /// The wire name, the last token of the subject.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The kind a subject's last token names; `None` for one this code does not know.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// Typing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    /// Started typing.
    Start,
    /// Stopped typing.
    Stop,
}

/// How long a `typing` `start` lasts without a refresh.
pub const TYPING_TTL_S: u64 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_event_is_flat_like_a_client_frame() {
        let event = ChatEvent::new("c1", 7, EventBody::MemberAdded { user_id: "u2".into(), role: Role::Member });
        let json = serde_json::to_value(&event).expect("serialise");
        assert_eq!(json["type"], "member.added");
        assert_eq!(json["id"], "c1:7");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["user_id"], "u2");
        assert_eq!(json["role"], "member");
        let back: ChatEvent = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, event);
    }

    /// The kinds that name subjects are kept beside the payload enums they stand for:
    /// their names must be the payloads' wire names, in the same order.
    #[test]
    fn subject_kinds_name_their_payloads_variants() {
        let events: Vec<&str> = EventKind::VARIANTS.iter().map(|kind| kind.name()).collect();
        assert_eq!(events, EventBody::VARIANTS);
        let member = EventBody::MemberAdded { user_id: "u".into(), role: Role::Member };
        assert_eq!(member.kind().name(), member.name());
        assert_eq!(EventKind::parse("msg.deleted"), Some(EventKind::MsgDeleted));
        let live: Vec<&str> = LiveSignalKind::VARIANTS.iter().map(|kind| kind.name()).collect();
        assert_eq!(live, LiveSignal::VARIANTS);
        let user: Vec<&str> = UserDeliveryKind::VARIANTS.iter().map(|kind| kind.name()).collect();
        let payloads: Vec<&str> = UserEvent::VARIANTS.iter().copied().chain(["msg.created"]).collect();
        assert_eq!(user, payloads);
        assert!(EventBody::VARIANTS.contains(&UserDeliveryKind::MsgCreated.name()));
        assert_eq!(UserDeliveryKind::parse("chat.joined"), Some(UserDeliveryKind::ChatJoined));
        assert_eq!(LiveSignalKind::parse("typing"), Some(LiveSignalKind::Typing));
        assert_eq!(LiveSignalKind::parse("bench"), None);
    }
}

/// A push notification request for an offline member, on `push.<user_id>` (stream
/// `PUSH`), for the platform's push gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushRequest {
    /// Payload version.
    pub v: u8,
    /// Who to notify.
    pub user_id: String,
    /// The chat.
    pub chat_id: String,
    /// Its title (the sender's name for direct chats).
    pub chat_title: String,
    /// The new message.
    pub message_id: String,
    /// Its seq.
    pub seq: u64,
    /// Who sent it.
    pub sender_id: String,
    /// The sender's display name.
    pub sender_name: String,
    /// The first characters of the text.
    pub preview: String,
    /// The user's unread messages across all chats.
    pub badge: u64,
}

/// How many characters of a message a push preview shows.
pub const PUSH_PREVIEW_CHARS: usize = 100;

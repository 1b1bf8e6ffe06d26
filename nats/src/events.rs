//! Events: what happened, as published by the persister to `chat.evt.<chat_id>.<event>`
//! (`CHAT_EVT`), plus the user-scoped deliveries on `user.<user_id>.<event>`.
//!
//! A chat event is serialised exactly as clients receive it over WebSocket (plus `v` and
//! `id`), so an edge forwards the bytes it got from NATS without parsing them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Chat, Message, Role, timestamp};

/// A persisted chat event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    /// A message was posted.
    #[serde(rename = "msg.created")]
    MsgCreated {
        /// The stored message.
        message: Message,
    },
    /// A chat was created.
    #[serde(rename = "chat.created")]
    ChatCreated {
        /// The chat as stored.
        chat: Chat,
    },
    /// Someone joined a chat.
    #[serde(rename = "member.added")]
    MemberAdded {
        /// The new member.
        user_id: String,
        /// Their role.
        role: Role,
    },
}

impl EventBody {
    /// The wire name, also the last tokens of its subject.
    pub fn name(&self) -> &'static str {
        match self {
            EventBody::MsgCreated { .. } => "msg.created",
            EventBody::ChatCreated { .. } => "chat.created",
            EventBody::MemberAdded { .. } => "member.added",
        }
    }
}

/// Deliveries addressed to every connection of one user (`user.<user_id>.<event>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// The user became a member of a chat: edges start delivering it.
    #[serde(rename = "chat.joined")]
    ChatJoined {
        /// Payload version.
        v: u8,
        /// The chat.
        chat_id: String,
        /// Their role.
        role: Role,
        /// When the membership was stored.
        #[serde(with = "timestamp")]
        at: DateTime<Utc>,
    },
}

impl UserEvent {
    /// The wire name, also the last tokens of its subject.
    pub fn name(&self) -> &'static str {
        match self {
            UserEvent::ChatJoined { .. } => "chat.joined",
        }
    }
}

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
}

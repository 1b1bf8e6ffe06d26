//! The public shapes of the chat domain, as clients see them over WebSocket and REST.
//! Events embed these, so they live in the bus contract.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantArray};

/// Timestamps are RFC 3339 UTC with milliseconds everywhere the public sees them.
pub mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `2026-01-02T03:04:05.678Z`.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text).map(|at| at.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }

    /// The JSON Schema of such a timestamp, for the AsyncAPI documents.
    pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }

    /// The same for optional timestamps (`null` when absent).
    pub mod option {
        use super::*;

        /// Serialises `None` as `null`.
        pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, s),
                None => s.serialize_none(),
            }
        }

        /// Accepts `null` or an RFC 3339 timestamp.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| {
                    DateTime::parse_from_rfc3339(&text)
                        .map(|at| at.with_timezone(&Utc))
                        .map_err(serde::de::Error::custom)
                })
                .transpose()
        }

        /// The JSON Schema of an optional timestamp.
        pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
            schemars::json_schema!({"type": ["string", "null"], "format": "date-time"})
        }
    }
}

/// A chat message. Deleted messages keep their place as tombstones: `text` is empty and
/// `deleted_at` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// Server-assigned id.
    pub id: String,
    /// The chat it belongs to.
    pub chat_id: String,
    /// The chat sequence number of its creation.
    pub seq: u64,
    /// The chat sequence number of its latest change (creation, edit or delete).
    pub updated_seq: u64,
    /// Who sent it.
    pub sender_id: String,
    /// The sender's idempotency key; unique per sender and chat.
    pub client_msg_id: String,
    /// The text as the sender wrote it; empty once deleted.
    pub text: String,
    /// The id of the message it answers, if any.
    pub reply_to: Option<String>,
    /// When it was persisted.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    #[serde(with = "timestamp::option", default)]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub edited_at: Option<DateTime<Utc>>,
    /// When it was deleted.
    #[serde(with = "timestamp::option", default)]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One-to-one or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// Exactly two members; one such chat per pair.
    Direct,
    /// Any number of members with roles.
    Group,
}

/// A member's role in a chat.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    /// May send and read.
    Member,
    /// May also rename the chat and manage members.
    Admin,
    /// Created the chat; everything an admin may do.
    Owner,
}

impl Role {
    /// The lowercase name used on the wire and in MongoDB.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Owners and admins manage the chat.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A chat member as listed inside a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMember {
    /// The member.
    pub user_id: String,
    /// Their role.
    pub role: Role,
    /// Until when a moderator muted them (they read but do not send); absent when not
    /// muted.
    #[serde(with = "timestamp::option", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub muted_until: Option<DateTime<Utc>>,
}

/// A short summary of the newest message, shown in chat lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LastMessage {
    /// Message id.
    pub id: String,
    /// Its seq.
    pub seq: u64,
    /// Its sender.
    pub sender_id: String,
    /// The first characters of its text.
    pub text: String,
    /// When it was sent.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub created_at: DateTime<Utc>,
}

/// Which history a member reads: all of it, or only what happened from their joining
/// on (`joined_seq`), in history, sync, previews and unread counts alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryVisibility {
    /// Every member reads the whole history (chats from before the setting existed,
    /// direct chats, groups created by staff unless they chose otherwise).
    #[default]
    All,
    /// A member reads nothing from before their `joined_seq` (the default of groups
    /// created by students).
    SinceJoin,
}

impl HistoryVisibility {
    /// The lowest seq a member who joined at `joined_seq` may read.
    pub fn first_readable_seq(self, joined_seq: u64) -> u64 {
        match self {
            HistoryVisibility::All => 1,
            HistoryVisibility::SinceJoin => joined_seq.max(1),
        }
    }

    /// The lowercase name used on the wire and in MongoDB.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryVisibility::All => "all",
            HistoryVisibility::SinceJoin => "since_join",
        }
    }
}

/// A chat with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Chat {
    /// Chat id.
    pub id: String,
    /// Direct or group.
    #[serde(rename = "type")]
    pub kind: ChatKind,
    /// Group title; `null` for direct chats.
    pub title: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub created_at: DateTime<Utc>,
    /// When anything in it last happened.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub updated_at: DateTime<Utc>,
    /// The seq of its latest event.
    pub last_seq: u64,
    /// Its newest message.
    pub last_message: Option<LastMessage>,
    /// Its members and their roles.
    pub participants: Vec<ChatMember>,
    /// The platform's id for the course or group this chat belongs to.
    pub external_id: Option<String>,
    /// Which history members who join later read.
    #[serde(default)]
    pub history_visibility: HistoryVisibility,
    /// Who may post, how often, and whether the chat is frozen; chats stored before
    /// moderation existed are open to everyone.
    #[serde(default)]
    pub mode: ChatMode,
}

/// Who may post in a chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Posting {
    /// Every member sends.
    #[default]
    Everyone,
    /// Only owners and admins send (an announcement chat); members read and mark read.
    Admins,
}

/// A chat's moderation mode, as `chat.moderate` last set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMode {
    /// Who may post.
    #[serde(default)]
    pub posting: Posting,
    /// One message per this many seconds per member; 0 is off. Owners and admins are
    /// exempt.
    #[serde(default)]
    pub slow_mode_seconds: u32,
    /// Read-only for everyone: no sends, edits or deletes; read marks still move.
    #[serde(default)]
    pub frozen: bool,
}

impl Chat {
    /// The role of `user_id`, if a member.
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        self.participants.iter().find(|member| member.user_id == user_id).map(|member| member.role)
    }
}

/// The error codes shared by the WebSocket protocol, the REST API and the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// Missing or invalid credentials.
    Unauthorized,
    /// Authenticated, but not allowed.
    Forbidden,
    /// No such thing, or not visible to the caller.
    NotFound,
    /// The request is malformed.
    Invalid,
    /// The request is bigger than allowed.
    TooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// The request conflicts with the current state.
    Conflict,
    /// A dependency is down; retry later.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The direct-chat key of a pair: both ids sorted and joined, so that either member
/// finds the same chat.
pub fn direct_key(a: &str, b: &str) -> String {
    if a <= b { format!("{a}:{b}") } else { format!("{b}:{a}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap_or_default();
        let message = Message {
            id: "m1".into(),
            chat_id: "c1".into(),
            seq: 1,
            updated_seq: 1,
            sender_id: "u1".into(),
            client_msg_id: "k1".into(),
            text: "hi".into(),
            reply_to: None,
            created_at: at,
            edited_at: None,
            deleted_at: None,
        };
        let json = serde_json::to_value(&message).unwrap_or_default();
        assert_eq!(json["created_at"], "2026-01-02T03:04:05.000Z");
        assert_eq!(json["edited_at"], serde_json::Value::Null);
        let back: Message = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, message);
    }

    #[test]
    fn since_join_members_read_from_their_joining_and_old_chats_read_all() {
        assert_eq!(HistoryVisibility::SinceJoin.first_readable_seq(42), 42);
        assert_eq!(HistoryVisibility::All.first_readable_seq(42), 1);
        let chat: serde_json::Value = serde_json::json!({"history_visibility": "since_join"});
        assert_eq!(chat["history_visibility"], HistoryVisibility::SinceJoin.as_str());
        let old: HistoryVisibility =
            serde_json::from_value(serde_json::json!("all")).unwrap_or(HistoryVisibility::SinceJoin);
        assert_eq!(old, HistoryVisibility::default());
    }

    #[test]
    fn direct_key_is_symmetric() {
        assert_eq!(direct_key("b", "a"), direct_key("a", "b"));
        assert_ne!(direct_key("a", "b"), direct_key("a", "c"));
    }

    #[test]
    fn roles_order_by_power() {
        assert!(Role::Owner.can_manage() && Role::Admin.can_manage());
        assert!(!Role::Member.can_manage());
    }
}

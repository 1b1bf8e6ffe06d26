//! Commands: what an edge or the api asks the persister to do. Published to
//! `chat.cmd.<chat_id>.<command>` in the `CHAT_CMD` work queue.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

use crate::{
    model::{Chat, ChatKind, ErrorCode, HistoryVisibility, Message, Posting, Role, timestamp},
    moderation::{Report, ReportReason, ResolveAction},
};

/// Who issued a command, as proven by their token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// The token's `sub`.
    pub user_id: String,
    /// The token's `roles` (platform roles: `student`, `teacher`, `admin`, `service`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A command with everything the persister needs to authorise it and answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandEnvelope {
    /// Payload version, always 1.
    pub v: u8,
    /// Unique per command; also its `Nats-Msg-Id`, so a retried publish is stored once.
    pub id: String,
    /// The authenticated issuer.
    pub actor: Actor,
    /// The client's `ref`, echoed in a later rejection.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The edge connection that sent it, for the logs (its `reply` names it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<String>,
    /// The core NATS subject the persister publishes the [`CommandOutcome`] to: the
    /// api's inbox, or [`subjects::edge_outcome`](crate::subjects::edge_outcome) for
    /// a command from a WebSocket connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// When the edge or api published it; the start of `chat_persist_seconds`.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub issued_at: DateTime<Utc>,
    /// What to do.
    pub command: Command,
}

impl CommandEnvelope {
    /// The chat the command is about.
    pub fn chat_id(&self) -> &str {
        self.command.chat_id()
    }
}

/// Every command the persister understands, each variant wrapping its own struct so
/// that a handler receives exactly its command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type")]
pub enum Command {
    /// Post a message.
    #[serde(rename = "msg.send")]
    #[strum(serialize = "msg.send")]
    MsgSend(MsgSend),
    /// Create a chat.
    #[serde(rename = "chat.create")]
    #[strum(serialize = "chat.create")]
    ChatCreate(ChatCreate),
    /// Change a message's text.
    #[serde(rename = "msg.edit")]
    #[strum(serialize = "msg.edit")]
    MsgEdit(MsgEdit),
    /// Soft-delete a message.
    #[serde(rename = "msg.delete")]
    #[strum(serialize = "msg.delete")]
    MsgDelete(MsgDelete),
    /// Move the issuer's read mark forward.
    #[serde(rename = "read")]
    #[strum(serialize = "read")]
    Read(Read),
    /// Rename a group or change its history visibility.
    #[serde(rename = "chat.update")]
    #[strum(serialize = "chat.update")]
    ChatUpdate(ChatUpdate),
    /// Add members to a group, or change the role of existing ones.
    #[serde(rename = "member.add")]
    #[strum(serialize = "member.add")]
    MemberAdd(MemberAdd),
    /// Remove a member from a group, or leave it.
    #[serde(rename = "member.remove")]
    #[strum(serialize = "member.remove")]
    MemberRemove(MemberRemove),
    /// Change who may post, slow mode, or freeze the chat.
    #[serde(rename = "chat.moderate")]
    #[strum(serialize = "chat.moderate")]
    ChatModerate(ChatModerate),
    /// Mute a member until a time, or unmute them.
    #[serde(rename = "member.mute")]
    #[strum(serialize = "member.mute")]
    MemberMute(MemberMute),
    /// Report a message to the moderators.
    #[serde(rename = "msg.report")]
    #[strum(serialize = "msg.report")]
    MsgReport(MsgReport),
    /// Resolve a report (a moderator).
    #[serde(rename = "report.resolve")]
    #[strum(serialize = "report.resolve")]
    ReportResolve(ReportResolve),
}

/// Post a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgSend {
    /// Target chat.
    pub chat_id: String,
    /// The sender's idempotency key.
    pub client_msg_id: String,
    /// Message text.
    pub text: String,
    /// The message being answered.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// Create a chat; the issuer becomes its owner (groups) or a member (direct).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatCreate {
    /// Id chosen by the api so that a retried request creates one chat.
    pub chat_id: String,
    /// Direct or group.
    pub kind: ChatKind,
    /// Group title.
    #[serde(default)]
    pub title: Option<String>,
    /// Everyone but the issuer.
    pub member_ids: Vec<String>,
    /// The platform's id for a course or group; unique.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Which history later members read; groups only. Without it: `all` when the
    /// issuer is staff, `since_join` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_visibility: Option<HistoryVisibility>,
}

/// Change a message's text (its sender only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgEdit {
    /// The chat.
    pub chat_id: String,
    /// The message.
    pub message_id: String,
    /// New text.
    pub text: String,
}

/// Soft-delete a message (its sender, a chat owner or admin, a platform admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgDelete {
    /// The chat.
    pub chat_id: String,
    /// The message.
    pub message_id: String,
}

/// Move the issuer's read mark forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Read {
    /// The chat.
    pub chat_id: String,
    /// Everything up to this seq is read.
    pub up_to_seq: u64,
}

/// Rename a group or change its history visibility (owners and admins); at least one
/// of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatUpdate {
    /// The chat.
    pub chat_id: String,
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New history visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_visibility: Option<HistoryVisibility>,
}

/// Add members to a group, or change the role of existing ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemberAdd {
    /// Target chat.
    pub chat_id: String,
    /// Who to add.
    pub user_ids: Vec<String>,
    /// Their role.
    pub role: Role,
}

/// Remove a member from a group, or leave it (the issuer's own id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemberRemove {
    /// The chat.
    pub chat_id: String,
    /// Who leaves.
    pub user_id: String,
}

/// Change a chat's mode (its owner and admins, a platform admin); at least one field.
/// Fields left out keep their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatModerate {
    /// The chat.
    pub chat_id: String,
    /// Who may post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posting: Option<Posting>,
    /// Slow mode: seconds between two messages of a member, 0 to switch it off, at most
    /// [`MAX_SLOW_MODE_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_mode_seconds: Option<u32>,
    /// Freeze (read-only) or unfreeze.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<bool>,
}

/// The longest slow mode: one message an hour.
pub const MAX_SLOW_MODE_SECONDS: u32 = 3600;

/// Mute a member until `until` (they keep reading), or unmute them (`until` absent or
/// `null`); by the chat's owner and admins, of members ranked below them, or by a
/// platform admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemberMute {
    /// The chat.
    pub chat_id: String,
    /// The member.
    pub user_id: String,
    /// When the mute ends; absent or `null` unmutes.
    #[serde(with = "timestamp::option", default)]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub until: Option<DateTime<Utc>>,
}

/// Report a message (any member of its chat); once per reporter and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgReport {
    /// The chat.
    pub chat_id: String,
    /// The message.
    pub message_id: String,
    /// Why.
    pub reason: ReportReason,
    /// The reporter's words, at most 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Resolve a report (a user with a moderation role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportResolve {
    /// The reported message's chat.
    pub chat_id: String,
    /// The report.
    pub report_id: String,
    /// What to do.
    pub action: ResolveAction,
    /// Until when the sender is muted, for `mute_sender`.
    #[serde(with = "timestamp::option", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub mute_until: Option<DateTime<Utc>>,
}

impl Command {
    /// The chat the command is about.
    pub fn chat_id(&self) -> &str {
        match self {
            Command::MsgSend(MsgSend { chat_id, .. })
            | Command::MsgEdit(MsgEdit { chat_id, .. })
            | Command::MsgDelete(MsgDelete { chat_id, .. })
            | Command::Read(Read { chat_id, .. })
            | Command::ChatCreate(ChatCreate { chat_id, .. })
            | Command::ChatUpdate(ChatUpdate { chat_id, .. })
            | Command::MemberAdd(MemberAdd { chat_id, .. })
            | Command::MemberRemove(MemberRemove { chat_id, .. })
            | Command::ChatModerate(ChatModerate { chat_id, .. })
            | Command::MemberMute(MemberMute { chat_id, .. })
            | Command::MsgReport(MsgReport { chat_id, .. })
            | Command::ReportResolve(ReportResolve { chat_id, .. }) => chat_id,
        }
    }

    /// A send's idempotency key, which a rejection echoes so the client can match it.
    pub fn client_msg_id(&self) -> Option<&str> {
        match self {
            Command::MsgSend(send) => Some(&send.client_msg_id),
            _ => None,
        }
    }

    /// The wire name, also the last tokens of its subject.
    pub fn name(&self) -> &'static str {
        self.into()
    }
}

/// What the persister did with a command, published to the command's `reply` subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Stored (or found already stored, when `created` is false).
    Done {
        /// The message, for `msg.send`.
        #[serde(default)]
        message: Option<Box<Message>>,
        /// The chat, for `chat.create` and membership changes.
        #[serde(default)]
        chat: Option<Box<Chat>>,
        /// False when an earlier identical command had already done it.
        created: bool,
    },
    /// Refused; nothing was stored.
    Rejected(Rejection),
    /// A report stored (`msg.report`) or resolved (`report.resolve`), or found already
    /// stored or resolved when `created` is false.
    Reported {
        /// The report as stored.
        report: Box<Report>,
        /// False when the report existed already (or was resolved already).
        created: bool,
    },
}

/// Why a command was refused; the edge hands it to the client as an `error` with its
/// `ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rejection {
    /// Public error code.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
    /// The client's `ref`.
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// The rejected send's idempotency key.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// When trying again can succeed, in milliseconds: a slow-mode `rate_limited`, or
    /// a muted member's `forbidden` (the time left of the mute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_round_trips_with_a_tagged_command() {
        let envelope = CommandEnvelope {
            v: 1,
            id: "cmd1".into(),
            actor: Actor { user_id: "u1".into(), roles: vec!["student".into()] },
            reference: Some("r1".into()),
            conn_id: None,
            reply: None,
            issued_at: Utc::now(),
            command: Command::MsgSend(MsgSend {
                chat_id: "c1".into(),
                client_msg_id: "k1".into(),
                text: "hello".into(),
                reply_to: None,
            }),
        };
        let json = serde_json::to_value(&envelope).expect("serialise");
        let wire =
            json!({"type": "msg.send", "chat_id": "c1", "client_msg_id": "k1", "text": "hello", "reply_to": null});
        assert_eq!(json["command"], wire, "the command's fields sit beside its tag");
        assert_eq!(json["ref"], "r1");
        assert!(json.get("conn_id").is_none());
        let back: CommandEnvelope = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back.chat_id(), "c1");
        assert_eq!(back.command.name(), "msg.send");
    }

    #[test]
    fn outcome_is_tagged_by_status() {
        let rejected = CommandOutcome::Rejected(Rejection {
            code: ErrorCode::NotFound,
            message: "no such chat".into(),
            reference: None,
            client_msg_id: Some("k".into()),
            retry_after_ms: None,
        });
        let json = serde_json::to_value(&rejected).expect("serialise");
        assert_eq!(json["status"], "rejected");
        assert_eq!(json["code"], "not_found");
        let done = json!({"status": "done", "created": true});
        let parsed: CommandOutcome = serde_json::from_value(done).expect("deserialise");
        assert!(matches!(parsed, CommandOutcome::Done { created: true, .. }));
    }
}

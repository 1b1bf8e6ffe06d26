//! The client side of the WebSocket protocol: commands in, frames out. Commands are
//! typed and refuse unknown fields. Every frame the edge writes is a [`ServerFrame`]:
//! its own replies are serialised from it, and the events it forwards from the bus
//! unchanged are its untagged variants' serialisations (their publishers serialise the
//! same types). The AsyncAPI document (`/asyncapi.json`) is generated from both enums.

use std::collections::BTreeMap;

use chat_nats::{
    events::{ChatEvent, LiveSignal, TypingState},
    model::{Posting, timestamp},
    moderation::ReportReason,
    presence::Presence,
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

/// A command from a client. Every command may carry `ref`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientCommand {
    /// Post a message.
    #[serde(rename = "msg.send")]
    #[strum(serialize = "msg.send")]
    MsgSend {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// Target chat.
        chat_id: String,
        /// Idempotency key.
        client_msg_id: String,
        /// Text.
        text: String,
        /// Answered message.
        #[serde(default)]
        reply_to: Option<String>,
    },
    /// Change a message's text.
    #[serde(rename = "msg.edit")]
    #[strum(serialize = "msg.edit")]
    MsgEdit {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
        /// New text.
        text: String,
    },
    /// Delete a message.
    #[serde(rename = "msg.delete")]
    #[strum(serialize = "msg.delete")]
    MsgDelete {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
    },
    /// Start or stop typing.
    #[serde(rename = "typing")]
    #[strum(serialize = "typing")]
    Typing {
        /// Typing has no reply; an error answering it echoes this.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// `start` or `stop`.
        state: TypingState,
    },
    /// Move the read mark.
    #[serde(rename = "read")]
    #[strum(serialize = "read")]
    Read {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// Everything up to this seq is read.
        up_to_seq: u64,
    },
    /// What changed since these seqs?
    #[serde(rename = "sync")]
    #[strum(serialize = "sync")]
    Sync {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// Last seen seq per chat.
        #[serde(default)]
        chats: BTreeMap<String, u64>,
    },
    /// Watch these users' presence (replaces the previous set).
    #[serde(rename = "presence.watch")]
    #[strum(serialize = "presence.watch")]
    PresenceWatch {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// At most 200 users.
        user_ids: Vec<String>,
    },
    /// A fresh token before the current one expires.
    #[serde(rename = "auth.refresh")]
    #[strum(serialize = "auth.refresh")]
    AuthRefresh {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The new token, for the same user.
        token: String,
    },
    /// Liveness check.
    #[serde(rename = "ping")]
    #[strum(serialize = "ping")]
    Ping {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
    /// Change who may post, slow mode, or freeze the chat (owners, admins, platform
    /// admins); at least one of the three.
    #[serde(rename = "chat.moderate")]
    #[strum(serialize = "chat.moderate")]
    ChatModerate {
        /// Echoed in an error.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// `everyone` or `admins` (an announcement chat).
        #[serde(default)]
        posting: Option<Posting>,
        /// Seconds between two messages of a member; 0 is off, at most 3600.
        #[serde(default)]
        slow_mode_seconds: Option<u32>,
        /// Read-only for everyone, or open again.
        #[serde(default)]
        frozen: Option<bool>,
    },
    /// Mute a member until a time, or unmute them (`until` absent or `null`).
    #[serde(rename = "member.mute")]
    #[strum(serialize = "member.mute")]
    MemberMute {
        /// Echoed in an error.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// The member.
        user_id: String,
        /// When the mute ends.
        #[serde(with = "timestamp::option", default)]
        #[schemars(schema_with = "timestamp::option::schema")]
        until: Option<DateTime<Utc>>,
    },
    /// Report a message to the moderators (once per reporter and message).
    #[serde(rename = "msg.report")]
    #[strum(serialize = "msg.report")]
    MsgReport {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
        /// Why.
        reason: ReportReason,
        /// What the moderators should know, at most 1,000 characters.
        #[serde(default)]
        note: Option<String>,
    },
}

impl ClientCommand {
    /// The wire name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// The client's `ref`.
    pub fn reference(&self) -> Option<&str> {
        match self {
            ClientCommand::MsgSend { reference, .. }
            | ClientCommand::MsgEdit { reference, .. }
            | ClientCommand::MsgDelete { reference, .. }
            | ClientCommand::Typing { reference, .. }
            | ClientCommand::Read { reference, .. }
            | ClientCommand::Sync { reference, .. }
            | ClientCommand::PresenceWatch { reference, .. }
            | ClientCommand::AuthRefresh { reference, .. }
            | ClientCommand::Ping { reference }
            | ClientCommand::ChatModerate { reference, .. }
            | ClientCommand::MemberMute { reference, .. }
            | ClientCommand::MsgReport { reference, .. } => reference.as_deref(),
        }
    }
}

/// Just enough of a frame to answer it when it does not parse.
#[derive(Debug, Deserialize)]
pub struct FrameHead {
    /// The command type, if it has one.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The client's `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<serde_json::Value>,
}

impl FrameHead {
    /// The `ref`, when it is a string short enough to be echoed.
    fn echoable_reference(&self) -> Option<String> {
        self.reference.as_ref()?.as_str().filter(|r| r.len() <= MAX_REF_LEN).map(str::to_owned)
    }
}

/// The `ref` of a frame that is refused before it is parsed as a command (for rate),
/// so that its refusal still answers it.
pub fn reference_of(text: &str) -> Option<String> {
    serde_json::from_str::<FrameHead>(text).ok()?.echoable_reference()
}

/// Parses a text frame; on failure returns the `ref` (when readable) and the reason.
/// A frame must be a JSON object: serde would also read a command from an array whose
/// first element is its type (`["sync", ...]`), a shape the protocol does not have.
pub fn parse_command(text: &str) -> Result<ClientCommand, (Option<String>, String)> {
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err((None, "a command is a JSON object".to_owned()));
    }
    serde_json::from_str(text).map_err(|error| {
        let head: Option<FrameHead> = serde_json::from_str(text).ok();
        let reference = head.as_ref().and_then(FrameHead::echoable_reference);
        let reason = match head.and_then(|h| h.kind) {
            Some(kind) if !KNOWN_TYPES.contains(&kind.as_str()) => format!("unknown command type {kind:?}"),
            _ => error.to_string(),
        };
        (reference, reason)
    })
}

/// Every command type this edge understands: the command enum's wire names.
pub const KNOWN_TYPES: &[&str] = ClientCommand::VARIANTS;

/// Longest accepted `ref`.
pub const MAX_REF_LEN: usize = 64;

/// Every frame the edge writes. The tagged variants are the edge's own replies; the
/// untagged ones, last (serde tries them in order), are what it forwards from the
/// bus, each already carrying its own `type`.
#[derive(Debug, Clone, Serialize, JsonSchema, IntoStaticStr, VariantNames)]
#[serde(tag = "type")]
pub enum ServerFrame<'a> {
    /// The first frame on every connection.
    #[serde(rename = "hello")]
    #[strum(serialize = "hello")]
    Hello {
        /// This connection.
        conn_id: &'a str,
        /// The authenticated user.
        user_id: &'a str,
        /// How often the client should ping.
        heartbeat_ms: u64,
        /// The limits in force.
        limits: Limits,
    },
    /// A command was accepted.
    #[serde(rename = "ack")]
    #[strum(serialize = "ack")]
    Ack {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
    },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    #[strum(serialize = "pong")]
    Pong {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
    },
    /// A command failed.
    #[serde(rename = "error")]
    #[strum(serialize = "error")]
    Error {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
        /// Public error code.
        code: chat_nats::model::ErrorCode,
        /// Reason.
        message: &'a str,
        /// For rejected sends: the key of the send.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        /// When to retry, for `rate_limited`.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The answer to `sync`: what changed, from the api (`chat.rpc.sync`).
    #[serde(rename = "sync.result")]
    #[strum(serialize = "sync.result")]
    SyncResult {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
        /// What changed.
        #[serde(flatten)]
        result: &'a chat_nats::rpc::SyncResult,
    },
    /// The token expires soon: send `auth.refresh` with a fresh one.
    #[serde(rename = "token.expiring")]
    #[strum(serialize = "token.expiring")]
    TokenExpiring {
        /// Milliseconds until the connection is closed with 4001.
        in_ms: u64,
    },
    /// The edge is shutting down: reconnect (to another edge) after this delay.
    #[serde(rename = "reconnect")]
    #[strum(serialize = "reconnect")]
    Reconnect {
        /// The jittered delay, so that clients do not all come back at once.
        after_ms: u64,
    },
    /// A presence snapshot entry (after `presence.watch`) or change
    /// (`presence.changed.<user_id>`, forwarded as published).
    #[serde(untagged)]
    #[strum(serialize = "presence")]
    Presence(&'a Presence),
    /// A persisted chat event (`chat.evt.<chat_id>.<event>` or a user's copy on
    /// `user.<user_id>.msg.created`), forwarded as the persister published it.
    #[serde(untagged)]
    #[strum(serialize = "event")]
    Event(&'a ChatEvent),
    /// A live signal (`chat.live.<chat_id>.<signal>`), forwarded as published.
    #[serde(untagged)]
    #[strum(serialize = "live")]
    Live(&'a LiveSignal),
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The limits announced in `hello`.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Limits {
    /// Largest frame, bytes.
    pub max_frame_bytes: usize,
    /// Longest text, characters.
    pub max_text_chars: usize,
    /// Commands per second per connection.
    pub commands_per_s: u32,
    /// Burst of commands per connection.
    pub commands_burst: u32,
    /// Connections per user.
    pub max_connections_per_user: usize,
    /// Longest silence before the server closes the connection.
    pub idle_timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_in_an_array_is_refused() {
        // Found by the ws_command fuzz target: serde reads a tagged struct from a
        // sequence too.
        for text in [r#"["sync","chatsynn',synct_id"]"#, r#"["ping"]"#, r#" ["ping"]"#] {
            assert!(parse_command(text).is_err(), "{text}");
        }
        assert!(parse_command(" \n{\"type\":\"ping\"}").is_ok());
    }

    #[test]
    fn a_send_parses_with_its_ref() {
        let command = parse_command(r#"{"type":"msg.send","ref":"r1","chat_id":"c","client_msg_id":"k","text":"hi"}"#);
        let command = command.expect("valid");
        assert_eq!(command.name(), "msg.send");
        assert_eq!(command.reference(), Some("r1"));
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_with_the_ref() {
        let (reference, reason) = parse_command(r#"{"type":"ping","ref":"r2","extra":1}"#).expect_err("unknown field");
        assert_eq!(reference.as_deref(), Some("r2"));
        assert!(reason.contains("extra"), "{reason}");
        let (_, reason) = parse_command(r#"{"type":"msg.send","chat_id":{"$ne":""},"client_msg_id":"k","text":"x"}"#)
            .expect_err("operator object");
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn the_ref_of_an_unparsed_frame_is_read_when_it_can_be_echoed() {
        assert_eq!(reference_of(r#"{"type":"msg.send","ref":"r3","text":1}"#).as_deref(), Some("r3"));
        assert_eq!(reference_of(r#"{"ref":7}"#), None);
        assert_eq!(reference_of(&format!(r#"{{"ref":"{}"}}"#, "x".repeat(MAX_REF_LEN + 1))), None);
        assert_eq!(reference_of("not json"), None);
    }

    #[test]
    fn garbage_and_unknown_types_are_refused() {
        assert!(parse_command("not json").is_err());
        let (_, reason) = parse_command(r#"{"type":"launch.missiles"}"#).expect_err("unknown type");
        assert!(reason.contains("unknown command type"), "{reason}");
    }

    /// The forwarded variants write exactly the bytes their publishers write, so that
    /// forwarding a payload unchanged is writing that frame.
    #[test]
    fn forwarded_frames_are_the_bus_payloads_and_the_edges_own_frames_are_tagged() {
        use chat_nats::{
            events::EventBody,
            model::Role,
            presence::{Presence, Status},
        };
        let event = ChatEvent::new("c1", 3, EventBody::MemberAdded { user_id: "u2".into(), role: Role::Member });
        assert_eq!(ServerFrame::Event(&event).to_text(), serde_json::to_string(&event).unwrap_or_default());
        let signal = LiveSignal::Typing { chat_id: "c1".into(), user_id: "u2".into(), state: TypingState::Stop };
        assert_eq!(ServerFrame::Live(&signal).to_text(), serde_json::to_string(&signal).unwrap_or_default());
        let presence = Presence { user_id: "u2".into(), status: Status::Offline, last_seen: None };
        assert_eq!(ServerFrame::Presence(&presence).to_text(), serde_json::to_string(&presence).unwrap_or_default());
        assert_eq!(ServerFrame::Reconnect { after_ms: 700 }.to_text(), r#"{"type":"reconnect","after_ms":700}"#);
        assert_eq!(
            ServerFrame::TokenExpiring { in_ms: 60_000 }.to_text(),
            r#"{"type":"token.expiring","in_ms":60000}"#
        );
        let result = chat_nats::rpc::SyncResult {
            chats: BTreeMap::new(),
            new_chats: vec![],
            removed_chats: vec!["c9".into()],
            has_more: false,
        };
        let text = ServerFrame::SyncResult { reference: Some("s"), result: &result }.to_text();
        let want =
            r#"{"type":"sync.result","ref":"s","chats":{},"new_chats":[],"removed_chats":["c9"],"has_more":false}"#;
        assert_eq!(text, want);
    }

    #[test]
    fn errors_carry_code_and_ref() {
        let text = ServerFrame::Error {
            reference: Some("r"),
            code: chat_nats::model::ErrorCode::NotFound,
            message: "no such chat",
            client_msg_id: None,
            retry_after_ms: None,
        }
        .to_text();
        assert_eq!(text, r#"{"type":"error","ref":"r","code":"not_found","message":"no such chat"}"#);
    }
}

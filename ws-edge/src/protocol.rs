//! The client side of the WebSocket protocol: commands in, replies out. Commands are
//! typed and refuse unknown fields; events from the bus are forwarded as they are.

use std::collections::BTreeMap;

use chat_nats::events::TypingState;
use serde::{Deserialize, Serialize};

/// A command from a client. Every command may carry `ref`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientCommand {
    /// Post a message.
    #[serde(rename = "msg.send")]
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
    PresenceWatch {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// At most 200 users.
        user_ids: Vec<String>,
    },
    /// A fresh token before the current one expires.
    #[serde(rename = "auth.refresh")]
    AuthRefresh {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        /// The new token, for the same user.
        token: String,
    },
    /// Liveness check.
    #[serde(rename = "ping")]
    Ping {
        /// Echoed in the reply.
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
}

impl ClientCommand {
    /// The wire name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ClientCommand::MsgSend { .. } => "msg.send",
            ClientCommand::MsgEdit { .. } => "msg.edit",
            ClientCommand::MsgDelete { .. } => "msg.delete",
            ClientCommand::Typing { .. } => "typing",
            ClientCommand::Read { .. } => "read",
            ClientCommand::Sync { .. } => "sync",
            ClientCommand::PresenceWatch { .. } => "presence.watch",
            ClientCommand::AuthRefresh { .. } => "auth.refresh",
            ClientCommand::Ping { .. } => "ping",
        }
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
            | ClientCommand::Ping { reference } => reference.as_deref(),
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
pub fn parse_command(text: &str) -> Result<ClientCommand, (Option<String>, String)> {
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

/// Longest accepted `ref`.
pub const MAX_REF_LEN: usize = 64;

/// Every command type this edge understands.
pub const KNOWN_TYPES: &[&str] =
    &["msg.send", "msg.edit", "msg.delete", "typing", "read", "sync", "presence.watch", "auth.refresh", "ping"];

/// Frames the edge itself writes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ServerFrame<'a> {
    /// The first frame on every connection.
    #[serde(rename = "hello")]
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
    Ack {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
    },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: Option<&'a str>,
    },
    /// A command failed.
    #[serde(rename = "error")]
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
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer to `sync`: the api's result with the frame type and the client's ref.
#[derive(Debug, Serialize)]
pub struct SyncResultFrame<'a> {
    /// Always `sync.result`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The client's `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<&'a str>,
    /// What changed.
    #[serde(flatten)]
    pub result: &'a chat_nats::rpc::SyncResult,
}

/// The limits announced in `hello`.
#[derive(Debug, Clone, Copy, Serialize)]
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

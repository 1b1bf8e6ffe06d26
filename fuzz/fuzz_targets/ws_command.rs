//! Fuzzes the WebSocket command parser, `ws_edge::protocol::parse_command`.
//!
//! Input: arbitrary bytes; anything that is not UTF-8 is dropped (a WebSocket text
//! frame is UTF-8 by definition). The parser must never panic, and:
//!
//! * an accepted frame is a JSON object whose `type` is the command's wire name and
//!   whose keys are all fields of that command (`deny_unknown_fields` holds);
//! * every id in an accepted command that passes `check_client_id` is safe inside a
//!   NATS subject: 1-64 bytes, no `.`, `*`, `>`, whitespace or control characters, and
//!   the subject builders and parsers round-trip it;
//! * accepted text that passes `check_text` has no control characters but `\n\r\t` and
//!   at most 4000 characters;
//! * a refused frame yields a reason and, at most, a `ref` of 64 bytes, and the error
//!   frame the edge writes back is valid JSON that carries both unchanged.
#![no_main]

use chat_nats::{events::UserDeliveryKind, limits, subjects};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ws_edge::protocol::{ClientCommand, KNOWN_TYPES, MAX_REF_LEN, ServerFrame, parse_command};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_command(text) {
        Ok(command) => check_accepted(text, &command),
        Err((reference, reason)) => check_refused(reference.as_deref(), &reason),
    }
});

/// The keys each command may carry, besides `type` and `ref`; `None` for a command this
/// target does not know yet (the protocol grows; the id checks below still cover it).
fn allowed_keys(command: &ClientCommand) -> Option<&'static [&'static str]> {
    Some(match command {
        ClientCommand::MsgSend { .. } => &["chat_id", "client_msg_id", "text", "reply_to"],
        ClientCommand::MsgEdit { .. } => &["chat_id", "message_id", "text"],
        ClientCommand::MsgDelete { .. } => &["chat_id", "message_id"],
        ClientCommand::Typing { .. } => &["chat_id", "state"],
        ClientCommand::Read { .. } => &["chat_id", "up_to_seq"],
        ClientCommand::Sync { .. } => &["chats"],
        ClientCommand::PresenceWatch { .. } => &["user_ids"],
        ClientCommand::AuthRefresh { .. } => &["token"],
        ClientCommand::Ping { .. } => &[],
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Every id the accepted frame carries, with its field: read from the JSON, which the
/// typed parser has just accepted, so the values are the command's own.
fn ids(object: &serde_json::Map<String, Value>) -> Vec<(&str, &'static str)> {
    let mut ids = Vec::new();
    for field in ["chat_id", "client_msg_id", "message_id", "reply_to"] {
        if let Some(id) = object.get(field).and_then(Value::as_str) {
            ids.push((id, field));
        }
    }
    if let Some(user_ids) = object.get("user_ids").and_then(Value::as_array) {
        ids.extend(user_ids.iter().filter_map(Value::as_str).map(|id| (id, "user_ids")));
    }
    if let Some(chats) = object.get("chats").and_then(Value::as_object) {
        ids.extend(chats.keys().map(|id| (id.as_str(), "chats")));
    }
    ids
}

fn check_accepted(text: &str, command: &ClientCommand) {
    let name = command.name();
    assert!(KNOWN_TYPES.contains(&name), "accepted an unknown type {name:?}");

    // The frame, read as plain JSON, agrees with what the typed parser saw.
    let value: Value = serde_json::from_str(text).expect("an accepted frame is valid JSON");
    let object = value.as_object().expect("an accepted frame is a JSON object");
    assert_eq!(object.get("type").and_then(Value::as_str), Some(name), "type differs from the parsed command");
    if let Some(allowed) = allowed_keys(command) {
        for key in object.keys() {
            assert!(
                key == "type" || key == "ref" || allowed.contains(&key.as_str()),
                "{name} accepted the unknown field {key:?}"
            );
        }
    }
    assert_eq!(
        object.get("ref").and_then(Value::as_str),
        command.reference(),
        "ref differs from the JSON's ref"
    );

    for (id, field) in ids(object) {
        if limits::check_client_id(id, field).is_ok() {
            check_subject_safe(id, name);
        }
    }

    if let ClientCommand::MsgSend { text, .. } | ClientCommand::MsgEdit { text, .. } = command
        && limits::check_text(text).is_ok()
    {
        assert!(text.chars().count() <= limits::MAX_TEXT_CHARS, "accepted text longer than the limit");
        assert!(
            !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
            "accepted text with a control character: {text:?}"
        );
    }

    let ack = ServerFrame::Ack { reference: command.reference() }.to_text();
    let ack: Value = serde_json::from_str(&ack).expect("the ack frame is valid JSON");
    assert_eq!(ack.get("ref").and_then(Value::as_str), command.reference(), "ack lost the ref");
}

/// An id that passed `check_client_id` must not change the meaning of a subject.
fn check_subject_safe(id: &str, command: &str) {
    assert!(!id.is_empty() && id.len() <= limits::MAX_CLIENT_MSG_ID, "id length out of range: {id:?}");
    assert!(
        !id.chars().any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control()),
        "id with a subject metacharacter, whitespace or control passed: {id:?}"
    );
    assert!(subjects::is_valid_id(id), "check_client_id and is_valid_id disagree on {id:?}");
    let subject = subjects::command(id, command);
    assert_eq!(subjects::chat_id_of(&subject), Some(id), "chat id does not round-trip through {subject:?}");
    assert_eq!(subjects::tail_after_chat(&subject), Some(command), "command does not round-trip through {subject:?}");
    let subject = subjects::user(id, UserDeliveryKind::ChatJoined);
    assert_eq!(subjects::user_id_of(&subject), Some(id), "user id does not round-trip through {subject:?}");
}

fn check_refused(reference: Option<&str>, reason: &str) {
    assert!(!reason.is_empty(), "refused without a reason");
    if let Some(reference) = reference {
        assert!(reference.len() <= MAX_REF_LEN, "echoed a ref longer than {MAX_REF_LEN} bytes");
    }
    let frame = ServerFrame::Error {
        reference,
        code: chat_nats::model::ErrorCode::Invalid,
        message: reason,
        client_msg_id: None,
        retry_after_ms: None,
    }
    .to_text();
    let frame: Value = serde_json::from_str(&frame).expect("the error frame is valid JSON");
    assert_eq!(frame.get("ref").and_then(Value::as_str), reference, "error frame lost the ref");
    assert_eq!(frame.get("message").and_then(Value::as_str), Some(reason), "error frame lost the reason");
}

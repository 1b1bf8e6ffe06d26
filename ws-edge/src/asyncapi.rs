//! `GET /asyncapi.json`: the AsyncAPI 3.0 document of the WebSocket protocol,
//! generated from the types the edge parses and writes, so it cannot drift: every
//! client command is a [`ClientCommand`] variant, every frame a [`ServerFrame`] variant
//! (the forwarded events through its untagged variants), every error code an
//! [`ErrorCode`], every close code a [`CloseCode`].

use axum::{http::header, response::IntoResponse};
use bytes::Bytes;
use chat_nats::{
    asyncapi::{Action, Builder, MessageSpec, Side},
    model::ErrorCode,
};
use serde_json::{Map, Value, json};
use strum::{VariantArray, VariantNames};

use crate::{
    close::CloseCode,
    protocol::{ClientCommand, MAX_REF_LEN, ServerFrame},
};

/// The one channel: the socket.
const CHANNEL: &str = "ws";
/// The tag of every frame.
const TAG: &str = "type";

/// The document, and the names of types whose written and accepted schemas differ
/// (a test insists there is none).
pub fn document_with_conflicts() -> (Value, Vec<String>) {
    let mut doc = Builder::new(
        "edu-chat WebSocket protocol",
        env!("CARGO_PKG_VERSION"),
        "The protocol between clients and the WebSocket edge, generated from the edge's Rust types \
         (`ws-edge/src/asyncapi.rs`). docs/protocol.md explains it: ordering, `sync`, limits. JSON text \
         frames, one object per frame, each with its `type`; every command may carry `ref`, echoed by \
         the frame that answers it.",
    );
    doc.server(
        "edge",
        json!({
            "host": "localhost:8082",
            "protocol": "ws",
            "description": "A WebSocket edge (`CHAT_LISTEN_ADDR`). The token goes in `Authorization: Bearer` \
                            or `?access_token=`; a refused upgrade gets a plain HTTP status and no socket.",
        }),
    );
    let commands = commands(&mut doc);
    let frames = frames(&mut doc);
    let mut ids: Vec<&str> = commands.iter().map(String::as_str).collect();
    ids.extend(frames.iter().map(String::as_str));
    doc.channel(
        CHANNEL,
        Some("/ws"),
        &format!("The socket. It closes with one of these codes:\n\n{}", close_code_table()),
        &[],
        &ids,
    );
    doc.extend_channel(CHANNEL, channel_extras());
    for id in &commands {
        let name = id.trim_start_matches("client.");
        doc.operation(id, Action::Receive, CHANNEL, &format!("The edge handles `{name}`."), &[id], None);
    }
    for id in &frames {
        let name = id.trim_start_matches("server.");
        doc.operation(id, Action::Send, CHANNEL, &format!("The edge writes `{name}`."), &[id], None);
    }
    doc.finish()
}

/// The document.
pub fn document() -> Value {
    document_with_conflicts().0
}

/// Adds one message per client command; returns their ids.
fn commands(doc: &mut Builder) -> Vec<String> {
    ClientCommand::VARIANTS
        .iter()
        .map(|&name| {
            let id = format!("client.{name}");
            let payload = doc.variant::<ClientCommand>(Side::Accepted, TAG, name).unwrap_or(Value::Null);
            let what = described(&payload, "A command.");
            doc.message(MessageSpec {
                id: id.clone(),
                name: name.into(),
                summary: format!("{what} Its `ref` (at most {MAX_REF_LEN} characters) is echoed by the answer."),
                payload,
            });
            id
        })
        .collect()
}

/// Adds one message per frame the edge writes, its own and the forwarded ones;
/// returns their ids.
fn frames(doc: &mut Builder) -> Vec<String> {
    let names = doc.variant_names::<ServerFrame>(Side::Written, TAG);
    names
        .iter()
        .map(|name| {
            let id = format!("server.{name}");
            let payload = doc.variant::<ServerFrame>(Side::Written, TAG, name).unwrap_or(Value::Null);
            let error_codes = match name.as_str() {
                "error" => format!(
                    " `code` is one of {}.",
                    ErrorCode::VARIANTS
                        .iter()
                        .map(|code| format!("`{}`", code.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            };
            let what = described(&payload, "A frame.");
            doc.message(MessageSpec {
                id: id.clone(),
                name: name.clone(),
                summary: format!("{what}{error_codes}"),
                payload,
            });
            id
        })
        .collect()
}

/// A payload's description (its variant's doc comment) on one line, for the
/// message's summary.
fn described(payload: &Value, otherwise: &str) -> String {
    let text = payload["description"].as_str().unwrap_or(otherwise);
    text.replace('\n', " ")
}

/// The close codes as a Markdown table, for the channel's description.
fn close_code_table() -> String {
    let mut table = String::from("| code | name | reason sent |\n|---|---|---|\n");
    for code in CloseCode::VARIANTS {
        table.push_str(&format!("| {} | `{}` | {} |\n", code.code(), code.name(), code.reason()));
    }
    table
}

/// The channel's WebSocket binding (the token in the query or a header) and its close
/// codes, machine-readable (`x-close-codes`).
fn channel_extras() -> Map<String, Value> {
    let close_codes: Vec<Value> = CloseCode::VARIANTS
        .iter()
        .map(|code| json!({"code": code.code(), "name": code.name(), "reason": code.reason()}))
        .collect();
    let binding = json!({
        "ws": {
            "method": "GET",
            "query": {
                "type": "object",
                "properties": {"access_token": {"type": "string", "description": "The token, for browsers that cannot set headers on a WebSocket."}},
            },
            "headers": {
                "type": "object",
                "properties": {"Authorization": {"type": "string", "description": "`Bearer <jwt>`."}},
            },
            "bindingVersion": "0.1.0",
        }
    });
    let mut extras = Map::new();
    extras.insert("bindings".into(), binding);
    extras.insert("x-close-codes".into(), close_codes.into());
    extras
}

/// The document as served: generated once, when the route is built.
pub fn body() -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(&document()).unwrap_or_default())
}

/// Answers `GET /asyncapi.json` with the document generated at start.
pub fn response(body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests {
    use chat_nats::events::{EventBody, LiveSignal};

    use super::*;

    /// Set to write the generated document over the checked-in one instead of comparing.
    const REGENERATE: &str = "CHAT_REGENERATE_ASYNCAPI";

    /// `docs/asyncapi-ws.json` is the generated document, so that the SDK's test
    /// (`clients/typescript/test/protocol.test.ts`) checks its frame types against it
    /// without a running edge.
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = document();
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi-ws.json");
        if std::env::var_os(REGENERATE).is_some() {
            let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
            std::fs::write(&path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        // Compared as JSON values: whether serde_json keeps insertion order depends on
        // the features of the crates built beside this one.
        let checked_in: Value = serde_json::from_str(&on_disk).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} differs from the document the edge generates; regenerate it with\n  \
             {REGENERATE}=1 cargo nextest run -p ws-edge --lib the_checked_in_document\nand commit the result",
            path.display()
        );
    }

    #[test]
    fn both_sides_agree_on_shared_types_and_every_message_has_a_payload() {
        let (document, conflicts) = document_with_conflicts();
        assert!(conflicts.is_empty(), "types read one way and written another: {conflicts:?}");
        for (id, message) in document["components"]["messages"].as_object().into_iter().flatten() {
            assert!(message["payload"].is_object(), "message {id} has no payload schema");
        }
    }

    /// The wire names serde gives the frames (read from their schema, which follows
    /// serde's attributes) are the names strum gives them, and the forwarded events'
    /// are the bus enums' own.
    #[test]
    fn serde_and_strum_agree_on_every_frames_name() {
        let mut doc = Builder::new("t", "1", "d");
        let from_serde = doc.variant_names::<ServerFrame>(Side::Written, TAG);
        let from_strum: Vec<&str> = ServerFrame::VARIANTS
            .iter()
            .flat_map(|&name| match name {
                "event" => EventBody::VARIANTS.to_vec(),
                "live" => LiveSignal::VARIANTS.to_vec(),
                other => vec![other],
            })
            .collect();
        assert_eq!(from_serde, from_strum);
        for must in ["hello", "ack", "pong", "error", "sync.result", "token.expiring", "reconnect", "presence"] {
            assert!(from_serde.iter().any(|name| name == must), "{must} is missing");
        }
        let commands = doc.variant_names::<ClientCommand>(Side::Accepted, TAG);
        assert_eq!(commands, ClientCommand::VARIANTS);
    }

    #[test]
    fn the_document_lists_every_command_frame_and_close_code() {
        let document = document();
        let messages = &document["components"]["messages"];
        for name in ClientCommand::VARIANTS {
            assert!(messages[format!("client.{name}")].is_object(), "{name}");
        }
        for name in EventBody::VARIANTS.iter().chain(LiveSignal::VARIANTS) {
            let payload = &messages[format!("server.{name}")]["payload"];
            assert!(payload.is_object(), "{name}");
        }
        let codes: Vec<u64> = document["channels"][CHANNEL]["x-close-codes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["code"].as_u64())
            .collect();
        assert_eq!(codes.len(), CloseCode::VARIANTS.len());
    }
}

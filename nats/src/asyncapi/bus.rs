//! The AsyncAPI document of the NATS subjects: commands (`chat.cmd.*`), events
//! (`chat.evt.*`), user deliveries (`user.<id>.*`), live signals, presence, push and
//! the `chat.rpc.*` request/reply service. Checked into `docs/asyncapi-nats.json`; a
//! test holds the copy equal to [`document`].
//!
//! Addresses are spelled by the [`subjects`] builders with the parameter names in
//! braces, and the lists of commands, events and deliveries are the enums' own
//! variant lists, so a new variant appears here without anyone writing it down.

use serde_json::{Value, json};
use strum::{VariantArray, VariantNames};

use super::{Action, Builder, MessageSpec, ReplySpec, Side};
use crate::{
    commands::{Command, CommandEnvelope, CommandOutcome},
    events::{ChatEvent, EventKind, LiveSignal, LiveSignalKind, PushRequest, UserDeliveryKind, UserEvent},
    presence::{ConnReport, Presence},
    rpc::{
        self, MembershipsReply, MembershipsRequest, PresenceReply, PresenceRequest, RpcError, SyncRequest, SyncResult,
    },
    streams, subjects,
};

const CHAT_ID: (&str, &str) = ("chat_id", "The chat's id (`[A-Za-z0-9_-]`, 1 to 64 characters).");
const USER_ID: (&str, &str) = ("user_id", "The user's id (`[A-Za-z0-9_-]`, 1 to 64 characters).");
const EDGE_ID: (&str, &str) = ("edge_id", "The id the edge drew at its start.");
const CONN_ID: (&str, &str) = ("conn_id", "The connection's id, as its `hello` told the client.");

/// The tag of every tagged payload.
const TAG: &str = "type";

/// The reply channels: a command's outcome and an rpc answer.
const OUTCOME_CHANNEL: &str = "command.outcome";
const RPC_REPLY_CHANNEL: &str = "rpc.reply";

/// The document, and the names of types whose written and accepted schemas differ
/// (a test insists there is none).
pub fn document_with_conflicts() -> (Value, Vec<String>) {
    let mut doc = Builder::new(
        "edu-chat bus",
        env!("CARGO_PKG_VERSION"),
        "The NATS subjects between the edges, the api, the persister, the notifier and the presence \
         worker. Generated from the Rust types of the `chat-nats` crate (`nats/src/asyncapi/bus.rs`); \
         docs/bus.md explains ordering, idempotency and the streams. Every payload is JSON with `v: 1` \
         where it has a version.",
    );
    doc.server(
        "nats",
        json!({"host": "localhost:4222", "protocol": "nats", "description": "The NATS cluster with JetStream (`CHAT_NATS_URL`)."}),
    );
    commands(&mut doc);
    events(&mut doc);
    user_deliveries(&mut doc);
    live_signals(&mut doc);
    presence(&mut doc);
    push(&mut doc);
    rpc_service(&mut doc);
    doc.finish()
}

/// The document, as checked into `docs/asyncapi-nats.json`.
pub fn document() -> Value {
    document_with_conflicts().0
}

/// The address of a channel with `{name}` placeholders for its parameters.
fn param(name: (&str, &str)) -> String {
    format!("{{{}}}", name.0)
}

fn ops(doc: &mut Builder, channel: &str, messages: &[&str], sender: &str, receiver: &str, reply: Option<ReplySpec>) {
    doc.operation(&format!("{channel}.send"), Action::Send, channel, sender, messages, reply);
    doc.operation(&format!("{channel}.receive"), Action::Receive, channel, receiver, messages, None);
}

fn commands(doc: &mut Builder) {
    let outcome = "command.outcome";
    let payload = doc.schema::<CommandOutcome>(Side::Written);
    doc.message(MessageSpec {
        id: outcome.into(),
        name: "command outcome".into(),
        summary: "What the persister did with a command (`status`: `done` or `rejected` with the public error \
                  code), on the command's `reply` subject."
            .into(),
        payload,
    });
    doc.channel(
        OUTCOME_CHANNEL,
        None,
        &format!(
            "The `reply` subject a command names: `{}` for a WebSocket connection's command, the api's inbox \
             (`{}.…`) for the api's.",
            subjects::edge_outcome(&param(EDGE_ID), &param(USER_ID), &param(CONN_ID)),
            subjects::inbox_prefix("api"),
        ),
        &[],
        &[outcome],
    );
    for &name in Command::VARIANTS {
        let id = format!("command.{name}");
        let payload = doc.variant_in::<CommandEnvelope, Command>(Side::Written, "command", TAG, name);
        doc.message(MessageSpec {
            id: id.clone(),
            name: name.into(),
            summary: format!("The `{name}` command in its envelope (actor, `ref`, `reply`, `issued_at`)."),
            payload: payload.unwrap_or(Value::Null),
        });
        for (channel, address, who) in [
            (format!("chat.cmd.{name}"), subjects::command(&param(CHAT_ID), name), "A WebSocket edge"),
            (format!("chat.cmd.api.{name}"), subjects::api_command(&param(CHAT_ID), name), "The api"),
        ] {
            doc.channel(
                &channel,
                Some(&address),
                &format!(
                    "`{name}` commands for the persister, stored in the `{}` work queue (partitioned by chat). \
                     {who} publishes here; only the api's NATS user may publish under `.{}.`.",
                    streams::CMD_STREAM,
                    subjects::API_MARK,
                ),
                &[CHAT_ID],
                &[&id],
            );
            let reply = ReplySpec {
                channel: OUTCOME_CHANNEL.into(),
                location: Some("$message.payload#/reply".into()),
                messages: vec![outcome.into()],
            };
            ops(
                doc,
                &channel,
                &[&id],
                &format!("{who} publishes a `{name}` command."),
                "The persister pulls it.",
                Some(reply),
            );
        }
    }
}

fn events(doc: &mut Builder) {
    for &kind in EventKind::VARIANTS {
        let name = kind.name();
        let id = format!("event.{name}");
        let payload = doc.variant::<ChatEvent>(Side::Written, TAG, name);
        doc.message(MessageSpec {
            id: id.clone(),
            name: name.into(),
            summary: format!("A persisted `{name}` event; clients receive these bytes unchanged over WebSocket."),
            payload: payload.unwrap_or(Value::Null),
        });
        let channel = format!("chat.evt.{name}");
        doc.channel(
            &channel,
            Some(&subjects::event(&param(CHAT_ID), kind)),
            &format!(
                "`{name}` events in the `{}` stream, in the chat's seq order; `Nats-Msg-Id` is the event id.",
                streams::EVT_STREAM
            ),
            &[CHAT_ID],
            &[&id],
        );
        ops(doc, &channel, &[&id], "The persister publishes it.", "Edges and the notifier read it.", None);
    }
}

fn user_deliveries(doc: &mut Builder) {
    for &kind in UserDeliveryKind::VARIANTS {
        let name = kind.name();
        let payload = match kind {
            UserDeliveryKind::ChatJoined | UserDeliveryKind::ChatLeft => {
                doc.variant::<UserEvent>(Side::Written, TAG, name)
            }
            UserDeliveryKind::MsgCreated => doc.variant::<ChatEvent>(Side::Written, TAG, name),
        };
        let id = format!("user.{name}");
        doc.message(MessageSpec {
            id: id.clone(),
            name: name.into(),
            summary: format!("A `{name}` delivery for every connection of one user."),
            payload: payload.unwrap_or(Value::Null),
        });
        let channel = format!("user.{name}");
        doc.channel(
            &channel,
            Some(&subjects::user(&param(USER_ID), kind)),
            &format!(
                "`{name}` deliveries to one user's connections (core NATS; every edge subscribes to `{}`).",
                subjects::USER_ALL
            ),
            &[USER_ID],
            &[&id],
        );
        let sender = match kind {
            UserDeliveryKind::ChatJoined | UserDeliveryKind::ChatLeft => "The notifier publishes it.",
            UserDeliveryKind::MsgCreated => {
                "The persister publishes it: a resent `client_msg_id` is answered to its sender."
            }
        };
        ops(doc, &channel, &[&id], sender, "Edges hand it to the user's local connections.", None);
    }
}

fn live_signals(doc: &mut Builder) {
    for &kind in LiveSignalKind::VARIANTS {
        let name = kind.name();
        let id = format!("live.{name}");
        let payload = doc.variant::<LiveSignal>(Side::Written, TAG, name);
        doc.message(MessageSpec {
            id: id.clone(),
            name: name.into(),
            summary: format!("A live `{name}` signal, shaped as the client frame."),
            payload: payload.unwrap_or(Value::Null),
        });
        let channel = format!("chat.live.{name}");
        doc.channel(
            &channel,
            Some(&subjects::live(&param(CHAT_ID), kind)),
            &format!("Live-only `{name}` signals of one chat (core NATS, not stored)."),
            &[CHAT_ID],
            &[&id],
        );
        ops(
            doc,
            &channel,
            &[&id],
            "The persister (read marks) or the presence worker (typing, throttled) publishes it.",
            match kind {
                LiveSignalKind::Read => {
                    "Edges forward it to the chat's local members; the notifier forgets the \
                                         reader's unread count behind push badges."
                }
                LiveSignalKind::Typing => "Edges forward it to the chat's local members.",
            },
            None,
        );
    }
    let id = "signal.typing";
    let payload = doc.variant::<LiveSignal>(Side::Written, TAG, "typing");
    doc.message(MessageSpec {
        id: id.into(),
        name: "typing".into(),
        summary: "A member's typing, from their edge to the presence worker.".into(),
        payload: payload.unwrap_or(Value::Null),
    });
    let channel = "chat.signal.typing";
    doc.channel(
        channel,
        Some(&subjects::signal_typing(&param(CHAT_ID))),
        "Typing signals from the edges, which the presence worker throttles per user and forwards to `chat.live`.",
        &[CHAT_ID],
        &[id],
    );
    ops(doc, channel, &[id], "An edge publishes it.", "The presence worker reads it.", None);
}

fn presence(doc: &mut Builder) {
    let report = doc.schema::<ConnReport>(Side::Written);
    let changed = doc.schema::<Presence>(Side::Written);
    for (channel, address, payload, summary, sender, receiver) in [
        (
            "presence.conn",
            subjects::presence_conn(&param(USER_ID)),
            report,
            "An edge's report on one connection: connected, disconnected, or alive (every heartbeat).",
            "Edges publish it.",
            "The presence worker reads it.",
        ),
        (
            "presence.changed",
            subjects::presence_changed(&param(USER_ID)),
            changed,
            "A user went online or offline.",
            "The presence worker publishes it.",
            "Edges forward it to the connections watching the user.",
        ),
    ] {
        doc.message(MessageSpec { id: channel.into(), name: channel.into(), summary: summary.into(), payload });
        doc.channel(channel, Some(&address), summary, &[USER_ID], &[channel]);
        ops(doc, channel, &[channel], sender, receiver, None);
    }
}

fn push(doc: &mut Builder) {
    let payload = doc.schema::<PushRequest>(Side::Written);
    let id = "push";
    doc.message(MessageSpec {
        id: id.into(),
        name: id.into(),
        summary: "A push notification request for an offline member.".into(),
        payload,
    });
    doc.channel(
        id,
        Some(&subjects::push(&param(USER_ID))),
        &format!("Push requests in the `{}` stream, for the platform's push gateway.", streams::PUSH_STREAM),
        &[USER_ID],
        &[id],
    );
    ops(doc, id, &[id], "The notifier publishes it.", "The platform's push gateway consumes it.", None);
}

fn rpc_service(doc: &mut Builder) {
    let error = "rpc.error";
    let payload = doc.schema::<RpcError>(Side::Written);
    doc.message(MessageSpec {
        id: error.into(),
        name: error.into(),
        summary: "A failed request's answer.".into(),
        payload,
    });
    let endpoints = [
        (
            rpc::MEMBERSHIPS,
            doc.schema::<MembershipsRequest>(Side::Written),
            doc.schema::<MembershipsReply>(Side::Written),
            "One page of a user's chats.",
        ),
        (
            rpc::SYNC,
            doc.schema::<SyncRequest>(Side::Written),
            doc.schema::<SyncResult>(Side::Written),
            "What changed in a user's chats since the given seqs.",
        ),
        (
            rpc::PRESENCE,
            doc.schema::<PresenceRequest>(Side::Written),
            doc.schema::<PresenceReply>(Side::Written),
            "Presence of several users, as the viewer may see it.",
        ),
    ];
    let mut replies = vec![error.to_owned()];
    for (method, _, reply, summary) in &endpoints {
        let id = format!("rpc.{method}.reply");
        doc.message(MessageSpec {
            id: id.clone(),
            name: id.clone(),
            summary: format!("The answer: {}", summary.to_lowercase()),
            payload: reply.clone(),
        });
        replies.push(id);
    }
    let reply_ids: Vec<&str> = replies.iter().map(String::as_str).collect();
    doc.channel(
        RPC_REPLY_CHANNEL,
        None,
        "The requester's inbox (`_INBOX.<component>.…`), named by the request's NATS reply subject.",
        &[],
        &reply_ids,
    );
    for (method, request, _, summary) in endpoints {
        let id = format!("rpc.{method}.request");
        doc.message(MessageSpec { id: id.clone(), name: id.clone(), summary: summary.into(), payload: request });
        let channel = format!("chat.rpc.{method}");
        doc.channel(
            &channel,
            Some(&subjects::rpc(method)),
            &format!("`{method}` requests to the api's `{}` service (NATS micro, queue group).", rpc::SERVICE_NAME),
            &[],
            &[&id],
        );
        let reply = ReplySpec {
            channel: RPC_REPLY_CHANNEL.into(),
            location: None,
            messages: vec![format!("rpc.{method}.reply"), error.into()],
        };
        doc.operation(&format!("{channel}.send"), Action::Send, &channel, "Edges ask.", &[&id], Some(reply));
        doc.operation(&format!("{channel}.receive"), Action::Receive, &channel, "The api answers.", &[&id], None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBody;

    #[test]
    fn every_message_has_a_payload_and_both_sides_agree_on_shared_types() {
        let (document, conflicts) = document_with_conflicts();
        assert!(conflicts.is_empty(), "types read one way and written another: {conflicts:?}");
        let messages = document["components"]["messages"].as_object().map(|m| m.len()).unwrap_or_default();
        assert!(messages > 20, "{messages} messages");
        for (id, message) in document["components"]["messages"].as_object().into_iter().flatten() {
            assert!(message["payload"].is_object(), "message {id} has no payload schema (a variant not found?)");
        }
    }

    #[test]
    fn each_event_message_pins_its_own_type() {
        let document = document();
        for &name in EventBody::VARIANTS {
            let payload = &document["components"]["messages"][format!("event.{name}")]["payload"];
            let variant = &payload["oneOf"][0];
            assert_eq!(super::super::tag_of(variant, TAG), Some(name), "{payload}");
        }
    }
}

//! What handling a batch produces: events for `CHAT_EVT`, answers for the issuers, and
//! copies for single users. They are published after the MongoDB writes, events first,
//! so nobody hears of a change that is not stored.

use async_nats::HeaderMap;
use bytes::Bytes;
use chat_nats::{
    commands::{CommandEnvelope, CommandOutcome, Rejection},
    events::{ChatEvent, UserDeliveryKind},
    headers,
    model::HistoryVisibility,
    publish::Outgoing,
    subjects,
};

/// Everything a batch publishes.
#[derive(Debug, Default)]
pub struct Effects {
    /// Persisted events, with the trace context of the command that caused them and,
    /// for an edit or deletion in a `since_join` chat, the seq of its message
    /// ([`headers::MESSAGE_SEQ`]).
    pub events: Vec<(ChatEvent, Option<String>, Option<u64>)>,
    /// Core NATS messages: outcomes to `reply` subjects, live signals, copies to users.
    pub notices: Vec<(String, Bytes)>,
}

impl Effects {
    /// Records a stored (or found) event.
    pub fn event(&mut self, event: ChatEvent, traceparent: Option<&str>) {
        self.events.push((event, traceparent.map(str::to_owned), None));
    }

    /// Records the event of an edit or deletion of the message at `message_seq`; in a
    /// `since_join` chat it carries that seq, so that edges withhold it from members
    /// who joined later.
    pub fn message_event(
        &mut self,
        event: ChatEvent,
        message_seq: u64,
        visibility: HistoryVisibility,
        traceparent: Option<&str>,
    ) {
        let message_seq = (visibility == HistoryVisibility::SinceJoin).then_some(message_seq);
        self.events.push((event, traceparent.map(str::to_owned), message_seq));
    }

    /// Answers the issuer with the outcome on the command's `reply` subject: the api's
    /// inbox, or the sending connection's subject on its edge, which turns a rejection
    /// into an `error` for that socket.
    pub fn answer(&mut self, envelope: &CommandEnvelope, outcome: CommandOutcome) {
        let Some(reply) = &envelope.reply else { return };
        // An edge turns rejections into `error` frames and needs nothing for a command
        // that was done (its client had the `ack`, the event follows): not publishing
        // those spares every send a message through NATS and a parse at the edge.
        if matches!(outcome, CommandOutcome::Done { .. } | CommandOutcome::Reported { .. })
            && subjects::outcome_target_of(reply).is_some()
        {
            return;
        }
        if let Ok(body) = serde_json::to_vec(&outcome) {
            self.notices.push((reply.clone(), body.into()));
        }
    }

    /// Rejects a command with a code and reason, and counts it.
    pub fn reject(
        &mut self,
        envelope: &CommandEnvelope,
        code: chat_nats::model::ErrorCode,
        message: impl Into<String>,
    ) {
        self.reject_retryable(envelope, code, message, None);
    }

    /// Rejects a command that may succeed after `retry_after_ms` (slow mode, a mute).
    pub fn reject_retryable(
        &mut self,
        envelope: &CommandEnvelope,
        code: chat_nats::model::ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) {
        crate::metrics::COMMANDS.with_label_values(&[envelope.command.name(), "rejected"]).inc();
        let rejection = Rejection {
            code,
            message: message.into(),
            reference: envelope.reference.clone(),
            client_msg_id: envelope.command.client_msg_id().map(str::to_owned),
            retry_after_ms,
        };
        self.answer(envelope, CommandOutcome::Rejected(rejection));
    }

    /// Sends one user's connections a copy of a `msg.created` event (the sender of a
    /// resent message learns which message its key maps to).
    pub fn copy_to_user(&mut self, user_id: &str, created: &ChatEvent) {
        if let Ok(body) = serde_json::to_vec(created) {
            self.notices.push((subjects::user(user_id, UserDeliveryKind::MsgCreated), body.into()));
        }
    }

    /// The events as JetStream publishes, each deduplicated by its event id.
    pub fn outgoing_events(&self, persisted_at_micros: i64) -> Vec<Outgoing> {
        let stamp = persisted_at_micros.to_string();
        self.events
            .iter()
            .filter_map(|(event, traceparent, message_seq)| {
                let payload = serde_json::to_vec(event).ok()?;
                let mut message =
                    Outgoing::new(subjects::event(&event.chat_id, event.body.kind()), event.id.clone(), payload.into())
                        .with_header(headers::PERSISTED_AT_MICROS, &stamp);
                if let Some(traceparent) = traceparent {
                    message = message.with_header(headers::TRACEPARENT, traceparent);
                }
                if let Some(seq) = message_seq {
                    message = message.with_header(headers::MESSAGE_SEQ, &seq.to_string());
                }
                Some(message)
            })
            .collect()
    }
}

/// The `traceparent` header of a NATS message, if any.
pub fn traceparent(headers: Option<&HeaderMap>) -> Option<String> {
    headers.and_then(|h| h.get(headers::TRACEPARENT)).map(|value| value.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use chat_nats::{
        commands::{Actor, Command, Read},
        model::ErrorCode,
    };

    use super::*;

    fn read_from(reply: &str) -> CommandEnvelope {
        CommandEnvelope {
            v: 1,
            id: "id".into(),
            actor: Actor { user_id: "u1".into(), roles: Vec::new() },
            reference: Some("r1".into()),
            conn_id: Some("k1".into()),
            reply: Some(reply.to_owned()),
            issued_at: chrono::Utc::now(),
            command: Command::Read(Read { chat_id: "c1".into(), up_to_seq: 1 }),
        }
    }

    fn done() -> CommandOutcome {
        CommandOutcome::Done { message: None, chat: None, created: false }
    }

    #[test]
    fn an_edge_hears_only_rejections_and_an_inbox_hears_everything() {
        let edge = read_from(&subjects::edge_outcome("e1", "u1", "k1"));
        let inbox = read_from("_INBOX.abc");
        let mut effects = Effects::default();
        effects.answer(&edge, done());
        assert!(effects.notices.is_empty(), "a done outcome was published to an edge");
        effects.reject(&edge, ErrorCode::Forbidden, "no");
        effects.answer(&inbox, done());
        let subjects: Vec<&str> = effects.notices.iter().map(|(subject, _)| subject.as_str()).collect();
        assert_eq!(subjects, ["edge.e1.outcome.u1.k1", "_INBOX.abc"]);
    }
}

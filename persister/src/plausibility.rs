//! Could this command's publisher have sent it? JetStream does not tell the persister
//! who published a message, but the subject does: NATS permissions are per subject,
//! and only the api's user may publish `chat.cmd.<chat_id>.api.<command>`
//! (`deploy/nats/auth.conf`). So with the bus's authentication on:
//!
//! - the api may act for any user, the platform's `service` included;
//! - anything else allowed on `chat.cmd.>` (the edges) acts for the users whose tokens
//!   it checked, and no token that reaches an edge is the platform's `service`;
//! - a command's subject names the chat and the command of its body (an edge that
//!   put another chat there would slip it into another partition's order);
//! - a reply subject is an inbox (the api's) or an edge's outcome subject for the
//!   command's own actor (`edge.<edge_id>.outcome.<user_id>.<conn_id>`): the persister
//!   publishes the outcome there, and a forged `reply` must not make it publish on a
//!   subject of the bus or into another user's socket.
//!
//! A command that breaks a rule is dropped like a malformed one: logged, counted as
//! `outcome="implausible"`, terminated so that it is not redelivered.

use async_nats::jetstream::{self, AckKind};
use chat_nats::{
    commands::CommandEnvelope,
    roles,
    subjects::{self, CommandPublisher},
};

use crate::metrics;

/// Why a command cannot be what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    /// The subject names another chat or command than the body.
    #[error("the subject does not name the command's chat and type")]
    Subject,
    /// Only the api may act as the platform's `service`.
    #[error("only the api acts as service")]
    ServiceNotFromApi,
    /// The reply subject is neither an inbox nor an outcome subject of the actor.
    #[error("the reply subject is neither an inbox nor the actor's outcome subject")]
    Reply,
}

/// Checks `envelope`, stored on `subject`, against the rules above.
pub fn check(subject: &str, envelope: &CommandEnvelope) -> Result<CommandPublisher, Implausible> {
    let publisher = subjects::command_publisher(subject, envelope.chat_id(), envelope.command.name())
        .ok_or(Implausible::Subject)?;
    if publisher != CommandPublisher::Api && envelope.actor.roles.iter().any(|role| role == roles::SERVICE) {
        return Err(Implausible::ServiceNotFromApi);
    }
    if let Some(reply) = envelope.reply.as_deref() {
        let actors_outcome =
            subjects::outcome_target_of(reply).is_some_and(|(user_id, _)| user_id == envelope.actor.user_id);
        if !subjects::is_inbox(reply) && !actors_outcome {
            return Err(Implausible::Reply);
        }
    }
    Ok(publisher)
}

/// True when the command may go on; otherwise drops it (log, metric, terminal ack).
pub async fn admit(message: &jetstream::Message, envelope: &CommandEnvelope) -> bool {
    let Err(reason) = check(&message.subject, envelope) else { return true };
    tracing::error!(
        subject = %message.subject,
        user_id = %envelope.actor.user_id,
        command = envelope.command.name(),
        %reason,
        "implausible command dropped"
    );
    metrics::COMMANDS.with_label_values(&[envelope.command.name(), "implausible"]).inc();
    if let Err(error) = message.ack_with(AckKind::Term).await {
        tracing::warn!(%error, "terminating an implausible command failed; it will come again and be dropped again");
    }
    false
}

#[cfg(test)]
mod tests {
    use chat_nats::commands::{Actor, Command, Read};

    use super::*;

    fn envelope(roles: &[&str], reply: Option<&str>) -> CommandEnvelope {
        CommandEnvelope {
            v: 1,
            id: "id".into(),
            actor: Actor { user_id: "u1".into(), roles: roles.iter().map(|r| (*r).to_owned()).collect() },
            reference: None,
            conn_id: None,
            reply: reply.map(str::to_owned),
            issued_at: chrono::Utc::now(),
            command: Command::Read(Read { chat_id: "c1".into(), up_to_seq: 1 }),
        }
    }

    #[test]
    fn only_the_api_acts_as_service() {
        let service = envelope(&["service"], None);
        assert_eq!(check("chat.cmd.3.c1.api.read", &service), Ok(CommandPublisher::Api));
        assert_eq!(check("chat.cmd.3.c1.read", &service), Err(Implausible::ServiceNotFromApi));
        for roles in [&[][..], &["student"], &["teacher"], &["admin"]] {
            assert_eq!(check("chat.cmd.3.c1.read", &envelope(roles, None)), Ok(CommandPublisher::Edge), "{roles:?}");
            assert_eq!(check("chat.cmd.3.c1.api.read", &envelope(roles, None)), Ok(CommandPublisher::Api));
        }
    }

    #[test]
    fn the_subject_names_the_bodys_chat_and_command() {
        let plain = envelope(&[], None);
        assert_eq!(check("chat.cmd.3.c2.read", &plain), Err(Implausible::Subject));
        assert_eq!(check("chat.cmd.3.c1.msg.send", &plain), Err(Implausible::Subject));
    }

    #[test]
    fn outcomes_go_to_inboxes_and_the_actors_own_sockets_only() {
        assert!(check("chat.cmd.3.c1.api.read", &envelope(&[], Some("_INBOX.api.x"))).is_ok());
        assert!(check("chat.cmd.3.c1.read", &envelope(&[], Some("edge.e1.outcome.u1.conn1"))).is_ok());
        for reply in [
            "chat.evt.c1.msg.created",
            "user.u2.chat.joined",
            "push.u2",
            "edge.e1.outcome.u2.conn1",
            "edge.e1.outcome.u1",
        ] {
            assert_eq!(check("chat.cmd.3.c1.read", &envelope(&[], Some(reply))), Err(Implausible::Reply), "{reply}");
        }
    }
}

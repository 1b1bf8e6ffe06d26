//! `chat.moderate` and `member.mute`: checked for shape and membership here (a
//! platform admin may moderate chats they are not in), authorised by the persister,
//! which answers a refusal as an `error` with the same `ref`; the change reaches every
//! member as `chat.moderated` or `member.muted`.

use chat_nats::{
    commands::{ChatModerate, Command, MemberMute},
    limits,
    model::ErrorCode,
    roles,
};

use super::{check_ids, reply_error, submit::submit};
use crate::{outbox::ConnHandle, session::Session, state::EdgeState};

/// Publishes a moderation command.
pub async fn handle(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    reference: Option<String>,
    command: Command,
) -> &'static str {
    let refer = reference.as_deref();
    let problem = match &command {
        Command::ChatModerate(ChatModerate { chat_id, posting, slow_mode_seconds, frozen }) => {
            check_ids(&[(chat_id, "chat_id")])
                .and_then(|()| limits::check_moderation(*posting, *slow_mode_seconds, *frozen))
                .err()
        }
        Command::MemberMute(MemberMute { chat_id, user_id, until }) => {
            check_ids(&[(chat_id, "chat_id"), (user_id, "user_id")])
                .and_then(|()| limits::check_mute_until(*until, chrono::Utc::now()).map_err(str::to_owned))
                .err()
        }
        _ => return "invalid",
    };
    if let Some(reason) = problem {
        reply_error(conn, refer, ErrorCode::Invalid, &reason, None);
        return "invalid";
    }
    let platform_admin = session.roles.iter().any(|role| role == roles::PLATFORM_ADMIN);
    if !platform_admin && !edge.is_member(session, command.chat_id()).await {
        reply_error(conn, refer, ErrorCode::NotFound, "no such chat", None);
        return "rejected";
    }
    submit(edge, session, conn, reference, command).await
}

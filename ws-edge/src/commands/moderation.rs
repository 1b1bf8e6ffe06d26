//! `chat.moderate` and `member.mute`: checked for shape and membership here (a
//! platform admin may moderate chats they are not in), authorised by the persister,
//! which answers a refusal as an `error` with the same `ref`; the change reaches every
//! member as `chat.moderated` or `member.muted`.

use chat_nats::{
    commands::{ChatModerate, Command, MAX_SLOW_MODE_SECONDS, MemberMute},
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
            check_ids(&[(chat_id, "chat_id")]).err().or_else(|| {
                if posting.is_none() && slow_mode_seconds.is_none() && frozen.is_none() {
                    Some("give posting, slow_mode_seconds or frozen".to_owned())
                } else if slow_mode_seconds.is_some_and(|seconds| seconds > MAX_SLOW_MODE_SECONDS) {
                    Some(format!("slow_mode_seconds is at most {MAX_SLOW_MODE_SECONDS}"))
                } else {
                    None
                }
            })
        }
        Command::MemberMute(MemberMute { chat_id, user_id, until }) => {
            check_ids(&[(chat_id, "chat_id"), (user_id, "user_id")]).err().or_else(|| {
                until
                    .is_some_and(|until| until <= chrono::Utc::now())
                    .then(|| "until is in the past: send null to unmute".to_owned())
            })
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

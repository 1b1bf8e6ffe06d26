//! `msg.edit`, `msg.delete`, `msg.report` and `read`: checked for shape and membership
//! here, authorised for ownership and roles by the persister, which answers a refusal as
//! an `error` with the same `ref`.

use chat_nats::{
    commands::{Command, MsgDelete, MsgEdit, MsgReport, Read},
    model::ErrorCode,
    roles,
};

use super::{check_ids, reply_error, submit::submit};
use crate::{outbox::ConnHandle, session::Session, state::EdgeState};

/// Publishes an edit, delete, report or read mark.
pub async fn handle(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    reference: Option<String>,
    command: Command,
) -> &'static str {
    let refer = reference.as_deref();
    let (chat_id, message_id) = match &command {
        Command::MsgEdit(MsgEdit { chat_id, message_id, .. })
        | Command::MsgDelete(MsgDelete { chat_id, message_id })
        | Command::MsgReport(MsgReport { chat_id, message_id, .. }) => (chat_id.as_str(), Some(message_id.as_str())),
        Command::Read(Read { chat_id, .. }) => (chat_id.as_str(), None),
        _ => return "invalid",
    };
    let mut ids = vec![(chat_id, "chat_id")];
    ids.extend(message_id.map(|id| (id, "message_id")));
    if let Err(reason) = check_ids(&ids) {
        reply_error(conn, refer, ErrorCode::Invalid, &reason, None);
        return "invalid";
    }
    if let Command::MsgEdit(MsgEdit { text, .. }) = &command
        && let Err((code, reason)) = super::check_text(text)
    {
        reply_error(conn, refer, code, &reason, None);
        return "invalid";
    }
    if let Command::MsgReport(MsgReport { note: Some(note), .. }) = &command
        && let Err(reason) = chat_nats::moderation::check_note(note)
    {
        reply_error(conn, refer, ErrorCode::Invalid, &reason, None);
        return "invalid";
    }
    // A platform admin may delete in chats they do not belong to; the persister decides.
    let admin_delete =
        matches!(command, Command::MsgDelete(_)) && session.roles.iter().any(|r| r == roles::PLATFORM_ADMIN);
    if !admin_delete && !edge.is_member(session, chat_id).await {
        reply_error(conn, refer, ErrorCode::NotFound, "no such chat", None);
        return "rejected";
    }
    submit(edge, session, conn, reference, command).await
}

//! One file per client command.

mod msg_send;

use crate::{
    EdgeState,
    connection::{Outbound, Session},
    hub::ConnHandle,
    protocol::{ClientCommand, ServerFrame},
};

/// Runs a command; returns the outcome label for `chat_ws_commands_total`.
pub async fn dispatch(edge: &EdgeState, session: &Session, conn: &ConnHandle, command: ClientCommand) -> &'static str {
    match command {
        ClientCommand::Ping { reference } => {
            conn.offer(Outbound::Frame(ServerFrame::Pong { reference: reference.as_deref() }.to_text().into()));
            "accepted"
        }
        ClientCommand::MsgSend { reference, chat_id, client_msg_id, text, reply_to } => {
            msg_send::handle(edge, session, conn, msg_send::Send { reference, chat_id, client_msg_id, text, reply_to })
                .await
        }
    }
}

/// Queues an `error` frame.
pub fn reply_error(
    conn: &ConnHandle,
    reference: Option<&str>,
    code: chat_nats::model::ErrorCode,
    message: &str,
    client_msg_id: Option<&str>,
) {
    let frame = ServerFrame::Error { reference, code, message, client_msg_id, retry_after_ms: None };
    conn.offer(Outbound::Frame(frame.to_text().into()));
}

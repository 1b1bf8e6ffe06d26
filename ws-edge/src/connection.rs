//! One WebSocket connection (the seed's ConnectionHandler), served by one task that
//! waits on three things: a frame from the client, a backlog in its [`Outbox`], and its
//! timers (idle, token expiry and the warning before it).
//!
//! Deliveries do not pass through this task: whoever delivers writes to the socket
//! directly ([`Outbox`]). The task writes only what a full socket did not take, and
//! every such write has a deadline: a client that stops reading is dropped once its
//! socket has taken nothing for the write timeout, and the close handshake has a
//! deadline of its own. The connection stays registered (and counts against its
//! user's connection limit) until its socket is really closed. A panic while serving
//! it closes only it, with 1011, and unregisters it like any disconnect.

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use chat_nats::{model::ErrorCode, presence::ConnEvent};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, Role, WebSocketConfig},
    },
};

use crate::{
    client_stream::ClientStream,
    close::CloseCode,
    commands, metrics,
    outbox::{Backlog, ConnHandle, Outbound, Outbox},
    protocol::{self, ServerFrame},
    rate::TokenBucket,
    session::Session,
    state::EdgeState,
};

/// The socket as the connection reads it.
type Socket = WebSocketStream<ClientStream>;

/// Commands refused for rate in a row after which the client counts as abusive and is
/// closed with 4008: a client that honours `retry_after_ms` never gets near it.
pub const ABUSE_THRESHOLD: u32 = 50;

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Send a close frame with this code.
    Close(CloseCode),
    /// The peer closed or the socket broke: write what is still queued (the reply to a
    /// peer's close) and drop it.
    Gone,
    /// A write did not finish in time: drop the socket without another write.
    Stuck,
}

/// What handling one client frame leads to.
enum Step {
    Continue,
    End(Ending),
    /// A refreshed token moved the expiry (its roles are in the session already).
    Refreshed(Instant),
}

/// Serves one upgraded socket until it closes; `read_ahead` is what the client sent
/// after its upgrade request, read already.
pub async fn serve(
    tcp: TcpStream,
    read_ahead: Bytes,
    edge: Arc<EdgeState>,
    mut session: Session,
    chats: Vec<(String, u64)>,
) {
    let tcp = Arc::new(tcp);
    let conn = ConnHandle {
        conn_id: session.conn_id.clone(),
        outbox: Arc::new(Outbox::new(edge.queue_limits(), tcp.clone())),
    };
    let max = edge.config.max_frame_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(edge.config.read_buffer_bytes.max(64))
        .write_buffer_size(0)
        .max_frame_size(Some(max))
        .max_message_size(Some(max));
    let stream = ClientStream::new(tcp, conn.outbox.clone());
    // `read_ahead` is a slice of hyper's read buffer, which it keeps alive: copied out
    // and dropped, so that an idle connection does not hold a buffer of HTTP's.
    let part = read_ahead.to_vec();
    drop(read_ahead);
    let mut socket = Box::pin(WebSocketStream::from_partially_read(stream, part, Role::Server, Some(config))).await;
    let close_timeout = Duration::from_millis(edge.config.close_timeout_ms);
    // The rarely taken steps are boxed, so that the task of an idle connection carries
    // only the state of its main loop.
    // Registered, the connection gets deliveries at once; the outbox holds them until
    // `hello` is in front of them.
    // Counted across edges first (this edge's own count is the limit too, and the only
    // one while Redis is down); a refused connection is uncounted again.
    let counted = Box::pin(edge.user_connections.admit(&session.user_id, &session.conn_id)).await;
    if !counted || Box::pin(edge.hub.register(&session.user_id, conn.clone(), chats)).await.is_err() {
        Box::pin(edge.user_connections.release(&session.user_id, &session.conn_id)).await;
        conn.outbox.discard_held();
        conn.outbox.close(CloseCode::TooManyConnections);
        Box::pin(finish(&mut socket, &conn.outbox, Ending::Close(CloseCode::TooManyConnections), close_timeout)).await;
        return;
    }
    metrics::CONNECTIONS.inc();
    tracing::debug!(conn_id = %session.conn_id, user_id = %session.user_id, "connected");
    let hello = ServerFrame::Hello {
        conn_id: &session.conn_id,
        user_id: &session.user_id,
        heartbeat_ms: edge.config.heartbeat_ms,
        limits: edge.limits(),
    };
    conn.outbox.release(Outbound::Frame(hello.to_text().into()));
    Box::pin(edge.report_connection(&session.user_id, &session.conn_id, ConnEvent::Connected)).await;

    let mut connection = Connection {
        socket,
        edge: &edge,
        session: &mut session,
        conn: &conn,
        bucket: TokenBucket::new(edge.config.commands_per_s, edge.config.commands_burst),
        throttles: commands::throttles::ConnThrottles::new(&edge.config),
        refused_in_a_row: 0,
    };
    let ending = match AssertUnwindSafe(connection.run()).catch_unwind().await {
        Ok(ending) => ending,
        Err(panic) => {
            let message = chat_core::telemetry::panic_message(panic.as_ref());
            let session = &connection.session;
            tracing::error!(conn_id = %session.conn_id, user_id = %session.user_id, panic = message, "connection panicked; closing it with 1011");
            Ending::Close(CloseCode::Internal)
        }
    };
    // Nothing more is queued for a connection that is ending (the code is not sent).
    conn.outbox.close(CloseCode::GoingAway);
    Box::pin(finish(&mut connection.socket, &conn.outbox, ending, close_timeout)).await;
    drop(connection);
    edge.hub.unregister(&session.user_id, &session.conn_id);
    Box::pin(edge.user_connections.release(&session.user_id, &session.conn_id)).await;
    Box::pin(edge.report_connection(&session.user_id, &session.conn_id, ConnEvent::Disconnected)).await;
    metrics::CONNECTIONS.dec();
    tracing::debug!(conn_id = %session.conn_id, ?ending, "disconnected");
}

/// Closes the socket the way `ending` says, within `deadline`, and ends its sending
/// even if a delivering task still holds the outbox.
async fn finish(socket: &mut Socket, outbox: &Outbox, ending: Ending, deadline: Duration) {
    let close = async {
        // tungstenite's frame goes into the outbox behind the backlog, whose last
        // bytes are then written; a socket that fails meanwhile just ends sooner.
        let closing = match ending {
            Ending::Close(code) => {
                let frame = CloseFrame { code: code.code().into(), reason: code.reason().into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                true
            }
            Ending::Gone => {
                let _ = socket.flush().await;
                false
            }
            Ending::Stuck => return,
        };
        while outbox.write_backlog() == Backlog::Blocked {
            if outbox.writable().await.is_err() {
                return;
            }
        }
        // A socket closed with unread bytes is reset, and the reset can reach the
        // client before it read our close frame (it sees 1006 instead of the code):
        // read and drop what it sent until its close reply, or the deadline.
        if closing {
            while let Some(Ok(message)) = socket.next().await {
                if message.is_close() {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(deadline, close).await;
    outbox.shut_down();
}

/// The state of one connection's task.
struct Connection<'a> {
    socket: Socket,
    edge: &'a EdgeState,
    /// Mutable because `auth.refresh` replaces the token's roles.
    session: &'a mut Session,
    conn: &'a ConnHandle,
    bucket: TokenBucket,
    throttles: commands::throttles::ConnThrottles,
    refused_in_a_row: u32,
}

impl Connection<'_> {
    async fn run(&mut self) -> Ending {
        let idle = Duration::from_millis(self.edge.config.idle_timeout_ms);
        let mut expires_at = self.session.expires_at;
        let idle_deadline = tokio::time::sleep(idle);
        let expiry = tokio::time::sleep_until(expires_at.into());
        let warning = tokio::time::sleep_until(warn_at(expires_at).into());
        tokio::pin!(idle_deadline, expiry, warning);
        let mut warned = false;
        loop {
            tokio::select! {
                // A backlog first: reads get their turn once the socket took it.
                biased;
                _ = self.conn.outbox.ready() => {
                    if let Some(ending) = self.write_backlog().await {
                        return ending;
                    }
                }
                next = self.socket.next() => {
                    idle_deadline.as_mut().reset((Instant::now() + idle).into());
                    match self.on_frame(next).await {
                        Step::Continue => {}
                        Step::End(ending) => return ending,
                        Step::Refreshed(renewed) => {
                            expires_at = renewed;
                            expiry.as_mut().reset(expires_at.into());
                            warning.as_mut().reset(warn_at(expires_at).into());
                            warned = false;
                        }
                    }
                }
                _ = &mut idle_deadline => return Ending::Close(CloseCode::Idle),
                _ = &mut expiry => return Ending::Close(CloseCode::TokenExpired),
                _ = &mut warning, if !warned => {
                    warned = true;
                    let left = expires_at.saturating_duration_since(Instant::now()).as_millis();
                    let in_ms = u64::try_from(left).unwrap_or(u64::MAX);
                    self.conn.reply(ServerFrame::TokenExpiring { in_ms }.to_text());
                }
            }
        }
    }

    /// Writes what the socket did not take, as it becomes writable; ends the
    /// connection when asked to, when the socket fails, or when it takes nothing for
    /// the write timeout.
    async fn write_backlog(&mut self) -> Option<Ending> {
        let write_timeout = Duration::from_millis(self.edge.config.write_timeout_ms);
        loop {
            match self.conn.outbox.write_backlog() {
                Backlog::Written => return None,
                Backlog::Closing(code) => return Some(Ending::Close(code)),
                Backlog::Broken => return Some(Ending::Gone),
                Backlog::Blocked => match tokio::time::timeout(write_timeout, self.conn.outbox.writable()).await {
                    Err(_) => {
                        tracing::debug!(conn_id = %self.session.conn_id, "write timed out; dropping the connection");
                        return Some(Ending::Stuck);
                    }
                    Ok(Err(_)) => return Some(Ending::Gone),
                    Ok(Ok(())) => {}
                },
            }
        }
    }

    async fn on_frame(&mut self, next: Option<Result<Message, tungstenite::Error>>) -> Step {
        let message = match next {
            None => return Step::End(Ending::Gone),
            Some(Err(error)) => {
                tracing::debug!(%error, conn_id = %self.session.conn_id, "read failed");
                return Step::End(match is_capacity_error(error) {
                    true => Ending::Close(CloseCode::TooLarge),
                    false => Ending::Gone,
                });
            }
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => {
                let frame = ServerFrame::Error {
                    reference: None,
                    code: ErrorCode::Invalid,
                    message: "binary frames are not accepted; send JSON text",
                    client_msg_id: None,
                    retry_after_ms: None,
                };
                self.conn.reply(frame.to_text());
                Step::Continue
            }
            Message::Close(_) => Step::End(Ending::Gone),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Step::Continue,
        }
    }

    async fn on_text(&mut self, text: &str) -> Step {
        if !self.bucket.take(Instant::now()) {
            metrics::COMMANDS.with_label_values(&["any", "rate_limited"]).inc();
            self.refused_in_a_row += 1;
            if self.refused_in_a_row >= ABUSE_THRESHOLD {
                return Step::End(Ending::Close(CloseCode::Policy));
            }
            let reference = protocol::reference_of(text);
            let frame = ServerFrame::Error {
                reference: reference.as_deref(),
                code: ErrorCode::RateLimited,
                message: "too many commands",
                client_msg_id: None,
                retry_after_ms: Some(self.bucket.retry_after_ms()),
            };
            self.conn.reply(frame.to_text());
            return Step::Continue;
        }
        self.refused_in_a_row = 0;
        let command = match protocol::parse_command(text) {
            Ok(command) => command,
            Err((reference, reason)) => {
                reply_unparsed(self.conn, reference.as_deref(), &reason);
                return Step::Continue;
            }
        };
        if let Some(hook) = &self.edge.command_hook {
            hook(&command);
        }
        if let protocol::ClientCommand::AuthRefresh { reference, token } = &command {
            return match refresh(self.edge, self.session, self.conn, reference.as_deref(), token) {
                Some(renewed) => Step::Refreshed(renewed),
                None => Step::Continue,
            };
        }
        let name = command.name();
        // Boxed, so that an idle connection's task does not carry every command's state.
        let outcome =
            Box::pin(commands::dispatch(self.edge, self.session, self.conn, &mut self.throttles, command)).await;
        metrics::COMMANDS.with_label_values(&[name, outcome]).inc();
        Step::Continue
    }
}

/// When to warn that the token expires: a minute ahead, or halfway for short tokens.
fn warn_at(expires_at: Instant) -> Instant {
    let left = expires_at.saturating_duration_since(Instant::now());
    expires_at - left.min(Duration::from_secs(60)).min(left / 2)
}

/// Checks a refreshed token; it must verify and name the same user. The new token
/// replaces the old one whole: its roles take effect on the next command (a demoted
/// admin loses admin rights on the open socket) and its expiry is returned. The old
/// token stays in force when the new one is refused.
fn refresh(
    edge: &EdgeState,
    session: &mut Session,
    conn: &ConnHandle,
    reference: Option<&str>,
    token: &str,
) -> Option<Instant> {
    let error = |code, message: &str| {
        let frame = ServerFrame::Error { reference, code, message, client_msg_id: None, retry_after_ms: None };
        conn.reply(frame.to_text());
    };
    let claims = match edge.verifier.verify(token) {
        Ok(claims) => claims,
        Err(reason) => {
            metrics::COMMANDS.with_label_values(&["auth.refresh", "rejected"]).inc();
            error(ErrorCode::Unauthorized, &reason.to_string());
            return None;
        }
    };
    if *claims.sub != *session.user_id {
        metrics::COMMANDS.with_label_values(&["auth.refresh", "rejected"]).inc();
        error(ErrorCode::Forbidden, "the new token names another user");
        return None;
    }
    metrics::COMMANDS.with_label_values(&["auth.refresh", "accepted"]).inc();
    let expires_at = crate::session::token_deadline(&claims);
    session.roles = claims.roles;
    conn.reply(ServerFrame::Ack { reference }.to_text());
    Some(expires_at)
}

fn reply_unparsed(conn: &ConnHandle, reference: Option<&str>, reason: &str) {
    metrics::COMMANDS.with_label_values(&["unparsed", "invalid"]).inc();
    let frame = ServerFrame::Error {
        reference,
        code: ErrorCode::Invalid,
        message: reason,
        client_msg_id: None,
        retry_after_ms: None,
    };
    conn.reply(frame.to_text());
}

/// True when the client sent a frame or message over the size limit.
fn is_capacity_error(error: tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Capacity(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, D, E, F: Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open connection's task holds this future, idle or not: 10,000 connections
    /// pay for each byte 10,000 times. It was 4.5 KB (release) while it held the edge's
    /// state by value, which a connection needs only behind a pointer.
    #[test]
    fn a_connection_task_stays_small() {
        let size = future_size(serve as fn(_, _, _, _, _) -> _);
        assert!(size <= 2_560, "the connection's future is {size} bytes");
    }
}

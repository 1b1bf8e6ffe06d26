//! One WebSocket connection (the seed's ConnectionHandler): a writer task draining a
//! bounded queue, and a reader loop that parses commands, enforces limits and the
//! heartbeat, and closes at token expiry.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chat_nats::presence::ConnEvent;
use futures::{SinkExt, StreamExt, stream::SplitSink};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    EdgeState, close, commands,
    hub::ConnHandle,
    metrics,
    protocol::{self, ServerFrame},
    rate::TokenBucket,
};

/// Commands refused for rate in a row after which the client counts as abusive and is
/// closed with 4008: a client that honours `retry_after_ms` never gets near it.
pub const ABUSE_THRESHOLD: u32 = 50;

/// Something to write to a socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A reply of the edge (ack, pong, error).
    Frame(Utf8Bytes),
    /// A bus event, possibly timed for `chat_delivery_seconds`.
    Event {
        /// The JSON text.
        frame: Utf8Bytes,
        /// When the persister stored it.
        persisted_at_micros: Option<i64>,
        /// Typing and presence may be dropped when the queue is full.
        droppable: bool,
    },
}

impl Outbound {
    /// True for frames a slow client may miss.
    pub fn droppable(&self) -> bool {
        matches!(self, Outbound::Event { droppable: true, .. })
    }
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Session {
    /// This connection.
    pub conn_id: Arc<str>,
    /// The authenticated user.
    pub user_id: String,
    /// Platform roles from the token.
    pub roles: Vec<String>,
    /// When the token expires.
    pub expires_at: Instant,
}

/// Serves one upgraded socket until it closes.
pub async fn serve(socket: WebSocket, edge: EdgeState, session: Session, chats: Vec<String>) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(edge.config.queue_frames);
    let close_token = CancellationToken::new();
    let close_code = Arc::new(AtomicU16::new(0));
    let handle = ConnHandle {
        conn_id: session.conn_id.clone(),
        tx: tx.clone(),
        close: close_token.clone(),
        close_code: close_code.clone(),
    };
    let writer = tokio::spawn(write_loop(sink, rx, close_token.clone(), close_code.clone()));

    if edge.hub.register(&session.user_id, handle.clone(), chats).await.is_err() {
        close_code.store(close::TOO_MANY_CONNECTIONS, Ordering::Relaxed);
        close_token.cancel();
        let _ = writer.await;
        return;
    }
    metrics::CONNECTIONS.inc();
    tracing::debug!(conn_id = %session.conn_id, user_id = %session.user_id, "connected");
    let hello = ServerFrame::Hello {
        conn_id: &session.conn_id,
        user_id: &session.user_id,
        heartbeat_ms: edge.config.heartbeat_ms,
        limits: edge.limits(),
    }
    .to_text();
    handle.offer(Outbound::Frame(hello.into()));

    let idle = Duration::from_millis(edge.config.idle_timeout_ms);
    let mut bucket = TokenBucket::new(edge.config.commands_per_s, edge.config.commands_burst);
    let mut typing = commands::typing::TypingThrottle::default();
    edge.report_connection(&session.user_id, &session.conn_id, ConnEvent::Connected).await;
    let mut expires_at = session.expires_at;
    let expiry = tokio::time::sleep_until(expires_at.into());
    let warning = tokio::time::sleep_until(warn_at(expires_at).into());
    tokio::pin!(expiry, warning);
    let mut warned = false;
    let mut refused_in_a_row = 0u32;
    loop {
        let next = tokio::select! {
            _ = close_token.cancelled() => break,
            _ = &mut expiry => {
                close_code.store(close::TOKEN_EXPIRED, Ordering::Relaxed);
                break;
            }
            _ = &mut warning, if !warned => {
                warned = true;
                let in_ms = expires_at.saturating_duration_since(Instant::now()).as_millis();
                let frame = format!(r#"{{"type":"token.expiring","in_ms":{in_ms}}}"#);
                handle.offer(Outbound::Frame(frame.into()));
                continue;
            }
            next = tokio::time::timeout(idle, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                close_code.store(close::IDLE, Ordering::Relaxed);
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                if is_capacity_error(&error) {
                    close_code.store(close::TOO_LARGE, Ordering::Relaxed);
                }
                tracing::debug!(%error, conn_id = %session.conn_id, "read failed");
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                if !bucket.take(Instant::now()) {
                    metrics::COMMANDS.with_label_values(&["any", "rate_limited"]).inc();
                    refused_in_a_row += 1;
                    if refused_in_a_row >= ABUSE_THRESHOLD {
                        close_code.store(close::POLICY, Ordering::Relaxed);
                        break;
                    }
                    let frame = ServerFrame::Error {
                        reference: None,
                        code: chat_nats::model::ErrorCode::RateLimited,
                        message: "too many commands",
                        client_msg_id: None,
                        retry_after_ms: Some(bucket.retry_after_ms()),
                    };
                    handle.offer(Outbound::Frame(frame.to_text().into()));
                    continue;
                }
                refused_in_a_row = 0;
                match protocol::parse_command(text.as_str()) {
                    Ok(protocol::ClientCommand::AuthRefresh { reference, token }) => {
                        if let Some(renewed) = refresh(&edge, &session, &handle, reference.as_deref(), &token) {
                            expires_at = renewed;
                            expiry.as_mut().reset(expires_at.into());
                            warning.as_mut().reset(warn_at(expires_at).into());
                            warned = false;
                        }
                    }
                    Ok(command) => {
                        let name = command.name();
                        let outcome = commands::dispatch(&edge, &session, &handle, &mut typing, command).await;
                        metrics::COMMANDS.with_label_values(&[name, outcome]).inc();
                    }
                    Err((reference, reason)) => reply_unparsed(&handle, reference.as_deref(), &reason),
                }
            }
            Message::Binary(_) => {
                let frame = ServerFrame::Error {
                    reference: None,
                    code: chat_nats::model::ErrorCode::Invalid,
                    message: "binary frames are not accepted; send JSON text",
                    client_msg_id: None,
                    retry_after_ms: None,
                };
                handle.offer(Outbound::Frame(frame.to_text().into()));
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    edge.hub.unregister(&session.user_id, &session.conn_id);
    edge.report_connection(&session.user_id, &session.conn_id, ConnEvent::Disconnected).await;
    metrics::CONNECTIONS.dec();
    close_token.cancel();
    drop(handle);
    drop(tx);
    let _ = writer.await;
    tracing::debug!(conn_id = %session.conn_id, "disconnected");
}

/// When to warn that the token expires: a minute ahead, or halfway for short tokens.
fn warn_at(expires_at: Instant) -> Instant {
    let left = expires_at.saturating_duration_since(Instant::now());
    expires_at - left.min(Duration::from_secs(60)).min(left / 2)
}

/// Checks a refreshed token; it must verify and name the same user. Returns the new
/// expiry; the old token stays in force when the new one is refused.
fn refresh(
    edge: &EdgeState,
    session: &Session,
    handle: &ConnHandle,
    reference: Option<&str>,
    token: &str,
) -> Option<Instant> {
    let error = |code, message: &str| {
        let frame = ServerFrame::Error { reference, code, message, client_msg_id: None, retry_after_ms: None };
        handle.offer(Outbound::Frame(frame.to_text().into()));
    };
    let claims = match edge.verifier.verify(token) {
        Ok(claims) => claims,
        Err(reason) => {
            metrics::COMMANDS.with_label_values(&["auth.refresh", "rejected"]).inc();
            error(chat_nats::model::ErrorCode::Unauthorized, &reason.to_string());
            return None;
        }
    };
    if claims.sub != session.user_id {
        metrics::COMMANDS.with_label_values(&["auth.refresh", "rejected"]).inc();
        error(chat_nats::model::ErrorCode::Forbidden, "the new token names another user");
        return None;
    }
    metrics::COMMANDS.with_label_values(&["auth.refresh", "accepted"]).inc();
    handle.offer(Outbound::Frame(ServerFrame::Ack { reference }.to_text().into()));
    let now_s = chrono::Utc::now().timestamp().max(0) as u64;
    Some(Instant::now() + Duration::from_secs(claims.exp.saturating_sub(now_s)))
}

fn reply_unparsed(handle: &ConnHandle, reference: Option<&str>, reason: &str) {
    metrics::COMMANDS.with_label_values(&["unparsed", "invalid"]).inc();
    let frame = ServerFrame::Error {
        reference,
        code: chat_nats::model::ErrorCode::Invalid,
        message: reason,
        client_msg_id: None,
        retry_after_ms: None,
    };
    handle.offer(Outbound::Frame(frame.to_text().into()));
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    close_token: CancellationToken,
    close_code: Arc<AtomicU16>,
) {
    loop {
        let next = tokio::select! {
            biased;
            next = rx.recv() => next,
            _ = close_token.cancelled() => None,
        };
        let Some(outbound) = next else { break };
        let (frame, persisted_at) = match outbound {
            Outbound::Frame(frame) => (frame, None),
            Outbound::Event { frame, persisted_at_micros, .. } => (frame, persisted_at_micros),
        };
        if sink.send(Message::Text(frame)).await.is_err() {
            return;
        }
        if let Some(persisted_at) = persisted_at {
            let now = chrono::Utc::now().timestamp_micros();
            metrics::DELIVERY_SECONDS.observe((now - persisted_at).max(0) as f64 / 1e6);
        }
    }
    let code = match close_code.load(Ordering::Relaxed) {
        0 => 1000,
        code => code,
    };
    let reason = match code {
        close::TOKEN_EXPIRED => "token expired",
        close::SLOW_CONSUMER => "slow consumer: send queue overflowed",
        close::TOO_MANY_CONNECTIONS => "too many connections for this user",
        close::GOING_AWAY => "server shutting down",
        close::TOO_LARGE => "frame too large",
        close::POLICY => "rate limit ignored",
        close::IDLE => "no ping within the idle timeout",
        _ => "",
    };
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    let _ = sink.close().await;
}

fn is_capacity_error(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("Space limit") || text.contains("capacity")
}

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

    if edge.hub.register(&session.user_id, handle.clone(), chats).is_err() {
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
    let expiry = tokio::time::sleep_until(session.expires_at.into());
    tokio::pin!(expiry);
    loop {
        let next = tokio::select! {
            _ = close_token.cancelled() => break,
            _ = &mut expiry => {
                close_code.store(close::TOKEN_EXPIRED, Ordering::Relaxed);
                break;
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
                handle_text(&edge, &session, &handle, text.as_str()).await;
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
    metrics::CONNECTIONS.dec();
    close_token.cancel();
    drop(handle);
    drop(tx);
    let _ = writer.await;
    tracing::debug!(conn_id = %session.conn_id, "disconnected");
}

async fn handle_text(edge: &EdgeState, session: &Session, handle: &ConnHandle, text: &str) {
    match protocol::parse_command(text) {
        Ok(command) => {
            let name = command.name();
            let outcome = commands::dispatch(edge, session, handle, command).await;
            metrics::COMMANDS.with_label_values(&[name, outcome]).inc();
        }
        Err((reference, reason)) => {
            metrics::COMMANDS.with_label_values(&["unparsed", "invalid"]).inc();
            let frame = ServerFrame::Error {
                reference: reference.as_deref(),
                code: chat_nats::model::ErrorCode::Invalid,
                message: &reason,
                client_msg_id: None,
                retry_after_ms: None,
            };
            handle.offer(Outbound::Frame(frame.to_text().into()));
        }
    }
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

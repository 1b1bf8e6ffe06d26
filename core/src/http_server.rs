//! Serving an axum [`Router`] on a listener, for every HTTP port of the service (the
//! api, the edge's `/ws`, every admin port).
//!
//! `axum::serve` has no header read timeout, so a client that sends its headers one byte
//! at a time holds a connection and a task forever (slowloris). This loop drives hyper's
//! HTTP/1 connections directly, with:
//! - a header read timeout (hyper's timer set, without which hyper ignores it), which
//!   also bounds how long a kept-alive connection may sit idle between requests;
//! - upgrades enabled, so WebSocket routes work;
//! - TCP_NODELAY when asked;
//! - accept errors (EMFILE and the like) logged and retried after a pause;
//! - graceful shutdown: when the token is cancelled the listener is closed, idle
//!   connections are closed, in-flight requests finish, and whatever is still running
//!   after the drain timeout is dropped.
//!
//! An upgraded connection is no longer an HTTP connection: hyper hands the socket to the
//! route's upgrade task and the connection's task here ends, so shutdown never waits for
//! WebSockets. Whoever owns them (the edge's drain) closes them.

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::config::{DEFAULT_HEADER_READ_TIMEOUT_MS, HttpArgs};

/// Pause after an accept error that is not about one connection (EMFILE, ENOMEM), so a
/// full file table does not turn the loop into a busy spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How one listener serves HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Time a client has to send a request line and headers, and the longest a
    /// kept-alive connection may stay idle; the connection is then closed.
    pub header_read_timeout: Duration,
    /// Sets TCP_NODELAY on accepted sockets (small replies leave at once).
    pub nodelay: bool,
    /// After shutdown, how long in-flight requests may take before they are dropped.
    pub drain_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            nodelay: false,
            drain_timeout: Duration::from_secs(20),
        }
    }
}

impl From<&HttpArgs> for HttpSettings {
    fn from(args: &HttpArgs) -> Self {
        HttpSettings { header_read_timeout: Duration::from_millis(args.header_read_timeout_ms), ..Default::default() }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains in-flight
/// requests for at most `settings.drain_timeout`. Never fails: accept errors are
/// logged and retried, connection errors logged at debug level.
pub async fn serve(listener: TcpListener, app: Router, settings: HttpSettings, shutdown: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                log_task_end(ended);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after_accept_error(&error, &shutdown).await;
                    continue;
                }
            },
        };
        if settings.nodelay
            && let Err(error) = stream.set_nodelay(true)
        {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())).with_upgrades();
        connections.spawn(serve_connection(connection, peer, shutdown.clone()));
    }
    drop(listener);
    let drained = tokio::time::timeout(settings.drain_timeout, async {
        while let Some(ended) = connections.join_next().await {
            log_task_end(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still running after the drain timeout; dropping them"
        );
        connections.shutdown().await;
    }
}

/// One accepted connection, with upgrades enabled.
type Connection = http1::UpgradeableConnection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Drives one connection; at shutdown asks it to finish its current request and close.
async fn serve_connection(connection: Connection, peer: SocketAddr, shutdown: CancellationToken) {
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "HTTP connection ended with an error");
    }
}

fn log_task_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended
        && error.is_panic()
    {
        tracing::error!(%error, "HTTP connection task panicked");
    }
}

/// Errors about one connection (reset before it was accepted) are retried at once;
/// anything else (out of file descriptors, memory) after a pause, unless shutting down.
async fn pause_after_accept_error(error: &std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::debug!(%error, "connection failed before it was accepted");
        return;
    }
    tracing::warn!(%error, pause = ?ACCEPT_ERROR_PAUSE, "cannot accept connections; retrying");
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
    }
}

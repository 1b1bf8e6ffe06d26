//! The HTTP serving loop on real sockets: slow and idle clients are disconnected, normal
//! requests and WebSocket upgrades work, and shutdown drains requests but not sockets.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{State, WebSocketUpgrade},
    response::IntoResponse,
    routing::get,
};
use chat_core::http_server::{self, HttpSettings};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Far longer than anything below should take; only reached when a test fails.
const BOUND: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);

/// What the `/slow` route shares with the test: it reports that it started, then waits.
struct Slow {
    started: mpsc::Sender<()>,
    release: Notify,
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    slow_started: mpsc::Receiver<()>,
    slow: Arc<Slow>,
}

impl Server {
    async fn start(settings: HttpSettings) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (started, slow_started) = mpsc::channel(4);
        let slow = Arc::new(Slow { started, release: Notify::new() });
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/slow", get(slow_route))
            .route("/echo", get(echo))
            .with_state(slow.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(http_server::serve(listener, app, settings, shutdown.clone()));
        Server { addr, shutdown, task, slow_started, slow }
    }

    /// Cancels and waits for the serving loop to return.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(BOUND, self.task)
            .await
            .unwrap_or_else(|_| panic!("the server did not stop within {BOUND:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn slow_route(State(slow): State<Arc<Slow>>) -> &'static str {
    let _ = slow.started.send(()).await;
    slow.release.notified().await;
    "done"
}

async fn echo(ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    })
}

fn short_timeout() -> HttpSettings {
    HttpSettings { header_read_timeout: SHORT, ..Default::default() }
}

/// Reads until the server closes the connection (EOF or reset), within [`BOUND`].
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read_all)
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open for {BOUND:?}"));
    String::from_utf8_lossy(&received).into_owned()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_disconnected() {
    let server = Server::start(short_timeout()).await;
    let (mut reader, mut writer) = connect(server.addr).await.into_split();
    // One byte every 50 ms: each byte is progress, so only a deadline on the whole
    // header section stops it.
    let drip = tokio::spawn(async move {
        for byte in b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let received = read_until_closed(&mut reader).await;
    assert!(!received.contains(" 200 "), "a request whose headers never ended was answered: {received:?}");
    tokio::time::timeout(BOUND, drip)
        .await
        .unwrap_or_else(|_| panic!("writes still succeed {BOUND:?} after the connection was closed"))
        .unwrap_or_else(|e| panic!("{e}"));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_disconnected() {
    let server = Server::start(short_timeout()).await;
    let mut stream = connect(server.addr).await;
    assert_eq!(read_until_closed(&mut stream).await, "");
    server.stop().await;
}

#[tokio::test]
async fn a_normal_request_is_answered_and_an_idle_kept_alive_connection_closed() {
    let server = Server::start(short_timeout()).await;
    let mut stream = connect(server.addr).await;
    stream.write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    let received = read_until_closed(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received:?}");
    assert!(received.ends_with("\r\n\r\nok"), "{received:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_upgrade_works_and_outlives_the_header_timeout_and_the_server() {
    let server = Server::start(HttpSettings { nodelay: true, ..short_timeout() }).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", server.addr))
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    socket.send(Message::text("hello")).await.unwrap_or_else(|e| panic!("{e}"));
    let echoed = tokio::time::timeout(BOUND, socket.next()).await.unwrap_or_else(|_| panic!("no echo"));
    assert_eq!(echoed.and_then(Result::ok), Some(Message::text("hello")));

    // Idle for longer than the header read timeout: that timeout is HTTP's, not the
    // socket's.
    tokio::time::sleep(SHORT * 2).await;
    // Shutdown does not wait for upgraded connections; their owner closes them.
    server.stop().await;
    socket.send(Message::text("still here")).await.unwrap_or_else(|e| panic!("{e}"));
    let echoed = tokio::time::timeout(BOUND, socket.next()).await.unwrap_or_else(|_| panic!("no echo"));
    assert_eq!(echoed.and_then(Result::ok), Some(Message::text("still here")));
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_a_running_request_finish() {
    let mut server = Server::start(HttpSettings::default()).await;
    let mut stream = connect(server.addr).await;
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::timeout(BOUND, server.slow_started.recv()).await.unwrap_or_else(|_| panic!("/slow did not start"));
    server.shutdown.cancel();

    let refused = async {
        while TcpStream::connect(server.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(BOUND, refused).await.unwrap_or_else(|_| panic!("still accepting after shutdown"));

    server.slow.release.notify_one();
    let received = read_until_closed(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received:?}");
    assert!(received.ends_with("\r\n\r\ndone"), "{received:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_still_running_after_the_drain_timeout_is_dropped() {
    let mut server = Server::start(HttpSettings { drain_timeout: SHORT, ..Default::default() }).await;
    let mut stream = connect(server.addr).await;
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::timeout(BOUND, server.slow_started.recv()).await.unwrap_or_else(|_| panic!("/slow did not start"));
    let mut stream_closed = tokio::spawn(async move { read_until_closed(&mut stream).await });
    server.stop().await;
    let received = tokio::time::timeout(BOUND, &mut stream_closed)
        .await
        .unwrap_or_else(|_| panic!("connection still open"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received, "", "the request was never answered");
}

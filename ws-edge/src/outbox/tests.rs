use std::time::Duration;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, Role, frame::Frame},
    },
};

use super::*;

fn event(text: &str, droppable: bool) -> Outbound {
    Outbound::Event { frame: text.to_owned().into(), persisted_at_micros: None, droppable }
}

fn queued(outbox: &Outbox) -> Vec<String> {
    let queue = outbox.lock();
    queue
        .frames
        .iter()
        .map(|frame| match frame {
            Outbound::Frame(text) | Outbound::Event { frame: text, .. } => text.to_string(),
            Outbound::Control(bytes) => format!("control of {} bytes", bytes.len()),
        })
        .collect()
}

fn closing(outbox: &Outbox) -> Option<CloseCode> {
    outbox.lock().closing
}

#[test]
fn the_queue_is_bounded_in_bytes_as_well_as_frames() {
    let outbox = Outbox::unattached(QueueLimits { max_frames: 1000, max_bytes: 100 });
    let forty = "x".repeat(40);
    assert!(outbox.offer(event(&forty, false)));
    assert!(outbox.offer(event(&forty, false)));
    assert!(!outbox.is_closing());
    assert!(!outbox.offer(event(&forty, false)), "120 bytes do not fit in 100");
    assert_eq!(closing(&outbox), Some(CloseCode::SlowConsumer));
    assert!(queued(&outbox).is_empty(), "a closing connection's queue is freed at once");
    assert!(!outbox.offer(event("late", false)), "nothing is queued after the close");
}

#[test]
fn typing_and_presence_are_dropped_first() {
    let outbox = Outbox::unattached(QueueLimits { max_frames: 3, max_bytes: 1 << 20 });
    assert!(outbox.offer(event("typing", true)));
    assert!(outbox.offer(event("m1", false)));
    assert!(outbox.offer(event("presence", true)));
    assert!(!outbox.offer(event("typing again", true)), "a droppable frame is dropped when full");
    assert!(outbox.offer(event("m2", false)), "room is made by dropping typing and presence");
    assert_eq!(queued(&outbox), ["m1", "m2"]);
    assert_eq!(closing(&outbox), None);
}

#[test]
fn a_partly_written_frame_is_never_dropped() {
    let outbox = Outbox::unattached(QueueLimits { max_frames: 2, max_bytes: 1 << 20 });
    assert!(outbox.offer(event("typing, half on the wire", true)));
    outbox.lock().first_sent = 5;
    assert!(outbox.offer(event("m1", false)));
    assert!(!outbox.offer(event("m2", false)), "three frames do not fit in two, and none can be dropped");
    assert_eq!(closing(&outbox), Some(CloseCode::SlowConsumer));
    assert_eq!(queued(&outbox), ["typing, half on the wire"], "its rest must precede the close frame");
}

#[test]
fn one_big_frame_fits_an_empty_queue() {
    let outbox = Outbox::unattached(QueueLimits { max_frames: 10, max_bytes: 10 });
    assert!(outbox.offer(Outbound::Frame("a sync.result bigger than the budget".into())));
    assert!(!outbox.offer(event("next", false)));
    assert_eq!(closing(&outbox), Some(CloseCode::SlowConsumer));
}

#[test]
fn frame_limit_closes_with_4009() {
    let outbox = Outbox::unattached(QueueLimits { max_frames: 2, max_bytes: 1 << 20 });
    assert!(outbox.offer(event("1", false)));
    assert!(outbox.offer(event("2", false)));
    assert!(!outbox.offer(event("3", false)));
    assert_eq!(closing(&outbox), Some(CloseCode::SlowConsumer));
}

#[tokio::test]
async fn a_queued_frame_wakes_the_connection() {
    let outbox = Arc::new(Outbox::unattached(QueueLimits { max_frames: 10, max_bytes: 1000 }));
    let waiter = tokio::spawn({
        let outbox = outbox.clone();
        async move {
            outbox.ready().await;
            queued(&outbox).len()
        }
    });
    tokio::task::yield_now().await;
    assert!(outbox.offer(event("hi", false)));
    let woken = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert!(matches!(woken, Ok(Ok(1))), "{woken:?}");
}

/// A connected pair on 127.0.0.1: the server's end (with a small send buffer, so that
/// the socket fills up while the client does not read), and the client's end as a
/// WebSocket client. The client's receive buffer keeps its default size: a tiny
/// window on loopback makes TCP crawl.
async fn socket_pair(small_buffers: bool) -> (Arc<TcpStream>, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|error| panic!("bind: {error}"));
    let address = listener.local_addr().unwrap_or_else(|error| panic!("address: {error}"));
    let client = TcpStream::connect(address).await.unwrap_or_else(|error| panic!("connect: {error}"));
    let (server, _) = listener.accept().await.unwrap_or_else(|error| panic!("accept: {error}"));
    if small_buffers {
        let _ = socket2::SockRef::from(&server).set_send_buffer_size(4096);
    }
    let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    (Arc::new(server), client)
}

/// The send side of `server`, released with a `hello` that the client reads first.
async fn opened(limits: QueueLimits, server: Arc<TcpStream>, client: &mut WebSocketStream<TcpStream>) -> Outbox {
    let outbox = Outbox::new(limits, server);
    outbox.release(Outbound::Frame("hello".into()));
    assert_eq!(next_text(client).await, "hello");
    outbox
}

async fn next_text(client: &mut WebSocketStream<TcpStream>) -> String {
    match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Writes the backlog until it is gone, as the connection's task does.
async fn write_out(outbox: &Outbox) -> Backlog {
    let write = async {
        loop {
            match outbox.write_backlog() {
                Backlog::Blocked => outbox.writable().await.unwrap_or_else(|error| panic!("writable: {error}")),
                done => return done,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), write).await.unwrap_or_else(|_| panic!("the backlog never drained"))
}

fn numbered(i: usize, len: usize) -> String {
    let mut text = format!("{i:06}:");
    text.extend(std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), len));
    text
}

#[tokio::test]
async fn deliveries_are_written_at_once_and_arrive_in_order() {
    let (server, mut client) = socket_pair(false).await;
    let outbox = opened(QueueLimits { max_frames: 10, max_bytes: 1 << 20 }, server, &mut client).await;
    for i in 0..50 {
        assert!(outbox.offer(event(&numbered(i, 200 * i), false)));
    }
    assert!(queued(&outbox).is_empty(), "an open socket takes small frames at once");
    for i in 0..50 {
        assert_eq!(next_text(&mut client).await, numbered(i, 200 * i));
    }
}

#[tokio::test]
async fn what_a_full_socket_does_not_take_is_written_later_in_order() {
    let (server, mut client) = socket_pair(true).await;
    let outbox = opened(QueueLimits { max_frames: 10_000, max_bytes: 64 << 20 }, server, &mut client).await;
    let count = 100;
    for i in 0..count {
        assert!(outbox.offer(event(&numbered(i, 20_000), false)));
    }
    assert!(!queued(&outbox).is_empty(), "the socket's buffers cannot take 2 MB at once");
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        for _ in 0..count {
            texts.push(next_text(&mut client).await);
        }
        texts
    });
    assert_eq!(write_out(&outbox).await, Backlog::Written);
    let texts = reader.await.unwrap_or_else(|error| panic!("reader: {error}"));
    for (i, text) in texts.iter().enumerate() {
        assert!(*text == numbered(i, 20_000), "frame {i} arrived damaged or out of order");
    }
    assert_eq!(outbox.lock().frames.capacity(), 0, "a written backlog's storage is given back");
}

#[tokio::test]
async fn an_overflow_ends_with_whole_frames_then_the_close_frame() {
    let (server, mut client) = socket_pair(true).await;
    let outbox = opened(QueueLimits { max_frames: 1000, max_bytes: 100_000 }, server, &mut client).await;
    let mut offered = 0;
    while outbox.offer(event(&numbered(offered, 20_000), false)) {
        offered += 1;
        assert!(offered < 1000, "the queue never overflowed");
    }
    assert_eq!(closing(&outbox), Some(CloseCode::SlowConsumer));
    let mut close = Vec::new();
    let frame =
        CloseFrame { code: CloseCode::SlowConsumer.code().into(), reason: CloseCode::SlowConsumer.reason().into() };
    Frame::close(Some(frame)).format(&mut close).unwrap_or_else(|error| panic!("close frame: {error}"));
    assert!(outbox.offer_control(close.into()).is_ok(), "the close frame is queued behind the backlog");
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => texts.push(text.to_string()),
                Ok(Some(Ok(Message::Close(Some(frame))))) => return (texts, u16::from(frame.code)),
                other => panic!("expected text frames then a close frame, got {other:?}"),
            }
        }
    });
    assert_eq!(write_out(&outbox).await, Backlog::Closing(CloseCode::SlowConsumer));
    let (texts, code) = reader.await.unwrap_or_else(|error| panic!("reader: {error}"));
    assert_eq!(code, CloseCode::SlowConsumer.code());
    assert!(!texts.is_empty() && texts.len() < offered, "{} of {offered} frames", texts.len());
    for (i, text) in texts.iter().enumerate() {
        assert!(*text == numbered(i, 20_000), "frame {i} arrived damaged or out of order");
    }
}

#[tokio::test]
async fn a_socket_the_peer_closed_refuses_what_follows() {
    let (server, mut client) = socket_pair(false).await;
    let outbox = opened(QueueLimits { max_frames: 10, max_bytes: 1 << 20 }, server, &mut client).await;
    drop(client);
    let mut refused = false;
    for _ in 0..100 {
        if !outbox.offer(event("anyone there?", false)) {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "writes to a closed peer fail within a second");
    assert_eq!(outbox.write_backlog(), Backlog::Broken);
    assert!(outbox.offer_control(Bytes::from_static(b"\x88\x00")).is_err());
}

#[tokio::test]
async fn what_arrives_before_the_hello_follows_it() {
    let (server, mut client) = socket_pair(false).await;
    let outbox = Outbox::new(QueueLimits { max_frames: 10, max_bytes: 1 << 20 }, server);
    assert!(outbox.offer(event("an event delivered right after the registration", false)));
    assert_eq!(queued(&outbox).len(), 1, "nothing is written before the hello");
    outbox.release(Outbound::Frame("hello".into()));
    assert_eq!(write_out(&outbox).await, Backlog::Written);
    assert_eq!(next_text(&mut client).await, "hello");
    assert_eq!(next_text(&mut client).await, "an event delivered right after the registration");
    assert!(outbox.offer(event("later", false)));
    assert!(queued(&outbox).is_empty(), "after the hello, deliveries are written at once");
    assert_eq!(next_text(&mut client).await, "later");
}

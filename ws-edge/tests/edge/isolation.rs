//! One client cannot hurt the others: a client that stops reading is dropped within a
//! bounded time, its queue is bounded in bytes, a panic closes only its own
//! connection, and upgrades in progress are capped.

use std::sync::Arc;

use chat_nats::presence::{ConnEvent, ConnReport};
use tokio::net::TcpSocket;

use super::*;

/// An event as the persister publishes it, with text of `text_len` bytes.
fn big_event(seq: u64, text_len: usize) -> String {
    json!({
        "type": "msg.created", "chat_id": "c1", "seq": seq,
        "message": {"id": format!("m{seq}"), "chat_id": "c1", "seq": seq, "sender_id": "u2",
                    "client_msg_id": format!("k{seq}"), "text": "x".repeat(text_len), "reply_to": null,
                    "created_at": "2026-01-01T00:00:00.000Z"}
    })
    .to_string()
}

/// A client whose kernel receive buffer is small, so that not reading soon blocks the
/// edge's writes to it.
async fn connect_small_buffer(h: &Harness, user: &str) -> Socket {
    let address = h.ws_url.trim_start_matches("ws://").trim_end_matches("/ws").to_owned();
    let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket.set_recv_buffer_size(4096).unwrap_or_else(|e| panic!("{e}"));
    let addr: std::net::SocketAddr = address.parse().unwrap_or_else(|e| panic!("{address}: {e}"));
    let stream = socket.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}?access_token={}", h.ws_url, token(user, 600));
    let (mut socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(next(&mut socket).await["type"], "hello");
    socket
}

/// Waits for the edge's report that one of `user`'s connections closed.
async fn disconnect_reported(reports: &mut async_nats::Subscriber, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, reports.next()).await {
        if let Ok(report) = serde_json::from_slice::<ConnReport>(&message.payload)
            && matches!(report.event, ConnEvent::Disconnected)
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_within_15_s_and_others_get_everything() {
    let h = Harness::start(|c| {
        c.queue_frames = 100_000;
        c.queue_bytes = 256 * 1024;
        c.write_timeout_ms = 2_000;
    })
    .await;
    h.member_of("stuck", &["c1"]);
    h.member_of("fine", &["c1"]);
    let mut reports = h.nats.subscribe(subjects::presence_conn("stuck")).await.unwrap_or_else(|e| panic!("{e}"));
    let _stuck = connect_small_buffer(&h, "stuck").await;
    let mut fine = h.connect("fine").await;
    // 300 events of 30 KB, 9 MB, far more than the stuck client's buffers and queue,
    // published five at a time as fast as the reading client takes them: 150 KB stays
    // under the reading client's 256 KiB queue even if none was written yet, so a slow
    // box cannot make it look like a slow consumer.
    let mut seqs = Vec::new();
    for seq in 1..=300u64 {
        h.nats
            .publish(subjects::event("c1", EventKind::MsgCreated), big_event(seq, 30_000).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if seq % 5 == 0 {
            while seqs.len() < seq as usize {
                let frame = next(&mut fine).await;
                if frame["type"] == "msg.created" {
                    seqs.push(frame["seq"].as_u64().unwrap_or(0));
                }
            }
        }
    }
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "the reading client got every event in order");
    assert!(
        disconnect_reported(&mut reports, Duration::from_secs(15)).await,
        "the stuck connection was not closed within 15 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_over_its_byte_budget_closes_with_4009() {
    let h = Harness::start(|c| {
        c.queue_frames = 100_000;
        c.queue_bytes = 256 * 1024;
    })
    .await;
    h.member_of("slow", &["c1"]);
    let mut slow = connect_small_buffer(&h, "slow").await;
    // 300 events of 30 KB while the client does not read: 9 MB, more than the kernel
    // buffers hold, against a 256 KiB queue.
    for seq in 1..=300 {
        h.nats
            .publish(subjects::event("c1", EventKind::MsgCreated), big_event(seq, 30_000).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    h.nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reading again: what the kernel held arrives, then the close.
    let mut received = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, slow.next()).await.ok().flatten() {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?} after {received} frames"),
        }
    };
    assert_eq!(code, 4009, "slow consumer");
    assert!(received < 300, "the overflowing frames were not all delivered ({received})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_closes_only_its_connection_with_1011() {
    let hook: ws_edge::state::CommandHook = Arc::new(|command| {
        if let ws_edge::protocol::ClientCommand::Ping { reference: Some(reference) } = command
            && reference == "boom"
        {
            panic!("injected by the test");
        }
    });
    let h = Harness::start_with_hook(|_| {}, Some(hook)).await;
    h.member_of("victim", &["c1"]);
    h.member_of("bystander", &["c1"]);
    let mut reports = h.nats.subscribe(subjects::presence_conn("victim")).await.unwrap_or_else(|e| panic!("{e}"));
    let mut victim = h.connect("victim").await;
    let mut bystander = h.connect("bystander").await;
    victim.send(Message::text(r#"{"type":"ping","ref":"boom"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(close_code(&mut victim).await, 1011);
    assert!(disconnect_reported(&mut reports, WAIT).await, "the panicked connection was unregistered");
    bystander.send(Message::text(r#"{"type":"ping","ref":"p"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut bystander).await, json!({"type": "pong", "ref": "p"}));
    h.nats
        .publish(subjects::event("c1", EventKind::MsgCreated), big_event(1, 10).into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut bystander).await["seq"], 1, "events still reach the others");
    let mut again = h.connect("victim").await;
    again.send(Message::text(r#"{"type":"ping","ref":"p"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut again).await["type"], "pong", "the user can connect again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_the_cap_get_503_at_once() {
    // A memberships service that takes 1.5 s: an upgrade waits for it, holding its place.
    let nats_server = chat_testkit::start_nats().await;
    let nats =
        async_nats::connect(format!("nats://127.0.0.1:{}", nats_server.port())).await.unwrap_or_else(|e| panic!("{e}"));
    let mut requests = nats.subscribe(subjects::rpc("memberships")).await.unwrap_or_else(|e| panic!("{e}"));
    nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let reply = serde_json::to_vec(&MembershipsReply { chats: Vec::new(), next: None }).unwrap_or_default();
            if let Some(inbox) = request.reply {
                let _ = nats.publish(inbox, reply.into()).await;
            }
        }
    });
    let shutdown = CancellationToken::new();
    let mut settings = config(format!("nats://127.0.0.1:{}", nats_server.port()));
    settings.max_pending_upgrades = 1;
    let running = ws_edge::start(settings, shutdown.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("ws://{}/ws?access_token={}", running.listen_addr, token("u1", 600));
    let waiting = tokio::spawn(tokio_tungstenite::connect_async(url.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(url)).await;
    match refused {
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("too many connections opening"), "{body}");
        }
        other => panic!("expected an immediate 503: {other:?}"),
    }
    let (mut first, _) = waiting
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the upgrade in progress was refused: {e}"));
    assert_eq!(next(&mut first).await["type"], "hello", "the upgrade in progress went through");
    shutdown.cancel();
}

//! The edge against a real NATS server. The api's memberships endpoint is played by a
//! small responder on the real bus, and events are published the way the persister
//! and notifier publish them.
//!
//! One binary: [`isolation`] holds the tests that one bad client cannot hurt others,
//! [`budget`] those of the per-user message budget across replicas, [`logs`] the one
//! that runs the binary itself and reads its log lines, [`asyncapi`] the one of the
//! served AsyncAPI document and the lint of both documents.

mod asyncapi;
mod budget;
mod isolation;
mod logs;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chat_core::{
    auth::{DEV_SECRET, dev_claims, dev_jwt_args, mint_hs256},
    config::{AdminArgs, HttpArgs, LogArgs, LogFormat, ShutdownArgs},
};
use chat_nats::{
    commands::{CommandEnvelope, CommandOutcome, Rejection},
    events::{EventKind, UserDeliveryKind},
    model::{ErrorCode, Role},
    rpc::{Membership, MembershipsReply, MembershipsRequest},
    subjects,
};
use chat_testkit::ServerProcess;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Harness {
    _nats_server: ServerProcess,
    nats: async_nats::Client,
    ws_url: String,
    memberships: Arc<Mutex<HashMap<String, Vec<String>>>>,
    shutdown: CancellationToken,
}

fn config(nats_url: String) -> ws_edge::Config {
    ws_edge::Config {
        log: LogArgs { log: "warn".into(), log_format: LogFormat::Pretty },
        nats: chat_core::config::NatsArgs {
            nats_url,
            stream_replicas: 1,
            command_partitions: chat_nats::streams::DEFAULT_COMMAND_PARTITIONS,
            auth: Default::default(),
        },
        redis: chat_core::config::RedisArgs { redis_url: "redis://127.0.0.1:1".into() },
        limits: chat_core::config::UserLimitArgs { messages_per_user_per_s: 10, messages_per_user_burst: None },
        writes: chat_core::config::WriteLimitArgs::default(),
        jwt: dev_jwt_args(),
        admin: AdminArgs { admin_addr: Some(([127, 0, 0, 1], 0).into()) },
        shutdown: ShutdownArgs { shutdown_grace_s: 5 },
        http: HttpArgs { header_read_timeout_ms: 10_000 },
        listen_addr: ([127, 0, 0, 1], 0).into(),
        allowed_origins: vec![],
        heartbeat_ms: 25_000,
        idle_timeout_ms: 60_000,
        queue_frames: 64,
        queue_bytes: 4 << 20,
        write_timeout_ms: 10_000,
        close_timeout_ms: 2_000,
        read_buffer_bytes: 1024,
        max_pending_upgrades: 256,
        max_frame_bytes: 4096,
        commands_per_s: 1000,
        commands_burst: 1000,
        syncs_per_s: 5,
        syncs_burst: 20,
        presence_watches_per_s: 2,
        presence_watches_burst: 10,
        max_connections_per_user: 10,
    }
}

impl Harness {
    async fn start(adjust: impl FnOnce(&mut ws_edge::Config)) -> Harness {
        Self::start_with_hook(adjust, None).await
    }

    async fn start_with_hook(
        adjust: impl FnOnce(&mut ws_edge::Config),
        hook: Option<ws_edge::state::CommandHook>,
    ) -> Harness {
        let nats_server = chat_testkit::start_nats().await;
        let url = format!("nats://127.0.0.1:{}", nats_server.port());
        let nats = async_nats::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let memberships: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let mut requests = nats.subscribe(subjects::rpc("memberships")).await.unwrap_or_else(|e| panic!("{e}"));
        let (responder, table) = (nats.clone(), memberships.clone());
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Ok(asked) = serde_json::from_slice::<MembershipsRequest>(&request.payload) else { continue };
                let chats =
                    table.lock().map(|t| t.get(&asked.user_id).cloned().unwrap_or_default()).unwrap_or_default();
                let reply = MembershipsReply {
                    chats: chats
                        .into_iter()
                        .map(|chat_id| Membership { chat_id, role: Role::Member, joined_seq: 1 })
                        .collect(),
                    next: None,
                };
                if let Some(inbox) = request.reply {
                    let _ = responder.publish(inbox, serde_json::to_vec(&reply).unwrap_or_default().into()).await;
                }
            }
        });
        let mut config = config(url);
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let running =
            ws_edge::start_with_hook(config, shutdown.clone(), hook).await.unwrap_or_else(|e| panic!("edge: {e}"));
        Harness {
            _nats_server: nats_server,
            nats,
            ws_url: format!("ws://{}/ws", running.listen_addr),
            memberships,
            shutdown,
        }
    }

    fn member_of(&self, user: &str, chats: &[&str]) {
        if let Ok(mut table) = self.memberships.lock() {
            table.insert(user.into(), chats.iter().map(|c| (*c).to_owned()).collect());
        }
    }

    async fn connect_with(&self, token: &str) -> Socket {
        let url = format!("{}?access_token={token}", self.ws_url);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        socket
    }

    async fn connect(&self, user: &str) -> Socket {
        let mut socket = self.connect_with(&token(user, 600)).await;
        let hello = next(&mut socket).await;
        assert_eq!(hello["type"], "hello");
        socket
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn token(user: &str, ttl_s: u64) -> String {
    mint_hs256(DEV_SECRET, &dev_claims(user, "N", &[], ttl_s)).unwrap_or_default()
}

async fn next(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.ok().flatten() {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap_or_default(),
            Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

/// Reads until the server closes; returns the close code.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.ok().flatten() {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) | None => return 0,
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("read error before close: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_ping_and_refusals_before_the_upgrade() {
    let h = Harness::start(|_| {}).await;
    let mut socket = h.connect_with(&token("u1", 600)).await;
    let hello = next(&mut socket).await;
    assert_eq!(hello["user_id"], "u1");
    assert_eq!(hello["limits"]["max_frame_bytes"], 4096);
    socket.send(Message::text(r#"{"type":"ping","ref":"p"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut socket).await, json!({"type": "pong", "ref": "p"}));

    let expired = mint_hs256(DEV_SECRET, &{
        let mut claims = dev_claims("u1", "N", &[], 0);
        claims.exp = claims.exp.saturating_sub(3600);
        claims
    })
    .unwrap_or_default();
    let mut short = h.connect_with(&token("u5", 2)).await;
    assert_eq!(next(&mut short).await["type"], "hello");
    assert_eq!(close_code(&mut short).await, 4001, "closed when the token expires");

    for bad in ["", "garbage", expired.as_str()] {
        match tokio_tungstenite::connect_async(format!("{}?access_token={bad}", h.ws_url)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_memberships_service_means_503() {
    let nats_server = chat_testkit::start_nats().await;
    let shutdown = CancellationToken::new();
    let running = ws_edge::start(config(format!("nats://127.0.0.1:{}", nats_server.port())), shutdown.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("ws://{}/ws?access_token={}", running.listen_addr, token("u1", 600));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503: {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_acked_after_jetstream_and_events_reach_members_verbatim() {
    let h = Harness::start(|_| {}).await;
    h.member_of("u1", &["c1"]);
    h.member_of("u2", &["c1"]);
    let mut u1 = h.connect("u1").await;
    let mut u2 = h.connect("u2").await;
    let mut u3 = h.connect("u3").await;
    u1.send(Message::text(r#"{"type":"msg.send","ref":"r1","chat_id":"c1","client_msg_id":"k1","text":"hi"}"#))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut u1).await, json!({"type": "ack", "ref": "r1"}));
    let js = async_nats::jetstream::new(h.nats.clone());
    let mut stream = js.get_stream("CHAT_CMD").await.unwrap_or_else(|e| panic!("{e}"));
    let stored =
        stream.get_last_raw_message_by_subject("chat.cmd.*.c1.msg.send").await.unwrap_or_else(|e| panic!("{e}"));
    let command: Value = serde_json::from_slice(&stored.payload).unwrap_or_default();
    assert_eq!(command["actor"]["user_id"], "u1", "the actor comes from the token, not the frame");
    assert_eq!(command["ref"], "r1");
    assert_eq!(stream.info().await.map(|i| i.state.messages).unwrap_or(0), 1);

    let event = r#"{"v":1,"id":"c1:2","chat_id":"c1","seq":2,"type":"msg.created","message":{"id":"m"}}"#;
    h.nats.publish(subjects::event("c1", EventKind::MsgCreated), event.into()).await.unwrap_or_else(|e| panic!("{e}"));
    let expected: Value = serde_json::from_str(event).unwrap_or_default();
    assert_eq!(next(&mut u1).await, expected);
    assert_eq!(next(&mut u2).await, expected);
    assert!(tokio::time::timeout(Duration::from_millis(300), u3.next()).await.is_err(), "u3 is not a member");

    u3.send(Message::text(r#"{"type":"msg.send","ref":"r3","chat_id":"c1","client_msg_id":"k","text":"hi"}"#))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let error = next(&mut u3).await;
    assert_eq!((error["code"].as_str(), error["ref"].as_str()), (Some("not_found"), Some("r3")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_rejections_from_workers_reach_the_right_sockets() {
    let h = Harness::start(|_| {}).await;
    let mut u1 = h.connect("u1").await;
    let joined =
        json!({"type": "chat.joined", "v": 1, "chat_id": "c9", "role": "member", "at": "2026-01-01T00:00:00.000Z"});
    h.nats
        .publish(subjects::user("u1", UserDeliveryKind::ChatJoined), joined.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The edge subscribes to the chat asynchronously; publish until the event arrives.
    let event = r#"{"v":1,"id":"c9:5","chat_id":"c9","seq":5,"type":"msg.created","message":{}}"#;
    let mut delivered = None;
    for _ in 0..50 {
        h.nats
            .publish(subjects::event("c9", EventKind::MsgCreated), event.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_millis(200), u1.next()).await {
            delivered = serde_json::from_str::<Value>(text.as_str()).ok();
            break;
        }
    }
    assert_eq!(
        delivered.map(|e| e["id"].clone()),
        Some(json!("c9:5")),
        "the edge delivers a chat once the user joins it"
    );
    while tokio::time::timeout(Duration::from_millis(300), u1.next()).await.is_ok() {}

    // A command from a second connection names that connection's outcome subject on
    // this edge; the persister's rejection published there reaches that socket only.
    h.member_of("u1", &["c9"]);
    let hello_conn = {
        let mut other = h.connect_with(&token("u1", 600)).await;
        let hello = next(&mut other).await;
        (other, hello["conn_id"].as_str().unwrap_or_default().to_owned())
    };
    let (mut second, conn_id) = hello_conn;
    let mut commands = h.nats.subscribe(subjects::CMD_ALL).await.unwrap_or_else(|e| panic!("{e}"));
    h.nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let send = json!({"type": "msg.send", "ref": "r7", "chat_id": "c9", "client_msg_id": "k7", "text": "hi"});
    second.send(Message::text(send.to_string())).await.unwrap_or_else(|e| panic!("{e}"));
    let published = tokio::time::timeout(WAIT, commands.next()).await.ok().flatten().expect("the command on the bus");
    let envelope: CommandEnvelope = serde_json::from_slice(&published.payload).unwrap_or_else(|e| panic!("{e}"));
    let reply = envelope.reply.expect("an edge command names a reply subject");
    assert_eq!(subjects::outcome_target_of(&reply), Some(("u1", conn_id.as_str())));
    let rejection = CommandOutcome::Rejected(Rejection {
        code: ErrorCode::Forbidden,
        message: "no".into(),
        reference: envelope.reference.clone(),
        client_msg_id: Some("k7".into()),
        retry_after_ms: None,
    });
    let body = serde_json::to_vec(&rejection).unwrap_or_else(|e| panic!("{e}"));
    h.nats.publish(reply, body.into()).await.unwrap_or_else(|e| panic!("{e}"));
    // The `ack` (JetStream stored the command) may come first.
    let mut error = next(&mut second).await;
    if error["type"] == "ack" {
        error = next(&mut second).await;
    }
    assert_eq!(
        error,
        json!({"type": "error", "ref": "r7", "code": "forbidden", "message": "no", "client_msg_id": "k7"})
    );
    assert!(tokio::time::timeout(Duration::from_millis(300), u1.next()).await.is_err(), "only that connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_close_with_their_codes() {
    let h = Harness::start(|c| {
        c.commands_per_s = 2;
        c.commands_burst = 3;
        c.max_connections_per_user = 2;
        c.idle_timeout_ms = 400;
    })
    .await;
    let mut socket = h.connect("u1").await;
    for _ in 0..3 {
        socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next(&mut socket).await["type"], "pong");
    }
    socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    let limited = next(&mut socket).await;
    assert_eq!(limited["code"], "rate_limited");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 500), "{limited}");

    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(close_code(&mut socket).await, 1000, "silent past the idle timeout: closed");

    // Far more than the threshold, sent without reading: frames the edge never reads
    // must not turn its close into a reset, which the client would see as 1006.
    let mut flooder = h.connect("u3").await;
    for _ in 0..(ws_edge::connection::ABUSE_THRESHOLD * 40) {
        if flooder.feed(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let _ = flooder.flush().await;
    assert_eq!(close_code(&mut flooder).await, 4008, "ignoring rate limits closes the connection");

    let _a = h.connect("u2").await;
    let _b = h.connect("u2").await;
    let mut third = h.connect_with(&token("u2", 600)).await;
    assert_eq!(close_code(&mut third).await, 4010);

    let mut big = h.connect("u4").await;
    big.send(Message::text("x".repeat(5000))).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(close_code(&mut big).await, u16::from(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_to_reconnect_then_closes_1001() {
    let h = Harness::start(|_| {}).await;
    let mut socket = h.connect("u1").await;
    h.shutdown.cancel();
    let reconnect = next(&mut socket).await;
    assert_eq!(reconnect["type"], "reconnect");
    assert!(reconnect["after_ms"].as_u64().is_some_and(|ms| (500..5000).contains(&ms)), "{reconnect}");
    assert_eq!(close_code(&mut socket).await, 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_announced_and_a_refresh_keeps_the_connection() {
    let h = Harness::start(|_| {}).await;
    let mut socket = h.connect_with(&token("u1", 3)).await;
    assert_eq!(next(&mut socket).await["type"], "hello");
    let warning = next(&mut socket).await;
    assert_eq!(warning["type"], "token.expiring", "{warning}");
    assert!(warning["in_ms"].as_u64().is_some_and(|ms| ms <= 3000), "{warning}");
    let foreign = json!({"type": "auth.refresh", "ref": "r0", "token": token("u2", 600)});
    socket.send(Message::text(foreign.to_string())).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut socket).await["code"], "forbidden", "a token for another user is refused");
    let fresh = json!({"type": "auth.refresh", "ref": "r1", "token": token("u1", 600)});
    socket.send(Message::text(fresh.to_string())).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut socket).await, json!({"type": "ack", "ref": "r1"}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    socket.send(Message::text(r#"{"type":"ping","ref":"alive"}"#)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut socket).await, json!({"type": "pong", "ref": "alive"}), "still open past the old expiry");
}

//! The ws-edge binary as it runs in a container: every line it writes, from start to
//! SIGTERM, is an ECS document (`chat_testkit::ecs`), and a connection's lines name it
//! and its user under `chat.conn_id` and `chat.user_id`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_line_as_ecs() {
    let nats_server = chat_testkit::start_nats().await;
    let nats_url = format!("nats://127.0.0.1:{}", nats_server.port());
    // The api's memberships service, answering "no chats" to every user.
    let nats = async_nats::connect(&nats_url).await.unwrap_or_else(|e| panic!("{e}"));
    let mut requests = nats.subscribe(subjects::rpc("memberships")).await.unwrap_or_else(|e| panic!("{e}"));
    nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let responder = nats.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let reply = serde_json::to_vec(&MembershipsReply { chats: vec![], next: None }).unwrap_or_default();
            if let Some(inbox) = request.reply {
                let _ = responder.publish(inbox, reply.into()).await;
            }
        }
    });
    let args = [
        "--listen-addr",
        "127.0.0.1:0",
        "--nats-url",
        &nats_url,
        "--redis-url",
        "redis://127.0.0.1:1",
        "--jwt-secret",
        DEV_SECRET,
        "--shutdown-grace-s",
        "2",
    ];
    let mut edge = chat_testkit::ecs::start_service(
        "ws-edge",
        env!("CARGO_BIN_EXE_ws-edge").into(),
        args.map(str::to_owned).to_vec(),
        "ws-edge started",
    )
    .await;
    let started = chat_testkit::ecs::documents(&edge.log(), "ws-edge");
    let listen = chat_testkit::ecs::find(&started, "ws-edge started")["chat.listen_addr"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = format!("ws://{listen}/ws?access_token={}", token("ecs-user", 600));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let hello = next(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    let conn_id = hello["conn_id"].as_str().unwrap_or_default().to_owned();
    socket.close(None).await.unwrap_or_else(|e| panic!("{e}"));
    edge.wait_for_log("disconnected", WAIT).await;
    edge.terminate();

    let lines = chat_testkit::ecs::documents(&edge.log(), "ws-edge");
    let connected = chat_testkit::ecs::find(&lines, "connected");
    assert_eq!(connected["chat.user_id"], "ecs-user");
    assert_eq!(connected["chat.conn_id"], conn_id.as_str());
    assert_eq!(chat_testkit::ecs::find(&lines, "disconnected")["chat.conn_id"], conn_id.as_str());
}

//! The notifier binary as it runs in a container, against real NATS, Redis and the
//! MongoDB-compatible store: every line it writes is an ECS document.

use chat_testkit::Servers;

/// The notifier binary as it runs in a container: every line it writes, from start to
/// SIGTERM, is an ECS document (`chat_testkit::ecs`), and an event's line carries the
/// trace id of its `traceparent` header as `trace.id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_line_as_ecs() {
    let servers = Servers::start().await;
    let mongo = servers.mongo_args();
    let args = [
        "--nats-url",
        &servers.nats_url(),
        "--mongodb-uri",
        &mongo.mongodb_uri,
        "--mongodb-db",
        &mongo.mongodb_db,
        "--redis-url",
        &servers.redis_args().redis_url,
        "--shutdown-grace-s",
        "2",
    ];
    let mut notifier = chat_testkit::ecs::start_service(
        "notifier",
        env!("CARGO_BIN_EXE_notifier").into(),
        args.map(str::to_owned).to_vec(),
        "notifier started",
    )
    .await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(chat_nats::headers::TRACEPARENT, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    // Not a valid event: the notifier logs it as received, then as unreadable.
    async_nats::jetstream::new(nats)
        .publish_with_headers(
            chat_nats::subjects::event("ecs-chat", chat_nats::events::EventKind::MsgCreated),
            headers,
            "{}".into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    notifier.wait_for_log("event received", std::time::Duration::from_secs(10)).await;
    notifier.terminate();

    let lines = chat_testkit::ecs::documents(&notifier.log(), "notifier");
    let received = chat_testkit::ecs::find(&lines, "event received");
    assert_eq!(received["trace.id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(received["chat.subject"], "chat.evt.ecs-chat.msg.created");
}

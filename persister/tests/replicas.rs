//! Three persister processes share `CHAT_CMD` under steady traffic while one of them is
//! killed with SIGKILL at random moments, twenty times: every command JetStream
//! accepted is stored exactly once, each chat's seq order is the order in which the
//! stream accepted its sends, and after every kill the survivors take the dead
//! replica's partitions over and storing resumes by itself. And a replica's log lines,
//! from start to SIGTERM, are ECS documents.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use bson::doc;
use chat_nats::{
    commands::{Actor, ChatCreate, Command, CommandEnvelope, CommandOutcome, MsgSend},
    model::ChatKind,
    streams, subjects,
};
use chat_store::Store;
use chat_testkit::{ServerProcess, Servers};
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

const REPLICAS: usize = 3;
const KILLS: usize = 20;
const CHATS: usize = 12;
/// The partition count these replicas run with.
const PARTITIONS: u32 = streams::DEFAULT_COMMAND_PARTITIONS;
/// Short leases keep the test short; the takeover bound below holds for the default
/// 3 s as well (time to live plus one tick).
const LEASE_TTL_MS: u64 = 1000;
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);

fn envelope(command: Command, reply: Option<String>) -> CommandEnvelope {
    CommandEnvelope {
        v: 1,
        id: chat_core::ids::new_id(),
        actor: Actor { user_id: "sender".into(), roles: vec![] },
        reference: None,
        conn_id: None,
        reply,
        issued_at: chrono::Utc::now(),
        command,
    }
}

async fn start_replica(servers: &Servers, index: usize) -> ServerProcess {
    let (nats_url, mongo) = (servers.nats_url(), servers.mongo_args());
    ServerProcess::start(
        "persister",
        env!("CARGO_BIN_EXE_persister").into(),
        move |port: u16, _dir: &Path| {
            [
                "--log",
                "info",
                "--nats-url",
                &nats_url,
                "--mongodb-uri",
                &mongo.mongodb_uri,
                "--mongodb-db",
                &mongo.mongodb_db,
                "--admin-addr",
                &format!("127.0.0.1:{port}"),
                "--lease-ttl-ms",
                &LEASE_TTL_MS.to_string(),
                "--replica-name",
                &format!("replica{index}"),
            ]
            .map(str::to_owned)
            .to_vec()
        },
        "persister started",
        Duration::from_secs(20),
    )
    .await
}

async fn create_chat(nats: &async_nats::Client, js: &jetstream::Context) -> String {
    let chat_id = chat_core::ids::new_id();
    let command = Command::ChatCreate(ChatCreate {
        chat_id: chat_id.clone(),
        kind: ChatKind::Group,
        title: Some("crash test".into()),
        member_ids: vec![],
        external_id: None,
        history_visibility: None,
    });
    let reply = nats.new_inbox();
    let mut answers = nats.subscribe(reply.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let envelope = envelope(command, Some(reply));
    let payload = serde_json::to_vec(&envelope).unwrap_or_default();
    js.publish(subjects::command(&chat_id, "chat.create"), payload.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = tokio::time::timeout(Duration::from_secs(20), answers.next())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no answer to chat.create"));
    let outcome: CommandOutcome = serde_json::from_slice(&answer.payload).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(outcome, CommandOutcome::Done { .. }), "{outcome:?}");
    chat_id
}

/// The stream sequence of every accepted send, by chat, in publication order.
type Accepted = Arc<Mutex<HashMap<String, Vec<(u64, String)>>>>;

/// Publishes sends round-robin over the chats until `stop`, each awaited until the
/// stream accepted it; returns how many were accepted.
async fn publish_steadily(js: jetstream::Context, chats: Vec<String>, accepted: Accepted, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(3));
    let mut index = 0usize;
    while !stop.is_cancelled() {
        tick.tick().await;
        let chat_id = &chats[index % chats.len()];
        let key = format!("k{index}");
        let command = Command::MsgSend(MsgSend {
            chat_id: chat_id.clone(),
            client_msg_id: key.clone(),
            text: key.clone(),
            reply_to: None,
        });
        let payload = serde_json::to_vec(&envelope(command, None)).unwrap_or_default();
        let ack = async { js.publish(subjects::command(chat_id, "msg.send"), payload.into()).await?.await };
        if let Ok(ack) = ack.await {
            let mut accepted = accepted.lock().unwrap_or_else(|poison| poison.into_inner());
            accepted.entry(chat_id.clone()).or_default().push((ack.sequence, key));
        }
        index += 1;
    }
}

async fn stored_keys(store: &Store, chat_id: &str) -> Vec<String> {
    let messages: Vec<chat_store::docs::MessageDoc> = store
        .messages()
        .find(doc! { "chat_id": chat_id })
        .sort(doc! { "seq": 1 })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    messages.into_iter().map(|m| m.client_msg_id).collect()
}

/// Waits until every chat has stored a send accepted after `mark` (its count of
/// accepted sends then); returns how long that took, or the chats that did not move.
async fn wait_until_every_chat_moves(
    store: &Store,
    accepted: &Accepted,
    since: Instant,
) -> Result<Duration, Vec<String>> {
    let marks: HashMap<String, usize> = accepted
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
        .map(|(chat, sends)| (chat.clone(), sends.len()))
        .collect();
    loop {
        let mut stuck = Vec::new();
        for (chat, mark) in &marks {
            let later_key = {
                let accepted = accepted.lock().unwrap_or_else(|poison| poison.into_inner());
                accepted.get(chat).and_then(|sends| sends.get(*mark)).map(|(_, key)| key.clone())
            };
            let moved = match later_key {
                Some(key) => {
                    store.messages().count_documents(doc! { "chat_id": chat, "client_msg_id": key }).await.unwrap_or(0)
                        > 0
                }
                None => false,
            };
            if !moved {
                stuck.push(chat.clone());
            }
        }
        if stuck.is_empty() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > TAKEOVER_BOUND {
            return Err(stuck);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every accepted send of every chat is stored exactly once, in the order the stream
/// accepted them.
async fn assert_each_chat_stored_what_was_accepted_in_order(store: &Store, chats: &[String], accepted: &Accepted) {
    let accepted = accepted.lock().unwrap_or_else(|poison| poison.into_inner()).clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    for chat in chats {
        let mut expected = accepted.get(chat).cloned().unwrap_or_default();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, key)| key).collect();
        let mut stored = stored_keys(store, chat).await;
        while stored.len() < expected.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stored = stored_keys(store, chat).await;
        }
        assert!(!expected.is_empty());
        if stored != expected {
            let first =
                stored.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(stored.len().min(expected.len()));
            let around = first.saturating_sub(3)..(first + 4);
            panic!(
                "chat {chat}: {} stored, {} accepted; first difference at {first}: stored {:?}, accepted {:?}",
                stored.len(),
                expected.len(),
                stored.get(around.clone()),
                expected.get(around),
            );
        }
    }
}

fn print_logs(replica: &ServerProcess) {
    let Ok(entries) = std::fs::read_dir(replica.dir()) else { return };
    for entry in entries.flatten() {
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        println!("--- {}\n{}", entry.path().display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_lose_nothing_and_keep_each_chats_order() {
    let servers = Servers::start().await;
    let mut replicas = Vec::new();
    for index in 0..REPLICAS {
        replicas.push(start_replica(&servers, index).await);
    }
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = jetstream::new(nats.clone());
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(db);
    let mut chats = Vec::new();
    for _ in 0..CHATS {
        chats.push(create_chat(&nats, &js).await);
    }

    let accepted: Accepted = Arc::default();
    let stop = CancellationToken::new();
    let publisher = tokio::spawn(publish_steadily(js.clone(), chats.clone(), accepted.clone(), stop.clone()));
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut takeovers = Vec::new();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        let victim = rng.random_range(0..REPLICAS);
        replicas[victim].kill();
        let killed_at = Instant::now();
        match wait_until_every_chat_moves(&store, &accepted, killed_at).await {
            Ok(took) => takeovers.push(took),
            Err(stuck) => {
                for replica in &replicas {
                    print_logs(replica);
                }
                panic!(
                    "kill {}: chats {stuck:?} did not store anything new within {TAKEOVER_BOUND:?}",
                    takeovers.len() + 1
                );
            }
        }
        replicas[victim].restart().await;
    }
    stop.cancel();
    publisher.await.unwrap_or_else(|e| panic!("{e}"));
    takeovers.sort();
    println!(
        "resumed after a kill: median {:?}, max {:?}",
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1]
    );

    assert_each_chat_stored_what_was_accepted_in_order(&store, &chats, &accepted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_drains_the_single_consumer_in_order_before_partitions_start() {
    let servers = Servers::start().await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = jetstream::new(nats.clone());
    // CHAT_CMD as versions before partitioning made it, with its single consumer.
    let settings = chat_nats::streams::StreamSettings::default();
    let old_stream =
        jetstream::stream::Config { subject_transform: None, ..chat_nats::streams::command_stream(settings) };
    let stream = js.create_stream(old_stream).await.unwrap_or_else(|e| panic!("{e}"));
    let old_consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(chat_nats::streams::LEGACY_PERSISTER_CONSUMER.into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chat_id = chat_core::ids::new_id();
    let create = Command::ChatCreate(ChatCreate {
        chat_id: chat_id.clone(),
        kind: ChatKind::Group,
        title: Some("upgrade".into()),
        member_ids: vec![],
        external_id: None,
        history_visibility: None,
    });
    let publish = |command: Command| {
        let js = js.clone();
        let subject = subjects::command(command.chat_id(), command.name());
        async move {
            let payload = serde_json::to_vec(&envelope(command, None)).unwrap_or_default();
            js.publish(subject, payload.into())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    publish(create).await;
    let send = |index: usize| {
        Command::MsgSend(MsgSend {
            chat_id: chat_id.clone(),
            client_msg_id: format!("k{index:03}"),
            text: format!("m{index}"),
            reply_to: None,
        })
    };
    for index in 0..40 {
        publish(send(index)).await;
    }
    // The old persister fetched the first commands and died before acking them.
    let mut held = old_consumer.fetch().max_messages(10).messages().await.unwrap_or_else(|e| panic!("{e}"));
    let mut held_count = 0;
    while let Some(message) = held.next().await {
        message.unwrap_or_else(|e| panic!("{e}"));
        held_count += 1;
    }
    assert_eq!(held_count, 10);

    let _replica = start_replica(&servers, 0).await;
    for index in 40..80 {
        publish(send(index)).await;
    }
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(db);
    let expected: Vec<String> = (0..80).map(|index| format!("k{index:03}")).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stored = stored_keys(&store, &chat_id).await;
    while stored.len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = stored_keys(&store, &chat_id).await;
    }
    assert_eq!(stored, expected, "old and new commands stored once each, in stream order");
    let mut stream = js.get_stream(chat_nats::streams::CMD_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
    let mut names = Vec::new();
    let mut consumers = stream.consumer_names();
    while let Some(name) = consumers.next().await {
        names.push(name.unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(!names.iter().any(|n| n == "persister" || n == "persister-upgrade"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("persister-")), "{names:?}");
    assert_eq!(
        chat_nats::streams::command_partitions_of(&stream.info().await.unwrap_or_else(|e| panic!("{e}")).config),
        Some(16)
    );
}

/// A persister process as it runs in a container: every line it writes, from start to
/// SIGTERM, is an ECS document (`chat_testkit::ecs`), and a handled command's line
/// carries its trace id, chat and actor as `trace.id`, `chat.chat_id`, `chat.user_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_logs_every_line_as_ecs() {
    let servers = Servers::start().await;
    let mongo = servers.mongo_args();
    let args = [
        "--nats-url",
        &servers.nats_url(),
        "--mongodb-uri",
        &mongo.mongodb_uri,
        "--mongodb-db",
        &mongo.mongodb_db,
        "--replica-name",
        "ecs",
        "--shutdown-grace-s",
        "2",
    ];
    let mut replica = chat_testkit::ecs::start_service(
        "persister",
        env!("CARGO_BIN_EXE_persister").into(),
        args.map(str::to_owned).to_vec(),
        "persister started",
    )
    .await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let chat_id = chat_core::ids::new_id();
    let command = Command::ChatCreate(ChatCreate {
        chat_id: chat_id.clone(),
        kind: ChatKind::Group,
        title: Some("logs".into()),
        member_ids: vec![],
        external_id: None,
        history_visibility: None,
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(chat_nats::headers::TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let payload = serde_json::to_vec(&envelope(command, None)).unwrap_or_default();
    jetstream::new(nats)
        .publish_with_headers(subjects::command(&chat_id, "chat.create"), headers, payload.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    replica.wait_for_log("command handled", Duration::from_secs(20)).await;
    replica.terminate();

    let lines = chat_testkit::ecs::documents(&replica.log(), "persister");
    let handled = chat_testkit::ecs::find(&lines, "command handled");
    assert_eq!(handled["trace.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(handled["chat.chat_id"], chat_id.as_str());
    assert_eq!(handled["chat.user_id"], "sender");
    assert_eq!(handled["chat.command"], "chat.create");
}

/// The partitions' consumers, by name, as they are now.
async fn partition_consumers(js: &jetstream::Context) -> HashMap<String, jetstream::consumer::Info> {
    let stream = js.get_stream(streams::CMD_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
    let mut consumers = HashMap::new();
    for partition in 0..PARTITIONS {
        let name = streams::partition_consumer_name(partition);
        if let Ok(info) = stream.consumer_info(&name).await {
            consumers.insert(name, info);
        }
    }
    consumers
}

/// A lease bucket that answers nothing for longer than the lease time to live (its
/// stream electing a leader after a NATS node died) suspends the partitions instead of
/// ending them: once it is back, every partition goes on with the consumer it had
/// (none is deleted and created again), and every accepted send is stored once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_bucket_outage_longer_than_the_lease_resets_no_partition() {
    let servers = Servers::start().await;
    let replica = start_replica(&servers, 0).await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = jetstream::new(nats.clone());
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(db);
    let mut chats = Vec::new();
    for _ in 0..CHATS {
        chats.push(create_chat(&nats, &js).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before = partition_consumers(&js).await;
    while before.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "only {} partition consumers after 20 s", before.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = partition_consumers(&js).await;
    }

    let accepted: Accepted = Arc::default();
    let stop = CancellationToken::new();
    let publisher = tokio::spawn(publish_steadily(js.clone(), chats.clone(), accepted.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    js.delete_key_value(streams::PERSISTER_LEASES_BUCKET).await.unwrap_or_else(|e| panic!("{e}"));
    let suspended = |log: &str| log.matches("suspending its pipeline").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while suspended(&replica.log()) < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "partitions not suspended:\n{}", replica.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Long enough that every key the bucket held would have expired.
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS)).await;
    let settings = servers.nats_args().stream_settings();
    js.create_key_value(streams::persister_leases_bucket(settings, Duration::from_millis(LEASE_TTL_MS)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = Instant::now();
    match wait_until_every_chat_moves(&store, &accepted, back).await {
        Ok(took) => println!("every chat stored again {took:?} after the bucket came back"),
        Err(stuck) => {
            print_logs(&replica);
            panic!("chats {stuck:?} did not store anything new within {TAKEOVER_BOUND:?} of the bucket's return");
        }
    }
    stop.cancel();
    publisher.await.unwrap_or_else(|e| panic!("{e}"));

    let after = partition_consumers(&js).await;
    for (name, info) in &before {
        let now = after.get(name).map(|info| info.created);
        assert_eq!(now, Some(info.created), "{name} was created again:\n{}", replica.log());
    }
    assert_eq!(replica.log().matches("suspended partition resumed").count(), PARTITIONS as usize);
    assert_each_chat_stored_what_was_accepted_in_order(&store, &chats, &accepted).await;
}

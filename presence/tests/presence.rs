//! The presence worker against a real `nats-server` and `redis-server`: connection
//! reports and typing signals are published on the bus as an edge would, and the test
//! reads what edges would receive (`presence.changed.*`, `chat.live.*`) and what the
//! api would read from Redis (`chat_core::presence_state`).
//!
//! Time: the worker runs with a short grace and sweep interval. "Nothing is announced"
//! is checked by waiting [`QUIET`] (the grace plus many sweeps) and, where possible, by
//! showing that the next announcement is the expected later one.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use chat_core::{
    config::{AdminArgs, LogArgs, LogFormat, RedisArgs},
    presence_state,
    redis_conn::RedisConnection,
    redis_keys,
};
use chat_nats::{
    events::{LiveSignalKind, TYPING_TTL_S},
    presence::{Presence, Status},
    subjects,
};
use chat_testkit::ServerProcess;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use presence::{Config, PresenceArgs};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The longest wait for something that must happen.
const WAIT: Duration = Duration::from_secs(10);
const GRACE_MS: u64 = 800;
const SWEEP_MS: u64 = 100;
/// Long enough for the grace and ten sweeps: how long "nothing happens" is watched.
const QUIET: Duration = Duration::from_millis(GRACE_MS + 10 * SWEEP_MS);

fn timing() -> PresenceArgs {
    PresenceArgs { conn_expiry_s: 60, offline_grace_ms: GRACE_MS, sweep_interval_ms: SWEEP_MS }
}

struct Harness {
    /// Kept for the test's life: dropping it stops the server.
    _nats_server: ServerProcess,
    redis_server: ServerProcess,
    nats: async_nats::Client,
    redis: RedisConnection,
    admin: Vec<SocketAddr>,
    running: Vec<presence::Running>,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with(timing(), 1, true).await
    }

    /// Real servers and `replicas` presence workers sharing them, started while Redis
    /// runs or not.
    async fn with(timing: PresenceArgs, replicas: usize, redis_up: bool) -> Harness {
        let nats_server = chat_testkit::start_nats().await;
        let mut redis_server = chat_testkit::start_redis().await;
        let nats_url = format!("nats://127.0.0.1:{}", nats_server.port());
        let redis_args = RedisArgs { redis_url: format!("redis://127.0.0.1:{}", redis_server.port()) };
        let redis = chat_core::connect::redis(&redis_args).await.unwrap_or_else(|e| panic!("redis: {e}"));
        if !redis_up {
            redis_server.kill();
        }
        let shutdown = CancellationToken::new();
        let (mut admin, mut running) = (Vec::new(), Vec::new());
        for _ in 0..replicas {
            let config = Config {
                log: LogArgs { log: "warn".into(), log_format: LogFormat::Pretty },
                nats: chat_core::config::NatsArgs {
                    nats_url: nats_url.clone(),
                    stream_replicas: 1,
                    command_partitions: chat_nats::streams::DEFAULT_COMMAND_PARTITIONS,
                    auth: Default::default(),
                },
                redis: redis_args.clone(),
                admin: AdminArgs { admin_addr: Some(([127, 0, 0, 1], 0).into()) },
                presence: timing.clone(),
            };
            let worker = presence::start(config, shutdown.clone()).await.unwrap_or_else(|e| panic!("presence: {e}"));
            admin.push(worker.admin_addr);
            running.push(worker);
        }
        let nats = async_nats::connect(nats_url).await.unwrap_or_else(|e| panic!("nats: {e}"));
        Harness { _nats_server: nats_server, redis_server, nats, redis, admin, running, shutdown }
    }

    /// Publishes a connection report as an edge does.
    async fn report(&self, user_id: &str, conn_id: &str, event: &str) {
        let payload = json!({ "v": 1, "user_id": user_id, "conn_id": conn_id, "event": event });
        self.nats
            .publish(subjects::presence_conn(user_id), payload.to_string().into())
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        self.nats.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    }

    /// Publishes a typing signal as an edge does.
    async fn typing(&self, chat_id: &str, user_id: &str, state: &str) {
        let payload = json!({ "type": "typing", "chat_id": chat_id, "user_id": user_id, "state": state });
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(chat_nats::headers::TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        self.nats
            .publish_with_headers(subjects::signal_typing(chat_id), headers, payload.to_string().into())
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        self.nats.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    }

    async fn subscribe(&self, subject: String) -> async_nats::Subscriber {
        let subscriber = self.nats.subscribe(subject).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
        self.nats.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
        subscriber
    }

    /// What the api answers for these users (retried while the test's own Redis
    /// connection notices a restarted server).
    async fn read(&self, user_ids: &[&str]) -> Vec<Presence> {
        let ids: Vec<String> = user_ids.iter().map(|id| (*id).to_owned()).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            match presence_state::read(&mut self.redis.clone(), &ids).await {
                Ok(presence) => return presence,
                Err(error) if Instant::now() < deadline && error.is_io_error() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("read: {error}"),
            }
        }
    }

    async fn in_online_set(&self, user_id: &str) -> bool {
        self.redis.clone().sismember(redis_keys::ONLINE, user_id).await.unwrap_or_else(|e| panic!("redis: {e}"))
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let response =
            reqwest::get(format!("http://{}{path}", self.admin[0])).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The next message on `subscriber` as JSON, waiting at most [`WAIT`].
async fn next_json(subscriber: &mut async_nats::Subscriber, what: &str) -> Value {
    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("subscription closed while waiting for {what}"));
    serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{what} is not JSON: {e}"))
}

/// The next presence announcement.
async fn next_presence(subscriber: &mut async_nats::Subscriber, what: &str) -> Presence {
    serde_json::from_value(next_json(subscriber, what).await).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Nothing arrives on `subscriber` for [`QUIET`].
async fn expect_quiet(subscriber: &mut async_nats::Subscriber, why: &str) {
    if let Ok(Some(message)) = tokio::time::timeout(QUIET, subscriber.next()).await {
        panic!("{why}, yet got {}", String::from_utf8_lossy(&message.payload));
    }
}

fn ms(at: Option<DateTime<Utc>>) -> i64 {
    at.map(|at| at.timestamp_millis()).unwrap_or_else(|| panic!("last_seen missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connection_announces_online_and_further_ones_nothing() {
    let h = Harness::start().await;
    let mut changes = h.subscribe(subjects::presence_changed("ann")).await;
    let before = Utc::now().timestamp_millis();
    h.report("ann", "c1", "connected").await;
    let announced = next_json(&mut changes, "the online announcement").await;
    let after = Utc::now().timestamp_millis();
    assert_eq!(announced["type"], "presence");
    assert_eq!(announced["user_id"], "ann");
    assert_eq!(announced["status"], "online");
    let seen = DateTime::parse_from_rfc3339(announced["last_seen"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("last_seen {announced}: {e}"))
        .timestamp_millis();
    assert!((before..=after).contains(&seen), "last_seen {seen} is the connection time ({before}..={after})");
    assert!(h.in_online_set("ann").await);
    assert_eq!(h.read(&["ann"]).await[0].status, Status::Online);

    h.report("ann", "c2", "connected").await;
    h.report("ann", "c1", "alive").await;
    h.report("ann", "c2", "alive").await;
    expect_quiet(&mut changes, "a second connection and heartbeats announce nothing").await;

    let never = h.read(&["nobody"]).await;
    assert_eq!(never, vec![Presence { user_id: "nobody".into(), status: Status::Offline, last_seen: None }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_disconnect_announces_offline_after_the_grace() {
    let h = Harness::start().await;
    let mut changes = h.subscribe(subjects::presence_changed("bob")).await;
    h.report("bob", "c1", "connected").await;
    h.report("bob", "c2", "connected").await;
    assert_eq!(next_presence(&mut changes, "online").await.status, Status::Online);

    h.report("bob", "c1", "disconnected").await;
    expect_quiet(&mut changes, "closing one of two connections announces nothing").await;
    assert_eq!(h.read(&["bob"]).await[0].status, Status::Online);

    let closed_at = Instant::now();
    let before = Utc::now().timestamp_millis();
    h.report("bob", "c2", "disconnected").await;
    let offline = next_presence(&mut changes, "the offline announcement").await;
    let waited = closed_at.elapsed();
    assert_eq!(offline.status, Status::Offline, "the next announcement is the offline one: {offline:?}");
    assert!(waited >= Duration::from_millis(GRACE_MS - 50), "offline only after the grace, not after {waited:?}");
    let seen = ms(offline.last_seen);
    assert!((before..before + 500).contains(&seen), "last_seen {seen} is when the last connection closed ({before})");

    assert!(!h.in_online_set("bob").await);
    let read = &h.read(&["bob"]).await[0];
    assert_eq!((read.status, ms(read.last_seen)), (Status::Offline, seen), "the api reads the same");
    expect_quiet(&mut changes, "offline is announced once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_within_the_grace_does_not_flap() {
    let h = Harness::start().await;
    let mut changes = h.subscribe(subjects::presence_changed("cat")).await;
    h.report("cat", "c1", "connected").await;
    assert_eq!(next_presence(&mut changes, "online").await.status, Status::Online);

    h.report("cat", "c1", "disconnected").await;
    tokio::time::sleep(Duration::from_millis(GRACE_MS / 4)).await;
    h.report("cat", "c2", "connected").await;
    expect_quiet(&mut changes, "a reconnect within the grace announces neither offline nor online").await;

    h.report("cat", "c2", "disconnected").await;
    let offline = next_presence(&mut changes, "offline after the last disconnect").await;
    assert_eq!(offline.status, Status::Offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_heartbeats_stop_goes_offline_by_itself() {
    let h = Harness::with(PresenceArgs { conn_expiry_s: 1, ..timing() }, 1, true).await;
    let mut changes = h.subscribe(subjects::presence_changed("dan")).await;
    h.report("dan", "c1", "connected").await;
    assert_eq!(next_presence(&mut changes, "online").await.status, Status::Online);

    // Heartbeats more often than the 1 s expiry keep the connection, for 2.5 s.
    let mut last_beat = Utc::now().timestamp_millis();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        last_beat = Utc::now().timestamp_millis();
        h.report("dan", "c1", "alive").await;
    }
    let silent_since = Instant::now();
    // Then the edge dies without goodbye.
    let offline = next_presence(&mut changes, "offline after the connection expired").await;
    let waited = silent_since.elapsed();
    assert_eq!(offline.status, Status::Offline, "no offline while heartbeats came: {offline:?}");
    assert!(waited >= Duration::from_millis(900), "offline once the connection expired, not after {waited:?}");
    assert!(waited < Duration::from_secs(4), "offline within expiry + sweep, not {waited:?}");
    let seen = ms(offline.last_seen);
    assert!((last_beat..last_beat + 500).contains(&seen), "last_seen {seen} is the last heartbeat ({last_beat})");
    assert!(!h.in_online_set("dan").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_throttled_remembered_and_forwarded() {
    let h = Harness::start().await;
    let mut live = h.subscribe(subjects::live("chat1", LiveSignalKind::Typing)).await;
    let mut redis = h.redis.clone();
    let key = redis_keys::typing("chat1", "eve");

    h.typing("chat1", "eve", "start").await;
    let message = tokio::time::timeout(WAIT, live.next()).await.ok().flatten().expect("the start is forwarded");
    let forwarded: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
    assert_eq!(forwarded, json!({ "type": "typing", "chat_id": "chat1", "user_id": "eve", "state": "start" }));
    let trace = message.headers.as_ref().and_then(|headers| headers.get(chat_nats::headers::TRACEPARENT));
    assert!(trace.is_some(), "the trace context travels with the signal");
    let ttl: i64 = redis.pttl(&key).await.unwrap_or_else(|e| panic!("{e}"));
    assert!((1..=TYPING_TTL_S as i64 * 1000).contains(&ttl), "the typing state expires by itself (pttl {ttl})");

    // Within the second: a repeated start is dropped, another typist is not, the stop passes.
    h.typing("chat1", "eve", "start").await;
    h.typing("chat1", "fay", "start").await;
    h.typing("chat1", "eve", "stop").await;
    let mut next = Vec::new();
    for _ in 0..2 {
        let signal = next_json(&mut live, "the next typing signal").await;
        next.push((signal["user_id"].clone(), signal["state"].clone()));
    }
    next.sort_by_key(|(user, _)| user.to_string());
    assert_eq!(next, vec![(json!("eve"), json!("stop")), (json!("fay"), json!("start"))], "eve's second start dropped");
    let exists: bool = redis.exists(&key).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!exists, "a stop deletes the typing state");

    // A stop that follows nothing forwarded is throttled like any signal.
    h.typing("chat1", "eve", "stop").await;
    // The throttle is a one-second expiry in Redis: only real time passes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    h.typing("chat1", "eve", "start").await;
    let signal = next_json(&mut live, "a start a second later").await;
    assert_eq!((&signal["user_id"], &signal["state"]), (&json!("eve"), &json!("start")), "the extra stop was dropped");

    loop {
        let exists: bool = redis.exists(&key).await.unwrap_or_else(|e| panic!("{e}"));
        if !exists {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(TYPING_TTL_S + 2), "the typing state did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(TYPING_TTL_S - 1), "it lasted about {TYPING_TTL_S} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_users_connecting_at_once_are_announced_once_each_across_two_replicas() {
    let h = Harness::with(timing(), 2, true).await;
    let mut changes = h.subscribe("presence.changed.*".to_owned()).await;
    // Two connections per user, so both replicas may see the same user at once.
    for n in 0..100 {
        for conn in ["a", "b"] {
            let payload = json!({ "v": 1, "user_id": format!("user{n}"), "conn_id": conn, "event": "connected" });
            h.nats
                .publish(subjects::presence_conn(&format!("user{n}")), payload.to_string().into())
                .await
                .unwrap_or_else(|e| panic!("publish: {e}"));
        }
    }
    h.nats.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    let mut users = std::collections::HashSet::new();
    for _ in 0..100 {
        let presence = next_presence(&mut changes, "an online announcement").await;
        assert_eq!(presence.status, Status::Online);
        assert!(users.insert(presence.user_id.clone()), "{} announced twice", presence.user_id);
    }
    expect_quiet(&mut changes, "exactly 100 announcements").await;

    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = reqwest_text(&format!("http://{}/metrics", h.admin[0])).await;
        if metrics.lines().any(|line| line == "chat_presence_online_users 100") {
            break;
        }
        assert!(Instant::now() < deadline, "the gauge did not reach 100:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reqwest_text(url: &str) -> String {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}")).text().await.unwrap_or_default()
}

/// Polls `/readyz` until its `status` is `wanted`.
async fn wait_readiness(h: &Harness, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = h.get_json("/readyz").await;
        if body["status"] == wanted {
            assert_eq!(status, 200, "{wanted} still serves traffic: {body}");
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz never said {wanted}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends heartbeats as an edge does (faster here) until the user is announced online.
async fn heartbeat_until_online(h: &Harness, user_id: &str, changes: &mut async_nats::Subscriber) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let online = loop {
        h.report(user_id, "c1", "alive").await;
        if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), changes.next()).await {
            break serde_json::from_slice::<Presence>(&message.payload).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(Instant::now() < deadline, "heartbeats did not make {user_id} online once Redis answered");
    };
    assert_eq!(online.status, Status::Online);
    assert_eq!(h.read(&[user_id]).await[0].status, Status::Online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_worker_degrades_and_recovers() {
    let mut h = Harness::start().await;
    let mut changes = h.subscribe(subjects::presence_changed("gus")).await;
    let mut live = h.subscribe(subjects::live("chat2", LiveSignalKind::Typing)).await;
    h.report("gus", "c1", "connected").await;
    assert_eq!(next_presence(&mut changes, "online").await.status, Status::Online);
    wait_readiness(&h, "ready").await;

    h.redis_server.kill();
    assert_eq!(h.get_json("/healthz").await, (200, json!({ "status": "ok" })));
    let degraded = wait_readiness(&h, "degraded").await;
    assert_eq!(degraded["checks"]["redis"]["status"], "down", "{degraded}");
    assert_eq!(degraded["checks"]["nats"]["status"], "ok", "{degraded}");

    // Typing still flows, unthrottled: both starts arrive.
    h.typing("chat2", "gus", "start").await;
    h.typing("chat2", "gus", "start").await;
    for _ in 0..2 {
        let signal = next_json(&mut live, "a typing signal while Redis is down").await;
        assert_eq!(signal["state"], "start");
    }

    h.redis_server.restart().await;
    wait_readiness(&h, "ready").await;
    // The restarted Redis lost everything; the edge's heartbeats bring the user back.
    heartbeat_until_online(&h, "gus", &mut changes).await;

    // And typing is throttled again.
    h.typing("chat2", "gus", "start").await;
    h.typing("chat2", "gus", "start").await;
    h.typing("chat2", "gus", "stop").await;
    assert_eq!(next_json(&mut live, "the first start").await["state"], "start");
    assert_eq!(next_json(&mut live, "the stop").await["state"], "stop", "the repeated start was throttled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_starts_without_redis_and_catches_up() {
    let mut h = Harness::with(timing(), 1, false).await;
    let mut changes = h.subscribe(subjects::presence_changed("hal")).await;
    assert_eq!(h.get_json("/healthz").await.0, 200);
    wait_readiness(&h, "degraded").await;
    h.report("hal", "c1", "connected").await;

    h.redis_server.restart().await;
    wait_readiness(&h, "ready").await;
    heartbeat_until_online(&h, "hal", &mut changes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_worker_promptly() {
    let mut h = Harness::start().await;
    h.shutdown.cancel();
    for running in h.running.drain(..) {
        tokio::time::timeout(Duration::from_secs(5), running.wait()).await.expect("the worker stops within 5 s");
    }
    assert!(reqwest::get(format!("http://{}/healthz", h.admin[0])).await.is_err(), "the admin port is closed");
}

/// The presence binary as it runs in a container: every line it writes, from start to
/// SIGTERM, is an ECS document (`chat_testkit::ecs`), and a presence change names its
/// user under `chat.user_id` and its status as text, not as an HTTP status code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_line_as_ecs() {
    let nats_server = chat_testkit::start_nats().await;
    let redis_server = chat_testkit::start_redis().await;
    let nats_url = format!("nats://127.0.0.1:{}", nats_server.port());
    let args = ["--nats-url", &nats_url, "--redis-url", &format!("redis://127.0.0.1:{}", redis_server.port())];
    let mut worker = chat_testkit::ecs::start_service(
        "presence",
        env!("CARGO_BIN_EXE_presence").into(),
        args.map(str::to_owned).to_vec(),
        "presence started",
    )
    .await;
    let nats = async_nats::connect(nats_url).await.unwrap_or_else(|e| panic!("nats: {e}"));
    let payload = json!({ "v": 1, "user_id": "ecs-user", "conn_id": "ecs-conn", "event": "connected" });
    nats.publish(subjects::presence_conn("ecs-user"), payload.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    nats.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    worker.wait_for_log("presence changed", WAIT).await;
    worker.terminate();

    let lines = chat_testkit::ecs::documents(&worker.log(), "presence");
    let changed = chat_testkit::ecs::find(&lines, "presence changed");
    assert_eq!(changed["chat.user_id"], "ecs-user");
    assert_eq!(changed["chat.status"], "online");
    assert_eq!(changed["log.level"], "debug");
}

//! The service on a Redis Cluster of three masters and three replicas (`CHAT_REDIS_URL`
//! a `redis+cluster://` seed list): presence, typing and the per-user message budget
//! work on it; then the master serving the test's keys is killed with SIGKILL, and
//! while its replica takes over, messages keep flowing, and afterwards presence, typing
//! and the budget work again.

use std::time::{Duration, Instant};

use chat_core::{
    config::RedisArgs,
    connect::LazyRedis,
    rate_limit::{SYNC_DELAY, UserBudget, Verdict},
    redis_conn::RedisConnection,
    redis_keys,
};
use chat_e2e::{Client, Stack, token, token_with_roles};
use chat_testkit::{NodeView, RedisCluster};
use futures::StreamExt;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The whole test, cluster start to last check, stays under this.
const TEST_BOUND: Duration = Duration::from_secs(60);
/// The longest the cluster may take to promote the replica of a killed master.
const FAILOVER_BOUND: Duration = Duration::from_secs(20);
/// How long presence, typing and the budget may take to work again once the cluster has
/// failed over (the presence worker notices within a second; offline takes the grace
/// and a sweep on top).
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// One message every this often while the master dies.
const SEND_EVERY: Duration = Duration::from_millis(50);
/// The longest a message may take from send to delivery, failover included.
const DELIVERY_BOUND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_a_redis_cluster_and_survives_a_master_failover() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start(3).await;
    let args = cluster.redis_args();
    let stack = Stack::start_with_redis(Some(args.clone())).await;
    let mut redis = chat_core::connect::redis(&args).await.unwrap_or_else(|e| panic!("cluster: {e}"));
    eprintln!("cluster and stack up after {:?}", started.elapsed());

    // The master to kill serves the chat's typing keys; the users whose keys matter are
    // chosen in its slots too.
    let chat = stack.create_chat(&token("s0"), json!({"type": "group", "title": "rc", "member_ids": []})).await;
    let victim = cluster.master_of(cluster.slot_of(&redis_keys::typing(&chat, "x")).await).await;
    let heir = cluster.replica_of(victim).await;
    let view = cluster.view(victim).await.unwrap_or_else(|| panic!("the victim answers"));
    let port = cluster.nodes[victim].port();
    let on_victim = |prefix: &'static str, count: usize| users_on(&cluster, &view, port, prefix, count);
    let sender = on_victim("sender", 1).await.remove(0);
    let presence_users = on_victim("p", 5).await;
    let budget_users = on_victim("b", 2).await;
    let members = json!({"user_ids": [sender, "r", "ta", "tb"]});
    let (status, body) =
        stack.call(Method::POST, &format!("/api/chats/{chat}/participants"), &token("s0"), Some(members)).await;
    assert!(status < 300, "adding members: {status} {body}");

    // Before the failover: presence, typing, the budget.
    // Staff see everyone's presence (a student sees chat mates' only).
    let staff = token_with_roles("w", &["teacher"]);
    let mut watcher = stack.connect(&staff).await;
    watcher.send_json(json!({"type": "presence.watch", "user_ids": presence_users})).await;
    for _ in &presence_users {
        assert_eq!(watcher.next_of("presence").await["status"], "offline");
    }
    let first = stack.connect(&token(&presence_users[0])).await;
    assert!(saw_presence(&mut watcher, &presence_users[0], "online", RECOVERY_BOUND).await, "online on the cluster");
    let path = format!("/api/users/presence?ids={}", presence_users[0]);
    let (status, rest) = stack.call(Method::GET, &path, &staff, None).await;
    assert_eq!((status, rest["items"][0]["status"].as_str()), (200, Some("online")), "{rest}");
    let mut typist = stack.connect(&token("ta")).await;
    let mut reader = stack.connect(&token("tb")).await;
    assert!(typing_works(&mut typist, &mut reader, &mut redis, &chat, RECOVERY_BOUND).await, "typing on the cluster");
    assert!(budget_is_shared(&args, &mut redis, &budget_users[0], RECOVERY_BOUND).await, "budget on the cluster");
    drop(first);

    // Steady traffic, then the master dies.
    let sending = stack.connect(&token(&sender)).await;
    let receiving = stack.connect(&token("r")).await;
    let stop = CancellationToken::new();
    let traffic = tokio::spawn(traffic(sending, receiving, chat.clone(), stop.clone()));
    let budget_key_seen = poll(Duration::from_secs(5), || {
        let key = redis_keys::user_budget(&sender, chat_core::rate_limit::MESSAGES);
        let mut redis = redis.clone();
        async move { redis.exists::<_, bool>(key).await.unwrap_or(false) }
    })
    .await;
    assert!(budget_key_seen, "the edge shares the sender's budget through the cluster");
    let killed = Instant::now();
    cluster.kill(victim);
    let failover = cluster.wait_for_failover(victim, heir, FAILOVER_BOUND).await;
    eprintln!("master {victim} killed; replica {heir} took over after {failover:?}");

    // After the failover: readiness, presence (online and offline), typing, the budget.
    let http = reqwest::Client::new();
    let ready = poll(RECOVERY_BOUND, || readyz(&http, &stack.api_admin_url)).await;
    assert!(ready, "the api reports ready again");
    eprintln!("api ready {:?} after the kill", killed.elapsed());
    let mut online = None;
    for user in &presence_users[1..] {
        let client = stack.connect(&token(user)).await;
        // A report that reached the worker while it still saw Redis down is dropped (the
        // next heartbeat would restore it): that is the blink; a fresh user tries again.
        if saw_presence(&mut watcher, user, "online", Duration::from_secs(3)).await {
            online = Some((user.clone(), client));
            break;
        }
    }
    let (user, client) = online.unwrap_or_else(|| panic!("nobody was seen online after the failover"));
    eprintln!("presence online again {:?} after the kill", killed.elapsed());
    drop(client);
    assert!(saw_presence(&mut watcher, &user, "offline", RECOVERY_BOUND).await, "offline after the failover");
    eprintln!("presence offline again {:?} after the kill", killed.elapsed());
    assert!(typing_works(&mut typist, &mut reader, &mut redis, &chat, RECOVERY_BOUND).await, "typing after it");
    assert!(budget_is_shared(&args, &mut redis, &budget_users[1], RECOVERY_BOUND).await, "budget after it");
    eprintln!("typing and the budget work again {:?} after the kill", killed.elapsed());

    stop.cancel();
    let report = traffic.await.unwrap_or_else(|e| panic!("traffic: {e}"));
    let slowest = report.slowest_sent_at.map(|at| {
        at.checked_duration_since(killed).map_or_else(|| -killed.duration_since(at).as_secs_f64(), |d| d.as_secs_f64())
    });
    eprintln!(
        "{} messages sent, {} acked, {} delivered; longest send-to-delivery {:?} (sent {:?} s after the kill), \
         longest gap between deliveries {:?}",
        report.sent,
        report.acked,
        report.delivered.len(),
        report.longest_delivery,
        slowest,
        report.longest_gap
    );
    let mut delivered = report.delivered.clone();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..report.sent).collect::<Vec<_>>(), "every message delivered once");
    assert_eq!(report.acked, report.sent, "every send acked");
    assert!(report.longest_delivery < DELIVERY_BOUND, "messages never stopped: {:?}", report.longest_delivery);
    assert!(started.elapsed() < TEST_BOUND, "took {:?}", started.elapsed());
}

/// `count` user ids `<prefix><n>` whose keys the master at `port` serves.
async fn users_on(cluster: &RedisCluster, view: &[NodeView], port: u16, prefix: &str, count: usize) -> Vec<String> {
    let ranges = view.iter().find(|node| node.port == port).map(|node| node.slots.clone()).unwrap_or_default();
    let mut users = Vec::new();
    for n in 0..1000 {
        let user = format!("{prefix}{n}");
        let slot = cluster.slot_of(&redis_keys::conns(&user)).await;
        if ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)) {
            users.push(user);
            if users.len() == count {
                return users;
            }
        }
    }
    panic!("no {count} users with prefix {prefix} on the master at port {port}")
}

/// Whether `watcher` gets `status` for `user` within `wait` (other frames are dropped).
async fn saw_presence(watcher: &mut Client, user: &str, status: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match watcher.try_next_json(left).await {
            Some(frame) if frame["type"] == "presence" && frame["user_id"] == user && frame["status"] == status => {
                return true;
            }
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

/// Whether a `start` of `typist` reaches `reader` and is kept in Redis (the presence
/// worker forwards typing unthrottled while it sees Redis down, so the key is what says
/// the cluster took part), within `wait`. A start is sent every 1.1 s (the throttle).
async fn typing_works(
    typist: &mut Client,
    reader: &mut Client,
    redis: &mut RedisConnection,
    chat: &str,
    wait: Duration,
) -> bool {
    let deadline = Instant::now() + wait;
    let key = redis_keys::typing(chat, "ta");
    while Instant::now() < deadline {
        typist.send_json(json!({"type": "typing", "chat_id": chat, "state": "start"})).await;
        let sent = Instant::now();
        let mut forwarded = false;
        while let Some(frame) = reader.try_next_json(Duration::from_millis(1100).saturating_sub(sent.elapsed())).await {
            forwarded |= frame["type"] == "typing" && frame["user_id"] == "ta" && frame["state"] == "start";
            if forwarded {
                break;
            }
        }
        let kept = redis.exists::<_, bool>(&key).await.unwrap_or(false);
        if forwarded && kept {
            typist.send_json(json!({"type": "typing", "chat_id": chat, "state": "stop"})).await;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1100).saturating_sub(sent.elapsed())).await;
    }
    false
}

/// Whether two budgets (two edge or api replicas) with buckets of 10 on the cluster
/// share `user`'s bucket: 8 taken on the first leave the second 2. One refill a second,
/// so that nothing comes back during a check; retried while it fails (the cluster
/// failing over) until `wait`.
async fn budget_is_shared(args: &RedisArgs, redis: &mut RedisConnection, user: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let replica = || UserBudget::messages(LazyRedis::new(args).unwrap_or_else(|e| panic!("{e}")), 1, 10);
    let key = redis_keys::user_budget(user, chat_core::rate_limit::MESSAGES);
    while Instant::now() < deadline {
        let (first, second) = (replica(), replica());
        let started = Instant::now();
        let admitted = (0..8).filter(|_| first.take(user) == Verdict::Allowed).count();
        let shared = admitted == 8
            && poll(Duration::from_millis(400), || owes(redis, &key, 8)).await
            && second.take(user) == Verdict::Allowed
            && poll(Duration::from_millis(300), || owes(redis, &key, 9)).await;
        // The second replica records Redis's answer a moment after Redis has it.
        tokio::time::sleep(SYNC_DELAY * 4).await;
        let rest = (0..3).filter(|_| second.take(user) == Verdict::Allowed).count();
        if shared && rest == 1 && started.elapsed() < Duration::from_millis(900) {
            return true;
        }
        let _ = redis.del::<_, i64>(&key).await;
    }
    false
}

/// Whether the bucket at `key` (refilled once a second) owes about `count` messages:
/// it is full again between `count - 1` and `count` seconds from now.
async fn owes(redis: &RedisConnection, key: &str, count: u64) -> bool {
    let Some(full_at_us) = redis.clone().get::<_, Option<u64>>(key).await.ok().flatten() else { return false };
    let owed_us = full_at_us.saturating_sub(unix_micros());
    (count - 1) * 1_000_000 < owed_us && owed_us <= count * 1_000_000
}

/// Whether `check` holds within `wait`, asked every 50 ms.
async fn poll<F, Fut>(wait: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz(http: &reqwest::Client, admin_url: &str) -> bool {
    let Ok(response) = http.get(format!("{admin_url}/readyz")).send().await else { return false };
    response.json::<Value>().await.is_ok_and(|body| body["status"] == "ready")
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// What the traffic saw.
struct Report {
    sent: usize,
    acked: usize,
    /// The index of each delivered message, in delivery order.
    delivered: Vec<usize>,
    longest_delivery: Duration,
    longest_gap: Duration,
    /// When the slowest message was sent.
    slowest_sent_at: Option<Instant>,
}

/// Sends a message every [`SEND_EVERY`] from `sending` until `stop`, and collects what
/// `receiving` gets, until everything sent arrived (or [`DELIVERY_BOUND`] after `stop`).
async fn traffic(mut sending: Client, mut receiving: Client, chat: String, stop: CancellationToken) -> Report {
    let mut ticks = tokio::time::interval(SEND_EVERY);
    let mut sent_at: Vec<Instant> = Vec::new();
    let (mut acked, mut delivered) = (0, Vec::new());
    let (mut longest_delivery, mut longest_gap, mut last) = (Duration::ZERO, Duration::ZERO, None::<Instant>);
    let mut slowest_sent_at = None;
    let mut drain_until = None;
    loop {
        tokio::select! {
            _ = ticks.tick(), if drain_until.is_none() => {
                sending.send_message(&chat, &format!("m{}", sent_at.len()), &format!("message {}", sent_at.len())).await;
                sent_at.push(Instant::now());
            }
            () = stop.cancelled(), if drain_until.is_none() => drain_until = Some(Instant::now() + DELIVERY_BOUND),
            () = tokio::time::sleep(Duration::from_millis(100)), if drain_until.is_some() => {}
            frame = sending.socket.next() => {
                if frame_json(frame).is_some_and(|f| f["type"] == "ack") {
                    acked += 1;
                }
            }
            frame = receiving.socket.next() => {
                let Some(frame) = frame_json(frame) else { continue };
                if frame["type"] != "msg.created" {
                    continue;
                }
                let index = frame["message"]["client_msg_id"]
                    .as_str()
                    .and_then(|id| id.strip_prefix('m'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("unexpected message {frame}"));
                let now = Instant::now();
                if now - sent_at[index] > longest_delivery {
                    longest_delivery = now - sent_at[index];
                    slowest_sent_at = Some(sent_at[index]);
                }
                longest_gap = longest_gap.max(last.map_or(Duration::ZERO, |last| now - last));
                last = Some(now);
                delivered.push(index);
            }
        }
        if let Some(until) = drain_until
            && ((delivered.len() == sent_at.len() && acked == sent_at.len()) || Instant::now() > until)
        {
            break;
        }
    }
    Report { sent: sent_at.len(), acked, delivered, longest_delivery, longest_gap, slowest_sent_at }
}

/// A text frame as JSON; anything else (pings, binary) as `None`.
fn frame_json(frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Option<Value> {
    match frame {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).ok(),
        Some(Ok(Message::Close(close))) => panic!("connection closed: {close:?}"),
        Some(Ok(_)) => None,
        Some(Err(error)) => panic!("read failed: {error}"),
        None => panic!("connection ended"),
    }
}

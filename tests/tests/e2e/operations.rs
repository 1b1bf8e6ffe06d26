//! Operations end to end: one trace id through the edge, persister and notifier logs;
//! metrics that move with traffic; readiness that follows a dependency down and back.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use chat_e2e::{Stack, token};
use serde_json::{Value, json};

/// Collects every log line of the process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let text = self.0.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_follows_a_message_through_every_worker() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("ws_edge=debug,persister=debug,notifier=debug")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap_or_else(|e| panic!("{e}"));

    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;
    let mut ann = stack.connect(&token("ann")).await;
    ann.send_message(&chat, "traced", "follow me").await;
    ann.next_of("msg.created").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let lines = captured.lines();
    let published = lines
        .iter()
        .find(|l| l["message"] == "command published" && l["command"] == "msg.send")
        .unwrap_or_else(|| panic!("no edge line in {} lines", lines.len()));
    let trace = published["trace_id"].as_str().unwrap_or_default();
    assert_eq!(trace.len(), 32, "{published}");
    let targets: Vec<&str> =
        lines.iter().filter(|l| l["trace_id"] == trace).filter_map(|l| l["target"].as_str()).collect();
    for worker in ["ws_edge", "persister", "notifier"] {
        assert!(targets.iter().any(|t| t.starts_with(worker)), "{worker} did not log trace {trace}: {targets:?}");
    }
}

async fn metric(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = http.get(format!("{url}/metrics")).send().await.unwrap_or_else(|e| panic!("{e}")).text().await;
    text.unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_messages_flow() {
    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    let edge = stack.edge_admin_url.clone();
    let chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;
    let mut ann = stack.connect(&token("ann")).await;
    let mut bob = stack.connect(&token("bob")).await;
    assert_eq!(metric(&http, &edge, "chat_ws_connections").await, 2.0);
    let sent_before = metric(&http, &edge, "chat_ws_events_sent_total").await;
    for i in 0..5 {
        ann.send_message(&chat, &format!("m{i}"), "counted").await;
    }
    bob.collect_created(&chat, 5).await;
    ann.collect_created(&chat, 5).await;
    assert!(metric(&http, &edge, "chat_ws_events_sent_total").await >= sent_before + 10.0);
    assert!(metric(&http, &edge, "chat_ws_commands_total{outcome=\"accepted\",type=\"msg.send\"}").await >= 5.0);
    // One sampled socket per event: five events, five observations.
    assert!(metric(&http, &edge, "chat_delivery_seconds_count").await >= 5.0);
    // In-process, every binary shares one registry: the persister's metrics are here too.
    assert!(
        metric(&http, &edge, "chat_persister_commands_total{command=\"msg.send\",outcome=\"stored\"}").await >= 5.0
    );
    assert!(metric(&http, &edge, "chat_persist_seconds_count").await >= 5.0);
    assert!(metric(&http, &edge, "chat_persister_batch_size_count").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_mongodb_and_redis_down_and_back() {
    let mut stack = Stack::start().await;
    let http = reqwest::Client::new();
    let api_admin = stack.api_admin_url.clone();
    let ready = |http: reqwest::Client, url: String| async move {
        let response = http.get(format!("{url}/readyz")).send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or_default())
    };
    assert_eq!(ready(http.clone(), api_admin.clone()).await.0, 200);

    stack.servers.redis.kill();
    let (status, body) = ready(http.clone(), api_admin.clone()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "Redis down degrades: {body}");
    stack.servers.redis.restart().await;

    let store = stack.servers.mongo.as_mut().unwrap_or_else(|| panic!("the local store runs in this test"));
    store.terminate();
    let (status, body) = ready(http.clone(), api_admin.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["mongodb"]["status"], "down");
    let store = stack.servers.mongo.as_mut().unwrap_or_else(|| panic!("store"));
    store.restart().await;
    let mut back = false;
    for _ in 0..50 {
        let (status, body) = ready(http.clone(), api_admin.clone()).await;
        if status == 200 && body["status"] == "ready" {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "ready again once MongoDB and Redis are back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persister_stopped_under_load_loses_and_duplicates_nothing() {
    let mut stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;
    let mut ann = stack.connect(&token("ann")).await;
    let mut bob = stack.connect(&token("bob")).await;
    for i in 0..200 {
        ann.send_message(&chat, &format!("load-{i}"), &format!("{i}")).await;
        if i == 60 {
            // What SIGTERM does: stop intake, finish or leave the batch, exit.
            stack.stop_persister().await;
        }
        if i == 120 {
            stack.start_persister().await;
        }
    }
    let received = bob.collect_created(&chat, 200).await;
    let texts: Vec<String> = received.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect();
    assert_eq!(texts, (0..200).map(|i| i.to_string()).collect::<Vec<_>>(), "all, in order, once");
    bob.expect_silence(Duration::from_millis(500)).await;
}

//! A first measurement of the pipeline, not a pass/fail test: run it on purpose with
//! `cargo nextest run -p chat-e2e --release --run-ignored only --no-capture bench`.
//! Ten members of one group each send 200 messages as fast as acks allow; every member
//! receives all 2,000. Prints messages/s, deliveries/s and send→deliver latency under that
//! load, then the latency of 300 messages sent one at a time.

use std::{collections::HashMap, time::Instant};

use chat_e2e::{Stack, token};
use serde_json::json;

const MEMBERS: usize = 10;
const PER_SENDER: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints figures"]
async fn bench_group_fan_out() {
    let stack = Stack::start().await;
    let users: Vec<String> = (0..MEMBERS).map(|i| format!("b{i}")).collect();
    let chat = stack
        .create_chat(&token(&users[0]), json!({"type": "group", "title": "bench", "member_ids": users[1..]}))
        .await;
    let mut clients = Vec::new();
    for user in &users {
        clients.push(stack.connect(&token(user)).await);
    }
    let total = MEMBERS * PER_SENDER;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (sender_index, mut client) in clients.into_iter().enumerate() {
        let chat = chat.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent_at = HashMap::new();
            let mut latencies = Vec::with_capacity(total);
            let mut next = 0;
            let mut received = 0;
            while received < total {
                // Keep at most 20 of our own sends in flight.
                while next < PER_SENDER && next - latencies.len() < 20 {
                    let key = format!("s{sender_index}-{next}");
                    sent_at.insert(key.clone(), Instant::now());
                    client.send_message(&chat, &key, "benchmark message").await;
                    next += 1;
                }
                let frame = client.next_json().await;
                if frame["type"] == "msg.created" {
                    received += 1;
                    let at = Instant::now();
                    if let Some(sent) = frame["message"]["client_msg_id"].as_str().and_then(|k| sent_at.get(k)) {
                        latencies.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "messages: {total} in {elapsed:.2}s = {:.0} msg/s persisted; deliveries: {} = {:.0}/s",
        total as f64 / elapsed,
        total * MEMBERS,
        (total * MEMBERS) as f64 / elapsed
    );
    println!(
        "own send -> own msg.created latency (ms): p50 {:.2} p99 {:.2} max {:.2} (n={})",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        latencies.len()
    );
    assert_eq!(latencies.len(), total, "every sender saw each of its messages");

    // Unloaded latency: one message at a time, each to all ten members.
    let mut clients = Vec::new();
    for user in &users {
        clients.push(stack.connect(&token(user)).await);
    }
    let mut single = Vec::new();
    for i in 0..300 {
        let key = format!("solo-{i}");
        let sent = Instant::now();
        clients[0].send_message(&chat, &key, "one at a time").await;
        loop {
            let frame = clients[0].next_json().await;
            if frame["type"] == "msg.created" && frame["message"]["client_msg_id"] == key.as_str() {
                break;
            }
        }
        single.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    single.sort_by(f64::total_cmp);
    let pick = |q: f64| single[((single.len() as f64 - 1.0) * q) as usize];
    println!(
        "one message at a time, send -> msg.created (ms): p50 {:.2} p99 {:.2} min {:.2} max {:.2} (n={})",
        pick(0.5),
        pick(0.99),
        pick(0.0),
        pick(1.0),
        single.len()
    );
}

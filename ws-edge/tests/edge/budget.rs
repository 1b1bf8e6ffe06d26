//! The per-user message budget is shared by every replica through Redis, though each
//! replica decides without waiting for it.

use chat_core::{
    config::RedisArgs,
    connect::LazyRedis,
    rate_limit::{SYNC_DELAY, UserMessageBudget, Verdict},
};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget() {
    let redis_server = chat_testkit::start_redis().await;
    let args = RedisArgs { redis_url: format!("redis://127.0.0.1:{}", redis_server.port()) };
    let replica = || UserMessageBudget::new(LazyRedis::new(&args).unwrap_or_else(|e| panic!("{e}")), 10);
    let (first, second) = (replica(), replica());
    // Start right after a window boundary so that both replicas count in one window.
    let now_ms = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis((1000 - now_ms.rem_euclid(1000) + 20) as u64)).await;
    let allowed = (0..8).filter(|_| first.take("u1") == Verdict::Allowed).count();
    assert_eq!(allowed, 8, "within the budget on one replica");
    tokio::time::sleep(SYNC_DELAY * 20).await;
    // The second replica learns the window's total when it reports its own first send.
    assert_eq!(second.take("u1"), Verdict::Allowed);
    tokio::time::sleep(SYNC_DELAY * 20).await;
    let allowed = (0..3).filter(|_| second.take("u1") == Verdict::Allowed).count();
    assert_eq!(allowed, 1, "the other replica counts the first one's eight");
    assert!(matches!(second.take("u1"), Verdict::Limited { retry_after_ms } if retry_after_ms <= 1000));
    assert_eq!(second.take("u2"), Verdict::Allowed, "another user's budget is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_still_counts_its_own() {
    let args = RedisArgs { redis_url: "redis://127.0.0.1:1".into() };
    let budget = UserMessageBudget::new(LazyRedis::new(&args).unwrap_or_else(|e| panic!("{e}")), 3);
    let now_ms = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis((1000 - now_ms.rem_euclid(1000) + 20) as u64)).await;
    let allowed = (0..5).filter(|_| budget.take("u1") == Verdict::Allowed).count();
    assert_eq!(allowed, 3);
}

//! The per-user message budget is a token bucket shared by every replica through
//! Redis, though each replica decides without waiting for it.

use chat_core::{
    config::RedisArgs,
    connect::LazyRedis,
    rate_limit::{SYNC_DELAY, UserBudget, Verdict},
};

use std::time::Instant;

use super::*;

fn replica(args: &RedisArgs, per_second: u32, burst: u32) -> UserBudget {
    UserBudget::messages(LazyRedis::new(args).unwrap_or_else(|e| panic!("{e}")), per_second, burst)
}

fn admitted(budget: &UserBudget, user: &str, tries: usize) -> usize {
    (0..tries).filter(|_| budget.take(user) == Verdict::Allowed).count()
}

/// Sleeps until `offset_ms` past the next whole second (negative: before it).
async fn until_second_boundary(offset_ms: i64) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut wait = 1000 - now_ms.rem_euclid(1000) + offset_ms;
    if wait < 0 {
        wait += 1000;
    }
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_bucket() {
    let redis_server = chat_testkit::start_redis().await;
    let args = RedisArgs { redis_url: format!("redis://127.0.0.1:{}", redis_server.port()) };
    // One refill a second: nothing comes back while the test runs.
    let (first, second) = (replica(&args, 1, 10), replica(&args, 1, 10));
    assert_eq!(admitted(&first, "u1", 8), 8, "within the burst on one replica");
    tokio::time::sleep(SYNC_DELAY * 20).await;
    // The second replica learns the bucket's level when it reports its own first send.
    assert_eq!(second.take("u1"), Verdict::Allowed);
    tokio::time::sleep(SYNC_DELAY * 20).await;
    assert_eq!(admitted(&second, "u1", 3), 1, "the other replica counts the first one's eight");
    assert!(matches!(second.take("u1"), Verdict::Limited { retry_after_ms } if retry_after_ms <= 1000));
    assert_eq!(second.take("u2"), Verdict::Allowed, "another user's budget is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_a_second_boundary_is_refused() {
    let redis_server = chat_testkit::start_redis().await;
    let args = RedisArgs { redis_url: format!("redis://127.0.0.1:{}", redis_server.port()) };
    let (first, second) = (replica(&args, 10, 10), replica(&args, 10, 10));
    // One refill every 100 ms: an attempt that the scheduler stretched past that proves
    // nothing and is made again, with a fresh user.
    for attempt in 0..5 {
        let user = format!("u{attempt}");
        until_second_boundary(-20).await;
        let burst_at = Instant::now();
        let before = chrono::Utc::now().timestamp();
        assert_eq!(admitted(&first, &user, 10), 10, "the burst, 20 ms before the boundary");
        until_second_boundary(5).await;
        let same_replica = admitted(&first, &user, 10);
        let crossed = chrono::Utc::now().timestamp() > before;
        // The other replica admits its first one before it hears from Redis (the
        // documented cross-replica allowance), and nothing once it has.
        let other_first = admitted(&second, &user, 1);
        tokio::time::sleep(SYNC_DELAY * 6).await;
        let other_after = admitted(&second, &user, 10);
        if !crossed || burst_at.elapsed() >= Duration::from_millis(90) {
            eprintln!("attempt {attempt} took {:?}; again", burst_at.elapsed());
            continue;
        }
        assert_eq!(same_replica, 0, "the fixed windows let ten more through right after the boundary");
        assert!(other_first <= 1, "{other_first}");
        assert_eq!(other_after, 0, "the other replica shares the bucket through Redis");
        return;
    }
    panic!("no attempt ran within one refill interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_still_counts_its_own() {
    let args = RedisArgs { redis_url: "redis://127.0.0.1:1".into() };
    let budget = replica(&args, 1, 3);
    assert_eq!(admitted(&budget, "u1", 5), 3);
    // Its reports fail and leave the local count in force.
    tokio::time::sleep(SYNC_DELAY * 40).await;
    assert_eq!(admitted(&budget, "u1", 2), 0);
}

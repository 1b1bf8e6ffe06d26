//! The sweeper: every few seconds, for each user in the online set, drops expired
//! connections (their edge died without goodbye) and announces offline those with none
//! left once the grace since their last connection has passed. It is the only place
//! that announces offline. Every replica sweeps; the per-user script lets one win.

use std::{sync::Arc, time::Duration};

use chat_nats::presence::Status;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    announce::announce,
    conn_state::{ConnState, Swept},
    metrics,
    redis_link::RedisLink,
};

/// Users swept concurrently (the calls share one pipelined Redis connection).
const CONCURRENCY: usize = 64;

/// What sweeping needs.
pub struct Sweeper {
    /// Redis, when it answers.
    pub link: Arc<RedisLink>,
    /// Where offline transitions are announced.
    pub nats: async_nats::Client,
    /// The per-user Redis steps.
    pub state: Arc<ConnState>,
    /// Time between sweeps.
    pub interval: Duration,
    /// How long after their last connection a user is announced offline, in ms.
    pub grace_ms: i64,
}

impl Sweeper {
    /// Sweeps every `interval` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => self.sweep_all().await,
            }
        }
    }

    /// One pass over the online set, page by page, then the gauge.
    async fn sweep_all(&self) {
        let state = &self.state;
        let mut cursor = 0;
        loop {
            let Some((next, users)) =
                self.link.call(|mut redis| async move { state.online_page(&mut redis, cursor).await }).await
            else {
                return;
            };
            futures::stream::iter(users)
                .for_each_concurrent(CONCURRENCY, |user_id| async move { self.sweep_user(&user_id).await })
                .await;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if let Some(count) = self.link.call(|mut redis| async move { state.online_count(&mut redis).await }).await {
            metrics::ONLINE_USERS.set(count);
        }
    }

    /// Sweeps one user and announces them offline if they just went.
    async fn sweep_user(&self, user_id: &str) {
        let (state, grace_ms) = (&self.state, self.grace_ms);
        let now_ms = Utc::now().timestamp_millis();
        let Some(swept) =
            self.link.call(|mut redis| async move { state.sweep(&mut redis, user_id, now_ms, grace_ms).await }).await
        else {
            return;
        };
        if matches!(swept, Swept::WentOffline { .. } | Swept::NotOnline) {
            // Left in the set on failure: the next sweep finds them not online and retries.
            self.link.call(|mut redis| async move { state.forget_online(&mut redis, user_id).await }).await;
        }
        if let Swept::WentOffline { last_seen_ms } = swept {
            announce(&self.nats, user_id, Status::Offline, DateTime::from_timestamp_millis(last_seen_ms)).await;
        }
    }
}

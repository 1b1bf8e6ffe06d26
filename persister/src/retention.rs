//! Retention of what moderation keeps (`CHAT_RETENTION_DAYS`): once a day by default,
//! each replica purges `message_history` records older than the configured days and
//! blanks any text a deleted message older than that still holds. Off (0) by default:
//! everything is kept. Purging is idempotent, so replicas need not agree on who runs it.

use std::time::Duration;

use chat_store::{Store, StoreError, message_history::Purged};
use chrono::{DateTime, Utc};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// How long moderation records are kept.
#[derive(Debug, Clone, Default, Args)]
pub struct RetentionArgs {
    /// Days after which message history records and deleted messages' texts are purged;
    /// 0 keeps them forever.
    #[arg(long = "retention-days", env = "CHAT_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u32,
    /// Seconds between two purges.
    #[arg(long = "retention-every-s", env = "CHAT_RETENTION_EVERY_S", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_every_s: u64,
}

/// Purges what is older than `days` as of `now` (a parameter, so tests need not wait).
pub async fn purge(store: &Store, now: DateTime<Utc>, days: u32) -> Result<Purged, StoreError> {
    store.purge_history(now - chrono::Duration::days(i64::from(days))).await
}

/// Starts the periodic purge, unless retention is off; it stops with `shutdown`.
pub fn spawn(store: Store, args: &RetentionArgs, shutdown: CancellationToken) {
    let days = args.retention_days;
    if days == 0 {
        return;
    }
    let every = Duration::from_secs(args.retention_every_s);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => match purge(&store, Utc::now(), days).await {
                    Ok(purged) => tracing::info!(
                        days,
                        history_records = purged.history_records,
                        deleted_texts = purged.deleted_texts,
                        "retention purge"
                    ),
                    Err(error) => tracing::warn!(%error, "retention purge failed; next try at the next interval"),
                },
            }
        }
    });
}

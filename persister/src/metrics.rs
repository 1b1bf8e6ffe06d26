//! The persister's Prometheus metrics (names pinned in `operations.md`).

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, exponential_buckets, register_histogram,
    register_int_counter, register_int_counter_vec, register_int_gauge,
};

/// Commands handled, by command and outcome (`stored`, `duplicate`, `rejected`, `malformed`, `retried`).
pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        Opts::new("chat_persister_commands_total", "Commands handled by the persister"),
        &["command", "outcome"]
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Commands per batch.
pub static BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        HistogramOpts::new("chat_persister_batch_size", "Commands per persister batch")
            .buckets(exponential_buckets(1.0, 2.0, 11).unwrap_or_default())
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Time from the command's publication to its storage.
pub static PERSIST_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        HistogramOpts::new("chat_persist_seconds", "Time from a command's publication to its storage in MongoDB")
            .buckets(exponential_buckets(0.0001, 2.0, 18).unwrap_or_default())
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Partitions of `CHAT_CMD` this replica serves now.
pub static PARTITIONS_OWNED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("chat_persister_partitions_owned", "CHAT_CMD partitions this persister replica serves")
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Partitions this replica claimed (at start, after another replica died or left).
pub static PARTITION_CLAIMS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_persister_partition_claims_total", "CHAT_CMD partitions claimed by this replica")
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Leases this replica lost without handing them over (a pause, a network split).
pub static PARTITION_LOSSES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_persister_partition_losses_total", "CHAT_CMD partition leases this replica lost")
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Leases not renewed in time because the bucket did not answer: the pipeline waits.
pub static PARTITION_SUSPENSIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persister_partition_suspensions_total",
        "CHAT_CMD partitions suspended because their lease could not be renewed in time"
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Suspended partitions that got their lease back with their consumer untouched.
pub static PARTITION_RESUMES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persister_partition_resumes_total",
        "Suspended CHAT_CMD partitions that went on without a consumer reset"
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Compare-and-set reservations that found the chat's `last_seq` moved by someone
/// else (a previous owner still writing, a cache that was stale) and read it again.
pub static HEAD_CONFLICTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persister_head_conflicts_total",
        "Seq reservations that found the chat's last_seq moved by another writer"
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Registers every metric so that `/metrics` lists them before the first command.
pub fn register() {
    LazyLock::force(&COMMANDS);
    LazyLock::force(&BATCH_SIZE);
    LazyLock::force(&PERSIST_SECONDS);
    LazyLock::force(&PARTITIONS_OWNED);
    LazyLock::force(&HEAD_CONFLICTS);
    LazyLock::force(&PARTITION_CLAIMS);
    LazyLock::force(&PARTITION_LOSSES);
    LazyLock::force(&PARTITION_SUSPENSIONS);
    LazyLock::force(&PARTITION_RESUMES);
}

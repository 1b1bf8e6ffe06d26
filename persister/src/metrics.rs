//! The persister's Prometheus metrics (names pinned in `operations.md`).

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, Opts, exponential_buckets, register_histogram, register_int_counter_vec,
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

/// Registers every metric so that `/metrics` lists them before the first command.
pub fn register() {
    LazyLock::force(&COMMANDS);
    LazyLock::force(&BATCH_SIZE);
    LazyLock::force(&PERSIST_SECONDS);
}

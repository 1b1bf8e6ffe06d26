//! The notifier's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{IntCounter, register_int_counter};

/// Push requests published.
pub static PUSHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_notifier_push_requests_total", "Push requests published for offline members")
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Registers every metric so that `/metrics` lists them from the start.
pub fn register() {
    LazyLock::force(&PUSHES);
}

//! The edge's Prometheus metrics (names pinned in `operations.md`).

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounterVec, IntGauge, exponential_buckets, histogram_opts, opts, register_histogram,
    register_int_counter_vec, register_int_gauge,
};

/// Open WebSocket connections.
pub static CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(opts!("chat_ws_connections", "Open WebSocket connections"))
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Commands received, by type and outcome (`accepted`, `invalid`, `rejected`, `failed`, `rate_limited`).
pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(opts!("chat_ws_commands_total", "WebSocket commands received"), &["type", "outcome"])
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Events queued to sockets, by type.
pub static EVENTS_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(opts!("chat_ws_events_sent_total", "Events queued to sockets"), &["type"])
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Frames dropped, by reason.
pub static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(opts!("chat_ws_dropped_total", "Frames dropped instead of sent"), &["reason"])
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Time from the persister storing an event to the edge writing it to a socket.
pub static DELIVERY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(histogram_opts!(
        "chat_delivery_seconds",
        "Time from persistence to the socket write",
        exponential_buckets(0.0001, 2.0, 18).unwrap_or_default()
    ))
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Registers every metric so that `/metrics` lists them before the first connection.
pub fn register() {
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&COMMANDS);
    LazyLock::force(&EVENTS_SENT);
    LazyLock::force(&DROPPED);
    LazyLock::force(&DELIVERY_SECONDS);
}

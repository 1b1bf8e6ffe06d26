//! The edge's Prometheus metrics (names pinned in `operations.md`).

use std::sync::LazyLock;

use chat_nats::events::{EventKind, LiveSignalKind};
use strum::VariantArray;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, IntGauge, exponential_buckets, histogram_opts, opts, register_histogram,
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

/// Frames dropped because the queue was full (typing and presence only).
pub static DROPPED_QUEUE_FULL: LazyLock<IntCounter> = LazyLock::new(|| DROPPED.with_label_values(&["queue_full"]));

/// Chat events dropped because the feed had delivered their seq already (a publish the
/// persister retried or replayed, which JetStream stored once but NATS delivered again).
pub static DROPPED_REPUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| DROPPED.with_label_values(&["republished"]));

/// Frames dropped because their connection was closed as a slow consumer.
pub static DROPPED_SLOW_CONSUMER: LazyLock<IntCounter> =
    LazyLock::new(|| DROPPED.with_label_values(&["slow_consumer"]));

/// Event kinds with a counter resolved once, so a delivery costs no label lookup: the
/// bus's event and live signal names, `presence`, and `other` (last) for the rest.
static EVENT_KINDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let events = EventKind::VARIANTS.iter().map(|kind| kind.name());
    let signals = LiveSignalKind::VARIANTS.iter().map(|kind| kind.name());
    events.chain(signals).chain(["presence", "other"]).collect()
});

static EVENT_COUNTERS: LazyLock<Vec<IntCounter>> =
    LazyLock::new(|| EVENT_KINDS.iter().map(|kind| EVENTS_SENT.with_label_values(&[kind])).collect());

/// The `chat_ws_events_sent_total` counter of an event kind; unknown kinds count as `other`.
pub fn events_sent(kind: &str) -> &'static IntCounter {
    let index = EVENT_KINDS.iter().position(|known| *known == kind).unwrap_or(EVENT_KINDS.len() - 1);
    &EVENT_COUNTERS[index]
}

/// Time from the persister storing an event to the edge writing it to a socket, for one
/// sampled socket per event (the last one it was queued to), so that a fan-out to a
/// hundred sockets costs one histogram update, not a hundred.
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
    LazyLock::force(&DROPPED_QUEUE_FULL);
    LazyLock::force(&DROPPED_SLOW_CONSUMER);
    LazyLock::force(&EVENT_COUNTERS);
}

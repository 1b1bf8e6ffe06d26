//! The presence worker's Prometheus metrics (`chat_presence_online_users` is pinned in
//! `operations.md`; the counters help to see what the worker drops and why).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts, opts, register_int_counter_vec, register_int_gauge};

/// Users online on any edge: the size of the online set, refreshed by every sweep.
pub static ONLINE_USERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(opts!("chat_presence_online_users", "Users with at least one connection"))
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Transitions announced on `presence.changed.*`, by status (`online`, `offline`).
pub static ANNOUNCEMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        Opts::new("chat_presence_announcements_total", "Presence transitions announced"),
        &["status"]
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Connection reports handled, by outcome (`applied`, `malformed`, `redis_unavailable`).
pub static REPORTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        Opts::new("chat_presence_reports_total", "Connection reports from the edges, by outcome"),
        &["outcome"]
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Typing signals handled, by outcome (`forwarded`, `throttled`, `unthrottled`, `malformed`).
pub static TYPING: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(Opts::new("chat_presence_typing_total", "Typing signals, by outcome"), &["outcome"])
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Registers every metric so that `/metrics` lists them before the first event.
pub fn register() {
    LazyLock::force(&ONLINE_USERS);
    LazyLock::force(&ANNOUNCEMENTS);
    LazyLock::force(&REPORTS);
    LazyLock::force(&TYPING);
}

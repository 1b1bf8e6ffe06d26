//! The api's Prometheus metrics (names pinned in `operations.md`).

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounterVec, exponential_buckets, histogram_opts, opts, register_histogram_vec,
    register_int_counter_vec,
};

/// Requests by route template, method and status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(opts!("chat_http_requests_total", "HTTP requests served"), &["route", "method", "status"])
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Request latency by route template.
pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        histogram_opts!(
            "chat_http_request_seconds",
            "HTTP request latency",
            exponential_buckets(0.0001, 2.0, 18).unwrap_or_default()
        ),
        &["route"]
    )
    .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// Registers every metric so that `/metrics` lists them before the first request.
pub fn register() {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
}

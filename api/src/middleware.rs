//! Request middleware (the seed's Logging and Recovery): request ids, one log line per
//! request, metrics, and panics turned into a 500 that names the request id.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, metrics};

/// The request id header, generated when the client sends none.
pub const REQUEST_ID: &str = "x-request-id";

/// Logs and measures one request; echoes its request id; continues the caller's trace
/// (or starts one) so the commands it publishes carry it.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(chat_core::ids::new_id);
    let incoming = request.headers().get(chat_nats::headers::TRACEPARENT).and_then(|v| v.to_str().ok());
    let traceparent = chat_core::trace::continue_or_start(incoming);
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert(chat_nats::headers::TRACEPARENT, value);
    }
    let mut response = next.run(request).await;
    let status = response.status();
    let elapsed = started.elapsed();
    metrics::HTTP_REQUESTS.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
    metrics::HTTP_SECONDS.with_label_values(&[route.as_str()]).observe(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %request_id,
        trace_id = chat_core::trace::trace_id(&traceparent),
        method = %method,
        route = %route,
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// What a panicking handler answers: 500 `internal`; the panic is logged.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}

//! The REST routes, one file per resource.

pub mod chats;
pub mod messages;
pub mod openapi;
pub mod users;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::HeaderMap,
    routing::{get, post},
};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{middleware, state::AppState};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route with its middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/chats", post(chats::create).get(chats::list))
        .route("/api/chats/{chat_id}", get(chats::get_one))
        .route("/api/chats/{chat_id}/messages", get(messages::history).post(messages::send))
        .route("/api/users/me", get(users::me))
        .fallback(fallback)
        .with_state(state)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(middleware::observe))
}

async fn fallback() -> crate::error::ApiError {
    crate::error::ApiError::not_found()
}

/// The caller's `traceparent`, passed on to the bus.
pub fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(chat_nats::headers::TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 128)
}

/// Checks an id from a path or body before it goes anywhere near a query or subject.
pub fn check_id(id: &str, what: &str) -> Result<(), crate::error::ApiError> {
    if chat_nats::subjects::is_valid_id(id) {
        Ok(())
    } else {
        Err(crate::error::ApiError::invalid(format!("{what} must be 1-64 characters of [A-Za-z0-9_-]")))
    }
}

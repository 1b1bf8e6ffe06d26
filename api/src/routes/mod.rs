//! The REST routes, one file per resource.

pub mod admin;
pub mod chats;
pub mod members;
pub mod messages;
pub mod openapi;
pub mod users;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderMap, Method, Uri},
    routing::{delete, get, patch, post, put},
};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{middleware, state::AppState};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the api serves beside its routes in development (nothing by default).
#[derive(Debug, Default)]
pub struct Extras {
    /// The built web client, served at `/`.
    pub web_dir: Option<std::path::PathBuf>,
    /// `POST /api/dev/token`.
    pub dev_tokens: Option<crate::web::dev_token::DevTokens>,
}

/// Every route with its middleware.
pub fn router(state: AppState, allowed_origins: &[String], extras: Extras) -> Result<Router, chat_core::StartupError> {
    let mut routes = Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/chats", post(chats::create).get(chats::list))
        .route("/api/chats/{chat_id}", get(chats::get_one).patch(chats::rename))
        .route("/api/chats/{chat_id}/participants", post(members::add))
        .route("/api/chats/{chat_id}/participants/{user_id}", delete(members::remove))
        .route("/api/chats/{chat_id}/messages", get(messages::history).post(messages::send))
        .route("/api/chats/{chat_id}/messages/{message_id}", patch(messages::edit).delete(messages::remove))
        .route("/api/chats/{chat_id}/read", post(messages::read))
        .route("/api/users", get(users::search))
        .route("/api/users/me", get(users::me))
        .route("/api/users/presence", get(users::presence))
        .route("/api/admin/users/{user_id}", put(admin::upsert_user));
    if let Some(tokens) = extras.dev_tokens {
        routes = routes.merge(crate::web::dev_token::routes(tokens));
    }
    let routes = match extras.web_dir {
        Some(dir) => {
            let dir = std::sync::Arc::new(dir);
            routes.fallback(move |method: Method, uri: Uri| async move {
                crate::web::static_files::serve(&dir, &method, &uri).await
            })
        }
        None => routes.fallback(fallback),
    };
    let routes = routes
        .with_state(state)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(crate::security::cors(allowed_origins)?);
    Ok(crate::security::with_headers(routes).layer(axum::middleware::from_fn(middleware::observe)))
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

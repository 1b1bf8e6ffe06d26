//! `GET /ws`: the token (header or `access_token` query) and the `Origin` are checked
//! and the user's chats loaded before the upgrade, so a refused client gets a plain
//! HTTP status and no socket. Upgrades in progress are capped: past the cap a client
//! gets 503 at once instead of queueing behind token checks and membership loads.
//! `GET /asyncapi.json` serves the protocol's document ([`asyncapi`]) on the same port.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Query, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use crate::{
    asyncapi, connection, handshake,
    session::{self, Session},
    state::EdgeState,
};

/// The `/ws` route, and `/asyncapi.json` beside it (the protocol's AsyncAPI document,
/// generated once here).
pub fn router(edge: EdgeState) -> Router {
    let document = asyncapi::body();
    // One shared copy: a connection's task holds a pointer to it, not the 1.2 KB state.
    let edge = Arc::new(edge);
    Router::new()
        .route("/ws", get(upgrade))
        .route("/asyncapi.json", get(move || async move { asyncapi::response(document) }))
        .with_state(edge)
}

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// The token, for browsers that cannot set headers on a WebSocket.
    pub access_token: Option<String>,
}

async fn upgrade(State(edge): State<Arc<EdgeState>>, Query(query): Query<WsQuery>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let accepted = match handshake::check(&mut parts) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let headers = &parts.headers;
    let Ok(_in_progress) = edge.upgrades.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "too many connections opening; retry")
            .into_response();
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|origin| edge.config.allowed_origins.iter().any(|o| o == origin));
        if !allowed {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or(query.access_token);
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "missing bearer token").into_response();
    };
    let claims = match edge.verifier.verify(token.trim()) {
        Ok(claims) => claims,
        Err(error) => return (StatusCode::UNAUTHORIZED, error.to_string()).into_response(),
    };
    let chats = match edge.memberships(&claims.sub).await {
        Ok(chats) => chats,
        Err(error) => {
            tracing::warn!(%error, "cannot load memberships");
            return (StatusCode::SERVICE_UNAVAILABLE, "memberships unavailable; retry").into_response();
        }
    };
    let expires_at = session::token_deadline(&claims);
    let session = Session {
        conn_id: Arc::from(chat_core::ids::new_id()),
        user_id: Arc::from(claims.sub),
        roles: claims.roles,
        expires_at,
    };
    let (response, socket) = accepted.complete();
    tokio::spawn(async move {
        if let Some((tcp, read_ahead)) = socket.await {
            connection::serve(tcp, read_ahead, edge, session, chats).await;
        }
    });
    response
}

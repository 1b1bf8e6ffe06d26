//! The admin server every binary runs on its admin port: `/healthz` (alive),
//! `/readyz` (dependencies, as JSON), `/metrics` (Prometheus text format).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus::{Encoder, TextEncoder};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    http_server::HttpSettings,
    probes::{Probe, Readiness, check_all},
};

/// Binds the admin port and serves it until `shutdown` is cancelled, with the default
/// [`HttpSettings`] (the port is internal: probes and scrapes). Returns the bound
/// address (useful when the configured port is 0).
pub async fn serve(
    addr: SocketAddr,
    probes: Vec<Probe>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), crate::StartupError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| crate::StartupError::Bind { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| crate::StartupError::Bind { addr: addr.to_string(), source })?;
    let app = router(probes);
    let task = tokio::spawn(crate::http_server::serve(listener, app, HttpSettings::default(), shutdown));
    Ok((bound, task))
}

/// The admin routes, for binaries that want to mount them elsewhere.
pub fn router(probes: Vec<Probe>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(probes))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(probes): State<Arc<Vec<Probe>>>) -> impl IntoResponse {
    let (state, results) = check_all(&probes).await;
    let mut checks = Map::new();
    for (name, result) in results {
        let value = match result {
            Ok(()) => json!({ "status": "ok" }),
            Err(error) => json!({ "status": "down", "error": error }),
        };
        checks.insert(name.to_owned(), value);
    }
    let status = match state {
        Readiness::Ready | Readiness::Degraded => StatusCode::OK,
        Readiness::NotReady => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(json!({ "status": state, "checks": Value::Object(checks) })))
}

async fn metrics() -> impl IntoResponse {
    let mut body = Vec::new();
    let families = prometheus::gather();
    match TextEncoder::new().encode(&families, &mut body) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], error.to_string().into_bytes())
        }
    }
}

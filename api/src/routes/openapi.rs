//! `GET /api/openapi.json`: the OpenAPI 3.1 document, written by hand in
//! `docs/openapi.json` and checked against the routes by the api's tests.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, embedded at build time.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// Serves the document.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

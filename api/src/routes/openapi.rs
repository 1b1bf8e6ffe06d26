//! `GET /api/openapi.json`: the OpenAPI 3.1 document derived by [`crate::openapi`] from
//! the route list and the types, built once on the first request.

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use schemars::{Schema, json_schema};

use crate::openapi::handler::{Generators, OperationOutput};

/// The document's bytes.
static DOCUMENT: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(serde_json::to_vec(&crate::routes::document()).unwrap_or_default()));

/// The document as an answer.
pub struct OpenApiJson(Bytes);

impl IntoResponse for OpenApiJson {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

impl OperationOutput for OpenApiJson {
    fn response(_: &mut Generators) -> Option<Schema> {
        Some(json_schema!({ "type": "object", "description": "An OpenAPI 3.1 document: this one." }))
    }
}

/// Serves the document.
pub async fn document() -> OpenApiJson {
    OpenApiJson(DOCUMENT.clone())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    /// `docs/openapi.json` is the derived document, for readers and tools that want a
    /// file; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_checked_in_copy_is_the_derived_document() {
        let derived = crate::routes::document();
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let pretty = serde_json::to_string_pretty(&derived).unwrap_or_default() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &pretty).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let checked_in: Value = serde_json::from_str(&checked_in).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            checked_in == derived,
            "docs/openapi.json differs from the derived document; run `UPDATE_OPENAPI=1 cargo test -p api --lib openapi` and commit it"
        );
    }
}

//! `GET /asyncapi.json` on the edge's public port serves the generated document, and
//! both AsyncAPI documents (this one and `docs/asyncapi-nats.json`) pass the official
//! parser, `@asyncapi/parser`, run by `scripts/asyncapi-lint/lint.mjs` (its packages
//! come from `scripts/install-deps.sh`).

use std::path::{Path, PathBuf};

use super::Harness;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the linter on `files`; fails the test with its diagnostics when it refuses one.
async fn lint(files: &[&Path]) {
    let linter = repository().join("scripts/asyncapi-lint");
    assert!(
        linter.join("node_modules/@asyncapi/parser").exists(),
        "{}/node_modules is missing: run scripts/install-deps.sh (it runs npm ci there)",
        linter.display()
    );
    let output = tokio::process::Command::new("node")
        .arg(linter.join("lint.mjs"))
        .args(files)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run node (is Node.js 20+ installed?): {error}"));
    assert!(
        output.status.success(),
        "the AsyncAPI parser refuses a document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_its_asyncapi_document_and_both_documents_pass_the_parser() {
    let h = Harness::start(|_| {}).await;
    let url = h.ws_url.replace("ws://", "http://").replace("/ws", "/asyncapi.json");
    let response = reqwest::get(&url).await.unwrap_or_else(|error| panic!("GET {url}: {error}"));
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body = response.bytes().await.unwrap_or_else(|error| panic!("body: {error}"));
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(served, ws_edge::asyncapi::document(), "the edge serves the generated document");
    assert_eq!(served["asyncapi"], "3.0.0");
    assert!(served["components"]["messages"]["client.msg.send"].is_object());
    assert!(served["components"]["messages"]["server.token.expiring"].is_object());

    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let ws_document = dir.path().join("asyncapi-ws.json");
    std::fs::write(&ws_document, &body).unwrap_or_else(|error| panic!("write: {error}"));
    let nats_document = repository().join("docs/asyncapi-nats.json");
    lint(&[&ws_document, &nats_document]).await;
}

//! `docs/asyncapi-nats.json` is the document the code generates, byte for byte, so the
//! checked-in copy cannot drift from the bus types.

use std::path::PathBuf;

/// Set to write the generated document over the checked-in one instead of comparing.
const REGENERATE: &str = "CHAT_REGENERATE_ASYNCAPI";

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi-nats.json")
}

#[test]
fn the_checked_in_bus_document_is_the_generated_one() {
    let generated = chat_nats::asyncapi::bus::document();
    let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
    let path = checked_in();
    if std::env::var_os(REGENERATE).is_some() {
        std::fs::write(&path, &text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    // Compared as JSON values: whether serde_json keeps insertion order depends on
    // the features of the crates built beside this one.
    let checked_in: serde_json::Value = serde_json::from_str(&on_disk).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the document the bus types generate; regenerate it with\n  \
         {REGENERATE}=1 cargo nextest run -p chat-nats --test asyncapi\nand commit the result",
        path.display()
    );
}

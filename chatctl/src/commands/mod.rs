//! One module per command, each with its clap arguments and a `run` that returns what
//! the command prints.

pub mod audit_export;
pub mod backup_export;
pub mod backup_import;
pub mod bench;
pub mod export_user;
pub mod records;
pub mod token;

use std::time::Duration;

use crate::backup::{COLLECTIONS, Header};

/// `chats 3, participants 7, messages 120, users 5`.
fn per_collection(header: &Header) -> String {
    COLLECTIONS.map(|collection| format!("{collection} {}", header.count(collection))).join(", ")
}

/// Documents per second, for the summaries.
fn rate(documents: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { (documents as f64 / seconds).round() as u64 } else { documents }
}

/// Lets the driver finish its background work before the runtime stops: dropped at exit
/// instead, it can panic in a pool worker (`connection_requester.rs`, `SendError`), as
/// seen after a successful import.
async fn close(db: mongodb::Database) {
    db.client().clone().shutdown().await;
}

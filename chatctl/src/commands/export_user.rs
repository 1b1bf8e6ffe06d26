//! `chatctl export-user <ID> [--out FILE]`: what the service holds of one user, for a
//! data-protection request, as JSON lines each tagged with its `kind`: the directory
//! entry (`user`), every membership (`membership`), every message they sent, deleted
//! ones as tombstones (`message`), and every report they made (`report`).

use std::path::PathBuf;

use bson::doc;
use chat_core::config::MongoArgs;
use chat_nats::{
    model::{Message, Role},
    moderation::Report,
};
use chat_store::Store;
use chrono::{DateTime, Utc};
use clap::Args;
use futures::TryStreamExt;
use serde::Serialize;

use super::records::{Lines, RecordsError};

/// Arguments of `chatctl export-user`.
#[derive(Debug, Clone, Args)]
pub struct ExportUserArgs {
    /// The database to read.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The user (a token's `sub`).
    #[arg(value_name = "ID")]
    pub user_id: String,
    /// The file to write (never overwritten); stdout without it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// One line of the export.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserRecord {
    /// The directory entry.
    User {
        /// Id.
        id: String,
        /// Display name.
        name: String,
        /// Platform roles.
        roles: Vec<String>,
    },
    /// A chat they belong to.
    Membership {
        /// The chat.
        chat_id: String,
        /// Their role.
        role: Role,
        /// When they joined.
        #[serde(with = "chat_nats::model::timestamp")]
        joined_at: DateTime<Utc>,
        /// Their read mark.
        last_read_seq: i64,
    },
    /// A message they sent.
    Message(Message),
    /// A report they made.
    Report(Report),
}

/// Connects and exports; returns how many lines were written.
pub async fn run(args: &ExportUserArgs) -> Result<u64, RecordsError> {
    let db = chat_core::connect::mongodb(&args.mongo, "chatctl").await?;
    let store = Store::new(db.clone());
    let result = match Lines::open(args.out.as_deref()) {
        Ok(lines) => export(&store, &args.user_id, lines).await,
        Err(error) => Err(error),
    };
    super::close(db).await;
    result
}

/// Writes what `store` holds of `user_id` to `lines`.
pub async fn export(store: &Store, user_id: &str, mut lines: Lines) -> Result<u64, RecordsError> {
    if let Some(user) = store.user(user_id).await? {
        lines.write(&UserRecord::User { id: user.id, name: user.name, roles: user.roles })?;
    }
    for member in store.memberships(user_id).await? {
        lines.write(&UserRecord::Membership {
            chat_id: member.chat_id,
            role: member.role,
            joined_at: member.joined_at,
            last_read_seq: member.last_read_seq,
        })?;
    }
    // No index serves this (it would cost every send); a data-protection request is rare.
    let mut messages = store.messages().find(doc! { "sender_id": user_id }).sort(doc! { "created_at": 1 }).await?;
    while let Some(message) = messages.try_next().await? {
        lines.write(&UserRecord::Message(message.into()))?;
    }
    for report in store.reports_by(user_id).await? {
        lines.write(&UserRecord::Report(report.into()))?;
    }
    lines.finish()
}

//! `chatctl audit-export [--chat ID] [--user ID] [--out FILE]`: the audit trail (every
//! entry, or one chat's, or those done by or to one user), newest first, as JSON lines
//! of the shape `GET /api/admin/audit` answers.

use std::path::PathBuf;

use chat_core::config::MongoArgs;
use chat_nats::moderation::AuditEntry;
use chat_store::{Store, audit::AuditFilter};
use clap::Args;

use super::records::{Lines, RecordsError};

/// Arguments of `chatctl audit-export`.
#[derive(Debug, Clone, Args)]
pub struct AuditExportArgs {
    /// The database to read.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Only this chat's entries.
    #[arg(long = "chat", value_name = "ID")]
    pub chat: Option<String>,
    /// Only entries done by or to this user.
    #[arg(long = "user", value_name = "ID")]
    pub user: Option<String>,
    /// The file to write (never overwritten); stdout without it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Connects and exports; returns how many entries were written.
pub async fn run(args: &AuditExportArgs) -> Result<u64, RecordsError> {
    let db = chat_core::connect::mongodb(&args.mongo, "chatctl").await?;
    let store = Store::new(db.clone());
    let filter = AuditFilter { chat_id: args.chat.clone(), user_id: args.user.clone() };
    let result = match Lines::open(args.out.as_deref()) {
        Ok(lines) => export(&store, &filter, lines).await,
        Err(error) => Err(error),
    };
    super::close(db).await;
    result
}

/// Writes the entries matching `filter` to `lines`.
pub async fn export(store: &Store, filter: &AuditFilter, mut lines: Lines) -> Result<u64, RecordsError> {
    for entry in store.audit_entries(filter, None, None).await? {
        lines.write(&AuditEntry::from(entry))?;
    }
    lines.finish()
}

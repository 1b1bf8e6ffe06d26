//! The audit trail's writer: the handlers of moderation and membership commands call
//! [`record`] once their change is stored (and again on a replay, which records
//! nothing twice: the entry's id is the command's).

use std::collections::BTreeMap;

use chat_nats::{commands::CommandEnvelope, moderation::AuditAction};
use chat_store::{Store, StoreError, audit::AuditDoc};

/// What a handler tells the audit trail beyond its command's envelope.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// What was done.
    pub action: AuditAction,
    /// In which chat.
    pub chat_id: &'a str,
    /// To whom.
    pub target_users: Vec<String>,
    /// Particulars, as `name = value`.
    pub details: BTreeMap<String, String>,
}

impl<'a> Entry<'a> {
    /// An entry without targets or details.
    pub fn new(action: AuditAction, chat_id: &'a str) -> Self {
        Entry { action, chat_id, target_users: Vec::new(), details: BTreeMap::new() }
    }

    /// Adds the users it was done to.
    pub fn targets(mut self, users: impl IntoIterator<Item = String>) -> Self {
        self.target_users.extend(users);
        self
    }

    /// Adds a particular.
    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }
}

/// Records what `envelope`'s command did, as its actor at its issue time. A command
/// that writes two entries (a `member.add` that adds some members and re-roles others)
/// gives the second `suffix` so both ids stay unique per command.
pub async fn record(
    store: &Store,
    envelope: &CommandEnvelope,
    suffix: Option<&str>,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    let id = match suffix {
        Some(suffix) => format!("{}.{suffix}", envelope.id),
        None => envelope.id.clone(),
    };
    let doc = AuditDoc {
        id,
        at: envelope.issued_at,
        actor: envelope.actor.user_id.clone(),
        action: entry.action,
        chat_id: entry.chat_id.to_owned(),
        target_users: entry.target_users,
        details: entry.details,
    };
    store.record_audit(&doc).await
}

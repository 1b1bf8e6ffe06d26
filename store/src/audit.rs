//! `audit`: who did which moderation or membership action, written by the persister
//! (`_id` is the command id, so a redelivered command records nothing twice) and read
//! by platform admins per chat or per user, newest first.

use std::collections::BTreeMap;

use bson::{doc, serde_helpers::chrono_datetime_as_bson_datetime as bson_time};
use chat_nats::moderation::{AuditAction, AuditEntry};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError, collections};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDoc {
    /// The command that did it.
    #[serde(rename = "_id")]
    pub id: String,
    /// When.
    #[serde(with = "bson_time")]
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// Where.
    pub chat_id: String,
    /// The users it was done to (members added, removed or re-roled, a muted sender).
    #[serde(default)]
    pub target_users: Vec<String>,
    /// The action's particulars (a role, a title, a report id and its resolution).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

impl From<AuditDoc> for AuditEntry {
    fn from(doc: AuditDoc) -> Self {
        AuditEntry {
            id: doc.id,
            at: doc.at,
            actor: doc.actor,
            action: doc.action,
            chat_id: doc.chat_id,
            target_users: doc.target_users,
            details: doc.details,
        }
    }
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this chat's.
    pub chat_id: Option<String>,
    /// Only those done by or to this user.
    pub user_id: Option<String>,
}

impl Store {
    /// `audit`.
    pub fn audit(&self) -> mongodb::Collection<AuditDoc> {
        self.db.collection(collections::AUDIT)
    }

    /// Records an entry; one that is there already (a redelivered command) stays.
    pub async fn record_audit(&self, entry: &AuditDoc) -> Result<(), StoreError> {
        self.writes.admit("record_audit")?;
        match self.audit().insert_one(entry).await {
            Ok(_) => Ok(()),
            Err(error) if crate::is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Entries matching `filter`, newest first, strictly before `(at, id)`; all of
    /// them when `limit` is `None` (an export).
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
        before: Option<(DateTime<Utc>, String)>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditDoc>, StoreError> {
        let mut query = doc! {};
        if let Some(chat_id) = &filter.chat_id {
            query.insert("chat_id", chat_id.as_str());
        }
        let mut any = Vec::new();
        if let Some(user_id) = &filter.user_id {
            any.push(doc! { "$or": [{ "actor": user_id.as_str() }, { "target_users": user_id.as_str() }] });
        }
        if let Some((at, id)) = before {
            let at = bson::DateTime::from_chrono(at);
            any.push(doc! { "$or": [{ "at": { "$lt": at } }, { "at": at, "_id": { "$lt": id } }] });
        }
        if !any.is_empty() {
            query.insert("$and", any);
        }
        let audit = self.audit();
        let find = audit.find(query).sort(doc! { "at": -1, "_id": -1 });
        let find = match limit {
            Some(limit) => find.limit(i64::from(limit)),
            None => find,
        };
        Ok(find.await?.try_collect().await?)
    }
}

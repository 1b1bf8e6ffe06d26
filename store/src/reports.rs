//! `reports`: one document per reporter and message (`_id` is
//! [`chat_nats::moderation::report_id`]), written by the persister's `msg.report` and
//! `report.resolve`; the review queue reads them oldest first per state.

use bson::{doc, serde_helpers::chrono_datetime_as_bson_datetime as bson_time};
use chat_nats::moderation::{Report, ReportReason, ReportState, ResolveAction};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError, collections};

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDoc {
    /// [`chat_nats::moderation::report_id`].
    #[serde(rename = "_id")]
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// The reported message.
    pub message_id: String,
    /// Its sender.
    pub sender_id: String,
    /// Who reported it.
    pub reporter_id: String,
    /// Why.
    pub reason: ReportReason,
    /// The reporter's words.
    #[serde(default)]
    pub note: Option<String>,
    /// Open or resolved.
    pub state: ReportState,
    /// When it was reported.
    #[serde(with = "bson_time")]
    pub created_at: DateTime<Utc>,
    /// When it was resolved.
    #[serde(default, with = "crate::docs::bson_time_opt")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// What they did.
    #[serde(default)]
    pub action: Option<ResolveAction>,
    /// The `report.resolve` that resolved it, so a redelivery finishes its work.
    #[serde(default)]
    pub resolved_with: Option<String>,
}

impl From<ReportDoc> for Report {
    fn from(doc: ReportDoc) -> Self {
        Report {
            id: doc.id,
            chat_id: doc.chat_id,
            message_id: doc.message_id,
            sender_id: doc.sender_id,
            reporter_id: doc.reporter_id,
            reason: doc.reason,
            note: doc.note,
            state: doc.state,
            created_at: doc.created_at,
            resolved_at: doc.resolved_at,
            resolved_by: doc.resolved_by,
            action: doc.action,
        }
    }
}

/// How a report was resolved.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    /// The moderator.
    pub by: &'a str,
    /// What they did.
    pub action: ResolveAction,
    /// The `report.resolve` command.
    pub command_id: &'a str,
    /// When.
    pub at: DateTime<Utc>,
}

fn state_name(state: ReportState) -> &'static str {
    state.into()
}

impl Store {
    /// `reports`.
    pub fn reports(&self) -> mongodb::Collection<ReportDoc> {
        self.db.collection(collections::REPORTS)
    }

    /// Stores a report unless one with its id exists; returns the stored one and
    /// whether it is this one.
    pub async fn insert_report(&self, report: &ReportDoc) -> Result<(ReportDoc, bool), StoreError> {
        self.writes.admit("insert_report")?;
        match self.reports().insert_one(report).await {
            Ok(_) => Ok((report.clone(), true)),
            Err(error) if crate::is_duplicate_key(&error) => match self.report(&report.id).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(StoreError::Bson("a duplicate report vanished".into())),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// One report.
    pub async fn report(&self, report_id: &str) -> Result<Option<ReportDoc>, StoreError> {
        Ok(self.reports().find_one(doc! { "_id": report_id }).await?)
    }

    /// Resolves an open report; `None` when it is not open (resolved already, or gone).
    pub async fn resolve_report(
        &self,
        report_id: &str,
        resolution: &Resolution<'_>,
    ) -> Result<Option<ReportDoc>, StoreError> {
        self.writes.admit("resolve_report")?;
        let action: &'static str = resolution.action.into();
        let set = doc! {
            "state": state_name(ReportState::Resolved),
            "resolved_at": bson::DateTime::from_chrono(resolution.at),
            "resolved_by": resolution.by,
            "action": action,
            "resolved_with": resolution.command_id,
        };
        Ok(self
            .reports()
            .find_one_and_update(
                doc! { "_id": report_id, "state": state_name(ReportState::Open) },
                doc! { "$set": set },
            )
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Reports in `state`, oldest first, strictly after `(created_at, id)`.
    pub async fn reports_in(
        &self,
        state: ReportState,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<ReportDoc>, StoreError> {
        let mut filter = doc! { "state": state_name(state) };
        if let Some((at, id)) = after {
            let at = bson::DateTime::from_chrono(at);
            filter.insert(
                "$or",
                vec![doc! { "created_at": { "$gt": at } }, doc! { "created_at": at, "_id": { "$gt": id } }],
            );
        }
        Ok(self
            .reports()
            .find(filter)
            .sort(doc! { "created_at": 1, "_id": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?)
    }

    /// Every report a user made, oldest first (a data-protection export).
    pub async fn reports_by(&self, reporter_id: &str) -> Result<Vec<ReportDoc>, StoreError> {
        Ok(self
            .reports()
            .find(doc! { "reporter_id": reporter_id })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await?
            .try_collect()
            .await?)
    }
}

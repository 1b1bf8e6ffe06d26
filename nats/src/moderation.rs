//! Reports of messages and their review: the reasons a member may give, what a
//! moderator may do with a report, and the stored report as the api answers it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::IntoStaticStr;

use crate::model::timestamp;

/// Longest `note` of a report, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Why a member reports a message (a fixed list, so the queue can be sorted by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReportReason {
    /// Unwanted advertising or flooding.
    Spam,
    /// Bullying or threats.
    Harassment,
    /// Content not fit for the school.
    Inappropriate,
    /// The writer may be at risk.
    SelfHarm,
    /// Anything else; the note says what.
    Other,
}

/// Where a report is in the review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReportState {
    /// Waiting for a moderator.
    Open,
    /// A moderator decided.
    Resolved,
}

/// What a moderator does with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ResolveAction {
    /// Nothing to do; the message stays.
    Dismiss,
    /// Soft-delete the reported message.
    DeleteMessage,
    /// Mute the message's sender in the chat until `mute_until`.
    MuteSender,
}

/// An action the audit trail records. New moderation commands add their variant at
/// the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    /// Members added (`member.add`).
    MemberAdd,
    /// Existing members given another role (`member.add`).
    MemberRoleChange,
    /// A member removed, or one who left (`member.remove`).
    MemberRemove,
    /// A chat renamed or its history visibility changed (`chat.update`).
    ChatUpdate,
    /// A report resolved (`report.resolve`).
    ReportResolve,
    /// A chat's mode changed: posting, slow mode, frozen (`chat.moderate`).
    ChatModerate,
    /// A member muted or unmuted (`member.mute`, or a report resolved with `mute_sender`).
    MemberMute,
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// [`report_id`] of chat, message and reporter.
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// The reported message.
    pub message_id: String,
    /// Who wrote it.
    pub sender_id: String,
    /// Who reported it.
    pub reporter_id: String,
    /// Why.
    pub reason: ReportReason,
    /// The reporter's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Open or resolved.
    pub state: ReportState,
    /// When it was reported.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub created_at: DateTime<Utc>,
    /// When it was resolved.
    #[serde(with = "timestamp::option", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// What they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ResolveAction>,
}

/// One change of a message as `message_history` keeps it (platform admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    /// The command that made the change.
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// The message.
    pub message_id: String,
    /// The change's seq.
    pub seq: u64,
    /// Who changed it.
    pub actor: String,
    /// When.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub at: DateTime<Utc>,
    /// The text before.
    pub before: String,
    /// The text after; `null` for a delete.
    pub after: Option<String>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// The command that did it.
    pub id: String,
    /// When it was issued.
    #[serde(with = "timestamp")]
    #[schemars(schema_with = "timestamp::schema")]
    pub at: DateTime<Utc>,
    /// Who did it.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// In which chat.
    pub chat_id: String,
    /// To whom.
    pub target_users: Vec<String>,
    /// Particulars: a role, a title, a report and its resolution.
    pub details: std::collections::BTreeMap<String, String>,
}

/// The id of the report of `message_id` in `chat_id` by `reporter_id`: the same three
/// always give the same id, so a member's second report of a message finds the first.
/// 32 hex characters of SHA-256, a valid id in paths and subjects.
pub fn report_id(chat_id: &str, message_id: &str, reporter_id: &str) -> String {
    // Ids hold no NUL, so the joined input names one triple.
    let digest = Sha256::digest(format!("{chat_id}\0{message_id}\0{reporter_id}").as_bytes());
    digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

/// Checks a report's note: at most [`MAX_NOTE_CHARS`], no control characters but line
/// breaks and tabs.
pub fn check_note(note: &str) -> Result<(), String> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("note is longer than {MAX_NOTE_CHARS} characters"));
    }
    if note.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err("note contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_stable_and_distinct() {
        let id = report_id("c1", "m1", "u1");
        assert_eq!(id, report_id("c1", "m1", "u1"));
        assert_eq!(id.len(), 32);
        assert!(crate::subjects::is_valid_id(&id));
        assert_ne!(id, report_id("c1", "m1", "u2"));
        assert_ne!(report_id("c1", "m1x", "u"), report_id("c1", "m1", "xu"));
    }

    #[test]
    fn notes_are_bounded_and_printable() {
        assert!(check_note("he keeps\nwriting this").is_ok());
        assert!(check_note(&"a".repeat(MAX_NOTE_CHARS)).is_ok());
        assert!(check_note(&"a".repeat(MAX_NOTE_CHARS + 1)).is_err());
        assert!(check_note("bell\u{7}").is_err());
    }
}

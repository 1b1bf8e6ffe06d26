//! The backup file: gzip-compressed JSON lines. Line 1 is a [`Header`]; every further
//! line is one document, `{"c":"<collection>","d":<document>}`, in MongoDB's *canonical*
//! Extended JSON, which keeps every BSON type: an `int64` seq of 7 stays
//! `{"$numberLong":"7"}` (the relaxed form writes a plain `7`, which reads back as an
//! `int32`), and a date stays a `$date` with its exact milliseconds.
//!
//! The file may consist of several gzip members (the exporter writes the header last,
//! as its own member in front); `gzip -d`, `zcat` and [`reader::BackupReader`] read
//! them as one stream.

pub mod reader;

use std::{collections::BTreeMap, io, path::PathBuf};

use bson::{Bson, Document};
use chat_store::collections;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `format` of every backup file.
pub const FORMAT: &str = "edu-chat-backup";

/// The one `version` this chatctl writes and reads.
pub const VERSION: u64 = 1;

/// The collections a backup holds, in the order they are written. `chats` and then
/// `chat_heads` come last: while services write, a chat's `last_seq` read after its
/// messages and read marks is at least every seq they hold, so a restored chat never
/// hands out a seq that a restored message already has (the unique `(chat_id, seq)`
/// index would refuse that message). A file made before heads existed has none; each
/// restored chat's first write seeds its head from the chat document.
/// The moderation records (`reports`, `message_history`, `audit`) come first with the
/// users: nothing else refers to them.
pub const COLLECTIONS: [&str; 8] = [
    collections::USERS,
    collections::REPORTS,
    collections::MESSAGE_HISTORY,
    collections::AUDIT,
    collections::PARTICIPANTS,
    collections::MESSAGES,
    collections::CHATS,
    collections::CHAT_HEADS,
];

/// The first line: what the file is, when it was made and how many documents each
/// collection has in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u64,
    /// When the export finished reading the database.
    pub created_at: DateTime<Utc>,
    /// Documents per collection.
    pub collections: BTreeMap<String, u64>,
}

impl Header {
    /// The header of a file holding these documents, made now.
    pub fn new(collections: BTreeMap<String, u64>) -> Self {
        Header { format: FORMAT.to_owned(), version: VERSION, created_at: Utc::now(), collections }
    }

    /// How many documents of `collection` the file holds.
    pub fn count(&self, collection: &str) -> u64 {
        self.collections.get(collection).copied().unwrap_or(0)
    }

    /// Documents in the whole file.
    pub fn total(&self) -> u64 {
        self.collections.values().sum()
    }
}

/// Writes one document line.
pub fn write_document(out: &mut impl io::Write, collection: &str, document: Document) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        c: &'a str,
        d: serde_json::Value,
    }
    serde_json::to_writer(&mut *out, &Line { c: collection, d: Bson::Document(document).into_canonical_extjson() })?;
    out.write_all(b"\n")
}

/// Why an export or import failed. Each message is complete on one line, cause
/// included, so the causes are not also chained as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database settings are unusable.
    #[error(transparent)]
    Connect(#[from] chat_core::StartupError),
    /// A local file could not be opened, written or renamed.
    #[error("{what} {path}: {cause}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        cause: io::Error,
    },
    /// Export never overwrites a file.
    #[error("{0} already exists; choose another name or remove it first")]
    OutputExists(PathBuf),
    /// The file could not be read or decompressed at this line.
    #[error("line {line}: cannot read the file: {cause}")]
    Read {
        /// The 1-based line being read.
        line: u64,
        /// Why.
        cause: io::Error,
    },
    /// Line 1 is not the header of an edu-chat backup.
    #[error("line 1: not an edu-chat backup ({reason}); a mongodump archive is restored with mongorestore")]
    UnknownFormat {
        /// What was wrong.
        reason: String,
    },
    /// A backup of a format version this chatctl does not know.
    #[error("line 1: backup version {found} is not supported; this chatctl reads version {VERSION}")]
    UnsupportedVersion {
        /// The version in the file.
        found: String,
    },
    /// A line is not what the format says.
    #[error("line {line}: {reason}")]
    Corrupt {
        /// The 1-based line.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds a different number of documents than its header says.
    #[error("{collection}: the header says {expected} documents but the file holds {found} (truncated or edited?)")]
    FileCount {
        /// The collection.
        collection: String,
        /// From the header.
        expected: u64,
        /// Lines found.
        found: u64,
    },
    /// Import refuses to mix a backup into existing data.
    #[error(
        "database {database} is not empty ({collection} has documents); pass --drop to replace chats, participants, messages and users"
    )]
    NotEmpty {
        /// The target database.
        database: String,
        /// The first non-empty collection found.
        collection: &'static str,
    },
    /// The database failed.
    #[error("{what}: {cause}")]
    Mongo {
        /// What was being done.
        what: String,
        /// The driver's error.
        cause: mongodb::error::Error,
    },
    /// Creating the indexes failed (for instance a unique index over duplicate data).
    #[error("creating indexes: {0}")]
    Indexes(chat_store::StoreError),
    /// After the import a collection does not hold what the header says.
    #[error(
        "{collection}: {expected} documents imported but the database now holds {found}; was something writing to it?"
    )]
    DatabaseCount {
        /// The collection.
        collection: &'static str,
        /// From the header.
        expected: u64,
        /// Counted in the database.
        found: u64,
    },
    /// A background task of the command died.
    #[error("{0}")]
    Task(String),
}

impl BackupError {
    /// Wraps a driver error with what was being done.
    pub fn mongo(what: impl Into<String>) -> impl FnOnce(mongodb::error::Error) -> BackupError {
        let what = what.into();
        move |cause| BackupError::Mongo { what, cause }
    }

    /// Wraps a local file error with what was being done to which file.
    pub fn file(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BackupError {
        let path = path.into();
        move |cause| BackupError::File { what, path, cause }
    }
}

impl From<tokio::task::JoinError> for BackupError {
    fn from(error: tokio::task::JoinError) -> Self {
        BackupError::Task(format!("background task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use bson::{Bson, DateTime, doc};

    use super::write_document;

    fn through_line(document: bson::Document, relaxed: bool) -> bson::Document {
        let value = if relaxed {
            Bson::Document(document).into_relaxed_extjson()
        } else {
            Bson::Document(document).into_canonical_extjson()
        };
        match Bson::try_from(value) {
            Ok(Bson::Document(document)) => document,
            other => panic!("not a document: {other:?}"),
        }
    }

    fn sample() -> bson::Document {
        doc! {
            "_id": "m1",
            "seq": 7_i64,
            "big": i64::MAX,
            "small": 3_i32,
            "ratio": 0.5,
            "whole": 2.0,
            "at": DateTime::from_millis(1_732_000_000_123),
            "early": DateTime::from_millis(-5),
            "none": Bson::Null,
            "text": "Привет, мир",
            "nested": { "seq": 1_i64, "list": [1_i64, 2_i32] },
        }
    }

    #[test]
    fn relaxed_extjson_loses_the_int64_type_of_small_numbers() {
        let back = through_line(sample(), true);
        assert_eq!(back.get("seq"), Some(&Bson::Int32(7)));
        assert_ne!(back, sample());
    }

    #[test]
    fn canonical_extjson_keeps_every_type_and_the_field_order() {
        let back = through_line(sample(), false);
        assert_eq!(back, sample());
        assert_eq!(bson::to_vec(&back).ok(), bson::to_vec(&sample()).ok(), "same bytes, so same field order");
    }

    #[test]
    fn a_document_line_names_its_collection() {
        let mut out = Vec::new();
        write_document(&mut out, "messages", doc! { "_id": "m1", "seq": 1_i64 }).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"c\":\"messages\",\"d\":{\"_id\":\"m1\",\"seq\":{\"$numberLong\":\"1\"}}}\n"
        );
    }
}

//! MongoDB storage of the chat service: the documents, their indexes and the queries.
//!
//! The persister is the only writer of `chats`, `messages`, `participants` and the
//! moderation records (`reports`, `message_history`, `audit`); the api reads them and
//! owns `users`. Every filter here is built from typed values, never from
//! a client's JSON.
//!
//! Layout: [`docs`] (document shapes and their conversion to the public model),
//! [`indexes`], and one module per collection with its queries (the moderation
//! records' modules hold their document shapes too).

pub mod audit;
pub mod chats;
pub mod docs;
pub mod heads;
pub mod indexes;
pub mod message_history;
pub mod messages;
pub mod moderation;
pub mod participants;
pub mod reports;
pub mod users;
pub mod writes;

/// Collection names (pinned).
pub mod collections {
    /// Chats with embedded participants.
    pub const CHATS: &str = "chats";
    /// Messages.
    pub const MESSAGES: &str = "messages";
    /// One document per chat member, with read marks.
    pub const PARTICIPANTS: &str = "participants";
    /// The user directory.
    pub const USERS: &str = "users";
    /// Each chat's `last_seq` and newest message, the part every message moves (not in
    /// the pinned four: a chat document's copy of it trails, by ten seconds by default).
    pub const CHAT_HEADS: &str = "chat_heads";
    /// Reports of messages, one per reporter and message.
    pub const REPORTS: &str = "reports";
    /// Append-only record of every edit and delete, with the text before.
    pub const MESSAGE_HISTORY: &str = "message_history";
    /// Moderation and membership actions.
    pub const AUDIT: &str = "audit";
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The driver or server failed.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// A document could not be converted.
    #[error("document conversion: {0}")]
    Bson(String),
    /// The handle's write limit ([`writes::Writes`]) stopped this write before it was
    /// sent.
    #[error("write {write} ({what}) refused: the handle's write limit is reached")]
    Interrupted {
        /// Its number among the handle's writes, from 1.
        write: usize,
        /// The operation.
        what: &'static str,
    },
}

impl StoreError {
    /// True when the error is a unique-index violation.
    pub fn is_duplicate_key(&self) -> bool {
        match self {
            StoreError::Mongo(error) => is_duplicate_key(error),
            StoreError::Bson(_) | StoreError::Interrupted { .. } => false,
        }
    }
}

/// True when a driver error is (or contains) a duplicate-key write error (code 11000).
pub fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::InsertMany(e) => {
            e.write_errors.as_ref().is_some_and(|errors| errors.iter().all(|e| e.code == 11000))
        }
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

/// Handles to the collections.
#[derive(Debug, Clone)]
pub struct Store {
    /// The database.
    pub db: mongodb::Database,
    /// The writes made through this handle (and its clones).
    writes: writes::Writes,
}

impl Store {
    /// Wraps an open database.
    pub fn new(db: mongodb::Database) -> Self {
        Store { db, writes: writes::Writes::default() }
    }

    /// A handle on the same database whose writes after the first `limit` fail with
    /// [`StoreError::Interrupted`]: a process that dies between two writes.
    pub fn with_write_limit(&self, limit: usize) -> Self {
        Store { db: self.db.clone(), writes: writes::Writes::limited(limit) }
    }

    /// How many writes this handle (and its clones) made.
    pub fn writes_made(&self) -> usize {
        self.writes.made()
    }

    /// `chat_heads`.
    pub fn heads(&self) -> mongodb::Collection<docs::HeadDoc> {
        self.db.collection(collections::CHAT_HEADS)
    }

    /// `chats`.
    pub fn chats(&self) -> mongodb::Collection<docs::ChatDoc> {
        self.db.collection(collections::CHATS)
    }

    /// `messages`.
    pub fn messages(&self) -> mongodb::Collection<docs::MessageDoc> {
        self.db.collection(collections::MESSAGES)
    }

    /// `participants`.
    pub fn participants(&self) -> mongodb::Collection<docs::ParticipantDoc> {
        self.db.collection(collections::PARTICIPANTS)
    }

    /// `users`.
    pub fn users(&self) -> mongodb::Collection<docs::UserDoc> {
        self.db.collection(collections::USERS)
    }
}

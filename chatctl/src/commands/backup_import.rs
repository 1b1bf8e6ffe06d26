//! `chatctl backup import --in FILE [--drop]`: loads a file written by `export`.
//!
//! In order: refuse a target whose chat collections hold documents (unless `--drop`);
//! read and check the whole file (every line, and the counts against the header) before
//! changing anything, so a damaged file never costs the data that `--drop` would remove;
//! drop the five collections if asked; create the indexes with
//! [`chat_store::Store::ensure_indexes`]; insert in unordered batches of [`BATCH`] while a
//! blocking thread decompresses and parses the next ones; count every collection against
//! the header.
//!
//! The indexes come before the data: a unique-index violation is then reported with the
//! lines of its batch, and the MongoDB-compatible development store, which builds an
//! index over existing documents in one transaction, does not have to build one over a
//! large collection (in a test with 60 000 messages, it was still retrying on write
//! conflicts after ten minutes).

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bson::{Document, doc};
use chat_core::config::MongoArgs;
use clap::Args;
use tokio::sync::mpsc;

use crate::{
    backup::{
        BackupError, COLLECTIONS, Header,
        reader::{BackupReader, Entry, check_file},
    },
    progress::Progress,
};

/// Documents per `insert_many`.
pub const BATCH: usize = 1000;

/// Arguments of `chatctl backup import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The database to load into.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The file written by `chatctl backup export`.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Drop chats, participants, messages and users of the target database first
    /// (after the file has been checked).
    #[arg(long)]
    pub drop: bool,
}

/// What an import loaded, as printed.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The target database.
    pub database: String,
    /// The file's header, whose counts the database now matches.
    pub header: Header,
    /// Whether existing collections were dropped first.
    pub dropped: bool,
    /// How long the import took, checking the file included.
    pub elapsed: Duration,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.header.total();
        writeln!(
            f,
            "imported {total} documents into {}{} in {:.2} s, {} documents/s; indexes created; counts match the header",
            self.database,
            if self.dropped { " (after dropping its chat collections)" } else { "" },
            self.elapsed.as_secs_f64(),
            super::rate(total, self.elapsed),
        )?;
        writeln!(f, "  {}", super::per_collection(&self.header))?;
        write!(f, "  backup made at {}", self.header.created_at.to_rfc3339())
    }
}

/// Connects and imports.
pub async fn run(args: &ImportArgs, progress: &Progress) -> Result<ImportSummary, BackupError> {
    let db = chat_core::connect::mongodb(&args.mongo, "chatctl").await?;
    let result = import(&db, &args.input, args.drop, progress).await;
    super::close(db).await;
    result
}

/// Imports `input` into `db`.
pub async fn import(
    db: &mongodb::Database,
    input: &Path,
    drop: bool,
    progress: &Progress,
) -> Result<ImportSummary, BackupError> {
    let started = Instant::now();
    if !drop {
        refuse_non_empty(db).await?;
    }
    let (path, bar) = (input.to_owned(), progress.bar("checking file", 0));
    let header = tokio::task::spawn_blocking(move || check_file(&path, &bar)).await??;
    if drop {
        for collection in COLLECTIONS {
            db.collection::<Document>(collection)
                .drop()
                .await
                .map_err(BackupError::mongo(format!("dropping {collection}")))?;
        }
    }
    chat_store::Store::new(db.clone()).ensure_indexes().await.map_err(BackupError::Indexes)?;
    load(db, input, &header, progress).await?;
    for collection in COLLECTIONS {
        let found = db
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .map_err(BackupError::mongo(format!("counting {collection}")))?;
        let expected = header.count(collection);
        if found != expected {
            return Err(BackupError::DatabaseCount { collection, expected, found });
        }
    }
    Ok(ImportSummary { database: db.name().to_owned(), header, dropped: drop, elapsed: started.elapsed() })
}

async fn refuse_non_empty(db: &mongodb::Database) -> Result<(), BackupError> {
    for collection in COLLECTIONS {
        let any = db
            .collection::<Document>(collection)
            .find_one(doc! {})
            .projection(doc! { "_id": 1 })
            .await
            .map_err(BackupError::mongo(format!("looking into {collection}")))?;
        if any.is_some() {
            return Err(BackupError::NotEmpty { database: db.name().to_owned(), collection });
        }
    }
    Ok(())
}

/// Documents of one collection from consecutive lines of the file.
struct Batch {
    collection: &'static str,
    first_line: u64,
    last_line: u64,
    documents: Vec<Document>,
}

impl Batch {
    fn starting_with(entry: &Entry) -> Self {
        Batch {
            collection: entry.collection,
            first_line: entry.line,
            last_line: entry.line,
            documents: Vec::with_capacity(BATCH),
        }
    }
}

/// Inserts every document, batch by batch, while the reader prepares the next batches.
async fn load(db: &mongodb::Database, input: &Path, header: &Header, progress: &Progress) -> Result<(), BackupError> {
    let bars: HashMap<&str, _> = COLLECTIONS
        .into_iter()
        .map(|collection| (collection, progress.bar(collection, header.count(collection))))
        .collect();
    let (sender, mut receiver) = mpsc::channel::<Batch>(4);
    let path = input.to_owned();
    let reader = tokio::task::spawn_blocking(move || read_batches(&path, &sender));
    let mut inserted = Ok(());
    while let Some(batch) = receiver.recv().await {
        let what = format!("inserting lines {}-{} into {}", batch.first_line, batch.last_line, batch.collection);
        if let Err(error) = db
            .collection::<Document>(batch.collection)
            .insert_many(&batch.documents)
            .ordered(false)
            .await
            .map_err(BackupError::mongo(what))
        {
            inserted = Err(error);
            break;
        }
        if let Some(bar) = bars.get(batch.collection) {
            bar.inc(batch.documents.len() as u64);
        }
    }
    receiver.close();
    // The reader stops at its next hand-over once the receiver is closed.
    let read = reader.await?;
    inserted?;
    read?;
    bars.values().for_each(indicatif::ProgressBar::finish);
    Ok(())
}

/// Parses the file into batches (blocking); stops quietly when the receiver is gone.
fn read_batches(path: &Path, sender: &mpsc::Sender<Batch>) -> Result<(), BackupError> {
    let mut reader = BackupReader::open(path)?;
    let mut pending: HashMap<&'static str, Batch> = HashMap::new();
    while let Some(entry) = reader.next_entry()? {
        let batch = pending.entry(entry.collection).or_insert_with(|| Batch::starting_with(&entry));
        batch.last_line = entry.line;
        batch.documents.push(entry.document);
        if batch.documents.len() == BATCH
            && let Some(full) = pending.remove(entry.collection)
            && sender.blocking_send(full).is_err()
        {
            return Ok(());
        }
    }
    for collection in COLLECTIONS {
        if let Some(batch) = pending.remove(collection)
            && sender.blocking_send(batch).is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

//! `chatctl backup export --out FILE`: streams chats, participants, messages and users
//! through the driver's cursors into a gzip JSON-lines file (see [`crate::backup`]).
//!
//! The header must carry the number of documents actually written, which is known only
//! at the end, and a live database changes while it is read. So the documents go to a
//! temporary gzip member first; then the header is compressed as its own member at the
//! start of a second temporary file, the body's bytes are appended unchanged, and that
//! file is synced and renamed to `FILE`. Memory stays bounded by a few batches.
//!
//! Each collection is read with one cursor, in the order of [`COLLECTIONS`] (chats last):
//! the file is not a point-in-time snapshot of the whole database (mongodump with
//! `--oplog` is, see `docs/backup.md`).

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::{BufWriter, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bson::{Document, doc};
use chat_core::config::MongoArgs;
use clap::Args;
use flate2::{Compression, write::GzEncoder};
use futures::TryStreamExt;
use tempfile::NamedTempFile;
use tokio::sync::mpsc;

use crate::{
    backup::{BackupError, COLLECTIONS, Header, write_document},
    progress::Progress,
};

/// Documents per cursor batch and per hand-over to the compressing thread.
const CHUNK: usize = 1000;

/// Arguments of `chatctl backup export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The database to read.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The file to write (gzip JSON lines, mode 0600); an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// What an export wrote, as printed.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The file.
    pub path: PathBuf,
    /// Its header, with the per-collection counts.
    pub header: Header,
    /// Its size.
    pub bytes: u64,
    /// How long the export took.
    pub elapsed: Duration,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.header.total();
        writeln!(
            f,
            "exported {total} documents to {} ({} bytes) in {:.2} s, {} documents/s",
            self.path.display(),
            self.bytes,
            self.elapsed.as_secs_f64(),
            super::rate(total, self.elapsed),
        )?;
        write!(f, "  {}", super::per_collection(&self.header))
    }
}

/// A batch of documents of one collection on its way to the file.
type Chunk = (&'static str, Vec<Document>);

/// Connects and exports.
pub async fn run(args: &ExportArgs, progress: &Progress) -> Result<ExportSummary, BackupError> {
    let db = chat_core::connect::mongodb(&args.mongo, "chatctl").await?;
    let result = export(&db, &args.out, progress).await;
    super::close(db).await;
    result
}

/// Exports the collections of `db` to `out`.
pub async fn export(db: &mongodb::Database, out: &Path, progress: &Progress) -> Result<ExportSummary, BackupError> {
    let started = Instant::now();
    if out.symlink_metadata().is_ok() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let dir = directory_of(out);
    let body = NamedTempFile::new_in(&dir).map_err(BackupError::file("creating a temporary file in", &dir))?;
    let (sender, receiver) = mpsc::channel::<Chunk>(4);
    let writer = tokio::task::spawn_blocking(move || write_body(body, receiver));
    let read = read_collections(db, sender, progress).await;
    // A writer that failed closed the channel: its error is the one to report.
    let body = writer.await??;
    let counts = read?.ok_or_else(|| BackupError::Task("the compressing thread stopped early".into()))?;
    let header = Header::new(counts);
    let (path, written) = (out.to_owned(), header.clone());
    let bytes = tokio::task::spawn_blocking(move || assemble(&written, body, &path, &dir)).await??;
    Ok(ExportSummary { path: out.to_owned(), header, bytes, elapsed: started.elapsed() })
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Streams every collection into the channel; `None` when the writer hung up.
async fn read_collections(
    db: &mongodb::Database,
    sender: mpsc::Sender<Chunk>,
    progress: &Progress,
) -> Result<Option<BTreeMap<String, u64>>, BackupError> {
    let mut counts = BTreeMap::new();
    for collection in COLLECTIONS {
        let handle = db.collection::<Document>(collection);
        // Only the bar's length: a failure here costs nothing but the bar's accuracy.
        let estimate = handle.estimated_document_count().await.unwrap_or(0);
        let bar = progress.bar(collection, estimate);
        let failed = |cause| BackupError::Mongo { what: format!("reading {collection}"), cause };
        let mut cursor = handle.find(doc! {}).batch_size(CHUNK as u32).await.map_err(failed)?;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut count = 0_u64;
        while let Some(document) = cursor.try_next().await.map_err(failed)? {
            chunk.push(document);
            count += 1;
            if chunk.len() == CHUNK {
                bar.set_length(bar.length().unwrap_or(0).max(count));
                bar.set_position(count);
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if sender.send((collection, full)).await.is_err() {
                    return Ok(None);
                }
            }
        }
        if !chunk.is_empty() && sender.send((collection, chunk)).await.is_err() {
            return Ok(None);
        }
        bar.set_length(count);
        bar.set_position(count);
        bar.finish();
        counts.insert(collection.to_owned(), count);
    }
    Ok(Some(counts))
}

/// Compresses the document lines into `body` (blocking).
fn write_body(body: NamedTempFile, mut receiver: mpsc::Receiver<Chunk>) -> Result<NamedTempFile, BackupError> {
    let path = body.path().to_owned();
    let mut encoder = GzEncoder::new(BufWriter::with_capacity(256 * 1024, body), Compression::default());
    let mut lines = Vec::with_capacity(1024 * 1024);
    while let Some((collection, documents)) = receiver.blocking_recv() {
        lines.clear();
        for document in documents {
            write_document(&mut lines, collection, document).map_err(BackupError::file("writing", &path))?;
        }
        encoder.write_all(&lines).map_err(BackupError::file("writing", &path))?;
    }
    let buffered = encoder.finish().map_err(BackupError::file("writing", &path))?;
    buffered.into_inner().map_err(|error| BackupError::File { what: "writing", path, cause: error.into_error() })
}

/// Writes the header member and the body into a new file and renames it to `out`
/// (blocking). Returns the file's size.
fn assemble(header: &Header, mut body: NamedTempFile, out: &Path, dir: &Path) -> Result<u64, BackupError> {
    let mut file = NamedTempFile::new_in(dir).map_err(BackupError::file("creating a temporary file in", dir))?;
    let temporary = file.path().to_owned();
    let failed = |cause| BackupError::File { what: "writing", path: temporary.clone(), cause };
    let mut encoder = GzEncoder::new(file.as_file_mut(), Compression::default());
    serde_json::to_writer(&mut encoder, header).map_err(|error| failed(error.into()))?;
    encoder.write_all(b"\n").map_err(failed)?;
    encoder.finish().map_err(failed)?;
    body.seek(SeekFrom::Start(0)).map_err(BackupError::file("reading", body.path()))?;
    std::io::copy(&mut body, file.as_file_mut()).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    let bytes = file.as_file().metadata().map_err(failed)?.len();
    file.persist_noclobber(out).map_err(|error| match error.error.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::OutputExists(out.to_owned()),
        _ => BackupError::File { what: "renaming the finished file to", path: out.to_owned(), cause: error.error },
    })?;
    // The rename is durable once the directory is.
    File::open(dir).and_then(|directory| directory.sync_all()).map_err(BackupError::file("syncing", dir))?;
    Ok(bytes)
}

//! What the two record exports share: where the JSON lines go, and how they fail.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The database settings are unusable.
    #[error(transparent)]
    Connect(#[from] chat_core::StartupError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] chat_store::StoreError),
    /// The driver failed while reading.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// The output could not be written.
    #[error("writing {path}: {cause}")]
    Write {
        /// The file, or `-` for stdout.
        path: String,
        /// Why.
        cause: io::Error,
    },
    /// The output file exists; exports never overwrite.
    #[error("{0} already exists; choose another name or remove it first")]
    OutputExists(PathBuf),
}

/// JSON lines to a file (created, never overwritten) or stdout.
pub struct Lines {
    out: Box<dyn Write + Send>,
    name: String,
    /// Lines written.
    pub written: u64,
}

impl Lines {
    /// Writes to `path`, or to stdout when it is `None`.
    pub fn open(path: Option<&Path>) -> Result<Lines, RecordsError> {
        let Some(path) = path else {
            return Ok(Lines { out: Box::new(BufWriter::new(io::stdout())), name: "-".into(), written: 0 });
        };
        let file = File::options().write(true).create_new(true).open(path).map_err(|cause| {
            if cause.kind() == io::ErrorKind::AlreadyExists {
                RecordsError::OutputExists(path.to_owned())
            } else {
                RecordsError::Write { path: path.display().to_string(), cause }
            }
        })?;
        Ok(Lines { out: Box::new(BufWriter::new(file)), name: path.display().to_string(), written: 0 })
    }

    /// Writes one value as one line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<(), RecordsError> {
        let fail = |cause| RecordsError::Write { path: self.name.clone(), cause };
        let line = serde_json::to_vec(value).map_err(|error| fail(io::Error::other(error)))?;
        self.out.write_all(&line).and_then(|()| self.out.write_all(b"\n")).map_err(fail)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes what is buffered.
    pub fn finish(mut self) -> Result<u64, RecordsError> {
        let name = self.name.clone();
        self.out.flush().map_err(|cause| RecordsError::Write { path: name, cause })?;
        Ok(self.written)
    }
}

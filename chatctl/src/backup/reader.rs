//! Reading a backup file line by line, with the line number in every error. Reading is
//! blocking: the commands run it on a blocking thread.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use bson::Document;
use flate2::read::MultiGzDecoder;
use indicatif::ProgressBar;
use serde::Deserialize;

use super::{BackupError, COLLECTIONS, FORMAT, Header, VERSION};

/// No valid line is longer: a BSON document is at most 16 MiB, and its Extended JSON at
/// most a few times that. A longer line means a corrupt file, not a reason to run out of
/// memory.
const MAX_LINE_BYTES: u64 = 256 * 1024 * 1024;

/// One document of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its 1-based line.
    pub line: u64,
    /// Its collection, one of [`COLLECTIONS`].
    pub collection: &'static str,
    /// The document, with its BSON types as exported.
    pub document: Document,
}

/// A document line as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    c: String,
    d: serde_json::Map<String, serde_json::Value>,
}

/// Reads a backup: the header when opened, then the documents one by one.
pub struct BackupReader {
    input: BufReader<MultiGzDecoder<File>>,
    line: u64,
    text: String,
    header: Header,
}

impl BackupReader {
    /// Opens the file and checks its header: format, version and collection names.
    pub fn open(path: &Path) -> Result<Self, BackupError> {
        let file = File::open(path).map_err(BackupError::file("opening", path))?;
        let mut reader = BackupReader {
            input: BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(file)),
            line: 0,
            text: String::new(),
            header: Header::new(Default::default()),
        };
        match reader.next_line() {
            Ok(true) => {}
            Ok(false) => return Err(BackupError::UnknownFormat { reason: "the file is empty".into() }),
            // Not gzip, or not text once decompressed: some other kind of file.
            Err(BackupError::Read { cause, .. })
                if matches!(cause.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData) =>
            {
                return Err(BackupError::UnknownFormat { reason: cause.to_string() });
            }
            Err(other) => return Err(other),
        }
        reader.header = parse_header(&reader.text)?;
        Ok(reader)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next document, or `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, BackupError> {
        if !self.next_line()? {
            return Ok(None);
        }
        let line = self.line;
        let corrupt = |reason: String| BackupError::Corrupt { line, reason };
        let raw: RawLine = serde_json::from_str(&self.text)
            .map_err(|error| corrupt(format!("not a document line {{\"c\":…,\"d\":{{…}}}}: {error}")))?;
        let collection = COLLECTIONS
            .into_iter()
            .find(|known| *known == raw.c)
            .ok_or_else(|| corrupt(format!("unknown collection {:?}", raw.c)))?;
        if !self.header.collections.contains_key(collection) {
            return Err(corrupt(format!("collection {collection} is not listed in the header")));
        }
        let document = Document::try_from(raw.d).map_err(|error| corrupt(format!("invalid Extended JSON: {error}")))?;
        if !document.contains_key("_id") {
            return Err(corrupt("the document has no _id".into()));
        }
        Ok(Some(Entry { line, collection, document }))
    }

    /// Reads the next line into `self.text`, without its newline; false at the end.
    fn next_line(&mut self) -> Result<bool, BackupError> {
        self.text.clear();
        self.line += 1;
        let line = self.line;
        let read = (&mut self.input)
            .take(MAX_LINE_BYTES)
            .read_line(&mut self.text)
            .map_err(|cause| BackupError::Read { line, cause })?;
        if read == 0 {
            return Ok(false);
        }
        if self.text.pop() != Some('\n') {
            let reason = if read as u64 >= MAX_LINE_BYTES {
                format!("longer than {MAX_LINE_BYTES} bytes")
            } else {
                "the file ends in the middle of this line (truncated?)".to_owned()
            };
            return Err(BackupError::Corrupt { line, reason });
        }
        Ok(true)
    }
}

fn parse_header(text: &str) -> Result<Header, BackupError> {
    let unknown = |reason: String| BackupError::UnknownFormat { reason };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| unknown(format!("the first line is not JSON: {error}")))?;
    match value.get("format") {
        Some(serde_json::Value::String(format)) if format == FORMAT => {}
        Some(other) => return Err(unknown(format!("format is {other}, expected \"{FORMAT}\""))),
        None => return Err(unknown("the first line has no \"format\"".into())),
    }
    match value.get("version") {
        Some(version) if version.as_u64() == Some(VERSION) => {}
        Some(other) => return Err(BackupError::UnsupportedVersion { found: other.to_string() }),
        None => return Err(BackupError::UnsupportedVersion { found: "(missing)".into() }),
    }
    let header: Header = serde_json::from_value(value)
        .map_err(|error| BackupError::Corrupt { line: 1, reason: format!("invalid header: {error}") })?;
    if let Some(name) = header.collections.keys().find(|name| !COLLECTIONS.contains(&name.as_str())) {
        return Err(BackupError::Corrupt { line: 1, reason: format!("the header lists unknown collection {name:?}") });
    }
    Ok(header)
}

/// Reads the whole file and checks every line and the per-collection counts, so that an
/// import finds a bad file before it changes the database. Returns the header.
pub fn check_file(path: &Path, bar: &ProgressBar) -> Result<Header, BackupError> {
    let mut reader = BackupReader::open(path)?;
    bar.set_length(reader.header().total());
    let mut found: std::collections::BTreeMap<&'static str, u64> = Default::default();
    while let Some(entry) = reader.next_entry()? {
        *found.entry(entry.collection).or_default() += 1;
        bar.inc(1);
    }
    bar.finish();
    let header = reader.header;
    for collection in COLLECTIONS {
        let (expected, found) = (header.count(collection), found.get(collection).copied().unwrap_or(0));
        if expected != found {
            return Err(BackupError::FileCount { collection: collection.to_owned(), expected, found });
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gz(text: impl AsRef<[u8]>) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        let mut encoder = GzEncoder::new(file.reopen().unwrap_or_else(|e| panic!("{e}")), Compression::fast());
        encoder.write_all(text.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        encoder.finish().unwrap_or_else(|e| panic!("{e}"));
        file
    }

    const HEADER: &str =
        r#"{"format":"edu-chat-backup","version":1,"created_at":"2026-01-01T00:00:00Z","collections":{"users":1}}"#;

    fn error_of(text: impl AsRef<[u8]>) -> String {
        let file = gz(text);
        match check_file(file.path(), &ProgressBar::hidden()) {
            Ok(header) => panic!("accepted: {header:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_good_file_passes() {
        let file = gz(format!("{HEADER}\n{{\"c\":\"users\",\"d\":{{\"_id\":\"u1\"}}}}\n"));
        let header = check_file(file.path(), &ProgressBar::hidden()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.count("users"), 1);
    }

    #[test]
    fn every_kind_of_damage_names_its_line() {
        let cases = [
            ("{\"c\":\"users\",\"d\":{\"_id\":\"u1\"}\n", "line 2: not a document line"),
            ("{\"c\":\"users\",\"d\":{\"_id\":\"u1\"}}", "line 2: the file ends in the middle"),
            ("\n", "line 2: not a document line"),
            ("{\"c\":\"rooms\",\"d\":{\"_id\":\"u1\"}}\n", "line 2: unknown collection \"rooms\""),
            ("{\"c\":\"chats\",\"d\":{\"_id\":\"u1\"}}\n", "line 2: collection chats is not listed"),
            ("{\"c\":\"users\",\"d\":{\"name\":\"x\"}}\n", "line 2: the document has no _id"),
            ("{\"c\":\"users\",\"d\":{\"_id\":{\"$date\":\"x\"}}}\n", "line 2: invalid Extended JSON"),
            ("", "users: the header says 1 documents but the file holds 0"),
        ];
        for (body, expected) in cases {
            let error = error_of(format!("{HEADER}\n{body}"));
            assert!(error.starts_with(expected), "{body:?}: {error}");
        }
    }

    #[test]
    fn a_foreign_header_is_refused() {
        assert!(error_of("").contains("the file is empty"));
        assert!(error_of(b"\xFF\n").contains("(stream did not contain valid UTF-8)"));
        assert!(error_of("hello\n").starts_with("line 1: not an edu-chat backup (the first line is not JSON"));
        assert!(error_of("{\"format\":\"other\",\"version\":1}\n").contains("format is \"other\""));
        assert!(error_of("{\"format\":\"edu-chat-backup\",\"version\":2}\n").contains("version 2 is not supported"));
        let extra = HEADER.replace("\"version\":1,", "\"version\":1,\"x\":1,");
        assert!(error_of(format!("{extra}\n")).starts_with("line 1: invalid header"));
        let unknown = HEADER.replace("users", "rooms");
        assert!(error_of(format!("{unknown}\n")).contains("unknown collection \"rooms\""));
    }
}

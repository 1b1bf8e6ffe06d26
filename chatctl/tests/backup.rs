//! `chatctl backup export` and `import` against the real MongoDB-compatible store: a
//! database filled through `chat_store::Store` survives export and import document for
//! document, and damaged or foreign files are refused before anything changes.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use bson::{Bson, Document, doc};
use chat_nats::{
    model::{ChatKind, Role, direct_key},
    moderation::{AuditAction, ReportReason, ReportState},
};
use chat_store::{
    Store,
    audit::AuditDoc,
    docs::{ChatDoc, LastMessageDoc, MemberDoc, MessageDoc, ParticipantDoc},
    message_history::HistoryDoc,
    reports::ReportDoc,
};
use chat_testkit::Servers;
use chatctl::{
    BackupCommand, Cli, Command,
    backup::{BackupError, COLLECTIONS},
    commands::{
        backup_export::{self, ExportArgs},
        backup_import::{self, ImportArgs},
    },
    progress::Progress,
};
use chrono::{Duration, Utc};
use clap::Parser;
use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};
use futures::TryStreamExt;

/// Messages in the filled database, enough to measure a rate.
const MESSAGES: usize = 10000;

struct Harness {
    servers: Servers,
    store: Store,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let servers = Servers::start().await;
        let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        Harness { store: Store::new(db), servers, dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store of another database on the same server.
    async fn other_store(&self, db_name: &str) -> Store {
        let mut args = self.servers.mongo_args();
        args.mongodb_db = db_name.to_owned();
        Store::new(chat_core::connect::mongodb(&args, "test").await.unwrap_or_else(|e| panic!("{e}")))
    }

    /// `chatctl backup export --out FILE --mongodb-uri … --mongodb-db …`, as parsed.
    async fn export(&self, out: &Path) -> Result<backup_export::ExportSummary, BackupError> {
        let mongo = self.servers.mongo_args();
        let argv =
            ["chatctl", "backup", "export", "--mongodb-uri", &mongo.mongodb_uri, "--mongodb-db", &mongo.mongodb_db];
        let args: ExportArgs = match Cli::try_parse_from(argv.iter().copied().chain(["--out", path_str(out)])) {
            Ok(Cli { command: Command::Backup { command: BackupCommand::Export(args) } }) => args,
            other => panic!("export arguments: {other:?}"),
        };
        backup_export::run(&args, &Progress::hidden()).await
    }

    /// `chatctl backup import --in FILE [--drop] --mongodb-uri … --mongodb-db DB`, as parsed.
    async fn import(
        &self,
        input: &Path,
        db_name: &str,
        drop: bool,
    ) -> Result<backup_import::ImportSummary, BackupError> {
        let mongo = self.servers.mongo_args();
        let mut argv = vec!["chatctl", "backup", "import", "--in", path_str(input)];
        argv.extend(["--mongodb-uri", &mongo.mongodb_uri, "--mongodb-db", db_name]);
        if drop {
            argv.push("--drop");
        }
        let args: ImportArgs = match Cli::try_parse_from(argv) {
            Ok(Cli { command: Command::Backup { command: BackupCommand::Import(args) } }) => args,
            other => panic!("import arguments: {other:?}"),
        };
        backup_import::run(&args, &Progress::hidden()).await
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {}", path.display()))
}

fn member(user_id: &str, role: Role) -> MemberDoc {
    MemberDoc { user_id: user_id.to_owned(), role, muted_until: None }
}

fn chat(id: &str, kind: ChatKind, members: Vec<MemberDoc>) -> ChatDoc {
    let now = Utc::now();
    ChatDoc {
        id: id.to_owned(),
        kind,
        title: (kind == ChatKind::Group).then(|| format!("Группа {id}")),
        created_by: members[0].user_id.clone(),
        created_at: now - Duration::days(30),
        updated_at: now,
        last_seq: 0,
        last_message: None,
        direct_key: (kind == ChatKind::Direct).then(|| direct_key(&members[0].user_id, &members[1].user_id)),
        participants: members,
        external_id: None,
        last_update: None,
        last_removal: None,
        history_visibility: Default::default(),
        mode: Default::default(),
        last_moderation: None,
    }
}

/// Fills the database the way the services do: users with Cyrillic names, a direct
/// chat, two groups (one tied to a course), memberships with roles and read marks, and
/// messages including an edit, a tombstone and a reply.
async fn fill(store: &Store, messages: usize) {
    let fail = |e: chat_store::StoreError| -> ! { panic!("filling: {e}") };
    let now = Utc::now();
    let names = ["Ёлкина Анна", "Иван Петров", "Щукин Юрий", "Émile Zola", "Мария-Луиза Д'Арк"];
    let users: Vec<String> = (0..names.len()).map(|i| format!("u{i}")).collect();
    for (user, name) in users.iter().zip(names) {
        store.upsert_user(user, name, &["student".to_owned()], now).await.unwrap_or_else(|e| fail(e));
    }
    store.upsert_user("t1", "Преподаватель Ольга", &["teacher".to_owned()], now).await.unwrap_or_else(|e| fail(e));

    let mut course = chat("course", ChatKind::Group, vec![member("t1", Role::Owner), member("u0", Role::Member)]);
    course.external_id = Some("course-42".into());
    let chats = [
        chat("direct", ChatKind::Direct, vec![member("u0", Role::Member), member("u1", Role::Member)]),
        chat("group", ChatKind::Group, users.iter().map(|u| member(u, Role::Member)).collect()),
        course,
    ];
    for chat in &chats {
        store.insert_chat(chat).await.unwrap_or_else(|e| fail(e));
        let participants: Vec<ParticipantDoc> = chat
            .participants
            .iter()
            .map(|m| ParticipantDoc {
                id: ParticipantDoc::key(&chat.id, &m.user_id),
                chat_id: chat.id.clone(),
                user_id: m.user_id.clone(),
                role: m.role,
                joined_at: chat.created_at,
                joined_seq: 0,
                role_seq: None,
                last_read_seq: 0,
                muted: m.user_id == "u2",
                muted_until: None,
                added_by: Some(format!("cmd-create-{}", chat.id)),
            })
            .collect();
        store.insert_participants(&participants).await.unwrap_or_else(|e| fail(e));
    }
    store.set_participant_role("group", "u1", Role::Admin, 1, "cmd-role").await.unwrap_or_else(|e| fail(e));
    store.set_chat_member_role("group", "u1", Role::Admin).await.unwrap_or_else(|e| fail(e));

    // Message i goes to chat i % 3; each chat reserves its seqs in one step, as a batch
    // of the persister does.
    let mut next_seq: std::collections::HashMap<String, i64> = Default::default();
    for (index, chat) in chats.iter().enumerate() {
        let count = (index..messages).step_by(chats.len()).count() as u64;
        let last = store.reserve_seqs(&chat.id, count).await.unwrap_or_else(|e| fail(e)).unwrap_or(0);
        next_seq.insert(chat.id.clone(), (last + 1 - count) as i64);
    }
    let mut batch = Vec::new();
    let mut last: std::collections::HashMap<String, MessageDoc> = Default::default();
    for i in 0..messages {
        let chat = &chats[i % chats.len()];
        let seq = next_seq.get_mut(&chat.id).map(|next| std::mem::replace(next, *next + 1)).unwrap_or(0);
        let sender = &chat.participants[i % chat.participants.len()].user_id;
        let message = MessageDoc {
            id: format!("m{i:05}"),
            chat_id: chat.id.clone(),
            seq,
            updated_seq: seq,
            sender_id: sender.clone(),
            client_msg_id: format!("c{i}"),
            text: format!("Сообщение №{i}: привет, {sender}! 🙂"),
            reply_to: (i % 7 == 6).then(|| format!("m{:05}", i - 3)),
            created_at: now - Duration::seconds((messages - i) as i64),
            edited_at: None,
            deleted_at: None,
            last_command: None,
        };
        last.insert(chat.id.clone(), message.clone());
        batch.push(message);
        if batch.len() == 500 {
            store.insert_messages(&batch).await.unwrap_or_else(|e| fail(e));
            batch.clear();
        }
    }
    store.insert_messages(&batch).await.unwrap_or_else(|e| fail(e));
    for (chat_id, message) in &last {
        store
            .set_last_message(chat_id, &LastMessageDoc::of(message), message.created_at)
            .await
            .unwrap_or_else(|e| fail(e));
    }

    let edit_seq = store.reserve_seqs("group", 1).await.unwrap_or_else(|e| fail(e)).unwrap_or(0) as i64;
    let edited = doc! { "text": "исправлено", "edited_at": bson::DateTime::now(), "updated_seq": edit_seq, "last_command": "cmd-edit" };
    assert!(store.update_message("group", "m00001", edited).await.unwrap_or_else(|e| fail(e)).is_some());
    let delete_seq = store.reserve_seqs("direct", 1).await.unwrap_or_else(|e| fail(e)).unwrap_or(0) as i64;
    let deleted = doc! { "text": "", "deleted_at": bson::DateTime::now(), "updated_seq": delete_seq, "last_command": "cmd-delete" };
    assert!(store.update_message("direct", "m00000", deleted).await.unwrap_or_else(|e| fail(e)).is_some());

    assert!(store.advance_read_mark("group", "u0", 4).await.unwrap_or_else(|e| fail(e)));
    assert!(store.advance_read_mark("direct", "u1", 3).await.unwrap_or_else(|e| fail(e)));
    assert!(store.advance_read_mark("course", "t1", 1).await.unwrap_or_else(|e| fail(e)));

    // The moderation records: a report of the edited message, the history of the edit
    // and the delete, and the audit entry of the role change.
    let report = ReportDoc {
        id: chat_nats::moderation::report_id("group", "m00001", "u0"),
        chat_id: "group".into(),
        message_id: "m00001".into(),
        sender_id: "u1".into(),
        reporter_id: "u0".into(),
        reason: ReportReason::Harassment,
        note: Some("это уже второй раз".into()),
        state: ReportState::Open,
        created_at: now,
        resolved_at: None,
        resolved_by: None,
        action: None,
        resolved_with: None,
    };
    store.insert_report(&report).await.unwrap_or_else(|e| fail(e));
    for (id, chat_id, message_id, seq, after) in [
        ("cmd-edit", "group", "m00001", edit_seq, Some("исправлено")),
        ("cmd-delete", "direct", "m00000", delete_seq, None),
    ] {
        let record = HistoryDoc {
            id: id.into(),
            chat_id: chat_id.into(),
            message_id: message_id.into(),
            seq,
            actor: "u1".into(),
            at: now,
            before: "Сообщение".into(),
            after: after.map(str::to_owned),
        };
        store.append_history(&record).await.unwrap_or_else(|e| fail(e));
    }
    let entry = AuditDoc {
        id: "cmd-role".into(),
        at: now,
        actor: "u0".into(),
        action: AuditAction::MemberRoleChange,
        chat_id: "group".into(),
        target_users: vec!["u1".into()],
        details: [("role".to_owned(), "admin".to_owned())].into(),
    };
    store.record_audit(&entry).await.unwrap_or_else(|e| fail(e));
}

/// Every document of a collection, by `_id`.
async fn documents(store: &Store, collection: &str) -> Vec<Document> {
    let cursor = store.db.collection::<Document>(collection).find(doc! {}).sort(doc! { "_id": 1 }).await;
    let cursor = cursor.unwrap_or_else(|e| panic!("reading {collection}: {e}"));
    cursor.try_collect().await.unwrap_or_else(|e| panic!("reading {collection}: {e}"))
}

async fn assert_same_documents(source: &Store, target: &Store) {
    for collection in COLLECTIONS {
        let (expected, found) = (documents(source, collection).await, documents(target, collection).await);
        assert!(!expected.is_empty(), "{collection} was filled");
        assert_eq!(expected.len(), found.len(), "{collection}: document count");
        for (expected, found) in expected.iter().zip(&found) {
            assert_eq!(expected, found, "{collection}: same fields, values and BSON types");
            let bytes = |d: &Document| bson::to_vec(d).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(bytes(expected), bytes(found), "{collection}: same field order");
        }
    }
}

async fn index_names(store: &Store, collection: &str) -> Vec<String> {
    let mut names = store
        .db
        .collection::<Document>(collection)
        .list_index_names()
        .await
        .unwrap_or_else(|e| panic!("indexes of {collection}: {e}"));
    names.sort();
    names
}

fn expect_error<T: std::fmt::Debug>(result: Result<T, BackupError>) -> String {
    match result {
        Ok(value) => panic!("expected a failure, got {value:?}"),
        Err(error) => error.to_string(),
    }
}

fn decompress(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{e}"));
    BufReader::new(MultiGzDecoder::new(file)).lines().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{e}"))
}

fn compress(path: &Path, lines: &[String]) {
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
    let mut encoder = GzEncoder::new(file, Compression::fast());
    for line in lines {
        writeln!(encoder, "{line}").unwrap_or_else(|e| panic!("{e}"));
    }
    encoder.finish().unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_restores_every_document_exactly_and_the_indexes() {
    let h = Harness::start().await;
    h.store.ensure_indexes().await.unwrap_or_else(|e| panic!("{e}"));
    fill(&h.store, MESSAGES).await;
    let file = h.file("chat.jsonl.gz");

    let exported = h.export(&file).await.unwrap_or_else(|e| panic!("export: {e}"));
    eprintln!("{exported}");
    assert_eq!(exported.header.count("messages"), MESSAGES as u64);
    assert_eq!(exported.header.count("users"), 6);
    let metadata = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exported.bytes, metadata.len());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "private messages: owner only");

    let restored_name = format!("{}_restored", h.servers.db_name);
    let started = Instant::now();
    let imported = h.import(&file, &restored_name, false).await.unwrap_or_else(|e| panic!("import: {e}"));
    eprintln!("{imported}\n(import measured by the test: {:.2} s)", started.elapsed().as_secs_f64());
    assert_eq!(imported.header, exported.header);

    let restored = h.other_store(&restored_name).await;
    assert_same_documents(&h.store, &restored).await;
    for (collection, models) in chat_store::indexes::all() {
        let names = index_names(&restored, collection).await;
        for model in models {
            let name = model.options.and_then(|o| o.name).unwrap_or_default();
            assert!(names.contains(&name), "{collection}: index {name} missing from {names:?}");
        }
        assert_eq!(names, index_names(&h.store, collection).await, "{collection}: same indexes as the source");
    }

    // What the services read back: int64 seqs, dates, the tombstone, the edit, read marks.
    let message = restored.message("direct", "m00000").await.unwrap_or_else(|e| panic!("{e}"));
    let message = message.unwrap_or_else(|| panic!("the tombstone is restored"));
    assert!(message.deleted_at.is_some() && message.text.is_empty());
    let raw = restored.db.collection::<Document>("messages").find_one(doc! { "_id": "m00001" }).await;
    let raw = raw.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("the edit is restored"));
    assert!(matches!(raw.get("seq"), Some(Bson::Int64(_))), "seq stays int64: {raw:?}");
    assert!(matches!(raw.get("edited_at"), Some(Bson::DateTime(_))), "edited_at stays a date: {raw:?}");
    let mark = restored.participant("group", "u0").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mark.map(|p| p.last_read_seq), Some(4));
    let course = restored.chat_by_external_id("course-42").await.unwrap_or_else(|e| panic!("{e}"));
    let course = course.unwrap_or_else(|| panic!("the course chat is found by its external id"));
    assert_eq!(course.last_message.map(|m| m.seq), Some(course.last_seq));
    // The check docs/backup.md asks for: no chat is behind its newest message.
    let mut newest: std::collections::HashMap<String, i64> = Default::default();
    for message in documents(&restored, "messages").await {
        let (Ok(chat_id), Ok(seq)) = (message.get_str("chat_id"), message.get_i64("seq")) else {
            panic!("message without chat_id or int64 seq: {message:?}");
        };
        let entry = newest.entry(chat_id.to_owned()).or_default();
        *entry = (*entry).max(seq);
    }
    for head in documents(&restored, "chat_heads").await {
        let (Ok(id), Ok(last_seq)) = (head.get_str("_id"), head.get_i64("last_seq")) else {
            panic!("head without _id or int64 last_seq: {head:?}");
        };
        assert!(last_seq >= newest.get(id).copied().unwrap_or(0), "{id}: last_seq {last_seq} behind its messages");
    }
    assert_eq!(documents(&restored, "chat_heads").await.len(), 3, "every chat has its head");
    let found = restored.search_users("ёлк", None, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["Ёлкина Анна"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_a_database_with_chat_data_unless_told_to_drop_it() {
    let h = Harness::start().await;
    fill(&h.store, 30).await;
    let file = h.file("chat.jsonl.gz");
    h.export(&file).await.unwrap_or_else(|e| panic!("export: {e}"));
    let before = documents(&h.store, "messages").await;

    let error = expect_error(h.import(&file, &h.servers.db_name, false).await);
    assert!(error.contains("is not empty") && error.contains("--drop"), "{error}");

    // Data added after the backup disappears with --drop: the database is the backup again.
    h.store.upsert_user("late", "Поздний", &[], Utc::now()).await.unwrap_or_else(|e| panic!("{e}"));
    let imported = h.import(&file, &h.servers.db_name, true).await.unwrap_or_else(|e| panic!("import --drop: {e}"));
    assert!(imported.dropped);
    assert_eq!(documents(&h.store, "messages").await, before);
    assert!(h.store.user("late").await.unwrap_or_else(|e| panic!("{e}")).is_none());
    let messages_indexes = chat_store::indexes::all()
        .into_iter()
        .find(|(collection, _)| *collection == "messages")
        .map_or(0, |(_, models)| models.len());
    assert_eq!(messages_indexes, 3);
    assert_eq!(index_names(&h.store, "messages").await.len(), 1 + messages_indexes, "_id_ and the service's indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_is_refused_with_its_line_number_before_anything_is_dropped() {
    let h = Harness::start().await;
    fill(&h.store, 30).await;
    let file = h.file("chat.jsonl.gz");
    h.export(&file).await.unwrap_or_else(|e| panic!("export: {e}"));
    let before = documents(&h.store, "messages").await;
    let lines = decompress(&file);
    assert_eq!(
        lines.len(),
        1 + 6 + 1 + 2 + 1 + 9 + 30 + 3 + 3,
        "header, users, reports, message history, audit, participants, messages, chats, heads"
    );
    let (chats, heads) = lines[lines.len() - 6..].split_at(3);
    assert!(chats.iter().all(|line| line.starts_with("{\"c\":\"chats\"")), "chats come next to last");
    assert!(heads.iter().all(|line| line.starts_with("{\"c\":\"chat_heads\"")), "chat heads come last");

    // Cut in the middle of the compressed stream.
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let truncated = h.file("truncated.jsonl.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap_or_else(|e| panic!("{e}"));
    let error = expect_error(h.import(&truncated, &h.servers.db_name, true).await);
    assert!(error.starts_with("line "), "{error}");

    // One line garbled.
    let mut garbled = lines.clone();
    garbled[9] = garbled[9].replacen("\"d\":{", "\"d\":{{", 1);
    let corrupted = h.file("corrupted.jsonl.gz");
    compress(&corrupted, &garbled);
    let error = expect_error(h.import(&corrupted, &h.servers.db_name, true).await);
    assert!(error.starts_with("line 10: not a document line"), "{error}");

    // Whole lines missing at the end: the header's counts notice.
    let short = h.file("short.jsonl.gz");
    compress(&short, &lines[..lines.len() - 2]);
    let error = expect_error(h.import(&short, &h.servers.db_name, true).await);
    assert_eq!(error, "chat_heads: the header says 3 documents but the file holds 1 (truncated or edited?)");

    assert_eq!(documents(&h.store, "messages").await, before, "--drop waited for a good file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_version_1_backup_is_refused() {
    let h = Harness::start().await;
    let restored = format!("{}_restored", h.servers.db_name);
    let header = |format: &str, version: u64| {
        format!(
            r#"{{"format":"{format}","version":{version},"created_at":"2026-01-01T00:00:00Z","collections":{{"users":0}}}}"#
        )
    };
    let cases = [
        (vec![header("mongodump", 1)], "line 1: not an edu-chat backup (format is \"mongodump\""),
        (vec![header("edu-chat-backup", 2)], "line 1: backup version 2 is not supported; this chatctl reads version 1"),
        (vec!["{\"c\":\"users\",\"d\":{\"_id\":\"u1\"}}".to_owned()], "line 1: not an edu-chat backup"),
    ];
    for (lines, expected) in cases {
        let file = h.file("foreign.jsonl.gz");
        compress(&file, &lines);
        let error = expect_error(h.import(&file, &restored, false).await);
        assert!(error.starts_with(expected), "{error}");
    }
    let plain = h.file("plain.jsonl");
    std::fs::write(&plain, header("edu-chat-backup", 1)).unwrap_or_else(|e| panic!("{e}"));
    let error = expect_error(h.import(&plain, &restored, false).await);
    assert_eq!(
        error,
        "line 1: not an edu-chat backup (invalid gzip header); a mongodump archive is restored with mongorestore"
    );
    assert!(h.other_store(&restored).await.db.list_collection_names().await.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_never_overwrites_a_file() {
    let h = Harness::start().await;
    let file = h.file("existing.jsonl.gz");
    std::fs::write(&file, b"yesterday").unwrap_or_else(|e| panic!("{e}"));
    let error = expect_error(h.export(&file).await);
    assert!(error.ends_with("already exists; choose another name or remove it first"), "{error}");
    assert_eq!(std::fs::read(&file).unwrap_or_default(), b"yesterday");
    // An empty database exports to a file that imports back.
    let empty = h.file("empty.jsonl.gz");
    let exported = h.export(&empty).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exported.header.total(), 0);
    let restored = format!("{}_restored", h.servers.db_name);
    h.import(&empty, &restored, false).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read_dir(h.dir.path()).map(Iterator::count).unwrap_or(0), 2, "no temporary file is left");
}

/// `docs/backup.md`, "After a restore": each row's chat's `last_seq`, its head's or,
/// for a chat without a head, its chat document's (`local` names the chat id).
fn chat_last_seq(local: &str) -> Vec<Document> {
    vec![
        doc! { "$lookup": { "from": "chat_heads", "localField": local, "foreignField": "_id", "as": "head" } },
        doc! { "$unwind": { "path": "$head", "preserveNullAndEmptyArrays": true } },
        doc! { "$lookup": { "from": "chats", "localField": local, "foreignField": "_id", "as": "chat" } },
        doc! { "$unwind": { "path": "$chat", "preserveNullAndEmptyArrays": true } },
        doc! { "$set": { "last_seq": { "$ifNull": ["$head.last_seq", { "$ifNull": ["$chat.last_seq", -1] }] } } },
    ]
}

/// `docs/backup.md`, "After a restore": chats behind their newest message.
fn chats_behind_their_messages() -> Vec<Document> {
    let mut pipeline = vec![doc! { "$group": { "_id": "$chat_id", "newest": { "$max": "$seq" } } }];
    pipeline.extend(chat_last_seq("_id"));
    pipeline.push(doc! { "$match": { "$expr": { "$lt": ["$last_seq", "$newest"] } } });
    pipeline.push(doc! { "$project": { "newest": 1, "last_seq": 1 } });
    pipeline
}

/// `docs/backup.md`, "After a restore": read marks ahead of their chat.
fn read_marks_ahead_of_their_chat() -> Vec<Document> {
    let mut pipeline = chat_last_seq("chat_id");
    pipeline.push(doc! { "$match": { "$expr": { "$gt": ["$last_read_seq", "$last_seq"] } } });
    pipeline.push(doc! { "$project": { "chat_id": 1, "user_id": 1, "last_read_seq": 1, "last_seq": 1 } });
    pipeline
}

async fn aggregate(store: &Store, collection: &str, pipeline: Vec<Document>) -> Vec<Document> {
    let cursor = store.db.collection::<Document>(collection).aggregate(pipeline).await;
    let cursor = cursor.unwrap_or_else(|e| panic!("aggregate on {collection}: {e}"));
    cursor.try_collect().await.unwrap_or_else(|e| panic!("aggregate on {collection}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_after_a_restore_find_what_they_look_for_and_the_fixes_repair_it() {
    let h = Harness::start().await;
    fill(&h.store, 30).await;
    let file = h.file("chat.jsonl.gz");
    h.export(&file).await.unwrap_or_else(|e| panic!("export: {e}"));
    let restored_name = format!("{}_restored", h.servers.db_name);
    h.import(&file, &restored_name, false).await.unwrap_or_else(|e| panic!("import: {e}"));
    let restored = h.other_store(&restored_name).await;
    assert_eq!(aggregate(&restored, "messages", chats_behind_their_messages()).await, Vec::<Document>::new());
    assert_eq!(aggregate(&restored, "participants", read_marks_ahead_of_their_chat()).await, Vec::<Document>::new());

    // What a backup read in the wrong order would look like.
    let heads = restored.db.collection::<Document>("chat_heads");
    let broken = heads.update_one(doc! { "_id": "course" }, doc! { "$set": { "last_seq": 2_i64 } }).await;
    assert_eq!(broken.map(|r| r.modified_count).ok(), Some(1));
    let participants = restored.participants();
    let mark = participants
        .update_one(doc! { "_id": ParticipantDoc::key("course", "u0") }, doc! { "$set": { "last_read_seq": 9_i64 } });
    assert_eq!(mark.await.map(|r| r.modified_count).ok(), Some(1));

    let behind = aggregate(&restored, "messages", chats_behind_their_messages()).await;
    assert_eq!(behind, vec![doc! { "_id": "course", "newest": 10_i64, "last_seq": 2_i64 }]);
    let ahead = aggregate(&restored, "participants", read_marks_ahead_of_their_chat()).await;
    assert_eq!(ahead.len(), 1, "{ahead:?}");
    assert_eq!(ahead[0].get_str("_id").ok(), Some("course:u0"));

    // The fixes: raise last_seq to the newest message (never lower it) in the head and
    // the chat document, then cap the mark.
    for row in behind {
        for collection in ["chat_heads", "chats"] {
            let target = restored.db.collection::<Document>(collection);
            let fixed =
                target.update_one(doc! { "_id": row.get("_id") }, doc! { "$max": { "last_seq": row.get("newest") } });
            fixed.await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let ahead = aggregate(&restored, "participants", read_marks_ahead_of_their_chat()).await;
    assert_eq!(ahead, Vec::<Document>::new(), "raising last_seq to 10 covers the mark of 9");
    let course = restored.chat("course").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(course.map(|c| c.last_seq), Some(10), "still an int64 that the store reads");
}

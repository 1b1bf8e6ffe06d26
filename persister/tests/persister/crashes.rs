//! Every command stopped at every crash point, then replayed. For each case an
//! uninterrupted run counts the command's writes (`n`); then, on a fresh copy of the
//! same chats for each `k` in `0..=n`, a store handle that refuses every write after
//! the `k`-th stands in for a process that died there (`k = n`: every write done, the
//! events never published), and the same command is handled again as a redelivery,
//! both by the pipeline that failed (it retries in place, remembering what it knew)
//! and by a new owner of the partition (remembering nothing). The replayed state
//! (chats with their previews and `last_seq`, messages, memberships both places, the
//! events and live signals the replay publishes) must equal the uninterrupted run's, up
//! to seqs a crash left unused: a reserved seq is never reused, so the replay's are
//! higher, in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bson::{Bson, Document, doc};
use chat_nats::{
    commands::{
        Actor, ChatCreate, ChatModerate, ChatUpdate, Command, CommandEnvelope, CommandOutcome, MemberAdd, MemberMute,
        MemberRemove, MsgDelete, MsgEdit, MsgSend, Read,
    },
    model::{ChatKind, Posting, Role},
};
use chat_store::{
    Store, StoreError,
    docs::{ChatDoc, LastMessageDoc, MemberDoc, MessageDoc, ParticipantDoc},
};
use chat_testkit::Servers;
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use persister::{
    command::{HandleError, Issued},
    commands::handle_step,
    effects::Effects,
    group_commit::SendWrites,
    known_chats::KnownChats,
};
use serde_json::Value;

/// The reply subject of every command here; answers are checked apart from the state.
const REPLY: &str = "crash-test.reply";
/// Fields holding a chat seq (0 in `last_read_seq` means nothing read).
const SEQ_KEYS: [&str; 7] = ["seq", "last_seq", "updated_seq", "joined_seq", "role_seq", "last_read_seq", "up_to_seq"];

/// A command to stop at every write, on the chats [`seed`] writes.
struct Case {
    name: &'static str,
    /// One step: several sends, or one other command.
    step: Vec<(&'static str, Command)>,
}

fn cases() -> Vec<Case> {
    let send = |chat: &str, key: &str, text: &str, reply_to: Option<&str>| {
        Command::MsgSend(MsgSend {
            chat_id: chat.into(),
            client_msg_id: key.into(),
            text: text.into(),
            reply_to: reply_to.map(str::to_owned),
        })
    };
    let add = |users: &[&str], role| {
        Command::MemberAdd(MemberAdd {
            chat_id: "g".into(),
            user_ids: users.iter().map(|u| (*u).into()).collect(),
            role,
        })
    };
    let create = |chat: &str, kind, title: Option<&str>, members: &[&str]| {
        Command::ChatCreate(ChatCreate {
            chat_id: chat.into(),
            kind,
            title: title.map(str::to_owned),
            member_ids: members.iter().map(|m| (*m).into()).collect(),
            external_id: None,
            history_visibility: None,
        })
    };
    vec![
        Case { name: "msg.send", step: vec![("u2", send("g", "k-new", "hello", None))] },
        Case {
            name: "msg.send, a run over two chats",
            step: vec![
                ("u2", send("g", "k-a", "a", Some("m1"))),
                ("u3", send("g", "k-b", "b", None)),
                ("u1", send("h", "k-c", "c", None)),
            ],
        },
        Case {
            name: "msg.edit of the newest message",
            step: vec![(
                "u2",
                Command::MsgEdit(MsgEdit { chat_id: "g".into(), message_id: "m2".into(), text: "edited".into() }),
            )],
        },
        Case {
            name: "msg.delete of the newest message",
            step: vec![("u1", Command::MsgDelete(MsgDelete { chat_id: "g".into(), message_id: "m2".into() }))],
        },
        Case { name: "read", step: vec![("u3", Command::Read(Read { chat_id: "g".into(), up_to_seq: 3 }))] },
        Case {
            name: "chat.create, a group",
            step: vec![("u1", create("n", ChatKind::Group, Some("new"), &["u2", "u3"]))],
        },
        Case { name: "chat.create, a direct chat", step: vec![("u1", create("d", ChatKind::Direct, None, &["u4"]))] },
        Case {
            name: "chat.update",
            step: vec![(
                "u1",
                Command::ChatUpdate(ChatUpdate {
                    chat_id: "g".into(),
                    title: Some("renamed".into()),
                    history_visibility: Some(chat_nats::model::HistoryVisibility::SinceJoin),
                }),
            )],
        },
        Case { name: "member.add, two new members", step: vec![("u1", add(&["u4", "u5"], Role::Member))] },
        Case {
            name: "member.add, a role change named before a new member",
            step: vec![("u1", add(&["u2", "u6"], Role::Admin))],
        },
        Case {
            name: "member.remove",
            step: vec![("u1", Command::MemberRemove(MemberRemove { chat_id: "g".into(), user_id: "u3".into() }))],
        },
        Case {
            name: "chat.moderate",
            step: vec![(
                "u1",
                Command::ChatModerate(ChatModerate {
                    chat_id: "g".into(),
                    posting: Some(Posting::Admins),
                    slow_mode_seconds: Some(30),
                    frozen: None,
                }),
            )],
        },
        Case {
            name: "member.mute",
            step: vec![(
                "u1",
                Command::MemberMute(MemberMute {
                    chat_id: "g".into(),
                    user_id: "u2".into(),
                    until: Some(Utc::now() + chrono::Duration::days(30)),
                }),
            )],
        },
        Case {
            name: "member.remove, leaving",
            step: vec![("u2", Command::MemberRemove(MemberRemove { chat_id: "g".into(), user_id: "u2".into() }))],
        },
    ]
}

/// Who replays a command that stopped part way.
#[derive(Debug, Clone, Copy)]
enum Replayer {
    /// The pipeline whose step failed retries it with what it remembered.
    SamePipeline,
    /// A new owner of the partition, remembering nothing.
    NewOwner,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_replayed_after_a_crash_at_any_write_leaves_the_uninterrupted_state() {
    let servers = Servers::start().await;
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "crash-test").await.unwrap_or_else(|e| panic!("{e}"));
    let mut copies = 0usize;
    // A database per copy of the chats, so every run starts from the same documents.
    let mut fresh_store = || {
        copies += 1;
        Store::new(db.client().database(&format!("{}_{copies}", servers.db_name)))
    };
    let mut failures = Vec::new();
    let mut crash_points = 0usize;
    for case in cases() {
        let envelopes: Vec<CommandEnvelope> =
            case.step.iter().enumerate().map(|(i, (user, command))| envelope(i, user, command.clone())).collect();

        let reference = fresh_store();
        seed(&reference).await;
        // A handle of its own, so the seed's writes are not counted.
        let counted = reference.with_write_limit(usize::MAX);
        let mut known = KnownChats::default();
        let mut effects = Effects::default();
        run(&counted, &mut known, &envelopes, false, &mut effects)
            .await
            .unwrap_or_else(|e| panic!("{}: the uninterrupted run failed: {e}", case.name));
        let writes = counted.writes_made();
        assert!(writes > 0, "{}: the command wrote nothing", case.name);
        assert_answers_done(case.name, &effects);
        let expected = snapshot(&reference, &effects).await;

        for k in 0..=writes {
            for replayer in [Replayer::SamePipeline, Replayer::NewOwner] {
                // A step that wrote everything succeeded: only a crash before its
                // publishes stops it, and a new owner replays it.
                if k == writes && matches!(replayer, Replayer::SamePipeline) {
                    continue;
                }
                crash_points += 1;
                let store = fresh_store();
                seed(&store).await;
                let mut known = KnownChats::default();
                let crashed =
                    run(&store.with_write_limit(k), &mut known, &envelopes, false, &mut Effects::default()).await;
                match (&crashed, k < writes) {
                    (Err(HandleError::Store(StoreError::Interrupted { write, .. })), true) if *write == k + 1 => {}
                    (Ok(()), false) => {}
                    (other, _) => panic!("{}: stopped before write {}: {other:?}", case.name, k + 1),
                }
                if matches!(replayer, Replayer::NewOwner) {
                    known = KnownChats::default();
                }
                let mut effects = Effects::default();
                if let Err(error) = run(&store, &mut known, &envelopes, true, &mut effects).await {
                    failures.push(format!(
                        "{} after {k} of {writes} writes, {replayer:?}: replay failed: {error}",
                        case.name
                    ));
                    continue;
                }
                assert_answers_done(case.name, &effects);
                let got = snapshot(&store, &effects).await;
                if got != expected {
                    failures.push(format!(
                        "{} after {k} of {writes} writes ({}), replayed by {replayer:?}:\n  expected {}\n  got      {}",
                        case.name,
                        describe_crash(&crashed),
                        serde_json::to_string(&expected).unwrap_or_default(),
                        serde_json::to_string(&got).unwrap_or_default(),
                    ));
                }
            }
        }
    }
    assert!(crash_points > 40, "only {crash_points} crash points ran");
    assert!(failures.is_empty(), "{} of {crash_points} replays differ:\n{}", failures.len(), failures.join("\n"));
}

fn describe_crash(crashed: &Result<(), HandleError>) -> String {
    match crashed {
        Err(error) => error.to_string(),
        Ok(()) => "every write done, nothing published".into(),
    }
}

/// The same envelope for every copy of the chats: same id, so a replay recognises it.
fn envelope(index: usize, user: &str, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        v: 1,
        id: format!("cmd-{index}-{}", command.name()),
        actor: Actor { user_id: user.into(), roles: vec![] },
        reference: None,
        conn_id: None,
        reply: Some(REPLY.into()),
        issued_at: at(100),
        command,
    }
}

async fn run(
    store: &Store,
    known: &mut KnownChats,
    envelopes: &[CommandEnvelope],
    redelivered: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let issued: Vec<Issued> = envelopes
        .iter()
        .map(|envelope| Issued { envelope: envelope.clone(), traceparent: None, redelivered })
        .collect();
    let step: Vec<&Issued> = issued.iter().collect();
    // The handle's write limit applies to the merged writes too: they go through it.
    let limits = chat_core::config::ChatLimitArgs::default();
    let policy = chat_core::policy::Policy::default();
    let sends = SendWrites::new(store, std::time::Duration::from_secs(1));
    let moderation = chat_core::moderation::ModerationArgs::default();
    handle_step(store, &sends, &limits, &policy, &moderation, known, &step, effects).await
}

fn assert_answers_done(case: &str, effects: &Effects) {
    let answers: Vec<CommandOutcome> = effects
        .notices
        .iter()
        .filter(|(subject, _)| subject == REPLY)
        .filter_map(|(_, body)| serde_json::from_slice(body).ok())
        .collect();
    assert!(!answers.is_empty(), "{case}: no answer");
    for answer in answers {
        assert!(matches!(answer, CommandOutcome::Done { .. }), "{case}: {answer:?}");
    }
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + second, 0).single().unwrap_or_default()
}

/// Group `g` (u1 owner; u2, u3 members; messages m1 and m2 by u2, seqs 2 and 3) and
/// group `h` (u1 owner, u2 member, no messages), as the handlers would have stored them.
async fn seed(store: &Store) {
    let member = |user_id: &str, role| MemberDoc { user_id: user_id.into(), role, muted_until: None };
    let message = |id: &str, seq: i64, text: &str| MessageDoc {
        id: id.into(),
        chat_id: "g".into(),
        seq,
        updated_seq: seq,
        sender_id: "u2".into(),
        client_msg_id: format!("k-{id}"),
        text: text.into(),
        reply_to: None,
        created_at: at(seq),
        edited_at: None,
        deleted_at: None,
        last_command: None,
    };
    let messages = [message("m1", 2, "first"), message("m2", 3, "second")];
    let chat = |id: &str, members: Vec<MemberDoc>, last: Option<&MessageDoc>| ChatDoc {
        id: id.into(),
        kind: ChatKind::Group,
        title: Some(id.into()),
        created_by: "u1".into(),
        created_at: at(1),
        updated_at: at(3),
        last_seq: last.map_or(1, |m| m.seq),
        last_message: last.map(LastMessageDoc::of),
        participants: members,
        external_id: None,
        direct_key: None,
        last_update: None,
        last_removal: None,
        history_visibility: Default::default(),
        mode: Default::default(),
        last_moderation: None,
    };
    let g = chat(
        "g",
        vec![member("u1", Role::Owner), member("u2", Role::Member), member("u3", Role::Member)],
        messages.last(),
    );
    let h = chat("h", vec![member("u1", Role::Owner), member("u2", Role::Member)], None);
    let mut memberships = Vec::new();
    for chat in [&g, &h] {
        for member in &chat.participants {
            memberships.push(ParticipantDoc {
                id: ParticipantDoc::key(&chat.id, &member.user_id),
                chat_id: chat.id.clone(),
                user_id: member.user_id.clone(),
                role: member.role,
                joined_at: at(1),
                joined_seq: 1,
                role_seq: None,
                last_read_seq: 0,
                muted: false,
                muted_until: None,
                added_by: Some(format!("create-{}", chat.id)),
            });
        }
    }
    let seeded = async {
        store.ensure_indexes().await?;
        store.insert_chat(&g).await?;
        store.insert_chat(&h).await?;
        store.insert_messages(&messages).await?;
        store.insert_participants(&memberships).await
    };
    seeded.await.unwrap_or_else(|e| panic!("seeding: {e}"));
}

/// What a replay must reproduce: the three collections, the events, and the live
/// signals, in a form where times, fresh message ids and unused seqs do not count.
async fn snapshot(store: &Store, effects: &Effects) -> Value {
    let mut state = serde_json::Map::new();
    // Messages in chat order: a replayed send's id is not the uninterrupted run's.
    let collections = [
        (chat_store::collections::CHATS, doc! { "_id": 1 }),
        (chat_store::collections::CHAT_HEADS, doc! { "_id": 1 }),
        (chat_store::collections::MESSAGES, doc! { "chat_id": 1, "seq": 1 }),
        (chat_store::collections::PARTICIPANTS, doc! { "_id": 1 }),
    ];
    for (collection, order) in collections {
        let documents: Vec<Document> = store
            .db
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(order)
            .await
            .unwrap_or_else(|e| panic!("reading {collection}: {e}"))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("reading {collection}: {e}"));
        let values = documents
            .into_iter()
            .map(|mut document| {
                // The chat document's copy of its head trails it, copied by a task of its
                // own; the head is compared.
                if collection == chat_store::collections::CHATS {
                    document.remove("last_seq");
                    document.remove("last_message");
                }
                Bson::Document(document).into_relaxed_extjson()
            })
            .collect();
        state.insert(collection.into(), Value::Array(values));
    }
    let events = effects.events.iter().filter_map(|(event, ..)| serde_json::to_value(event).ok()).collect();
    state.insert("events".into(), Value::Array(events));
    let live = effects
        .notices
        .iter()
        .filter(|(subject, _)| subject != REPLY)
        .map(|(subject, body)| {
            let body = serde_json::from_slice(body).unwrap_or(Value::Null);
            Value::Array(vec![Value::String(subject.clone()), body])
        })
        .collect();
    state.insert("notices".into(), Value::Array(live));
    normalise(Value::Object(state))
}

/// Times become `"time"`; each chat's seqs are renumbered densely in their order (0
/// stays 0); message ids become `<chat>@<seq>` after the renumbering, so a message the
/// replay stored under a new id and seq compares equal to the uninterrupted run's.
fn normalise(mut state: Value) -> Value {
    let mut seqs: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for item in items(&state) {
        collect_seqs(item, seqs.entry(chat_of(item)).or_default());
    }
    let renumber: HashMap<String, HashMap<i64, i64>> = seqs
        .into_iter()
        .map(|(chat, seqs)| {
            let ranks = seqs.into_iter().filter(|&seq| seq > 0).enumerate().map(|(rank, seq)| (seq, rank as i64 + 1));
            (chat, ranks.collect())
        })
        .collect();
    let mut ids = BTreeMap::new();
    for message in state.get(chat_store::collections::MESSAGES).and_then(Value::as_array).into_iter().flatten() {
        let chat = chat_of(message);
        let seq = message["seq"].as_i64().and_then(|seq| renumber.get(&chat)?.get(&seq).copied()).unwrap_or(0);
        ids.insert(message["_id"].as_str().unwrap_or_default().to_owned(), format!("{chat}@{seq}"));
    }
    let no_seqs = HashMap::new();
    for part in state.as_object_mut().into_iter().flat_map(|parts| parts.values_mut()) {
        for item in part.as_array_mut().into_iter().flatten() {
            let chat = chat_of(item);
            rewrite(item, None, renumber.get(&chat).unwrap_or(&no_seqs), &ids);
        }
    }
    state
}

/// Every document, event and notice of a snapshot.
fn items(state: &Value) -> impl Iterator<Item = &Value> {
    state.as_object().into_iter().flat_map(|parts| parts.values()).filter_map(Value::as_array).flatten()
}

/// The chat a document, event or `[subject, body]` notice belongs to.
fn chat_of(item: &Value) -> String {
    let item = if item.is_array() { &item[1] } else { item };
    item.get("chat_id").or_else(|| item.get("_id")).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn collect_seqs(value: &Value, seqs: &mut BTreeSet<i64>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match field.as_i64() {
                    Some(seq) if SEQ_KEYS.contains(&key.as_str()) => {
                        seqs.insert(seq);
                    }
                    _ => collect_seqs(field, seqs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_seqs(item, seqs)),
        _ => {}
    }
}

fn rewrite(value: &mut Value, key: Option<&str>, renumber: &HashMap<i64, i64>, ids: &BTreeMap<String, String>) {
    let is_seq = key.is_some_and(|key| SEQ_KEYS.contains(&key));
    let is_time = key.is_some_and(|key| key.ends_with("_at"));
    let replacement = match &*value {
        Value::Object(fields) if fields.contains_key("$date") => Some(Value::String("time".into())),
        Value::Number(number) if is_seq => {
            number.as_i64().and_then(|seq| renumber.get(&seq)).map(|&seq| Value::from(seq))
        }
        Value::String(_) if is_time => Some(Value::String("time".into())),
        Value::String(text) => ids.get(text).map(|label| Value::String(label.clone())).or_else(|| {
            // An event id, `<chat>:<seq>`.
            let (chat, seq) = text.rsplit_once(':').filter(|_| key == Some("id"))?;
            let seq = renumber.get(&seq.parse::<i64>().ok()?)?;
            Some(Value::String(format!("{chat}:{seq}")))
        }),
        _ => None,
    };
    if let Some(replacement) = replacement {
        *value = replacement;
        return;
    }
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                rewrite(field, Some(name), renumber, ids);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite(item, key, renumber, ids)),
        _ => {}
    }
}

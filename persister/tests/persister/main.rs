//! The persister against real NATS and the MongoDB-compatible store: commands are
//! published straight to `CHAT_CMD`, results read from `CHAT_EVT`, reply subjects and
//! MongoDB. One binary: [`replays`] shares the harness; [`crashes`] drives the
//! handlers alone against the store; [`moderation`] covers chat modes and mutes.

mod crashes;
mod moderation;
mod replays;
mod reports;

use std::time::Duration;

use async_nats::jetstream;
use chat_core::config::{AdminArgs, LogArgs, LogFormat, ShutdownArgs};
use chat_nats::{
    commands::{Actor, ChatCreate, Command, CommandEnvelope, CommandOutcome, MemberAdd, MemberRemove, MsgSend},
    events::UserDeliveryKind,
    model::{ChatKind, ErrorCode, Role},
    publish::{Outgoing, publish_one},
    subjects,
};
use chat_store::Store;
use chat_testkit::Servers;
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    servers: Servers,
    nats: async_nats::Client,
    js: jetstream::Context,
    store: Store,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Harness {
        let servers = Servers::start().await;
        let shutdown = CancellationToken::new();
        let config = persister::Config {
            log: LogArgs { log: "warn".into(), log_format: LogFormat::Pretty },
            nats: servers.nats_args(),
            mongo: servers.mongo_args(),
            admin: AdminArgs { admin_addr: Some(([127, 0, 0, 1], 0).into()) },
            shutdown: ShutdownArgs { shutdown_grace_s: 5 },
            batch_max: 500,
            lease_ttl_ms: 3000,
            head_copy_ms: 200,
            chats: chat_core::config::ChatLimitArgs::default(),
            policy: chat_core::policy::PolicyArgs::default(),
            replica_name: "persister".into(),
            moderation: chat_core::moderation::ModerationArgs::default(),
            retention: persister::retention::RetentionArgs::default(),
        };
        persister::start(config, shutdown.clone()).await.unwrap_or_else(|e| panic!("persister: {e}"));
        let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("nats: {e}"));
        let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
        Harness { js: jetstream::new(nats.clone()), nats, store: Store::new(db), servers, shutdown }
    }

    fn envelope(&self, user: &str, command: Command, reply: Option<String>) -> CommandEnvelope {
        CommandEnvelope {
            v: 1,
            id: chat_core::ids::new_id(),
            actor: Actor { user_id: user.into(), roles: vec![] },
            reference: Some("r".into()),
            conn_id: Some("conn-1".into()),
            reply,
            issued_at: chrono::Utc::now(),
            command,
        }
    }

    /// Publishes as the api when the envelope waits for an outcome (only the api does),
    /// else as an edge.
    async fn publish(&self, envelope: &CommandEnvelope) {
        let subject = match envelope.reply {
            Some(_) => subjects::api_command(envelope.chat_id(), envelope.command.name()),
            None => subjects::command(envelope.chat_id(), envelope.command.name()),
        };
        let payload = serde_json::to_vec(envelope).unwrap_or_default();
        publish_one(&self.js, Outgoing::new(subject, envelope.id.clone(), payload.into()))
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Publishes and waits for the outcome on a reply subject.
    async fn submit(&self, user: &str, command: Command) -> CommandOutcome {
        self.deliver(&self.envelope(user, command, Some(self.nats.new_inbox()))).await
    }

    /// Publishes an envelope that names a reply subject and waits for its outcome.
    async fn deliver(&self, envelope: &CommandEnvelope) -> CommandOutcome {
        let reply = envelope.reply.clone().unwrap_or_else(|| panic!("deliver needs a reply subject"));
        let mut answers = self.nats.subscribe(reply).await.unwrap_or_else(|e| panic!("{e}"));
        self.publish(envelope).await;
        let answer = tokio::time::timeout(WAIT, answers.next()).await.ok().flatten().expect("an outcome");
        serde_json::from_slice(&answer.payload).unwrap_or_else(|e| panic!("outcome: {e}"))
    }

    async fn create_group(&self, owner: &str, members: &[&str]) -> String {
        let chat_id = chat_core::ids::new_id();
        let command = Command::ChatCreate(ChatCreate {
            chat_id: chat_id.clone(),
            kind: ChatKind::Group,
            title: Some("t".into()),
            member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
            external_id: None,
            history_visibility: None,
        });
        assert!(matches!(self.submit(owner, command).await, CommandOutcome::Done { created: true, .. }));
        chat_id
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn send(chat_id: &str, key: &str, text: &str) -> Command {
    Command::MsgSend(MsgSend { chat_id: chat_id.into(), client_msg_id: key.into(), text: text.into(), reply_to: None })
}

async fn next_event(events: &mut async_nats::Subscriber) -> Value {
    let message = tokio::time::timeout(WAIT, events.next()).await.ok().flatten().expect("an event");
    serde_json::from_slice(&message.payload).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_chats_keeps_per_chat_order_and_dense_seqs() {
    let h = Harness::start().await;
    let chats =
        [h.create_group("u1", &["u2"]).await, h.create_group("u1", &["u2"]).await, h.create_group("u2", &[]).await];
    let mut events = h.nats.subscribe(subjects::EVT_ALL.to_owned()).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..90 {
        let chat = &chats[i % 3];
        h.publish(&h.envelope("u2", send(chat, &format!("k{i}"), &format!("m{i}")), None)).await;
    }
    let mut per_chat: std::collections::HashMap<String, Vec<(u64, String)>> = Default::default();
    for _ in 0..90 {
        let event = next_event(&mut events).await;
        assert_eq!(event["type"], "msg.created");
        let chat = event["chat_id"].as_str().unwrap_or_default().to_owned();
        per_chat.entry(chat).or_default().push((
            event["seq"].as_u64().unwrap_or(0),
            event["message"]["text"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for (index, chat) in chats.iter().enumerate() {
        let got = &per_chat[chat];
        let expected: Vec<(u64, String)> = (0..30).map(|n| (2 + n as u64, format!("m{}", n * 3 + index))).collect();
        assert_eq!(got, &expected, "chat {index}: seqs follow creation (seq 1) densely, in send order");
        let stored = h.store.chat(chat).await.unwrap_or_default().expect("chat");
        assert_eq!(stored.last_seq, 31);
        assert_eq!(stored.last_message.map(|m| m.seq), Some(31));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_document_copies_its_head_within_a_few_seconds() {
    let h = Harness::start().await;
    let chat = h.create_group("u1", &["u2"]).await;
    for i in 0..5 {
        h.submit("u2", send(&chat, &format!("k{i}"), &format!("m{i}"))).await;
    }
    let head = h.store.head(&chat).await.unwrap_or_default().expect("a head");
    assert_eq!(head.last_seq, 6, "created at 1, five messages");
    // The pinned fields of `chats` follow (persister/src/head_copies.rs; 200 ms here).
    let copied = async {
        loop {
            let document = h.store.chats().find_one(bson::doc! { "_id": &chat }).await.unwrap_or_default();
            let document = document.expect("the chat document");
            if document.last_seq == head.last_seq {
                return document;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let document = tokio::time::timeout(Duration::from_secs(5), copied).await.expect("copied within 5 s");
    assert_eq!(document.last_message.map(|m| (m.seq, m.text)), Some((6, "m4".to_owned())));
    assert!(document.updated_at >= head.updated_at, "the copy dates the chat by its newest message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_moved_behind_the_persisters_back_is_read_again() {
    let h = Harness::start().await;
    let chat = h.create_group("u1", &["u2"]).await;
    let first = h.submit("u2", send(&chat, "k1", "one")).await;
    assert!(matches!(&first, CommandOutcome::Done { message: Some(m), .. } if m.seq == 2), "{first:?}");
    // Another writer (a previous owner of the partition, say) reserves seqs the
    // persister's remembered `last_seq` does not know of.
    let moved = h.store.reserve_seqs(&chat, 5).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(moved, Some(7));
    let second = h.submit("u2", send(&chat, "k2", "two")).await;
    assert!(matches!(&second, CommandOutcome::Done { message: Some(m), .. } if m.seq == 8), "{second:?}");
    let stored = h.store.chat(&chat).await.unwrap_or_default().expect("chat");
    assert_eq!(stored.last_seq, 8);
    assert_eq!(stored.last_message.map(|m| (m.seq, m.text)), Some((8, "two".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_after_sending_can_send_no_more() {
    let h = Harness::start().await;
    let chat = h.create_group("u1", &["u2"]).await;
    assert!(matches!(h.submit("u2", send(&chat, "k1", "one")).await, CommandOutcome::Done { created: true, .. }));
    let removal = Command::MemberRemove(MemberRemove { chat_id: chat.clone(), user_id: "u2".into() });
    assert!(matches!(h.submit("u1", removal).await, CommandOutcome::Done { .. }));
    let outcome = h.submit("u2", send(&chat, "k2", "two")).await;
    assert!(
        matches!(outcome, CommandOutcome::Rejected(chat_nats::commands::Rejection { code: ErrorCode::NotFound, .. })),
        "{outcome:?}"
    );
    assert!(matches!(h.submit("u1", send(&chat, "k3", "three")).await, CommandOutcome::Done { created: true, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_is_stored_once_and_the_resender_gets_the_original() {
    let h = Harness::start().await;
    let chat = h.create_group("u1", &["u2"]).await;
    let first = h.submit("u1", send(&chat, "dup", "hello")).await;
    let CommandOutcome::Done { message: Some(first), created: true, .. } = first else { panic!("{first:?}") };
    let mut copies =
        h.nats.subscribe(subjects::user("u1", UserDeliveryKind::MsgCreated)).await.unwrap_or_else(|e| panic!("{e}"));
    let second = h.submit("u1", send(&chat, "dup", "hello again")).await;
    let CommandOutcome::Done { message: Some(second), created: false, .. } = second else { panic!("{second:?}") };
    assert_eq!(first.id, second.id);
    assert_eq!(second.text, "hello", "the original is kept");
    let copy = next_event(&mut copies).await;
    assert_eq!(copy["message"]["id"], first.id.as_str());
    let count = h.store.messages().count_documents(bson::doc! { "chat_id": &chat }).await.unwrap_or(0);
    assert_eq!(count, 1);
    // The resend was found by its insert: the chat's preview is the original again,
    // and the seq reserved for the resend stays unused.
    let head = h.store.head(&chat).await.unwrap_or_default().expect("a head");
    assert_eq!(head.last_message.map(|m| (m.id, m.text)), Some((first.id.clone(), "hello".to_owned())));
    assert_eq!(head.last_seq, 3, "created at 1, the original at 2, 3 reserved for the resend");
    // A different sender may use the same key.
    let other = h.submit("u2", send(&chat, "dup", "mine")).await;
    assert!(matches!(&other, CommandOutcome::Done { created: true, message: Some(m), .. } if m.seq == 4), "{other:?}");
    let listed = h.store.chat(&chat).await.unwrap_or_default().expect("chat");
    assert_eq!(listed.last_message.map(|m| m.text), Some("mine".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_bad_replies_and_bad_roles_are_rejected_to_the_issuer() {
    let h = Harness::start().await;
    let chat = h.create_group("owner", &["member"]).await;
    let outcome = h.submit("eve", send(&chat, "k", "hi")).await;
    assert!(
        matches!(&outcome, CommandOutcome::Rejected(r) if r.code == ErrorCode::NotFound
            && r.client_msg_id.as_deref() == Some("k") && r.reference.as_deref() == Some("r")),
        "{outcome:?}"
    );

    let bad_reply = Command::MsgSend(MsgSend {
        chat_id: chat.clone(),
        client_msg_id: "k2".into(),
        text: "re".into(),
        reply_to: Some("no-such-message".into()),
    });
    assert!(matches!(h.submit("member", bad_reply).await, CommandOutcome::Rejected(r) if r.code == ErrorCode::Invalid));

    let add = Command::MemberAdd(MemberAdd { chat_id: chat.clone(), user_ids: vec!["x".into()], role: Role::Member });
    assert!(
        matches!(h.submit("member", add.clone()).await, CommandOutcome::Rejected(r) if r.code == ErrorCode::Forbidden)
    );
    let promote =
        Command::MemberAdd(MemberAdd { chat_id: chat.clone(), user_ids: vec!["y".into()], role: Role::Owner });
    assert!(matches!(h.submit("owner", promote).await, CommandOutcome::Rejected(r) if r.code == ErrorCode::Forbidden));
    let CommandOutcome::Done { chat: Some(updated), .. } = h.submit("owner", add).await else { panic!("owner adds") };
    assert_eq!(updated.role_of("x"), Some(Role::Member));
    assert_eq!(updated.last_seq, 2, "member.added took seq 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_platform_roles_may_bind_a_chat_to_an_external_id() {
    let h = Harness::start().await;
    let course = |external_id: &str| {
        Command::ChatCreate(ChatCreate {
            chat_id: chat_core::ids::new_id(),
            kind: ChatKind::Group,
            title: Some("Physics 9B".into()),
            member_ids: vec![],
            external_id: Some(external_id.into()),
            history_visibility: None,
        })
    };
    let by = |user: &str, roles: &[&str], command: Command| {
        let mut envelope = h.envelope(user, command, Some(h.nats.new_inbox()));
        envelope.actor.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        envelope
    };
    for roles in [&[][..], &["student"], &["teacher"]] {
        let envelope = by("stu", roles, course("course-9b"));
        let outcome = h.deliver(&envelope).await;
        assert!(
            matches!(&outcome, CommandOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
            "{roles:?}: {outcome:?}"
        );
        let stored = h.store.chat(envelope.chat_id()).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(stored.is_none(), "{roles:?} created a course's chat");
    }
    for (role, external_id) in [("service", "course-9b"), ("admin", "course-9c")] {
        let outcome = h.deliver(&by("platform", &[role], course(external_id))).await;
        assert!(matches!(outcome, CommandOutcome::Done { created: true, .. }), "{role}: {outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_command_is_dropped_and_the_next_one_still_runs() {
    let h = Harness::start().await;
    let chat = h.create_group("u1", &[]).await;
    h.js.publish(subjects::command(&chat, "msg.send"), "{not json".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(h.submit("u1", send(&chat, "k", "after")).await, CommandOutcome::Done { created: true, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_mongodb_is_down_commands_wait_and_then_persist_in_order() {
    let mut h = Harness::start().await;
    let chat = h.create_group("u1", &[]).await;
    let mut events = h.nats.subscribe(subjects::chat_events(&chat)).await.unwrap_or_else(|e| panic!("{e}"));
    let store = h.servers.mongo.as_mut().expect("the local store runs in this test");
    // A graceful stop: the store under test loses unflushed writes on SIGKILL.
    store.terminate();
    for i in 0..10 {
        h.publish(&h.envelope("u1", send(&chat, &format!("k{i}"), &format!("m{i}")), None)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let store = h.servers.mongo.as_mut().expect("store");
    store.restart().await;
    let mut texts = Vec::new();
    while texts.len() < 10 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next()).await.ok().flatten().expect("event");
        let event: Value = serde_json::from_slice(&event.payload).unwrap_or_default();
        texts.push(event["message"]["text"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(texts, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let count = h.store.messages().count_documents(bson::doc! { "chat_id": &chat }).await.unwrap_or(0);
    assert_eq!(count, 10, "each stored once");
}

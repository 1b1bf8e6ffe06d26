//! A crash between two writes of one command, replayed: each test writes the state a
//! crash after the command's first write leaves, then delivers the same command again
//! (same id), and checks that the replay completes the second write.

use std::time::Duration;

use bson::doc;
use chat_core::config::{AdminArgs, LogArgs, LogFormat, ShutdownArgs};
use chat_nats::{
    commands::{Actor, Command, CommandEnvelope, CommandOutcome},
    model::{ChatKind, Role},
    publish::{Outgoing, publish_one},
    subjects,
};
use chat_store::{
    Store,
    docs::{ParticipantDoc, RemovalMark, bson_seq},
};
use chat_testkit::Servers;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    _servers: Servers,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
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
            lease_ttl_ms: 1000,
            replica_name: "persister".into(),
        };
        persister::start(config, shutdown.clone()).await.unwrap_or_else(|e| panic!("persister: {e}"));
        let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("nats: {e}"));
        let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
        Harness {
            js: async_nats::jetstream::new(nats.clone()),
            nats,
            store: Store::new(db),
            _servers: servers,
            shutdown,
        }
    }

    fn envelope(&self, user: &str, command: Command) -> CommandEnvelope {
        CommandEnvelope {
            v: 1,
            id: chat_core::ids::new_id(),
            actor: Actor { user_id: user.into(), roles: vec![] },
            reference: None,
            conn_id: None,
            reply: Some(self.nats.new_inbox()),
            issued_at: chrono::Utc::now(),
            command,
        }
    }

    /// Publishes `envelope` and waits for its outcome.
    async fn deliver(&self, envelope: &CommandEnvelope) -> CommandOutcome {
        let reply = envelope.reply.clone().unwrap_or_default();
        let mut answers = self.nats.subscribe(reply).await.unwrap_or_else(|e| panic!("{e}"));
        let subject = subjects::command(envelope.chat_id(), envelope.command.name());
        let payload = serde_json::to_vec(envelope).unwrap_or_default();
        // A new message id: JetStream would drop a republish under the same one.
        publish_one(&self.js, Outgoing::new(subject, chat_core::ids::new_id(), payload.into()))
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        let answer = tokio::time::timeout(WAIT, answers.next()).await.ok().flatten().expect("an outcome");
        serde_json::from_slice(&answer.payload).unwrap_or_else(|e| panic!("outcome: {e}"))
    }

    async fn run(&self, user: &str, command: Command) -> CommandOutcome {
        self.deliver(&self.envelope(user, command)).await
    }

    async fn group(&self, owner: &str, members: &[&str]) -> String {
        let chat_id = chat_core::ids::new_id();
        let command = Command::ChatCreate {
            chat_id: chat_id.clone(),
            kind: ChatKind::Group,
            title: Some("t".into()),
            member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
            external_id: None,
        };
        assert!(matches!(self.run(owner, command).await, CommandOutcome::Done { .. }));
        chat_id
    }

    async fn send(&self, chat_id: &str, user: &str, text: &str) -> String {
        let command = Command::MsgSend {
            chat_id: chat_id.into(),
            client_msg_id: chat_core::ids::new_id(),
            text: text.into(),
            reply_to: None,
        };
        match self.run(user, command).await {
            CommandOutcome::Done { message: Some(message), .. } => message.id,
            other => panic!("send: {other:?}"),
        }
    }

    async fn preview(&self, chat_id: &str) -> String {
        let chat = self.store.chat(chat_id).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
        chat.last_message.map(|last| last.text).unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_replayed_after_its_chat_write_removes_the_membership_too() {
    let h = Harness::start().await;
    let chat_id = h.group("u1", &["u2"]).await;
    let removal = h.envelope("u1", Command::MemberRemove { chat_id: chat_id.clone(), user_id: "u2".into() });
    // The first write of a removal: the chat document loses the member and records it.
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    let mark =
        RemovalMark { command_id: removal.id.clone(), seq: bson_seq(seq), user_id: "u2".into(), role: Role::Member };
    let mark = bson::to_bson(&mark).unwrap_or_else(|e| panic!("{e}"));
    h.store
        .update_chat(
            &chat_id,
            doc! { "$pull": { "participants": { "user_id": "u2" } }, "$set": { "last_removal": mark } },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(h.store.participant(&chat_id, "u2").await.unwrap_or_else(|e| panic!("{e}")).is_some());

    let outcome = h.deliver(&removal).await;
    assert!(matches!(outcome, CommandOutcome::Done { created: false, .. }), "{outcome:?}");
    assert!(h.store.participant(&chat_id, "u2").await.unwrap_or_else(|e| panic!("{e}")).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addition_replayed_after_its_membership_write_adds_to_the_chat_too() {
    let h = Harness::start().await;
    let chat_id = h.group("u1", &[]).await;
    let addition = h.envelope(
        "u1",
        Command::MemberAdd { chat_id: chat_id.clone(), user_ids: vec!["u3".into()], role: Role::Admin },
    );
    // The first write of an addition: the membership document.
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    let membership = ParticipantDoc {
        id: ParticipantDoc::key(&chat_id, "u3"),
        chat_id: chat_id.clone(),
        user_id: "u3".into(),
        role: Role::Admin,
        joined_at: chrono::Utc::now(),
        joined_seq: bson_seq(seq),
        last_read_seq: 0,
        muted: false,
        added_by: Some(addition.id.clone()),
    };
    h.store.insert_participants(&[membership]).await.unwrap_or_else(|e| panic!("{e}"));

    assert!(matches!(h.deliver(&addition).await, CommandOutcome::Done { .. }));
    let chat = h.store.chat(&chat_id).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
    let member = chat.participants.iter().find(|m| m.user_id == "u3").map(|m| m.role);
    assert_eq!(member, Some(Role::Admin));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_replayed_after_its_membership_write_changes_the_chat_too() {
    let h = Harness::start().await;
    let chat_id = h.group("u1", &["u2"]).await;
    let promotion = h.envelope(
        "u1",
        Command::MemberAdd { chat_id: chat_id.clone(), user_ids: vec!["u2".into()], role: Role::Admin },
    );
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    h.store
        .set_participant_role(&chat_id, "u2", Role::Admin, seq, &promotion.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(matches!(h.deliver(&promotion).await, CommandOutcome::Done { .. }));
    let chat = h.store.chat(&chat_id).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
    let member = chat.participants.iter().find(|m| m.user_id == "u2").map(|m| m.role);
    assert_eq!(member, Some(Role::Admin));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_or_delete_replayed_after_its_message_write_refreshes_the_preview() {
    let h = Harness::start().await;
    let chat_id = h.group("u1", &[]).await;
    let message_id = h.send(&chat_id, "u1", "first").await;
    assert_eq!(h.preview(&chat_id).await, "first");

    let edit = h.envelope(
        "u1",
        Command::MsgEdit { chat_id: chat_id.clone(), message_id: message_id.clone(), text: "second".into() },
    );
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    let set = doc! { "text": "second", "updated_seq": bson_seq(seq), "last_command": &edit.id };
    h.store.update_message(&chat_id, &message_id, set).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(h.deliver(&edit).await, CommandOutcome::Done { created: false, .. }));
    assert_eq!(h.preview(&chat_id).await, "second");

    let delete = h.envelope("u1", Command::MsgDelete { chat_id: chat_id.clone(), message_id: message_id.clone() });
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    let set = doc! {
        "text": "",
        "deleted_at": bson::DateTime::now(),
        "updated_seq": bson_seq(seq),
        "last_command": &delete.id,
    };
    h.store.update_message(&chat_id, &message_id, set).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(h.deliver(&delete).await, CommandOutcome::Done { created: false, .. }));
    assert_eq!(h.preview(&chat_id).await, "");
}

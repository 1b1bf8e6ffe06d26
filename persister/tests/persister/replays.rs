//! A crash between two writes of one command, replayed: each test writes the state a
//! crash after the command's first write leaves, then delivers the same command again
//! (same id), and checks that the replay completes the second write.

use bson::doc;
use chat_nats::{
    commands::{ChatModerate, Command, CommandEnvelope, CommandOutcome, MemberAdd, MemberRemove, MsgDelete, MsgEdit},
    events::EventKind,
    model::Role,
    subjects,
};
use chat_store::docs::{LastMessageDoc, ParticipantDoc, RemovalMark, bson_seq};

use super::{Harness, next_event};

impl Harness {
    /// An envelope that asks for its outcome on a fresh reply subject.
    fn replayable(&self, user: &str, command: Command) -> CommandEnvelope {
        self.envelope(user, command, Some(self.nats.new_inbox()))
    }

    async fn send_text(&self, chat_id: &str, user: &str, text: &str) -> String {
        match self.submit(user, super::send(chat_id, &chat_core::ids::new_id(), text)).await {
            CommandOutcome::Done { message: Some(message), .. } => message.id,
            other => panic!("send: {other:?}"),
        }
    }

    /// A `msg.edit` by u1 whose message write landed before a crash: its replay is
    /// what is left to deliver.
    async fn edit_stored_before_a_crash(&self, chat_id: &str, message_id: &str, text: &str) -> CommandEnvelope {
        let edit = self.replayable(
            "u1",
            Command::MsgEdit(MsgEdit { chat_id: chat_id.into(), message_id: message_id.into(), text: text.into() }),
        );
        let seq = self.store.reserve_seqs(chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
        let set = doc! { "text": text, "updated_seq": bson_seq(seq), "last_command": &edit.id };
        self.store.update_message(chat_id, message_id, set).await.unwrap_or_else(|e| panic!("{e}"));
        edit
    }

    /// A `msg.delete` by u1 whose message write landed before a crash.
    async fn delete_stored_before_a_crash(&self, chat_id: &str, message_id: &str) -> CommandEnvelope {
        let delete = self
            .replayable("u1", Command::MsgDelete(MsgDelete { chat_id: chat_id.into(), message_id: message_id.into() }));
        let seq = self.store.reserve_seqs(chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
        let set = doc! {
            "text": "",
            "deleted_at": bson::DateTime::now(),
            "updated_seq": bson_seq(seq),
            "last_command": &delete.id,
        };
        self.store.update_message(chat_id, message_id, set).await.unwrap_or_else(|e| panic!("{e}"));
        delete
    }

    async fn preview(&self, chat_id: &str) -> String {
        let chat = self.store.chat(chat_id).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
        chat.last_message.map(|last| last.text).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_replayed_after_its_chat_write_removes_the_membership_too() {
    let h = Harness::start().await;
    let chat_id = h.create_group("u1", &["u2"]).await;
    let removal =
        h.replayable("u1", Command::MemberRemove(MemberRemove { chat_id: chat_id.clone(), user_id: "u2".into() }));
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
    let chat_id = h.create_group("u1", &[]).await;
    let addition = h.replayable(
        "u1",
        Command::MemberAdd(MemberAdd { chat_id: chat_id.clone(), user_ids: vec!["u3".into()], role: Role::Admin }),
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
        role_seq: None,
        last_read_seq: 0,
        muted: false,
        muted_until: None,
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
    let chat_id = h.create_group("u1", &["u2"]).await;
    let promotion = h.replayable(
        "u1",
        Command::MemberAdd(MemberAdd { chat_id: chat_id.clone(), user_ids: vec!["u2".into()], role: Role::Admin }),
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
    let chat_id = h.create_group("u1", &[]).await;
    let message_id = h.send_text(&chat_id, "u1", "first").await;
    assert_eq!(h.preview(&chat_id).await, "first");

    let edit = h.edit_stored_before_a_crash(&chat_id, &message_id, "second").await;
    assert!(matches!(h.deliver(&edit).await, CommandOutcome::Done { created: false, .. }));
    assert_eq!(h.preview(&chat_id).await, "second");

    let delete = h.delete_stored_before_a_crash(&chat_id, &message_id).await;
    assert!(matches!(h.deliver(&delete).await, CommandOutcome::Done { created: false, .. }));
    assert_eq!(h.preview(&chat_id).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_replayed_after_its_reservation_is_stored_under_a_newer_seq() {
    let h = Harness::start().await;
    let chat_id = h.create_group("u1", &[]).await;
    let send = h.replayable("u1", super::send(&chat_id, "k1", "kept"));
    // The first write of a run of sends: `last_seq` and the preview, in one update; the
    // crash comes before the message is inserted.
    let ghost = LastMessageDoc {
        id: "ghost".into(),
        seq: 2,
        sender_id: "u1".into(),
        text: "kept".into(),
        created_at: chrono::Utc::now(),
    };
    let moved = h.store.advance_head(&chat_id, 1, &ghost, chrono::Utc::now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(moved);

    let outcome = h.deliver(&send).await;
    let CommandOutcome::Done { message: Some(message), created: true, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(message.seq, 3, "the reserved seq stays a gap, never reused");
    let chat = h.store.chat(&chat_id).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
    assert_eq!(chat.last_seq, 3);
    assert_eq!(chat.last_message.map(|last| (last.id, last.seq)), Some((message.id, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_or_delete_stored_before_a_freeze_still_publishes_its_event_on_replay() {
    let h = Harness::start().await;
    let chat_id = h.create_group("u1", &[]).await;
    let message_id = h.send_text(&chat_id, "u1", "first").await;
    let mut edits =
        h.nats.subscribe(subjects::event(&chat_id, EventKind::MsgEdited)).await.unwrap_or_else(|e| panic!("{e}"));
    let mut deletes =
        h.nats.subscribe(subjects::event(&chat_id, EventKind::MsgDeleted)).await.unwrap_or_else(|e| panic!("{e}"));

    // The edit's message write lands, then the crash, then an owner freezes the chat.
    let edit = h.edit_stored_before_a_crash(&chat_id, &message_id, "second").await;
    let freeze = Command::ChatModerate(ChatModerate {
        chat_id: chat_id.clone(),
        posting: None,
        slow_mode_seconds: None,
        frozen: Some(true),
    });
    assert!(matches!(h.submit("u1", freeze).await, CommandOutcome::Done { .. }));

    let outcome = h.deliver(&edit).await;
    assert!(matches!(outcome, CommandOutcome::Done { created: false, .. }), "the replay is not refused: {outcome:?}");
    let event = next_event(&mut edits).await;
    assert_eq!(event["message"]["text"], "second", "the edges hear of the stored edit: {event}");

    let delete = h.delete_stored_before_a_crash(&chat_id, &message_id).await;
    let outcome = h.deliver(&delete).await;
    assert!(matches!(outcome, CommandOutcome::Done { created: false, .. }), "the replay is not refused: {outcome:?}");
    let event = next_event(&mut deletes).await;
    assert_eq!(event["message_id"], message_id.as_str(), "the edges hear of the stored delete: {event}");

    let fresh = h.replayable(
        "u1",
        Command::MsgEdit(MsgEdit { chat_id: chat_id.clone(), message_id: message_id.clone(), text: "third".into() }),
    );
    let CommandOutcome::Rejected(refused) = h.deliver(&fresh).await else { panic!("a new edit of a frozen chat") };
    assert!(refused.message.contains("frozen"), "{}", refused.message);
}

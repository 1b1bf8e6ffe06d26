//! Reports and their resolution as the persister decides them, whoever publishes the
//! command: moderators only, once per reporter, the first resolution standing, and a
//! resolution or edit redelivered after a crash recording its history and audit entry
//! once.

use bson::doc;
use chat_nats::{
    commands::{Command, CommandOutcome, MsgEdit, MsgReport, ReportResolve},
    model::ErrorCode,
    moderation::{ReportReason, ReportState, ResolveAction},
};

use chat_store::{docs::bson_seq, message_history::HistoryDoc};

use super::Harness;

impl Harness {
    async fn count(&self, collection: &str, filter: bson::Document) -> u64 {
        self.store
            .db
            .collection::<bson::Document>(collection)
            .count_documents(filter)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn report(chat_id: &str, message_id: &str) -> Command {
    Command::MsgReport(MsgReport {
        chat_id: chat_id.into(),
        message_id: message_id.into(),
        reason: ReportReason::Spam,
        note: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_moderators_resolve_and_a_redelivered_resolution_records_once() {
    let h = Harness::start().await;
    let chat_id = h.create_group("u1", &["u2"]).await;
    let message = match h.submit("u2", super::send(&chat_id, "k1", "buy now")).await {
        CommandOutcome::Done { message: Some(message), .. } => message.id,
        other => panic!("send: {other:?}"),
    };
    let first = match h.submit("u1", report(&chat_id, &message)).await {
        CommandOutcome::Reported { report, created: true } => *report,
        other => panic!("report: {other:?}"),
    };
    assert_eq!(first.state, ReportState::Open);
    match h.submit("u1", report(&chat_id, &message)).await {
        CommandOutcome::Reported { report, created: false } => assert_eq!(report.id, first.id),
        other => panic!("a second report: {other:?}"),
    }
    match h.submit("u3", report(&chat_id, &message)).await {
        CommandOutcome::Rejected(rejection) => assert_eq!(rejection.code, ErrorCode::NotFound),
        other => panic!("an outsider's report: {other:?}"),
    }

    let resolve = Command::ReportResolve(ReportResolve {
        chat_id: chat_id.clone(),
        report_id: first.id.clone(),
        action: ResolveAction::DeleteMessage,
        mute_until: None,
    });
    // The chat's owner is no moderator unless a platform role says so.
    match h.submit("u1", resolve.clone()).await {
        CommandOutcome::Rejected(rejection) => assert_eq!(rejection.code, ErrorCode::Forbidden, "{rejection:?}"),
        other => panic!("a member's resolve: {other:?}"),
    }
    // A crash after the tombstone and its history record, before the report was
    // marked: the redelivery finishes it and records nothing twice.
    let mut by_admin = h.envelope("root", resolve.clone(), Some(h.nats.new_inbox()));
    by_admin.actor.roles = vec!["admin".into()];
    let seq = h.store.reserve_seqs(&chat_id, 1).await.unwrap_or_else(|e| panic!("{e}")).expect("seq");
    let record = HistoryDoc {
        id: by_admin.id.clone(),
        chat_id: chat_id.clone(),
        message_id: message.clone(),
        seq: bson_seq(seq),
        actor: "root".into(),
        at: chrono::Utc::now(),
        before: "buy now".into(),
        after: None,
    };
    h.store.append_history(&record).await.unwrap_or_else(|e| panic!("{e}"));
    let deleted = h.store.delete_message(&chat_id, &message, seq, &by_admin.id, chrono::Utc::now()).await;
    assert!(deleted.unwrap_or_else(|e| panic!("{e}")).is_some());
    match h.deliver(&by_admin).await {
        CommandOutcome::Reported { report, created: true } => {
            assert_eq!((report.state, report.action), (ReportState::Resolved, Some(ResolveAction::DeleteMessage)));
        }
        other => panic!("resolve: {other:?}"),
    }
    let stored = h.store.message(&chat_id, &message).await.unwrap_or_else(|e| panic!("{e}")).expect("the message");
    assert!(stored.deleted_at.is_some() && stored.text.is_empty(), "{stored:?}");
    assert_eq!(stored.updated_seq, bson_seq(seq), "no second delete");

    // Another moderator's resolve finds it resolved: the first decision stands.
    let mut again = h.envelope("root2", resolve, Some(h.nats.new_inbox()));
    again.actor.roles = vec!["admin".into()];
    match h.deliver(&again).await {
        CommandOutcome::Reported { report, created: false } => assert_eq!(report.resolved_by.as_deref(), Some("root")),
        other => panic!("a second resolve: {other:?}"),
    }
    assert_eq!(h.count("message_history", doc! { "message_id": &message }).await, 1);
    assert_eq!(h.count("audit", doc! { "action": "report_resolve" }).await, 1);
    let record = h.store.history_of(&chat_id, &message).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record[0].before.as_str(), record[0].actor.as_str()), ("buy now", "root"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_edit_appends_its_history_once() {
    let h = Harness::start().await;
    let chat_id = h.create_group("u1", &["u2"]).await;
    let message = match h.submit("u1", super::send(&chat_id, "k1", "draft")).await {
        CommandOutcome::Done { message: Some(message), .. } => message.id,
        other => panic!("send: {other:?}"),
    };
    let edit =
        Command::MsgEdit(MsgEdit { chat_id: chat_id.clone(), message_id: message.clone(), text: "final".into() });
    let envelope = h.envelope("u1", edit, Some(h.nats.new_inbox()));
    // A crash after the history record, before the edit: the redelivery edits and
    // appends nothing more.
    let record = HistoryDoc {
        id: envelope.id.clone(),
        chat_id: chat_id.clone(),
        message_id: message.clone(),
        seq: 2,
        actor: "u1".into(),
        at: chrono::Utc::now(),
        before: "draft".into(),
        after: Some("final".into()),
    };
    h.store.append_history(&record).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(h.deliver(&envelope).await, CommandOutcome::Done { created: true, .. }));
    let records = h.store.history_of(&chat_id, &message).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0].before.as_str(), records[0].after.as_deref()), ("draft", Some("final")));
    assert_eq!(records[0].id, envelope.id, "the command's id");
}

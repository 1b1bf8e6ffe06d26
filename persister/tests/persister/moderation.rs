//! Chat modes and mutes as the persister enforces them on sends, edits and read marks.

use chat_nats::{
    commands::{ChatModerate, Command, CommandOutcome, MemberMute, MsgEdit, Read, Rejection},
    events::EventKind,
    model::{ErrorCode, Posting},
    roles, subjects,
};

use super::{Harness, next_event, send};

fn moderate(chat_id: &str, posting: Option<Posting>, slow: Option<u32>, frozen: Option<bool>) -> Command {
    Command::ChatModerate(ChatModerate { chat_id: chat_id.into(), posting, slow_mode_seconds: slow, frozen })
}

fn mute(chat_id: &str, user_id: &str, seconds: Option<i64>) -> Command {
    let until = seconds.map(|s| chrono::Utc::now() + chrono::Duration::seconds(s));
    Command::MemberMute(MemberMute { chat_id: chat_id.into(), user_id: user_id.into(), until })
}

fn rejection(outcome: CommandOutcome) -> Rejection {
    match outcome {
        CommandOutcome::Rejected(rejection) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn done(outcome: &CommandOutcome) -> bool {
    matches!(outcome, CommandOutcome::Done { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_chats_are_read_only_and_thaw() {
    let h = Harness::start().await;
    let chat = h.create_group("owner", &["kid"]).await;
    let sent = h.submit("kid", send(&chat, "k1", "before")).await;
    let Some(message_id) = (match &sent {
        CommandOutcome::Done { message: Some(message), .. } => Some(message.id.clone()),
        _ => None,
    }) else {
        panic!("send: {sent:?}")
    };
    let mut events =
        h.nats.subscribe(subjects::event(&chat, EventKind::ChatModerated)).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(rejection(h.submit("kid", moderate(&chat, None, None, Some(true))).await).code, ErrorCode::Forbidden);
    assert!(done(&h.submit("owner", moderate(&chat, None, None, Some(true))).await));
    let event = next_event(&mut events).await;
    assert_eq!(event["mode"]["frozen"], true, "every member hears of the freeze: {event}");

    for user in ["kid", "owner"] {
        let refused = rejection(h.submit(user, send(&chat, "k2", "during")).await);
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert!(refused.message.contains("frozen"), "{}", refused.message);
    }
    let edit = Command::MsgEdit(MsgEdit { chat_id: chat.clone(), message_id, text: "changed".into() });
    assert_eq!(rejection(h.submit("kid", edit).await).code, ErrorCode::Forbidden, "no edits while frozen");
    let read = Command::Read(Read { chat_id: chat.clone(), up_to_seq: 1 });
    assert!(done(&h.submit("kid", read).await), "read marks still move");
    let chat_doc = h.store.chat(&chat).await.unwrap_or_else(|e| panic!("{e}")).expect("the chat");
    assert!(chat_doc.mode.frozen);

    assert!(done(&h.submit("owner", moderate(&chat, None, None, Some(false))).await));
    assert!(done(&h.submit("kid", send(&chat, "k3", "after")).await), "an unfrozen chat takes sends again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcement_chats_let_only_owners_and_admins_post() {
    let h = Harness::start().await;
    let chat = h.create_group("teacher", &["kid"]).await;
    assert!(done(&h.submit("kid", send(&chat, "k1", "hi")).await), "the pipeline knows the chat open");
    assert!(done(&h.submit("teacher", moderate(&chat, Some(Posting::Admins), None, None)).await));
    let refused = rejection(h.submit("kid", send(&chat, "k2", "hi")).await);
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert!(refused.message.contains("announcement"), "{}", refused.message);
    assert!(done(&h.submit("teacher", send(&chat, "k3", "homework")).await));
    let too_slow = rejection(h.submit("teacher", moderate(&chat, None, Some(3601), None)).await);
    assert_eq!(too_slow.code, ErrorCode::Invalid);
    assert_eq!(rejection(h.submit("teacher", moderate(&chat, None, None, None)).await).code, ErrorCode::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_members_wait_out_the_time_left_and_unmute() {
    let h = Harness::start().await;
    let chat = h.create_group("teacher", &["kid", "other"]).await;
    let mut events =
        h.nats.subscribe(subjects::event(&chat, EventKind::MemberMuted)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejection(h.submit("other", mute(&chat, "kid", Some(600))).await).code, ErrorCode::Forbidden);
    assert_eq!(rejection(h.submit("kid", mute(&chat, "teacher", Some(600))).await).code, ErrorCode::Forbidden);
    assert_eq!(rejection(h.submit("teacher", mute(&chat, "nobody", Some(600))).await).code, ErrorCode::NotFound);
    assert_eq!(rejection(h.submit("teacher", mute(&chat, "kid", Some(-5))).await).code, ErrorCode::Invalid);
    assert!(done(&h.submit("teacher", mute(&chat, "kid", Some(600))).await));
    let event = next_event(&mut events).await;
    assert_eq!(event["user_id"], "kid");
    assert!(event["until"].is_string(), "{event}");

    let refused = rejection(h.submit("kid", send(&chat, "k1", "hi")).await);
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert!(refused.message.contains("muted"), "{}", refused.message);
    assert!(refused.retry_after_ms.is_some_and(|ms| ms > 590_000 && ms <= 600_000), "{refused:?}");
    assert!(done(&h.submit("other", send(&chat, "k2", "hi")).await), "others still post");

    assert!(done(&h.submit("teacher", mute(&chat, "kid", None)).await));
    assert_eq!(next_event(&mut events).await["until"], serde_json::Value::Null);
    assert!(done(&h.submit("kid", send(&chat, "k3", "back")).await), "an unmuted member posts");

    // A platform admin mutes anyone, the chat's owner too.
    let mut by_admin = h.envelope("principal", mute(&chat, "teacher", Some(60)), Some(h.nats.new_inbox()));
    by_admin.actor.roles = vec![roles::PLATFORM_ADMIN.into()];
    assert!(done(&h.deliver(&by_admin).await));
    let owner_muted = h.store.participant(&chat, "teacher").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(owner_muted.is_some_and(|member| member.muted_until.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_spaces_members_sends_with_retry_after() {
    let h = Harness::start().await;
    let chat = h.create_group("teacher", &["kid"]).await;
    assert!(done(&h.submit("teacher", moderate(&chat, None, Some(60), None)).await));
    assert!(done(&h.submit("kid", send(&chat, "k1", "first")).await));
    let refused = rejection(h.submit("kid", send(&chat, "k2", "second")).await);
    assert_eq!(refused.code, ErrorCode::RateLimited);
    assert!(refused.retry_after_ms.is_some_and(|ms| ms > 50_000 && ms <= 60_000), "{refused:?}");
    for key in ["k3", "k4"] {
        assert!(done(&h.submit("teacher", send(&chat, key, "exempt")).await), "owners are exempt");
    }
    assert!(done(&h.submit("teacher", moderate(&chat, None, Some(0), None)).await));
    assert!(done(&h.submit("kid", send(&chat, "k5", "off again")).await), "0 switches slow mode off");
}

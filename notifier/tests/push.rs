//! Push requests against real NATS, Redis and the MongoDB-compatible store: an event
//! handled twice (a redelivery to this replica or another one, however late) makes
//! each offline member's request once.

use chat_core::connect::LazyRedis;
use chat_nats::{
    model::{ChatKind, Message, Role},
    streams,
};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc},
};
use chat_testkit::Servers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handled_twice_makes_each_push_request_once() {
    let servers = Servers::start().await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = async_nats::jetstream::new(nats);
    streams::ensure_streams_exist(&js, servers.nats_args().stream_settings()).await.unwrap_or_else(|e| panic!("{e}"));
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(db);
    let redis = LazyRedis::new(&servers.redis_args()).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now();
    let member = |user_id: &str| MemberDoc { user_id: user_id.into(), role: Role::Member };
    let chat = ChatDoc {
        id: "c1".into(),
        kind: ChatKind::Group,
        title: Some("Physics".into()),
        created_by: "u1".into(),
        created_at: now,
        updated_at: now,
        last_seq: 1,
        last_message: None,
        participants: vec![member("u1"), member("u2"), member("u3")],
        external_id: None,
        direct_key: None,
        last_update: None,
        last_removal: None,
    };
    store.insert_chat(&chat).await.unwrap_or_else(|e| panic!("{e}"));
    let message = Message {
        id: "m1".into(),
        chat_id: "c1".into(),
        seq: 1,
        updated_seq: 1,
        sender_id: "u1".into(),
        client_msg_id: "k1".into(),
        text: "hello".into(),
        reply_to: None,
        created_at: now,
        edited_at: None,
        deleted_at: None,
    };

    let first = notifier::push::for_message(&store, &redis, &js, &message).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, 2, "u2 and u3 are offline");
    // JetStream would also drop these inside its two-minute window; the count shows
    // that nothing was even published again.
    let again = notifier::push::for_message(&store, &redis, &js, &message).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, 0);
    let mut push = js.get_stream(streams::PUSH_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(push.info().await.unwrap_or_else(|e| panic!("{e}")).state.messages, 2);
}

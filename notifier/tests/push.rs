//! Push requests against real NATS, Redis and the MongoDB-compatible store: an event
//! handled twice (a redelivery to this replica or another one, however late) makes
//! each offline member's request once, and a membership change heard on NATS is seen
//! by the next message's requests, and only members without a live connection (as the
//! presence worker records them) get one.

use chat_core::connect::LazyRedis;
use chat_nats::{
    events::{ChatEvent, EventBody, EventKind, LiveSignal},
    model::{ChatKind, Message, Role},
    streams, subjects,
};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc, ParticipantDoc},
};
use chat_testkit::Servers;
use notifier::{
    badges::{Badges, ReadMarks},
    directory::{Directory, Invalidations},
    push,
};
use presence::conn_state::ConnState;

struct Setup {
    _servers: Servers,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    store: Store,
    redis: LazyRedis,
}

/// Servers, and chat `c1` ("Physics") with `members`, stored as the persister stores it.
async fn setup(members: &[(&str, bool)]) -> Setup {
    let servers = Servers::start().await;
    let nats = async_nats::connect(servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = async_nats::jetstream::new(nats.clone());
    streams::ensure_streams_exist(&js, servers.nats_args().stream_settings()).await.unwrap_or_else(|e| panic!("{e}"));
    let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(db);
    let redis = LazyRedis::new(&servers.redis_args()).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now();
    let chat = ChatDoc {
        id: "c1".into(),
        kind: ChatKind::Group,
        title: Some("Physics".into()),
        created_by: "u1".into(),
        created_at: now,
        updated_at: now,
        last_seq: 1,
        last_message: None,
        participants: members
            .iter()
            .map(|(id, _)| MemberDoc { user_id: (*id).into(), role: Role::Member, muted_until: None })
            .collect(),
        external_id: None,
        direct_key: None,
        last_update: None,
        last_removal: None,
        history_visibility: Default::default(),
        mode: Default::default(),
        last_moderation: None,
    };
    store.insert_chat(&chat).await.unwrap_or_else(|e| panic!("{e}"));
    let memberships: Vec<ParticipantDoc> = members.iter().map(|(id, muted)| membership(id, *muted)).collect();
    store.insert_participants(&memberships).await.unwrap_or_else(|e| panic!("{e}"));
    Setup { _servers: servers, nats, js, store, redis }
}

fn membership(user_id: &str, muted: bool) -> ParticipantDoc {
    ParticipantDoc {
        id: ParticipantDoc::key("c1", user_id),
        chat_id: "c1".into(),
        user_id: user_id.into(),
        role: Role::Member,
        joined_at: chrono::Utc::now(),
        joined_seq: 1,
        role_seq: None,
        last_read_seq: 0,
        muted,
        muted_until: None,
        added_by: None,
    }
}

fn message(id: &str, seq: u64) -> Message {
    Message {
        id: id.into(),
        chat_id: "c1".into(),
        seq,
        updated_seq: seq,
        sender_id: "u1".into(),
        client_msg_id: id.into(),
        text: "hello".into(),
        reply_to: None,
        created_at: chrono::Utc::now(),
        edited_at: None,
        deleted_at: None,
    }
}

impl Setup {
    async fn push(&self, directory: &mut Directory, message: &Message) -> usize {
        let mut badges = Badges::default();
        self.push_counting(directory, &mut badges, message).await
    }

    async fn push_counting(&self, directory: &mut Directory, badges: &mut Badges, message: &Message) -> usize {
        push::for_message(&self.store, directory, badges, &self.redis, &self.js, message)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The badge of the push request stored for a message and user.
    async fn badge(&self, message_id: &str, user_id: &str) -> u64 {
        let stream = self.js.get_stream(streams::PUSH_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
        let raw = stream
            .get_last_raw_message_by_subject(&subjects::push(user_id))
            .await
            .unwrap_or_else(|e| panic!("no push for {user_id}: {e}"));
        let request: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap_or_default();
        assert_eq!(request["message_id"], message_id, "the last push for {user_id}");
        request["badge"].as_u64().unwrap_or_else(|| panic!("no badge in {request}"))
    }

    /// Stores a message of u1 in `c1` at `seq`, as the persister would before its event.
    async fn store_message(&self, seq: u64) -> Message {
        let message = message(&format!("m{seq}"), seq);
        let doc = chat_store::docs::MessageDoc {
            id: message.id.clone(),
            chat_id: message.chat_id.clone(),
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            updated_seq: i64::try_from(seq).unwrap_or(i64::MAX),
            sender_id: message.sender_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
            text: message.text.clone(),
            reply_to: None,
            created_at: message.created_at,
            edited_at: None,
            deleted_at: None,
            last_command: None,
        };
        self.store.insert_messages(&[doc]).await.unwrap_or_else(|e| panic!("{e}"));
        message
    }

    /// The users the push requests stored for a message are addressed to.
    async fn pushed_to(&self, message_id: &str) -> Vec<String> {
        let mut stream = self.js.get_stream(streams::PUSH_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
        let last = stream.info().await.unwrap_or_else(|e| panic!("{e}")).state.last_sequence;
        let mut users = Vec::new();
        for seq in 1..=last {
            let raw = stream.get_raw_message(seq).await.unwrap_or_else(|e| panic!("{e}"));
            let request: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap_or_default();
            if request["message_id"] == message_id {
                users.push(request["user_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        users.sort();
        users
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handled_twice_makes_each_push_request_once() {
    let s = setup(&[("u1", false), ("u2", false), ("u3", false), ("u4", true)]).await;
    let mut directory = Directory::default();
    let m1 = message("m1", 1);

    assert_eq!(s.push(&mut directory, &m1).await, 2, "u2 and u3 are offline; u4 has muted the chat");
    // JetStream would also drop these inside its two-minute window; the count shows
    // that nothing was even published again.
    assert_eq!(s.push(&mut directory, &m1).await, 0);
    assert_eq!(s.pushed_to("m1").await, ["u2", "u3"]);
    let stream = s.js.get_stream(streams::PUSH_STREAM).await.unwrap_or_else(|e| panic!("{e}"));
    let request = stream.get_raw_message(1).await.unwrap_or_else(|e| panic!("{e}"));
    let request: serde_json::Value = serde_json::from_slice(&request.payload).unwrap_or_default();
    assert_eq!(request["chat_title"], "Physics");
    assert_eq!(request["sender_name"], "u1", "a sender the directory does not know is named by id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_heard_on_nats_reaches_the_next_messages_requests() {
    let s = setup(&[("u1", false), ("u2", false)]).await;
    let mut directory = Directory::default();
    let mut invalidations = Invalidations::subscribe(&s.nats).await.unwrap_or_else(|e| panic!("{e}"));
    invalidations.apply(&mut directory);
    assert_eq!(s.push(&mut directory, &message("m1", 2)).await, 1);
    assert_eq!(s.pushed_to("m1").await, ["u2"]);

    // The persister removes u2 and adds u3, and publishes the events (which another
    // notifier replica's consumer may handle); this replica hears them on core NATS.
    s.store.delete_participant("c1", "u2").await.unwrap_or_else(|e| panic!("{e}"));
    s.store.insert_participants(&[membership("u3", false)]).await.unwrap_or_else(|e| panic!("{e}"));
    for (kind, seq) in [(EventKind::MemberRemoved, 3), (EventKind::MemberAdded, 4)] {
        let event = kind.name();
        let body = format!(r#"{{"v":1,"id":"c1:{seq}","chat_id":"c1","seq":{seq},"type":"{event}"}}"#);
        s.nats.publish(subjects::event("c1", kind), body.into()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    s.nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    // A round trip on the same connection: the events have reached the subscription.
    s.nats.request("_no_responder_.ping", "".into()).await.ok();

    invalidations.apply(&mut directory);
    assert_eq!(s.push(&mut directory, &message("m2", 5)).await, 1);
    assert_eq!(s.pushed_to("m2").await, ["u3"], "the removed member gets nothing, the added one does");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_without_a_live_connection_get_a_push_request() {
    let members = [("u1", false), ("u2", false), ("u3", false), ("u4", false), ("u5", false), ("u6", false)];
    let s = setup(&members).await;
    let redis = s.redis.get().await.unwrap_or_else(|e| panic!("{e}"));
    let presence = ConnState::default();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let in_a_minute = now_ms + 60_000;
    let connected = |user_id, conn_id, expires_ms| {
        let (presence, mut redis) = (&presence, redis.clone());
        async move {
            presence.connected(&mut redis, user_id, conn_id, now_ms, expires_ms).await.unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let disconnected = |user_id, conn_id| {
        let (presence, mut redis) = (&presence, redis.clone());
        async move { presence.disconnected(&mut redis, user_id, conn_id, now_ms).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    // u2 is connected; u3 was, but closed the app (the grace has not passed, so they
    // are still announced online); u4's only connection expired a second ago (its edge
    // died); u5 has two connections, one closed; u6 never connected.
    connected("u2", "k2", in_a_minute).await;
    connected("u3", "k3", in_a_minute).await;
    disconnected("u3", "k3").await;
    connected("u4", "k4", now_ms - 1_000).await;
    connected("u5", "k5a", in_a_minute).await;
    connected("u5", "k5b", in_a_minute).await;
    disconnected("u5", "k5a").await;

    let mut directory = Directory::default();
    assert_eq!(s.push(&mut directory, &message("m1", 2)).await, 3);
    assert_eq!(s.pushed_to("m1").await, ["u3", "u4", "u6"], "u1 sent it, u2 and u5 are connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_follow_the_messages_handled_and_are_counted_again_after_a_read_mark() {
    let s = setup(&[("u1", false), ("u2", false)]).await;
    let (mut directory, mut badges) = (Directory::default(), Badges::default());
    let mut read_marks = ReadMarks::subscribe(&s.nats).await.unwrap_or_else(|e| panic!("{e}"));
    let handle = async |badges: &mut Badges, directory: &mut Directory, message: Message| {
        let event = ChatEvent::new("c1", message.seq, EventBody::MsgCreated { message: message.clone() });
        badges.observe(&event);
        assert_eq!(s.push_counting(directory, badges, &message).await, 1, "u2 is offline");
        s.badge(&message.id, "u2").await
    };

    let m2 = s.store_message(2).await;
    assert_eq!(handle(&mut badges, &mut directory, m2).await, 1, "counted at the store: seq 2");
    // A message stored whose event is not handled yet is not in the badges until it is.
    let m4 = s.store_message(4).await;
    let m3 = s.store_message(3).await;
    assert_eq!(handle(&mut badges, &mut directory, m3).await, 2, "followed: seqs 2 and 3, not 4");
    assert_eq!(handle(&mut badges, &mut directory, m4).await, 3);

    // u2 reads up to 3 on another device (REST): the mark is stored, then heard.
    s.store.advance_read_mark("c1", "u2", 3).await.unwrap_or_else(|e| panic!("{e}"));
    let read = LiveSignal::Read { chat_id: "c1".into(), user_id: "u2".into(), up_to_seq: 3 };
    let body = serde_json::to_vec(&read).unwrap_or_default();
    s.nats.publish(subjects::live("c1", read.kind()), body.into()).await.unwrap_or_else(|e| panic!("{e}"));
    s.nats.flush().await.unwrap_or_else(|e| panic!("{e}"));
    s.nats.request("_no_responder_.ping", "".into()).await.ok();
    read_marks.apply(&mut badges);
    let m5 = s.store_message(5).await;
    assert_eq!(handle(&mut badges, &mut directory, m5).await, 2, "counted again after the mark: seqs 4 and 5");
}

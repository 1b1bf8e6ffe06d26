//! End to end, the protocol as a client relies on it: every error answers its command's
//! `ref`, a refreshed token's roles take effect on the open socket, membership changes
//! reach the connections they concern in order with the chat's events, and `sync`
//! answers fit the bus however long the chat's messages are.

use chat_e2e::{Stack, StackOptions, token, token_with_roles};
use reqwest::Method;
use serde_json::{Value, json};

/// An edge that allows a burst of three commands, then two per second.
fn tight_command_rate(config: &mut ws_edge::Config) {
    config.commands_per_s = 2;
    config.commands_burst = 3;
}

async fn post_message(stack: &Stack, user: &str, chat: &str, key: &str, text: &str) -> Value {
    let path = format!("/api/chats/{chat}/messages");
    let (status, message) =
        stack.call(Method::POST, &path, &token(user), Some(json!({"client_msg_id": key, "text": text}))).await;
    assert_eq!(status, 201, "{message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_echoes_the_ref_of_the_command_it_answers() {
    let stack = Stack::start_with(StackOptions { edge: Some(tight_command_rate), ..StackOptions::default() }).await;
    let mut typist = stack.connect(&token("typist")).await;
    let not_member = typist.command(json!({"type": "typing", "chat_id": "elsewhere", "state": "start"}), "t1").await;
    assert_eq!((not_member["type"].as_str(), not_member["code"].as_str()), (Some("error"), Some("not_found")));
    let bad_id = typist.command(json!({"type": "typing", "chat_id": "a.b", "state": "start"}), "t2").await;
    assert_eq!(bad_id["code"], "invalid", "{bad_id}");

    // The burst is spent by the two typing commands and this ping.
    typist.send_json(json!({"type": "ping", "ref": "p3"})).await;
    assert_eq!(typist.next_json().await, json!({"type": "pong", "ref": "p3"}));
    let limited = typist.command(json!({"type": "ping"}), "p4").await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{limited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_token_replaces_the_roles_of_the_open_socket() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    let first = post_message(&stack, "bob", &chat, "k1", "first").await;
    let second = post_message(&stack, "bob", &chat, "k2", "second").await;
    let mut admin = stack.connect(&token_with_roles("adm", &["admin"])).await;
    let delete = |message: &Value| json!({"type": "msg.delete", "chat_id": chat, "message_id": message["id"]});
    let as_admin = admin.command(delete(&first), "d1").await;
    assert_eq!(as_admin["type"], "ack", "a platform admin deletes in any chat: {as_admin}");

    let demoted =
        admin.command(json!({"type": "auth.refresh", "token": token_with_roles("adm", &["teacher"])}), "r1").await;
    assert_eq!(demoted["type"], "ack", "{demoted}");
    let refused = admin.command(delete(&second), "d2").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("not_found")),
        "the demoted admin is an outsider now: {refused}"
    );
    let (_, page) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("ann"), None).await;
    let texts: Vec<&str> = page["items"].as_array().into_iter().flatten().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"second"), "the second message stays: {page}");
}

/// Reads `client`'s frames of `chat` until `count` messages arrived; returns the types
/// of the chat's frames (typing and read marks aside) and the messages' texts.
async fn chat_frames(client: &mut chat_e2e::Client, chat: &str, count: usize) -> (Vec<String>, Vec<String>) {
    let (mut kinds, mut texts) = (Vec::new(), Vec::new());
    while texts.len() < count {
        let frame = client.next_json().await;
        if frame["chat_id"] != chat || frame["type"] == "typing" || frame["type"] == "read" {
            continue;
        }
        kinds.push(frame["type"].as_str().unwrap_or_default().to_owned());
        if frame["type"] == "msg.created" {
            texts.push(frame["message"]["text"].as_str().unwrap_or_default().to_owned());
        }
    }
    (kinds, texts)
}

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

async fn add_member(stack: &Stack, by: &str, chat: &str, user: &str) {
    let path = format!("/api/chats/{chat}/participants");
    let (status, body) = stack.call(Method::POST, &path, &token(by), Some(json!({"user_ids": [user]}))).await;
    assert_eq!(status, 200, "{body}");
}

async fn remove_member(stack: &Stack, by: &str, chat: &str, user: &str) {
    let path = format!("/api/chats/{chat}/participants/{user}");
    let (status, body) = stack.call(Method::DELETE, &path, &token(by), None).await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_becomes_a_member_while_connected_is_told_first_and_misses_nothing_after() {
    let mut stack = Stack::start().await;
    stack.stop_notifier().await;
    // Dave is this edge's only connection, so it delivers none of his new chats until
    // the notifier tells it he joined: here only once the messages that follow were
    // published, as when the notifier is down or behind.
    let mut dave = stack.connect(&token("dave")).await;
    let created =
        stack.create_chat(&token("ann"), json!({"type": "group", "title": "new", "member_ids": ["dave"]})).await;
    for text in numbered("hello", 5) {
        post_message(&stack, "ann", &created, &text, &text).await;
    }
    dave.expect_none_of("msg.created", std::time::Duration::from_millis(300)).await;
    stack.start_notifier().await;
    let (kinds, texts) = chat_frames(&mut dave, &created, 5).await;
    assert_eq!(kinds.first().map(String::as_str), Some("chat.created"), "the new chat comes first: {kinds:?}");
    assert_eq!(texts, numbered("hello", 5), "then every message once, in order");

    let existing =
        stack.create_chat(&token("ann"), json!({"type": "group", "title": "old", "member_ids": ["bob"]})).await;
    post_message(&stack, "bob", &existing, "before", "before dave").await;
    add_member(&stack, "ann", &existing, "dave").await;
    for text in numbered("welcome", 5) {
        post_message(&stack, "bob", &existing, &text, &text).await;
    }
    let (kinds, texts) = chat_frames(&mut dave, &existing, 5).await;
    assert_eq!(kinds.first().map(String::as_str), Some("member.added"), "nothing before his own addition: {kinds:?}");
    assert_eq!(texts, numbered("welcome", 5));

    remove_member(&stack, "ann", &existing, "dave").await;
    post_message(&stack, "bob", &existing, "after", "after dave").await;
    let removed = dave.next_of("member.removed").await;
    assert_eq!((removed["chat_id"].as_str(), removed["user_id"].as_str()), (Some(existing.as_str()), Some("dave")));
    dave.expect_none_of("msg.created", std::time::Duration::from_millis(700)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_events_take_effect_on_the_edge_without_the_notifier() {
    let mut stack = Stack::start().await;
    stack.stop_notifier().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    let mut bob = stack.connect(&token("bob")).await;
    let mut dave = stack.connect(&token("dave")).await;

    add_member(&stack, "ann", &chat, "dave").await;
    post_message(&stack, "ann", &chat, "hi", "hi dave").await;
    let (kinds, texts) = chat_frames(&mut dave, &chat, 1).await;
    assert_eq!((kinds, texts), (vec!["member.added".to_owned(), "msg.created".to_owned()], vec!["hi dave".to_owned()]));

    remove_member(&stack, "ann", &chat, "dave").await;
    assert_eq!(dave.next_of("member.removed").await["user_id"], "dave");
    post_message(&stack, "ann", &chat, "after", "after dave").await;
    let (_, texts) = chat_frames(&mut bob, &chat, 2).await;
    assert_eq!(texts, ["hi dave", "after dave"]);
    dave.expect_none_of("msg.created", std::time::Duration::from_millis(700)).await;
    let refused =
        dave.command(json!({"type": "msg.send", "chat_id": chat, "client_msg_id": "x", "text": "hi"}), "late").await;
    assert_eq!(refused["code"], "not_found", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_larger_than_a_nats_payload_comes_in_pages() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    // 70 messages of 4,000 four-byte characters: 1.1 MB, more than NATS carries at once.
    let long_text = "😀".repeat(chat_nats::limits::MAX_TEXT_CHARS);
    let keys = numbered("long", 70);
    for key in &keys {
        post_message(&stack, "ann", &chat, key, &long_text).await;
    }
    let mut bob = stack.connect(&token("bob")).await;
    let (mut since, mut received, mut pages) = (0, Vec::new(), 0);
    loop {
        pages += 1;
        let answer = bob.command(json!({"type": "sync", "chats": {chat.clone(): since}}), &format!("s{pages}")).await;
        assert_eq!(answer["type"], "sync.result", "{answer}");
        let changes = &answer["chats"][&chat];
        for message in changes["messages"].as_array().into_iter().flatten() {
            received.push(message["client_msg_id"].as_str().unwrap_or_default().to_owned());
            since = message["updated_seq"].as_u64().unwrap_or(since);
        }
        if changes["has_more"] == false {
            assert_eq!(answer["has_more"], false, "{}", answer["has_more"]);
            break;
        }
        assert_eq!(answer["has_more"], true);
        assert!(pages < 10, "sync makes progress");
    }
    assert!(pages > 1, "the answer was paged");
    assert_eq!(received, keys, "every message once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_more_chats_than_one_nats_payload_lists_connects() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["many"]})).await;
    // 12,000 memberships with the longest ids take 1.1 MB, more than NATS carries at once.
    let db = chat_core::connect::mongodb(&stack.servers.mongo_args(), "e2e")
        .await
        .unwrap_or_else(|error| panic!("MongoDB: {error}"));
    let store = chat_store::Store::new(db);
    let memberships: Vec<chat_store::docs::ParticipantDoc> = (0..12_000)
        .map(|i| {
            let chat_id = format!("{i:0>64}");
            chat_store::docs::ParticipantDoc {
                id: chat_store::docs::ParticipantDoc::key(&chat_id, "many"),
                chat_id,
                user_id: "many".into(),
                role: chat_nats::model::Role::Member,
                joined_at: chrono::Utc::now(),
                joined_seq: 1,
                role_seq: None,
                last_read_seq: 0,
                muted: false,
                muted_until: None,
                added_by: None,
            }
        })
        .collect();
    store.insert_participants(&memberships).await.unwrap_or_else(|error| panic!("inserting memberships: {error}"));

    let mut many = stack.connect(&token("many")).await;
    post_message(&stack, "ann", &chat, "hi", "hi many").await;
    let (_, texts) = chat_frames(&mut many, &chat, 1).await;
    assert_eq!(texts, ["hi many"]);
}

//! End to end, every chat feature of the contract beyond sending: edits, deletes, read
//! marks and unread counts, typing, presence, resume, membership, users, push.

use std::{collections::BTreeMap, time::Duration};

use chat_e2e::{Stack, token, token_with_roles};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

fn admin_token(user: &str, roles: &[&str]) -> String {
    chat_core::auth::mint_hs256(chat_core::auth::DEV_SECRET, &chat_core::auth::dev_claims(user, user, roles, 3600))
        .unwrap_or_default()
}

async fn send(stack: &Stack, user: &str, chat: &str, key: &str, text: &str) -> Value {
    send_with(stack, &token(user), chat, key, text).await
}

async fn send_with(stack: &Stack, token: &str, chat: &str, key: &str, text: &str) -> Value {
    let (status, message) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/messages"),
            token,
            Some(json!({"client_msg_id": key, "text": text})),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    message
}

async fn unread(stack: &Stack, user: &str, chat: &str) -> u64 {
    let (_, list) = stack.call(Method::GET, "/api/chats", &token(user), None).await;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let entry = items.iter().find(|c| c["id"] == chat).unwrap_or_else(|| panic!("{chat} not in {list}"));
    entry["unread_count"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_follow_ownership_and_reach_every_member() {
    let stack = Stack::start().await;
    let chat =
        stack.create_chat(&token("owner"), json!({"type": "group", "title": "g", "member_ids": ["ann", "bob"]})).await;
    let mut ann = stack.connect(&token("ann")).await;
    let mut bob = stack.connect(&token("bob")).await;
    let message = send(&stack, "ann", &chat, "m1", "first draft").await;
    let id = message["id"].as_str().unwrap_or_default().to_owned();
    bob.next_of("msg.created").await;
    ann.next_of("msg.created").await;

    let ack = ann.command(json!({"type": "msg.edit", "chat_id": chat, "message_id": id, "text": "final"}), "e1").await;
    assert_eq!(ack["type"], "ack");
    let edited = bob.next_of("msg.edited").await;
    assert_eq!(edited["message"]["text"], "final");
    assert!(edited["message"]["edited_at"].is_string());
    assert!(edited["message"]["updated_seq"].as_u64() > message["seq"].as_u64());
    assert_eq!(ann.next_of("msg.edited").await["message"]["text"], "final");

    let ack = bob.command(json!({"type": "msg.edit", "chat_id": chat, "message_id": id, "text": "hijack"}), "e2").await;
    assert_eq!(ack["type"], "ack", "accepted for processing");
    let refused = bob.next_of("error").await;
    assert_eq!((refused["ref"].as_str(), refused["code"].as_str()), (Some("e2"), Some("forbidden")));
    let (status, _) = stack
        .call(Method::PATCH, &format!("/api/chats/{chat}/messages/{id}"), &token("bob"), Some(json!({"text": "x"})))
        .await;
    assert_eq!(status, 403);
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{id}"), &token("bob"), None).await;
    assert_eq!(status, 403, "a plain member deletes only their own messages");
    let (status, _) = stack
        .call(Method::PATCH, &format!("/api/chats/{chat}/messages/{id}"), &token("mallory"), Some(json!({"text": "x"})))
        .await;
    assert_eq!(status, 404, "outsiders learn nothing");

    let (status, tombstone) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{id}"), &token("owner"), None).await;
    assert_eq!(status, 200, "the chat owner deletes anyone's message: {tombstone}");
    assert_eq!(tombstone["text"], "");
    let deleted = ann.next_of("msg.deleted").await;
    assert_eq!(deleted["message_id"], id.as_str());
    assert_eq!(deleted["seq"], tombstone["updated_seq"]);
    assert!(deleted["deleted_at"].is_string());
    bob.next_of("msg.deleted").await;

    let other = send(&stack, "bob", &chat, "m2", "bye").await;
    let other_id = other["id"].as_str().unwrap_or_default();
    let (status, _) = stack
        .call(Method::DELETE, &format!("/api/chats/{chat}/messages/{other_id}"), &admin_token("root", &["admin"]), None)
        .await;
    assert_eq!(status, 200, "a platform admin deletes in any chat");
    let (_, history) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("ann"), None).await;
    let items = history["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "tombstones keep their place");
    assert!(items.iter().all(|m| m["text"] == "" && m["deleted_at"].is_string()), "{history}");
    let (status, _) = stack
        .call(
            Method::PATCH,
            &format!("/api/chats/{chat}/messages/{other_id}"),
            &token("bob"),
            Some(json!({"text": "undo"})),
        )
        .await;
    assert_eq!(status, 409, "a deleted message stays deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_marks_only_move_forward_and_unread_counts_are_exact() {
    let stack = Stack::start().await;
    let chat =
        stack.create_chat(&token("t1"), json!({"type": "group", "title": "g", "member_ids": ["s1", "s2"]})).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(send(&stack, "t1", &chat, &format!("t{i}"), "from the teacher").await["seq"].as_u64().unwrap_or(0));
    }
    let own = send(&stack, "s1", &chat, "s1-own", "mine").await;
    assert_eq!(unread(&stack, "s1", &chat).await, 5, "one's own messages are never unread");
    assert_eq!(unread(&stack, "t1", &chat).await, 1);

    let doomed =
        stack.call(Method::GET, &format!("/api/chats/{chat}/messages?after_seq=0&limit=1"), &token("t1"), None).await.1;
    let doomed_id = doomed["items"][0]["id"].as_str().unwrap_or_default().to_owned();
    stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{doomed_id}"), &token("t1"), None).await;
    assert_eq!(unread(&stack, "s1", &chat).await, 4, "a deleted message is not unread");

    let mut s1_phone = stack.connect(&token("s1")).await;
    let mut s2 = stack.connect(&token("s2")).await;
    let (status, _) = stack
        .call(Method::POST, &format!("/api/chats/{chat}/read"), &token("s1"), Some(json!({"up_to_seq": seqs[2]})))
        .await;
    assert_eq!(status, 204);
    let receipt = s2.next_of("read").await;
    assert_eq!(receipt, json!({"type": "read", "chat_id": chat, "user_id": "s1", "up_to_seq": seqs[2]}));
    assert_eq!(s1_phone.next_of("read").await["up_to_seq"], seqs[2], "the reader's other devices hear it");
    assert_eq!(unread(&stack, "s1", &chat).await, 2);

    let ack = s1_phone.command(json!({"type": "read", "chat_id": chat, "up_to_seq": seqs[0]}), "back").await;
    assert_eq!(ack["type"], "ack");
    s2.expect_none_of("read", Duration::from_millis(500)).await;
    assert_eq!(unread(&stack, "s1", &chat).await, 2, "a read mark never moves backwards");

    stack
        .call(Method::POST, &format!("/api/chats/{chat}/read"), &token("s1"), Some(json!({"up_to_seq": 1_000_000})))
        .await;
    let (_, list) = stack.call(Method::GET, "/api/chats", &token("s1"), None).await;
    let entry = &list["items"][0];
    assert_eq!(entry["unread_count"], 0);
    assert_eq!(entry["last_read_seq"], entry["last_seq"], "a mark past the end stops at the last seq");
    assert!(own["seq"].as_u64() <= entry["last_read_seq"].as_u64());
    let (status, _) =
        stack.call(Method::POST, &format!("/api/chats/{chat}/read"), &token("x9"), Some(json!({"up_to_seq": 1}))).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_others_once_per_second_and_never_outsiders() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("a"), json!({"type": "group", "title": "g", "member_ids": ["b"]})).await;
    let mut a = stack.connect(&token("a")).await;
    let mut b = stack.connect(&token("b")).await;
    let mut eve = stack.connect(&token("eve")).await;
    a.send_json(json!({"type": "typing", "chat_id": chat, "state": "start"})).await;
    a.send_json(json!({"type": "typing", "chat_id": chat, "state": "start"})).await;
    let typing = b.next_of("typing").await;
    assert_eq!(typing, json!({"type": "typing", "chat_id": chat, "user_id": "a", "state": "start"}));
    b.expect_none_of("typing", Duration::from_millis(500)).await;
    a.send_json(json!({"type": "typing", "chat_id": chat, "state": "stop"})).await;
    assert_eq!(b.next_of("typing").await["state"], "stop");
    a.expect_none_of("typing", Duration::from_millis(200)).await;

    eve.send_json(json!({"type": "typing", "chat_id": chat, "state": "start"})).await;
    assert_eq!(eve.next_of("error").await["code"], "not_found");
    b.expect_none_of("typing", Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_watched_live_and_served_over_rest() {
    let stack = Stack::start().await;
    // Staff see everyone's presence; tests/e2e/privacy.rs has what students see.
    let teacher = token_with_roles("w", &["teacher"]);
    let mut watcher = stack.connect(&teacher).await;
    watcher.send_json(json!({"type": "presence.watch", "user_ids": ["p1"]})).await;
    let snapshot = watcher.next_of("presence").await;
    assert_eq!((snapshot["user_id"].as_str(), snapshot["status"].as_str()), (Some("p1"), Some("offline")));
    assert!(snapshot["last_seen"].is_null(), "never seen: {snapshot}");

    let p1 = stack.connect(&token("p1")).await;
    let online = watcher.next_of("presence").await;
    assert_eq!(online["status"], "online", "{online}");
    let (status, rest) = stack.call(Method::GET, "/api/users/presence?ids=p1,nobody", &teacher, None).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["items"][0]["status"], "online");
    assert_eq!(rest["items"][1]["status"], "offline");
    let mut second = stack.connect(&token("p1")).await;
    second.send_json(json!({"type": "ping"})).await;
    second.next_of("pong").await;
    drop(second);
    watcher.expect_none_of("presence", Duration::from_secs(1)).await;

    drop(p1);
    let offline = watcher.next_of("presence").await;
    assert_eq!(offline["status"], "offline", "{offline}");
    assert!(offline["last_seen"].is_string(), "{offline}");
    let (status, _) = stack.call(Method::GET, "/api/users/presence?ids=a.b", &teacher, None).await;
    assert_eq!(status, 400);
}

/// A client's view of a chat: message id → (text, deleted).
type View = BTreeMap<String, (String, bool)>;

fn apply_event(view: &mut View, event: &Value) {
    match event["type"].as_str() {
        Some("msg.created" | "msg.edited") => {
            let m = &event["message"];
            view.insert(
                m["id"].as_str().unwrap_or_default().into(),
                (m["text"].as_str().unwrap_or_default().into(), m["deleted_at"].is_string()),
            );
        }
        Some("msg.deleted") => {
            view.insert(event["message_id"].as_str().unwrap_or_default().into(), (String::new(), true));
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resumes_with_sync_ends_like_one_that_never_left() {
    let stack = Stack::start().await;
    let chat =
        stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob", "cat"]})).await;
    let mut cat = stack.connect(&token("cat")).await;
    let mut bob = stack.connect(&token("bob")).await;
    let mut cat_view = View::new();
    let mut bob_view = View::new();
    let first = send(&stack, "ann", &chat, "k1", "one").await;
    let second = send(&stack, "ann", &chat, "k2", "two").await;
    for _ in 0..2 {
        apply_event(&mut bob_view, &bob.next_of("msg.created").await);
        apply_event(&mut cat_view, &cat.next_of("msg.created").await);
    }
    let bob_seq = second["seq"].as_u64().unwrap_or(0);
    drop(bob);

    let third = send(&stack, "ann", &chat, "k3", "three").await;
    let (a, b) = (first["id"].as_str().unwrap_or_default(), third["id"].as_str().unwrap_or_default());
    stack
        .call(
            Method::PATCH,
            &format!("/api/chats/{chat}/messages/{a}"),
            &token("ann"),
            Some(json!({"text": "one, edited"})),
        )
        .await;
    stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{b}"), &token("ann"), None).await;
    send(&stack, "ann", &chat, "k4", "four").await;
    let new_chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;
    for kind in ["msg.created", "msg.edited", "msg.deleted", "msg.created"] {
        apply_event(&mut cat_view, &cat.next_of(kind).await);
    }

    let mut bob = stack.connect(&token("bob")).await;
    let result = bob.command(json!({"type": "sync", "chats": {chat.clone(): bob_seq, "gone-chat": 3}}), "s1").await;
    assert_eq!(result["type"], "sync.result", "{result}");
    let changes = &result["chats"][chat.as_str()];
    assert_eq!(changes["has_more"], false);
    assert_eq!(changes["last_seq"], changes["chat"]["last_seq"]);
    let updated: Vec<u64> =
        changes["messages"].as_array().into_iter().flatten().filter_map(|m| m["updated_seq"].as_u64()).collect();
    assert!(updated.windows(2).all(|w| w[0] < w[1]), "oldest change first: {updated:?}");
    for message in changes["messages"].as_array().into_iter().flatten() {
        apply_event(&mut bob_view, &json!({"type": "msg.edited", "message": message}));
    }
    assert_eq!(bob_view, cat_view, "resumed state equals the state of one who never left");
    let new_ids: Vec<&str> =
        result["new_chats"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(new_ids, vec![new_chat.as_str()]);
    assert_eq!(result["removed_chats"], json!(["gone-chat"]));

    // The new chat is delivered to the resumed connection from now on.
    send(&stack, "ann", &new_chat, "d1", "hello bob").await;
    let delivered = bob.next_of("msg.created").await;
    assert_eq!(delivered["chat_id"], new_chat.as_str());

    let bad = bob.command(json!({"type": "sync", "chats": {"a.b": 1}}), "s2").await;
    assert_eq!(bad["code"], "invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_start_and_stop_delivery_at_once() {
    let stack = Stack::start().await;
    // A course's chat, as the platform's service creates it (only it may set external_id).
    let platform = token_with_roles("own", &["service"]);
    let chat = stack
        .create_chat(
            &platform,
            json!({"type": "group", "title": "Класс", "member_ids": ["mem"], "external_id": "course-42"}),
        )
        .await;
    let (status, clash) = stack
        .call(
            Method::POST,
            "/api/chats",
            &platform,
            Some(json!({"type": "group", "title": "again", "external_id": "course-42"})),
        )
        .await;
    assert_eq!(status, 409, "external_id is unique: {clash}");

    let mut dave = stack.connect(&token("dave")).await;
    let mut mem = stack.connect(&token("mem")).await;
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/participants"),
            &token("mem"),
            Some(json!({"user_ids": ["dave"]})),
        )
        .await;
    assert_eq!(status, 403, "members do not add members");
    let (status, updated) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/participants"),
            &token("own"),
            Some(json!({"user_ids": ["dave"]})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(mem.next_of("member.added").await["user_id"], "dave");
    // Dave was connected before joining: the notifier tells his edge, which subscribes
    // to the chat; the first message after that reaches him.
    let mut welcomed = false;
    for attempt in 0..20 {
        send(&stack, "own", &chat, &format!("w{attempt}"), "welcome").await;
        while let Some(frame) = dave.try_next_json(Duration::from_millis(300)).await {
            assert_eq!(frame["chat_id"], chat.as_str(), "{frame}");
            welcomed |= frame["type"] == "msg.created";
        }
        if welcomed {
            break;
        }
    }
    assert!(welcomed, "dave receives the chat after joining");

    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/participants"),
            &token("own"),
            Some(json!({"user_ids": ["mem"], "role": "admin"})),
        )
        .await;
    assert_eq!(status, 200, "the owner promotes a member");
    let (status, _) =
        stack.call(Method::PATCH, &format!("/api/chats/{chat}"), &token("dave"), Some(json!({"title": "mine"}))).await;
    assert_eq!(status, 403);
    let (status, renamed) = stack
        .call(Method::PATCH, &format!("/api/chats/{chat}"), &token("mem"), Some(json!({"title": "Класс 9Б"})))
        .await;
    assert_eq!((status, renamed["title"].as_str()), (200, Some("Класс 9Б")));
    assert_eq!(dave.next_of("chat.updated").await["chat"]["title"], "Класс 9Б");
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/own"), &token("mem"), None).await;
    assert_eq!(status, 409, "nobody removes the owner");

    let bus = stack.bus().await;
    let mut left_events = bus.subscribe("user.dave.chat.left").await.unwrap_or_else(|e| panic!("{e}"));
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/dave"), &token("mem"), None).await;
    assert_eq!(status, 204, "an admin removes a member");
    assert_eq!(mem.next_of("member.removed").await["user_id"], "dave");
    let left = tokio::time::timeout(Duration::from_secs(10), left_events.next()).await.ok().flatten();
    assert!(left.is_some(), "the notifier tells dave's edge");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&stack, "own", &chat, "after", "after dave left").await;
    while mem.next_of("msg.created").await["message"]["client_msg_id"] != "after" {}
    dave.expect_none_of("msg.created", Duration::from_millis(500)).await;
    let refused =
        dave.command(json!({"type": "msg.send", "chat_id": chat, "client_msg_id": "x", "text": "hi"}), "late").await;
    assert_eq!(refused["code"], "not_found", "a removed member cannot send: {refused}");
    let (status, _) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("dave"), None).await;
    assert_eq!(status, 404, "nor read");

    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/mem"), &token("mem"), None).await;
    assert_eq!(status, 204, "anyone leaves");
    let (_, chat_now) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &token("own"), None).await;
    assert_eq!(chat_now["participants"], json!([{"user_id": "own", "role": "owner"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_any_case_prefix_in_any_script() {
    let stack = Stack::start().await;
    let service = admin_token("sync-bot", &["service"]);
    for (id, name) in [("u1", "Иван Петров"), ("u2", "иванова Анна"), ("u3", "Ivan Smith"), ("u4", "Ёжиков Пётр")]
    {
        let (status, user) = stack
            .call(
                Method::PUT,
                &format!("/api/admin/users/{id}"),
                &service,
                Some(json!({"name": name, "roles": ["student"]})),
            )
            .await;
        assert_eq!(status, 200, "{user}");
    }
    let (status, _) =
        stack.call(Method::PUT, "/api/admin/users/u9", &token("student"), Some(json!({"name": "x"}))).await;
    assert_eq!(status, 403);
    let names = |page: &Value| -> Vec<String> {
        page["items"].as_array().into_iter().flatten().filter_map(|u| u["name"].as_str().map(str::to_owned)).collect()
    };
    let (_, found) = stack.call(Method::GET, "/api/users?q=%D0%98%D0%92%D0%90", &token("viewer"), None).await;
    assert_eq!(names(&found), vec!["Иван Петров", "иванова Анна"], "ИВА matches both, in name order");
    let (_, found) = stack.call(Method::GET, "/api/users?q=%D1%91%D0%B6", &token("viewer"), None).await;
    assert_eq!(names(&found), vec!["Ёжиков Пётр"]);
    let (_, found) = stack.call(Method::GET, "/api/users?q=u3", &token("viewer"), None).await;
    assert_eq!(names(&found), vec!["Ivan Smith"], "an exact id matches too");
    let (status, _) = stack.call(Method::GET, "/api/users?q=", &token("viewer"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_members_get_a_push_request_with_title_sender_preview_and_badge() {
    let stack = Stack::start().await;
    // The teacher's name comes from her token, as on every authenticated call.
    let teacher = chat_core::auth::mint_hs256(
        chat_core::auth::DEV_SECRET,
        &chat_core::auth::dev_claims("teach", "Мария Ивановна", &["teacher"], 3600),
    )
    .unwrap_or_default();
    let chat =
        stack.create_chat(&teacher, json!({"type": "group", "title": "Физика", "member_ids": ["on", "off"]})).await;
    let mut online = stack.connect(&token("on")).await;
    online.send_json(json!({"type": "ping"})).await;
    online.next_of("pong").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bus = stack.bus().await;
    let mut pushes = bus.subscribe("push.>").await.unwrap_or_else(|e| panic!("{e}"));
    send_with(&stack, &teacher, &chat, "p1", "Контрольная перенесена на пятницу").await;
    send_with(&stack, &teacher, &chat, "p2", "Не забудьте тетради").await;
    let mut received = Vec::new();
    while received.len() < 2 {
        let message =
            tokio::time::timeout(Duration::from_secs(10), pushes.next()).await.ok().flatten().expect("a push");
        received
            .push((message.subject.to_string(), serde_json::from_slice::<Value>(&message.payload).unwrap_or_default()));
    }
    assert!(received.iter().all(|(subject, _)| subject == "push.off"), "only the offline member: {received:?}");
    let last = &received[1].1;
    assert_eq!(last["chat_title"], "Физика");
    assert_eq!(last["sender_name"], "Мария Ивановна");
    assert_eq!(last["preview"], "Не забудьте тетради");
    assert_eq!(last["badge"], 2);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pushes.next()).await.is_err(),
        "nothing for online members"
    );
}

//! End to end: real WebSocket and HTTP clients against every binary and real servers.

use std::{collections::HashSet, time::Duration};

use chat_e2e::{Stack, token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Seqs must strictly increase and ids never repeat.
fn assert_once_in_order(messages: &[Value]) {
    let seqs: Vec<u64> = messages.iter().map(|m| m["seq"].as_u64().unwrap_or(0)).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs not increasing: {seqs:?}");
    let ids: HashSet<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), messages.len(), "duplicate deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_chat_delivers_each_message_once_and_history_matches() {
    let stack = Stack::start().await;
    let (ann, bob) = (token("ann"), token("bob"));
    let chat = stack.create_chat(&ann, json!({"type": "direct", "member_id": "bob"})).await;
    let again = stack
        .request(Method::POST, "/api/chats", &bob)
        .json(&json!({"type": "direct", "member_id": "ann"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.status(), StatusCode::OK, "the pair's chat is reused");
    let reused: Value = again.json().await.unwrap_or_default();
    assert_eq!(reused["id"], chat.as_str());

    let mut a = stack.connect(&ann).await;
    let mut b = stack.connect(&bob).await;
    for i in 0..10 {
        let (sender, key) = if i % 2 == 0 { (&mut a, format!("a{i}")) } else { (&mut b, format!("b{i}")) };
        sender.send_message(&chat, &key, &format!("hello {i}")).await;
        let (ack, before) = sender.until("ack").await;
        assert_eq!(ack["ref"], key.as_str());
        assert!(
            before.iter().all(|f| f["message"]["client_msg_id"] != key.as_str()),
            "ack comes before the sender's own msg.created"
        );
    }
    // Each sender waited for its ack (JetStream stored it) before the next send, so
    // the stream order is the send order.
    let seen_by_ann = a.collect_created(&chat, 10).await;
    let seen_by_bob = b.collect_created(&chat, 10).await;
    a.expect_silence(Duration::from_millis(300)).await;
    b.expect_silence(Duration::from_millis(10)).await;

    let history: Value = stack
        .request(Method::GET, &format!("/api/chats/{chat}/messages?after_seq=0"), &ann)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let items = history["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 10);
    assert_once_in_order(&items);
    let texts: Vec<&str> = items.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, (0..10).map(|i| format!("hello {i}")).collect::<Vec<_>>());
    assert_eq!(seen_by_ann, items, "what ann received is the history");
    assert_eq!(seen_by_bob, items, "what bob received is the history");

    let newest: Value = stack
        .request(Method::GET, &format!("/api/chats/{chat}/messages?limit=4"), &bob)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let page: Vec<u64> = newest["items"].as_array().into_iter().flatten().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(page.len(), 4);
    assert!(page.windows(2).all(|w| w[0] > w[1]), "newest first: {page:?}");
    let cursor = newest["next_cursor"].as_str().unwrap_or_else(|| panic!("a next page exists"));
    let older: Value = stack
        .request(Method::GET, &format!("/api/chats/{chat}/messages?limit=4&cursor={cursor}"), &bob)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let next: Vec<u64> = older["items"].as_array().into_iter().flatten().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(next.first().copied(), page.last().map(|s| s - 1), "pages are contiguous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_five_each_member_receives_every_message_once() {
    let stack = Stack::start().await;
    let users = ["t1", "s1", "s2", "s3", "s4"];
    let chat = stack
        .create_chat(
            &token("t1"),
            json!({"type": "group", "title": "Физика 9Б", "member_ids": ["s1", "s2", "s3", "s4"]}),
        )
        .await;
    let mut clients = Vec::new();
    for user in users {
        clients.push(stack.connect(&token(user)).await);
    }
    for round in 0..4 {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send_message(&chat, &format!("k{round}-{i}"), &format!("round {round} from {i}")).await;
        }
    }
    let mut all = Vec::new();
    for client in &mut clients {
        let received = client.collect_created(&chat, 20).await;
        assert_once_in_order(&received);
        all.push(received.iter().map(|m| m["id"].clone()).collect::<Vec<_>>());
        client.expect_silence(Duration::from_millis(200)).await;
    }
    assert!(all.windows(2).all(|w| w[0] == w[1]), "every member saw the same messages in the same order");

    let list: Value = stack
        .request(Method::GET, "/api/chats", &token("s2"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let entry = &list["items"][0];
    assert_eq!(entry["id"], chat.as_str());
    assert_eq!(entry["my_role"], "member");
    assert_eq!(entry["unread_count"], 16, "20 messages, 4 of them the caller's own");
    assert_eq!(entry["last_message"]["seq"], entry["last_seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_returns_the_original_message_and_stores_no_copy() {
    let stack = Stack::start().await;
    let ann = token("ann");
    let chat = stack.create_chat(&ann, json!({"type": "group", "title": "resend", "member_ids": []})).await;
    let path = format!("/api/chats/{chat}/messages");
    let body = json!({"client_msg_id": "same-key", "text": "once"});
    let first = stack.request(Method::POST, &path, &ann).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap_or_default();
    let second = stack.request(Method::POST, &path, &ann).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.status(), StatusCode::OK, "a resend is not a new message");
    let second: Value = second.json().await.unwrap_or_default();
    assert_eq!(first["id"], second["id"]);

    let mut ws = stack.connect(&ann).await;
    ws.send_message(&chat, "same-key", "once").await;
    ws.until("ack").await;
    let (copy, _) = ws.until("msg.created").await;
    assert_eq!(copy["message"]["id"], first["id"], "the WebSocket resend maps to the same message");

    let history: Value = stack
        .request(Method::GET, &path, &ann)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1), "one document: {history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_bad_tokens_and_bad_frames_are_refused() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;

    let mut eve = stack.connect(&token("eve")).await;
    eve.send_message(&chat, "sneaky", "let me in").await;
    let error = eve.next_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "not_found");
    assert_eq!(error["ref"], "sneaky");
    let read = stack
        .request(Method::GET, &format!("/api/chats/{chat}/messages"), &token("eve"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.status(), StatusCode::NOT_FOUND, "a non-member does not learn the chat exists");

    for bad in ["not-a-jwt", &token("ann").replace('.', "x.")] {
        let refused = tokio_tungstenite::connect_async(format!("{}?access_token={bad}", stack.ws_url)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
        let rest = stack.request(Method::GET, "/api/users/me", bad).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest.status(), StatusCode::UNAUTHORIZED);
    }
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "{}?access_token={}",
        stack.ws_url,
        token("ann")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap_or_else(|e| panic!("{e}")));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403 for a foreign origin, got {other:?}"),
    }

    let mut ann = stack.connect(&token("ann")).await;
    for (frame, fragment) in [
        ("{not json".to_owned(), ""),
        (
            json!({"type": "msg.send", "ref": "r1", "chat_id": {"$ne": ""}, "client_msg_id": "k", "text": "x"})
                .to_string(),
            "invalid type",
        ),
        (json!({"type": "ping", "ref": "r2", "admin": true}).to_string(), "unknown field"),
        (
            json!({"type": "msg.send", "ref": "r3", "chat_id": chat, "client_msg_id": "k", "text": "\u{0}"})
                .to_string(),
            "control",
        ),
    ] {
        ann.send_text(frame).await;
        let error = ann.next_json().await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], "invalid", "{error}");
        assert!(error["message"].as_str().unwrap_or_default().contains(fragment), "{error}");
    }
    ann.send_json(json!({"type": "ping", "ref": "still-here"})).await;
    let pong = ann.next_json().await;
    assert_eq!(pong, json!({"type": "pong", "ref": "still-here"}), "the connection survived");

    let me: Value = stack
        .request(Method::GET, "/api/users/me", &token("ann"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(me, json!({"id": "ann", "name": "User ann", "roles": ["student"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_while_the_persister_is_down_arrive_in_order_once_it_returns() {
    let mut stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "direct", "member_id": "bob"})).await;
    let mut ann = stack.connect(&token("ann")).await;
    let mut bob = stack.connect(&token("bob")).await;
    stack.stop_persister().await;
    for i in 0..30 {
        ann.send_message(&chat, &format!("offline-{i}"), &format!("while down {i}")).await;
        let (ack, _) = ann.until("ack").await;
        assert_eq!(ack["ref"], format!("offline-{i}"), "JetStream accepts sends without the persister");
    }
    bob.expect_silence(Duration::from_millis(300)).await;
    stack.start_persister().await;
    let received = bob.collect_created(&chat, 30).await;
    assert_once_in_order(&received);
    let texts: Vec<&str> = received.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, (0..30).map(|i| format!("while down {i}")).collect::<Vec<_>>());
    bob.expect_silence(Duration::from_millis(500)).await;
}

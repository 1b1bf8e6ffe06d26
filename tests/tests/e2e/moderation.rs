//! Chat modes and mutes as a class meets them over REST and WebSocket: an announcement
//! chat, slow mode with `retry_after_ms`, a mute with the time left and its end, a
//! freeze and a thaw; each refusal with its code, every change heard live by the
//! members and found again by `GET` and `sync`.

use chat_e2e::{Client, Stack, token};
use reqwest::Method;
use serde_json::{Value, json};

/// A send over WebSocket and the persister's refusal that follows its `ack`.
async fn refused_send(client: &mut Client, chat: &str, key: &str) -> Value {
    let frame = json!({"type": "msg.send", "chat_id": chat, "client_msg_id": key, "text": "hi"});
    let ack = client.command(frame, key).await;
    if ack["type"] == "error" {
        return ack;
    }
    assert_eq!(ack["type"], "ack", "{ack}");
    let error = client.next_of("error").await;
    assert_eq!(error["ref"], key, "{error}");
    error
}

async fn rest_send(stack: &Stack, chat: &str, user: &str, key: &str) -> (u16, Value) {
    let body = json!({"client_msg_id": key, "text": "hello"});
    stack.call(Method::POST, &format!("/api/chats/{chat}/messages"), &token(user), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_moderates_a_class_chat_over_rest_and_websocket() {
    let stack = Stack::start().await;
    let chat = stack
        .create_chat(&token("teacher"), json!({"type": "group", "title": "7b", "member_ids": ["kid1", "kid2"]}))
        .await;
    let mut teacher = stack.connect(&token("teacher")).await;
    let mut kid1 = stack.connect(&token("kid1")).await;
    let moderation = format!("/api/chats/{chat}/moderation");

    // Announcement chat, over REST.
    let (status, body) =
        stack.call(Method::PATCH, &moderation, &token("kid1"), Some(json!({"posting": "admins"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = stack.call(Method::PATCH, &moderation, &token("teacher"), Some(json!({}))).await;
    assert_eq!(status, 400, "nothing to change: {body}");
    let (status, body) =
        stack.call(Method::PATCH, &moderation, &token("teacher"), Some(json!({"slow_mode_seconds": 3601}))).await;
    assert_eq!(status, 400, "slow mode is capped: {body}");
    let (status, body) =
        stack.call(Method::PATCH, &moderation, &token("teacher"), Some(json!({"posting": "admins"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], json!({"posting": "admins", "slow_mode_seconds": 0, "frozen": false}));
    let heard = kid1.next_of("chat.moderated").await;
    assert_eq!(heard["mode"]["posting"], "admins", "members hear the mode live: {heard}");
    let refused = refused_send(&mut kid1, &chat, "a1").await;
    assert_eq!(refused["code"], "forbidden");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("announcement")), "{refused}");
    let (status, body) = rest_send(&stack, &chat, "kid2", "a2").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(rest_send(&stack, &chat, "teacher", "a3").await.0, 201, "the teacher posts");
    let (_, seen) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &token("kid2"), None).await;
    assert_eq!(seen["mode"]["posting"], "admins", "GET shows the mode: {seen}");

    // The edge answers what needs no store early: bounds, and outsiders.
    let capped = json!({"type": "chat.moderate", "chat_id": chat, "slow_mode_seconds": 4000});
    assert_eq!(teacher.command(capped, "e1").await["code"], "invalid");
    let empty = json!({"type": "chat.moderate", "chat_id": chat});
    assert_eq!(teacher.command(empty, "e2").await["code"], "invalid");
    let mut outsider = stack.connect(&token("outsider")).await;
    let foreign = json!({"type": "member.mute", "chat_id": chat, "user_id": "kid1", "until": null});
    assert_eq!(outsider.command(foreign, "e3").await["code"], "not_found");

    // Slow mode, over WebSocket; the teacher is exempt.
    let open = json!({"type": "chat.moderate", "chat_id": chat, "posting": "everyone", "slow_mode_seconds": 60});
    assert_eq!(teacher.command(open, "m1").await["type"], "ack");
    assert_eq!(kid1.next_of("chat.moderated").await["mode"]["slow_mode_seconds"], 60);
    assert_eq!(rest_send(&stack, &chat, "kid1", "s1").await.0, 201);
    let slowed = refused_send(&mut kid1, &chat, "s2").await;
    assert_eq!(slowed["code"], "rate_limited", "{slowed}");
    assert!(slowed["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 60_000), "{slowed}");
    let (status, body) = rest_send(&stack, &chat, "kid1", "s3").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(rest_send(&stack, &chat, "teacher", "s4").await.0, 201);
    assert_eq!(rest_send(&stack, &chat, "teacher", "s5").await.0, 201);

    // A mute over WebSocket, its end over REST.
    let until = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let by_kid = json!({"type": "member.mute", "chat_id": chat, "user_id": "kid2", "until": until});
    assert_eq!(kid1.command(by_kid, "k1").await["type"], "ack");
    assert_eq!(kid1.next_of("error").await["code"], "forbidden", "members do not mute");
    let mute = json!({"type": "member.mute", "chat_id": chat, "user_id": "kid2", "until": until});
    assert_eq!(teacher.command(mute, "m2").await["type"], "ack");
    let muted = kid1.next_of("member.muted").await;
    assert_eq!((muted["user_id"].as_str(), muted["until"].is_string()), (Some("kid2"), true), "{muted}");
    let (status, body) = rest_send(&stack, &chat, "kid2", "u1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("muted")), "{body}");
    let mut kid2 = stack.connect(&token("kid2")).await;
    let refused = refused_send(&mut kid2, &chat, "u2").await;
    assert_eq!(refused["code"], "forbidden");
    assert!(refused["retry_after_ms"].as_u64().is_some_and(|ms| ms > 500_000), "the time left: {refused}");
    let sync = kid2.command(json!({"type": "sync", "chats": {chat.clone(): 0}}), "y1").await;
    let members = sync["chats"][&chat]["chat"]["participants"].as_array().cloned().unwrap_or_default();
    assert!(
        members.iter().any(|m| m["user_id"] == "kid2" && m["muted_until"].is_string()),
        "sync tells the member of their mute: {sync}"
    );
    assert_eq!(sync["chats"][&chat]["chat"]["mode"]["slow_mode_seconds"], 60, "and of the mode: {sync}");
    let unmute = format!("/api/chats/{chat}/participants/kid2/mute");
    let (status, body) = stack.call(Method::PUT, &unmute, &token("teacher"), Some(json!({"until": null}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kid1.next_of("member.muted").await["until"], Value::Null);
    assert_eq!(rest_send(&stack, &chat, "kid2", "u3").await.0, 201, "unmuted");

    // A freeze over REST, a thaw over WebSocket.
    let (status, body) = stack.call(Method::PATCH, &moderation, &token("teacher"), Some(json!({"frozen": true}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(kid1.next_of("chat.moderated").await["mode"]["frozen"].as_bool().unwrap_or(false));
    let (status, body) = rest_send(&stack, &chat, "teacher", "f1").await;
    assert_eq!(status, 403, "frozen for the teacher too: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("frozen")), "{body}");
    let (status, _) = stack
        .call(Method::POST, &format!("/api/chats/{chat}/read"), &token("kid1"), Some(json!({"up_to_seq": 1})))
        .await;
    assert_eq!(status, 204, "read marks still move");
    let thaw = json!({"type": "chat.moderate", "chat_id": chat, "frozen": false, "slow_mode_seconds": 0});
    assert_eq!(teacher.command(thaw, "m3").await["type"], "ack");
    assert_eq!(kid1.next_of("chat.moderated").await["mode"]["frozen"], false);
    kid1.send_message(&chat, "f2", "back").await;
    let mut created = kid1.next_of("msg.created").await;
    while created["message"]["client_msg_id"] != "f2" {
        created = kid1.next_of("msg.created").await;
    }
    assert_eq!(created["message"]["text"], "back", "a thawed chat takes sends");
    let (_, listed) = stack.call(Method::GET, "/api/chats", &token("kid1"), None).await;
    let mode = listed["items"].as_array().and_then(|items| items.iter().find(|c| c["id"] == chat.as_str()));
    assert_eq!(
        mode.map(|c| c["mode"].clone()),
        Some(json!({"posting": "everyone", "slow_mode_seconds": 0, "frozen": false}))
    );
}

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

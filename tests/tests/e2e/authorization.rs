//! Walks the table of `docs/api.md` ("Who may do what"): every action by every kind of
//! caller, with the status each must get, through the real pipeline.

use chat_e2e::{Stack, token, token_with_roles};
use reqwest::Method;
use serde_json::{Value, json};

/// An action, its request, and the status each caller gets (owner, admin, member,
/// outsider).
type Row = (&'static str, Method, String, Option<Value>, [u16; 4]);

async fn message(stack: &Stack, chat: &str, author: &str, key: &str) -> String {
    let path = format!("/api/chats/{chat}/messages");
    let (status, body) =
        stack.call(Method::POST, &path, &token(author), Some(json!({"client_msg_id": key, "text": "t"}))).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_answers_every_caller_as_documented() {
    let stack = Stack::start().await;
    let chat = stack
        .create_chat(
            &token("owner"),
            json!({"type": "group", "title": "t", "member_ids": ["admin1", "member1", "victim1", "victim2"]}),
        )
        .await;
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/participants"),
            &token("owner"),
            Some(json!({"user_ids": ["admin1"], "role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    let platform_admin = token_with_roles("root", &["admin"]);
    let service = token_with_roles("sync", &["service"]);
    let callers: Vec<(&str, String)> = vec![
        ("owner", token("owner")),
        ("admin", token("admin1")),
        ("member", token("member1")),
        ("outsider", token("outsider")),
    ];
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let reads: Vec<Row> = vec![
        ("get chat", Method::GET, format!("/api/chats/{chat}"), None, [200, 200, 200, 404]),
        ("history", Method::GET, format!("/api/chats/{chat}/messages"), None, [200, 200, 200, 404]),
        (
            "read mark",
            Method::POST,
            format!("/api/chats/{chat}/read"),
            Some(json!({"up_to_seq": 1})),
            [204, 204, 204, 404],
        ),
        (
            "rename",
            Method::PATCH,
            format!("/api/chats/{chat}"),
            Some(json!({"title": "renamed"})),
            [200, 200, 403, 404],
        ),
        (
            "add member",
            Method::POST,
            format!("/api/chats/{chat}/participants"),
            Some(json!({"user_ids": ["newbie"]})),
            [200, 200, 403, 404],
        ),
        (
            "grant owner",
            Method::POST,
            format!("/api/chats/{chat}/participants"),
            Some(json!({"user_ids": ["member1"], "role": "owner"})),
            [403, 403, 403, 404],
        ),
        (
            "remove the owner",
            Method::DELETE,
            format!("/api/chats/{chat}/participants/owner"),
            None,
            [409, 409, 409, 404],
        ),
        (
            "moderate",
            Method::PATCH,
            format!("/api/chats/{chat}/moderation"),
            Some(json!({"slow_mode_seconds": 0})),
            [200, 200, 403, 404],
        ),
        (
            "mute a member",
            Method::PUT,
            format!("/api/chats/{chat}/participants/victim2/mute"),
            Some(json!({"until": soon})),
            [200, 200, 403, 404],
        ),
        (
            "mute the owner",
            Method::PUT,
            format!("/api/chats/{chat}/participants/owner/mute"),
            Some(json!({"until": soon})),
            [403, 403, 403, 404],
        ),
        ("list chats", Method::GET, "/api/chats".into(), None, [200, 200, 200, 200]),
        ("search users", Method::GET, "/api/users?q=ow".into(), None, [200, 200, 200, 200]),
        ("upsert a user", Method::PUT, "/api/admin/users/x1".into(), Some(json!({"name": "X"})), [403, 403, 403, 403]),
        ("review queue", Method::GET, "/api/moderation/reports".into(), None, [403, 403, 403, 403]),
        (
            "resolve a report",
            Method::POST,
            "/api/moderation/reports/r1/resolve".into(),
            Some(json!({"action": "dismiss"})),
            [403, 403, 403, 403],
        ),
        ("audit trail", Method::GET, "/api/admin/audit".into(), None, [403, 403, 403, 403]),
        ("message history", Method::GET, format!("/api/admin/messages/{chat}/m1/history"), None, [403, 403, 403, 403]),
    ];
    for (action, method, path, body, expected) in reads {
        for ((who, token), want) in callers.iter().zip(expected) {
            let (status, answer) = stack.call(method.clone(), &path, token, body.clone()).await;
            assert_eq!(status, want, "{action} by {who}: {answer}");
        }
    }

    // Sending: members yes, outsiders no.
    let path = format!("/api/chats/{chat}/messages");
    for ((who, token), want) in callers.iter().zip([201, 201, 201, 404]) {
        let (status, _) = stack
            .call(Method::POST, &path, token, Some(json!({"client_msg_id": format!("s-{who}"), "text": "x"})))
            .await;
        assert_eq!(status, want, "send by {who}");
    }

    // Editing: the sender only.
    let by_member = message(&stack, &chat, "member1", "edit-me").await;
    let edit = format!("/api/chats/{chat}/messages/{by_member}");
    for ((who, token), want) in callers.iter().zip([403, 403, 200, 404]) {
        let (status, _) = stack.call(Method::PATCH, &edit, token, Some(json!({"text": "changed"}))).await;
        assert_eq!(status, want, "edit by {who}");
    }

    // Reporting: members, not of their own message.
    let report = format!("/api/chats/{chat}/messages/{by_member}/report");
    for ((who, token), want) in callers.iter().zip([201, 201, 400, 404]) {
        let (status, _) = stack.call(Method::POST, &report, token, Some(json!({"reason": "spam"}))).await;
        assert_eq!(status, want, "report by {who}");
    }
    // Moderation and the records: a platform admin (the default CHAT_MODERATION_ROLES).
    for path in [
        "/api/moderation/reports".to_owned(),
        "/api/admin/audit".into(),
        format!("/api/admin/messages/{chat}/{by_member}/history"),
    ] {
        let (status, answer) = stack.call(Method::GET, &path, &platform_admin, None).await;
        assert_eq!(status, 200, "{path} by a platform admin: {answer}");
    }

    // Deleting: the sender, the chat's owner and admins, a platform admin; each on a
    // fresh message of the member's.
    for ((who, token), want) in callers.iter().zip([200, 200, 200, 404]) {
        let id = message(&stack, &chat, "member1", &format!("del-{who}")).await;
        let (status, _) = stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{id}"), token, None).await;
        assert_eq!(status, want, "delete by {who}");
    }
    let by_owner = message(&stack, &chat, "owner", "owners").await;
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{by_owner}"), &token("member1"), None).await;
    assert_eq!(status, 403, "a member does not delete the owner's message");
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/messages/{by_owner}"), &platform_admin, None).await;
    assert_eq!(status, 200, "a platform admin does");

    // Removing: admins remove members, members remove nobody, everyone leaves.
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/victim1"), &token("member1"), None).await;
    assert_eq!(status, 403);
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/victim1"), &token("admin1"), None).await;
    assert_eq!(status, 204);
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/admin1"), &token("admin1"), None).await;
    assert_eq!(status, 204, "an admin leaves");
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/victim2"), &token("victim2"), None).await;
    assert_eq!(status, 204, "a member leaves");
    let (status, _) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &token("victim2"), None).await;
    assert_eq!(status, 404, "and can no longer see the chat");

    // Moderation by a platform admin who is not in the chat: even the owner is muted.
    let mute_owner = format!("/api/chats/{chat}/participants/owner/mute");
    let (status, _) = stack.call(Method::PUT, &mute_owner, &platform_admin, Some(json!({"until": soon}))).await;
    assert_eq!(status, 200, "a platform admin mutes the owner");
    let (status, _) = stack.call(Method::PUT, &mute_owner, &platform_admin, Some(json!({"until": null}))).await;
    assert_eq!(status, 200, "and unmutes them");
    let moderation = format!("/api/chats/{chat}/moderation");
    let (status, _) = stack.call(Method::PATCH, &moderation, &platform_admin, Some(json!({"frozen": false}))).await;
    assert_eq!(status, 200, "a platform admin moderates");

    // The user directory: platform admin or service.
    for (who, token, want) in [("platform admin", &platform_admin, 200), ("service", &service, 200)] {
        let (status, _) = stack.call(Method::PUT, "/api/admin/users/x2", token, Some(json!({"name": "Икс"}))).await;
        assert_eq!(status, want, "upsert by {who}");
    }
}

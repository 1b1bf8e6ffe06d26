//! Reports, the review queue, message history, retention and the audit trail, as
//! members, moderators and platform admins meet them over REST; the exports as
//! `chatctl` writes them, against the same stack.

use chat_e2e::{Stack, token, token_with_roles};
use chat_store::Store;
use reqwest::Method;
use serde_json::{Value, json};

async fn store(stack: &Stack) -> Store {
    let db = chat_core::connect::mongodb(&stack.servers.mongo_args(), "e2e")
        .await
        .unwrap_or_else(|error| panic!("MongoDB: {error}"));
    Store::new(db)
}

async fn send(stack: &Stack, chat: &str, author: &str, key: &str, text: &str) -> String {
    let path = format!("/api/chats/{chat}/messages");
    let (status, body) =
        stack.call(Method::POST, &path, &token(author), Some(json!({"client_msg_id": key, "text": text}))).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap_or_default().to_owned()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_stored_once_per_reporter_and_moderators_resolve_it() {
    let stack = Stack::start().await;
    let chat =
        stack.create_chat(&token("t1"), json!({"type": "group", "title": "7A", "member_ids": ["s1", "s2"]})).await;
    let rude = send(&stack, &chat, "s2", "k1", "you are all idiots").await;
    let report_path = format!("/api/chats/{chat}/messages/{rude}/report");

    // Once per reporter and message: the second report answers the first.
    let (status, first) = stack
        .call(Method::POST, &report_path, &token("s1"), Some(json!({"reason": "harassment", "note": "again"})))
        .await;
    assert_eq!((status, &first["state"], &first["sender_id"]), (201, &json!("open"), &json!("s2")), "{first}");
    let (status, again) = stack.call(Method::POST, &report_path, &token("s1"), Some(json!({"reason": "spam"}))).await;
    assert_eq!((status, &again["id"], &again["reason"]), (200, &first["id"], &json!("harassment")), "{again}");

    // Refusals: unknown reasons, long or control-character notes, one's own message,
    // outsiders, messages of another chat.
    let bad = [
        (json!({"reason": "boring"}), 400),
        (json!({"reason": "other", "note": "x".repeat(1001)}), 400),
        (json!({"reason": "other", "note": "bell\u{7}"}), 400),
    ];
    for (body, want) in bad {
        let (status, answer) = stack.call(Method::POST, &report_path, &token("t1"), Some(body.clone())).await;
        assert_eq!(status, want, "{body}: {answer}");
    }
    let (status, answer) = stack.call(Method::POST, &report_path, &token("s2"), Some(json!({"reason": "spam"}))).await;
    assert_eq!((status, code(&answer)), (400, "invalid"), "one's own message: {answer}");
    let (status, _) = stack.call(Method::POST, &report_path, &token("stranger"), Some(json!({"reason": "spam"}))).await;
    assert_eq!(status, 404, "outsiders report nothing");
    let other = stack.create_chat(&token("s1"), json!({"type": "group", "title": "o", "member_ids": ["s2"]})).await;
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{other}/messages/{rude}/report"),
            &token("s1"),
            Some(json!({"reason": "spam"})),
        )
        .await;
    assert_eq!(status, 404, "a message of another chat");

    // A second reporter makes a second report.
    let (status, second) =
        stack.call(Method::POST, &report_path, &token("t1"), Some(json!({"reason": "inappropriate"}))).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], first["id"]);

    // The queue: moderators only (platform admin by default), paged, per state.
    let root = token_with_roles("root", &["admin"]);
    for who in [token("s1"), token("t1"), token_with_roles("t9", &["teacher"])] {
        let (status, answer) = stack.call(Method::GET, "/api/moderation/reports", &who, None).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "{answer}");
    }
    let (status, page) = stack.call(Method::GET, "/api/moderation/reports?limit=1", &root, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [first["id"].as_str().unwrap_or_default()], "oldest first: {page}");
    let cursor = page["next_cursor"].as_str().unwrap_or_else(|| panic!("a next page: {page}")).to_owned();
    let (_, page) =
        stack.call(Method::GET, &format!("/api/moderation/reports?limit=1&cursor={cursor}"), &root, None).await;
    assert_eq!(ids(&page), [second["id"].as_str().unwrap_or_default()], "{page}");
    assert_eq!(page["next_cursor"], Value::Null, "{page}");

    // Resolving: moderators only.
    let resolve = |id: &Value| format!("/api/moderation/reports/{}/resolve", id.as_str().unwrap_or_default());
    let (status, _) =
        stack.call(Method::POST, &resolve(&first["id"]), &token("t1"), Some(json!({"action": "dismiss"}))).await;
    assert_eq!(status, 403);
    let (status, _) = stack
        .call(Method::POST, "/api/moderation/reports/nosuch/resolve", &root, Some(json!({"action": "dismiss"})))
        .await;
    assert_eq!(status, 404);
    let (status, dismissed) =
        stack.call(Method::POST, &resolve(&first["id"]), &root, Some(json!({"action": "dismiss"}))).await;
    assert_eq!(
        (status, &dismissed["state"], &dismissed["action"]),
        (200, &json!("resolved"), &json!("dismiss")),
        "{dismissed}"
    );
    assert_eq!(dismissed["resolved_by"], "root");
    let (_, messages) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("s1"), None).await;
    assert_eq!(messages["items"][0]["text"], "you are all idiots", "a dismissal leaves the message");

    let (status, deleted) =
        stack.call(Method::POST, &resolve(&second["id"]), &root, Some(json!({"action": "delete_message"}))).await;
    assert_eq!((status, &deleted["action"]), (200, &json!("delete_message")), "{deleted}");
    let (_, messages) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("s1"), None).await;
    assert_eq!(messages["items"][0]["text"], "", "members see the tombstone: {messages}");
    assert!(messages["items"][0]["deleted_at"].is_string(), "{messages}");
    // A second resolve answers the first one's decision.
    let (status, again) =
        stack.call(Method::POST, &resolve(&second["id"]), &root, Some(json!({"action": "dismiss"}))).await;
    assert_eq!((status, &again["action"]), (200, &json!("delete_message")), "{again}");

    let (_, open) = stack.call(Method::GET, "/api/moderation/reports?state=open", &root, None).await;
    assert_eq!(ids(&open), Vec::<String>::new(), "{open}");
    let (_, resolved) = stack.call(Method::GET, "/api/moderation/reports?state=resolved", &root, None).await;
    assert_eq!(ids(&resolved).len(), 2, "{resolved}");

    // The deleted text stays in the record, for platform admins only.
    let history = format!("/api/admin/messages/{chat}/{rude}/history");
    let (status, _) = stack.call(Method::GET, &history, &token("t1"), None).await;
    assert_eq!(status, 403, "not the chat's owner");
    let (status, records) = stack.call(Method::GET, &history, &root, None).await;
    assert_eq!(status, 200, "{records}");
    assert_eq!(records[0]["before"], "you are all idiots", "{records}");
    assert_eq!((&records[0]["after"], &records[0]["actor"]), (&Value::Null, &json!("root")), "{records}");

    // The resolutions are audited.
    let (_, audit) = stack.call(Method::GET, &format!("/api/admin/audit?chat_id={chat}"), &root, None).await;
    let resolutions: Vec<&Value> =
        audit["items"].as_array().into_iter().flatten().filter(|e| e["action"] == "report_resolve").collect();
    assert_eq!(resolutions.len(), 2, "{audit}");
    assert_eq!(resolutions[0]["details"]["action"], "delete_message", "newest first: {audit}");
    assert_eq!(resolutions[0]["target_users"], json!(["s2"]), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_resolved_with_mute_sender_mutes_the_sender_in_that_chat() {
    let stack = Stack::start().await;
    let chat =
        stack.create_chat(&token("t1"), json!({"type": "group", "title": "7B", "member_ids": ["s1", "s2"]})).await;
    let rude = send(&stack, &chat, "s2", "k1", "spam spam spam").await;
    let (status, report) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/messages/{rude}/report"),
            &token("s1"),
            Some(json!({"reason": "spam"})),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    let resolve = format!("/api/moderation/reports/{}/resolve", report["id"].as_str().unwrap_or_default());
    let root = token_with_roles("root", &["admin"]);
    let (status, answer) = stack.call(Method::POST, &resolve, &root, Some(json!({"action": "mute_sender"}))).await;
    assert_eq!((status, code(&answer)), (400, "invalid"), "mute_sender needs mute_until: {answer}");

    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, resolved) =
        stack.call(Method::POST, &resolve, &root, Some(json!({"action": "mute_sender", "mute_until": until}))).await;
    assert_eq!((status, &resolved["action"]), (200, &json!("mute_sender")), "{resolved}");
    let (status, refused) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/messages"),
            &token("s2"),
            Some(json!({"client_msg_id": "k2", "text": "still here"})),
        )
        .await;
    assert_eq!((status, code(&refused)), (403, "forbidden"), "the sender is muted: {refused}");
    let (_, view) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &token("s1"), None).await;
    let muted = view["participants"].as_array().into_iter().flatten().find(|p| p["user_id"] == "s2");
    assert!(muted.is_some_and(|p| p["muted_until"].is_string()), "members see the mute: {view}");
    send(&stack, &chat, "s1", "k3", "the reporter still posts").await;

    let (_, audit) = stack.call(Method::GET, &format!("/api/admin/audit?chat_id={chat}"), &root, None).await;
    let actions: Vec<&Value> = audit["items"].as_array().into_iter().flatten().map(|e| &e["action"]).collect();
    assert!(actions.contains(&&json!("member_mute")) && actions.contains(&&json!("report_resolve")), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_keep_their_text_until_retention_purges_it() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    let id = send(&stack, &chat, "bob", "k1", "first words").await;
    let path = format!("/api/chats/{chat}/messages/{id}");
    let (status, _) = stack.call(Method::PATCH, &path, &token("bob"), Some(json!({"text": "second words"}))).await;
    assert_eq!(status, 200);
    let (status, tombstone) = stack.call(Method::DELETE, &path, &token("bob"), None).await;
    assert_eq!((status, &tombstone["text"]), (200, &json!("")), "{tombstone}");

    let root = token_with_roles("root", &["admin"]);
    let history = format!("/api/admin/messages/{chat}/{id}/history");
    let (status, records) = stack.call(Method::GET, &history, &root, None).await;
    assert_eq!(status, 200, "{records}");
    let changes: Vec<(Value, Value)> =
        records.as_array().into_iter().flatten().map(|r| (r["before"].clone(), r["after"].clone())).collect();
    assert_eq!(
        changes,
        [(json!("first words"), json!("second words")), (json!("second words"), Value::Null)],
        "{records}"
    );
    for who in ["ann", "bob"] {
        let (status, _) = stack.call(Method::GET, &history, &token(who), None).await;
        assert_eq!(status, 403, "{who} reads no history");
    }

    // Retention: nothing is as old as a day yet; a day later everything is.
    let store = store(&stack).await;
    let now = chrono::Utc::now();
    let purged = persister::retention::purge(&store, now, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged.history_records, 0);
    let (_, records) = stack.call(Method::GET, &history, &root, None).await;
    assert_eq!(records.as_array().map(Vec::len), Some(2), "{records}");
    let later = now + chrono::Duration::days(1) + chrono::Duration::minutes(1);
    let purged = persister::retention::purge(&store, later, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged.history_records, 2);
    let (_, records) = stack.call(Method::GET, &history, &root, None).await;
    assert_eq!(records, json!([]), "purged");
    let (_, messages) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &token("ann"), None).await;
    assert_eq!(messages["items"][0]["id"], json!(id), "the tombstone stays: {messages}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_are_audited_and_exported() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    let participants = format!("/api/chats/{chat}/participants");
    let (status, _) = stack.call(Method::POST, &participants, &token("ann"), Some(json!({"user_ids": ["cat"]}))).await;
    assert_eq!(status, 200);
    let (status, _) = stack
        .call(Method::POST, &participants, &token("ann"), Some(json!({"user_ids": ["bob"], "role": "admin"})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = stack.call(Method::DELETE, &format!("{participants}/cat"), &token("bob"), None).await;
    assert_eq!(status, 204);
    let (status, _) = stack
        .call(Method::PATCH, &format!("/api/chats/{chat}"), &token("ann"), Some(json!({"title": "renamed"})))
        .await;
    assert_eq!(status, 200);
    let message = send(&stack, &chat, "bob", "k1", "hello").await;
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/messages/{message}/report"),
            &token("ann"),
            Some(json!({"reason": "other"})),
        )
        .await;
    assert_eq!(status, 201);

    let root = token_with_roles("root", &["admin"]);
    let (status, answer) =
        stack.call(Method::GET, &format!("/api/admin/audit?chat_id={chat}"), &token("ann"), None).await;
    assert_eq!((status, code(&answer)), (403, "forbidden"));
    let (status, audit) = stack.call(Method::GET, &format!("/api/admin/audit?chat_id={chat}"), &root, None).await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<(Value, Value, Value)> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["action"].clone(), e["actor"].clone(), e["target_users"].clone()))
        .collect();
    assert_eq!(
        actions,
        [
            (json!("chat_update"), json!("ann"), json!([])),
            (json!("member_remove"), json!("bob"), json!(["cat"])),
            (json!("member_role_change"), json!("ann"), json!(["bob"])),
            (json!("member_add"), json!("ann"), json!(["cat"])),
        ],
        "newest first: {audit}"
    );
    // Per user (done by or to them), paged.
    let (_, page) = stack.call(Method::GET, "/api/admin/audit?user_id=cat&limit=1", &root, None).await;
    assert_eq!(page["items"][0]["action"], "member_remove", "{page}");
    let cursor = page["next_cursor"].as_str().unwrap_or_else(|| panic!("a next page: {page}")).to_owned();
    let (_, page) =
        stack.call(Method::GET, &format!("/api/admin/audit?user_id=cat&limit=1&cursor={cursor}"), &root, None).await;
    assert_eq!((&page["items"][0]["action"], &page["next_cursor"]), (&json!("member_add"), &Value::Null), "{page}");

    // chatctl writes the same entries, and a user's records, as JSON lines.
    let store = store(&stack).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("audit.jsonl");
    let lines = chatctl::commands::records::Lines::open(Some(&out)).unwrap_or_else(|e| panic!("{e}"));
    let filter = chat_store::audit::AuditFilter { chat_id: Some(chat.clone()), user_id: None };
    let written =
        chatctl::commands::audit_export::export(&store, &filter, lines).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written, 4);
    let exported: Vec<Value> = read_lines(&out);
    assert_eq!(exported, audit["items"].as_array().cloned().unwrap_or_default(), "the api's entries");
    assert!(chatctl::commands::records::Lines::open(Some(&out)).is_err(), "an export never overwrites");

    let out = dir.path().join("ann.jsonl");
    let lines = chatctl::commands::records::Lines::open(Some(&out)).unwrap_or_else(|e| panic!("{e}"));
    chatctl::commands::export_user::export(&store, "bob", lines).await.unwrap_or_else(|e| panic!("{e}"));
    let records = read_lines(&out);
    let kinds: Vec<&str> = records.iter().map(|r| r["kind"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["user", "membership", "message"], "{records:?}");
    assert_eq!((&records[1]["chat_id"], &records[1]["role"]), (&json!(chat), &json!("admin")));
    assert_eq!(records[2]["text"], "hello");
    let out = dir.path().join("ann-reports.jsonl");
    let lines = chatctl::commands::records::Lines::open(Some(&out)).unwrap_or_else(|e| panic!("{e}"));
    chatctl::commands::export_user::export(&store, "ann", lines).await.unwrap_or_else(|e| panic!("{e}"));
    let records = read_lines(&out);
    let report = records.iter().find(|r| r["kind"] == "report").unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!((&report["message_id"], &report["reason"]), (&json!(message), &json!("other")));
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reports_over_the_websocket_too() {
    let stack = Stack::start().await;
    let chat = stack.create_chat(&token("ann"), json!({"type": "group", "title": "g", "member_ids": ["bob"]})).await;
    let id = send(&stack, &chat, "bob", "k1", "spam spam").await;
    let mut ann = stack.connect(&token("ann")).await;
    let mut bob = stack.connect(&token("bob")).await;

    let frame = json!({"type": "msg.report", "chat_id": chat, "message_id": id, "reason": "spam", "note": "bell\u{7}"});
    let refused = ann.command(frame, "r0").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("invalid")), "{refused}");
    let frame = json!({"type": "msg.report", "chat_id": chat, "message_id": id, "reason": "spam"});
    let ack = ann.command(frame.clone(), "r1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // The sender's own report is refused by the persister, with the frame's ref.
    assert_eq!(bob.command(frame, "r2").await["type"], "ack");
    let refused = bob.next_of("error").await;
    assert_eq!((refused["ref"].as_str(), refused["code"].as_str()), (Some("r2"), Some("invalid")), "{refused}");

    let root = token_with_roles("root", &["admin"]);
    let (_, queue) = stack.call(Method::GET, "/api/moderation/reports", &root, None).await;
    let reporters: Vec<&Value> = queue["items"].as_array().into_iter().flatten().map(|r| &r["reporter_id"]).collect();
    assert_eq!(reporters, [&json!("ann")], "{queue}");
}

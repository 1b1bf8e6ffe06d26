//! Privacy for an education platform, where minors use the service: whose presence a
//! student sees (over WebSocket and REST), what the user directory shows and how fast
//! it may be searched, and which history a member who joins late reads.

use std::{collections::HashMap, time::Duration};

use chat_e2e::{Client, Stack, token, token_with_roles};
use reqwest::Method;
use serde_json::{Value, json};

/// The snapshot a `presence.watch` of `count` users answers, by user.
async fn snapshot(client: &mut Client, count: usize) -> HashMap<String, Value> {
    let mut seen = HashMap::new();
    while seen.len() < count {
        let presence = client.next_of("presence").await;
        seen.insert(presence["user_id"].as_str().unwrap_or_default().to_owned(), presence);
    }
    seen
}

/// `GET /api/users/presence` as `token`, by user.
async fn rest_presence(stack: &Stack, token: &str, ids: &str) -> HashMap<String, Value> {
    let (status, page) = stack.call(Method::GET, &format!("/api/users/presence?ids={ids}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().map(|p| (p["user_id"].as_str().unwrap_or_default().to_owned(), p)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_sees_the_presence_of_chat_mates_only_and_staff_see_everyone() {
    let stack = Stack::start().await;
    let stranger = stack.connect(&token("pv-stranger")).await;
    let mate = stack.connect(&token("pv-mate")).await;
    stack.create_chat(&token("pv-student"), json!({"type": "group", "title": "9A", "member_ids": ["pv-mate"]})).await;

    let mut student = stack.connect(&token("pv-student")).await;
    student.send_json(json!({"type": "presence.watch", "user_ids": ["pv-stranger", "pv-mate", "pv-student"]})).await;
    let seen = snapshot(&mut student, 3).await;
    assert_eq!(seen["pv-mate"]["status"], "online", "a chat mate: {seen:?}");
    assert_eq!(seen["pv-student"]["status"], "online", "oneself: {seen:?}");
    let hidden = &seen["pv-stranger"];
    assert_eq!(
        (&hidden["status"], &hidden["last_seen"]),
        (&json!("offline"), &Value::Null),
        "a stranger looks like someone never seen: {hidden}"
    );
    let rest = rest_presence(&stack, &token("pv-student"), "pv-stranger,pv-mate").await;
    assert_eq!(
        rest["pv-stranger"],
        json!({"type": "presence", "user_id": "pv-stranger", "status": "offline", "last_seen": null})
    );
    assert_eq!(rest["pv-mate"]["status"], "online");

    // Staff see everyone, strangers included.
    let teacher = token_with_roles("pv-teacher", &["teacher"]);
    let rest = rest_presence(&stack, &teacher, "pv-stranger").await;
    assert_eq!(rest["pv-stranger"]["status"], "online", "{rest:?}");

    // The stranger's changes are not forwarded; the mate's are.
    drop(stranger);
    student.expect_none_of("presence", Duration::from_secs(2)).await;
    let rest = rest_presence(&stack, &teacher, "pv-stranger").await;
    assert!(rest["pv-stranger"]["last_seen"].is_string(), "staff see when the stranger left: {rest:?}");
    let rest = rest_presence(&stack, &token("pv-student"), "pv-stranger").await;
    assert_eq!(rest["pv-stranger"]["last_seen"], Value::Null, "the student does not: {rest:?}");
    drop(mate);
    let offline = student.next_of("presence").await;
    assert_eq!((&offline["user_id"], &offline["status"]), (&json!("pv-mate"), &json!("offline")), "{offline}");
    assert!(offline["last_seen"].is_string(), "{offline}");
}

/// Puts users in the directory as the platform does.
async fn enrol(stack: &Stack, users: &[(&str, &str, &str)]) {
    let service = token_with_roles("dir-sync", &["service"]);
    for (id, name, role) in users {
        let body = json!({"name": name, "roles": [role]});
        let (status, user) = stack.call(Method::PUT, &format!("/api/admin/users/{id}"), &service, Some(body)).await;
        assert_eq!(status, 200, "{user}");
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().into_iter().flatten().filter_map(|u| u["id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_needs_two_characters_hides_staff_roles_from_students_and_pages_with_a_cursor() {
    let stack = Stack::start().await;
    let mut users: Vec<(String, String, &str)> =
        (0..25).map(|i| (format!("dir-s{i:02}"), format!("Pupil {i:02}"), "student")).collect();
    users.push(("dir-t".into(), "Pupil Teacher".into(), "teacher"));
    let borrowed: Vec<(&str, &str, &str)> = users.iter().map(|(i, n, r)| (i.as_str(), n.as_str(), *r)).collect();
    enrol(&stack, &borrowed).await;
    let student = token("dir-viewer");

    let (status, answer) = stack.call(Method::GET, "/api/users?q=P", &student, None).await;
    assert_eq!((status, &answer["error"]["code"]), (400, &json!("invalid")), "one letter: {answer}");

    // Every page is full but the last, and the pages together hold everyone once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/users?q=pupil&limit=10&cursor={cursor}"),
            None => "/api/users?q=pupil&limit=10".to_owned(),
        };
        let (status, page) = stack.call(Method::GET, &path, &student, None).await;
        assert_eq!(status, 200, "{page}");
        for user in page["items"].as_array().into_iter().flatten() {
            assert_eq!(user["roles"], json!([]), "a student sees no roles: {user}");
        }
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = users.iter().map(|u| u.0.clone()).collect();
    expected.sort_by_key(|id| users.iter().find(|u| &u.0 == id).map(|u| u.1.to_lowercase()));
    assert_eq!(seen, expected, "26 users in 3 pages, in name order");
    let (status, _) = stack.call(Method::GET, "/api/users?q=pupil&limit=21", &student, None).await;
    assert_eq!(status, 400, "pages are small");

    let teacher = token_with_roles("dir-teacher", &["teacher"]);
    let (_, page) = stack.call(Method::GET, "/api/users?q=pupil%20t", &teacher, None).await;
    assert_eq!(page["items"][0]["roles"], json!(["teacher"]), "staff see roles: {page}");
    let (_, page) = stack.call(Method::GET, "/api/users?q=pupil%20t", &student, None).await;
    assert_eq!(page["items"][0]["roles"], json!([]), "students do not: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_found_across_unicode_normalisation_case_and_script() {
    let stack = Stack::start().await;
    // "Émile" composed (NFC) and decomposed (NFD), a Greek and an Armenian name.
    enrol(
        &stack,
        &[
            ("nf-c", "\u{c9}mile Zola", "student"),
            ("nf-d", "E\u{301}mile Durand", "student"),
            ("nf-g", "ΟΔΥΣΣΕΑΣ", "student"),
            ("nf-a", "Արամ", "student"),
        ],
    )
    .await;
    let viewer = token("nf-viewer");
    let search = |q: &'static str| {
        let viewer = viewer.clone();
        let stack = &stack;
        async move {
            let (status, page) = stack.call(Method::GET, &format!("/api/users?q={q}"), &viewer, None).await;
            assert_eq!(status, 200, "{q}: {page}");
            ids(&page)
        }
    };
    // NFC query "émi", NFD query "E\u{301}MI": both find both spellings.
    assert_eq!(search("%C3%A9mi").await, vec!["nf-d", "nf-c"], "NFC query");
    assert_eq!(search("E%CC%81MI").await, vec!["nf-d", "nf-c"], "NFD query, upper case");
    assert_eq!(search("%CE%BF%CE%B4%CF%85%CF%83").await, vec!["nf-g"], "Greek, lower case");
    assert_eq!(search("%D4%B1%D6%80").await, vec!["nf-a"], "Armenian, mixed case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_searches_are_bounded_per_user() {
    let stack = Stack::start().await;
    let student = token("budget-student");
    // The minute window must not turn over during the test.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    for round in 0..30 {
        let (status, page) = stack.call(Method::GET, &format!("/api/users?q=a{round:02}"), &student, None).await;
        assert_eq!(status, 200, "search {round}: {page}");
    }
    let response =
        stack.request(Method::GET, "/api/users?q=zz", &student).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some(), "with Retry-After");
    let (status, _) = stack.call(Method::GET, "/api/users?q=zz", &token("budget-other"), None).await;
    assert_eq!(status, 200, "the budget is per user");
}

/// Posts a message over REST; returns it.
async fn post(stack: &Stack, token: &str, chat: &str, key: &str, text: &str) -> Value {
    let body = json!({"client_msg_id": key, "text": text});
    let (status, message) = stack.call(Method::POST, &format!("/api/chats/{chat}/messages"), token, Some(body)).await;
    assert_eq!(status, 201, "{message}");
    message
}

/// The texts of a page of history (or of a sync's messages).
fn texts(messages: &Value) -> Vec<String> {
    messages.as_array().into_iter().flatten().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect()
}

async fn history(stack: &Stack, token: &str, chat: &str, query: &str) -> Vec<String> {
    let (status, page) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages{query}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    texts(&page["items"])
}

async fn add(stack: &Stack, token: &str, chat: &str, user: &str) {
    let body = json!({"user_ids": [user]});
    let (status, answer) =
        stack.call(Method::POST, &format!("/api/chats/{chat}/participants"), token, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_member_of_a_since_join_chat_reads_nothing_from_before_in_history_lists_or_sync() {
    let stack = Stack::start().await;
    let owner = token("sj-owner");
    let chat =
        stack.create_chat(&owner, json!({"type": "group", "title": "Study group", "member_ids": ["sj-early"]})).await;
    let (_, created) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &owner, None).await;
    assert_eq!(created["history_visibility"], "since_join", "a student's group: {created}");
    let old = post(&stack, &owner, &chat, "k1", "before 1").await;
    post(&stack, &owner, &chat, "k2", "before 2").await;
    add(&stack, &owner, &chat, "sj-late").await;
    let late = token("sj-late");

    // Nothing yet: no history, no preview, nothing unread.
    assert_eq!(history(&stack, &late, &chat, "").await, Vec::<String>::new());
    assert_eq!(history(&stack, &late, &chat, "?after_seq=0").await, Vec::<String>::new());
    let (_, list) = stack.call(Method::GET, "/api/chats", &late, None).await;
    assert_eq!(
        (&list["items"][0]["last_message"], &list["items"][0]["unread_count"]),
        (&Value::Null, &json!(0)),
        "{list}"
    );
    let (_, one) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &late, None).await;
    assert_eq!(one["last_message"], Value::Null, "{one}");

    // An edit of an old message after the join is no way in either.
    let edit = json!({"text": "before 1, edited"});
    let path = format!("/api/chats/{chat}/messages/{}", old["id"].as_str().unwrap_or_default());
    let (status, _) = stack.call(Method::PATCH, &path, &owner, Some(edit)).await;
    assert_eq!(status, 200);
    post(&stack, &owner, &chat, "k3", "after").await;
    assert_eq!(history(&stack, &late, &chat, "").await, vec!["after"]);
    assert_eq!(history(&stack, &late, &chat, "?after_seq=0").await, vec!["after"]);
    assert_eq!(history(&stack, &token("sj-early"), &chat, "").await, vec!["after", "before 2", "before 1, edited"]);
    let (_, list) = stack.call(Method::GET, "/api/chats", &late, None).await;
    assert_eq!(
        (&list["items"][0]["last_message"]["text"], &list["items"][0]["unread_count"]),
        (&json!("after"), &json!(1)),
        "{list}"
    );

    let mut client = stack.connect(&late).await;
    let result = client.command(json!({"type": "sync", "chats": {chat.clone(): 0}}), "s1").await;
    assert_eq!(texts(&result["chats"][&chat]["messages"]), vec!["after"], "{result}");
    let fresh = client.command(json!({"type": "sync", "chats": {}}), "s2").await;
    assert_eq!(fresh["new_chats"][0]["last_message"]["text"], "after", "{fresh}");

    // The owner opens the history: the late member reads it all.
    let body = json!({"history_visibility": "all"});
    let (status, changed) = stack.call(Method::PATCH, &format!("/api/chats/{chat}"), &owner, Some(body)).await;
    assert_eq!((status, &changed["history_visibility"]), (200, &json!("all")), "{changed}");
    assert_eq!(history(&stack, &late, &chat, "").await, vec!["after", "before 2", "before 1, edited"]);
    let (status, _) = stack
        .call(
            Method::PATCH,
            &format!("/api/chats/{chat}"),
            &token("sj-late"),
            Some(json!({"history_visibility": "since_join"})),
        )
        .await;
    assert_eq!(status, 403, "members do not choose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_groups_show_the_whole_history_unless_created_since_join() {
    let stack = Stack::start().await;
    let teacher = token_with_roles("sv-teacher", &["teacher"]);
    let class = stack.create_chat(&teacher, json!({"type": "group", "title": "7B"})).await;
    let private = stack
        .create_chat(&teacher, json!({"type": "group", "title": "7B staff", "history_visibility": "since_join"}))
        .await;
    for chat in [&class, &private] {
        post(&stack, &teacher, chat, "k1", "welcome").await;
        add(&stack, &teacher, chat, "sv-late").await;
    }
    let late = token("sv-late");
    assert_eq!(history(&stack, &late, &class, "").await, vec!["welcome"], "a class chat: all");
    assert_eq!(history(&stack, &late, &private, "").await, Vec::<String>::new(), "chosen since_join");
    let (status, _) = stack
        .call(
            Method::POST,
            "/api/chats",
            &teacher,
            Some(json!({"type": "group", "title": "x", "history_visibility": "sometimes"})),
        )
        .await;
    assert_eq!(status, 400);
}

/// The types of the frames of `chat` among `frames`.
fn kinds_in(frames: &[Value], chat: &str) -> Vec<String> {
    frames.iter().filter(|f| f["chat_id"] == chat).filter_map(|f| f["type"].as_str().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_member_of_a_since_join_chat_gets_no_live_edit_or_deletion_of_older_messages() {
    let stack = Stack::start().await;
    let owner = token("lv-owner");
    let chat = stack.create_chat(&owner, json!({"type": "group", "title": "Study", "member_ids": ["lv-early"]})).await;
    let mut early = stack.connect(&token("lv-early")).await;
    let old = post(&stack, &owner, &chat, "k1", "before").await;
    early.next_of("msg.created").await;
    // One late member is connected when added (the chat's feed attaches them), the
    // other connects after (the edge learns their join from the memberships).
    let mut watching = stack.connect(&token("lv-watching")).await;
    add(&stack, &owner, &chat, "lv-watching").await;
    add(&stack, &owner, &chat, "lv-later").await;
    let mut later = stack.connect(&token("lv-later")).await;
    watching.next_of("member.added").await;

    let path = format!("/api/chats/{chat}/messages/{}", old["id"].as_str().unwrap_or_default());
    let (status, _) = stack.call(Method::PATCH, &path, &owner, Some(json!({"text": "before, edited"}))).await;
    assert_eq!(status, 200);
    let (status, _) = stack.call(Method::DELETE, &path, &owner, None).await;
    assert_eq!(status, 200);
    post(&stack, &owner, &chat, "k2", "after").await;

    let (created, before) = early.until("msg.created").await;
    assert_eq!(created["message"]["text"], "after");
    let kinds = kinds_in(&before, &chat);
    assert!(kinds.contains(&"msg.edited".into()) && kinds.contains(&"msg.deleted".into()), "{kinds:?}");
    for (who, client) in [("joined while connected", &mut watching), ("connected after joining", &mut later)] {
        let (created, before) = client.until("msg.created").await;
        assert_eq!(created["message"]["text"], "after", "{who}");
        let kinds = kinds_in(&before, &chat);
        assert!(!kinds.iter().any(|k| k.starts_with("msg.")), "{who} got an older message's change: {kinds:?}");
    }

    // A change of a message from after their join reaches them.
    let (_, fresh) = stack.call(Method::GET, &format!("/api/chats/{chat}/messages"), &owner, None).await;
    let after_path = format!("/api/chats/{chat}/messages/{}", fresh["items"][0]["id"].as_str().unwrap_or_default());
    let (status, _) = stack.call(Method::DELETE, &after_path, &owner, None).await;
    assert_eq!(status, 200);
    for client in [&mut early, &mut watching, &mut later] {
        client.next_of("msg.deleted").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_promoted_in_a_since_join_chat_still_reads_from_their_joining() {
    let stack = Stack::start().await;
    let owner = token("pr-owner");
    let chat = stack.create_chat(&owner, json!({"type": "group", "title": "Club"})).await;
    post(&stack, &owner, &chat, "k1", "before").await;
    add(&stack, &owner, &chat, "pr-late").await;
    post(&stack, &owner, &chat, "k2", "since joining").await;
    let body = json!({"user_ids": ["pr-late"], "role": "admin"});
    let (status, answer) =
        stack.call(Method::POST, &format!("/api/chats/{chat}/participants"), &owner, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    post(&stack, &owner, &chat, "k3", "since the promotion").await;
    let late = token("pr-late");
    assert_eq!(history(&stack, &late, &chat, "").await, vec!["since the promotion", "since joining"]);
    let mut client = stack.connect(&late).await;
    let result = client.command(json!({"type": "sync", "chats": {chat.clone(): 0}}), "s1").await;
    assert_eq!(texts(&result["chats"][&chat]["messages"]), vec!["since joining", "since the promotion"], "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_watch_follows_the_watchers_chats_as_they_change() {
    let stack = Stack::start().await;
    let owner = token("pw-owner");
    let chat = stack.create_chat(&owner, json!({"type": "group", "title": "Team", "member_ids": ["pw-mate"]})).await;
    let mate = stack.connect(&token("pw-mate")).await;
    let newcomer = stack.connect(&token("pw-newcomer")).await;
    let mut watcher = stack.connect(&owner).await;
    watcher.send_json(json!({"type": "presence.watch", "user_ids": ["pw-mate", "pw-newcomer"]})).await;
    let seen = snapshot(&mut watcher, 2).await;
    assert_eq!(seen["pw-mate"]["status"], "online", "{seen:?}");
    assert_eq!(seen["pw-newcomer"]["status"], "offline", "not shared yet: {seen:?}");

    // Sharing a chat makes the newcomer visible to the watch as it is; only what
    // changed is sent (the mate's presence is what the watcher has already).
    add(&stack, &owner, &chat, "pw-newcomer").await;
    let seen = snapshot(&mut watcher, 1).await;
    assert_eq!(seen["pw-newcomer"]["status"], "online", "{seen:?}");

    // Removed from the only chat they shared, the mate is hidden again, and stays so.
    let (status, _) =
        stack.call(Method::DELETE, &format!("/api/chats/{chat}/participants/pw-mate"), &owner, None).await;
    assert_eq!(status, 204);
    let seen = snapshot(&mut watcher, 1).await;
    assert_eq!((&seen["pw-mate"]["status"], &seen["pw-mate"]["last_seen"]), (&json!("offline"), &Value::Null));
    drop(mate);
    watcher.expect_none_of("presence", Duration::from_secs(2)).await;
    drop(newcomer);
    let offline = watcher.next_of("presence").await;
    assert_eq!((&offline["user_id"], &offline["status"]), (&json!("pw-newcomer"), &json!("offline")), "{offline}");
}

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

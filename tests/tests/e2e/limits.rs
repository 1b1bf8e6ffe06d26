//! Abuse limits as a client meets them: tokens the verifier bounds (an `exp` near 2^64,
//! audience arrays, display names) refused alike by REST and the WebSocket upgrade and
//! `auth.refresh`, `external_id` reserved to the platform's roles, the per-user budgets
//! of writes (shared by the api and the edge through Redis), the participants cap, the
//! per-connection bounds of `sync` and `presence.watch`, and connections per user
//! counted across edges.

use chat_core::auth::{Audience, Claims, DEV_SECRET, dev_claims, mint_hs256};
use chat_e2e::{Stack, StackOptions, WAIT, token, token_with_roles};
use chat_nats::{
    commands::{Actor, ChatCreate, Command, CommandEnvelope},
    model::ChatKind,
    publish::{Outgoing, publish_one},
    subjects,
};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// A development token for `user` with its claims changed by `change`.
fn token_with(user: &str, change: impl FnOnce(&mut Claims)) -> String {
    let mut claims = dev_claims(user, &format!("User {user}"), &["student"], 3600);
    change(&mut claims);
    mint_hs256(DEV_SECRET, &claims).unwrap_or_else(|error| panic!("cannot mint a token: {error}"))
}

/// The HTTP status the edge answers a WebSocket upgrade with `token`, or a panic when
/// the upgrade succeeds or gets no HTTP answer at all.
async fn upgrade_refusal(stack: &Stack, token: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("{}?access_token={token}", stack.ws_url)).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the upgrade was accepted"),
        Err(other) => panic!("the upgrade got no HTTP answer: {other}"),
    }
}

/// `GET /api/users/me` with `token`: the status and the error's code, if any.
async fn rest_answer(stack: &Stack, token: &str) -> (u16, Value) {
    let (status, body) = stack.call(Method::GET, "/api/users/me", token, None).await;
    (status, body["error"]["code"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exp_near_2_pow_64_is_refused_on_both_surfaces_and_the_edge_stays_up() {
    let stack = Stack::start().await;
    let now = chrono::Utc::now().timestamp() as u64;
    let beyond_cap = now + chat_core::config::DEFAULT_JWT_MAX_LIFETIME_S + 3600;
    for exp in [u64::MAX - 1, i64::MAX as u64 + 1, beyond_cap] {
        let everlasting = token_with("ann", |claims| claims.exp = exp);
        let (status, body) = stack.call(Method::GET, "/api/users/me", &everlasting, None).await;
        assert_eq!(status, 401, "REST, exp {exp}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("CHAT_JWT_MAX_LIFETIME_S"), "{message}");
        assert_eq!(upgrade_refusal(&stack, &everlasting).await, 401, "WebSocket, exp {exp}");
    }

    // A connected client that refreshes with such a token is refused and stays connected.
    let mut ann = stack.connect(&token("ann")).await;
    let everlasting = token_with("ann", |claims| claims.exp = u64::MAX - 1);
    let refused = ann.command(json!({"type": "auth.refresh", "token": everlasting}), "r1").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    ann.send_json(json!({"type": "ping", "ref": "p1"})).await;
    assert_eq!(ann.next_of("pong").await["ref"], "p1", "the connection survived");
    let renewed = ann.command(json!({"type": "auth.refresh", "token": token("ann")}), "r2").await;
    assert_eq!(renewed["type"], "ack", "a sound token still refreshes: {renewed}");

    // The edge still serves everyone else.
    let mut bob = stack.connect(&token("bob")).await;
    bob.send_json(json!({"type": "ping", "ref": "p2"})).await;
    assert_eq!(bob.next_of("pong").await["ref"], "p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_array_is_accepted_only_with_the_configured_audience() {
    let stack = Stack::start().await;
    let many = |list: &[&str]| Some(Audience::Many(list.iter().map(|a| (*a).to_owned()).collect()));
    let listed = token_with("aud-ok", |claims| claims.aud = many(&["lms", "chat"]));
    assert_eq!(rest_answer(&stack, &listed).await.0, 200, "REST accepts an array naming the audience");
    let mut client = stack.connect(&listed).await;
    client.send_json(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(client.next_of("pong").await["ref"], "p");

    for (case, aud) in [("without the audience", many(&["lms", "billing"])), ("empty", many(&[]))] {
        let foreign = token_with("aud-bad", |claims| claims.aud = aud);
        assert_eq!(rest_answer(&stack, &foreign).await, (401, json!("unauthorized")), "REST, {case}");
        assert_eq!(upgrade_refusal(&stack, &foreign).await, 401, "WebSocket, {case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_name_the_directory_refuses_never_reaches_it() {
    let stack = Stack::start().await;
    for (user, name) in [("bidi1", "Ann\u{202E}rehcaeT"), ("ctl1", "Ann\u{1b}[31m"), ("long1", &"я".repeat(201))] {
        let hostile = token_with(user, |claims| claims.name = Some(name.to_owned()));
        assert_eq!(rest_answer(&stack, &hostile).await, (401, json!("unauthorized")), "REST, {user}");
        assert_eq!(upgrade_refusal(&stack, &hostile).await, 401, "WebSocket, {user}");
        let (status, found) = stack.call(Method::GET, &format!("/api/users?q={user}"), &token("viewer"), None).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["items"], json!([]), "{user} entered the directory: {found}");
    }
    let padded = token_with("spaced1", |claims| claims.name = Some("  Мария Ивановна ".into()));
    let (status, me) = stack.call(Method::GET, "/api/users/me", &padded, None).await;
    assert_eq!((status, &me["name"]), (200, &json!("Мария Ивановна")), "stored trimmed, as an upsert: {me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_cannot_claim_a_course_external_id_over_rest_or_the_bus() {
    let stack = Stack::start().await;
    let course = |title: &str| json!({"type": "group", "title": title, "external_id": "course-7a"});
    let (status, body) = stack.call(Method::POST, "/api/chats", &token("stu"), Some(course("mine"))).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")), "REST: {body}");

    // The same create sent on the command stream as the student, as an edge or a forged
    // publisher could: the persister refuses it, and the refusal reaches the student's
    // socket like any rejected command, on the reply subject the edge names for that
    // socket (read off a command the socket sends).
    let (mut student, hello) = stack.connect_with_hello(&token("stu")).await;
    let bus = stack.bus().await;
    let mut commands = bus.subscribe(subjects::CMD_ALL).await.unwrap_or_else(|error| panic!("{error}"));
    bus.flush().await.unwrap_or_else(|error| panic!("{error}"));
    let own = stack.create_chat(&token("stu"), json!({"type": "group", "title": "own"})).await;
    student.send_message(&own, "k1", "hi").await;
    let reply = loop {
        let published = tokio::time::timeout(WAIT, commands.next()).await.ok().flatten().expect("the student's send");
        let sent: CommandEnvelope = serde_json::from_slice(&published.payload).unwrap_or_else(|e| panic!("{e}"));
        if sent.actor.user_id == "stu" && sent.command.name() == "msg.send" {
            break sent.reply;
        }
    };
    assert_eq!(student.next_of("chat.created").await["chat"]["id"], own.as_str(), "the student's own chat");
    let envelope = CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor: Actor { user_id: "stu".into(), roles: vec!["student".into()] },
        reference: Some("claim".into()),
        conn_id: hello["conn_id"].as_str().map(str::to_owned),
        reply,
        issued_at: chrono::Utc::now(),
        command: Command::ChatCreate(ChatCreate {
            chat_id: chat_core::ids::new_id(),
            kind: ChatKind::Group,
            title: Some("mine".into()),
            member_ids: vec![],
            external_id: Some("course-7a".into()),
            history_visibility: None,
        }),
    };
    let bus = async_nats::jetstream::new(bus);
    let subject = subjects::command(envelope.chat_id(), envelope.command.name());
    let payload = serde_json::to_vec(&envelope).unwrap_or_default();
    publish_one(&bus, Outgoing::new(subject, envelope.id.clone(), payload.into()))
        .await
        .unwrap_or_else(|error| panic!("publish: {error}"));
    let refused = tokio::time::timeout(WAIT, student.next_of("error")).await.unwrap_or_else(|_| panic!("no refusal"));
    assert_eq!((&refused["code"], &refused["ref"]), (&json!("forbidden"), &json!("claim")), "{refused}");
    student.expect_none_of("chat.created", std::time::Duration::from_millis(300)).await;

    // The course id is still free for the platform.
    let service = token_with_roles("lms", &["service"]);
    let (status, chat) = stack.call(Method::POST, "/api/chats", &service, Some(course("Physics 7A"))).await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(chat["external_id"], "course-7a");
    let admin = token_with_roles("root", &["admin"]);
    let (status, _) = stack
        .call(
            Method::POST,
            "/api/chats",
            &admin,
            Some(json!({"type": "group", "title": "t", "external_id": "course-7b"})),
        )
        .await;
    assert_eq!(status, 201, "a platform admin may set one too");
}

/// The answer of a REST write: status, error code and `Retry-After` in seconds.
async fn write_answer(
    stack: &Stack,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value, Option<u64>) {
    let response = stack.request(method, path, token).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].clone(), retry_after)
}

/// Budgets of three writes each (one more a minute), on the api and the edge alike; a
/// student may create two chats an hour.
fn tight_writes(writes: &mut chat_core::config::WriteLimitArgs) {
    *writes = chat_core::config::WriteLimitArgs {
        chat_changes_per_user_per_min: 1,
        chat_changes_per_user_burst: 3,
        chat_creates_per_user_per_hour: 2,
        message_changes_per_user_per_min: 1,
        message_changes_per_user_burst: 3,
        read_marks_per_user_per_min: 1,
        read_marks_per_user_burst: 3,
    };
}

fn tight_writes_stack() -> StackOptions {
    StackOptions {
        api: Some(|config| tight_writes(&mut config.writes)),
        edge: Some(|config| tight_writes(&mut config.writes)),
        ..StackOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_member_changes_have_a_per_user_budget_and_students_an_hourly_creation_budget() {
    let stack = Stack::start_with(tight_writes_stack()).await;
    let ann = token("wb-ann");
    let group = |title: &str| json!({"type": "group", "title": title, "member_ids": ["wb-bob"]});
    let chat = stack.create_chat(&ann, group("one")).await;
    let path = format!("/api/chats/{chat}");
    let (status, ..) = write_answer(&stack, Method::PATCH, &path, &ann, json!({"title": "renamed"})).await;
    assert_eq!(status, 200, "the second change");
    let members = format!("/api/chats/{chat}/participants");
    let (status, ..) = write_answer(&stack, Method::POST, &members, &ann, json!({"user_ids": ["wb-carl"]})).await;
    assert_eq!(status, 200, "the third change");
    let (status, code, retry_after) =
        write_answer(&stack, Method::DELETE, &format!("{members}/wb-carl"), &ann, Value::Null).await;
    assert_eq!((status, &code), (429, &json!("rate_limited")), "the fourth change within a minute");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "Retry-After: {retry_after:?}");
    let bob_chat = stack.create_chat(&token("wb-bob"), json!({"type": "group", "title": "bob's"})).await;
    let (status, ..) =
        write_answer(&stack, Method::PATCH, &format!("/api/chats/{bob_chat}"), &token("wb-bob"), json!({"title": "b"}))
            .await;
    assert_eq!(status, 200, "the budget is the user's own");

    // Two chats an hour for a student, however slowly: the second is fine, the third not.
    let dan = token("wb-dan");
    stack.create_chat(&dan, group("first")).await;
    stack.create_chat(&dan, group("second")).await;
    let (status, code, retry_after) = write_answer(&stack, Method::POST, "/api/chats", &dan, group("third")).await;
    assert_eq!((status, &code), (429, &json!("rate_limited")), "the third chat this hour");
    assert!(retry_after.is_some_and(|s| s > 60), "an hour's budget refills slowly: {retry_after:?}");
    let teacher = token_with_roles("wb-teacher", &["teacher"]);
    for title in ["t1", "t2", "t3"] {
        stack.create_chat(&teacher, group(title)).await;
    }
    let service = token_with_roles("wb-lms", &["service"]);
    for title in ["s1", "s2", "s3", "s4", "s5"] {
        stack.create_chat(&service, group(title)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_and_read_marks_share_one_budget_across_rest_and_the_edge() {
    let stack = Stack::start_with(tight_writes_stack()).await;
    let ann = token("wm-ann");
    let chat = stack.create_chat(&ann, json!({"type": "direct", "member_id": "wm-bob"})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"client_msg_id": format!("k{i}"), "text": format!("m{i}")});
        let (status, message) =
            stack.call(Method::POST, &format!("/api/chats/{chat}/messages"), &ann, Some(body)).await;
        assert_eq!(status, 201, "{message}");
        ids.push(message["id"].as_str().unwrap_or_default().to_owned());
    }
    let edit = |id: &str| format!("/api/chats/{chat}/messages/{id}");
    for id in &ids[..3] {
        let (status, ..) = write_answer(&stack, Method::PATCH, &edit(id), &ann, json!({"text": "edited"})).await;
        assert_eq!(status, 200, "edits within the burst");
    }
    let (status, code, retry_after) = write_answer(&stack, Method::DELETE, &edit(&ids[3]), &ann, Value::Null).await;
    assert_eq!((status, &code), (429, &json!("rate_limited")), "a delete counts with the edits");
    assert!(retry_after.is_some(), "with Retry-After");

    // The edge counts in the same Redis bucket: before it has heard from Redis it may
    // admit one (the documented slack of one replica), never the burst of three that
    // a budget of its own would.
    let mut socket = stack.connect(&ann).await;
    let mut acked = 0;
    let mut limited = None;
    for (i, id) in ids.iter().enumerate() {
        let frame = json!({"type": "msg.edit", "chat_id": chat, "message_id": id, "text": "again"});
        let answer = socket.command(frame, &format!("e{i}")).await;
        match answer["type"].as_str() {
            Some("ack") => acked += 1,
            _ => limited = Some(answer),
        }
        // Lets the edge's report to Redis come back between two edits.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(acked <= 1, "the edge knew the api's count: {acked} acked");
    let limited = limited.unwrap_or_else(|| panic!("no refusal"));
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{limited}");

    // Read marks have a budget of their own: the edits did not spend it.
    for seq in 1..=3 {
        let answer =
            socket.command(json!({"type": "read", "chat_id": chat, "up_to_seq": seq}), &format!("r{seq}")).await;
        assert_eq!(answer["type"], "ack", "read mark {seq}: {answer}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let read = format!("/api/chats/{chat}/read");
    let mut statuses = Vec::new();
    for seq in 4..=5 {
        statuses.push(write_answer(&stack, Method::POST, &read, &ann, json!({"up_to_seq": seq})).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        statuses
            .iter()
            .any(|(status, code, retry)| *status == 429 && *code == json!("rate_limited") && retry.is_some()),
        "REST read marks after the socket's burst: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_holds_at_most_the_configured_participants() {
    // The persister (the one writer) allows 3, the api mirrors a looser 4: an add to 4
    // is the persister's refusal, one to 5 the api's own, answered with no persister.
    let mut stack = Stack::start_with(StackOptions {
        api: Some(|config| {
            config.chats.max_participants = 4;
            config.command_timeout_ms = 1000;
        }),
        persister: Some(|config| config.chats.max_participants = 3),
        ..StackOptions::default()
    })
    .await;
    let ann = token("cap-ann");
    let chat = stack.create_chat(&ann, json!({"type": "group", "title": "g", "member_ids": ["cap-b", "cap-c"]})).await;
    let members = format!("/api/chats/{chat}/participants");
    let (status, code, _) = write_answer(&stack, Method::POST, &members, &ann, json!({"user_ids": ["cap-d"]})).await;
    assert_eq!((status, &code), (409, &json!("conflict")), "the persister refuses a fourth participant");
    let (status, chat_now) = stack.call(Method::GET, &format!("/api/chats/{chat}"), &ann, None).await;
    assert_eq!(status, 200);
    assert_eq!(chat_now["participants"].as_array().map(Vec::len), Some(3), "nobody was added: {chat_now}");
    let (status, _) =
        stack.call(Method::POST, &members, &ann, Some(json!({"user_ids": ["cap-b"], "role": "admin"}))).await;
    assert_eq!(status, 200, "a role change adds nobody");

    stack.stop_persister().await;
    let (status, code, _) =
        write_answer(&stack, Method::POST, &members, &ann, json!({"user_ids": ["cap-d", "cap-e"]})).await;
    assert_eq!((status, &code), (409, &json!("conflict")), "the api answers at once, not 503");
    let five = json!({"type": "group", "title": "big", "member_ids": ["cap-b", "cap-c", "cap-d", "cap-e"]});
    let (status, code, _) = write_answer(&stack, Method::POST, "/api/chats", &ann, five).await;
    assert_eq!((status, &code), (409, &json!("conflict")), "nor may a chat be created larger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_and_presence_watches_are_bounded_per_connection() {
    let stack = Stack::start_with(StackOptions {
        edge: Some(|config| {
            (config.syncs_per_s, config.syncs_burst) = (1, 2);
            (config.presence_watches_per_s, config.presence_watches_burst) = (1, 2);
        }),
        ..StackOptions::default()
    })
    .await;
    let mut client = stack.connect(&token("sy-ann")).await;
    let too_many: serde_json::Map<String, Value> =
        (0..=chat_nats::rpc::SYNC_MAX_CHATS).map(|i| (format!("c{i}"), json!(0))).collect();
    let refused = client.command(json!({"type": "sync", "chats": too_many}), "big").await;
    assert_eq!((&refused["type"], &refused["code"]), (&json!("error"), &json!("invalid")), "{refused}");
    let answer = client.command(json!({"type": "sync", "chats": {}}), "s1").await;
    assert_eq!(answer["type"], "sync.result", "{answer}");
    let limited = client.command(json!({"type": "sync", "chats": {}}), "s2").await;
    assert_eq!((&limited["type"], &limited["code"]), (&json!("error"), &json!("rate_limited")), "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 1000), "{limited}");

    for reference in ["w1", "w2"] {
        client.send_json(json!({"type": "presence.watch", "ref": reference, "user_ids": ["sy-bob"]})).await;
    }
    let limited = client.command(json!({"type": "presence.watch", "user_ids": ["sy-carl"]}), "w3").await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{limited}");

    let mut other = stack.connect(&token("sy-ann")).await;
    let answer = other.command(json!({"type": "sync", "chats": {}}), "o1").await;
    assert_eq!(answer["type"], "sync.result", "the budget is the connection's: {answer}");
}

/// The close code of a socket the edge closes, reading past other frames.
async fn close_code(client: &mut chat_e2e::Client) -> Option<u16> {
    loop {
        if let Err(code) = client.next_or_close(WAIT).await {
            return code;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_counted_across_edges() {
    let stack = Stack::start_with(StackOptions {
        edge: Some(|config| config.max_connections_per_user = 2),
        ..StackOptions::default()
    })
    .await;
    let other_edge = stack.start_extra_edge().await;
    let ann = token("cc-ann");
    let first = stack.connect(&ann).await;
    let _second = stack.connect(&ann).await;
    let mut third = stack.connect_to(&other_edge.ws_url(), &ann).await;
    assert_eq!(close_code(&mut third).await, Some(4010), "a third on another edge is refused");
    let mut bob = stack.connect_to(&other_edge.ws_url(), &token("cc-bob")).await;
    bob.send_json(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(bob.next_of("pong").await["ref"], "p", "other users are not counted");

    // Each connection counts for at most three heartbeats unless refreshed, so those of
    // an edge that died stop counting within a minute.
    let mut redis = chat_core::connect::LazyRedis::new(&stack.redis)
        .unwrap_or_else(|e| panic!("{e}"))
        .get()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let counted: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(chat_core::redis_keys::user_connections("cc-ann"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut redis)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now().timestamp_millis() as f64;
    let ttl = chat_core::user_connections::CONN_TTL.as_millis() as f64;
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert!(counted.iter().all(|(_, until)| *until > now && *until <= now + ttl), "{counted:?}");

    // A closed connection stops counting at once.
    drop(first);
    let mut fourth = None;
    for _ in 0..50 {
        let mut client = stack.connect_to(&other_edge.ws_url(), &ann).await;
        match client.next_or_close(WAIT).await {
            Ok(hello) if hello["type"] == "hello" => {
                fourth = Some(client);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert!(fourth.is_some(), "a place freed on one edge is free on the other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_write_budgets_and_connection_counts_hold_per_replica() {
    let mut stack = Stack::start_with(StackOptions {
        api: Some(|config| tight_writes(&mut config.writes)),
        edge: Some(|config| {
            tight_writes(&mut config.writes);
            config.max_connections_per_user = 2;
        }),
        ..StackOptions::default()
    })
    .await;
    let other_edge = stack.start_extra_edge().await;
    stack.servers.redis.kill();

    // The api counts the budget on its own admissions: the fourth change is refused.
    let ann = token("rd-ann");
    let chat = stack.create_chat(&ann, json!({"type": "group", "title": "one", "member_ids": ["rd-bob"]})).await;
    let path = format!("/api/chats/{chat}");
    let (status, ..) = write_answer(&stack, Method::PATCH, &path, &ann, json!({"title": "renamed"})).await;
    assert_eq!(status, 200, "the second change");
    let members = format!("/api/chats/{chat}/participants");
    let (status, ..) = write_answer(&stack, Method::POST, &members, &ann, json!({"user_ids": ["rd-carl"]})).await;
    assert_eq!(status, 200, "the third change");
    let (status, code, retry_after) =
        write_answer(&stack, Method::DELETE, &format!("{members}/rd-carl"), &ann, Value::Null).await;
    assert_eq!((status, &code), (429, &json!("rate_limited")), "the fourth change, Redis down");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "Retry-After: {retry_after:?}");

    // Each edge counts its own connections: a third on one edge is refused, while
    // another edge, which cannot see them, admits up to its own limit.
    let _first = stack.connect(&ann).await;
    let _second = stack.connect(&ann).await;
    let mut third = stack.connect_to(&stack.ws_url, &ann).await;
    assert_eq!(close_code(&mut third).await, Some(4010), "a third on the same edge");
    let mut elsewhere = stack.connect_to(&other_edge.ws_url(), &ann).await;
    elsewhere.send_json(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(elsewhere.next_of("pong").await["ref"], "p", "another edge counts only its own");

    // Redis back: connections are counted across edges again.
    stack.servers.redis.restart().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    for attempt in 0.. {
        assert!(tokio::time::Instant::now() < deadline, "connections are not counted across edges again");
        let user = token(&format!("rd-back-{attempt}"));
        let (_one, _two) = (stack.connect(&user).await, stack.connect(&user).await);
        let mut three = stack.connect_to(&other_edge.ws_url(), &user).await;
        three.send_json(json!({"type": "ping", "ref": "p"})).await;
        let refused = loop {
            match three.next_or_close(WAIT).await {
                Err(code) => break code,
                Ok(frame) if frame["type"] == "pong" => break None,
                Ok(_) => {}
            }
        };
        if refused.is_some() {
            assert_eq!(refused, Some(4010));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

//! Abuse limits as a client meets them: tokens the verifier bounds (an `exp` near 2^64,
//! audience arrays, display names) refused alike by REST and the WebSocket upgrade and
//! `auth.refresh`, and `external_id` reserved to the platform's roles.

use chat_core::auth::{Audience, Claims, DEV_SECRET, dev_claims, mint_hs256};
use chat_e2e::{Stack, WAIT, token, token_with_roles};
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

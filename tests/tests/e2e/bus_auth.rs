//! The bus with authentication on: a `nats-server` started with `deploy/nats/auth.conf`
//! itself, every binary connected as its own NATS user. Each component does its work
//! (a chat created over REST, messages, a refusal, a read mark, typing, user
//! deliveries, a push request read by the push gateway's user), each user's forbidden publish is refused by the server
//! with a permissions violation, and the persister drops a command that acts as the
//! platform's `service` unless the api published it.

use std::time::Duration;

use async_nats::{ConnectOptions, Event, jetstream};
use chat_core::config::NatsAuthArgs;
use chat_e2e::{Stack, StackOptions, WAIT, token, token_with_roles};
use chat_nats::{
    commands::{Actor, ChatCreate, Command, CommandEnvelope, CommandOutcome},
    events::{EventKind, UserDeliveryKind},
    model::ChatKind,
    publish::{Outgoing, publish_one},
    subjects,
};
use chat_testkit::Servers;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio::sync::mpsc;

/// Every NATS user `deploy/nats/auth.conf` defines.
const USERS: [&str; 7] = ["ws-edge", "api", "persister", "notifier", "presence", "push-gateway", "operator"];

/// The test's password of a user (the server reads it as `NATS_PASSWORD_<USER>`).
fn password(user: &str) -> String {
    format!("test-{user}-password")
}

/// The credentials each binary runs with.
fn credentials(component: &str) -> NatsAuthArgs {
    NatsAuthArgs::user(component, &password(component))
}

/// The deploy configuration, with the test's passwords defined in front of it.
fn server_config() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nats/auth.conf");
    let auth = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let mut config: String = USERS
        .iter()
        .map(|user| format!("NATS_PASSWORD_{}: \"{}\"\n", user.to_uppercase().replace('-', "_"), password(user)))
        .collect();
    config.push_str(&auth);
    config
}

/// The stack, every binary on its own NATS user.
async fn authenticated_stack() -> Stack {
    let nats = chat_testkit::start_nats_with_config(server_config()).await;
    let servers = Servers::start_with_nats(nats).await;
    Stack::start_with(StackOptions { servers: Some(servers), nats_auth: Some(credentials), ..StackOptions::default() })
        .await
}

/// A client connected as `user` (with that user's inbox prefix), and the errors the
/// server sends it.
async fn connect_as(stack: &Stack, user: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors, received) = mpsc::unbounded_channel();
    let client = ConnectOptions::with_user_and_password(user.to_owned(), password(user))
        .custom_inbox_prefix(subjects::inbox_prefix(user))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let Event::ServerError(error) = event {
                    let _ = errors.send(error.to_string());
                }
            }
        })
        .connect(&stack.nats.nats_url)
        .await
        .unwrap_or_else(|error| panic!("NATS as {user}: {error}"));
    (client, received)
}

/// The next server error that mentions `subject`, within [`WAIT`].
async fn violation(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> String {
    let wait = async {
        while let Some(error) = errors.recv().await {
            if error.contains(subject) {
                return error;
            }
        }
        panic!("the connection closed before an error about {subject}")
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("no error about {subject} within {WAIT:?}"))
}

/// Publishes `subject` as `user` and returns the server's refusal.
async fn refused_publish(stack: &Stack, user: &str, subject: &str) -> String {
    let (client, mut errors) = connect_as(stack, user).await;
    client.publish(subject.to_owned(), "{}".into()).await.unwrap_or_else(|error| panic!("publish: {error}"));
    client.flush().await.unwrap_or_else(|error| panic!("flush: {error}"));
    let refusal = violation(&mut errors, subject).await;
    assert!(refusal.to_lowercase().contains("permissions violation for publish"), "{user} → {subject}: {refusal}");
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_does_its_work_on_its_own_user_and_is_refused_the_rest() {
    let stack = authenticated_stack().await;
    // The edge asks the api for memberships at the upgrade, over chat.rpc.
    let mut alice = stack.connect(&token("alice")).await;
    let mut bob = stack.connect(&token("bob")).await;

    // api → CHAT_CMD → persister → CHAT_EVT → notifier (user.bob.chat.joined) → bob's
    // edge, which replays the chat's start from CHAT_EVT; carol is offline.
    let chat = stack
        .create_chat(&token("alice"), json!({"type": "group", "title": "g", "member_ids": ["bob", "carol"]}))
        .await;
    assert_eq!(bob.next_of("chat.created").await["chat_id"], chat.as_str());
    assert_eq!(alice.next_of("chat.created").await["chat_id"], chat.as_str());

    // edge → CHAT_CMD → persister → CHAT_EVT → edges; the notifier asks for a push.
    let ack =
        alice.command(json!({"type": "msg.send", "chat_id": chat, "client_msg_id": "m1", "text": "hi"}), "m1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut hi = json!(null);
    for client in [&mut alice, &mut bob] {
        hi = client.next_of("msg.created").await["message"].clone();
        assert_eq!(hi["text"], "hi");
    }

    // The persister's refusals (edge.<edge_id>.outcome...) and read marks (chat.live) too.
    let edit = json!({"type": "msg.edit", "chat_id": chat, "message_id": hi["id"], "text": "mine now"});
    assert_eq!(bob.command(edit, "e1").await["type"], "ack");
    let refused = bob.next_of("error").await;
    assert_eq!((&refused["code"], &refused["ref"]), (&json!("forbidden"), &json!("e1")), "{refused}");
    let read = json!({"type": "read", "chat_id": chat, "up_to_seq": hi["seq"]});
    assert_eq!(alice.command(read, "r1").await["type"], "ack");
    assert_eq!(bob.next_of("read").await["user_id"], "alice");

    // The api's own write waits for the persister's outcome in the api's inbox.
    let (status, sent) = stack
        .call(
            Method::POST,
            &format!("/api/chats/{chat}/messages"),
            &token("bob"),
            Some(json!({"client_msg_id": "m2", "text": "over REST"})),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.next_of("msg.created").await["message"]["text"], "over REST");
    }

    // edge → presence → edge.
    bob.send_json(json!({"type": "typing", "chat_id": chat, "state": "start"})).await;
    assert_eq!(alice.next_of("typing").await["user_id"], "bob");

    // The push gateway's user reads the notifier's request for carol from PUSH.
    let (gateway, _) = connect_as(&stack, "push-gateway").await;
    let push = jetstream::new(gateway)
        .get_stream(chat_nats::streams::PUSH_STREAM)
        .await
        .unwrap_or_else(|error| panic!("PUSH as the push gateway: {error}"))
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("push-gateway".into()),
            filter_subject: subjects::push("carol"),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|error| panic!("consumer as the push gateway: {error}"));
    let mut requests = push.messages().await.unwrap_or_else(|error| panic!("fetch: {error}"));
    let request = tokio::time::timeout(WAIT, requests.next())
        .await
        .unwrap_or_else(|_| panic!("no push request for carol"))
        .unwrap_or_else(|| panic!("the push consumer ended"))
        .unwrap_or_else(|error| panic!("push request: {error}"));
    assert_eq!(request.subject.as_str(), subjects::push("carol"));
    request.ack().await.unwrap_or_else(|error| panic!("ack as the push gateway: {error}"));

    // What each user must not publish. A forged event would reach bob's socket as it is.
    let forged_event = subjects::event(&chat, EventKind::MsgCreated);
    let forbidden = [
        ("ws-edge", forged_event.clone()),
        ("ws-edge", subjects::api_command(&chat, "msg.send")),
        ("api", forged_event.clone()),
        ("persister", subjects::command(&chat, "msg.send")),
        ("notifier", forged_event.clone()),
        ("presence", subjects::user("bob", UserDeliveryKind::ChatJoined)),
        ("push-gateway", subjects::push("carol")),
    ];
    for (user, subject) in &forbidden {
        refused_publish(&stack, user, subject).await;
    }
    bob.expect_silence(Duration::from_millis(500)).await;

    // Nor may an edge read another component's replies.
    let (edge, mut errors) = connect_as(&stack, "ws-edge").await;
    let api_inbox = format!("{}.>", subjects::inbox_prefix("api"));
    let _snoop = edge.subscribe(api_inbox.clone()).await.unwrap_or_else(|error| panic!("subscribe: {error}"));
    let refusal = violation(&mut errors, &api_inbox).await;
    assert!(refusal.to_lowercase().contains("permissions violation for subscription"), "{refusal}");

    // And a user who is not on the list gets nowhere.
    let stranger = ConnectOptions::with_user_and_password("ws-edge".into(), "not-the-password".into())
        .connect(&stack.nats.nats_url)
        .await;
    assert!(stranger.is_err(), "a wrong password was accepted");
}

/// A group bound to a course, as only the platform may create it.
fn course_chat(actor: Actor, external_id: &str, reply: Option<String>) -> CommandEnvelope {
    CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor,
        reference: None,
        conn_id: None,
        reply,
        issued_at: chrono::Utc::now(),
        command: Command::ChatCreate(ChatCreate {
            chat_id: chat_core::ids::new_id(),
            kind: ChatKind::Group,
            title: Some("Physics".into()),
            member_ids: vec![],
            external_id: Some(external_id.into()),
            history_visibility: None,
        }),
    }
}

async fn publish_as(js: &jetstream::Context, subject: String, envelope: &CommandEnvelope) {
    let payload = serde_json::to_vec(envelope).unwrap_or_else(|error| panic!("encode: {error}"));
    publish_one(js, Outgoing::new(subject, envelope.id.clone(), payload.into()))
        .await
        .unwrap_or_else(|error| panic!("JetStream took no command: {error}"));
}

/// `chat_persister_commands_total{command="chat.create",outcome="implausible"}`.
async fn implausible_creates(stack: &Stack) -> u64 {
    let url = stack.persister_admin_url().unwrap_or_else(|| panic!("the persister is not running"));
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap_or_else(|error| panic!("metrics: {error}"))
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find(|line| line.starts_with(r#"chat_persister_commands_total{command="chat.create",outcome="implausible"}"#))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_api_may_act_as_the_platforms_service() {
    let stack = authenticated_stack().await;
    let service = Actor { user_id: "lms".into(), roles: vec!["service".into()] };
    let before = implausible_creates(&stack).await;

    // A compromised edge claims to be the platform, and points the outcome at an event
    // subject for good measure: JetStream stores both, the persister drops both.
    let (edge, _) = connect_as(&stack, "ws-edge").await;
    let edge = jetstream::new(edge);
    let claimed = course_chat(service.clone(), "course-1", None);
    publish_as(&edge, subjects::command(claimed.chat_id(), claimed.command.name()), &claimed).await;
    let student = Actor { user_id: "stu".into(), roles: vec!["student".into()] };
    let misdirected = course_chat(student, "course-2", Some(subjects::event("c-x", EventKind::MsgCreated)));
    publish_as(&edge, subjects::command(misdirected.chat_id(), misdirected.command.name()), &misdirected).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    while implausible_creates(&stack).await < before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "the persister did not drop both commands within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each would have made its actor the group's owner.
    let lms = token_with_roles("lms", &["service"]);
    for (dropped, owner) in [(&claimed, lms.clone()), (&misdirected, token("stu"))] {
        let (status, _) = stack.call(Method::GET, &format!("/api/chats/{}", dropped.chat_id()), &owner, None).await;
        assert_eq!(status, 404, "a dropped command created its chat");
    }

    // The api's user may: the same command on the api's subject is stored, and the
    // outcome comes back to the api's inbox.
    let (api, _) = connect_as(&stack, "api").await;
    let reply = api.new_inbox();
    let mut outcomes = api.subscribe(reply.clone()).await.unwrap_or_else(|error| panic!("subscribe: {error}"));
    let platform = course_chat(service, "course-1", Some(reply));
    publish_as(&jetstream::new(api), subjects::api_command(platform.chat_id(), platform.command.name()), &platform)
        .await;
    let outcome = tokio::time::timeout(WAIT, outcomes.next())
        .await
        .unwrap_or_else(|_| panic!("no outcome within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the reply subscription ended"));
    let outcome: CommandOutcome =
        serde_json::from_slice(&outcome.payload).unwrap_or_else(|error| panic!("outcome: {error}"));
    assert!(matches!(outcome, CommandOutcome::Done { created: true, .. }), "{outcome:?}");
    let (status, chat) = stack.call(Method::GET, &format!("/api/chats/{}", platform.chat_id()), &lms, None).await;
    assert_eq!((status, &chat["external_id"]), (200, &json!("course-1")), "{chat}");
    assert_eq!(implausible_creates(&stack).await, before + 2, "the api's command was not dropped");
}

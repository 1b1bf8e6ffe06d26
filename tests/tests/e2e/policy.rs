//! The messaging policy (`CHAT_POLICY_FILE`, here the documented example
//! `docs/policy.example.toml`) as a school's users meet it over REST: each refusal with
//! its code and the rule that refused, the chats it allows, a student ↔ teacher direct
//! chat created as a group with its supervisor, and nobody able to remove that
//! supervisor. Run once with the policy at the persister only, so that the creations'
//! answers are the persister's own decisions (and a supervisor's removal is tried on the
//! bus, past the api), and once at both, as deployed, where the api answers refusals
//! before the persister sees them.

use std::path::PathBuf;

use async_nats::jetstream;
use chat_e2e::{Stack, StackOptions, WAIT, token_with_roles};
use chat_nats::{
    commands::{Actor, Command, CommandEnvelope, CommandOutcome, MemberRemove},
    model::ErrorCode,
    publish::{Outgoing, publish_one},
    subjects,
};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

/// The documented example policy: students open direct chats with teachers only,
/// teachers and admins create groups, student ↔ teacher chats are supervised by
/// `counsellor`.
fn example_policy() -> Option<PathBuf> {
    Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policy.example.toml")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persister_enforces_the_policy_on_its_own() {
    let stack = Stack::start_with(StackOptions {
        persister: Some(|config| config.policy.policy_file = example_policy()),
        ..StackOptions::default()
    })
    .await;
    let chat_id = walk_the_policy(&stack).await;

    // The api does not ask the policy in this stack, and answers the chat's shape
    // without it; on the bus, the persister refuses a supervisor's removal itself.
    let teacher = Actor { user_id: "t1".into(), roles: vec!["teacher".into()] };
    let remove = Command::MemberRemove(MemberRemove { chat_id, user_id: "counsellor".into() });
    match persister_outcome(&stack, teacher, remove).await {
        CommandOutcome::Rejected(rejection) => {
            assert_eq!(rejection.code, ErrorCode::Forbidden, "{rejection:?}");
            assert!(rejection.message.contains("rule [supervised]"), "{rejection:?}");
        }
        done => panic!("the persister removed the supervisor: {done:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_policy_as_the_persister_does() {
    let stack = Stack::start_with(StackOptions {
        api: Some(|config| config.policy.policy_file = example_policy()),
        persister: Some(|config| config.policy.policy_file = example_policy()),
        ..StackOptions::default()
    })
    .await;
    walk_the_policy(&stack).await;
}

/// A refused call's status, code and message.
fn refusal(answer: &(u16, Value)) -> (u16, &str, &str) {
    let (status, body) = answer;
    let error = &body["error"];
    (*status, error["code"].as_str().unwrap_or_default(), error["message"].as_str().unwrap_or_default())
}

/// Each member as `user:role`, sorted.
fn members(chat: &Value) -> Vec<String> {
    let listed = chat["participants"].as_array().cloned().unwrap_or_default();
    let mut members: Vec<String> = listed
        .iter()
        .map(|m| format!("{}:{}", m["user_id"].as_str().unwrap_or_default(), m["role"].as_str().unwrap_or_default()))
        .collect();
    members.sort();
    members
}

/// Walks every rule of the example policy; returns the supervised chat's id.
async fn walk_the_policy(stack: &Stack) -> String {
    let student = token_with_roles("s1", &["student"]);
    let classmate = token_with_roles("s2", &["student"]);
    let teacher = token_with_roles("t1", &["teacher"]);
    let admin = token_with_roles("a1", &["admin"]);
    // The other party's roles come from the user directory, which learns a user from
    // their first request.
    for token in [&student, &classmate, &teacher, &admin] {
        let (status, me) = stack.call(Method::GET, "/api/users/me", token, None).await;
        assert_eq!(status, 200, "{me}");
    }
    let create = |token: &str, body: Value| {
        let token = token.to_owned();
        async move { stack.call(Method::POST, "/api/chats", &token, Some(body)).await }
    };

    // Students do not open direct chats with students, nor with users the directory
    // does not know (they have no role), and do not create groups.
    let answer = create(&student, json!({"type": "direct", "member_id": "s2"})).await;
    let (status, code, message) = refusal(&answer);
    assert_eq!((status, code), (403, "forbidden"), "{answer:?}");
    assert!(message.contains("rule [direct]"), "{message}");
    assert!(message.contains("role student may not open a direct chat with role student"), "{message}");
    let answer = create(&student, json!({"type": "direct", "member_id": "ghost"})).await;
    let (status, code, message) = refusal(&answer);
    assert_eq!((status, code), (403, "forbidden"), "{answer:?}");
    assert!(message.contains("with a user without a platform role"), "{message}");
    let answer = create(&student, json!({"type": "group", "title": "Study group", "member_ids": ["s2"]})).await;
    let (status, code, message) = refusal(&answer);
    assert_eq!((status, code), (403, "forbidden"), "{answer:?}");
    assert!(message.contains("rule [groups] create"), "{message}");
    assert!(message.contains("role student may not create groups"), "{message}");
    let (status, chats) = stack.call(Method::GET, "/api/chats", &student, None).await;
    assert_eq!((status, &chats["items"]), (200, &json!([])), "a refusal stored nothing: {chats}");

    // Teachers open direct chats with anyone but students plainly, and create groups.
    let (status, group) = create(&teacher, json!({"type": "group", "title": "7A", "member_ids": ["s1", "s2"]})).await;
    assert_eq!((status, &group["type"]), (201, &json!("group")), "{group}");
    let (status, direct) = create(&teacher, json!({"type": "direct", "member_id": "a1"})).await;
    assert_eq!((status, &direct["type"]), (201, &json!("direct")), "{direct}");
    assert_eq!(members(&direct), ["a1:member", "t1:member"], "{direct}");

    // A student ↔ teacher direct chat is a group with the supervisor as its owner, and
    // either of the two finds the same chat again.
    let (status, supervised) = create(&student, json!({"type": "direct", "member_id": "t1"})).await;
    assert_eq!(status, 201, "{supervised}");
    assert_eq!((&supervised["type"], &supervised["title"]), (&json!("group"), &json!("Supervised chat")));
    let expected = ["counsellor:owner", "s1:member", "t1:member"];
    assert_eq!(members(&supervised), expected, "{supervised}");
    let chat_id = supervised["id"].as_str().unwrap_or_default().to_owned();
    for token in [&student, &teacher] {
        let other = if token == &student { "t1" } else { "s1" };
        let (status, again) = create(token, json!({"type": "direct", "member_id": other})).await;
        assert_eq!((status, &again["id"]), (200, &json!(chat_id)), "{again}");
    }

    // Nobody but the supervisor's own chat rules touch the supervisor: the student and
    // the teacher are refused by the rule, and the supervisor is still there.
    let supervisor = format!("/api/chats/{chat_id}/participants/counsellor");
    for token in [&student, &teacher] {
        let answer = stack.call(Method::DELETE, &supervisor, token, None).await;
        let (status, code, message) = refusal(&answer);
        assert_eq!((status, code), (403, "forbidden"), "{answer:?}");
        assert!(message.contains("rule [supervised]"), "{message}");
        assert!(message.contains("the supervisor of a supervised chat cannot be removed"), "{message}");
    }
    let (status, chat) = stack.call(Method::GET, &format!("/api/chats/{chat_id}"), &student, None).await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(members(&chat), expected, "{chat}");

    // The student may still leave the chat.
    let leave = format!("/api/chats/{chat_id}/participants/s1");
    let (status, left) = stack.call(Method::DELETE, &leave, &student, None).await;
    assert_eq!(status, 204, "{left}");
    chat_id
}

/// The persister's outcome of `command`, published on the bus as the edge would for
/// `actor`, with the answer to an inbox of the test's.
async fn persister_outcome(stack: &Stack, actor: Actor, command: Command) -> CommandOutcome {
    let bus = stack.bus_as("api").await;
    let reply = bus.new_inbox();
    let mut outcomes = bus.subscribe(reply.clone()).await.unwrap_or_else(|error| panic!("subscribe: {error}"));
    let envelope = CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor,
        reference: None,
        conn_id: None,
        reply: Some(reply),
        issued_at: chrono::Utc::now(),
        command,
    };
    let subject = subjects::command(envelope.chat_id(), envelope.command.name());
    let payload = serde_json::to_vec(&envelope).unwrap_or_else(|error| panic!("encode: {error}"));
    publish_one(&jetstream::new(bus), Outgoing::new(subject, envelope.id.clone(), payload.into()))
        .await
        .unwrap_or_else(|error| panic!("publish: {error}"));
    let answer = tokio::time::timeout(WAIT, outcomes.next())
        .await
        .unwrap_or_else(|_| panic!("no outcome within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the inbox subscription ended"));
    serde_json::from_slice(&answer.payload).unwrap_or_else(|error| panic!("outcome: {error}"))
}

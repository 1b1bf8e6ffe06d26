//! The api against real NATS and the MongoDB-compatible store, without a persister:
//! authentication, input validation, reads, the OpenAPI document, the memberships
//! service, what a write answers when nothing persists it, and the OpenAPI document
//! against the server ([`openapi`]).

mod openapi;

use std::time::Duration;

use chat_core::{
    auth::{DEV_SECRET, dev_claims, dev_jwt_args, mint_hs256},
    config::{AdminArgs, HttpArgs, LogArgs, LogFormat, ShutdownArgs},
};
use chat_nats::{model::Role, rpc::MembershipsReply, subjects};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc, ParticipantDoc},
};
use chat_testkit::Servers;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Harness {
    servers: Servers,
    base: String,
    admin: String,
    store: Store,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(api::privacy::PrivacyArgs::default()).await
    }

    async fn start_with(privacy: api::privacy::PrivacyArgs) -> Harness {
        let servers = Servers::start().await;
        let shutdown = CancellationToken::new();
        let config = api::Config {
            log: LogArgs { log: "warn".into(), log_format: LogFormat::Pretty },
            nats: servers.nats_args(),
            mongo: servers.mongo_args(),
            redis: servers.redis_args(),
            jwt: dev_jwt_args(),
            admin: AdminArgs { admin_addr: Some(([127, 0, 0, 1], 0).into()) },
            shutdown: ShutdownArgs { shutdown_grace_s: 5 },
            http: HttpArgs { header_read_timeout_ms: 10_000 },
            listen_addr: ([127, 0, 0, 1], 0).into(),
            limits: chat_core::config::UserLimitArgs { messages_per_user_per_s: 3, messages_per_user_burst: None },
            writes: chat_core::config::WriteLimitArgs::default(),
            allowed_origins: vec!["https://school.example".into()],
            command_timeout_ms: 500,
            web: Default::default(),
            privacy,
            chats: chat_core::config::ChatLimitArgs::default(),
            policy: chat_core::policy::PolicyArgs::default(),
            moderation: chat_core::moderation::ModerationArgs::default(),
        };
        let running = api::start(config, shutdown.clone()).await.unwrap_or_else(|e| panic!("api: {e}"));
        let db = chat_core::connect::mongodb(&servers.mongo_args(), "test").await.unwrap_or_else(|e| panic!("{e}"));
        Harness {
            base: format!("http://{}", running.listen_addr),
            admin: format!("http://{}", running.admin_addr),
            store: Store::new(db),
            servers,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stores a group directly, as the persister would.
    async fn seed_group(&self, chat_id: &str, owner: &str, members: &[&str]) {
        let now = chrono::Utc::now();
        let mut participants = vec![MemberDoc { user_id: owner.into(), role: Role::Owner, muted_until: None }];
        participants.extend(members.iter().map(|m| MemberDoc {
            user_id: (*m).into(),
            role: Role::Member,
            muted_until: None,
        }));
        let chat = ChatDoc {
            id: chat_id.into(),
            kind: chat_nats::model::ChatKind::Group,
            title: Some("seeded".into()),
            created_by: owner.into(),
            created_at: now,
            updated_at: now,
            last_seq: 1,
            last_message: None,
            participants: participants.clone(),
            external_id: None,
            direct_key: None,
            last_update: None,
            last_removal: None,
            history_visibility: Default::default(),
            mode: Default::default(),
            last_moderation: None,
        };
        self.store.insert_chat(&chat).await.unwrap_or_else(|e| panic!("{e}"));
        let docs: Vec<ParticipantDoc> = participants
            .iter()
            .map(|m| ParticipantDoc {
                id: ParticipantDoc::key(chat_id, &m.user_id),
                chat_id: chat_id.into(),
                user_id: m.user_id.clone(),
                role: m.role,
                joined_at: now,
                joined_seq: 1,
                role_seq: None,
                last_read_seq: 0,
                muted: false,
                muted_until: None,
                added_by: None,
            })
            .collect();
        self.store.insert_participants(&docs).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn token(user: &str) -> String {
    mint_hs256(DEV_SECRET, &dev_claims(user, "Name", &["teacher"], 600)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_checked() {
    let h = Harness::start().await;
    let (status, body) = h.call(Method::GET, "/api/users/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let forged =
        mint_hs256("some-other-secret-that-is-long-enough!", &dev_claims("u1", "N", &[], 600)).unwrap_or_default();
    assert_eq!(h.call(Method::GET, "/api/chats", Some(&forged), None).await.0, StatusCode::UNAUTHORIZED);
    let (status, me) = h.call(Method::GET, "/api/users/me", Some(&token("u1")), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me, json!({"id": "u1", "name": "Name", "roles": ["teacher"]}));
    let stored = h.store.user("u1").await.unwrap_or_default().expect("the caller is upserted from the token");
    assert_eq!(stored.name, "Name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_and_nothing_reaches_a_query() {
    let h = Harness::start().await;
    let t = token("u1");
    h.seed_group("c1", "u1", &[]).await;
    for (method, path, body) in [
        (Method::POST, "/api/chats", Some(json!({"type": "group", "title": "x", "admin": true}))),
        (Method::POST, "/api/chats", Some(json!({"type": "direct", "member_id": {"$ne": ""}}))),
        (Method::POST, "/api/chats", Some(json!({"type": "direct", "member_id": "u1"}))),
        (Method::POST, "/api/chats", Some(json!({"type": "group", "title": "two\nlines"}))),
        (Method::GET, "/api/chats?limit=0", None),
        (Method::GET, "/api/chats?limit=201", None),
        (Method::GET, "/api/chats?cursor=forged", None),
        (Method::GET, "/api/chats?sort=$natural", None),
        (Method::GET, "/api/chats/c1/messages?before_seq=-1", None),
        (Method::GET, "/api/chats/c1/messages?before_seq=3&after_seq=1", None),
        (Method::POST, "/api/chats/c1/messages", Some(json!({"client_msg_id": "k", "text": ""}))),
        (Method::POST, "/api/chats/c1/messages", Some(json!({"client_msg_id": "k.1", "text": "x"}))),
        (Method::POST, "/api/chats/c1/messages", Some(json!({"client_msg_id": "k", "text": "x", "extra": 1}))),
        // serde reads a struct from an array of its fields in order; a body is an object.
        (Method::POST, "/api/chats/c1/messages", Some(json!(["k", "x"]))),
        (Method::POST, "/api/chats", Some(json!(["group", "x"]))),
    ] {
        let (status, body) = h.call(method.clone(), path, Some(&t), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} {body:?}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
    }
    let long = "я".repeat(4001);
    let (status, body) = h
        .call(Method::POST, "/api/chats/c1/messages", Some(&t), Some(json!({"client_msg_id": "k", "text": long})))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let huge = "x".repeat(70 * 1024);
    let (status, _) = h
        .call(Method::POST, "/api/chats/c1/messages", Some(&t), Some(json!({"client_msg_id": "k", "text": huge})))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_see_a_chat_and_others_get_404() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &["u2"]).await;
    let (status, chat) = h.call(Method::GET, "/api/chats/c1", Some(&token("u2")), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chat["participants"].as_array().map(Vec::len), Some(2));
    for path in ["/api/chats/c1", "/api/chats/c1/messages", "/api/chats/nope", "/api/nowhere"] {
        let (status, body) = h.call(Method::GET, path, Some(&token("u3")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = h
        .call(
            Method::POST,
            "/api/chats/c1/messages",
            Some(&token("u3")),
            Some(json!({"client_msg_id": "k", "text": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_persister_a_write_is_503_with_retry_after() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &[]).await;
    let response = h
        .http
        .post(format!("{}/api/chats/c1/messages", h.base))
        .bearer_auth(token("u1"))
        .json(&json!({"client_msg_id": "k", "text": "queued"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memberships_service_answers_the_edges() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &["u2"]).await;
    h.seed_group("c2", "u2", &[]).await;
    let nats = async_nats::connect(h.servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let reply = nats
        .request(subjects::rpc("memberships"), r#"{"user_id":"u2"}"#.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reply: MembershipsReply = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}"));
    let mut chats: Vec<(String, Role)> = reply.chats.into_iter().map(|m| (m.chat_id, m.role)).collect();
    chats.sort();
    assert_eq!(chats, vec![("c1".into(), Role::Member), ("c2".into(), Role::Owner)]);
    let bad = nats.request(subjects::rpc("memberships"), r#"{"user_id":{"$ne":1}}"#.into()).await;
    let bad: Value = serde_json::from_slice(&bad.unwrap_or_else(|e| panic!("{e}")).payload).unwrap_or_default();
    assert!(bad["error"].as_str().unwrap_or_default().contains("bad request"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_the_admin_port_answers() {
    let h = Harness::start().await;
    let document: Value = h
        .http
        .get(format!("{}/api/openapi.json", h.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/api/chats",
        "/api/chats/{chat_id}",
        "/api/chats/{chat_id}/participants",
        "/api/chats/{chat_id}/participants/{user_id}",
        "/api/chats/{chat_id}/messages",
        "/api/chats/{chat_id}/messages/{message_id}",
        "/api/chats/{chat_id}/read",
        "/api/users",
        "/api/users/me",
        "/api/users/presence",
        "/api/admin/users/{user_id}",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let ready: Value = h
        .http
        .get(format!("{}/readyz", h.admin))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(ready["status"], "ready", "{ready}");
    let _ = h.call(Method::GET, "/api/users/me", Some(&token("u1")), None).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let metrics = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains(r#"chat_http_requests_total{method="GET",route="/api/users/me",status="200"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_for_allowed_origins_only_and_protective_headers() {
    let h = Harness::start().await;
    let preflight = |origin: &'static str| {
        h.http
            .request(Method::OPTIONS, format!("{}/api/chats", h.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://school.example").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://school.example")
    );
    assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "no cookies, no credentials");
    let foreign = preflight("https://evil.example").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(foreign.headers().get("access-control-allow-origin").is_none());

    let response = h.http.get(format!("{}/api/users/me", h.base)).bearer_auth(token("u1")).send().await;
    let response = response.unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ] {
        assert_eq!(response.headers().get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_message_budget_is_shared_and_answers_429() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &["u2"]).await;
    let send = |user: &'static str, key: String| {
        h.http
            .post(format!("{}/api/chats/c1/messages", h.base))
            .bearer_auth(token(user))
            .json(&json!({"client_msg_id": key, "text": "flood"}))
            .send()
    };
    // Eight at once against a budget of three per second: whatever the window split,
    // at least two are refused.
    let answers = futures::future::join_all((0..8).map(|i| send("u1", format!("k{i}")))).await;
    let limited: Vec<_> = answers.iter().flatten().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(limited.len() >= 2, "{} refused", limited.len());
    assert!(limited.iter().all(|r| r.headers().contains_key("retry-after")));
    let other = send("u2", "k".into()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS, "another user's budget is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pages_at_500_changes_with_has_more() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &[]).await;
    let now = chrono::Utc::now();
    let messages: Vec<chat_store::docs::MessageDoc> = (2..=602)
        .map(|seq| chat_store::docs::MessageDoc {
            id: format!("m{seq}"),
            chat_id: "c1".into(),
            seq,
            updated_seq: seq,
            sender_id: "u1".into(),
            client_msg_id: format!("k{seq}"),
            text: "x".into(),
            reply_to: None,
            created_at: now,
            edited_at: None,
            deleted_at: None,
            last_command: None,
        })
        .collect();
    h.store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("{e}"));
    // The persister reserves seqs before it writes what uses them.
    h.store.reserve_seqs("c1", 601).await.unwrap_or_else(|e| panic!("{e}"));
    let nats = async_nats::connect(h.servers.nats_url()).await.unwrap_or_else(|e| panic!("{e}"));
    let ask = |since: u64| {
        let nats = nats.clone();
        async move {
            let body = json!({"user_id": "u1", "chats": {"c1": since}}).to_string();
            let reply = nats.request(subjects::rpc("sync"), body.into()).await.unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_slice::<Value>(&reply.payload).unwrap_or_default()
        }
    };
    let first = ask(1).await;
    let page = &first["chats"]["c1"];
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(500));
    assert_eq!(page["has_more"], true);
    let last = page["messages"][499]["updated_seq"].as_u64().unwrap_or(0);
    assert_eq!(last, 501);
    let second = ask(last).await;
    assert_eq!(second["chats"]["c1"]["messages"].as_array().map(Vec::len), Some(101));
    assert_eq!(second["chats"]["c1"]["has_more"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_walk_the_whole_chat_across_seq_gaps_both_ways() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &["u2"]).await;
    let at = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    // 130 messages: the first at seq 10, then every third seq (edits, deletes and
    // membership events took the others), a gap of 5,000 seqs after the 60th, every
    // 7th one deleted, and 400 seqs of membership events after the last.
    let mut seq = 7;
    let messages: Vec<chat_store::docs::MessageDoc> = (0..130)
        .map(|i| {
            seq += if i == 60 { 5_000 } else { 3 };
            let deleted = i % 7 == 0;
            chat_store::docs::MessageDoc {
                id: format!("m{seq}"),
                chat_id: "c1".into(),
                seq,
                updated_seq: seq + 1,
                sender_id: "u1".into(),
                client_msg_id: format!("k{seq}"),
                text: if deleted { String::new() } else { format!("text {seq}") },
                reply_to: None,
                created_at: at,
                edited_at: None,
                deleted_at: deleted.then_some(at),
                last_command: None,
            }
        })
        .collect();
    h.store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("{e}"));
    let last_seq = seq + 400;
    h.store.reserve_seqs("c1", u64::try_from(last_seq - 1).unwrap_or(0)).await.unwrap_or_else(|e| panic!("{e}"));
    let every: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let t = token("u2");

    let walk = |first: String| {
        let (h, t) = (&h, &t);
        async move {
            let mut seqs = Vec::new();
            let mut path = first;
            loop {
                let (status, page) = h.call(Method::GET, &path, Some(t), None).await;
                assert_eq!(status, StatusCode::OK, "{path}: {page}");
                let items = page["items"].as_array().cloned().unwrap_or_default();
                assert!(items.len() <= 50, "{path}");
                seqs.extend(items.iter().map(|m| m["seq"].as_i64().unwrap_or(0)));
                match page["next_cursor"].as_str() {
                    Some(cursor) => path = format!("/api/chats/c1/messages?limit=50&cursor={cursor}"),
                    None => return seqs,
                }
            }
        }
    };
    let newest_first = walk("/api/chats/c1/messages?limit=50".into()).await;
    assert_eq!(newest_first, every.iter().rev().copied().collect::<Vec<_>>(), "newest first, from the first page");
    let oldest_first = walk("/api/chats/c1/messages?limit=50&after_seq=0".into()).await;
    assert_eq!(oldest_first, every, "oldest first, to the newest");

    // A page below a cursor inside the big gap, and the ends of the chat.
    let (_, page) = h.call(Method::GET, "/api/chats/c1/messages?limit=5&before_seq=3000", Some(&t), None).await;
    let seqs: Vec<i64> =
        page["items"].as_array().into_iter().flatten().map(|m| m["seq"].as_i64().unwrap_or(0)).collect();
    assert_eq!(seqs, every[55..60].iter().rev().copied().collect::<Vec<_>>());
    for path in [
        "/api/chats/c1/messages?before_seq=1".to_owned(),
        "/api/chats/c1/messages?before_seq=10".to_owned(),
        format!("/api/chats/c1/messages?after_seq={last_seq}"),
        format!("/api/chats/c1/messages?after_seq={seq}"),
    ] {
        let (status, page) = h.call(Method::GET, &path, Some(&t), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(page, json!({"items": [], "next_cursor": null}), "{path}");
    }
    // Tombstones are part of the history.
    let (_, page) = h.call(Method::GET, "/api/chats/c1/messages?limit=1&after_seq=0", Some(&t), None).await;
    assert_eq!(page["items"][0]["text"], "");
    assert!(page["items"][0]["deleted_at"].is_string(), "{page}");
}

/// The api binary as it runs in a container: every line it writes, from start to
/// SIGTERM, is an ECS document (`chat_testkit::ecs`), and a request's line carries its
/// request id and trace id under their ECS names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_line_as_ecs() {
    let servers = Servers::start().await;
    let mongo = servers.mongo_args();
    let args = [
        "--listen-addr",
        "127.0.0.1:0",
        "--nats-url",
        &servers.nats_url(),
        "--mongodb-uri",
        &mongo.mongodb_uri,
        "--mongodb-db",
        &mongo.mongodb_db,
        "--redis-url",
        &servers.redis_args().redis_url,
        "--jwt-secret",
        DEV_SECRET,
        "--shutdown-grace-s",
        "2",
    ];
    let mut api = chat_testkit::ecs::start_service(
        "api",
        env!("CARGO_BIN_EXE_api").into(),
        args.map(str::to_owned).to_vec(),
        "api started",
    )
    .await;
    let started = chat_testkit::ecs::documents(&api.log(), "api");
    let listen =
        chat_testkit::ecs::find(&started, "api started")["chat.listen_addr"].as_str().unwrap_or_default().to_owned();
    let response = reqwest::Client::new()
        .get(format!("http://{listen}/api/chats"))
        .header("x-request-id", "ecs-request-1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    api.terminate();

    let lines = chat_testkit::ecs::documents(&api.log(), "api");
    let request = chat_testkit::ecs::find(&lines, "request");
    assert_eq!(request["http.request.id"], "ecs-request-1");
    assert_eq!(request["trace.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(request["http.request.method"], "GET");
    assert_eq!(request["http.response.status_code"], 401);
    assert_eq!(request["log.level"], "info");
}

/// Writes what the presence worker would: `user_id` was last connected at `at_ms`.
async fn seen_at(h: &Harness, user_id: &str, at_ms: i64) {
    let mut redis = chat_core::connect::redis(&h.servers.redis_args()).await.unwrap_or_else(|e| panic!("{e}"));
    let _: () = redis::cmd("SET")
        .arg(chat_core::redis_keys::last_seen(user_id))
        .arg(at_ms)
        .query_async(&mut redis)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn student(user: &str) -> String {
    mint_hs256(DEV_SECRET, &dev_claims(user, "Name", &["student"], 600)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_visibility_and_directory_roles_follow_their_settings() {
    for (settings, stranger_visible, roles_shown) in [
        (api::privacy::PrivacyArgs::default(), false, false),
        (
            api::privacy::PrivacyArgs {
                presence_visibility: api::privacy::PresenceVisibility::All,
                directory_roles: api::privacy::DirectoryRoles::Everyone,
                ..api::privacy::PrivacyArgs::default()
            },
            true,
            true,
        ),
    ] {
        let h = Harness::start_with(settings).await;
        seen_at(&h, "stranger", 1_700_000_000_000).await;
        seen_at(&h, "mate", 1_700_000_000_000).await;
        h.seed_group("shared", "viewer", &["mate"]).await;
        let (status, page) =
            h.call(Method::GET, "/api/users/presence?ids=stranger,mate", Some(&student("viewer")), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["items"][1]["last_seen"].is_string(), "a chat mate: {page}");
        assert_eq!(page["items"][0]["last_seen"].is_string(), stranger_visible, "a stranger: {page}");

        let _ = h.call(Method::GET, "/api/users/me", Some(&token("teacher-t")), None).await;
        let (_, found) = h.call(Method::GET, "/api/users?q=teacher-t", Some(&student("viewer")), None).await;
        let expected = if roles_shown { json!(["teacher"]) } else { json!([]) };
        assert_eq!(found["items"][0]["roles"], expected, "{found}");
    }
}

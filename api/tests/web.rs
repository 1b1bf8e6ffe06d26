//! The web client's development conveniences: the built files at `/` from
//! `CHAT_WEB_DIR` and `POST /api/dev/token`, both absent by default; what is served
//! stays inside the directory and never shadows `/api`.

use chat_core::{
    auth::dev_jwt_args,
    config::{AdminArgs, HttpArgs, JwtArgs, LogArgs, LogFormat, ShutdownArgs},
};
use chat_testkit::Servers;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn config(servers: &Servers, jwt: JwtArgs, web: api::web::WebArgs) -> api::Config {
    api::Config {
        log: LogArgs { log: "warn".into(), log_format: LogFormat::Pretty },
        nats: servers.nats_args(),
        mongo: servers.mongo_args(),
        redis: servers.redis_args(),
        jwt,
        admin: AdminArgs { admin_addr: Some(([127, 0, 0, 1], 0).into()) },
        shutdown: ShutdownArgs { shutdown_grace_s: 5 },
        http: HttpArgs { header_read_timeout_ms: 10_000 },
        listen_addr: ([127, 0, 0, 1], 0).into(),
        limits: chat_core::config::UserLimitArgs { messages_per_user_per_s: 10, messages_per_user_burst: None },
        writes: chat_core::config::WriteLimitArgs::default(),
        allowed_origins: vec![],
        command_timeout_ms: 500,
        web,
        privacy: api::privacy::PrivacyArgs::default(),
        chats: chat_core::config::ChatLimitArgs::default(),
        policy: chat_core::policy::PolicyArgs::default(),
        moderation: chat_core::moderation::ModerationArgs::default(),
    }
}

/// Starts an api and returns its base URL (it stops when `shutdown` is dropped).
async fn start(servers: &Servers, web: api::web::WebArgs, shutdown: &CancellationToken) -> String {
    let running = api::start(config(servers, dev_jwt_args(), web), shutdown.child_token())
        .await
        .unwrap_or_else(|error| panic!("api: {error}"));
    format!("http://{}", running.listen_addr)
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap_or_else(|error| panic!("{url}: {error}"))
}

async fn mint(http: &reqwest::Client, base: &str, body: Value) -> reqwest::Response {
    http.post(format!("{base}/api/dev/token")).json(&body).send().await.unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_there_is_no_dev_token_endpoint_and_no_page() {
    let servers = Servers::start().await;
    let shutdown = CancellationToken::new();
    let base = start(&servers, api::web::WebArgs::default(), &shutdown).await;
    let http = reqwest::Client::new();
    let response = mint(&http, &base, json!({"user_id": "u1", "name": "Ann"})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "the dev token endpoint must not exist by default");
    assert_eq!(get(&format!("{base}/")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&format!("{base}/index.html")).await.status(), StatusCode::NOT_FOUND);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_from_its_directory_only_and_dev_tokens_work_with_the_api() {
    let servers = Servers::start().await;
    let root = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let dir = root.path().join("dist");
    std::fs::create_dir_all(dir.join("assets")).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(dir.join("index.html"), "<!doctype html><title>chat</title>").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("assets/app-1.js"), "console.log(1)").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join(".env"), "hidden").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.path().join("secret.txt"), "outside").unwrap_or_else(|e| panic!("{e}"));
    let shutdown = CancellationToken::new();
    let web = api::web::WebArgs { web_dir: Some(dir), dev_tokens: true };
    let base = start(&servers, web, &shutdown).await;

    let page = get(&format!("{base}/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "the page's own policy: {csp}");
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.text().await.unwrap_or_default(), "<!doctype html><title>chat</title>");
    let script = get(&format!("{base}/assets/app-1.js")).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");

    // Nothing outside the directory, nothing hidden, by any spelling.
    for path in
        ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt", "/.env", "/assets/", "/nope.js"]
    {
        let response = get(&format!("{base}{path}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!response.text().await.unwrap_or_default().contains("outside"), "{path}");
    }
    // `/api` keeps its own answers: an unknown route is the API's JSON 404, not a file.
    let unknown = get(&format!("{base}/api/index.html")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(get(&format!("{base}/api/users/me")).await.status(), StatusCode::UNAUTHORIZED);
    // API answers keep the strict policy.
    let api_answer = get(&format!("{base}/api/openapi.json")).await;
    assert_eq!(api_answer.headers()[header::CONTENT_SECURITY_POLICY], "default-src 'none'; frame-ancestors 'none'");

    let http = reqwest::Client::new();
    let minted = mint(&http, &base, json!({"user_id": "ann-1", "name": "Ann Lee", "roles": ["teacher"]})).await;
    assert_eq!(minted.status(), StatusCode::OK);
    let minted: Value = minted.json().await.unwrap_or(Value::Null);
    let token = minted["token"].as_str().unwrap_or_else(|| panic!("no token in {minted}"));
    let me: Value = http
        .get(format!("{base}/api/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(me, json!({"id": "ann-1", "name": "Ann Lee", "roles": ["teacher"]}));
    for bad in [
        json!({"user_id": "no spaces", "name": "A"}),
        json!({"user_id": "u1", "name": ""}),
        json!({"user_id": "u1", "name": "A", "roles": ["service"]}),
        json!({"user_id": "u1", "name": "A", "extra": 1}),
    ] {
        assert_eq!(mint(&http, &base, bad.clone()).await.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tokens_are_refused_at_startup_with_a_real_secret() {
    let servers = Servers::start().await;
    let jwt = JwtArgs { jwt_secret: Some("a-real-production-secret-0123456789abcdef".into()), ..dev_jwt_args() };
    let web = api::web::WebArgs { web_dir: None, dev_tokens: true };
    let started = api::start(config(&servers, jwt, web), CancellationToken::new()).await;
    let error = started.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(error.contains("CHAT_DEV_TOKENS"), "the api must not start: {error:?}");
}

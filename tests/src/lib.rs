//! The whole service in one test process: real servers from `chat-testkit`, the api,
//! persister, notifier and an edge started in process on free ports, and real
//! WebSocket and HTTP clients.

use std::{net::SocketAddr, time::Duration};

use chat_core::{
    auth::{DEV_SECRET, dev_claims, dev_jwt_args, mint_hs256},
    config::{AdminArgs, HttpArgs, LogArgs, LogFormat, NatsArgs, NatsAuthArgs, RedisArgs, ShutdownArgs},
};
use chat_testkit::Servers;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use settings::*;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tokio_util::sync::CancellationToken;

/// Settings shared by every in-process service.
mod settings {
    use super::*;

    /// Quiet logs.
    pub fn log() -> LogArgs {
        LogArgs { log: "warn".into(), log_format: LogFormat::Pretty }
    }

    /// An admin port chosen by the OS.
    pub fn admin() -> AdminArgs {
        AdminArgs { admin_addr: Some(any_port()) }
    }

    /// A short grace period.
    pub fn grace() -> ShutdownArgs {
        ShutdownArgs { shutdown_grace_s: 5 }
    }

    /// The default header read timeout.
    pub fn http() -> HttpArgs {
        HttpArgs { header_read_timeout_ms: chat_core::config::DEFAULT_HEADER_READ_TIMEOUT_MS }
    }

    /// `127.0.0.1:0`.
    pub fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
}

/// How long a test waits for something it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running persister that can be stopped and started again.
pub struct PersisterHandle {
    shutdown: CancellationToken,
    running: Option<persister::Running>,
}

/// A running notifier that can be stopped and started again.
pub struct NotifierHandle {
    shutdown: CancellationToken,
    running: Option<notifier::Running>,
}

/// A running edge that can be stopped on its own.
pub struct EdgeHandle {
    shutdown: CancellationToken,
    running: Option<ws_edge::Running>,
    listen_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl EdgeHandle {
    /// Its WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.listen_addr)
    }

    /// Its admin URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Shuts it down and waits until it has drained.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
    }
}

impl Drop for EdgeHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What an edge is started with, kept so that it can be started again alike.
struct EdgeSettings {
    nats: NatsArgs,
    redis: RedisArgs,
    adjust: Option<fn(&mut ws_edge::Config)>,
    /// The origin of the api's web page, when it serves one.
    page_origin: Option<String>,
}

/// What a test may run the stack on instead of the servers [`Servers`] starts.
#[derive(Default)]
pub struct StackOptions {
    /// NATS for every binary (a JetStream cluster, say) instead of the test's own
    /// `nats-server`.
    pub nats: Option<NatsArgs>,
    /// Redis for every binary (a Redis Cluster, say) instead of the test's own
    /// `redis-server`.
    pub redis: Option<RedisArgs>,
    /// Changes to the edge's settings (tighter limits, say).
    pub edge: Option<fn(&mut ws_edge::Config)>,
    /// Changes to the api's settings.
    pub api: Option<fn(&mut api::Config)>,
    /// Changes to the persister's settings (kept for its restarts).
    pub persister: Option<fn(&mut persister::Config)>,
    /// Servers to run on instead of a fresh [`Servers::start`] (a NATS server with
    /// authorization, say).
    pub servers: Option<Servers>,
    /// The NATS credentials of each component, by the name it connects with
    /// (`ws-edge`, `api`, `persister`, `notifier`, `presence`); none without.
    pub nats_auth: Option<fn(&str) -> NatsAuthArgs>,
    /// The api's web client settings (its files, development tokens); the edges then
    /// also accept the api's own origin, from which the served page connects.
    pub web: Option<api::web::WebArgs>,
}

/// Servers plus every binary.
pub struct Stack {
    /// The servers.
    pub servers: Servers,
    /// The NATS settings every binary runs with.
    pub nats: NatsArgs,
    /// The Redis settings every binary runs with.
    pub redis: RedisArgs,
    /// REST base URL.
    pub api_url: String,
    /// WebSocket URL.
    pub ws_url: String,
    /// Edge admin URL.
    pub edge_admin_url: String,
    /// Api admin URL.
    pub api_admin_url: String,
    /// Presence admin URL.
    pub presence_admin_url: String,
    /// The persister.
    pub persister: PersisterHandle,
    /// The notifier.
    pub notifier: NotifierHandle,
    nats_auth: Option<fn(&str) -> NatsAuthArgs>,
    persister_adjust: Option<fn(&mut persister::Config)>,
    edge: EdgeHandle,
    edge_addr: SocketAddr,
    edge_settings: EdgeSettings,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Stack {
    /// Starts everything.
    pub async fn start() -> Stack {
        Stack::start_with_redis(None).await
    }

    /// Starts everything, with the binaries on `redis` (a Redis Cluster, say) instead of
    /// the test's own `redis-server` when given.
    pub async fn start_with_redis(redis: Option<RedisArgs>) -> Stack {
        Stack::start_with(StackOptions { redis, ..StackOptions::default() }).await
    }

    /// Starts everything, on the NATS and Redis of `options` where given.
    pub async fn start_with(options: StackOptions) -> Stack {
        let servers = match options.servers {
            Some(servers) => servers,
            None => Servers::start().await,
        };
        let redis = options.redis.unwrap_or_else(|| servers.redis_args());
        let nats = options.nats.unwrap_or_else(|| servers.nats_args());
        let nats_for = |component: &str| with_auth(&nats, options.nats_auth, component);
        let shutdown = CancellationToken::new();
        let mut api_config = api::Config {
            log: log(),
            nats: nats_for("api"),
            mongo: servers.mongo_args(),
            redis: redis.clone(),
            jwt: dev_jwt_args(),
            admin: admin(),
            shutdown: grace(),
            http: http(),
            listen_addr: any_port(),
            limits: chat_core::config::UserLimitArgs { messages_per_user_per_s: 1000, messages_per_user_burst: None },
            writes: chat_core::config::WriteLimitArgs::default(),
            allowed_origins: vec!["http://localhost:3000".into()],
            command_timeout_ms: 10_000,
            web: options.web.clone().unwrap_or_default(),
            privacy: api::privacy::PrivacyArgs::default(),
            chats: chat_core::config::ChatLimitArgs::default(),
            policy: chat_core::policy::PolicyArgs::default(),
            moderation: chat_core::moderation::ModerationArgs::default(),
        };
        if let Some(adjust) = options.api {
            adjust(&mut api_config);
        }
        let api =
            api::start(api_config, shutdown.clone()).await.unwrap_or_else(|error| panic!("api did not start: {error}"));
        let persister = start_persister(&servers, &nats_for("persister"), options.persister).await;
        let notifier = start_notifier(&servers, &nats_for("notifier"), &redis).await;
        let mut presence_args = vec![
            "presence".to_owned(),
            "--log".into(),
            "warn".into(),
            "--nats-url".into(),
            nats.nats_url.clone(),
            "--stream-replicas".into(),
            nats.stream_replicas.to_string(),
            "--redis-url".into(),
            redis.redis_url.clone(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
        ];
        let presence_auth = nats_for("presence").auth;
        if let (Some(user), Some(password)) = (presence_auth.nats_user, presence_auth.nats_password) {
            presence_args.extend(["--nats-user".into(), user, "--nats-password".into(), password]);
        }
        let presence_config = presence::Config::try_parse_from(presence_args)
            .unwrap_or_else(|error| panic!("presence settings: {error}"));
        let presence = presence::start(presence_config, shutdown.clone())
            .await
            .unwrap_or_else(|error| panic!("presence did not start: {error}"));
        let page_origin = options.web.as_ref().map(|_| format!("http://{}", api.listen_addr));
        let edge_settings =
            EdgeSettings { nats: nats_for("ws-edge"), redis: redis.clone(), adjust: options.edge, page_origin };
        let edge = start_edge(&edge_settings, any_port(), any_port(), &shutdown).await;
        let edge_addr = edge.listen_addr();
        Stack {
            api_url: format!("http://{}", api.listen_addr),
            ws_url: format!("ws://{edge_addr}/ws"),
            edge_admin_url: edge.admin_url(),
            api_admin_url: format!("http://{}", api.admin_addr),
            presence_admin_url: format!("http://{}", presence.admin_addr),
            servers,
            nats,
            redis,
            persister,
            notifier,
            nats_auth: options.nats_auth,
            persister_adjust: options.persister,
            edge,
            edge_addr,
            edge_settings,
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the edge (every client gets `reconnect` and a 1001 close) and waits until
    /// it has drained and released its port.
    pub async fn stop_edge(&mut self) {
        self.edge.stop().await;
    }

    /// Starts the edge again on the ports it had, so clients come back to the same URL
    /// and [`Stack::edge_admin_url`] stays right.
    pub async fn start_edge(&mut self) {
        let admin_addr = self.edge.admin_addr;
        self.edge = start_edge(&self.edge_settings, self.edge_addr, admin_addr, &self.shutdown).await;
    }

    /// Starts one more edge on a port of its own (an edge the first one's clients may
    /// move to, or that keeps serving while the first is down).
    pub async fn start_extra_edge(&self) -> EdgeHandle {
        start_edge(&self.edge_settings, any_port(), any_port(), &self.shutdown).await
    }

    /// Stops the notifier, as when it is down or far behind, and waits until it has.
    pub async fn stop_notifier(&mut self) {
        self.notifier.shutdown.cancel();
        if let Some(running) = self.notifier.running.take() {
            running.wait().await;
        }
    }

    /// Starts the notifier again; it catches up from its durable consumer.
    pub async fn start_notifier(&mut self) {
        self.notifier = start_notifier(&self.servers, &self.nats_for("notifier"), &self.redis).await;
    }

    /// The notifier's admin URL, while it runs.
    pub fn notifier_admin_url(&self) -> Option<String> {
        self.notifier.running.as_ref().map(|running| format!("http://{}", running.admin_addr))
    }

    /// Stops the persister and waits until it has drained.
    pub async fn stop_persister(&mut self) {
        self.persister.shutdown.cancel();
        if let Some(running) = self.persister.running.take() {
            running.wait().await.unwrap_or_else(|error| panic!("persister failed: {error}"));
        }
    }

    /// Starts the persister again.
    pub async fn start_persister(&mut self) {
        self.persister = start_persister(&self.servers, &self.nats_for("persister"), self.persister_adjust).await;
    }

    /// The persister's admin URL, while it runs.
    pub fn persister_admin_url(&self) -> Option<String> {
        self.persister.running.as_ref().map(|running| format!("http://{}", running.admin_addr))
    }

    /// A request with a user's token.
    pub fn request(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.api_url)).bearer_auth(token)
    }

    /// A REST call; returns the status and the JSON body (`null` when there is none).
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A client connected to NATS, for watching subjects.
    pub async fn bus(&self) -> async_nats::Client {
        self.bus_as("test-bus").await
    }

    /// A client connected to NATS as `component` would connect: with its credentials
    /// and its inbox prefix.
    pub async fn bus_as(&self, component: &str) -> async_nats::Client {
        chat_core::connect::nats(&self.nats_for(component), component)
            .await
            .unwrap_or_else(|error| panic!("NATS as {component}: {error}"))
    }

    /// The NATS settings `component` runs with.
    pub fn nats_for(&self, component: &str) -> NatsArgs {
        with_auth(&self.nats, self.nats_auth, component)
    }

    /// Creates a chat over REST; returns its id.
    pub async fn create_chat(&self, token: &str, body: Value) -> String {
        let response = self.request(reqwest::Method::POST, "/api/chats", token).json(&body).send().await;
        let response = response.unwrap_or_else(|error| panic!("POST /api/chats: {error}"));
        let status = response.status();
        let chat: Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "POST /api/chats gave {status}: {chat}");
        chat["id"].as_str().unwrap_or_else(|| panic!("no id in {chat}")).to_owned()
    }

    /// Connects a user's WebSocket to `ws_url` (another edge's, say) and reads nothing:
    /// the edge may still close it.
    pub async fn connect_to(&self, ws_url: &str, token: &str) -> Client {
        let request = format!("{ws_url}?access_token={token}");
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .unwrap_or_else(|error| panic!("WebSocket connect failed: {error}"));
        Client { socket, skipped: Default::default() }
    }

    /// Connects a user's WebSocket and reads `hello`.
    pub async fn connect(&self, token: &str) -> Client {
        self.connect_with_hello(token).await.0
    }

    /// Connects a user's WebSocket; returns the client and its `hello` (with the
    /// `conn_id` the edge routes this connection's rejections by).
    pub async fn connect_with_hello(&self, token: &str) -> (Client, Value) {
        let request = format!("{}?access_token={token}", self.ws_url);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .unwrap_or_else(|error| panic!("WebSocket connect failed: {error}"));
        let mut client = Client { socket, skipped: Default::default() };
        let hello = client.next_json().await;
        assert_eq!(hello["type"], "hello", "first frame: {hello}");
        (client, hello)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.persister.shutdown.cancel();
        self.notifier.shutdown.cancel();
    }
}

fn with_auth(nats: &NatsArgs, auth: Option<fn(&str) -> NatsAuthArgs>, component: &str) -> NatsArgs {
    let mut nats = nats.clone();
    if let Some(auth) = auth {
        nats.auth = auth(component);
    }
    nats
}

async fn start_edge(
    settings: &EdgeSettings,
    listen_addr: SocketAddr,
    admin_addr: SocketAddr,
    stack: &CancellationToken,
) -> EdgeHandle {
    let mut config = ws_edge::Config {
        log: log(),
        nats: settings.nats.clone(),
        redis: settings.redis.clone(),
        limits: chat_core::config::UserLimitArgs { messages_per_user_per_s: 1000, messages_per_user_burst: None },
        writes: chat_core::config::WriteLimitArgs::default(),
        jwt: dev_jwt_args(),
        admin: AdminArgs { admin_addr: Some(admin_addr) },
        shutdown: grace(),
        http: http(),
        listen_addr,
        allowed_origins: vec!["http://localhost:3000".into()],
        heartbeat_ms: 25_000,
        idle_timeout_ms: 60_000,
        queue_frames: 1024,
        queue_bytes: 4 << 20,
        write_timeout_ms: 10_000,
        close_timeout_ms: 2_000,
        read_buffer_bytes: 1024,
        max_pending_upgrades: 256,
        max_frame_bytes: 64 * 1024,
        commands_per_s: 1000,
        commands_burst: 1000,
        syncs_per_s: 5,
        syncs_burst: 20,
        presence_watches_per_s: 2,
        presence_watches_burst: 10,
        max_connections_per_user: 10,
    };
    config.allowed_origins.extend(settings.page_origin.clone());
    if let Some(adjust) = settings.adjust {
        adjust(&mut config);
    }
    // A child of the stack's token: the stack's drop stops it, and it stops alone too.
    let shutdown = stack.child_token();
    let running = ws_edge::start(config, shutdown.clone())
        .await
        .unwrap_or_else(|error| panic!("edge did not start on {listen_addr}: {error}"));
    EdgeHandle { listen_addr: running.listen_addr, admin_addr: running.admin_addr, shutdown, running: Some(running) }
}

async fn start_notifier(servers: &Servers, nats: &NatsArgs, redis: &RedisArgs) -> NotifierHandle {
    let shutdown = CancellationToken::new();
    let running = notifier::start(
        notifier::Config {
            log: log(),
            nats: nats.clone(),
            mongo: servers.mongo_args(),
            redis: redis.clone(),
            admin: admin(),
            shutdown: grace(),
        },
        shutdown.clone(),
    )
    .await
    .unwrap_or_else(|error| panic!("notifier did not start: {error}"));
    NotifierHandle { shutdown, running: Some(running) }
}

async fn start_persister(
    servers: &Servers,
    nats: &NatsArgs,
    adjust: Option<fn(&mut persister::Config)>,
) -> PersisterHandle {
    let shutdown = CancellationToken::new();
    let mut config = persister::Config {
        log: log(),
        nats: nats.clone(),
        mongo: servers.mongo_args(),
        admin: admin(),
        shutdown: grace(),
        batch_max: 500,
        lease_ttl_ms: 3000,
        head_copy_ms: 200,
        chats: chat_core::config::ChatLimitArgs::default(),
        policy: chat_core::policy::PolicyArgs::default(),
        replica_name: "persister".into(),
        moderation: chat_core::moderation::ModerationArgs::default(),
        retention: persister::retention::RetentionArgs::default(),
    };
    if let Some(adjust) = adjust {
        adjust(&mut config);
    }
    let running = persister::start(config, shutdown.clone())
        .await
        .unwrap_or_else(|error| panic!("persister did not start: {error}"));
    PersisterHandle { shutdown, running: Some(running) }
}

/// A development token for a student.
pub fn token(user_id: &str) -> String {
    token_with_roles(user_id, &["student"])
}

/// A development token for a user with these platform roles.
pub fn token_with_roles(user_id: &str, roles: &[&str]) -> String {
    mint_hs256(DEV_SECRET, &dev_claims(user_id, &format!("User {user_id}"), roles, 3600))
        .unwrap_or_else(|error| panic!("cannot mint a token: {error}"))
}

/// A WebSocket client speaking the protocol.
pub struct Client {
    /// The socket.
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames [`Client::until`] passed over, read again by [`Client::collect_created`].
    skipped: std::collections::VecDeque<Value>,
}

impl Client {
    /// Sends a JSON frame.
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.unwrap_or_else(|error| panic!("send failed: {error}"));
    }

    /// Sends a message.
    pub async fn send_message(&mut self, chat_id: &str, client_msg_id: &str, text: &str) {
        self.send_json(json!({
            "type": "msg.send", "ref": client_msg_id, "chat_id": chat_id,
            "client_msg_id": client_msg_id, "text": text,
        }))
        .await;
    }

    /// The next JSON frame, or a panic after [`WAIT`].
    pub async fn next_json(&mut self) -> Value {
        self.try_next_json(WAIT).await.unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
    }

    /// The next JSON frame within `wait`, if any.
    pub async fn try_next_json(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next()).await.ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    return Some(
                        serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("bad JSON {text}: {e}")),
                    );
                }
                Ok(Message::Close(frame)) => panic!("connection closed: {frame:?}"),
                Ok(_) => continue,
                Err(error) => panic!("read failed: {error}"),
            }
        }
    }

    /// The next JSON frame within `wait`, or how the socket ended first: its close code
    /// (`None` for a close without one, or nothing within `wait`).
    pub async fn next_or_close(&mut self, wait: Duration) -> Result<Value, Option<u16>> {
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next()).await.ok().flatten();
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| panic!("bad JSON {text}: {e}"));
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Reads until a frame of type `kind`; returns it and the frames before it, which
    /// are also kept for [`Client::collect_created`].
    pub async fn until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return (frame, before);
            }
            self.skipped.push_back(frame.clone());
            before.push(frame);
        }
    }

    /// Collects `count` `msg.created` events for a chat (other frames are skipped).
    pub async fn collect_created(&mut self, chat_id: &str, count: usize) -> Vec<Value> {
        let mut messages = Vec::new();
        while messages.len() < count {
            let frame = match self.skipped.pop_front() {
                Some(frame) => frame,
                None => self.next_json().await,
            };
            if frame["type"] == "msg.created" && frame["chat_id"] == chat_id {
                messages.push(frame["message"].clone());
            }
        }
        messages
    }

    /// The next frame of type `kind`, skipping (and keeping) others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        if let Some(index) = self.skipped.iter().position(|f| f["type"] == kind) {
            return self.skipped.remove(index).unwrap_or_default();
        }
        self.until(kind).await.0
    }

    /// Asserts that no frame of type `kind` arrives within `wait` (others are kept).
    pub async fn expect_none_of(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        assert!(!self.skipped.iter().any(|f| f["type"] == kind), "unexpected {kind} already received");
        while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
            match self.try_next_json(left).await {
                Some(frame) if frame["type"] == kind => panic!("unexpected frame: {frame}"),
                Some(frame) => self.skipped.push_back(frame),
                None => return,
            }
        }
    }

    /// Sends a frame and returns the next `ack` or `error` answering its `ref`.
    pub async fn command(&mut self, mut frame: Value, reference: &str) -> Value {
        frame["ref"] = Value::from(reference);
        self.send_json(frame).await;
        loop {
            let next = self.next_json().await;
            if next["ref"] == reference
                && (next["type"] == "ack" || next["type"] == "error" || next["type"] == "sync.result")
            {
                return next;
            }
            self.skipped.push_back(next);
        }
    }

    /// Asserts nothing but pings' answers arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.try_next_json(wait).await {
            panic!("unexpected frame: {frame}");
        }
    }
}

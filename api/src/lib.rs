//! The api: the REST API (chats, messages, users) and the `chat.rpc.*` NATS service
//! the edges call. Reads come from MongoDB; writes are commands on `CHAT_CMD`, answered
//! by the persister on a reply subject, so the REST and WebSocket paths are one pipeline.
//!
//! Layout: [`routes`] (one file per resource, and the list that declares them),
//! [`openapi`] (the OpenAPI document, derived from that list and the types), [`error`] (the one place that maps errors
//! to codes and statuses), [`auth`] (the bearer-token extractor), [`extract`] (JSON and
//! query extractors that answer in our error format), [`commands`] (submitting a command
//! and awaiting its outcome), [`rpc`], [`cursor`], [`integer`], [`middleware`], [`security`] (CORS
//! and response headers), [`privacy`] (who sees whose presence and roles, the
//! directory's budget), [`metrics`], [`web`] (the web client's files and development
//! tokens, both off by default).

pub mod auth;
pub mod commands;
pub mod cursor;
pub mod error;
pub mod extract;
pub mod integer;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod presence;
pub mod privacy;
pub mod routes;
pub mod rpc;
pub mod security;
pub mod state;
pub mod web;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chat_core::{
    StartupError,
    auth::TokenVerifier,
    config::{
        AdminArgs, ChatLimitArgs, HttpArgs, JwtArgs, LogArgs, MongoArgs, NatsArgs, RedisArgs, ShutdownArgs,
        UserLimitArgs, WriteLimitArgs,
    },
    http_server::HttpSettings,
    probes::Probe,
};
use chat_nats::streams;
use chat_store::Store;
use clap::Parser;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// The api's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "api", about = "REST API and chat.rpc service of the chat service")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// MongoDB.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Redis (presence reads; optional).
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Tokens.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// HTTP connections.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Where the REST API listens.
    #[arg(long = "listen-addr", env = "CHAT_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// Per-user limits.
    #[command(flatten)]
    pub limits: UserLimitArgs,
    /// Per-user budgets of the writes other than sends.
    #[command(flatten)]
    pub writes: WriteLimitArgs,
    /// Browser origins allowed to call the API (CORS), comma-separated.
    #[arg(long = "allowed-origins", env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub allowed_origins: Vec<String>,
    /// What users may learn about each other.
    #[command(flatten)]
    pub privacy: privacy::PrivacyArgs,
    /// Limits of a chat, mirrored from the persister for an early answer (set both alike).
    #[command(flatten)]
    pub chats: ChatLimitArgs,
    /// The messaging policy, mirrored from the persister for an early answer (give both
    /// the same file).
    #[command(flatten)]
    pub policy: chat_core::policy::PolicyArgs,
    /// How long a write waits for the persister before answering 503.
    #[arg(long = "command-timeout-ms", env = "CHAT_COMMAND_TIMEOUT_MS", default_value_t = 10_000)]
    pub command_timeout_ms: u64,
    /// The web client (development).
    #[command(flatten)]
    pub web: web::WebArgs,
    /// Who sees the review queue, mirrored from the persister (set both alike).
    #[command(flatten)]
    pub moderation: chat_core::moderation::ModerationArgs,
}

/// A started api.
pub struct Running {
    /// Where the REST API listens.
    pub listen_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until every server has stopped.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects, binds and serves until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    metrics::register();
    let policy = config.policy.load().map_err(|error| StartupError::Config(error.to_string()))?;
    let verifier = TokenVerifier::from_args(&config.jwt).map_err(|error| StartupError::Config(error.to_string()))?;
    let dev_tokens = config.web.dev_tokens.then(|| web::dev_token::DevTokens::from_args(&config.jwt)).transpose()?;
    let nats = chat_core::connect::nats(&config.nats, "api").await?;
    let db = chat_core::connect::mongodb(&config.mongo, "api").await?;
    let store = Store::new(db.clone());
    store.ensure_indexes().await.map_err(|error| StartupError::dependency("creating MongoDB indexes", error))?;
    let redis = chat_core::connect::LazyRedis::new(&config.redis)?;
    let js = async_nats::jetstream::new(nats.clone());
    let settings = config.nats.stream_settings();
    streams::ensure_streams_exist(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;

    let state = state::AppState {
        inner: Arc::new(state::Inner {
            store: store.clone(),
            nats: nats.clone(),
            js,
            redis: redis.clone(),
            message_budget: chat_core::rate_limit::UserBudget::messages(
                redis.clone(),
                config.limits.messages_per_user_per_s,
                config.limits.message_burst(),
            ),
            write_budgets: chat_core::write_budget::WriteBudgets::new(&redis, &config.writes),
            verifier,
            command_timeout: Duration::from_millis(config.command_timeout_ms),
            known_users: Default::default(),
            privacy: config.privacy.clone(),
            chat_limits: config.chats.clone(),
            policy,
            moderation: config.moderation.clone(),
        }),
    };
    let rpc_task = rpc::serve(nats.clone(), state.clone(), shutdown.clone()).await?;

    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let listen_addr =
        listener.local_addr().map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let app = routes::router(
        state,
        &config.allowed_origins,
        routes::Extras { web_dir: config.web.web_dir.clone(), dev_tokens },
    )?;
    // Replies are small: send them at once instead of waiting for Nagle's timer.
    let settings = HttpSettings {
        nodelay: true,
        drain_timeout: Duration::from_secs(config.shutdown.shutdown_grace_s),
        ..HttpSettings::from(&config.http)
    };
    let http = tokio::spawn(chat_core::http_server::serve(listener, app, settings, shutdown.clone()));

    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9080)));
    let probes = vec![Probe::nats(nats), Probe::mongodb(db), Probe::lazy_redis(redis, false)];
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, shutdown).await?;
    tracing::info!(%listen_addr, %admin_addr, "api started");
    Ok(Running { listen_addr, admin_addr, tasks: vec![http, admin, rpc_task] })
}

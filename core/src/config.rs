//! Settings shared by several binaries, as clap argument groups that each binary
//! flattens into its own config struct. Every setting is a `CHAT_*` variable and a flag.

use std::net::SocketAddr;

use clap::{Args, ValueEnum, builder::TypedValueParser as _};

/// Logging.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long = "log", env = "CHAT_LOG", default_value = "info")]
    pub log: String,
    /// Log format: JSON lines for containers, pretty for people.
    #[arg(long = "log-format", env = "CHAT_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Coloured, multi-line, for a terminal.
    Pretty,
}

/// NATS.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long = "nats-url", env = "CHAT_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Replicas of each JetStream stream (3 in a production cluster).
    #[arg(long = "stream-replicas", env = "CHAT_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Partitions of `CHAT_CMD`: the most persister replicas that can share the work.
    /// Changed only while `CHAT_CMD` is empty (see docs/operations.md).
    #[arg(
        long = "command-partitions",
        env = "CHAT_CMD_PARTITIONS",
        default_value_t = chat_nats::streams::DEFAULT_COMMAND_PARTITIONS,
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub command_partitions: u32,
    /// Who this binary is on the bus.
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

/// NATS credentials: a `.creds` file (decentralised JWT auth), a user and password,
/// or an nkey seed file; at most one. None of them: connect without authenticating
/// (a server without `authorization`, as in the tests and for a local server).
/// The password and seeds never reach a log: `Debug` shows whether they are set.
#[derive(Clone, Default, Args)]
pub struct NatsAuthArgs {
    /// A NATS credentials file (user JWT and nkey seed, as `nsc` writes them).
    #[arg(long = "nats-creds", env = "CHAT_NATS_CREDS", conflicts_with_all = ["nats_user", "nats_nkey_seed_file"])]
    pub nats_creds: Option<std::path::PathBuf>,
    /// NATS user name (with `CHAT_NATS_PASSWORD`).
    #[arg(
        long = "nats-user",
        env = "CHAT_NATS_USER",
        requires = "nats_password",
        conflicts_with = "nats_nkey_seed_file"
    )]
    pub nats_user: Option<String>,
    /// NATS password of `CHAT_NATS_USER`.
    #[arg(long = "nats-password", env = "CHAT_NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<String>,
    /// A file holding the NATS user's nkey seed (`SU...`).
    #[arg(long = "nats-nkey-seed-file", env = "CHAT_NATS_NKEY_SEED_FILE")]
    pub nats_nkey_seed_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for NatsAuthArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuthArgs")
            .field("nats_creds", &self.nats_creds)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &self.nats_password.as_ref().map(|_| "<set>"))
            .field("nats_nkey_seed_file", &self.nats_nkey_seed_file)
            .finish()
    }
}

impl NatsAuthArgs {
    /// A user and password.
    pub fn user(user: &str, password: &str) -> NatsAuthArgs {
        NatsAuthArgs {
            nats_user: Some(user.to_owned()),
            nats_password: Some(password.to_owned()),
            ..Default::default()
        }
    }
}

impl NatsArgs {
    /// The stream settings these arguments name.
    pub fn stream_settings(&self) -> chat_nats::streams::StreamSettings {
        chat_nats::streams::StreamSettings {
            replicas: self.stream_replicas,
            command_partitions: self.command_partitions,
            ..Default::default()
        }
    }
}

/// MongoDB.
#[derive(Debug, Clone, Args)]
pub struct MongoArgs {
    /// MongoDB connection string.
    #[arg(long = "mongodb-uri", env = "CHAT_MONGODB_URI", default_value = "mongodb://127.0.0.1:27017")]
    pub mongodb_uri: String,
    /// Database name.
    #[arg(long = "mongodb-db", env = "CHAT_MONGODB_DB", default_value = "chat")]
    pub mongodb_db: String,
}

/// Redis.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis: one server (`redis://[:password@]host:port[/db]`) or a Redis Cluster by seed
    /// nodes (`redis+cluster://[:password@]host1:port1,host2:port2,...`, or a
    /// comma-separated list of `redis://` URLs).
    #[arg(long = "redis-url", env = "CHAT_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
}

/// Token verification.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// Accepted algorithms, comma-separated; the token's header never chooses.
    #[arg(long = "jwt-algorithms", env = "CHAT_JWT_ALGORITHMS", default_value = "HS256", value_delimiter = ',')]
    pub jwt_algorithms: Vec<String>,
    /// HS256 shared secret (development); at least 32 bytes.
    #[arg(long = "jwt-secret", env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key for RS256, ES256 or EdDSA tokens without a `kid`.
    #[arg(long = "jwt-public-key-file", env = "CHAT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// JWKS file: tokens with a `kid` are checked with that key only.
    #[arg(long = "jwt-jwks-file", env = "CHAT_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<std::path::PathBuf>,
    /// Required `iss`, when set.
    #[arg(long = "jwt-issuer", env = "CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    #[arg(long = "jwt-audience", env = "CHAT_JWT_AUDIENCE", default_value = "chat")]
    pub jwt_audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long = "jwt-leeway-s", env = "CHAT_JWT_LEEWAY_S", default_value_t = 30)]
    pub jwt_leeway_s: u64,
    /// Furthest ahead a token's `exp` may be, in seconds: a later one is refused, so
    /// that a forged or misissued everlasting token is not honoured and no expiry
    /// overflows a clock.
    #[arg(
        long = "jwt-max-lifetime-s",
        env = "CHAT_JWT_MAX_LIFETIME_S",
        default_value_t = DEFAULT_JWT_MAX_LIFETIME_S,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub jwt_max_lifetime_s: u64,
}

/// Default of `CHAT_JWT_MAX_LIFETIME_S`: 30 days.
pub const DEFAULT_JWT_MAX_LIFETIME_S: u64 = 30 * 24 * 3600;

/// The admin port (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Where the admin server listens.
    #[arg(long = "admin-addr", env = "CHAT_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
}

/// Graceful shutdown.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Seconds to drain after SIGTERM before exiting anyway.
    #[arg(long = "shutdown-grace-s", env = "CHAT_SHUTDOWN_GRACE_S", default_value_t = 20)]
    pub shutdown_grace_s: u64,
}

/// Default of `CHAT_HTTP_HEADER_READ_TIMEOUT_MS`.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// The public HTTP listeners (the api's REST port, the edge's `/ws`).
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Milliseconds a client has to send a request's line and headers, and the longest a
    /// kept-alive connection may stay idle; then the connection is closed (slowloris).
    #[arg(
        long = "http-header-read-timeout-ms",
        env = "CHAT_HTTP_HEADER_READ_TIMEOUT_MS",
        default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_ms: u64,
}

/// Limits shared by the edge and the api.
#[derive(Debug, Clone, Args)]
pub struct UserLimitArgs {
    /// Messages per user per second across all connections and the REST API (0: off).
    #[arg(long = "messages-per-user-per-s", env = "CHAT_MESSAGES_PER_USER_PER_S", default_value_t = 10)]
    pub messages_per_user_per_s: u32,
    /// Messages a user may send at once before the per-second rate applies (the token
    /// bucket's size); default: one second's worth, `CHAT_MESSAGES_PER_USER_PER_S`.
    #[arg(long = "messages-per-user-burst", env = "CHAT_MESSAGES_PER_USER_BURST")]
    pub messages_per_user_burst: Option<u32>,
}

impl UserLimitArgs {
    /// The message bucket's size: the configured burst, else one second's worth.
    pub fn message_burst(&self) -> u32 {
        self.messages_per_user_burst.unwrap_or(self.messages_per_user_per_s)
    }
}

/// Default of `CHAT_MAX_PARTICIPANTS`.
pub const DEFAULT_MAX_PARTICIPANTS: usize = 5_000;

/// Limits of a chat, enforced by the persister (the one writer) and mirrored by the api
/// for an early answer; both read the same setting.
#[derive(Debug, Clone, Args)]
pub struct ChatLimitArgs {
    /// Most participants of one chat; an add or a create beyond is refused (`conflict`).
    #[arg(
        long = "max-participants",
        env = "CHAT_MAX_PARTICIPANTS",
        default_value_t = DEFAULT_MAX_PARTICIPANTS,
        value_parser = clap::value_parser!(u32).range(2..).map(|n| n as usize)
    )]
    pub max_participants: usize,
}

impl Default for ChatLimitArgs {
    fn default() -> Self {
        ChatLimitArgs { max_participants: DEFAULT_MAX_PARTICIPANTS }
    }
}

impl ChatLimitArgs {
    /// The refusal of a chat that would hold more than [`Self::max_participants`].
    pub fn too_many_participants(&self) -> String {
        format!("a chat holds at most {} participants (CHAT_MAX_PARTICIPANTS)", self.max_participants)
    }
}

/// Budgets of the writes other than message sends, per user, shared by the edge and
/// the api (both count them in the same Redis keys, so both must agree); each 0 turns
/// its budget off. See [`crate::write_budget`].
#[derive(Debug, Clone, Args)]
pub struct WriteLimitArgs {
    /// Chat changes (create, rename or update, member add, remove, role change) per
    /// user per minute.
    #[arg(long = "chat-changes-per-user-per-min", env = "CHAT_CHAT_CHANGES_PER_USER_PER_MIN", default_value_t = 60)]
    pub chat_changes_per_user_per_min: u32,
    /// Chat changes a user may make at once before the per-minute rate applies.
    #[arg(long = "chat-changes-per-user-burst", env = "CHAT_CHAT_CHANGES_PER_USER_BURST", default_value_t = 30)]
    pub chat_changes_per_user_burst: u32,
    /// Chats a user may create per hour (all at once, then one every hour / this);
    /// staff (`teacher`, `admin`, `service`) are not counted.
    #[arg(long = "chat-creates-per-user-per-hour", env = "CHAT_CHAT_CREATES_PER_USER_PER_HOUR", default_value_t = 50)]
    pub chat_creates_per_user_per_hour: u32,
    /// Message edits and deletes per user per minute.
    #[arg(
        long = "message-changes-per-user-per-min",
        env = "CHAT_MESSAGE_CHANGES_PER_USER_PER_MIN",
        default_value_t = 120
    )]
    pub message_changes_per_user_per_min: u32,
    /// Edits and deletes a user may make at once before the per-minute rate applies.
    #[arg(long = "message-changes-per-user-burst", env = "CHAT_MESSAGE_CHANGES_PER_USER_BURST", default_value_t = 30)]
    pub message_changes_per_user_burst: u32,
    /// Read marks per user per minute (a client marks as it reads: many).
    #[arg(long = "read-marks-per-user-per-min", env = "CHAT_READ_MARKS_PER_USER_PER_MIN", default_value_t = 600)]
    pub read_marks_per_user_per_min: u32,
    /// Read marks a user may send at once before the per-minute rate applies.
    #[arg(long = "read-marks-per-user-burst", env = "CHAT_READ_MARKS_PER_USER_BURST", default_value_t = 100)]
    pub read_marks_per_user_burst: u32,
}

impl Default for WriteLimitArgs {
    fn default() -> Self {
        WriteLimitArgs {
            chat_changes_per_user_per_min: 60,
            chat_changes_per_user_burst: 30,
            chat_creates_per_user_per_hour: 50,
            message_changes_per_user_per_min: 120,
            message_changes_per_user_burst: 30,
            read_marks_per_user_per_min: 600,
            read_marks_per_user_burst: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    #[derive(Debug, Parser)]
    struct WritesCli {
        #[command(flatten)]
        writes: WriteLimitArgs,
    }

    #[test]
    fn the_write_budgets_default_alike_from_clap_and_from_default() {
        let cli = WritesCli::try_parse_from(["cli"]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(format!("{:?}", cli.writes), format!("{:?}", WriteLimitArgs::default()));
    }

    #[derive(Debug, Parser)]
    struct NatsCli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn nats_credentials_are_one_kind_at_most_and_the_password_is_never_shown() {
        let parse = |args: &[&str]| NatsCli::try_parse_from([&["cli"], args].concat());
        let cli = parse(&[]).unwrap_or_else(|error| panic!("{error}"));
        assert!(cli.nats.auth.nats_user.is_none() && cli.nats.auth.nats_creds.is_none(), "none by default");
        let cli = parse(&["--nats-user", "api", "--nats-password", "hunter2-secret"])
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(cli.nats.auth.nats_user.as_deref(), Some("api"));
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2-secret") && shown.contains("<set>"), "{shown}");
        assert!(parse(&["--nats-user", "api"]).is_err(), "a user needs a password");
        assert!(parse(&["--nats-password", "p"]).is_err(), "a password needs a user");
        assert!(parse(&["--nats-creds", "/c", "--nats-user", "u", "--nats-password", "p"]).is_err());
        assert!(parse(&["--nats-creds", "/c", "--nats-nkey-seed-file", "/s"]).is_err());
        assert!(parse(&["--nats-nkey-seed-file", "/s", "--nats-user", "u", "--nats-password", "p"]).is_err());
        assert!(parse(&["--nats-nkey-seed-file", "/s"]).is_ok());
    }

    #[test]
    fn the_header_read_timeout_defaults_to_ten_seconds_and_cannot_be_zero() {
        let cli = Cli::try_parse_from(["cli"]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(cli.http.header_read_timeout_ms, 10_000);
        let cli = Cli::try_parse_from(["cli", "--http-header-read-timeout-ms", "2500"])
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(cli.http.header_read_timeout_ms, 2500);
        assert!(Cli::try_parse_from(["cli", "--http-header-read-timeout-ms", "0"]).is_err());
    }
}

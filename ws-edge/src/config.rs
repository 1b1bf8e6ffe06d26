//! The edge's settings, from `CHAT_*` variables or flags.

use std::net::SocketAddr;

use chat_core::config::{
    AdminArgs, HttpArgs, JwtArgs, LogArgs, NatsArgs, RedisArgs, ShutdownArgs, UserLimitArgs, WriteLimitArgs,
};
use clap::Parser;

/// The edge's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "ws-edge", about = "WebSocket edge of the chat service")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Redis (the per-user message budget; optional).
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Per-user limits.
    #[command(flatten)]
    pub limits: UserLimitArgs,
    /// Per-user budgets of the writes other than sends (the edge's: edits, deletes,
    /// read marks), shared with the api.
    #[command(flatten)]
    pub writes: WriteLimitArgs,
    /// Tokens.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// HTTP connections (until the upgrade).
    #[command(flatten)]
    pub http: HttpArgs,
    /// Where `/ws` listens.
    #[arg(long = "listen-addr", env = "CHAT_LISTEN_ADDR", default_value = "0.0.0.0:8082")]
    pub listen_addr: SocketAddr,
    /// Browser origins allowed to open a socket (comma-separated). Requests without an
    /// `Origin` header (native apps, servers) are not affected.
    #[arg(long = "allowed-origins", env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub allowed_origins: Vec<String>,
    /// How often clients are asked to ping.
    #[arg(long = "heartbeat-ms", env = "CHAT_WS_HEARTBEAT_MS", default_value_t = 25_000)]
    pub heartbeat_ms: u64,
    /// Silence after which a connection is closed.
    #[arg(long = "idle-timeout-ms", env = "CHAT_WS_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Frames queued per connection before it counts as a slow consumer.
    #[arg(long = "queue-frames", env = "CHAT_WS_QUEUE_FRAMES", default_value_t = 1024)]
    pub queue_frames: usize,
    /// Bytes queued per connection before it counts as a slow consumer (one frame larger
    /// than this is still accepted into an empty queue).
    #[arg(long = "queue-bytes", env = "CHAT_WS_QUEUE_BYTES", default_value_t = 4 << 20)]
    pub queue_bytes: usize,
    /// Longest a write to one socket may block before the connection is dropped: a
    /// client that stops reading is gone within this plus the close timeout.
    #[arg(long = "write-timeout-ms", env = "CHAT_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Longest the close handshake may take.
    #[arg(long = "close-timeout-ms", env = "CHAT_WS_CLOSE_TIMEOUT_MS", default_value_t = 2_000)]
    pub close_timeout_ms: u64,
    /// Initial read buffer per connection, bytes (it grows for larger frames).
    #[arg(long = "read-buffer-bytes", env = "CHAT_WS_READ_BUFFER_BYTES", default_value_t = 512)]
    pub read_buffer_bytes: usize,
    /// Upgrades (token check, membership load) in progress at once; more get 503.
    #[arg(long = "max-pending-upgrades", env = "CHAT_WS_MAX_PENDING_UPGRADES", default_value_t = 256)]
    pub max_pending_upgrades: usize,
    /// Largest accepted frame, bytes.
    #[arg(long = "max-frame-bytes", env = "CHAT_WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Commands per second per connection.
    #[arg(long = "commands-per-s", env = "CHAT_WS_COMMANDS_PER_S", default_value_t = 20)]
    pub commands_per_s: u32,
    /// Command burst per connection.
    #[arg(long = "commands-burst", env = "CHAT_WS_COMMANDS_BURST", default_value_t = 40)]
    pub commands_burst: u32,
    /// `sync` requests per second per connection (each makes the api read every chat
    /// named; a client syncs on reconnect, a page after another while `has_more`).
    #[arg(long = "syncs-per-s", env = "CHAT_WS_SYNCS_PER_S", default_value_t = 5)]
    pub syncs_per_s: u32,
    /// `sync` requests a connection may make at once before the per-second rate applies.
    #[arg(long = "syncs-burst", env = "CHAT_WS_SYNCS_BURST", default_value_t = 20)]
    pub syncs_burst: u32,
    /// `presence.watch` changes per second per connection (each asks the api about up
    /// to 200 users).
    #[arg(long = "presence-watches-per-s", env = "CHAT_WS_PRESENCE_WATCHES_PER_S", default_value_t = 2)]
    pub presence_watches_per_s: u32,
    /// `presence.watch` changes a connection may make at once.
    #[arg(long = "presence-watches-burst", env = "CHAT_WS_PRESENCE_WATCHES_BURST", default_value_t = 10)]
    pub presence_watches_burst: u32,
    /// Connections per user, counted across every edge in Redis (and on each edge
    /// alone, the only count while Redis is down).
    #[arg(long = "max-connections-per-user", env = "CHAT_WS_MAX_CONNECTIONS_PER_USER", default_value_t = 10)]
    pub max_connections_per_user: usize,
}

//! Test support: starts real `nats-server` (with JetStream), `redis-server` and
//! `secantusd-rs` (the MongoDB-compatible store) on free ports with throw-away data
//! directories, and kills them on drop. Tests can stop and restart each server on the
//! same port to exercise failures.
//!
//! Which binaries run:
//! - `CHAT_TEST_NATS_SERVER`, else `~/.cache/edu-chat/venv/bin/nats-server` (what the
//!   test command installs), else `nats-server` on the `PATH`;
//! - `CHAT_TEST_REDIS_SERVER`, else `redis-server`; for a cluster also
//!   `CHAT_TEST_REDIS_CLI`, else the `redis-cli` beside that `redis-server`;
//! - `CHAT_TEST_SECANTUSD`, else `secantusd-rs`; or no process at all when
//!   `CHAT_TEST_MONGODB_URI` names a real MongoDB.
//!
//! Each call to [`Servers::start`] gets its own database name, so tests may share a
//! MongoDB and run in parallel. [`RedisCluster`] starts a Redis Cluster (masters and
//! replicas) and [`NatsCluster`] a three-node JetStream cluster for the tests that need
//! one. [`ecs`] runs a service binary and checks that its log lines are Elastic Common
//! Schema documents.

pub mod ecs;
mod nats_cluster;
mod process;
mod redis_cluster;

use std::{path::PathBuf, time::Duration};

use chat_core::config::{MongoArgs, NatsArgs, RedisArgs};
pub use nats_cluster::NatsCluster;
pub use process::ServerProcess;
pub use redis_cluster::{NODE_TIMEOUT_MS, NodeView, RedisCluster};

/// How long a server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The three servers a test needs.
pub struct Servers {
    /// NATS with JetStream.
    pub nats: ServerProcess,
    /// Redis.
    pub redis: ServerProcess,
    /// The MongoDB-compatible store; `None` when an external MongoDB is used.
    pub mongo: Option<ServerProcess>,
    mongodb_uri: String,
    /// This test's database.
    pub db_name: String,
}

impl Servers {
    /// Starts all three servers.
    pub async fn start() -> Servers {
        Servers::start_around(start_nats().await).await
    }

    async fn start_around(nats: ServerProcess) -> Servers {
        let redis = start_redis().await;
        let (mongo, mongodb_uri) = match std::env::var("CHAT_TEST_MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => (None, uri),
            _ => {
                let mongo = start_store().await;
                let uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", mongo.port());
                (Some(mongo), uri)
            }
        };
        let db_name = format!("test_{}", uuid::Uuid::new_v4().simple());
        Servers { nats, redis, mongo, mongodb_uri, db_name }
    }

    /// Starts Redis and the store around `nats`, a NATS server the test started its
    /// own way (with [`start_nats_with_config`], say).
    pub async fn start_with_nats(nats: ServerProcess) -> Servers {
        Servers::start_around(nats).await
    }

    /// The NATS URL.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats.port())
    }

    /// NATS settings for a service under test.
    pub fn nats_args(&self) -> NatsArgs {
        NatsArgs {
            nats_url: self.nats_url(),
            stream_replicas: 1,
            command_partitions: chat_nats::streams::DEFAULT_COMMAND_PARTITIONS,
            auth: Default::default(),
        }
    }

    /// MongoDB settings for a service under test.
    pub fn mongo_args(&self) -> MongoArgs {
        MongoArgs { mongodb_uri: self.mongodb_uri.clone(), mongodb_db: self.db_name.clone() }
    }

    /// Redis settings for a service under test.
    pub fn redis_args(&self) -> RedisArgs {
        RedisArgs { redis_url: format!("redis://127.0.0.1:{}", self.redis.port()) }
    }
}

fn binary(variable: &str, fallbacks: &[PathBuf], name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable)
        && !path.is_empty()
    {
        return PathBuf::from(path);
    }
    fallbacks.iter().find(|path| path.exists()).cloned().unwrap_or_else(|| PathBuf::from(name))
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

/// The `nats-server` binary the tests run.
fn nats_server() -> PathBuf {
    binary("CHAT_TEST_NATS_SERVER", &[home().join(".cache/edu-chat/venv/bin/nats-server")], "nats-server")
}

/// Starts `nats-server` with JetStream on a random port.
pub async fn start_nats() -> ServerProcess {
    ServerProcess::start("nats-server", nats_server(), nats_args, "Server is ready", START_TIMEOUT).await
}

/// Starts `nats-server` with JetStream on a random port and the configuration file
/// `config` (written to the server's directory as `nats.conf`): the tests of the bus's
/// permissions run it with `deploy/nats/auth.conf`.
pub async fn start_nats_with_config(config: String) -> ServerProcess {
    ServerProcess::start(
        "nats-server",
        nats_server(),
        move |port, dir| {
            let path = dir.join("nats.conf");
            std::fs::write(&path, &config).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
            let mut args = vec!["-c".into(), path.display().to_string()];
            args.extend(nats_args(port, dir));
            args
        },
        "Server is ready",
        START_TIMEOUT,
    )
    .await
}

/// A JetStream server on 127.0.0.1:`port` with its data under `dir`.
fn nats_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    let jetstream = dir.join("jetstream").display().to_string();
    ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &jetstream].map(String::from).to_vec()
}

/// Starts `redis-server` without persistence on a free port.
pub async fn start_redis() -> ServerProcess {
    let program = binary("CHAT_TEST_REDIS_SERVER", &[], "redis-server");
    ServerProcess::start(
        "redis-server",
        program,
        |port, dir| {
            vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                dir.display().to_string(),
            ]
        },
        "Ready to accept connections",
        START_TIMEOUT,
    )
    .await
}

/// Starts `secantusd-rs` with a small cache on a free port.
pub async fn start_store() -> ServerProcess {
    let program = binary("CHAT_TEST_SECANTUSD", &[home().join(".cargo/bin/secantusd-rs")], "secantusd-rs");
    ServerProcess::start(
        "secantusd-rs",
        program,
        |port, dir| {
            vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--storage-path".into(),
                dir.join("data").display().to_string(),
                "--cache-size".into(),
                "128M".into(),
                "--log-file-max".into(),
                "16MB".into(),
                "--log-level".into(),
                "WARNING".into(),
            ]
        },
        "listening on",
        START_TIMEOUT,
    )
    .await
}

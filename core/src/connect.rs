//! Connecting to NATS, MongoDB and Redis. Each client reconnects by itself after a
//! server restart; start-up waits for the first connection.

use std::time::Duration;

use crate::{
    StartupError,
    config::{MongoArgs, NatsArgs, RedisArgs},
    redis_conn::{RedisConnection, RedisTarget},
};

/// Connects to NATS, retrying forever in the background after the first connection.
pub async fn nats(args: &NatsArgs, name: &str) -> Result<async_nats::Client, StartupError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("nats connected"),
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                other => tracing::info!(event = %other, "nats event"),
            }
        })
        .connect(nats_servers(&args.nats_url))
        .await
        .map_err(|error| StartupError::dependency("connecting to NATS", error))
}

/// The servers a comma-separated `CHAT_NATS_URL` names: async-nats reads a string as one
/// URL, so a cluster's list is handed over as a list.
fn nats_servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|server| !server.is_empty()).collect()
}

/// Opens the MongoDB database. The driver connects lazily and reconnects by itself.
pub async fn mongodb(args: &MongoArgs, app_name: &str) -> Result<mongodb::Database, StartupError> {
    let mut options = mongodb::options::ClientOptions::parse(&args.mongodb_uri)
        .await
        .map_err(|error| StartupError::Config(format!("CHAT_MONGODB_URI: {error}")))?;
    options.app_name = Some(app_name.to_owned());
    options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
    // An acknowledged write must survive a crash of the database server: the
    // persister acks a command only after MongoDB acknowledged its writes.
    if options.write_concern.is_none() {
        options.write_concern = Some(
            mongodb::options::WriteConcern::builder()
                .w(mongodb::options::Acknowledgment::Majority)
                .journal(true)
                .build(),
        );
    }
    let client = mongodb::Client::with_options(options)
        .map_err(|error| StartupError::dependency("creating the MongoDB client", error))?;
    Ok(client.database(&args.mongodb_db))
}

/// Connects to Redis (one server or a cluster, see [`crate::redis_conn`]) with a
/// connection that reconnects by itself.
pub async fn redis(args: &RedisArgs) -> Result<RedisConnection, StartupError> {
    redis_target(args)?.connect().await.map_err(|error| StartupError::dependency("connecting to Redis", error))
}

fn redis_target(args: &RedisArgs) -> Result<RedisTarget, StartupError> {
    RedisTarget::parse(&args.redis_url).map_err(|error| StartupError::Config(format!("CHAT_REDIS_URL: {error}")))
}

/// A Redis connection made on first use and remade after a failed attempt, so a binary
/// for which Redis is optional starts and serves while Redis is down.
#[derive(Clone)]
pub struct LazyRedis {
    target: RedisTarget,
    connection: std::sync::Arc<tokio::sync::OnceCell<RedisConnection>>,
}

impl LazyRedis {
    /// Checks the URL; does not connect yet.
    pub fn new(args: &RedisArgs) -> Result<Self, StartupError> {
        Ok(LazyRedis { target: redis_target(args)?, connection: std::sync::Arc::default() })
    }

    /// The connection, connecting now if needed.
    pub async fn get(&self) -> Result<RedisConnection, redis::RedisError> {
        self.connection.get_or_try_init(|| self.target.connect()).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_url_list_names_every_server() {
        assert_eq!(nats_servers("nats://127.0.0.1:4222"), ["nats://127.0.0.1:4222"]);
        assert_eq!(nats_servers("nats://a:1, nats://b:2,nats://c:3,"), ["nats://a:1", "nats://b:2", "nats://c:3"]);
    }

    #[test]
    fn each_server_of_a_list_is_a_url_async_nats_reads() {
        let list = "nats://127.0.0.1:4222,nats://127.0.0.1:4223";
        assert!(list.parse::<async_nats::ServerAddr>().is_err(), "async-nats reads a string as one URL");
        for server in nats_servers(list) {
            assert!(server.parse::<async_nats::ServerAddr>().is_ok(), "{server}");
        }
    }
}

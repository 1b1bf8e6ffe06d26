//! Connecting to NATS, MongoDB and Redis. Each client reconnects by itself after a
//! server restart; start-up waits for the first connection.

use std::time::Duration;

use crate::{
    StartupError,
    config::{MongoArgs, NatsArgs, NatsAuthArgs, RedisArgs},
    redis_conn::{RedisConnection, RedisTarget},
};

/// Connects to NATS as `name` (the component: ws-edge, api, ...), retrying forever in
/// the background after the first connection. Its replies arrive under its own inbox
/// prefix, which its NATS user is allowed to read and the others are not.
pub async fn nats(args: &NatsArgs, name: &str) -> Result<async_nats::Client, StartupError> {
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(chat_nats::subjects::inbox_prefix(name))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("nats connected"),
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                // Permission violations and refused credentials come this way.
                async_nats::Event::ServerError(error) => tracing::warn!(%error, "nats server error"),
                other => tracing::info!(event = %other, "nats event"),
            }
        });
    with_credentials(options, &args.auth)
        .await?
        .connect(nats_servers(&args.nats_url))
        .await
        .map_err(|error| StartupError::dependency("connecting to NATS", error))
}

/// Adds the configured credentials; a file that cannot be read stops start-up with
/// the variable's name (never its contents).
async fn with_credentials(
    options: async_nats::ConnectOptions,
    auth: &NatsAuthArgs,
) -> Result<async_nats::ConnectOptions, StartupError> {
    if let Some(path) = &auth.nats_creds {
        return options
            .credentials_file(path)
            .await
            .map_err(|error| StartupError::Config(format!("CHAT_NATS_CREDS: {}: {error}", path.display())));
    }
    if let Some(path) = &auth.nats_nkey_seed_file {
        let seed = tokio::fs::read_to_string(path)
            .await
            .map_err(|error| StartupError::Config(format!("CHAT_NATS_NKEY_SEED_FILE: {}: {error}", path.display())))?;
        return Ok(options.nkey(seed.trim().to_owned()));
    }
    match (&auth.nats_user, &auth.nats_password) {
        (Some(user), Some(password)) => Ok(options.user_and_password(user.clone(), password.clone())),
        (None, None) => Ok(options),
        _ => Err(StartupError::Config("CHAT_NATS_USER and CHAT_NATS_PASSWORD go together".into())),
    }
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

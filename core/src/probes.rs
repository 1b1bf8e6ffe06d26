//! Readiness probes: each dependency answers within a short deadline or is reported
//! down. Critical dependencies make the binary not ready; others make it degraded.

use std::{future::Future, pin::Pin, time::Duration};

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One dependency check.
pub struct Probe {
    /// The dependency's name in `/readyz`.
    pub name: &'static str,
    /// False when the binary still serves without it (Redis for most binaries).
    pub critical: bool,
    check: Box<dyn Fn() -> ProbeFuture + Send + Sync>,
}

impl Probe {
    /// Builds a probe from a function returning the check's future.
    pub fn new<F, Fut>(name: &'static str, critical: bool, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Probe { name, critical, check: Box::new(move || Box::pin(check())) }
    }

    /// Runs the check with a deadline.
    pub async fn run(&self) -> Result<(), String> {
        match tokio::time::timeout(PROBE_TIMEOUT, (self.check)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }

    /// NATS: the client is connected.
    pub fn nats(client: async_nats::Client) -> Self {
        Probe::new("nats", true, move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("{other:?}").to_lowercase()),
                }
            }
        })
    }

    /// MongoDB: the server answers `ping`.
    pub fn mongodb(db: mongodb::Database) -> Self {
        Probe::new("mongodb", true, move || {
            let db = db.clone();
            async move {
                db.run_command(mongodb::bson::doc! { "ping": 1 }).await.map(|_| ()).map_err(|error| error.to_string())
            }
        })
    }

    /// Redis: the server, or every master of the cluster, answers `PING` (see
    /// [`crate::redis_conn::RedisConnection::check`]).
    pub fn redis(connection: crate::redis_conn::RedisConnection, critical: bool) -> Self {
        Probe::new("redis", critical, move || {
            let mut connection = connection.clone();
            async move { connection.check().await.map_err(|error| error.to_string()) }
        })
    }

    /// Redis through a lazily made connection: not connected counts as down.
    pub fn lazy_redis(redis: crate::connect::LazyRedis, critical: bool) -> Self {
        Probe::new("redis", critical, move || {
            let redis = redis.clone();
            async move {
                let mut connection = redis.get().await.map_err(|error| error.to_string())?;
                connection.check().await.map_err(|error| error.to_string())
            }
        })
    }
}

/// The overall state reported by `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Every dependency answers.
    Ready,
    /// A non-critical dependency is down; the binary still serves.
    Degraded,
    /// A critical dependency is down.
    NotReady,
}

/// Runs every probe concurrently; returns the overall state and each result.
pub async fn check_all(probes: &[Probe]) -> (Readiness, Vec<(&'static str, Result<(), String>)>) {
    let results = futures::future::join_all(
        probes.iter().map(|probe| async move { (probe.name, probe.critical, probe.run().await) }),
    )
    .await;
    let mut state = Readiness::Ready;
    for (_, critical, result) in &results {
        if result.is_err() {
            if *critical {
                state = Readiness::NotReady;
            } else if state == Readiness::Ready {
                state = Readiness::Degraded;
            }
        }
    }
    (state, results.into_iter().map(|(name, _, result)| (name, result)).collect())
}

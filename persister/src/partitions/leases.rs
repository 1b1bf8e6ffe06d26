//! Partition leases in the JetStream key-value bucket `CHAT_PERSISTER_LEASES`.
//!
//! `partition.<n>` holds the id of the replica that owns partition `n`; `replica.<id>`
//! says a replica is alive. The bucket's `max_age` is the lease time to live: a key
//! that is not rewritten within it disappears, so a dead replica's leases free
//! themselves. A claim is a create (it fails while another replica's lease lives), a
//! renewal an update that names the revision it read (it fails once anybody else has
//! written the key), a release a delete that names it too. The owner trusts a lease
//! until its last successful renewal, as sent, plus [`TRUST`] of the time to live, so
//! that it stops acting before the key can expire on the server and be claimed by
//! another replica.

use std::{collections::BTreeSet, time::Duration};

use async_nats::jetstream::{
    self,
    kv::{self, Operation},
};
use bytes::Bytes;
use chat_nats::streams::{self, StreamSettings};
use futures::TryStreamExt;
use tokio::time::Instant;

/// The share of the time to live that a renewed lease is trusted for locally.
const TRUST: f64 = 0.75;

const PARTITION_PREFIX: &str = "partition.";
const REPLICA_PREFIX: &str = "replica.";

/// Errors talking to the bucket; the caller retries at the next tick.
#[derive(Debug, thiserror::Error)]
#[error("lease bucket: {0}")]
pub struct LeaseError(String);

fn lease_error(error: impl std::fmt::Display) -> LeaseError {
    LeaseError(error.to_string())
}

/// A lease this replica holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The partition.
    pub partition: u32,
    /// The key's revision this replica wrote last.
    revision: u64,
    /// Until when this replica may act on it.
    pub trusted_until: Instant,
}

/// What the bucket says about everybody.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    /// Ids of replicas whose heartbeat lives.
    pub replicas: BTreeSet<String>,
    /// Partitions with a live lease, whoever holds it.
    pub taken: BTreeSet<u32>,
}

/// The bucket, seen by one replica.
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    stream: jetstream::stream::Stream,
    replica_id: String,
    ttl: Duration,
}

impl Leases {
    /// Opens the bucket, creating it with `ttl` if it does not exist. An existing
    /// bucket keeps its time to live, and this replica uses that one.
    pub async fn open(
        js: &jetstream::Context,
        settings: StreamSettings,
        ttl: Duration,
        replica_id: String,
    ) -> Result<Leases, LeaseError> {
        let kv = match js.get_key_value(streams::PERSISTER_LEASES_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => {
                js.create_key_value(streams::persister_leases_bucket(settings, ttl)).await.map_err(lease_error)?
            }
        };
        let ttl = kv.status().await.map_err(lease_error)?.max_age();
        if ttl.is_zero() {
            return Err(LeaseError(format!("{} has no max_age; delete it", streams::PERSISTER_LEASES_BUCKET)));
        }
        let stream = js.get_stream(format!("KV_{}", streams::PERSISTER_LEASES_BUCKET)).await.map_err(lease_error)?;
        Ok(Leases { kv, stream, replica_id, ttl })
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// The time to live of every key.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn trusted_from(&self, sent_at: Instant) -> Instant {
        sent_at + self.ttl.mul_f64(TRUST)
    }

    /// Says this replica is alive.
    pub async fn heartbeat(&self) -> Result<(), LeaseError> {
        let key = format!("{REPLICA_PREFIX}{}", self.replica_id);
        self.kv.put(key, Bytes::new()).await.map_err(lease_error)?;
        Ok(())
    }

    /// Removes this replica's heartbeat at shutdown, so the others recount at once.
    pub async fn leave(&self) {
        let _ = self.kv.purge(format!("{REPLICA_PREFIX}{}", self.replica_id)).await;
    }

    /// The live replicas and the leased partitions, in two small requests per leased
    /// partition at most.
    pub async fn census(&self) -> Result<Census, LeaseError> {
        let mut census = Census::default();
        let prefix = format!("$KV.{}.", streams::PERSISTER_LEASES_BUCKET);
        let mut subjects = self.stream.info_with_subjects(format!("{prefix}>")).await.map_err(lease_error)?;
        let mut keys = Vec::new();
        while let Some((subject, _count)) = subjects.try_next().await.map_err(lease_error)? {
            if let Some(key) = subject.strip_prefix(&prefix) {
                keys.push(key.to_owned());
            }
        }
        for key in keys {
            // A released or departed key leaves a marker until it expires; only a
            // value counts.
            let live =
                matches!(self.kv.entry(key.as_str()).await, Ok(Some(entry)) if entry.operation == Operation::Put);
            if !live {
                continue;
            }
            if let Some(id) = key.strip_prefix(REPLICA_PREFIX) {
                census.replicas.insert(id.to_owned());
            } else if let Some(partition) = key.strip_prefix(PARTITION_PREFIX).and_then(|p| p.parse().ok()) {
                census.taken.insert(partition);
            }
        }
        Ok(census)
    }

    /// Claims a free partition; `None` when another replica holds it.
    pub async fn claim(&self, partition: u32) -> Result<Option<Lease>, LeaseError> {
        let sent_at = Instant::now();
        let key = format!("{PARTITION_PREFIX}{partition}");
        match self.kv.create(key, Bytes::from(self.replica_id.clone())).await {
            Ok(revision) => Ok(Some(Lease { partition, revision, trusted_until: self.trusted_from(sent_at) })),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(lease_error(error)),
        }
    }

    /// Renews a lease. `Ok(false)` means somebody else wrote the key: the lease is
    /// lost for good.
    pub async fn renew(&self, lease: &mut Lease) -> Result<bool, LeaseError> {
        let sent_at = Instant::now();
        let key = format!("{PARTITION_PREFIX}{}", lease.partition);
        match self.kv.update(key, Bytes::from(self.replica_id.clone()), lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                lease.trusted_until = self.trusted_from(sent_at);
                Ok(true)
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(error) => Err(lease_error(error)),
        }
    }

    /// Hands a partition back once its work is acknowledged; another replica may claim
    /// it at its next tick.
    pub async fn release(&self, lease: Lease) {
        let key = format!("{PARTITION_PREFIX}{}", lease.partition);
        if let Err(error) = self.kv.delete_expect_revision(key, Some(lease.revision)).await {
            tracing::warn!(partition = lease.partition, %error, "cannot release a lease; it will expire");
        }
    }
}

//! The loop that owns partitions: every tick it renews this replica's heartbeat and
//! leases, counts the live replicas, claims free partitions up to its share or hands
//! one over when above it, and runs one pipeline per owned partition.
//!
//! A claimed partition starts with a fresh consumer: the old `persister-<n>` is
//! deleted and created again with deliver-all, so the first command it delivers is the
//! oldest one still in the work-queue stream, which is the oldest one nobody
//! acknowledged. That is what keeps a chat's order across a crash: the dead owner's
//! unacknowledged commands come before anything newer, instead of after the ack wait.
//!
//! A lease that cannot be renewed before its local expiry because the bucket does not
//! answer (its stream electing a leader after a NATS node died) suspends the pipeline
//! instead of ending it: it acts on nothing, and every tick tries the lease again. The
//! key still holding this replica's revision, or a fresh claim while the partition's
//! consumer is still the one this pipeline created, proves nobody owned the partition
//! meanwhile (every owner starts by recreating the consumer), and the pipeline goes on
//! where it was. Otherwise it stops as for any lost lease. So an election that
//! outlasts the lease time to live no longer resets every partition at once.

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_nats::jetstream::{
    ErrorCode, consumer,
    context::ConsumerInfoErrorKind,
    stream::{ConsumerError, ConsumerErrorKind, Stream},
};
use chat_nats::streams;
use futures::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    leases::{Lease, Leases},
    share,
};
use crate::{
    fence::{Fence, FenceHandle},
    metrics,
    pipeline::{Assignment, Pipeline, PipelineError},
};

/// One partition this replica runs.
struct Owned {
    lease: Lease,
    fence: FenceHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), PipelineError>>,
    /// Set when the pipeline was asked to stop so the lease can go to another replica.
    handing_over: bool,
    /// Set when the lease is lost: the pipeline stops and the key is not ours to delete.
    lost: bool,
    /// Set when the lease could not be renewed before its local expiry: the pipeline
    /// waits while each tick tries to get the lease back.
    suspended: bool,
    /// The pipeline's consumer as it was created; a later owner would have made another.
    consumer_created: Arc<OnceLock<consumer::Info>>,
}

/// Runs this replica's share of the partitions.
pub struct Coordinator {
    /// What each partition's pipeline does.
    pub pipeline: Pipeline,
    /// `CHAT_CMD`.
    pub stream: Stream,
    /// The lease bucket.
    pub leases: Leases,
    /// Partitions of `CHAT_CMD`.
    pub partitions: u32,
    /// How long a stopping pipeline may take to finish what it fetched.
    pub grace: Duration,
}

impl Coordinator {
    /// Runs until `shutdown`, then finishes every partition's fetched work (renewing
    /// the leases meanwhile), releases the leases and leaves.
    pub async fn run(self, shutdown: CancellationToken) {
        let tick = (self.leases.ttl() / 3).max(Duration::from_millis(50));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
        super::legacy::drain(&self.stream, &self.pipeline, &shutdown, tick).await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            self.reap(&mut owned).await;
            self.renew(&mut owned).await;
            self.rebalance(&mut owned).await;
            metrics::PARTITIONS_OWNED.set(owned.len() as i64);
        }
        for partition in owned.values() {
            partition.stop.cancel();
        }
        while !owned.is_empty() {
            interval.tick().await;
            self.renew(&mut owned).await;
            self.reap(&mut owned).await;
        }
        metrics::PARTITIONS_OWNED.set(0);
        self.leases.leave().await;
        tracing::info!("persister left its partitions");
    }

    /// Collects finished pipelines and gives their leases back (unless lost).
    async fn reap(&self, owned: &mut BTreeMap<u32, Owned>) {
        let finished: Vec<u32> =
            owned.iter().filter(|(_, partition)| partition.task.is_finished()).map(|(number, _)| *number).collect();
        for number in finished {
            let Some(partition) = owned.remove(&number) else { continue };
            match partition.task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(partition = number, %error, "partition pipeline failed"),
                Err(error) => tracing::error!(partition = number, %error, "partition pipeline panicked"),
            }
            if !partition.lost {
                if !partition.handing_over && !partition.stop.is_cancelled() {
                    tracing::warn!(partition = number, "partition pipeline ended by itself; handing it back");
                }
                self.leases.release(partition.lease).await;
            }
        }
    }

    /// Renews every lease at once; a lease somebody else wrote stops its pipeline, one
    /// not renewed before its local expiry suspends it until the lease is back or lost.
    async fn renew(&self, owned: &mut BTreeMap<u32, Owned>) {
        let renewals = owned.values_mut().filter(|partition| !partition.lost).map(|partition| async move {
            let result = self.leases.renew(&mut partition.lease).await;
            match result {
                Ok(true) => {
                    if partition.suspended {
                        resume(partition, "its lease was renewed");
                    }
                    partition.fence.extend(partition.lease.trusted_until);
                }
                // The key may have expired while the bucket was away.
                Ok(false) if partition.suspended => self.reclaim(partition).await,
                Ok(false) => lose(partition, "another replica holds it"),
                Err(error) if partition.fence.expired() => {
                    if !partition.suspended {
                        tracing::warn!(partition = partition.lease.partition, %error, "lease not renewed in time; suspending its pipeline");
                        metrics::PARTITION_SUSPENSIONS.inc();
                        partition.suspended = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(partition = partition.lease.partition, %error, "cannot renew a lease; retrying")
                }
            }
        });
        join_all(renewals).await;
    }

    /// Claims a suspended partition's expired lease again; the pipeline goes on only if
    /// nobody owned the partition in between.
    async fn reclaim(&self, partition: &mut Owned) {
        let number = partition.lease.partition;
        let lease = match self.leases.claim(number).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return lose(partition, "another replica holds it"),
            Err(error) => return tracing::warn!(partition = number, %error, "cannot claim a suspended partition back"),
        };
        match self.consumer_untouched(partition).await {
            Ok(true) => {
                partition.lease = lease;
                partition.fence.extend(lease.trusted_until);
                resume(partition, "claimed again with its consumer untouched");
            }
            Ok(false) => {
                lose(partition, "another replica owned it meanwhile");
                // Free for a fresh start once this pipeline has stopped.
                self.leases.release(lease).await;
            }
            Err(error) => {
                tracing::warn!(partition = number, %error, "cannot check a suspended partition's consumer");
                self.leases.release(lease).await;
            }
        }
    }

    /// True when the partition's consumer is still the one its pipeline created.
    async fn consumer_untouched(&self, partition: &Owned) -> Result<bool, PipelineError> {
        // A pipeline that has not made its consumer yet will make a fresh one anyway.
        let Some(created) = partition.consumer_created.get() else { return Ok(true) };
        let name = streams::partition_consumer_name(partition.lease.partition);
        match self.stream.consumer_info(&name).await {
            Ok(info) => Ok(info.created == created.created),
            Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => Ok(false),
            Err(error) => Err(PipelineError::Consume(format!("cannot read consumer {name}: {error}"))),
        }
    }

    /// Claims or hands over partitions towards this replica's share.
    async fn rebalance(&self, owned: &mut BTreeMap<u32, Owned>) {
        if let Err(error) = self.leases.heartbeat().await {
            tracing::warn!(%error, "cannot write this replica's heartbeat");
            return;
        }
        let census = match self.leases.census().await {
            Ok(census) => census,
            Err(error) => {
                tracing::warn!(%error, "cannot read the partition leases");
                return;
            }
        };
        let mine = owned.iter().filter(|(_, p)| !p.lost && !p.handing_over).map(|(n, _)| *n).collect();
        let plan = share::plan(self.partitions, self.leases.replica_id(), &census.replicas, &mine, &census.taken);
        for number in plan.claim {
            if owned.contains_key(&number) {
                continue;
            }
            match self.leases.claim(number).await {
                Ok(Some(lease)) => {
                    owned.insert(number, self.start(lease));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(partition = number, %error, "cannot claim a partition"),
            }
        }
        if let Some(partition) = plan.release.and_then(|number| owned.get_mut(&number)) {
            tracing::info!(partition = partition.lease.partition, "handing a partition over to rebalance");
            partition.handing_over = true;
            partition.stop.cancel();
        }
    }

    fn start(&self, lease: Lease) -> Owned {
        let (fence, handle) = Fence::new(lease.trusted_until);
        let stop = CancellationToken::new();
        let pipeline = self.pipeline.clone();
        let stream = self.stream.clone();
        let (partition, grace, task_stop) = (lease.partition, self.grace, stop.clone());
        let consumer_created = Arc::new(OnceLock::new());
        let created = consumer_created.clone();
        metrics::PARTITION_CLAIMS.inc();
        tracing::info!(partition, "partition claimed");
        let task = tokio::spawn(async move {
            let (consumer, replay_through) = fresh_consumer(&stream, partition).await?;
            let _ = created.set(consumer.cached_info().clone());
            pipeline.run(Assignment { consumer, replay_through, stop: task_stop, fence }, grace).await
        });
        Owned { lease, fence: handle, stop, task, handing_over: false, lost: false, suspended: false, consumer_created }
    }
}

fn resume(partition: &mut Owned, how: &str) {
    tracing::info!(partition = partition.lease.partition, how, "suspended partition resumed");
    metrics::PARTITION_RESUMES.inc();
    partition.suspended = false;
}

fn lose(partition: &mut Owned, why: &str) {
    tracing::warn!(partition = partition.lease.partition, why, "partition lease lost; stopping its pipeline");
    metrics::PARTITION_LOSSES.inc();
    partition.lost = true;
    partition.fence.revoke();
    partition.stop.cancel();
}

/// Deletes and recreates the partition's consumer so that it delivers from the oldest
/// command still in the stream; also returns the stream's last sequence once the old
/// consumer is gone, the newest command a previous owner can have received.
async fn fresh_consumer(
    stream: &Stream,
    partition: u32,
) -> Result<(async_nats::jetstream::consumer::PullConsumer, u64), PipelineError> {
    // While a NATS cluster elects leaders these requests wait out their whole timeout;
    // giving up sooner lets the next tick try again.
    tokio::time::timeout(SETUP_TIMEOUT, reset_consumer(stream, partition))
        .await
        .map_err(|_| PipelineError::Consume(format!("resetting partition {partition}'s consumer timed out")))?
}

/// How long resetting a partition's consumer may take before the claim is retried.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);

async fn reset_consumer(
    stream: &Stream,
    partition: u32,
) -> Result<(async_nats::jetstream::consumer::PullConsumer, u64), PipelineError> {
    let name = streams::partition_consumer_name(partition);
    let config = streams::partition_consumer_config(partition);
    let mut stream = stream.clone();
    // A consumer that never delivered anything (one an earlier attempt created before
    // its request timed out) starts from the oldest command, like a fresh one: deleting
    // it again would go on for as long as each create outlasts the timeout, as it does
    // while a cluster elects the new consumer's leader.
    let unused = match stream.consumer_info(&name).await {
        Ok(info) => info.delivered.consumer_sequence == 0,
        Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => false,
        Err(error) => return Err(PipelineError::Consume(format!("cannot read consumer {name}: {error}"))),
    };
    if unused {
        let replay_through = last_sequence(&mut stream).await?;
        if let Ok(consumer) = stream.create_consumer_strict(config.clone()).await {
            return Ok((consumer, replay_through));
        }
    }
    // Reusing the old consumer would deliver the dead owner's commands after the ack
    // wait, behind newer ones: only "it does not exist" lets the claim go on.
    match stream.delete_consumer(&name).await {
        Ok(_) => {}
        Err(error) if is_not_found(&error) => {}
        Err(error) => return Err(PipelineError::Consume(format!("cannot delete consumer {name}: {error}"))),
    }
    let replay_through = last_sequence(&mut stream).await?;
    let consumer = stream
        .create_consumer_strict(config)
        .await
        .map_err(|error| PipelineError::Consume(format!("cannot create consumer {name}: {error}")))?;
    Ok((consumer, replay_through))
}

/// The stream's last sequence: the newest command a previous owner can have received.
async fn last_sequence(stream: &mut Stream) -> Result<u64, PipelineError> {
    Ok(stream.info().await.map_err(|error| PipelineError::Consume(error.to_string()))?.state.last_sequence)
}

fn is_not_found(error: &ConsumerError) -> bool {
    matches!(error.kind(), ConsumerErrorKind::JetStream(inner) if inner.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

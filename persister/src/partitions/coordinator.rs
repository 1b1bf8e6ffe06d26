//! The loop that owns partitions: every tick it renews this replica's heartbeat and
//! leases, counts the live replicas, claims free partitions up to its share or hands
//! one over when above it, and runs one pipeline per owned partition.
//!
//! A claimed partition starts with a fresh consumer: the old `persister-<n>` is
//! deleted and created again with deliver-all, so the first command it delivers is the
//! oldest one still in the work-queue stream, which is the oldest one nobody
//! acknowledged. That is what keeps a chat's order across a crash: the dead owner's
//! unacknowledged commands come before anything newer, instead of after the ack wait.

use std::{collections::BTreeMap, time::Duration};

use async_nats::jetstream::{
    ErrorCode,
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

    /// Renews every lease at once; a lease somebody else wrote, or one not renewed
    /// before its local expiry, stops its pipeline.
    async fn renew(&self, owned: &mut BTreeMap<u32, Owned>) {
        let renewals = owned.values_mut().filter(|partition| !partition.lost).map(|partition| async move {
            let result = self.leases.renew(&mut partition.lease).await;
            (partition, result)
        });
        for (partition, result) in join_all(renewals).await {
            match result {
                Ok(true) => partition.fence.extend(partition.lease.trusted_until),
                Ok(false) => lose(partition, "another replica holds it"),
                Err(error) if partition.fence.expired() => {
                    tracing::warn!(%error, "cannot renew a lease");
                    lose(partition, "not renewed in time");
                }
                Err(error) => {
                    tracing::warn!(partition = partition.lease.partition, %error, "cannot renew a lease; retrying")
                }
            }
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
        metrics::PARTITION_CLAIMS.inc();
        tracing::info!(partition, "partition claimed");
        let task = tokio::spawn(async move {
            let (consumer, replay_through) = fresh_consumer(&stream, partition).await?;
            pipeline.run(Assignment { consumer, replay_through, stop: task_stop, fence }, grace).await
        });
        Owned { lease, fence: handle, stop, task, handing_over: false, lost: false }
    }
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
    // Reusing the old consumer would deliver the dead owner's commands after the ack
    // wait, behind newer ones: only "it does not exist" lets the claim go on.
    match stream.delete_consumer(&name).await {
        Ok(_) => {}
        Err(error) if is_not_found(&error) => {}
        Err(error) => return Err(PipelineError::Consume(format!("cannot delete consumer {name}: {error}"))),
    }
    let mut stream = stream.clone();
    let replay_through =
        stream.info().await.map_err(|error| PipelineError::Consume(error.to_string()))?.state.last_sequence;
    let consumer = stream
        .create_consumer_strict(streams::partition_consumer_config(partition))
        .await
        .map_err(|error| PipelineError::Consume(format!("cannot create consumer {name}: {error}")))?;
    Ok((consumer, replay_through))
}

fn is_not_found(error: &ConsumerError) -> bool {
    matches!(error.kind(), ConsumerErrorKind::JetStream(inner) if inner.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

//! The `idle` scenario: connect N authenticated clients that do nothing, let the edge
//! settle, and compare its resident memory with the figure before the scenario's first
//! client connected (the generator's own memory per client is reported beside it).

use std::time::Duration;

use super::{
    BenchError, Settings,
    client::Plan,
    fleet::Fleet,
    population,
    report::{IdleFigures, IdlePoint},
    resources::{Sampler, rss_bytes},
    scenario::IdleSpec,
};
use crate::progress::Progress;

/// Time for the edge to free the previous count's connections.
const BETWEEN_COUNTS: Duration = Duration::from_secs(2);

/// Measures every count of the scenario, one after the other.
pub async fn run(
    settings: &Settings,
    sampler: &Sampler,
    spec: &IdleSpec,
    progress: &Progress,
) -> Result<IdleFigures, BenchError> {
    let mut points = Vec::new();
    // Every count is measured against the edge's memory before the first one: the
    // allocator keeps what an earlier count freed, which would flatter later counts.
    let edge_before = sampler.edge_rss();
    for (index, &connections) in spec.connections.iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(BETWEEN_COUNTS).await;
        }
        let users = population::users(settings, &super::run_tag(), connections)?;
        let plans =
            users.into_iter().enumerate().map(|(index, user)| Plan { index, token: user.token, sends: None }).collect();
        let own = std::process::id();
        let (before, own_before) = (edge_before, rss_bytes(own));
        let fleet = Fleet::connect(settings, plans, progress).await?;
        tokio::time::sleep(Duration::from_secs_f64(spec.settle_s)).await;
        let (after, own_after) = (sampler.edge_rss(), rss_bytes(own));
        let connected = fleet.connected;
        let per_connection = |before: Option<u64>, after: Option<u64>| {
            before
                .zip(after)
                .filter(|_| connected > 0)
                .map(|(before, after)| (after as f64 - before as f64) / connected as f64)
        };
        points.push(IdlePoint {
            connections,
            connected,
            first_error: fleet.first_error.clone(),
            edge_rss_before_bytes: before,
            edge_rss_after_bytes: after,
            bytes_per_connection: per_connection(before, after),
            client_bytes_per_connection: per_connection(own_before, own_after),
            connections_closed: fleet.closed(),
        });
        fleet.stop().await;
    }
    Ok(IdleFigures { points })
}

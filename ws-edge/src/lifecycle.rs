//! The edge's background duties: presence heartbeats for every open connection, and
//! the drain at shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{close::CloseCode, hub::Hub, outbox::Outbound, protocol::ServerFrame, state::EdgeState};

/// Confirms every open connection to the presence worker, so that connections of an
/// edge that dies without goodbye expire.
pub async fn heartbeat_connections(edge: EdgeState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(chat_nats::presence::CONN_HEARTBEAT_S));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let by_user = edge.hub.registry().connections_by_user();
        for (user_id, conns) in &by_user {
            for conn_id in conns {
                edge.report_connection(user_id, conn_id, chat_nats::presence::ConnEvent::Alive).await;
            }
        }
        edge.user_connections.refresh(&by_user).await;
    }
}

/// At shutdown every client is told to reconnect elsewhere after a jittered delay,
/// then its socket is closed with 1001.
pub async fn drain_on_shutdown(hub: Hub, shutdown: CancellationToken, grace: Duration, nats: async_nats::Client) {
    shutdown.cancelled().await;
    let conns = hub.registry().all_connections();
    tracing::info!(connections = conns.len(), "draining connections");
    for (i, conn) in conns.iter().enumerate() {
        let after_ms = 500 + (i as u64 * 7919) % 4500;
        conn.offer(Outbound::Frame(ServerFrame::Reconnect { after_ms }.to_text().into()));
        conn.outbox.close(CloseCode::GoingAway);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while hub.registry().connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = nats.flush().await;
}

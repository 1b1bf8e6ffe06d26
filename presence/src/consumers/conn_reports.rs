//! `presence.conn.*` (queue group `presence`): the edges' connection reports. An opened
//! or confirmed connection may make its user online (announced at once); a closed one
//! never announces anything by itself (see [`crate::sweeper`]).

use std::sync::Arc;

use chat_nats::{
    presence::{ConnEvent, ConnReport, Status},
    subjects,
};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{announce::announce, conn_state::ConnState, metrics, redis_link::RedisLink};

/// What handling a report needs.
pub struct ConnReports {
    /// Redis, when it answers.
    pub link: Arc<RedisLink>,
    /// Where transitions are announced.
    pub nats: async_nats::Client,
    /// The per-user Redis steps.
    pub state: Arc<ConnState>,
    /// How long a connection lives without a heartbeat, in ms.
    pub expiry_ms: i64,
}

impl ConnReports {
    /// Consumes `subscriber` until `shutdown`, in per-user order, then finishes the
    /// reports already taken.
    pub async fn run(self: Arc<Self>, subscriber: async_nats::Subscriber, lanes: usize, shutdown: CancellationToken) {
        let route = |message: async_nats::Message| match decode(&message.subject, &message.payload) {
            Some(report) => Some((report.user_id.clone(), report)),
            None => {
                metrics::REPORTS.with_label_values(&["malformed"]).inc();
                tracing::warn!(subject = %message.subject, "malformed connection report dropped");
                None
            }
        };
        let handler = move |report: ConnReport| {
            let this = self.clone();
            async move { this.handle(report).await }
        };
        super::consume(subscriber, lanes, shutdown, route, handler).await;
    }

    /// Applies one report to Redis and announces the user online if it made them so.
    async fn handle(&self, report: ConnReport) {
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let ConnReport { user_id, conn_id, event, .. } = &report;
        let state = &self.state;
        let applied = self
            .link
            .call(|mut redis| async move {
                match event {
                    ConnEvent::Connected | ConnEvent::Alive => {
                        state.connected(&mut redis, user_id, conn_id, now_ms, now_ms + self.expiry_ms).await
                    }
                    ConnEvent::Disconnected => {
                        state.disconnected(&mut redis, user_id, conn_id, now_ms).await.map(|()| false)
                    }
                }
            })
            .await;
        match applied {
            Some(became_online) => {
                metrics::REPORTS.with_label_values(&["applied"]).inc();
                if became_online {
                    announce(&self.nats, user_id, Status::Online, Some(now)).await;
                }
            }
            // Heartbeats re-add open connections within CONN_HEARTBEAT_S once Redis is
            // back; closed ones expire by themselves.
            None => {
                metrics::REPORTS.with_label_values(&["redis_unavailable"]).inc();
                tracing::debug!(user_id, conn_id, ?event, "connection report not applied: redis unavailable");
            }
        }
    }
}

/// A report whose user matches its subject and whose ids are well-formed.
fn decode(subject: &str, payload: &[u8]) -> Option<ConnReport> {
    let report: ConnReport = serde_json::from_slice(payload).ok()?;
    let valid = subjects::is_valid_id(&report.user_id)
        && subjects::is_valid_id(&report.conn_id)
        && subject == subjects::presence_conn(&report.user_id);
    valid.then_some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(user: &str, conn: &str) -> Vec<u8> {
        format!(r#"{{"v":1,"user_id":"{user}","conn_id":"{conn}","event":"alive"}}"#).into_bytes()
    }

    #[test]
    fn a_well_formed_report_is_accepted() {
        let report = decode("presence.conn.u1", &payload("u1", "c1"));
        assert_eq!(report.map(|r| (r.user_id, r.conn_id, r.event)), Some(("u1".into(), "c1".into(), ConnEvent::Alive)));
    }

    #[test]
    fn reports_for_another_user_or_with_bad_ids_are_dropped() {
        assert!(decode("presence.conn.u2", &payload("u1", "c1")).is_none(), "subject and user differ");
        assert!(decode("presence.conn.u1", &payload("u1", "~announced")).is_none(), "the marker is no conn id");
        assert!(decode("presence.conn.u1", &payload("u1", "")).is_none());
        assert!(decode("presence.conn.u1", b"{not json").is_none());
    }
}

//! Announcing a presence transition on `presence.changed.<user_id>` (core NATS: the
//! edges forward it to the clients watching that user).

use chat_nats::{
    presence::{Presence, Status},
    subjects,
};
use chrono::{DateTime, Utc};

use crate::metrics;

/// Publishes `user_id`'s new status; a failure is logged (the state in Redis stays right
/// and clients re-read it on their next watch).
pub async fn announce(nats: &async_nats::Client, user_id: &str, status: Status, last_seen: Option<DateTime<Utc>>) {
    let presence = Presence { user_id: user_id.to_owned(), status, last_seen };
    let label = match status {
        Status::Online => "online",
        Status::Offline => "offline",
    };
    let payload = match serde_json::to_vec(&presence) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(%error, user_id, "cannot serialise a presence");
            return;
        }
    };
    match nats.publish(subjects::presence_changed(user_id), payload.into()).await {
        Ok(()) => {
            metrics::ANNOUNCEMENTS.with_label_values(&[label]).inc();
            tracing::debug!(user_id, status = label, "presence changed");
        }
        Err(error) => tracing::warn!(%error, user_id, status = label, "cannot announce a presence change"),
    }
}

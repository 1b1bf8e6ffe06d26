//! Presence reads for the REST route and the `chat.rpc.presence` endpoint. Redis is
//! not essential: when it is down the answer is 503 for this route only. A user whose
//! presence the viewer may not see ([`crate::privacy`]) is answered as never seen;
//! Redis is read for every user asked all the same, so that neither a Redis outage nor
//! the time an answer takes tells a hidden user from one who is away.

use std::collections::HashSet;

use chat_nats::{commands::Actor, presence::Presence};

use crate::{error::ApiError, privacy, state::AppState};

/// The presence of each user as `viewer` may see it, in the order asked, and the ids
/// the viewer may not see (answered as offline and never seen).
pub async fn lookup(
    state: &AppState,
    viewer: Option<&Actor>,
    user_ids: &[String],
) -> Result<(Vec<Presence>, Vec<String>), ApiError> {
    let visible: HashSet<String> = privacy::visible_presence(state, viewer, user_ids).await?;
    let mut hidden = Vec::new();
    let answers = read(state, user_ids)
        .await?
        .into_iter()
        .map(|presence| {
            if visible.contains(&presence.user_id) {
                presence
            } else {
                hidden.push(presence.user_id.clone());
                privacy::hidden_presence(&presence.user_id)
            }
        })
        .collect();
    Ok((answers, hidden))
}

async fn read(state: &AppState, user_ids: &[String]) -> Result<Vec<Presence>, ApiError> {
    let unavailable = |error: redis::RedisError| {
        tracing::warn!(%error, "presence lookup failed");
        ApiError::unavailable("presence is unavailable; retry later")
    };
    let mut redis = state.inner.redis.get().await.map_err(unavailable)?;
    chat_core::presence_state::read(&mut redis, user_ids).await.map_err(unavailable)
}

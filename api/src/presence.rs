//! Presence reads for the REST route and the `chat.rpc.presence` endpoint. Redis is
//! not essential: when it is down the answer is 503 for this route only.

use chat_nats::presence::Presence;

use crate::{error::ApiError, state::AppState};

/// The presence of each user, in the order asked.
pub async fn lookup(state: &AppState, user_ids: &[String]) -> Result<Vec<Presence>, ApiError> {
    let unavailable = |error: redis::RedisError| {
        tracing::warn!(%error, "presence lookup failed");
        ApiError::unavailable("presence is unavailable; retry later")
    };
    let mut redis = state.inner.redis.get().await.map_err(unavailable)?;
    chat_core::presence_state::read(&mut redis, user_ids).await.map_err(unavailable)
}

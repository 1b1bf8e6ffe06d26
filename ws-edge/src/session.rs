//! Who is on the other end of one connection.

use std::{sync::Arc, time::Instant};

use chat_core::auth::Claims;

/// The authenticated user of a connection.
#[derive(Debug, Clone)]
pub struct Session {
    /// This connection.
    pub conn_id: Arc<str>,
    /// The authenticated user.
    pub user_id: Arc<str>,
    /// Platform roles from the token.
    pub roles: Vec<String>,
    /// When the token expires.
    pub expires_at: Instant,
}

/// When a verified token expires on this edge's monotonic clock. The verifier bounds
/// `exp`, and the addition is checked anyway: an `Instant` that overflows panics, and a
/// deadline that cannot be represented counts as already passed (fail closed).
pub fn token_deadline(claims: &Claims) -> Instant {
    let now = Instant::now();
    now.checked_add(claims.valid_for()).unwrap_or(now)
}

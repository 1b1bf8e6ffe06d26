//! Who is on the other end of one connection.

use std::{sync::Arc, time::Instant};

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

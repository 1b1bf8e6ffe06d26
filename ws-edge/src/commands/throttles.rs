//! What one connection may do how often, beyond the command budget every frame takes
//! from: typing signals per chat, and the two commands that make the api work for a
//! whole list (`sync`, `presence.watch`), each under a token bucket of its own.

use std::time::Instant;

use chat_nats::model::ErrorCode;

use super::typing::TypingThrottle;
use crate::{
    config::Config,
    outbox::{ConnHandle, Outbound},
    protocol::ServerFrame,
    rate::TokenBucket,
};

/// One connection's throttles.
#[derive(Debug)]
pub struct ConnThrottles {
    /// The last typing signal per chat.
    pub typing: TypingThrottle,
    syncs: TokenBucket,
    watches: TokenBucket,
}

impl ConnThrottles {
    /// Full buckets with the rates of `config`.
    pub fn new(config: &Config) -> Self {
        ConnThrottles {
            typing: TypingThrottle::default(),
            syncs: TokenBucket::new(config.syncs_per_s, config.syncs_burst),
            watches: TokenBucket::new(config.presence_watches_per_s, config.presence_watches_burst),
        }
    }

    /// Takes a `sync` from its bucket; when empty, answers `rate_limited` and is false.
    pub fn take_sync(&mut self, conn: &ConnHandle, reference: Option<&str>) -> bool {
        take(&mut self.syncs, conn, reference, "too many syncs; slow down")
    }

    /// Takes a `presence.watch` from its bucket; when empty, answers `rate_limited` and
    /// is false.
    pub fn take_watch(&mut self, conn: &ConnHandle, reference: Option<&str>) -> bool {
        take(&mut self.watches, conn, reference, "too many presence.watch changes; slow down")
    }
}

fn take(bucket: &mut TokenBucket, conn: &ConnHandle, reference: Option<&str>, message: &str) -> bool {
    if bucket.take(Instant::now()) {
        return true;
    }
    let frame = ServerFrame::Error {
        reference,
        code: ErrorCode::RateLimited,
        message,
        client_msg_id: None,
        retry_after_ms: Some(bucket.retry_after_ms()),
    };
    conn.offer(Outbound::Frame(frame.to_text().into()));
    false
}

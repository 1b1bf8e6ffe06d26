//! Whether this replica may still act on a partition. The coordinator extends the
//! fence each time it renews the partition's lease and revokes it when the lease is
//! lost; the pipeline checks it before each batch and stops at once when it is
//! revoked, leaving its commands unacknowledged for the next owner to replay.

use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

/// The pipeline's side: read-only.
#[derive(Debug, Clone)]
pub struct Fence {
    valid_until: watch::Receiver<Instant>,
    revoked: CancellationToken,
}

/// The coordinator's side.
#[derive(Debug)]
pub struct FenceHandle {
    valid_until: watch::Sender<Instant>,
    revoked: CancellationToken,
}

impl Fence {
    /// A fence valid until `until`, and the handle that extends or revokes it.
    pub fn new(until: Instant) -> (Fence, FenceHandle) {
        let (sender, receiver) = watch::channel(until);
        let revoked = CancellationToken::new();
        (Fence { valid_until: receiver, revoked: revoked.clone() }, FenceHandle { valid_until: sender, revoked })
    }

    /// A fence that always holds: for a persister that is the only consumer of what it
    /// reads (tests, the drain of the pre-partition consumer).
    pub fn always() -> Fence {
        // A dropped handle leaves the expiry where it was and never revokes.
        Fence::new(Instant::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3600)).0
    }

    /// True while the lease is ours by the local clock.
    pub fn holds(&self) -> bool {
        !self.revoked.is_cancelled() && *self.valid_until.borrow() > Instant::now()
    }

    /// Resolves when the lease is known to be lost.
    pub async fn revoked(&self) {
        self.revoked.cancelled().await;
    }
}

impl FenceHandle {
    /// Moves the local expiry after a successful renewal.
    pub fn extend(&self, until: Instant) {
        self.valid_until.send_replace(until);
    }

    /// Stops the pipeline at its next step.
    pub fn revoke(&self) {
        self.revoked.cancel();
    }

    /// True when the local expiry has passed.
    pub fn expired(&self) -> bool {
        *self.valid_until.borrow() <= Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn holds_until_expiry_or_revocation() {
        let (fence, handle) = Fence::new(Instant::now() + Duration::from_secs(60));
        assert!(fence.holds());
        handle.extend(Instant::now() - Duration::from_millis(1));
        assert!(!fence.holds());
        assert!(handle.expired());
        handle.extend(Instant::now() + Duration::from_secs(60));
        assert!(fence.holds());
        handle.revoke();
        assert!(!fence.holds());
        tokio::time::timeout(Duration::from_secs(1), fence.revoked()).await.unwrap_or_else(|_| panic!("not revoked"));
    }

    #[test]
    fn always_holds() {
        assert!(Fence::always().holds());
    }
}

//! Whether this replica may still act on a partition. The coordinator extends the
//! fence each time it renews the partition's lease and revokes it when the lease is
//! lost; the pipeline checks it before each step and stops at once when it is
//! revoked, leaving its commands unacknowledged for the next owner to replay. A fence
//! that only expired (the lease bucket did not answer in time) is not lost yet: the
//! pipeline waits, acting on nothing, until the coordinator either gets the lease back
//! and extends it or learns it is lost and revokes it.

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

    /// Waits until the fence holds again (true) or is revoked (false).
    pub async fn regained(&self) -> bool {
        let mut valid_until = self.valid_until.clone();
        loop {
            if self.revoked.is_cancelled() {
                return false;
            }
            let until = *valid_until.borrow_and_update();
            if until > Instant::now() {
                return true;
            }
            tokio::select! {
                changed = valid_until.changed() => if changed.is_err() { return false },
                () = self.revoked.cancelled() => return false,
            }
        }
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

    #[tokio::test]
    async fn an_expired_fence_is_regained_when_extended_and_lost_when_revoked() {
        let (fence, handle) = Fence::new(Instant::now() - Duration::from_millis(1));
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move { fence.regained().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "an expired fence is waited for");
        handle.extend(Instant::now() + Duration::from_secs(60));
        let regained = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(matches!(regained, Ok(Ok(true))), "{regained:?}");

        handle.extend(Instant::now() - Duration::from_millis(1));
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move { fence.regained().await }
        });
        handle.revoke();
        let regained = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(matches!(regained, Ok(Ok(false))), "{regained:?}");
    }

    #[test]
    fn always_holds() {
        assert!(Fence::always().holds());
    }
}

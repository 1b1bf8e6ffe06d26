//! How many writes a [`Store`](crate::Store) handle has made, and optionally a limit
//! past which its writes fail as though the process had died before sending them. The
//! persister's crash tests stop a command between any two of its writes this way,
//! against the real store; handles made by [`Store::new`](crate::Store::new) have no
//! limit and only count.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::StoreError;

/// The write count shared by the clones of one handle.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    made: Arc<AtomicUsize>,
    limit: Option<usize>,
}

impl Writes {
    /// A count whose writes fail once `limit` of them were made.
    pub fn limited(limit: usize) -> Writes {
        Writes { made: Arc::default(), limit: Some(limit) }
    }

    /// Writes let through so far.
    pub fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    /// Lets one write through, or refuses it once the limit is reached; `what` names it
    /// in the error, so a test says where the command stopped.
    pub(crate) fn admit(&self, what: &'static str) -> Result<(), StoreError> {
        let Some(limit) = self.limit else {
            self.made.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        self.made
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |made| (made < limit).then_some(made + 1))
            .map(|_| ())
            .map_err(|made| StoreError::Interrupted { write: made + 1, what })
    }
}

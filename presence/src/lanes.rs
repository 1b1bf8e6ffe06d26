//! Keyed lanes: items with the same key are handled one after the other, in arrival
//! order, while different keys proceed concurrently. A user's `connected` is never
//! applied after their `disconnected`, yet one slow user does not hold up the rest.

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
};

use tokio::{sync::mpsc, task::JoinHandle};

/// How many items may wait in one lane before the producer waits.
const LANE_CAPACITY: usize = 256;

/// Senders into a fixed number of sequential lanes.
pub struct Lanes<T> {
    senders: Vec<mpsc::Sender<T>>,
}

impl<T: Send + 'static> Lanes<T> {
    /// Starts `count` lanes, each handling its items with `handler`. The tasks end when
    /// the [`Lanes`] are dropped and their queued items are handled.
    pub fn spawn<F, Fut>(count: usize, handler: F) -> (Self, Vec<JoinHandle<()>>)
    where
        F: Fn(T) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (senders, tasks) = (0..count.max(1))
            .map(|_| {
                let (sender, mut receiver) = mpsc::channel::<T>(LANE_CAPACITY);
                let handler = handler.clone();
                let task = tokio::spawn(async move {
                    while let Some(item) = receiver.recv().await {
                        handler(item).await;
                    }
                });
                (sender, task)
            })
            .unzip();
        (Lanes { senders }, tasks)
    }

    /// Queues `item` in the lane of `key`, waiting while that lane is full.
    pub async fn send(&self, key: impl Hash, item: T) {
        let lane = lane_of(key, self.senders.len());
        if let Some(sender) = self.senders.get(lane)
            && sender.send(item).await.is_err()
        {
            tracing::error!(lane, "presence lane stopped");
        }
    }
}

/// The lane of a key: stable for the life of the process.
fn lane_of(key: impl Hash, count: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_key_always_lands_in_the_same_lane_and_keys_spread() {
        assert_eq!(lane_of("u1", 8), lane_of("u1", 8));
        let used: std::collections::HashSet<usize> = (0..200).map(|n| lane_of(format!("u{n}"), 8)).collect();
        assert_eq!(used.len(), 8, "200 keys use every lane");
        assert_eq!(lane_of("u1", 1), 0);
    }

    #[tokio::test]
    async fn items_of_one_key_are_handled_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (lanes, tasks) = Lanes::spawn(4, move |(key, n): (&'static str, u32)| {
            let record = record.clone();
            async move {
                // Later items of a key must not overtake earlier, slower ones.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(5 - n % 5))).await;
                record.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((key, n));
            }
        });
        for n in 0..20 {
            lanes.send("a", ("a", n)).await;
            lanes.send("b", ("b", n)).await;
        }
        drop(lanes);
        for task in tasks {
            task.await.unwrap_or_else(|error| panic!("lane task: {error}"));
        }
        let seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        for key in ["a", "b"] {
            let order: Vec<u32> = seen.iter().filter(|(k, _)| *k == key).map(|(_, n)| *n).collect();
            assert_eq!(order, (0..20).collect::<Vec<_>>(), "order of {key}");
        }
    }
}

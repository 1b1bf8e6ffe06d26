//! Group commit for the sends of every partition pipeline of this replica. A run of
//! sends makes three round trips: the lookup of sends that may already exist, the
//! compare-and-set of each chat's `last_seq` and preview, and the insert of the new
//! messages. Each costs the
//! store a fixed price per command plus a small price per document (an insert of ten
//! messages costs less than two inserts of one), and the partitions' pipelines make them
//! at the same moments under load. So each kind goes through a [`Coalescer`]: while
//! [`IN_FLIGHT`] commands of that kind are at the store, new requests wait and are then
//! sent together as one command. An idle store sees each request at once; a busy one
//! sees fewer, larger commands.
//!
//! A merged command fails or succeeds for every request in it. The operations are
//! idempotent or judged per chat (a lookup; compare-and-sets, each answered on its own;
//! an insert that skips what is already stored), so a pipeline whose step failed
//! because of another partition's documents retries its own.

use std::{sync::Arc, time::Duration};

use chat_store::{Store, StoreError, docs::MessageDoc, heads::HeadMove, messages::SendKey};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::head_copies::HeadCopies;

/// Commands of one kind at the store at once, before requests start to be merged.
pub const IN_FLIGHT: usize = 2;

/// Most items merged into one command: a bound on the size of one store command.
pub const MAX_ITEMS: usize = 1_000;

/// The lookups and inserts of sends, merged across the pipelines of this replica, and
/// the copies of moved heads into their chat documents.
#[derive(Clone)]
pub struct SendWrites {
    existing: Coalescer<SendKey, Vec<MessageDoc>>,
    heads: Coalescer<(HeadMove, DateTime<Utc>), Vec<bool>>,
    inserts: Coalescer<MessageDoc, Vec<MessageDoc>>,
    copies: HeadCopies,
}

impl SendWrites {
    /// Starts the coalescing tasks for `store`, and the copying of moved heads every
    /// `copy_every`; they end when every clone is dropped.
    pub fn new(store: &Store, copy_every: Duration) -> Self {
        let lookups = store.clone();
        let existing = Coalescer::spawn(move |requests: Vec<Vec<SendKey>>| {
            let store = lookups.clone();
            Box::pin(async move {
                let keys: Vec<SendKey> = requests.iter().flatten().cloned().collect();
                let found = store.existing_sends(&keys).await?;
                // Each request gets the stored sends among its own keys.
                Ok(requests
                    .iter()
                    .map(|keys| found.iter().filter(|doc| keys.contains(&SendKey::of(doc))).cloned().collect())
                    .collect())
            }) as BoxFuture<'static, Result<Vec<Vec<MessageDoc>>, StoreError>>
        });
        let mover = store.clone();
        let heads = Coalescer::spawn(move |requests: Vec<Vec<(HeadMove, DateTime<Utc>)>>| {
            let store = mover.clone();
            Box::pin(async move {
                let at = requests.iter().flatten().map(|(_, at)| *at).max().unwrap_or_else(Utc::now);
                let moves: Vec<HeadMove> = requests.iter().flatten().map(|(head, _)| head.clone()).collect();
                let mut applied = store.advance_heads(&moves, at).await?.into_iter();
                Ok(requests.iter().map(|request| applied.by_ref().take(request.len()).collect()).collect())
            }) as BoxFuture<'static, Result<Vec<Vec<bool>>, StoreError>>
        });
        let writer = store.clone();
        let inserts = Coalescer::spawn(move |requests: Vec<Vec<MessageDoc>>| {
            let store = writer.clone();
            Box::pin(async move {
                let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
                let docs: Vec<MessageDoc> = requests.into_iter().flatten().collect();
                let clashes = store.insert_messages(&docs).await?;
                // Each request gets back its own documents that were refused.
                let mut answers = Vec::with_capacity(sizes.len());
                let mut first = 0;
                for size in sizes {
                    let own = first..first + size;
                    answers.push(clashes.iter().filter(|at| own.contains(at)).map(|&at| docs[at].clone()).collect());
                    first += size;
                }
                Ok(answers)
            }) as BoxFuture<'static, Result<Vec<Vec<MessageDoc>>, StoreError>>
        });
        SendWrites { existing, heads, inserts, copies: HeadCopies::spawn(store.clone(), copy_every) }
    }

    /// Marks a chat whose head a command moved, for its chat document's copy.
    pub fn head_moved(&self, chat_id: &str) {
        self.copies.moved(chat_id);
    }

    /// The stored messages among these send keys.
    pub async fn existing_sends(&self, keys: Vec<SendKey>) -> Result<Vec<MessageDoc>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.existing.call(keys).await
    }

    /// Moves each chat's head when it still has its expected `last_seq`; says for
    /// each move whether it was applied.
    pub async fn advance_heads(&self, moves: Vec<HeadMove>, at: DateTime<Utc>) -> Result<Vec<bool>, StoreError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        self.heads.call(moves.into_iter().map(|head| (head, at)).collect()).await
    }

    /// Inserts messages; returns those skipped because a message with the same send key
    /// is stored.
    pub async fn insert_messages(&self, docs: Vec<MessageDoc>) -> Result<Vec<MessageDoc>, StoreError> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        self.inserts.call(docs).await
    }
}

/// What a merged command does: one answer per request, in the requests' order.
type Run<I, O> = Arc<dyn Fn(Vec<Vec<I>>) -> BoxFuture<'static, Result<Vec<O>, StoreError>> + Send + Sync>;

type Request<I, O> = (Vec<I>, oneshot::Sender<Result<O, StoreError>>);

/// Merges concurrent requests of one kind into commands of up to [`MAX_ITEMS`] items,
/// at most [`IN_FLIGHT`] at a time.
pub struct Coalescer<I, O> {
    requests: mpsc::UnboundedSender<Request<I, O>>,
}

impl<I, O> Clone for Coalescer<I, O> {
    fn clone(&self) -> Self {
        Coalescer { requests: self.requests.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// Starts the task that gathers requests and runs them through `run`.
    pub fn spawn<F>(run: F) -> Self
    where
        F: Fn(Vec<Vec<I>>) -> BoxFuture<'static, Result<Vec<O>, StoreError>> + Send + Sync + 'static,
    {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(gather(queue, Arc::new(run)));
        Coalescer { requests }
    }

    /// Runs `items` in the next command of this kind and returns its answer for them.
    pub async fn call(&self, items: Vec<I>) -> Result<O, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.requests.send((items, answer)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Waits for a free slot, then takes every queued request (up to [`MAX_ITEMS`]
/// items) into one command.
async fn gather<I: Send + 'static, O: Send + 'static>(
    mut queue: mpsc::UnboundedReceiver<Request<I, O>>,
    run: Run<I, O>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carried: Option<Request<I, O>> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let first = match carried.take() {
            Some(request) => request,
            None => match queue.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let mut items = first.0.len();
        let mut batch = vec![first];
        while let Ok(request) = queue.try_recv() {
            if items + request.0.len() > MAX_ITEMS {
                carried = Some(request);
                break;
            }
            items += request.0.len();
            batch.push(request);
        }
        let run = run.clone();
        tokio::spawn(async move {
            let (inputs, answers): (Vec<Vec<I>>, Vec<_>) = batch.into_iter().unzip();
            match run(inputs).await {
                Ok(outputs) => {
                    for (answer, output) in answers.into_iter().zip(outputs) {
                        let _ = answer.send(Ok(output));
                    }
                }
                Err(error) => {
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

fn stopped() -> StoreError {
    StoreError::Bson("the persister's group commit has stopped".into())
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    fn counting(commands: Arc<AtomicUsize>) -> Coalescer<u32, u32> {
        Coalescer::spawn(move |requests: Vec<Vec<u32>>| {
            let commands = commands.clone();
            Box::pin(async move {
                commands.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(requests.iter().map(|items| items.iter().sum()).collect())
            }) as BoxFuture<'static, Result<Vec<u32>, StoreError>>
        })
    }

    #[tokio::test]
    async fn each_request_gets_its_own_answer_and_waiting_requests_share_a_command() {
        let commands = Arc::new(AtomicUsize::new(0));
        let coalescer = counting(commands.clone());
        let calls: Vec<_> = (0..10u32).map(|n| coalescer.call(vec![n, n])).collect();
        let answers = futures::future::join_all(calls).await;
        let answers: Vec<u32> = answers.into_iter().map(|answer| answer.unwrap_or_else(|e| panic!("{e}"))).collect();
        assert_eq!(answers, (0..10).map(|n| 2 * n).collect::<Vec<u32>>());
        let made = commands.load(Ordering::SeqCst);
        // Requests queued while the slots are taken go together: at most two commands
        // start before the rest is queued, then the rest is one command.
        assert!((1..=3).contains(&made), "{made} commands for 10 concurrent requests");
    }

    #[tokio::test]
    async fn a_failed_command_fails_every_request_in_it() {
        let coalescer: Coalescer<u32, u32> = Coalescer::spawn(|_requests: Vec<Vec<u32>>| {
            Box::pin(async { Err(StoreError::Bson("refused".into())) })
                as BoxFuture<'static, Result<Vec<u32>, StoreError>>
        });
        let (first, second) = tokio::join!(coalescer.call(vec![1]), coalescer.call(vec![2]));
        assert!(first.is_err() && second.is_err());
    }

    #[tokio::test]
    async fn a_command_holds_at_most_max_items() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer: Coalescer<u32, ()> = Coalescer::spawn(move |requests: Vec<Vec<u32>>| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(requests.iter().map(Vec::len).sum::<usize>());
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(vec![(); requests.len()])
            }) as BoxFuture<'static, Result<Vec<()>, StoreError>>
        });
        let calls: Vec<_> = (0..8).map(|_| coalescer.call(vec![0; MAX_ITEMS / 3])).collect();
        for answer in futures::future::join_all(calls).await {
            answer.unwrap_or_else(|e| panic!("{e}"));
        }
        let sizes = sizes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(sizes.iter().sum::<usize>(), 8 * (MAX_ITEMS / 3));
        assert!(sizes.iter().all(|&size| size <= MAX_ITEMS), "{sizes:?}");
    }
}

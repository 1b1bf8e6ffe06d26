//! The send queue of one connection, shared by everything that delivers to it (chat
//! feeds, user deliveries, command replies) and drained by the connection's own task.
//!
//! It is bounded in frames and in bytes. When a frame does not fit, queued typing and
//! presence frames are dropped first; if it still does not fit, the connection is
//! marked for closing with 4009 (slow consumer) and its queue is freed at once. The
//! queue starts empty; the connection task swaps it with a spare one to drain it and
//! shrinks the spare after a large burst, so an idle connection holds little storage.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use crate::{close, metrics};

/// Something to write to a socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A reply of the edge (ack, pong, error, sync result).
    Frame(Utf8Bytes),
    /// A bus event.
    Event {
        /// The JSON text.
        frame: Utf8Bytes,
        /// When the persister stored it, on the one delivery per event that is timed
        /// for `chat_delivery_seconds`.
        persisted_at_micros: Option<i64>,
        /// Typing and presence may be dropped when the queue is full.
        droppable: bool,
    },
}

impl Outbound {
    /// True for frames a slow client may miss.
    pub fn droppable(&self) -> bool {
        matches!(self, Outbound::Event { droppable: true, .. })
    }

    /// The frame's text.
    pub fn text(&self) -> &Utf8Bytes {
        match self {
            Outbound::Frame(frame) | Outbound::Event { frame, .. } => frame,
        }
    }
}

/// How much one connection may have queued.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Frames.
    pub max_frames: usize,
    /// Bytes of frame text. A single frame larger than this is still accepted into an
    /// empty queue, so that one big `sync.result` can be delivered.
    pub max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Outbound>,
    bytes: usize,
    /// Set once: the close code the connection is to be closed with.
    closing: Option<u16>,
}

/// One connection's queue.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    wake: Notify,
    limits: QueueLimits,
}

impl Outbox {
    /// An empty queue.
    pub fn new(limits: QueueLimits) -> Self {
        Outbox { queue: Mutex::default(), wake: Notify::new(), limits }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame. Returns false when it was dropped or the connection is closing.
    pub fn offer(&self, outbound: Outbound) -> bool {
        let len = outbound.text().len();
        let mut queue = self.lock();
        if queue.closing.is_some() {
            return false;
        }
        if !self.fits(&queue, len) {
            if outbound.droppable() {
                metrics::DROPPED_QUEUE_FULL.inc();
                return false;
            }
            Self::drop_droppable(&mut queue);
            if !self.fits(&queue, len) {
                metrics::DROPPED_SLOW_CONSUMER.inc();
                *queue = Queue { closing: Some(close::SLOW_CONSUMER), ..Queue::default() };
                drop(queue);
                self.wake.notify_one();
                return false;
            }
        }
        let was_empty = queue.frames.is_empty();
        queue.bytes += len;
        queue.frames.push_back(outbound);
        drop(queue);
        if was_empty {
            self.wake.notify_one();
        }
        true
    }

    fn fits(&self, queue: &Queue, len: usize) -> bool {
        queue.frames.is_empty()
            || (queue.frames.len() < self.limits.max_frames && queue.bytes + len <= self.limits.max_bytes)
    }

    fn drop_droppable(queue: &mut Queue) {
        let before = queue.frames.len();
        queue.frames.retain(|frame| !frame.droppable());
        let dropped = before - queue.frames.len();
        if dropped > 0 {
            metrics::DROPPED_QUEUE_FULL.inc_by(dropped as u64);
            queue.bytes = queue.frames.iter().map(|frame| frame.text().len()).sum();
        }
    }

    /// Asks the connection to close with `code` after what is queued (the first code
    /// asked for wins).
    pub fn close(&self, code: u16) {
        let mut queue = self.lock();
        queue.closing.get_or_insert(code);
        drop(queue);
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Takes everything queued by swapping it with `spare`, an empty queue of the
    /// connection's whose storage is reused, so a delivery allocates nothing. Returns
    /// the close code when a close was asked for.
    pub fn drain_into(&self, spare: &mut VecDeque<Outbound>) -> Option<u16> {
        let mut queue = self.lock();
        queue.bytes = 0;
        std::mem::swap(&mut queue.frames, spare);
        queue.closing
    }

    /// Resolves when something was queued or a close asked for since the last drain.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }
}

/// One connection as the registry sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub conn_id: Arc<str>,
    /// Its queue.
    pub outbox: Arc<Outbox>,
}

impl ConnHandle {
    /// Queues a frame; see [`Outbox::offer`].
    pub fn offer(&self, outbound: Outbound) -> bool {
        self.outbox.offer(outbound)
    }

    /// Queues a reply of the edge.
    pub fn reply(&self, text: String) -> bool {
        self.outbox.offer(Outbound::Frame(text.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str, droppable: bool) -> Outbound {
        Outbound::Event { frame: text.to_owned().into(), persisted_at_micros: None, droppable }
    }

    fn drain(outbox: &Outbox) -> (VecDeque<Outbound>, Option<u16>) {
        let mut frames = VecDeque::new();
        let closing = outbox.drain_into(&mut frames);
        (frames, closing)
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well_as_frames() {
        let outbox = Outbox::new(QueueLimits { max_frames: 1000, max_bytes: 100 });
        let forty = "x".repeat(40);
        assert!(outbox.offer(event(&forty, false)));
        assert!(outbox.offer(event(&forty, false)));
        assert!(!outbox.is_closing());
        assert!(!outbox.offer(event(&forty, false)), "120 bytes do not fit in 100");
        let (frames, closing) = drain(&outbox);
        assert_eq!(closing, Some(close::SLOW_CONSUMER));
        assert!(frames.is_empty(), "a closing connection's queue is freed at once");
        assert!(!outbox.offer(event("late", false)), "nothing is queued after the close");
    }

    #[test]
    fn typing_and_presence_are_dropped_first() {
        let outbox = Outbox::new(QueueLimits { max_frames: 3, max_bytes: 1 << 20 });
        assert!(outbox.offer(event("typing", true)));
        assert!(outbox.offer(event("m1", false)));
        assert!(outbox.offer(event("presence", true)));
        assert!(!outbox.offer(event("typing again", true)), "a droppable frame is dropped when full");
        assert!(outbox.offer(event("m2", false)), "room is made by dropping typing and presence");
        let (frames, closing) = drain(&outbox);
        let texts: Vec<&str> = frames.iter().map(|f| f.text().as_str()).collect();
        assert_eq!(texts, ["m1", "m2"]);
        assert_eq!(closing, None);
    }

    #[test]
    fn one_big_frame_fits_an_empty_queue() {
        let outbox = Outbox::new(QueueLimits { max_frames: 10, max_bytes: 10 });
        assert!(outbox.offer(Outbound::Frame("a sync.result bigger than the budget".into())));
        assert!(!outbox.offer(event("next", false)));
        assert_eq!(drain(&outbox).1, Some(close::SLOW_CONSUMER));
    }

    #[test]
    fn frame_limit_closes_with_4009() {
        let outbox = Outbox::new(QueueLimits { max_frames: 2, max_bytes: 1 << 20 });
        assert!(outbox.offer(event("1", false)));
        assert!(outbox.offer(event("2", false)));
        assert!(!outbox.offer(event("3", false)));
        assert_eq!(drain(&outbox).1, Some(close::SLOW_CONSUMER));
    }

    #[tokio::test]
    async fn a_queued_frame_wakes_the_connection() {
        let outbox = Arc::new(Outbox::new(QueueLimits { max_frames: 10, max_bytes: 1000 }));
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                outbox.ready().await;
                drain(&outbox).0.len()
            }
        });
        tokio::task::yield_now().await;
        assert!(outbox.offer(event("hi", false)));
        let drained = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(drained, Ok(Ok(1))), "{drained:?}");
    }
}

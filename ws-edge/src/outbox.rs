//! The send side of one connection: its socket and a queue of what the socket has not
//! taken yet, shared by everything that delivers to it (chat feeds, user deliveries,
//! the connection's own replies, tungstenite's pongs and close frames).
//!
//! A frame with nothing queued ahead of it is written at once, by the task that
//! delivers it, with one non-blocking write: a fan-out to a hundred sockets is a
//! hundred writes from the chat's feed and wakes no connection task. Only what a socket
//! does not take (its send buffer is full) is queued; the connection's task then writes
//! the backlog, many frames per write, as the socket becomes writable.
//!
//! The queue is bounded in frames and in bytes. When a frame does not fit, queued typing
//! and presence frames are dropped first; if it still does not fit, the connection is
//! marked for closing with 4009 (slow consumer) and its queue is freed at once, except a
//! frame already partly written, whose rest must reach the socket before the close
//! frame. The queue gives its storage back once a backlog is written, so an idle
//! connection holds none.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use tokio::{io::Interest, net::TcpStream, sync::Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{close::CloseCode, metrics, wire::TextHeader};

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
    /// A frame tungstenite encoded itself (a pong, a close frame), written as it is.
    Control(Bytes),
}

impl Outbound {
    /// True for frames a slow client may miss.
    pub fn droppable(&self) -> bool {
        matches!(self, Outbound::Event { droppable: true, .. })
    }

    /// What the frame counts against the queue's byte budget.
    fn budget_len(&self) -> usize {
        match self {
            Outbound::Frame(text) | Outbound::Event { frame: text, .. } => text.len(),
            Outbound::Control(bytes) => bytes.len(),
        }
    }

    /// The frame's bytes on the wire: a header and the text, or tungstenite's bytes.
    fn segments(&self) -> (Option<TextHeader>, &[u8]) {
        match self {
            Outbound::Frame(text) | Outbound::Event { frame: text, .. } => {
                (Some(TextHeader::new(text.len())), text.as_bytes())
            }
            Outbound::Control(bytes) => (None, bytes),
        }
    }

    fn wire_len(&self) -> usize {
        let (header, body) = self.segments();
        header.map_or(0, |h| h.as_bytes().len()) + body.len()
    }

    /// Records the delivery time of the one timed copy of an event, once written.
    fn delivered(&self) {
        if let Outbound::Event { persisted_at_micros: Some(persisted_at), .. } = self {
            let now = chrono::Utc::now().timestamp_micros();
            metrics::DELIVERY_SECONDS.observe((now - persisted_at).max(0) as f64 / 1e6);
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

/// Frames handed to the kernel in one vectored write (two slices each).
const FRAMES_PER_WRITE: usize = 32;

/// Queue storage, in frames, above which a written-out backlog's storage is freed.
const STORAGE_KEPT: usize = 16;

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Outbound>,
    /// Bytes of the first frame already written.
    first_sent: usize,
    bytes: usize,
    /// Set once: the close code the connection is to be closed with.
    closing: Option<CloseCode>,
    /// A write failed: the peer is gone.
    broken: bool,
    /// Nothing is written yet: the connection is registered (so deliveries arrive)
    /// but its `hello`, which must come first, is not sent yet.
    held: bool,
}

/// What the connection's task is to do after writing the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Everything is written.
    Written,
    /// The socket takes no more for now: wait until it is writable.
    Blocked,
    /// Everything is written and the connection is to be closed with this code.
    Closing(CloseCode),
    /// The socket failed.
    Broken,
}

/// One connection's send side.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    wake: Notify,
    limits: QueueLimits,
    /// `None` only in unit tests of the queue, where nothing is ever written.
    socket: Option<Arc<TcpStream>>,
}

impl Outbox {
    /// The send side of `socket`, holding what is offered until [`Outbox::release`]
    /// puts the first frame in front of it.
    pub fn new(limits: QueueLimits, socket: Arc<TcpStream>) -> Self {
        let queue = Queue { held: true, ..Queue::default() };
        Outbox { queue: Mutex::new(queue), wake: Notify::new(), limits, socket: Some(socket) }
    }

    /// Sends `first` (the `hello`) ahead of everything offered while held, and from
    /// then on writes as usual; the connection's task writes the held backlog.
    pub fn release(&self, first: Outbound) {
        let mut queue = self.lock();
        if !queue.held {
            return;
        }
        queue.held = false;
        if queue.frames.is_empty() {
            self.write_first(&mut queue, first);
            return;
        }
        queue.bytes += first.budget_len();
        queue.frames.push_front(first);
        drop(queue);
        self.wake.notify_one();
    }

    /// Forgets what was held: the connection is refused before its `hello`.
    pub fn discard_held(&self) {
        let mut queue = self.lock();
        if queue.held {
            queue.frames = VecDeque::new();
            queue.bytes = 0;
            queue.held = false;
        }
    }

    /// A queue without a socket, which keeps everything offered.
    #[cfg(test)]
    pub fn unattached(limits: QueueLimits) -> Self {
        Outbox { queue: Mutex::default(), wake: Notify::new(), limits, socket: None }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a frame, or queues what the socket does not take. Returns false when it
    /// was dropped, the connection is closing or its socket failed.
    pub fn offer(&self, outbound: Outbound) -> bool {
        let queue = self.lock();
        if queue.closing.is_some() || queue.broken {
            return false;
        }
        self.enqueue(queue, outbound)
    }

    /// Queues a frame tungstenite encoded (a pong, or the close frame or its reply).
    /// It is refused only when the socket failed, and counts against the queue's
    /// bounds unless the connection is closing: a client that pings without reading
    /// overflows like any other.
    pub fn offer_control(&self, bytes: Bytes) -> io::Result<()> {
        let mut queue = self.lock();
        if queue.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let outbound = Outbound::Control(bytes);
        let backlog = !queue.frames.is_empty() || queue.held;
        if queue.closing.is_some() && backlog {
            // The close frame goes behind the backlog whatever its size.
            queue.bytes += outbound.budget_len();
            queue.frames.push_back(outbound);
        } else {
            self.enqueue(queue, outbound);
        }
        Ok(())
    }

    /// Writes `outbound` now when nothing is ahead of it, else queues it within the
    /// bounds (dropping typing and presence first, then closing with 4009).
    fn enqueue(&self, mut queue: MutexGuard<'_, Queue>, outbound: Outbound) -> bool {
        if queue.frames.is_empty() && !queue.held {
            return self.write_first(&mut queue, outbound);
        }
        let len = outbound.budget_len();
        if !self.fits(&queue, len) {
            if outbound.droppable() {
                metrics::DROPPED_QUEUE_FULL.inc();
                return false;
            }
            Self::drop_droppable(&mut queue);
            if !self.fits(&queue, len) {
                self.overflow(queue);
                return false;
            }
        }
        queue.bytes += len;
        queue.frames.push_back(outbound);
        true
    }

    /// The path of nearly every delivery: nothing is queued, so the frame is written
    /// now and only its unwritten rest, if any, is queued for the connection's task.
    fn write_first(&self, queue: &mut Queue, outbound: Outbound) -> bool {
        let (header, body) = outbound.segments();
        let header = header.as_ref().map_or(&[][..], TextHeader::as_bytes);
        let wire_len = header.len() + body.len();
        let written = match &self.socket {
            Some(socket) => write_now(socket, &[IoSlice::new(header), IoSlice::new(body)]),
            None => Ok(0),
        };
        match written {
            Ok(n) if n == wire_len => {
                outbound.delivered();
                true
            }
            Ok(n) => {
                queue.first_sent = n;
                queue.bytes = outbound.budget_len();
                queue.frames.push_back(outbound);
                self.wake.notify_one();
                true
            }
            Err(_) => {
                queue.broken = true;
                self.wake.notify_one();
                false
            }
        }
    }

    fn fits(&self, queue: &Queue, len: usize) -> bool {
        queue.frames.is_empty()
            || (queue.frames.len() < self.limits.max_frames && queue.bytes + len <= self.limits.max_bytes)
    }

    /// The queue overflowed: keep only a partly written frame, and close with 4009.
    fn overflow(&self, mut queue: MutexGuard<'_, Queue>) {
        metrics::DROPPED_SLOW_CONSUMER.inc();
        let partly_written = match queue.first_sent {
            0 => None,
            _ => queue.frames.pop_front(),
        };
        let first_sent = queue.first_sent;
        *queue = Queue { closing: Some(CloseCode::SlowConsumer), ..Queue::default() };
        if let Some(frame) = partly_written {
            queue.first_sent = first_sent;
            queue.bytes = frame.budget_len();
            queue.frames.push_back(frame);
        }
        drop(queue);
        self.wake.notify_one();
    }

    fn drop_droppable(queue: &mut Queue) {
        let before = queue.frames.len();
        let keep_first = queue.first_sent > 0;
        let mut index = 0;
        queue.frames.retain(|frame| {
            index += 1;
            (keep_first && index == 1) || !frame.droppable()
        });
        let dropped = before - queue.frames.len();
        if dropped > 0 {
            metrics::DROPPED_QUEUE_FULL.inc_by(dropped as u64);
            queue.bytes = queue.frames.iter().map(Outbound::budget_len).sum();
        }
    }

    /// Asks the connection to close with `code` after what is queued (the first code
    /// asked for wins).
    pub fn close(&self, code: CloseCode) {
        let mut queue = self.lock();
        queue.closing.get_or_insert(code);
        drop(queue);
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Writes as much of the backlog as the socket takes, many frames per write.
    pub fn write_backlog(&self) -> Backlog {
        let mut queue = self.lock();
        while !queue.frames.is_empty() && !queue.broken && !queue.held {
            let Some(socket) = &self.socket else { return Backlog::Blocked };
            match write_some(socket, &mut queue) {
                Ok(true) => {}
                Ok(false) => return Backlog::Blocked,
                Err(_) => {
                    queue.broken = true;
                    queue.frames = VecDeque::new();
                }
            }
        }
        if queue.frames.capacity() > STORAGE_KEPT {
            queue.frames = VecDeque::new();
        }
        match (queue.broken, queue.closing) {
            (true, _) => Backlog::Broken,
            (false, Some(code)) => Backlog::Closing(code),
            (false, None) => Backlog::Written,
        }
    }

    /// Resolves when the socket may take more bytes.
    pub async fn writable(&self) -> io::Result<()> {
        match &self.socket {
            Some(socket) => socket.writable().await,
            None => std::future::pending().await,
        }
    }

    /// Resolves when something was queued, a close asked for or a write failed since
    /// the last call.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }

    /// Ends the connection's sending (a TCP FIN), whoever still holds the outbox.
    pub fn shut_down(&self) {
        if let Some(socket) = &self.socket {
            let _ = socket2::SockRef::from(socket.as_ref()).shutdown(std::net::Shutdown::Write);
        }
    }
}

/// One non-blocking vectored write; `Ok(0)` when the socket takes nothing now. It is a
/// `sendmsg`, not the `writev` of `try_write_vectored`: a socket's `writev` goes
/// through the file layer (position lock included), about a tenth of the edge's time
/// per delivery in a profile. `try_io` keeps tokio's readiness right either way.
fn write_now(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        let sent = socket.try_io(Interest::WRITABLE, || socket2::SockRef::from(socket).send_vectored(slices));
        return match sent {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Err(error),
        };
    }
}

/// Writes the first frames of the queue with one system call and drops what was
/// written. Returns false when the socket took nothing.
fn write_some(socket: &TcpStream, queue: &mut Queue) -> io::Result<bool> {
    let count = queue.frames.len().min(FRAMES_PER_WRITE);
    let headers: Vec<Option<TextHeader>> = queue.frames.iter().take(count).map(|f| f.segments().0).collect();
    let mut slices = Vec::with_capacity(count * 2);
    let mut skip = queue.first_sent;
    for (frame, header) in queue.frames.iter().take(count).zip(&headers) {
        let header = header.as_ref().map_or(&[][..], TextHeader::as_bytes);
        for segment in [header, frame.segments().1] {
            let from = skip.min(segment.len());
            skip -= from;
            if from < segment.len() {
                slices.push(IoSlice::new(&segment[from..]));
            }
        }
    }
    let written = write_now(socket, &slices)?;
    if written == 0 {
        return Ok(false);
    }
    let mut left = queue.first_sent + written;
    while let Some(front) = queue.frames.front() {
        let len = front.wire_len();
        if left < len {
            break;
        }
        left -= len;
        if let Some(done) = queue.frames.pop_front() {
            queue.bytes -= done.budget_len().min(queue.bytes);
            done.delivered();
        }
    }
    queue.first_sent = left;
    Ok(true)
}

/// One connection as the registry sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub conn_id: Arc<str>,
    /// Its send side.
    pub outbox: Arc<Outbox>,
}

impl ConnHandle {
    /// Writes or queues a frame; see [`Outbox::offer`].
    pub fn offer(&self, outbound: Outbound) -> bool {
        self.outbox.offer(outbound)
    }

    /// Writes or queues a reply of the edge.
    pub fn reply(&self, text: String) -> bool {
        self.outbox.offer(Outbound::Frame(text.into()))
    }
}

#[cfg(test)]
mod tests;

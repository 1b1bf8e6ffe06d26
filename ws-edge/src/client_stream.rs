//! What tungstenite reads and writes through: reads come from the socket, writes (the
//! pongs, close frames and close replies tungstenite makes itself; the edge's own
//! frames go through the [`Outbox`] directly) join the connection's outbox, so they
//! are ordered with every other frame on the socket.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::outbox::Outbox;

/// The socket as tungstenite sees it.
pub struct ClientStream {
    socket: Arc<TcpStream>,
    outbox: Arc<Outbox>,
}

impl ClientStream {
    /// Reads from `socket`, writes into `outbox` (which writes to the same socket).
    pub fn new(socket: Arc<TcpStream>, outbox: Arc<Outbox>) -> Self {
        ClientStream { socket, outbox }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            match self.socket.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale; poll again so that a waker is registered.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.outbox.offer_control(Bytes::copy_from_slice(buf)).map(|()| buf.len()))
    }

    /// The outbox writes on its own; waiting for the bytes to reach the socket is the
    /// connection's business (it does so, with a deadline, before closing).
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

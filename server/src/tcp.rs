//! Every TCP connection, before and beside the WebSocket: a socket must
//! finish its HTTP request within the handshake timeout, a socket that has
//! been answered is closed after the idle timeout without a byte from its
//! peer, and the number of open sockets is capped. Without this, a peer
//! could hold sockets that never send a request (or send one a byte at a
//! time): they would never reach the WebSocket layer, where the connection
//! cap, authentication timeout and idle timeout apply.
//!
//! "Answered" means the relay has written something: hyper writes nothing
//! before a request's headers are complete, so the first write ends the
//! handshake. After it, the socket carries either further HTTP requests or,
//! once upgraded, the WebSocket, whose own (shorter) idle timeout closes it
//! with a reason first.

use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The bounds a [`GuardedListener`] applies.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Time from accepting a socket to the relay's first answer on it.
    pub handshake_timeout: Duration,
    /// Time without a byte from an answered socket's peer.
    pub idle_timeout: Duration,
    /// Sockets not answered yet; more are closed as they arrive.
    pub max_pending: usize,
    /// Sockets in all; more are closed as they arrive.
    pub max_open: usize,
}

/// How many sockets are open, and how many of them are still in their
/// handshake.
#[derive(Debug, Default)]
pub struct Counts {
    open: AtomicUsize,
    pending: AtomicUsize,
}

impl Counts {
    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Sockets not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// A TCP listener that hands out [`GuardedStream`]s.
pub struct GuardedListener {
    inner: TcpListener,
    bounds: Bounds,
    counts: Arc<Counts>,
}

impl GuardedListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, bounds: Bounds) -> Self {
        Self { inner, bounds, counts: Arc::default() }
    }

    /// The live counts, for metrics.
    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }
}

impl Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the like: let it pass.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let counts = &self.counts;
            if counts.open() >= self.bounds.max_open || counts.pending() >= self.bounds.max_pending
            {
                // Closed at once: nothing is read, so nothing is spent.
                tracing::debug!("a connection over the socket bounds was closed");
                drop(stream);
                continue;
            }
            counts.open.fetch_add(1, Ordering::Relaxed);
            counts.pending.fetch_add(1, Ordering::Relaxed);
            let deadline = Box::pin(tokio::time::sleep(self.bounds.handshake_timeout));
            let stream = GuardedStream {
                inner: stream,
                deadline,
                last_read: Instant::now(),
                idle: self.bounds.idle_timeout,
                answered: false,
                counts: Arc::clone(counts),
            };
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One accepted socket, with its deadline; see the module documentation.
pub struct GuardedStream {
    inner: TcpStream,
    /// When reading gives up: the handshake deadline until the first
    /// answer, then the idle deadline, moved on (lazily) by bytes read.
    deadline: Pin<Box<Sleep>>,
    /// When the last byte was read after the first answer.
    last_read: Instant,
    idle: Duration,
    /// Whether the relay has written to the socket.
    answered: bool,
    counts: Arc<Counts>,
}

impl GuardedStream {
    /// The TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    fn answer(&mut self) {
        if !self.answered {
            self.answered = true;
            self.counts.pending.fetch_sub(1, Ordering::Relaxed);
            self.last_read = Instant::now();
            self.deadline.as_mut().reset(self.last_read + self.idle);
        }
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        if !self.answered {
            self.counts.pending.fetch_sub(1, Ordering::Relaxed);
        }
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // A trickle during the handshake does not buy more time. After
                // it, only the time of the last byte is noted: moving the timer
                // itself on every read would cost more than the read.
                if self.answered && buf.filled().len() > before {
                    self.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => loop {
                if self.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = self.last_read + self.idle;
                if self.answered && due > Instant::now() {
                    // Bytes came since the timer was set: set it again.
                    self.deadline.as_mut().reset(due);
                    continue;
                }
                let what = if self.answered { "idle" } else { "handshake" };
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the connection's {what} timeout passed"),
                )));
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.answer();
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.answer();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

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
//! with a reason first. (Each later request head has its own deadline,
//! kept by hyper: see [`crate::serve`].) Over TLS, the handshake's own
//! records are no answer: the relay must write above TLS, so a peer that
//! finishes the TLS handshake and then falls silent stays pending, under
//! the same caps and handshake deadline as a silent plain socket.
//!
//! One address may hold only so many sockets, and so many in their
//! handshake, so that one peer cannot take the whole budget from everyone
//! else. Trusted reverse proxies are exempt: every client arrives through
//! them.

use crate::proxies::{IpNet, is_trusted};
use axum::serve::Listener;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The bounds a [`GuardedListener`] applies.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Time from accepting a socket to the relay's first answer on it.
    pub handshake_timeout: Duration,
    /// Time without a byte from an answered socket's peer.
    pub idle_timeout: Duration,
    /// Sockets not answered yet; more are closed as they arrive.
    pub max_pending: usize,
    /// Sockets in all; more are closed as they arrive.
    pub max_open: usize,
    /// Sockets from one address not answered yet.
    pub max_pending_per_address: usize,
    /// Sockets from one address in all.
    pub max_open_per_address: usize,
    /// Addresses the per-address caps do not apply to.
    pub exempt: Vec<IpNet>,
}

/// How many sockets are open, and how many of them are still in their
/// handshake.
#[derive(Debug, Default)]
pub struct Counts {
    open: AtomicUsize,
    pending: AtomicUsize,
    /// Per address: (open, pending). Only addresses with a socket open.
    by_address: Mutex<HashMap<IpAddr, (usize, usize)>>,
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

    /// Sockets open now from `address`, and how many of them are pending.
    pub fn from(&self, address: IpAddr) -> (usize, usize) {
        self.by_address().get(&address).copied().unwrap_or_default()
    }

    fn by_address(&self) -> MutexGuard<'_, HashMap<IpAddr, (usize, usize)>> {
        // Plain counts: usable after a panic elsewhere.
        self.by_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new socket from `address` (`None`: exempt from the
    /// per-address caps), unless that would cross a bound.
    fn admit(&self, address: Option<IpAddr>, bounds: &Bounds) -> bool {
        if self.open() >= bounds.max_open || self.pending() >= bounds.max_pending {
            return false;
        }
        if let Some(address) = address {
            let mut by_address = self.by_address();
            let (open, pending) = by_address.entry(address).or_default();
            if *open >= bounds.max_open_per_address || *pending >= bounds.max_pending_per_address {
                if *open == 0 {
                    by_address.remove(&address);
                }
                return false;
            }
            *open += 1;
            *pending += 1;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        self.pending.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn answered(&self, address: Option<IpAddr>) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = address
            && let Some((_, pending)) = self.by_address().get_mut(&address)
        {
            *pending = pending.saturating_sub(1);
        }
    }

    fn closed(&self, address: Option<IpAddr>, answered: bool) {
        if !answered {
            self.answered(address);
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = address {
            let mut by_address = self.by_address();
            if let Some((open, _)) = by_address.get_mut(&address) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    by_address.remove(&address);
                }
            }
        }
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
            let address = Some(addr.ip()).filter(|ip| !is_trusted(&self.bounds.exempt, *ip));
            if !counts.admit(address, &self.bounds) {
                // Closed at once: nothing is read, so nothing is spent.
                tracing::debug!(peer = %addr.ip(), "a connection over the socket bounds was closed");
                drop(stream);
                continue;
            }
            let deadline = Box::pin(tokio::time::sleep(self.bounds.handshake_timeout));
            let stream = GuardedStream {
                inner: stream,
                deadline,
                last_read: Instant::now(),
                idle: self.bounds.idle_timeout,
                answered: false,
                answer_on_write: true,
                address,
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
    /// Whether the relay has answered on the socket.
    answered: bool,
    /// Whether any write is an answer (plain sockets); see [`Self::defer_answer`].
    answer_on_write: bool,
    /// The peer, as counted against the per-address caps (`None`: exempt).
    address: Option<IpAddr>,
    counts: Arc<Counts>,
}

impl GuardedStream {
    /// The TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    /// Writes no longer count as an answer: the layer above (TLS) calls
    /// [`Self::answer`] when it writes for the layer above it.
    pub fn defer_answer(&mut self) {
        self.answer_on_write = false;
    }

    /// Ends the handshake: the idle deadline applies from now on.
    pub fn answer(&mut self) {
        if !self.answered {
            self.answered = true;
            self.counts.answered(self.address);
            self.last_read = Instant::now();
            self.deadline.as_mut().reset(self.last_read + self.idle);
        }
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.counts.closed(self.address, self.answered);
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
        if self.answer_on_write {
            self.answer();
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.answer_on_write {
            self.answer();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_pending: 100,
            max_open: 100,
            max_pending_per_address: 2,
            max_open_per_address: 3,
            exempt: vec!["127.0.0.9".parse().unwrap()],
        }
    }

    #[test]
    fn one_address_cannot_take_the_whole_budget() {
        let counts = Counts::default();
        let b = bounds();
        let (one, two): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(counts.admit(Some(one), &b));
        assert!(counts.admit(Some(one), &b));
        assert!(!counts.admit(Some(one), &b), "two pending from one address at most");
        assert!(counts.admit(Some(two), &b), "another address is not held up");
        counts.answered(Some(one));
        assert!(counts.admit(Some(one), &b));
        counts.answered(Some(one));
        counts.answered(Some(one));
        assert!(!counts.admit(Some(one), &b), "three open from one address at most");
        assert_eq!(counts.from(one), (3, 0));
        counts.closed(Some(one), true);
        assert!(counts.admit(Some(one), &b));
        for _ in 0..50 {
            assert!(counts.admit(None, &b), "a trusted proxy is exempt");
        }
        assert_eq!(counts.open(), 54);
        assert_eq!(counts.from(one), (3, 1));
        counts.closed(Some(one), true);
        counts.closed(Some(one), true);
        counts.closed(Some(one), false);
        assert_eq!(counts.from(one), (0, 0));
        assert!(counts.by_address().get(&one).is_none(), "a closed address is forgotten");
    }
}

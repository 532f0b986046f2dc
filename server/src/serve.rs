//! The accept loop: every socket from [`crate::tcp::GuardedListener`] is
//! served by hyper (HTTP/1.1, upgradable to the WebSocket), over TLS when
//! the relay serves it, with a deadline on the TLS handshake and on each
//! request head, until shutdown.
//!
//! axum's own `serve` gives hyper no timer, so hyper could not time a
//! request head: a peer that was answered once could keep its socket by
//! trickling the next request a byte at a time. Here each head, the first
//! and every later one on a kept-alive socket, must arrive whole within the
//! handshake timeout, counted from when hyper starts waiting for it.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

use crate::tcp::{GuardedListener, GuardedStream};
use crate::tls::Tls;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets each socket finish the request it is in, and returns
/// once they have. (Upgraded WebSockets are no longer hyper's by then; the
/// relay drains them itself.)
pub async fn serve(
    mut listener: GuardedListener,
    app: Router,
    head_timeout: Duration,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = watch::channel(false);
    let mut sockets = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Small frames must leave at once: with Nagle's algorithm, an answer
        // waits for the peer's delayed ACK (tens of milliseconds on Linux).
        if let Err(error) = stream.tcp().set_nodelay(true) {
            tracing::warn!(%error, "cannot disable Nagle's algorithm");
        }
        // Reap finished sockets as we go, so the set stays small.
        while sockets.try_join_next().is_some() {}
        let app = app.clone();
        let stopped = stopped.clone();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        sockets.spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_socket(stream, app, peer, head_timeout, stopped).await;
            };
            if let Some(stream) = handshake(acceptor, stream, head_timeout).await {
                serve_socket(TlsSocket(stream), app, peer, head_timeout, stopped).await;
            }
        });
    }
    let _ = stop.send(true);
    while sockets.join_next().await.is_some() {}
}

/// The TLS handshake, within `timeout`; `None` if it failed.
async fn handshake(
    acceptor: TlsAcceptor,
    mut stream: GuardedStream,
    timeout: Duration,
) -> Option<TlsStream<GuardedStream>> {
    stream.defer_answer();
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Serves one socket (plain or TLS) until it ends or the relay stops.
async fn serve_socket<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: IO,
    app: Router,
    peer: std::net::SocketAddr,
    head_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(head_timeout);
    let mut connection =
        pin!(builder.serve_connection(TokioIo::new(stream), service).with_upgrades());
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::trace!(%error, "socket ended");
            }
            return;
        }
        _ = stopped.wait_for(|s| *s) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// A TLS socket whose first write of application data is its answer (see
/// [`crate::tcp`]): a peer that completes the TLS handshake and says
/// nothing more stays in its handshake, under the same caps.
struct TlsSocket(TlsStream<GuardedStream>);

impl TlsSocket {
    fn answered(&mut self) -> Pin<&mut TlsStream<GuardedStream>> {
        self.0.get_mut().0.answer();
        Pin::new(&mut self.0)
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.answered().poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.answered().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

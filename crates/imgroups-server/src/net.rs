//! Connections (issue 16): how many a listener holds at once, how long one may sit idle, how
//! long the HTTP/1 request head may take, and how long a shutdown waits for them.
//!
//! Both listeners accept through [`Capped`] connections: a semaphore permit per connection,
//! taken at accept (a connection over the cap is closed at once, before anything is read),
//! and an idle timer reset by every byte read or written. HTTP is served by hyper directly
//! rather than `axum::serve`, which has no header read timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connection limits of one listener. Each is a `serve` flag (README, "Limits").
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Most connections open at once, per listener; more are closed at accept.
    pub max_connections: usize,
    /// HTTP/1: the request head must arrive within this, or the connection is closed.
    pub header_timeout: Duration,
    /// A connection that reads and writes nothing for this long is closed. Longer than the
    /// heartbeat and the HTTP/2 keepalive interval, so open streams never count as idle.
    pub idle_timeout: Duration,
    /// HTTP/2: most concurrent streams (calls) per connection.
    pub max_streams_per_connection: u32,
    /// HTTP/2: flow-control window per stream and per connection: what a peer may send
    /// before the server reads it.
    pub stream_window: u32,
    /// On shutdown, how long in-flight calls and open connections get before they are
    /// dropped (a client that ignores GOAWAY cannot hold the server).
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_streams_per_connection: 1024,
            stream_window: 256 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// One accepted connection: holds its listener's permit and closes when idle too long.
pub(crate) struct Capped {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Capped {
    fn touch(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for Capped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Capped {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Accepts on `listener` forever, as [`Capped`] connections with TCP_NODELAY (Nagle + delayed
/// ACK would stall small answers ~40 ms). Over the cap a connection is closed at once.
pub(crate) fn accept(
    listener: TcpListener,
    limits: &ConnLimits,
    name: &'static str,
) -> impl Stream<Item = io::Result<Capped>> + Send + 'static {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let idle = limits.idle_timeout;
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await;
        Some((accepted, listener))
    })
    .filter_map(move |accepted| {
        let permits = permits.clone();
        async move {
            let (tcp, _) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(error = %err, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return None;
                }
            };
            let Ok(permit) = permits.try_acquire_owned() else {
                tracing::warn!(
                    listener = name,
                    "connection limit reached: closing a new connection"
                );
                return None;
            };
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
            Some(Ok(Capped {
                io: tcp,
                _permit: permit,
                idle,
                deadline: Box::pin(tokio::time::sleep(idle)),
            }))
        }
    })
}

/// Serves `router` over HTTP/1 and HTTP/2 on `listener` until `shutdown` resolves, then lets
/// open connections finish for at most [`ConnLimits::shutdown_grace`].
///
/// With `tls`, each connection's handshake runs in its own task (a slow or silent client holds
/// up no other), within [`crate::tls::HANDSHAKE_TIMEOUT`], on the already capped connection.
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        .initial_stream_window_size(limits.stream_window)
        .initial_connection_window_size(limits.stream_window)
        .enable_connect_protocol();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let incoming = accept(listener, &limits, "http");
    futures::pin_mut!(incoming);
    futures::pin_mut!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = incoming.next() => conn,
            () = &mut shutdown => break,
        };
        let Some(Ok(conn)) = conn else { continue };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let Some(acceptor) = &tls else {
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(conn), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "http connection ended with an error");
                }
            });
            continue;
        };
        let handshake = acceptor.accept(conn);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("tls handshake timed out");
                    return;
                }
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, "https connection ended with an error");
            }
        });
    }
    bounded(graceful.shutdown(), limits.shutdown_grace, "http").await;
    Ok(())
}

/// Runs `served` (a server that drains after `stop`) but gives up on it (`None`) `grace` after
/// `stop`: a client that ignores GOAWAY and keeps its connection cannot hold the shutdown.
pub(crate) async fn within_grace<T>(
    served: impl Future<Output = T>,
    stop: tokio_util::sync::CancellationToken,
    grace: Duration,
    name: &str,
) -> Option<T> {
    let expired = async {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = served => Some(result),
        () = expired => {
            tracing::warn!(
                listener = name,
                grace_ms = grace.as_millis() as u64,
                "connections still open after the shutdown grace period: dropping them"
            );
            None
        }
    }
}

/// Waits for `drained` at most `grace`; after that, what is still open is abandoned (its
/// tasks end with the runtime, or when their peers go).
pub(crate) async fn bounded(drained: impl Future<Output = ()>, grace: Duration, name: &str) {
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            listener = name,
            grace_ms = grace.as_millis() as u64,
            "connections still open after the shutdown grace period: dropping them"
        );
    }
}

//! Connections (issue 16): how many a listener holds at once, how long one may sit idle, how
//! long the HTTP/1 request head may take, and how long a shutdown waits for them.
//!
//! Both listeners accept through [`Capped`] connections: a semaphore permit per connection,
//! taken at accept (a connection over the cap is closed at once, before anything is read),
//! and an idle timer reset by every byte read or written. Both are served by hyper directly
//! ([`serve`], one HTTP/2 configuration for both): `axum::serve` has no header read timeout,
//! and tonic's server no setting for the HTTP/2 send buffer per stream (issue 26).
//!
//! Before hyper sees an HTTP/1 connection, [`first_head`] reads its first request head: hyper
//! answers a head it cannot parse, or one over its buffer, itself with an empty 400/431 and
//! offers no hook to change that, while docs/http.md promises our JSON error body for every
//! error. So that head is checked here (size, syntax, the framing headers hyper would refuse)
//! and a bad one is answered by us; a good one is handed to hyper unchanged ([`Replay`]).
//! Only the head is read: a body is never copied, and an HTTP/2 connection passes at its
//! preface.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use imgroups_core::{Error, ErrorKind, Reason};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connection limits of one listener. Each is a `serve` flag (docs/operating.md, "Limits").
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
    /// Both listeners, HTTP/2: bytes of response data the server buffers per stream beyond
    /// what the socket takes. A client that advertises a huge window and then stops reading
    /// could otherwise park hyper's default (~400 KiB) in every one of its streams.
    pub stream_send_buffer: usize,
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
            stream_send_buffer: 4 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// HTTP/2, both listeners: the largest header list (decoded) of one request. HPACK decoding
/// stops there and the stream is refused, so one request costs at most this much decoding.
pub(crate) const H2_MAX_HEADER_LIST: u32 = 16 * 1024;
/// HTTP/2, both listeners: streams a peer may open and reset before the server has accepted
/// them (the "rapid reset" bound); beyond it the connection is closed.
pub(crate) const H2_MAX_PENDING_RESETS: usize = 20;
/// HTTP/2, both listeners: streams the server may reset for a peer's protocol errors before
/// it closes the connection.
pub(crate) const H2_MAX_LOCAL_RESETS: usize = 256;

/// File descriptors kept for everything but client connections: the database and its
/// journal, pooled read connections, PostgreSQL and webhook connections, the helper, logs.
const FD_HEADROOM: u64 = 128;

/// Fewest connections per listener the clamp leaves, however low the open-file limit.
const MIN_CONNECTIONS: usize = 16;

/// `limits` with the connection cap made to fit the process's open-file limit
/// (`RLIMIT_NOFILE`): both listeners at their cap, plus [`FD_HEADROOM`]. The soft limit is
/// first raised toward the hard one as far as the cap needs; what still does not fit lowers
/// the cap, logged once with the reason. Without this, with `nofile=256` and a cap of 4096,
/// idle peers could take every descriptor: the store could not open a file, and writes timed
/// out while `accept` failed in a loop.
pub(crate) fn fit_open_files(mut limits: ConnLimits) -> ConnLimits {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let wanted = (limits.max_connections as u64)
        .saturating_mul(2)
        .saturating_add(FD_HEADROOM);
    let mut nofile = getrlimit(Resource::Nofile);
    if nofile.current.is_some_and(|current| current < wanted) {
        let raised = nofile.maximum.map_or(wanted, |hard| hard.min(wanted));
        let new = Rlimit {
            current: Some(raised),
            maximum: nofile.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                tracing::info!(
                    open_files = raised,
                    "raised the open-file limit for the connection cap"
                );
                nofile = getrlimit(Resource::Nofile);
            }
            Err(err) => tracing::debug!(error = %err, "cannot raise the open-file limit"),
        }
    }
    let Some(current) = nofile.current else {
        return limits;
    };
    let fits = usize::try_from(current.saturating_sub(FD_HEADROOM) / 2)
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS);
    if fits < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            max_connections = fits,
            open_files = current,
            "the connection cap is lowered to fit the open-file limit (RLIMIT_NOFILE, `ulimit -n`): \
             two listeners at the cap and {FD_HEADROOM} descriptors for the store and the rest; \
             raise the limit to keep the configured cap"
        );
        limits.max_connections = fits;
    }
    limits
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

/// Log budgets of what a peer can cause at will: at most one line a second each.
static ACCEPT_FAILED: crate::observe::LogBudget = crate::observe::LogBudget::new();
static OVER_CAP: crate::observe::LogBudget = crate::observe::LogBudget::new();

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
                    // EMFILE and friends: back off a little instead of spinning, and say so at
                    // most once a second.
                    if let Some(suppressed) = ACCEPT_FAILED.admit() {
                        tracing::warn!(error = %err, listener = name, suppressed, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return None;
                }
            };
            let Ok(permit) = permits.try_acquire_owned() else {
                if let Some(suppressed) = OVER_CAP.admit() {
                    tracing::warn!(
                        listener = name,
                        suppressed,
                        "connection limit reached: closing a new connection"
                    );
                }
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

/// What a listener speaks: the HTTP/JSON listener takes HTTP/1 and HTTP/2 (with our JSON
/// errors for a bad HTTP/1 head); the gRPC one HTTP/2 only, with keepalive pings, and a short
/// JSON answer to an HTTP/1 request rather than a bare close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http,
    Grpc,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// The hyper connection builder of a listener: the same HTTP/2 limits on both (streams,
/// windows, header list, resets and the per-stream send buffer, so that a client that
/// advertises a huge window and stops reading parks at most `stream_send_buffer` per stream
/// on either listener).
fn connection_builder(
    limits: &ConnLimits,
    protocol: Protocol,
) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    if protocol == Protocol::Grpc {
        // gRPC is HTTP/2 only; HTTP/1 heads were answered by `checked_head` already, so
        // hyper need not sniff the version.
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Later request heads get the same bound as the first (`MAX_HEAD_BYTES`), and a
        // response the client does not read parks at most this much in hyper's write buffer.
        .max_buf_size(MAX_HEAD_BYTES);
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        .initial_stream_window_size(limits.stream_window)
        .initial_connection_window_size(limits.stream_window)
        .max_send_buf_size(limits.stream_send_buffer.clamp(1024, u32::MAX as usize))
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS);
    match protocol {
        // WebSocket over HTTP/2 (RFC 8441) for the console's routes.
        Protocol::Http => {
            http2.enable_connect_protocol();
        }
        // Clients (the official SDK among them) ping every 30 s; answer, and ping idle
        // connections ourselves so dead peers are noticed. (What tonic's builder was given.)
        Protocol::Grpc => {
            http2
                .keep_alive_interval(Some(Duration::from_secs(60)))
                .keep_alive_timeout(Duration::from_secs(20));
        }
    }
    builder
}

/// Serves `service` as `protocol` on `listener` until `shutdown` resolves, then lets open
/// connections finish for at most [`ConnLimits::shutdown_grace`]. Both listeners are served
/// here, by hyper directly: tonic's server has no setting for the HTTP/2 send buffer, and
/// `axum::serve` no header read timeout.
///
/// With `tls`, each connection's handshake runs in its own task (a slow or silent client holds
/// up no other), within [`crate::tls::HANDSHAKE_TIMEOUT`], on the already capped connection.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    protocol: Protocol,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::TokioIo;

    let name = protocol.name();
    let builder = connection_builder(&limits, protocol);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Boxed rather than pinned on the stack so that it can be dropped when the loop ends:
    // that closes the listening socket at once, and new clients are refused rather than left
    // waiting through the grace period.
    let mut incoming = Box::pin(accept(listener, &limits, name));
    futures::pin_mut!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = incoming.next() => conn,
            () = &mut shutdown => break,
        };
        let Some(Ok(conn)) = conn else { continue };
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        // Everything from here on runs in the connection's own task: a slow or silent client
        // holds up no other.
        let Some(acceptor) = &tls else {
            tokio::spawn(async move {
                let Some(head) = checked_head(conn, header_timeout, protocol).await else {
                    return;
                };
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(head), service)
                    .into_owned();
                if let Err(err) = watcher.watch(connection).await {
                    tracing::debug!(error = %err, listener = name, "connection ended with an error");
                }
            });
            continue;
        };
        let handshake = acceptor.accept(conn);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, listener = name, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(listener = name, "tls handshake timed out");
                    return;
                }
            };
            let Some(head) = checked_head(tls, header_timeout, protocol).await else {
                return;
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(head), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, listener = name, "tls connection ended with an error");
            }
        });
    }
    drop(incoming);
    bounded(graceful.shutdown(), limits.shutdown_grace, name).await;
    Ok(())
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

// ------------------------------------------------------------------ the first request head

/// The largest first request head of an HTTP/1 connection (request line and headers); larger:
/// 431 with our JSON error body. Far above what clients send (browsers stay under 16 KiB), and
/// small enough that 4096 connections holding one cost little.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers in one request head, as hyper's default; more: 431.
const MAX_HEADERS: usize = 100;

/// What an HTTP/2 connection starts with (RFC 9113 §3.4): such a connection is hyper's.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What became of a connection's first bytes.
enum Head {
    /// A complete, acceptable head (and whatever followed it in the same reads), or an
    /// HTTP/2 preface: to be replayed to hyper.
    Good(Bytes),
    /// Refused with this status and error, answered by us.
    Bad(http::StatusCode, Error),
    /// The peer closed, or sent nothing more, before a head was complete.
    Gone,
}

/// Reads and checks the connection's first request head within `timeout` (the slowloris
/// bound, which hyper then applies to every later head), answers a bad one with the JSON
/// error body and closes; `None` when the connection is done. On the gRPC listener a good
/// HTTP/1 head is refused too (505, with a JSON body saying where HTTP/JSON is served): hyper
/// would only close the connection on it.
async fn checked_head<I>(mut io: I, timeout: Duration, protocol: Protocol) -> Option<Replay<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let head = match tokio::time::timeout(timeout, first_head(&mut io)).await {
        Ok(Ok(head)) => head,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "reading the first request head failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("the first request head did not arrive in time");
            return None;
        }
    };
    match head {
        Head::Good(read) if protocol == Protocol::Grpc && !read.starts_with(H2_PREFACE) => {
            let err = Error::new(
                ErrorKind::OperationNotSupported,
                "this is the gRPC listener: it speaks HTTP/2 only; HTTP/JSON is served on the \
                 HTTP listener",
            );
            refuse(io, http::StatusCode::HTTP_VERSION_NOT_SUPPORTED, &err).await;
            None
        }
        Head::Good(read) => Some(Replay { read, io }),
        Head::Bad(status, err) => {
            tracing::debug!(status = status.as_u16(), error = %err.message, "refused request head");
            refuse(io, status, &err).await;
            None
        }
        Head::Gone => None,
    }
}

/// Reads until the first head is complete, refused, or the peer goes. Each byte is searched
/// for the head's end once, and the head is parsed only when its request line has ended (so
/// a garbage line is answered at once, as hyper would) and when the head has ended, so a head
/// dripping in byte by byte costs linear time.
async fn first_head<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut searched = 0usize;
    let mut line_seen = false;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(
                (MAX_HEAD_BYTES + 1)
                    .saturating_sub(buf.len())
                    .min(16 * 1024),
            );
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(Head::Gone);
        }
        let seen = &buf[..buf.len().min(H2_PREFACE.len())];
        if H2_PREFACE.starts_with(seen) {
            if seen.len() == H2_PREFACE.len() {
                return Ok(Head::Good(buf.freeze()));
            }
            continue;
        }
        // The head ends at the first empty line: CRLF CRLF, or LF LF (httparse, like hyper,
        // accepts bare LFs). An early match only costs a parse that answers "partial".
        let from = searched.saturating_sub(2);
        let ended = buf[from..].windows(2).any(|w| w == b"\n\n")
            || buf[from..].windows(3).any(|w| w == b"\n\r\n");
        let line_ended = !line_seen && buf[from..].contains(&b'\n');
        line_seen |= line_ended;
        searched = buf.len();
        if !ended && !line_ended {
            if buf.len() > MAX_HEAD_BYTES {
                return Ok(too_large());
            }
            continue;
        }
        return Ok(match check_head(&buf) {
            Ok(Some(len)) if len > MAX_HEAD_BYTES => too_large(),
            Ok(Some(_)) => Head::Good(buf.freeze()),
            Ok(None) if buf.len() > MAX_HEAD_BYTES => too_large(),
            Ok(None) => continue,
            Err(bad) => bad,
        });
    }
}

fn too_large() -> Head {
    Head::Bad(
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Error::new(
            ErrorKind::TooLarge,
            format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
        )
        .because(Reason::TooLarge)
        .with("limit", MAX_HEAD_BYTES),
    )
}

/// The length of a complete head that hyper will accept, `None` while it is incomplete, or
/// the answer to one that it would refuse: what httparse refuses (with hyper's statuses), an
/// unparsable target, and the framing errors hyper checks (an invalid or conflicting
/// `content-length`, `transfer-encoding` in HTTP/1.0).
fn check_head(buf: &[u8]) -> Result<Option<usize>, Head> {
    let bad = |message: String| Head::Bad(http::StatusCode::BAD_REQUEST, Error::invalid(message));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Head::Bad(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Error::new(
                    ErrorKind::TooLarge,
                    format!("the request has more than {MAX_HEADERS} header fields"),
                )
                .because(Reason::TooLarge)
                .with("limit", MAX_HEADERS),
            ))
        }
        Err(err) => return Err(bad(format!("malformed HTTP/1 request head: {err}"))),
    };
    let target = req.path.unwrap_or_default();
    if http::Uri::try_from(target).is_err() {
        return Err(bad("malformed HTTP/1 request target".to_owned()));
    }
    // With transfer-encoding hyper ignores content-length, but still parses the ones before
    // it; checking them all refuses a little more than hyper, never less.
    let mut length: Option<u64> = None;
    for header in req.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if req.version == Some(0) {
                return Err(bad("transfer-encoding in an HTTP/1.0 request".to_owned()));
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (value, length) {
                (None, _) => return Err(bad("invalid content-length".to_owned())),
                (Some(v), Some(prev)) if v != prev => {
                    return Err(bad("conflicting content-length values".to_owned()))
                }
                (Some(v), _) => length = Some(v),
            }
        }
    }
    Ok(Some(len))
}

/// Answers a refused head with the JSON error body (no request id: there is no request) and
/// closes. The peer may still be sending: what it sends is read and dropped for a moment, so
/// the close does not reset the connection before the answer is read.
async fn refuse<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    status: http::StatusCode,
    err: &Error,
) {
    let body = crate::wire::error_body(err, "").to_string();
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    let written = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    };
    if tokio::time::timeout(Duration::from_secs(5), written)
        .await
        .is_err()
    {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 256 * 1024usize;
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A connection whose first bytes, already read, are read again first: how hyper gets the
/// head [`first_head`] checked. Writes go straight through.
pub(crate) struct Replay<I> {
    read: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.has_remaining() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read[..n]);
            this.read.advance(n);
            if this.read.is_empty() {
                // Free the read buffer now rather than with the connection.
                this.read = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head_of(bytes: &[u8]) -> Head {
        let mut io = bytes;
        first_head(&mut io).await.expect("read")
    }

    fn status(head: &Head) -> Option<u16> {
        match head {
            Head::Bad(status, _) => Some(status.as_u16()),
            Head::Good(_) | Head::Gone => None,
        }
    }

    #[tokio::test]
    async fn good_heads_and_the_http2_preface_pass_whole() {
        let request = b"POST /v1/x HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbody";
        let Head::Good(read) = head_of(request).await else {
            panic!("a good head");
        };
        assert_eq!(&read[..], &request[..], "what followed the head is kept");
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04";
        assert!(matches!(head_of(h2).await, Head::Good(_)));
        assert!(matches!(head_of(b"GET / HTTP/1.1\r\n").await, Head::Gone));
    }

    #[tokio::test]
    async fn bad_heads_get_hyper_s_statuses() {
        assert_eq!(status(&head_of(b"GET\x01 / HTTP/1.1\r\n").await), Some(400));
        assert_eq!(status(&head_of(b"GET / HTTP/2.0\r\n\r\n").await), Some(400));
        let te = b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(status(&head_of(te).await), Some(400));
        let cl = b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(status(&head_of(cl).await), Some(400));
        let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(status(&head_of(&big).await), Some(431));
    }
}

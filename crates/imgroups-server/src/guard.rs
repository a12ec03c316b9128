//! What a request must pass before its body is read (issue 16, "safe on an open network"):
//! the token, the account's request rate, the method's size limit and the body timeout; and
//! the caps on open event streams, per account and per token.
//!
//! Over gRPC this is [`GrpcGuarded`], a layer over the router of our three services: tonic
//! decodes a whole message before a method runs, so authenticating inside the method (as
//! before) let anyone make the server buffer 100 MiB per call. The caller it authenticates
//! reaches the method in the request's extensions ([`crate::api::Caller`]), so nothing is
//! authenticated twice. Over HTTP the same checks run in the `Authed` extractor, which axum
//! runs before the body extractor.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use imgroups_core::{AccountId, Error, ErrorKind, Reason, Result};
use prost::Message;

use crate::api::{App, Caller};
use crate::metrics::GrpcResponse;
use crate::revocation::Token;
use crate::wire;

/// The error context key (and so `error-context-retryafter`) carrying the seconds after which
/// a retry can succeed; over HTTP also the `Retry-After` header.
pub(crate) const RETRY_AFTER: &str = "retryafter";

/// Limits of the network surface. Each is a `serve` flag (README, "Limits").
#[derive(Debug, Clone)]
pub struct NetLimits {
    /// Largest request message (gRPC) or body (HTTP) of every method but the icon upload,
    /// whose limit follows the icon limit.
    pub max_message_bytes: usize,
    /// A request body not received in full within this is cut.
    pub body_timeout: Duration,
    /// Most open event streams (live, catch-up, SSE) per account. 0: no cap.
    pub max_event_streams: usize,
    /// Most open event streams per token, within the account's cap: one leaked or runaway
    /// token (one device) cannot take every place of its account. 0: no cap of its own.
    pub max_event_streams_per_token: usize,
    /// Requests per second per account, as a token bucket. 0: no rate limit.
    pub rate_per_sec: u32,
    /// The bucket's size: how many requests may come at once.
    pub rate_burst: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_message_bytes: 256 * 1024,
            body_timeout: Duration::from_secs(30),
            max_event_streams: 16_384,
            // As the account's: by default an account with one token (the usual case, and
            // the benchmarks' 10,000 idle subscribers) keeps the whole account cap.
            max_event_streams_per_token: 16_384,
            rate_per_sec: 0,
            rate_burst: 100,
        }
    }
}

/// Room for the rest of a `SetIcon` request (GUID, key, framing) besides the icon itself.
pub const ICON_OVERHEAD_BYTES: usize = 64 * 1024;

/// The shared state of the checks.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) app: App,
    pub(crate) limits: NetLimits,
    /// Largest `SetIcon` message over gRPC.
    pub(crate) icon_message_bytes: usize,
    /// Per account (every token of it); `None` when off. Its memory grows with the number of
    /// accounts that called, which only an admin can raise.
    rate: Option<Arc<Limiter>>,
    streams: Arc<Mutex<OpenStreams>>,
    /// Injected faults (simulator controls), applied once a call is admitted.
    pub(crate) faults: Arc<crate::faults::Faults>,
}

/// Open event streams by account and by token; one lock, so both counts move together.
#[derive(Default)]
struct OpenStreams {
    accounts: HashMap<AccountId, usize>,
    tokens: HashMap<Token, usize>,
}

/// One less for `key`, forgetting it at zero so the maps hold only keys with open streams.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

type Limiter = governor::RateLimiter<
    AccountId,
    governor::state::keyed::HashMapStateStore<AccountId>,
    governor::clock::DefaultClock,
>;

impl Guard {
    pub(crate) fn new(app: App, limits: NetLimits, faults: Arc<crate::faults::Faults>) -> Self {
        let icon_message_bytes = app.limits.max_icon_bytes + ICON_OVERHEAD_BYTES;
        Guard {
            app,
            icon_message_bytes,
            rate: NonZeroU32::new(limits.rate_per_sec).map(|per_sec| {
                let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(NonZeroU32::MIN);
                let quota = governor::Quota::per_second(per_sec).allow_burst(burst);
                Arc::new(governor::RateLimiter::hashmap(quota))
            }),
            limits,
            streams: Arc::default(),
            faults,
        }
    }

    /// Authenticates from the raw `authorization` and `x-idempotency-key` values, takes one
    /// request from the account's bucket, then applies any fault injected for the account and
    /// `method` (the RPC name).
    pub(crate) async fn admit(
        &self,
        method: &str,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Caller> {
        let caller = self.app.caller(authorization, idempotency_key).await?;
        self.take(&caller.account)?;
        self.faults.apply(caller.account, method).await?;
        Ok(caller)
    }

    /// One request from the account's token bucket, or `RateLimited` with a retry hint.
    fn take(&self, account: &AccountId) -> Result<()> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let Err(not_until) = rate.check_key(account) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(governor::clock::Clock::now(rate.clock()));
        let wait = wait.as_secs_f64().ceil().max(1.0) as u64;
        Err(Error::new(
            ErrorKind::RateLimited,
            format!(
                "more than {} requests per second (burst {}) for this account: retry later",
                self.limits.rate_per_sec, self.limits.rate_burst
            ),
        )
        .because(Reason::RequestRate)
        .with("limit", self.limits.rate_per_sec)
        .with(RETRY_AFTER, wait))
    }

    /// Counts one more open event stream for the caller's account and token until the
    /// permit is dropped, or `RateLimited` when either has its cap
    /// ([`NetLimits::max_event_streams`], [`NetLimits::max_event_streams_per_token`]) open
    /// already. Nothing is counted when refused.
    pub(crate) fn open_stream(&self, caller: &Caller) -> Result<StreamPermit> {
        let too_many = |max: usize, holder: &str| {
            Error::new(
                ErrorKind::RateLimited,
                format!("this {holder} has {max} event streams open already: close one first"),
            )
            .because(Reason::TooManyStreams)
            .with("limit", max)
            .with(RETRY_AFTER, 5)
        };
        let per_account = self.limits.max_event_streams;
        let per_token = self.limits.max_event_streams_per_token;
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = &mut *open;
        let account = open.accounts.get(&caller.account).copied().unwrap_or(0);
        if per_account != 0 && account >= per_account {
            return Err(too_many(per_account, "account"));
        }
        let token = open.tokens.get(&caller.token).copied().unwrap_or(0);
        if per_token != 0 && token >= per_token {
            return Err(too_many(per_token, "token"));
        }
        open.accounts.insert(caller.account, account + 1);
        open.tokens.insert(caller.token.clone(), token + 1);
        Ok(StreamPermit {
            account: caller.account,
            token: caller.token.clone(),
            streams: self.streams.clone(),
        })
    }
}

/// One open event stream of an account and token; dropping it closes the counts.
pub(crate) struct StreamPermit {
    account: AccountId,
    token: Token,
    streams: Arc<Mutex<OpenStreams>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        release(&mut open.accounts, &self.account);
        release(&mut open.tokens, &self.token);
    }
}

/// The error of a body larger than `limit`.
pub(crate) fn too_large(limit: usize, what: &str) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("{what} is larger than this method's limit of {limit} bytes"),
    )
    .because(Reason::TooLarge)
    .with("limit", limit)
}

/// The error of a body not received within `timeout`.
pub(crate) fn body_timeout(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the request body was not received within {} s",
            timeout.as_secs()
        ),
    )
}

// ------------------------------------------------------------------------------------ gRPC

/// The gRPC methods of our three services, from the compiled-in descriptors, each with
/// whether it is an event stream (server-streaming: counted against
/// [`NetLimits::max_event_streams`] and [`NetLimits::max_event_streams_per_token`]). Only these are checked here: health, reflection and
/// unknown methods keep their own behaviour.
static METHODS: LazyLock<HashMap<String, bool>> = LazyLock::new(|| {
    let Ok(set) = prost_types::FileDescriptorSet::decode(imgroups_proto::FILE_DESCRIPTOR_SET)
    else {
        tracing::error!("cannot decode the compiled-in file descriptors");
        return HashMap::new();
    };
    let mut methods = HashMap::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            if !SERVICES.contains(&service.name()) {
                continue;
            }
            for method in &service.method {
                let path = format!("/{package}.{}/{}", service.name(), method.name());
                methods.insert(path, method.server_streaming());
            }
        }
    }
    methods
});

const SERVICES: &[&str] = &["GroupService", "ChatService", "EventService"];

/// The RPC names of [`METHODS`] (the path's last segment), sorted.
pub(crate) fn method_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = METHODS
        .keys()
        .filter_map(|path| path.rsplit('/').next())
        .collect();
    names.sort_unstable();
    names
}

/// The one large gRPC method.
const SET_ICON: &str = "/photon.imessage.v1.GroupService/SetIcon";

fn grpc_error(err: Error) -> GrpcResponse {
    wire::to_status(err).into_http()
}

const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("x-idempotency-key");

/// A header's value as text, if it is there and is text.
fn header_text<'a>(headers: &'a http::HeaderMap, name: &http::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Guard {
    /// Largest request message of the method at `path`.
    fn message_limit(&self, path: &str) -> usize {
        if path == SET_ICON {
            self.icon_message_bytes
        } else {
            self.limits.max_message_bytes
        }
    }

    /// [`Guard::admit`] without waiting, when it can answer so: a token this process has
    /// checked already and no fault armed. `None`: take the general path, which also words
    /// every authentication error.
    fn admit_now(
        &self,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Option<Result<Caller>> {
        if self.faults.any_armed() {
            return None;
        }
        let token = crate::api::bearer(authorization)?;
        let account = self.app.engine.store().authenticate_cached(token)?;
        // As `App::caller` does, once the token is good.
        let idempotency_key = idempotency_key.map(str::trim).filter(|k| !k.is_empty());
        if let Some(key) = idempotency_key {
            if let Err(err) = imgroups_core::idempotency::check_key(key, "x-idempotency-key") {
                return Some(Err(err));
            }
        }
        Some(self.take(&account).map(|()| Caller {
            account,
            idempotency_key: idempotency_key.map(str::to_owned),
            token: crate::revocation::Token::new(token),
        }))
    }
}

/// The checks of this module as a layer around the gRPC router ([`GrpcGuarded`]).
#[derive(Clone)]
pub(crate) struct GrpcGuardLayer {
    guard: Arc<Guard>,
}

impl GrpcGuardLayer {
    pub(crate) fn new(guard: Guard) -> Self {
        GrpcGuardLayer {
            guard: Arc::new(guard),
        }
    }
}

impl<S> tower::Layer<S> for GrpcGuardLayer {
    type Service = GrpcGuarded<S>;

    fn layer(&self, inner: S) -> GrpcGuarded<S> {
        GrpcGuarded {
            guard: self.guard.clone(),
            inner,
        }
    }
}

/// Authenticates a call to one of our methods from its metadata, applies the rate limit and
/// any injected fault, reads its (only) request message within the method's size limit and
/// the body timeout, and passes the caller on in the request's extensions. Errors are
/// trailers-only, as tonic's own. Health, reflection and unknown methods pass untouched.
///
/// Every write passes here, so the usual call — a token this process has checked already,
/// no fault armed, a message that arrived with its headers — is a plain state machine
/// ([`Guarded`]): no boxed future, no clone of the checks' state, no timer. Anything else (a
/// token to look up, an armed fault, an event stream to count) takes [`grpc_guard`], one
/// boxed future, as every call did before (BENCHMARKS.md, session 9).
#[derive(Clone)]
pub(crate) struct GrpcGuarded<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcGuarded<S>
where
    S: tower::Service<Request, Response = GrpcResponse, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = Guarded<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The router would make the same body of it.
        let req = req.map(Body::new);
        let Some(&streaming) = METHODS.get(req.uri().path()) else {
            return Guarded::Pass {
                fut: self.inner.call(req),
            };
        };
        // The service that was polled ready serves this call once it is admitted; a clone
        // takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if !streaming {
            let headers = req.headers();
            let admitted = self.guard.admit_now(
                header_text(headers, &http::header::AUTHORIZATION),
                header_text(headers, &IDEMPOTENCY_KEY),
            );
            match admitted {
                Some(Ok(caller)) => {
                    let limit = self.guard.message_limit(req.uri().path());
                    let (parts, body) = req.into_parts();
                    return Guarded::Read {
                        reader: MessageReader::new(body, limit),
                        parts: Some(parts),
                        caller: Some(caller),
                        inner: Some(inner),
                        timeout: self.guard.limits.body_timeout,
                        deadline: None,
                    };
                }
                Some(Err(err)) => {
                    return Guarded::Done {
                        response: Some(grpc_error(err)),
                    }
                }
                None => {}
            }
        }
        Guarded::Slow {
            fut: Box::pin(grpc_guard(self.guard.clone(), req, streaming, inner)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`GrpcGuarded`] call.
    #[project = GuardedProj]
    pub(crate) enum Guarded<S, F> {
        /// Not one of our methods.
        Pass { #[pin] fut: F },
        /// Admitted; reading the message.
        Read {
            reader: MessageReader,
            parts: Option<http::request::Parts>,
            caller: Option<Caller>,
            inner: Option<S>,
            timeout: Duration,
            // Armed only once the message is found still on its way.
            deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        },
        /// The method itself.
        Call { #[pin] fut: F },
        /// The general path.
        Slow { fut: Pin<Box<dyn Future<Output = GrpcResponse> + Send>> },
        /// Refused before reading.
        Done { response: Option<GrpcResponse> },
    }
}

impl<S, F> Future for Guarded<S, F>
where
    S: tower::Service<Request, Response = GrpcResponse, Error = Infallible, Future = F>,
    F: Future<Output = std::result::Result<GrpcResponse, Infallible>>,
{
    type Output = std::result::Result<GrpcResponse, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let call = match self.as_mut().project() {
            GuardedProj::Pass { fut } | GuardedProj::Call { fut } => return fut.poll(cx),
            GuardedProj::Slow { fut } => return fut.as_mut().poll(cx).map(Ok),
            GuardedProj::Done { response } => {
                return Poll::Ready(Ok(response
                    .take()
                    .unwrap_or_else(|| grpc_error(Error::internal()))))
            }
            GuardedProj::Read {
                reader,
                parts,
                caller,
                inner,
                timeout,
                deadline,
            } => {
                let read = match reader.poll(cx) {
                    Poll::Ready(read) => read,
                    Poll::Pending => {
                        let deadline =
                            deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(*timeout)));
                        match deadline.as_mut().poll(cx) {
                            Poll::Ready(()) => Err(body_timeout(*timeout)),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                };
                let message = match read {
                    Ok(message) => message,
                    Err(err) => return Poll::Ready(Ok(grpc_error(err))),
                };
                let (Some(parts), Some(caller), Some(mut inner)) =
                    (parts.take(), caller.take(), inner.take())
                else {
                    // Polled again after it ended.
                    return Poll::Ready(Ok(grpc_error(Error::internal())));
                };
                let mut req = Request::from_parts(parts, Body::from(message));
                req.extensions_mut().insert(caller);
                inner.call(req)
            }
        };
        self.set(Guarded::Call { fut: call });
        match self.project() {
            GuardedProj::Call { fut } => fut.poll(cx),
            _ => Poll::Ready(Ok(grpc_error(Error::internal()))),
        }
    }
}

/// The general path of [`GrpcGuarded`]: every check, awaited in turn; then, for an event
/// stream, its place under the caps, held until the stream ends.
async fn grpc_guard<S>(
    guard: Arc<Guard>,
    req: Request,
    streaming: bool,
    mut inner: S,
) -> GrpcResponse
where
    S: tower::Service<Request, Response = GrpcResponse, Error = Infallible>,
{
    let path = req.uri().path();
    let limit = guard.message_limit(path);
    // Header values are reference-counted: cloning them is cheap, and they outlive the
    // request, which cannot be borrowed across an await (its body is not `Sync`).
    let authorization = req.headers().get(http::header::AUTHORIZATION).cloned();
    let key = req.headers().get(&IDEMPOTENCY_KEY).cloned();
    fn text(v: &Option<http::HeaderValue>) -> Option<&str> {
        v.as_ref().and_then(|v| v.to_str().ok())
    }
    let method = path.rsplit('/').next().unwrap_or(path);
    let caller = match guard.admit(method, text(&authorization), text(&key)).await {
        Ok(caller) => caller,
        Err(err) => return grpc_error(err),
    };
    let permit = if streaming {
        match guard.open_stream(&caller) {
            Ok(permit) => Some(permit),
            Err(err) => return grpc_error(err),
        }
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let timeout = guard.limits.body_timeout;
    let mut reader = MessageReader::new(body, limit);
    let read = std::future::poll_fn(|cx| reader.poll(cx));
    futures::pin_mut!(read);
    // A small message has usually arrived with its headers: read it without arming a timer,
    // and time only a body that is still on its way.
    let read = match futures::poll!(&mut read) {
        Poll::Ready(read) => read,
        Poll::Pending => match tokio::time::timeout(timeout, read).await {
            Ok(read) => read,
            Err(_) => return grpc_error(body_timeout(timeout)),
        },
    };
    let message = match read {
        Ok(message) => message,
        Err(err) => return grpc_error(err),
    };
    let mut req = Request::from_parts(parts, Body::from(message));
    req.extensions_mut().insert(caller);
    let Ok(()) = std::future::poll_fn(|cx| inner.poll_ready(cx)).await;
    let Ok(response) = inner.call(req).await;
    match permit {
        Some(permit) => response.map(|body| {
            tonic::body::Body::new(Held {
                body,
                _permit: permit,
            })
        }),
        None => response,
    }
}

/// Reads the length-prefixed request message: our methods take exactly one. The prefix is
/// checked against `limit` before the message is read, so an oversized one costs nothing. A
/// message that arrives in one chunk (the usual case) is passed on without a copy.
pub(crate) struct MessageReader {
    body: Body,
    limit: usize,
    first: Option<Bytes>,
    buf: BytesMut,
    expected: Option<usize>,
}

impl MessageReader {
    fn new(body: Body, limit: usize) -> Self {
        MessageReader {
            body,
            limit,
            first: None,
            buf: BytesMut::new(),
            expected: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes>> {
        use http_body::Body as _;
        let limit = self.limit;
        loop {
            let chunk = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Err(Error::invalid("the request body was cut off")))
                }
                // Trailers carry no message.
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    Err(_) => continue,
                },
            };
            if self.first.is_none() && self.buf.is_empty() {
                self.first = Some(chunk);
            } else {
                if let Some(first) = self.first.take() {
                    self.buf.extend_from_slice(&first);
                }
                self.buf.extend_from_slice(&chunk);
            }
            let seen: &[u8] = self.first.as_deref().unwrap_or(&self.buf);
            if self.expected.is_none() && seen.len() >= 5 {
                let len = u32::from_be_bytes([seen[1], seen[2], seen[3], seen[4]]) as usize;
                if len > limit {
                    return Poll::Ready(Err(too_large(limit, "the request message")));
                }
                self.expected = Some(5 + len);
            }
            if seen.len() > limit + 5 {
                return Poll::Ready(Err(too_large(limit, "the request message")));
            }
            if self.expected.is_some_and(|n| seen.len() >= n) {
                break;
            }
        }
        let message = match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.buf).freeze(),
        };
        Poll::Ready(Ok(message))
    }
}

/// A response body holding a [`StreamPermit`] for as long as the stream is open.
struct Held {
    body: tonic::body::Body,
    _permit: StreamPermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

// ------------------------------------------------------------------------------------ HTTP

/// Cuts a request body that has not ended `timeout` after the request began.
pub(crate) async fn http_body_timeout(
    State(timeout): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let req = req.map(|body| {
        Body::new(Timed {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    });
    next.run(req).await
}

struct Timed {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The error a [`Timed`] body ends with; `decode_body` recognises it.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not received in time")
    }
}

impl std::error::Error for BodyTimedOut {}

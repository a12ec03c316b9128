//! Request observation, for both transports: a request id for each request (the client's
//! `x-request-id` when sane), one log line per request (`debug`, or `warn` for an error
//! answer), and the request metrics (`imgroups_requests_total`,
//! `imgroups_request_duration_seconds`) recorded through `crate::metrics`'s recorder.
//!
//! Requests are counted by transport, method and code. The method label is always one of a
//! fixed set (the RPCs of the method table and of health and reflection, the HTTP routes, or
//! `unknown`), so a client cannot grow the label space by calling made-up paths.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use ::metrics::{Counter, Histogram};
use http::HeaderValue;

use crate::metrics::install;

/// The log targets of the request lines, by transport: what `RUST_LOG` filters on (docs/operating.md,
/// "Request ids and logs"), named after the transport rather than this module.
const HTTP_LOG: &str = "imgroups_server::http";
const GRPC_LOG: &str = "imgroups_server::grpc";

// ---------------------------------------------------------------------------------- requests

/// Which surface answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transport {
    Grpc,
    Http,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// The method label of anything outside the fixed set.
pub(crate) const UNKNOWN_METHOD: &str = "unknown";

/// Request counters by (transport, method, code) and latency histograms by (transport,
/// method), registered the first time each combination is seen. After that a request costs
/// a read lock, a hash and atomic adds.
static COUNTERS: LazyLock<Cache<(Transport, &'static str, u16), Counter>> =
    LazyLock::new(Default::default);
static LATENCIES: LazyLock<Cache<(Transport, &'static str), Histogram>> =
    LazyLock::new(Default::default);

type Cache<K, V> = RwLock<HashMap<K, V>>;

fn with_cached<K: Hash + Eq + Copy, V>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    make: impl FnOnce() -> V,
    f: impl FnOnce(&V),
) {
    if let Ok(read) = map.read() {
        if let Some(value) = read.get(&key) {
            f(value);
            return;
        }
    }
    install();
    if let Ok(mut write) = map.write() {
        f(write.entry(key).or_insert_with(make));
    }
}

/// Records the time until a response started.
pub(crate) fn record_latency(transport: Transport, method: &'static str, elapsed: Duration) {
    with_cached(
        &LATENCIES,
        (transport, method),
        || {
            ::metrics::histogram!(
                "imgroups_request_duration_seconds",
                "transport" => transport.label(),
                "method" => method,
            )
        },
        |h| h.record(elapsed.as_secs_f64()),
    );
}

/// Counts a finished request; `code` is the HTTP status (gRPC calls count through
/// [`GrpcMethod`]).
pub(crate) fn count_request(transport: Transport, method: &'static str, code: u16) {
    with_cached(
        &COUNTERS,
        (transport, method, code),
        || {
            let code = match transport {
                Transport::Grpc => grpc_code_name(i32::from(code)).to_owned(),
                Transport::Http => code.to_string(),
            };
            ::metrics::counter!(
                "imgroups_requests_total",
                "transport" => transport.label(),
                "method" => method,
                "code" => code,
            )
        },
        |c| c.increment(1),
    );
}

/// At most a few log lines a second for a kind of event anyone can cause at will (requests
/// without a valid token, connections over the cap, failed requests), with how many were left
/// out since the last line: garbage from the network cannot fill the disk with log lines, and
/// the first lines of a burst still show.
pub(crate) struct LogBudget {
    /// Lines allowed per second.
    per_second: u64,
    /// The second (since [`log_epoch`], plus one) of the last line written.
    second: std::sync::atomic::AtomicU64,
    /// Lines written in that second.
    used: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

fn log_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl LogBudget {
    /// One line a second.
    pub(crate) const fn new() -> Self {
        LogBudget::per_second(1)
    }

    pub(crate) const fn per_second(per_second: u64) -> Self {
        LogBudget {
            per_second,
            second: std::sync::atomic::AtomicU64::new(0),
            used: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when a line may be written now. Threads
    /// racing at a second's turn may write a line or two more than the budget: it bounds a
    /// flood, it is not an exact count.
    pub(crate) fn admit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = log_epoch().elapsed().as_secs() + 1;
        let last = self.second.load(Relaxed);
        if now > last
            && self
                .second
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.used.store(1, Relaxed);
            Some(self.suppressed.swap(0, Relaxed))
        } else if self.used.fetch_add(1, Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Failed requests without a valid token: logged within a [`LogBudget`].
static UNAUTHENTICATED_HTTP: LogBudget = LogBudget::new();
static UNAUTHENTICATED_GRPC: LogBudget = LogBudget::new();
/// Other requests refused for what the client sent (HTTP 4xx; gRPC codes other than the
/// server's own failures, see [`server_failure`]): some need no token (an unknown path, a
/// declared body over the limit), so they are logged within a budget too, a larger one, so
/// that a client's own mistakes still show one by one at any sane rate.
static CLIENT_ERRORS_HTTP: LogBudget = LogBudget::per_second(CLIENT_ERROR_LINES);
static CLIENT_ERRORS_GRPC: LogBudget = LogBudget::per_second(CLIENT_ERROR_LINES);
/// Log lines a second for failed requests that are the client's doing, per listener.
pub(crate) const CLIENT_ERROR_LINES: u64 = 20;

/// gRPC codes that are the server's failures, not the client's: always logged.
fn server_failure(code: i32) -> bool {
    [
        tonic::Code::Unknown,
        tonic::Code::Internal,
        tonic::Code::Unavailable,
        tonic::Code::DataLoss,
    ]
    .iter()
    .any(|&c| c as i32 == code)
}

/// Records a finished HTTP request: its latency and count, and one log line (`warn` for an
/// error answer, `debug` otherwise; a 401 and other 4xx answers within a [`LogBudget`]).
pub(crate) fn http_request(
    method: &'static str,
    request_id: &RequestId,
    status: http::StatusCode,
    error_code: Option<&'static str>,
    elapsed: Duration,
) {
    let code = status.as_u16();
    record_latency(Transport::Http, method, elapsed);
    count_request(Transport::Http, method, code);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status == http::StatusCode::UNAUTHORIZED {
        if let Some(suppressed) = UNAUTHENTICATED_HTTP.admit() {
            tracing::warn!(target: HTTP_LOG, request_id = %request_id, transport = "http", method, code, error_code, duration_us, suppressed, "request failed");
        }
    } else if status.is_client_error() {
        if let Some(suppressed) = CLIENT_ERRORS_HTTP.admit() {
            tracing::warn!(target: HTTP_LOG, request_id = %request_id, transport = "http", method, code, error_code, duration_us, suppressed, "request failed");
        }
    } else if status.is_server_error() {
        tracing::warn!(target: HTTP_LOG, request_id = %request_id, transport = "http", method, code, error_code, duration_us, "request failed");
    } else {
        tracing::debug!(target: HTTP_LOG, request_id = %request_id, transport = "http", method, code, duration_us, "request");
    }
}

/// The canonical name of a gRPC status code, as in the gRPC spec.
pub(crate) fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

// -------------------------------------------------------------------------------- request ids

/// Longest client-supplied `x-request-id` we adopt; longer ones are replaced by our own.
const MAX_REQUEST_ID: usize = 128;

pub(crate) const REQUEST_ID: &str = "x-request-id";
/// [`REQUEST_ID`] as a header name: looked up on every call, so not parsed each time.
const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// A request's id: the client's `x-request-id` when it is a sane one, else a fresh UUID.
#[derive(Clone)]
pub(crate) enum RequestId {
    Given(HeaderValue),
    Made(uuid::Uuid),
}

impl RequestId {
    pub(crate) fn of(headers: &http::HeaderMap) -> RequestId {
        RequestId::given(headers).unwrap_or_else(RequestId::made)
    }

    /// The client's `x-request-id`, when it is a sane one.
    pub(crate) fn given(headers: &http::HeaderMap) -> Option<RequestId> {
        headers
            .get(&REQUEST_ID_HEADER)
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= MAX_REQUEST_ID
                    && v.as_bytes().iter().all(u8::is_ascii_graphic)
            })
            .map(|v| RequestId::Given(v.clone()))
    }

    /// A new id, from the thread's RNG rather than the OS's: no system call per request.
    pub(crate) fn made() -> RequestId {
        RequestId::Made(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
    }

    pub(crate) fn header(&self) -> Option<HeaderValue> {
        match self {
            RequestId::Given(v) => Some(v.clone()),
            RequestId::Made(id) => {
                let mut buf = uuid::Uuid::encode_buffer();
                HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).ok()
            }
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Checked to be visible ASCII in `of`.
            RequestId::Given(v) => f.write_str(v.to_str().unwrap_or("?")),
            RequestId::Made(id) => fmt::Display::fmt(&id.hyphenated(), f),
        }
    }
}

// ------------------------------------------------------------------------------ gRPC requests

/// Number of gRPC status codes (0 `OK` to 16 `UNAUTHENTICATED`).
const GRPC_CODES: usize = 17;

/// One gRPC method's metric handles. Every call of a write workload passes here, so it is
/// lock-free: the latency histogram is registered up front and each code's counter on its
/// first use.
pub(crate) struct GrpcMethod {
    label: &'static str,
    latency: Histogram,
    codes: [OnceLock<Counter>; GRPC_CODES],
}

impl GrpcMethod {
    fn new(label: &'static str) -> Self {
        install();
        GrpcMethod {
            label,
            latency: ::metrics::histogram!(
                "imgroups_request_duration_seconds",
                "transport" => Transport::Grpc.label(),
                "method" => label,
            ),
            codes: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn count(&self, code: i32) {
        let code = usize::try_from(code)
            .ok()
            .filter(|c| *c < GRPC_CODES)
            .unwrap_or(tonic::Code::Unknown as usize);
        self.codes[code]
            .get_or_init(|| {
                ::metrics::counter!(
                    "imgroups_requests_total",
                    "transport" => Transport::Grpc.label(),
                    "method" => self.label,
                    "code" => grpc_code_name(code as i32),
                )
            })
            .increment(1);
    }
}

static UNKNOWN_GRPC_METHOD: LazyLock<GrpcMethod> =
    LazyLock::new(|| GrpcMethod::new(UNKNOWN_METHOD));

/// Every RPC path of the method table and of the health and reflection services
/// (`/package.Service/Method`), to its handles, labelled `package.Service/Method`. Built once;
/// the strings live for the whole process.
static GRPC_METHODS: LazyLock<HashMap<&'static str, GrpcMethod>> = LazyLock::new(|| {
    use prost::Message;
    let mut methods: HashMap<&'static str, GrpcMethod> = imgroups_proto::methods::METHODS
        .iter()
        .map(|m| (m.path, GrpcMethod::new(m.path.trim_start_matches('/'))))
        .collect();
    let sets: [&[u8]; 3] = [
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    for set in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let path: &'static str = Box::leak(
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                            .into_boxed_str(),
                    );
                    methods.insert(path, GrpcMethod::new(&path[1..]));
                }
            }
        }
    }
    methods
});

/// The handles of a gRPC request path's method.
pub(crate) fn grpc_method(path: &str) -> &'static GrpcMethod {
    GRPC_METHODS.get(path).unwrap_or(&UNKNOWN_GRPC_METHOD)
}

/// What is left to record of a gRPC call once its response has started: its status code
/// arrives in the trailers, at the end of the body. Recorded when the body ends or is dropped
/// (a client that goes away mid-stream leaves no trailers: `CANCELLED`).
pub(crate) struct GrpcCall {
    pub(crate) start: Instant,
    pub(crate) method: &'static GrpcMethod,
    /// None until someone needs it (see [`observe_grpc`]).
    pub(crate) id: Option<RequestId>,
    pub(crate) code: Option<i32>,
}

impl GrpcCall {
    fn finish(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled as i32);
        self.method.count(code);
        let name = grpc_code_name(code);
        let duration_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        if code == tonic::Code::Ok as i32 || code == tonic::Code::Cancelled as i32 {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let id = self.id.get_or_insert_with(RequestId::made);
                tracing::debug!(target: GRPC_LOG, request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, "request");
            }
        } else if code == tonic::Code::Unauthenticated as i32 {
            if let Some(suppressed) = UNAUTHENTICATED_GRPC.admit() {
                let id = self.id.get_or_insert_with(RequestId::made);
                tracing::warn!(target: GRPC_LOG, request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, suppressed, "request failed");
            }
        } else if !server_failure(code) {
            if let Some(suppressed) = CLIENT_ERRORS_GRPC.admit() {
                let id = self.id.get_or_insert_with(RequestId::made);
                tracing::warn!(target: GRPC_LOG, request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, suppressed, "request failed");
            }
        } else {
            let id = self.id.get_or_insert_with(RequestId::made);
            tracing::warn!(target: GRPC_LOG, request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, "request failed");
        }
    }
}

/// A gRPC response body that records its call ([`GrpcCall`]) when it ends.
pub(crate) struct ObservedBody<B> {
    inner: B,
    call: Option<GrpcCall>,
}

impl<B> ObservedBody<B> {
    pub(crate) fn new(inner: B, call: GrpcCall) -> Self {
        ObservedBody {
            inner,
            call: Some(call),
        }
    }

    fn finish(&mut self) {
        if let Some(mut call) = self.call.take() {
            call.finish();
        }
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `grpc-status` of a header or trailer map.
pub(crate) fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    if let Some(call) = self.call.as_mut() {
                        call.code = Some(code);
                    }
                    self.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.as_mut() {
                    call.code.get_or_insert(tonic::Code::Internal as i32);
                }
                self.finish();
            }
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The layer over the gRPC router that gives each call its metrics, log line and request id
/// ([`ObserveGrpc`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct ObserveGrpcLayer;

impl<S> tower::Layer<S> for ObserveGrpcLayer {
    type Service = ObserveGrpc<S>;

    fn layer(&self, inner: S) -> ObserveGrpc<S> {
        ObserveGrpc { inner }
    }
}

/// A response of the gRPC router (tonic's body type, so passing one on costs no new box).
pub(crate) type GrpcResponse = http::Response<tonic::body::Body>;

/// Request id, metrics and one log line per gRPC call. A hand-written service rather than
/// `axum::middleware::from_fn`, which boxes the inner service and the future on every call:
/// every write passes here, and those allocations showed in the write benchmark.
#[derive(Clone)]
pub(crate) struct ObserveGrpc<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ObserveGrpc<S>
where
    S: tower::Service<http::Request<B>, Response = GrpcResponse, Error = std::convert::Infallible>,
{
    type Response = GrpcResponse;
    type Error = std::convert::Infallible;
    type Future = ObservedCall<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> ObservedCall<S::Future> {
        let start = Instant::now();
        let method = grpc_method(req.uri().path());
        let given = RequestId::given(req.headers());
        ObservedCall {
            inner: self.inner.call(req),
            start,
            method,
            given,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an observed gRPC call: the inner call's, then the bookkeeping.
    pub(crate) struct ObservedCall<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: &'static GrpcMethod,
        given: Option<RequestId>,
    }
}

impl<F> std::future::Future for ObservedCall<F>
where
    F: std::future::Future<Output = Result<GrpcResponse, std::convert::Infallible>>,
{
    type Output = Result<GrpcResponse, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        let start = *this.start;
        std::task::Poll::Ready(Ok(observed(
            response,
            start,
            this.method,
            this.given.take(),
        )))
    }
}

/// Records what is known of a call once its response has started, and wraps its body to
/// record the rest when it ends.
fn observed(
    mut response: GrpcResponse,
    start: Instant,
    method: &'static GrpcMethod,
    given: Option<RequestId>,
) -> GrpcResponse {
    method.latency.record(start.elapsed().as_secs_f64());
    // A trailers-only response (most errors) carries its status in the headers.
    let code = grpc_status(response.headers());
    // An id is made only where someone will see it: the client's own is always echoed; else
    // a failed call gets one (in its log line and its response metadata), and a successful
    // one only when debug logging shows it. Making and sending a fresh id for every call was
    // a measurable part of a write's cost (BENCHMARKS.md, session 7).
    let failed = code.is_some_and(|c| c != tonic::Code::Ok as i32);
    let id = match given {
        Some(id) => Some(id),
        None if failed || tracing::enabled!(tracing::Level::DEBUG) => Some(RequestId::made()),
        None => None,
    };
    if let Some(value) = id.as_ref().and_then(RequestId::header) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let (parts, body) = response.into_parts();
    let call = GrpcCall {
        start,
        method,
        id,
        code,
    };
    http::Response::from_parts(parts, tonic::body::Body::new(ObservedBody::new(body, call)))
}

#[cfg(test)]
mod tests {
    use super::LogBudget;

    #[test]
    fn a_budget_admits_its_lines_a_second_and_counts_the_rest() {
        let budget = LogBudget::per_second(5);
        let admitted: Vec<u64> = (0..1000).filter_map(|_| budget.admit()).collect();
        // The loop may straddle a second's turn: at most two seconds' worth.
        assert!(
            (5..=10).contains(&admitted.len()),
            "{} lines admitted",
            admitted.len()
        );
        let left_out: u64 = admitted.iter().sum();
        let pending = budget.suppressed.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            left_out + pending + admitted.len() as u64,
            1000,
            "every call is either a line or counted as left out"
        );
    }
}

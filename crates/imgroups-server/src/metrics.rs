//! Prometheus metrics and request logging.
//!
//! Everything records through the `metrics` facade, so the store crates count their commits
//! without knowing about Prometheus; this module installs the one recorder of the process
//! ([`install`]) and renders it for `GET /metrics`.
//!
//! Hot paths hold pre-registered handles (`hot`): a count is an atomic add, with no label
//! formatting and no allocation. Handles made before [`install`] would be no-ops forever, so
//! `hot` installs first, and the binary installs before it opens the store.
//!
//! Requests are counted by transport, method and code. The method label is always one of a
//! fixed set (the RPCs in our descriptors, the HTTP routes, or `unknown`), so a client cannot
//! grow the label space by calling made-up paths.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

pub(crate) use ::metrics::Gauge;
use ::metrics::{Counter, Histogram};
use http::HeaderValue;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of the commit batch size (requests per commit).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// How often histogram samples are folded into their buckets when nobody scrapes: samples are
/// buffered until then, so without this an unscraped server's memory would grow.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's metrics recorder, once; later calls do nothing. Returns whether
/// `GET /metrics` can render anything (false if another recorder was installed first).
pub fn install() -> bool {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("imgroups_commit_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(err) => {
                    tracing::error!(error = %err, "cannot configure the metrics recorder");
                    return None;
                }
            };
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
                return None;
            }
            describe();
            Some(handle)
        })
        .is_some()
}

/// The Prometheus text exposition of every metric.
pub(crate) fn render() -> String {
    install();
    RECORDER
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Folds buffered histogram samples into buckets (see [`UPKEEP_EVERY`]).
pub(crate) fn upkeep() {
    if let Some(handle) = RECORDER.get().and_then(Option::as_ref) {
        handle.run_upkeep();
    }
}

/// The help texts, in one place; README's "Operating imgroups" lists the same metrics.
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "imgroups_requests_total",
        "Requests answered, by transport (grpc, http), method and code (gRPC status name or HTTP status)"
    );
    describe_histogram!(
        "imgroups_request_duration_seconds",
        Unit::Seconds,
        "Time until the response started, by transport and method (for streams: until the stream opened)"
    );
    describe_gauge!(
        "imgroups_streams_open",
        "Event streams open, by kind (live, catch_up, heartbeats)"
    );
    describe_gauge!(
        "imgroups_live_subscribers",
        "Live subscriptions the event hub reads the log for"
    );
    describe_counter!(
        "imgroups_events_appended_total",
        "Events committed to the per-account logs"
    );
    describe_counter!(
        "imgroups_events_delivered_total",
        "Events handed to event streams (gRPC and SSE, live and catch-up)"
    );
    describe_counter!(
        "imgroups_catch_up_events_read_total",
        "Events read from the log by catch-up streams"
    );
    describe_histogram!(
        "imgroups_commit_batch_size",
        "Write requests per store commit (group commit)"
    );
    describe_histogram!(
        "imgroups_commit_duration_seconds",
        Unit::Seconds,
        "Time to make one commit durable: the WAL fsync on SQLite, the COMMIT round trip on PostgreSQL"
    );
    describe_counter!(
        "imgroups_webhook_deliveries_total",
        "Webhook delivery attempts that succeeded, by endpoint id"
    );
    describe_counter!(
        "imgroups_webhook_failures_total",
        "Webhook delivery attempts that failed, by endpoint id"
    );
    describe_gauge!(
        "imgroups_webhook_lag_events",
        "Events of the endpoint's account not yet delivered to it (head minus delivered cursor), by endpoint id"
    );
    describe_counter!(
        "imgroups_idempotency_replays_total",
        "Writes answered from a stored idempotent outcome instead of running again"
    );
}

/// Handles of the per-event and per-stream metrics.
pub(crate) struct Hot {
    pub(crate) streams_live: Gauge,
    pub(crate) streams_catch_up: Gauge,
    pub(crate) streams_heartbeats: Gauge,
    pub(crate) live_subscribers: Gauge,
    pub(crate) events_delivered: Counter,
    pub(crate) catch_up_read: Counter,
}

static HOT: LazyLock<Hot> = LazyLock::new(|| {
    install();
    let streams = |kind: &'static str| ::metrics::gauge!("imgroups_streams_open", "kind" => kind);
    Hot {
        streams_live: streams("live"),
        streams_catch_up: streams("catch_up"),
        streams_heartbeats: streams("heartbeats"),
        live_subscribers: ::metrics::gauge!("imgroups_live_subscribers"),
        events_delivered: ::metrics::counter!("imgroups_events_delivered_total"),
        catch_up_read: ::metrics::counter!("imgroups_catch_up_events_read_total"),
    }
});

pub(crate) fn hot() -> &'static Hot {
    &HOT
}

/// Adds one to a gauge until dropped.
pub(crate) struct Open(&'static Gauge);

impl Open {
    pub(crate) fn new(gauge: &'static Gauge) -> Self {
        gauge.increment(1.0);
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

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

/// Every RPC path in the descriptors we serve (`/package.Service/Method`), to its handles,
/// labelled `package.Service/Method`. Built once; the strings live for the whole process.
static GRPC_METHODS: LazyLock<HashMap<&'static str, GrpcMethod>> = LazyLock::new(|| {
    use prost::Message;
    let sets: [&[u8]; 4] = [
        imgroups_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashMap::new();
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
                tracing::debug!(request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, "request");
            }
        } else {
            let id = self.id.get_or_insert_with(RequestId::made);
            tracing::warn!(request_id = %id, transport = "grpc", method = self.method.label, code = name, duration_us, "request failed");
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

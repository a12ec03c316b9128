//! Prometheus metrics: the recorder and its rendering for `GET /metrics`, and the handles of
//! the per-event and per-stream metrics. Requests are observed (counted, timed, logged) in
//! `crate::observe`.
//!
//! Everything records through the `metrics` facade, so the store crates count their commits
//! without knowing about Prometheus; this module installs the one recorder of the process
//! ([`install`]) and renders it for `GET /metrics`.
//!
//! Hot paths hold pre-registered handles (`hot`): a count is an atomic add, with no label
//! formatting and no allocation. Handles made before [`install`] would be no-ops forever, so
//! `hot` installs first, and the binary installs before it opens the store.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use ::metrics::Counter;
pub(crate) use ::metrics::Gauge;
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

/// The help texts, in one place; docs/operating.md ("Metrics") lists the same metrics.
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

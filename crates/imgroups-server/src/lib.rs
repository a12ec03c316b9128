//! imgroups server: the transports over the engine.
//!
//! It depends on the ports only ([`imgroups_core::port`]): the binary decides which store and
//! which backend the [`Engine`] it is given works through.
//!
//! Layout:
//! - [`serve`] (this file): a server is a function of already-bound listeners (gRPC and
//!   HTTP), an engine and one shutdown future.
//! - `rpc`: the operations, one typed registration per RPC, listed once; both transports'
//!   routes, the UNIMPLEMENTED answers, fault names and docs/openapi.json derive from that
//!   list and the proto crate's method table.
//! - `app`: the application layer the operations and the console call: authentication,
//!   writes with their idempotency key, subscription checks, webhooks, and the operator's
//!   console (`AdminApp`).
//! - `grpc`: the gRPC server: a route per operation, the encoded event streams, and the guard
//!   that runs before a message is read.
//! - `http`: the HTTP/JSON routes (the same operations), the SSE event stream, the webhook
//!   management routes and the web console (`/console/`, admin token only).
//! - `events`: live subscriptions and catch-up over the durable log; the hub that reads each
//!   notified commit's events once for every live subscriber.
//! - `guard`: what a request must pass on either transport before its body is read (token,
//!   rate, injected faults) and the caps on open event streams.
//! - `faults`: injected faults (simulator controls), applied to a call once it is admitted.
//! - [`webhooks`]: signed, retried, durable-cursor webhook delivery.
//! - [`egress`]: where webhooks may be delivered (https only, no special-purpose addresses
//!   unless allowed), checked at registration and at every connection.
//! - `net`: connections: the cap per listener, idle and header timeouts, HTTP/2 settings,
//!   and the grace period after which a shutdown drops what is still open.
//! - `wire`: the single error table and domain ⇄ wire conversions; `wire::encode` writes the
//!   gRPC event streams' frames straight from the domain event, byte for byte as prost would.
//! - `health`: gRPC health, `/healthz` and `/readyz`, and the drain before shutdown.
//! - `revocation`: open streams remember their token and end when it is revoked.
//! - [`tls`]: TLS for both listeners, from PEM files checked up front.
//! - [`metrics`]: the Prometheus recorder and `/metrics`, and the hot-path metric handles.
//! - `observe`: request ids, the per-request log line and the request metrics of both
//!   transports.
//! - `openapi`: docs/openapi.json, generated from the method table and the message
//!   descriptors (`IMGROUPS_BLESS=1 cargo test -p imgroups-server openapi` rewrites it).
//!
//! The gRPC listener also serves `grpc.health.v1.Health` and server reflection (v1 and
//! v1alpha); like `/healthz`, `/readyz` and `/metrics` they need no token.

mod app;
pub mod egress;
mod events;
mod faults;
mod grpc;
mod guard;
mod health;
mod http;
pub mod metrics;
mod net;
mod observe;
mod openapi;
mod revocation;
mod rpc;
pub mod tls;
pub mod webhooks;
mod wire;

#[cfg(test)]
mod error_table_doc;

pub use faults::{FaultRequest, MAX_FAULT_LATENCY_MS};
pub use guard::{NetLimits, ICON_OVERHEAD_BYTES};
pub use net::ConnLimits;
pub use webhooks::WebhookOptions;

/// The wire `error-code` of an error kind (`chatNotFound`, `preconditionFailed`, …), as every
/// transport sends it; for tools that report errors themselves, like the CLI.
pub fn error_code(kind: imgroups_core::ErrorKind) -> &'static str {
    wire::code_of(kind).error_code
}

/// Whether retrying the same request can succeed (the `x-retryable` trailer), for tools that
/// report errors in the wire's vocabulary.
pub fn is_retryable(kind: imgroups_core::ErrorKind) -> bool {
    wire::code_of(kind).retryable
}

/// An error's message as every transport sends it: the engine's words, and the command that
/// fixes it where there is one; for tools that report errors themselves, like the CLI.
pub fn error_message(err: &imgroups_core::Error) -> std::borrow::Cow<'_, str> {
    wire::message_of(err)
}

/// The wire `error-code`s an injected fault may fail with (`imgroups sim fault`, the console).
pub fn fault_codes() -> impl Iterator<Item = &'static str> {
    wire::FAULT_CODES.iter().map(|(code, _)| *code)
}

/// An event of an account's log as one JSON object, as the console and `imgroups sim expect
/// --json` show it: the official SDK's shape ([`imgroups_proto::sdk`]: `GroupEvent`,
/// `MessageEvent`, `ChatEvent`), the same as the Rust SDK's events and `imgroups events tail
/// --json`.
pub fn event_json(event: &imgroups_core::Event) -> serde_json::Value {
    http::console::event_json(event)
}

/// The RPC names of the services this server serves (`SetDisplayName`, `CreateChat`, …),
/// sorted: what a fault's method may name, besides `*` for every method.
pub fn method_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = rpc::Served::get().methods().map(|m| m.name).collect();
    names.sort_unstable();
    names
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::port::SimControls;
use imgroups_core::{Engine, Limits};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest gRPC message accepted or sent. The official SDK allows 100 MiB each way; icons
/// are limited separately, with a precise error, by [`Limits::max_icon_bytes`].
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

#[derive(Clone)]
pub struct Options {
    /// Silence after which a live stream sends a heartbeat frame.
    pub heartbeat: Duration,
    pub limits: Limits,
    /// How often live streams re-read the heads of their accounts, in case a commit notice
    /// was lost (notices from other processes are hints).
    pub recheck: Duration,
    /// Serve both listeners over TLS with this certificate and key.
    pub tls: Option<tls::Tls>,
    /// Sizes, timeouts and rates of the network surface.
    pub net: NetLimits,
    /// Connection limits of both listeners.
    pub conn: ConnLimits,
    /// The simulator's controls ([`imgroups_core::port::sim`]: its directory and injected
    /// faults), when the engine runs the simulated network; `None` (the default, and on a
    /// Mac): no fault is ever applied, every address is on iMessage as far as
    /// `GetAddressInfo` knows, and the console refuses to change either with
    /// `operationNotSupported`.
    pub sim: Option<Arc<dyn SimControls>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("heartbeat", &self.heartbeat)
            .field("limits", &self.limits)
            .field("recheck", &self.recheck)
            .field("tls", &self.tls)
            .field("net", &self.net)
            .field("conn", &self.conn)
            .field("sim", &self.sim.is_some())
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_secs(30),
            limits: Limits::default(),
            recheck: Duration::from_secs(5),
            tls: None,
            net: NetLimits::default(),
            conn: ConnLimits::default(),
            sim: None,
        }
    }
}

/// How often expired idempotency keys are deleted.
const FORGET_KEYS_EVERY: Duration = Duration::from_secs(60);

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest `setIcon` request body accepted, in bytes (other routes take
    /// [`NetLimits::max_message_bytes`]). The default fits a 10 MiB icon in base64 (×4/3)
    /// with room to spare.
    pub body_limit: usize,
    pub webhooks: WebhookOptions,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            body_limit: DEFAULT_HTTP_BODY_LIMIT,
            webhooks: WebhookOptions::default(),
        }
    }
}

/// 16 MiB: a 10 MiB icon is 13.4 MiB in base64.
pub const DEFAULT_HTTP_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Operations settings: see `health` and [`metrics`].
#[derive(Debug, Default)]
pub struct OpsOptions {
    /// Also serve `GET /metrics` here (it is always served on the HTTP listener too).
    pub metrics: Option<TcpListener>,
    /// On shutdown, how long to keep serving while gRPC health says NOT_SERVING and
    /// `/readyz` says 503, before the listeners close. Zero stops at once.
    pub drain: Duration,
}

/// Serves gRPC on `grpc` and HTTP/JSON on `http` (with SSE and webhook delivery) until
/// `shutdown` resolves, or until either server fails; then stops accepting on both, ends open
/// event streams and webhook deliveries, lets in-flight calls finish and returns. The engine's
/// store is left open: the caller closes it.
pub async fn serve(
    grpc: TcpListener,
    http: TcpListener,
    engine: Arc<Engine>,
    options: Options,
    http_options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ops = OpsOptions::default();
    serve_with(grpc, http, engine, options, http_options, ops, shutdown).await
}

/// [`serve`], with operations settings: a metrics listener of its own, and a drain period
/// between `shutdown` resolving and the listeners closing.
pub async fn serve_with(
    grpc: TcpListener,
    http: TcpListener,
    engine: Arc<Engine>,
    options: Options,
    http_options: HttpOptions,
    ops_options: OpsOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Registers the stream gauges and event counters now, so they read 0 rather than being
    // absent before the first stream.
    metrics::hot();
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let store = engine.store().clone();
    let streams = events::Streams {
        hub: events::Hub::start(store.clone(), options.recheck, stop.clone(), &tasks)?,
        store: store.clone(),
        heartbeat: options.heartbeat,
        shutdown: stop.clone(),
        revocations: revocation::Revocations::start(store.clone(), stop.clone(), &tasks),
        tasks,
    };
    let app = app::App {
        engine: engine.clone(),
        limits: options.limits,
        webhooks: http_options.webhooks.clone(),
        typing: Arc::default(),
        sim: options.sim.clone(),
    };
    webhooks::start(
        store.clone(),
        http_options.webhooks,
        stop.clone(),
        &streams.tasks,
    );
    let engine_for_admin = engine.clone();
    streams
        .tasks
        .spawn(forget_expired_keys(engine, stop.clone()));
    streams.tasks.spawn(metrics_upkeep(stop.clone()));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health = health::Health::new(streams.store.clone(), health_reporter).await;
    let faults = faults::Faults::start(
        options.sim.clone(),
        store.clone(),
        stop.clone(),
        &streams.tasks,
    )
    .await;
    let admin = app::AdminApp::new(
        engine_for_admin,
        options.limits,
        options.sim.clone(),
        faults.clone(),
        app.typing.clone(),
        streams.revocations.clone(),
    );
    let guard = guard::Guard::new(app.clone(), options.net.clone(), faults);
    let router = http::router(http::Http {
        guard: guard.clone(),
        app: app.clone(),
        admin,
        streams: streams.clone(),
        body_limit: http_options.body_limit,
        health: health.clone(),
    });
    let metrics_stop = stop.clone();
    let metrics_served = async {
        let Some(listener) = ops_options.metrics else {
            return Ok(());
        };
        let result = axum::serve(listener, http::metrics_router())
            .with_graceful_shutdown(metrics_stop.clone().cancelled_owned())
            .await;
        metrics_stop.cancel();
        result
    };

    // Once per process, with the reason logged if the cap must come down.
    let conn_limits = net::fit_open_files(options.conn.clone());
    let grpc_stop = stop.clone();
    let grpc_tls = options.tls.clone();
    let grpc_served = async {
        let served = grpc::serve(
            grpc::Grpc {
                guard,
                streams: streams.clone(),
            },
            health_service,
            grpc,
            grpc_tls.as_ref(),
            conn_limits.clone(),
            grpc_stop.clone().cancelled_owned(),
        );
        // Connection cap, timeouts, TLS, HTTP/2 limits, bounded shutdown: `net`, as HTTP.
        let result = served.await;
        // One server failing stops the other.
        grpc_stop.cancel();
        result
    };
    let http_stop = stop.clone();
    let http_served = async {
        // Connection cap, header and idle timeouts, TLS, bounded shutdown: `net`.
        let conn = conn_limits.clone();
        let tls = options.tls.as_ref().map(tls::Tls::acceptor);
        let shutdown = http_stop.clone().cancelled_owned();
        let result = net::serve(http, router, conn, tls, net::Protocol::Http, shutdown).await;
        http_stop.cancel();
        result
    };
    let trigger = async {
        let requested = tokio::select! {
            _ = shutdown => true,
            _ = stop.cancelled() => false,
        };
        if requested {
            // Say we are going away, and keep serving while load balancers notice.
            health.drain().await;
            if !ops_options.drain.is_zero() {
                tracing::info!(drain_ms = ops_options.drain.as_millis() as u64, "draining");
                tokio::select! {
                    _ = tokio::time::sleep(ops_options.drain) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        // Open streams would keep the servers waiting forever; this ends them too.
        stop.cancel();
        health.stopped().await;
    };
    let (grpc_result, http_result, metrics_result, ()) =
        tokio::join!(grpc_served, http_served, metrics_served, trigger);
    streams.tasks.close();
    streams.tasks.wait().await;
    grpc_result.and(http_result).and(metrics_result)
}

/// Folds buffered histogram samples now and then, until `stop` (see
/// [`metrics::UPKEEP_EVERY`]).
async fn metrics_upkeep(stop: CancellationToken) {
    let mut every = tokio::time::interval(metrics::UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => metrics::upkeep(),
        }
    }
}

/// Deletes expired idempotency keys now and then, until `stop`.
async fn forget_expired_keys(engine: Arc<Engine>, stop: CancellationToken) {
    let mut every = tokio::time::interval(FORGET_KEYS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {
                if let Err(err) = engine.forget_expired_keys().await {
                    tracing::warn!(error = %err, "cannot delete expired idempotency keys");
                }
            }
        }
    }
}

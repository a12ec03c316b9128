//! imgroups server: the transports over the engine.
//!
//! It depends on the ports only ([`imgroups_core::port`]): the binary decides which store and
//! which backend the [`Engine`] it is given works through.
//!
//! Layout:
//! - [`serve`] (this file): a server is a function of already-bound listeners (gRPC and
//!   HTTP), an engine and one shutdown future.
//! - `api`: the application functions, wire request in and wire response out, shared by every
//!   transport.
//! - `grpc`: the tonic services (`GroupService`, `ChatService`, `EventService`).
//! - `events`: live subscriptions and catch-up over the durable log; the hub that reads each
//!   notified commit's events once for every live subscriber.
//! - `http`: the HTTP/JSON routes (same application functions), the SSE event stream and the
//!   webhook management routes.
//! - [`webhooks`]: signed, retried, durable-cursor webhook delivery.
//! - `wire`: the single error table and domain ⇄ wire conversions.

mod api;
mod events;
mod grpc;
mod http;
pub mod webhooks;
mod wire;

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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::{Engine, Limits};
use imgroups_proto::pb;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest gRPC message accepted or sent. The official SDK allows 100 MiB each way; icons
/// are limited separately, with a precise error, by [`Limits::max_icon_bytes`].
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    /// Silence after which a live stream sends a heartbeat frame.
    pub heartbeat: Duration,
    pub limits: Limits,
    /// How often live streams re-read the heads of their accounts, in case a commit notice
    /// was lost (notices from other processes are hints).
    pub recheck: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_secs(30),
            limits: Limits::default(),
            recheck: Duration::from_secs(5),
        }
    }
}

/// How often expired idempotency keys are deleted.
const FORGET_KEYS_EVERY: Duration = Duration::from_secs(60);

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes. The default fits a 10 MiB icon in base64
    /// (×4/3) with room to spare.
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
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let store = engine.store().clone();
    let streams = events::Streams {
        hub: events::Hub::start(store.clone(), options.recheck, stop.clone(), &tasks)?,
        store: store.clone(),
        heartbeat: options.heartbeat,
        shutdown: stop.clone(),
        tasks,
    };
    let app = api::App {
        engine: engine.clone(),
        limits: options.limits,
    };
    webhooks::start(store, http_options.webhooks, stop.clone(), &streams.tasks);
    streams
        .tasks
        .spawn(forget_expired_keys(engine, stop.clone()));
    let router = http::router(http::Http {
        app: app.clone(),
        streams: streams.clone(),
        body_limit: http_options.body_limit,
    });

    let grpc_stop = stop.clone();
    let grpc_served = async {
        let result = grpc_server(
            app,
            streams.clone(),
            grpc,
            grpc_stop.clone().cancelled_owned(),
        )
        .await
        .map_err(std::io::Error::other);
        // One server failing stops the other.
        grpc_stop.cancel();
        result
    };
    let http_stop = stop.clone();
    let http_served = async {
        // Small JSON answers must not wait for the peer's delayed ACK (Nagle).
        let http = axum::serve::ListenerExt::tap_io(http, |tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
        let result = axum::serve(http, router)
            .with_graceful_shutdown(http_stop.clone().cancelled_owned())
            .await;
        http_stop.cancel();
        result
    };
    let trigger = async {
        tokio::select! {
            _ = shutdown => {}
            _ = stop.cancelled() => {}
        }
        // Open streams would keep the servers waiting forever; this ends them too.
        stop.cancel();
    };
    let (grpc_result, http_result, ()) = tokio::join!(grpc_served, http_served, trigger);
    streams.tasks.close();
    streams.tasks.wait().await;
    grpc_result.and(http_result)
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

/// The gRPC server on `listener`, until `shutdown` resolves (which must also end open streams).
async fn grpc_server(
    app: api::App,
    streams: events::Streams,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let grpc = grpc::Grpc { app, streams };
    let encoded = grpc.clone();
    let groups = pb::group_service_server::GroupServiceServer::new(grpc.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let chats = pb::chat_service_server::ChatServiceServer::new(grpc.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let events = pb::event_service_server::EventServiceServer::new(grpc)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let routes = tonic::service::Routes::new(groups)
        .add_service(chats)
        .add_service(events)
        .into_axum_router()
        .fallback(unknown_method);
    // More specific than the services' own `/Service/*` routes, so these win.
    let routes = encoded_route::<grpc::SubscribeGroupEvents>(routes, &encoded);
    let routes = encoded_route::<grpc::CatchUpEvents>(routes, &encoded);

    // `Server::tcp_nodelay` only reaches listeners tonic binds itself, not this one: without
    // TCP_NODELAY on each accepted socket, Nagle + delayed ACK stalls responses ~40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        // Clients (the official SDK among them) ping every 30 s; answer, and ping idle
        // connections ourselves so dead peers are noticed.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
        .add_routes(tonic::service::Routes::from(routes))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Serves `M` through [`grpc::Encoded`] instead of the generated service.
fn encoded_route<M: grpc::EncodedMethod>(router: axum::Router, grpc: &grpc::Grpc) -> axum::Router {
    let route = grpc::Encoded::<M>::new(grpc.clone());
    router.route(
        M::PATH,
        axum::routing::any(move |req: ::http::Request<axum::body::Body>| route.clone().serve(req)),
    )
}

/// Any service or method we do not implement: UNIMPLEMENTED with `operationNotSupported`, in
/// the same trailers-only shape tonic uses for its own errors.
async fn unknown_method(uri: ::http::Uri) -> ::http::Response<axum::body::Body> {
    let method = uri.path().trim_start_matches('/').to_owned();
    let status = wire::to_status(api::unimplemented(&method));
    status.into_http()
}

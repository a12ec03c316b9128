//! imgroups server: the transports over the engine and store.
//!
//! Layout:
//! - [`serve`] (this file): a server is a function of an already-bound listener, a store and
//!   a shutdown future.
//! - `api`: the application functions, wire request in and wire response out, shared by every
//!   transport.
//! - `grpc`: the tonic services (`GroupService`, `ChatService`, `EventService`).
//! - `events`: live subscriptions and catch-up over the durable log.
//! - `wire`: the single error table and domain ⇄ wire conversions.

mod api;
mod events;
mod grpc;
mod wire;

use std::future::Future;
use std::time::Duration;

use imgroups_core::Limits;
use imgroups_proto::pb;
use imgroups_store::Store;
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// Serves gRPC on `listener` until `shutdown` resolves; then stops accepting, ends open event
/// streams, lets in-flight calls finish and returns.
pub async fn serve_grpc(
    listener: TcpListener,
    store: Store,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let streams = events::Streams {
        store: store.clone(),
        heartbeat: options.heartbeat,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    let grpc = grpc::Grpc {
        app: api::App {
            store,
            limits: options.limits,
        },
        streams: streams.clone(),
    };
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

    let stop = streams.shutdown.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
        // Clients (the official SDK among them) ping every 30 s; answer, and ping idle
        // connections ourselves so dead peers are noticed.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
        .add_routes(tonic::service::Routes::from(routes))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            // Open streams would keep the server waiting forever; end them now.
            stop.cancel();
        })
        .await;
    streams.tasks.close();
    streams.tasks.wait().await;
    result
}

/// Any service or method we do not implement: UNIMPLEMENTED with `operationNotSupported`, in
/// the same trailers-only shape tonic uses for its own errors.
async fn unknown_method(uri: http::Uri) -> http::Response<axum::body::Body> {
    let method = uri.path().trim_start_matches('/').to_owned();
    let status = wire::to_status(api::unimplemented(&method));
    status.into_http()
}

//! gRPC transport: a route per registered operation (`crate::rpc`), each admitted by the
//! guard, then served by tonic with the prost codec; nothing spells an RPC by hand.
//!
//! Layout:
//! - this file: the server ([`serve`]) and its router: the generic unary route, the
//!   UNIMPLEMENTED answers for the rest of the method table, gRPC health and reflection.
//! - `streams`: the server-streaming methods, whose messages are encoded before the
//!   transport (one encoding per commit shared by every live subscriber).
//! - `guard`: what a call must pass before its message is read.

pub(crate) mod guard;
pub(crate) mod streams;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use imgroups_proto::methods::{method, Method};
use tokio::net::TcpListener;
use tonic::Status;

use self::guard::Admission;
use self::streams::EncodedMethod;
use crate::app::Caller;
use crate::events::Streams;
use crate::guard::Guard;
use crate::rpc::{self, Registry, Rpc, Served};
use crate::wire::to_status;
use crate::{net, ConnLimits, MAX_MESSAGE_BYTES};

/// What every route shares.
#[derive(Clone)]
pub(crate) struct Grpc {
    pub(crate) guard: Guard,
    pub(crate) streams: Streams,
}

/// The gRPC server on `listener`, until `shutdown` resolves (which must also end open streams).
pub(crate) async fn serve(
    grpc: Grpc,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    listener: TcpListener,
    tls: Option<&crate::tls::Tls>,
    conn: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Health and reflection take no token: only our routes are guarded.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(imgroups_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(reflection_failed);
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_failed);
    let mut routes = tonic::service::Routes::new(health);
    // The descriptors are ours and compiled in: failing here is a bug, logged, and the server
    // runs without reflection rather than not at all.
    if let (Ok(v1), Ok(v1alpha)) = (reflection_v1, reflection_v1alpha) {
        routes = routes.add_service(v1).add_service(v1alpha);
    }
    let routes = routes
        .into_axum_router()
        .merge(router(grpc))
        .fallback(unknown_method);

    // Capped, idle-timed connections with TCP_NODELAY (`net::accept`); tonic does the TLS
    // handshake on them when configured.
    let incoming = net::accept(listener, &conn, "grpc");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls.grpc())?;
    }
    server
        .max_concurrent_streams(conn.max_streams_per_connection)
        .initial_stream_window_size(conn.stream_window)
        .initial_connection_window_size(conn.stream_window)
        .http2_max_header_list_size(net::H2_MAX_HEADER_LIST)
        .http2_max_pending_accept_reset_streams(Some(net::H2_MAX_PENDING_RESETS))
        .http2_max_local_error_reset_streams(Some(net::H2_MAX_LOCAL_RESETS))
        // Clients (the official SDK among them) ping every 30 s; answer, and ping idle
        // connections ourselves so dead peers are noticed.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
        // Request ids, metrics and the log line, around the whole router so they see every
        // route and the fallback; a call passes one boxed route, not one more per layer.
        .layer(crate::observe::ObserveGrpcLayer)
        .add_routes(tonic::service::Routes::from(routes))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

fn reflection_failed(err: tonic_reflection::server::Error) {
    tracing::error!(error = %err, "cannot build the reflection service");
}

/// Our routes: one per registered operation, and UNIMPLEMENTED for every other method of a
/// service we serve (the rest is [`unknown_method`], the server's fallback).
pub(crate) fn router(grpc: Grpc) -> axum::Router {
    let mut routes = Routes(axum::Router::new());
    rpc::register(&mut routes);
    let served = Served::get();
    let mut router = routes.0;
    for method in served.unimplemented() {
        if served.serves_service(method.service) {
            let admission = admission(method, false);
            let name = served.unimplemented_name(method);
            router = router.route(
                method.path,
                any(move |State(grpc): State<Arc<Grpc>>, req: Request| {
                    unimplemented(grpc, admission, name, req)
                }),
            );
        }
    }
    // One reference-counted state: a call clones one pointer, not every handle in it.
    router.with_state(Arc::new(grpc))
}

fn admission(method: &'static Method, large: bool) -> Admission {
    Admission {
        name: method.name,
        large,
        streaming: method.server_streaming,
    }
}

/// Adds a route per registration.
struct Routes(axum::Router<Arc<Grpc>>);

impl Registry for Routes {
    fn rpc<R: Rpc>(&mut self) {
        // A registration missing from the table is logged by `Served`.
        let Some(method) = method(R::PATH) else {
            return;
        };
        let admission = admission(method, R::LARGE_BODY);
        let router = std::mem::take(&mut self.0);
        self.0 = router.route(
            R::PATH,
            any(move |State(grpc): State<Arc<Grpc>>, req: Request| {
                unary::<R>(grpc, admission, req)
            }),
        );
    }

    fn stream<S: EncodedMethod>(&mut self) {
        let Some(method) = method(S::PATH) else {
            return;
        };
        let admission = admission(method, false);
        let router = std::mem::take(&mut self.0);
        self.0 = router.route(
            S::PATH,
            any(move |State(grpc): State<Arc<Grpc>>, req: Request| {
                streams::serve::<S>(grpc, admission, req)
            }),
        );
    }
}

/// One unary call of `R`: admitted by the guard, decoded, run, encoded.
async fn unary<R: Rpc>(grpc: Arc<Grpc>, method: Admission, req: Request) -> Response {
    let admitted = match guard::admit(&grpc.guard, method, req).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let mut server =
        tonic::server::Grpc::new(tonic_prost::ProstCodec::<R::Resp, R::Req>::default())
            .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
    let call = Call::<R> {
        state: Some((grpc, admitted.caller)),
        rpc: PhantomData,
    };
    server
        .unary(call, admitted.req)
        .await
        .map(axum::body::Body::new)
}

/// One call of `R`, until tonic hands it the decoded request.
struct Call<R> {
    state: Option<(Arc<Grpc>, Caller)>,
    rpc: PhantomData<fn() -> R>,
}

type CallFuture<T> =
    Pin<Box<dyn Future<Output = std::result::Result<tonic::Response<T>, Status>> + Send>>;

impl<R: Rpc> tonic::server::UnaryService<R::Req> for Call<R> {
    type Response = R::Resp;
    type Future = CallFuture<R::Resp>;

    fn call(&mut self, req: tonic::Request<R::Req>) -> CallFuture<R::Resp> {
        let state = self.state.take();
        Box::pin(async move {
            // tonic calls a service once per request.
            let (grpc, caller) = state.ok_or_else(|| Status::internal("called twice"))?;
            R::call(&grpc.guard.app, &caller, req.into_inner())
                .await
                .map(tonic::Response::new)
                .map_err(to_status)
        })
    }
}

/// A method of a service we serve in part: admitted like the others (so a bad token is
/// still `unauthenticated`), then UNIMPLEMENTED.
async fn unimplemented(
    grpc: Arc<Grpc>,
    method: Admission,
    name: &'static str,
    req: Request,
) -> Response {
    match guard::admit(&grpc.guard, method, req).await {
        Ok(_) => guard::error(rpc::unimplemented(name)),
        Err(response) => response,
    }
}

/// Any other path (a service we do not serve at all, or no method of the protocol):
/// UNIMPLEMENTED with `operationNotSupported`, in the same trailers-only shape tonic uses for
/// its own errors, without a look at the token.
async fn unknown_method(uri: http::Uri) -> Response {
    guard::error(rpc::unimplemented(uri.path().trim_start_matches('/')))
}

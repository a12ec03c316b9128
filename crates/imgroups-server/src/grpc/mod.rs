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

use std::collections::HashMap;
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

/// The gRPC server on `listener`, until `shutdown` resolves (which must also end open
/// streams); then open connections get at most [`ConnLimits::shutdown_grace`].
///
/// Served by hyper through `net::serve`, as the HTTP listener is, rather than by tonic's
/// server: tonic's builder has no setting for hyper's HTTP/2 send buffer (~400 KiB per stream
/// by default), which a client that advertises a huge window and stops reading could fill in
/// every stream (issue 26). What tonic's server did per call is here too: the caller's
/// `grpc-timeout` ([`Deadline`]); its HTTP/2 settings are in `net::connection_builder`.
pub(crate) async fn serve(
    grpc: Grpc,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    listener: TcpListener,
    tls: Option<&crate::tls::Tls>,
    conn: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
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
    let (ours, router) = router(grpc);
    let routes = routes
        .into_axum_router()
        .merge(router)
        .fallback(unknown_method);
    let dispatch = Dispatch {
        ours,
        rest: tonic::service::Routes::from(routes),
    };
    // Request ids, metrics and the log line, around the whole router so they see every route
    // and the fallback; a call passes one boxed route, not one more per layer. The deadline
    // is outside it, where tonic's server had it.
    let service = Deadline(tower::Layer::layer(
        &crate::observe::ObserveGrpcLayer,
        dispatch,
    ));
    let tls = tls.map(crate::tls::Tls::grpc);
    net::serve(listener, service, conn, tls, net::Protocol::Grpc, shutdown).await
}

/// The caller's deadline (the `grpc-timeout` header), as tonic's server kept it: a call whose
/// response has not started by then is dropped and answered CANCELLED "Timeout expired" (a
/// stream, once started, is not timed). The official SDK sends none (docs/protocol.md).
#[derive(Clone)]
struct Deadline<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<
        http::Request<B>,
        Response = crate::observe::GrpcResponse,
        Error = std::convert::Infallible,
    >,
{
    type Response = crate::observe::GrpcResponse;
    type Error = std::convert::Infallible;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let sleep = req
            .headers()
            .get("grpc-timeout")
            .and_then(grpc_timeout)
            .map(tokio::time::sleep);
        DeadlineFuture {
            inner: self.0.call(req),
            sleep,
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's response future, given up at its deadline.
    struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl<F> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<crate::observe::GrpcResponse, std::convert::Infallible>>,
{
    type Output = F::Output;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let ready @ std::task::Poll::Ready(_) = this.inner.poll(cx) {
            return ready;
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => {
                std::task::ready!(sleep.poll(cx));
                // tonic's answer to its own `TimeoutExpired`.
                let status = Status::cancelled(tonic::TimeoutExpired(()).to_string());
                std::task::Poll::Ready(Ok(status.into_http()))
            }
            None => std::task::Poll::Pending,
        }
    }
}

/// A `grpc-timeout` value (gRPC over HTTP/2: at most 8 digits and a unit), `None` when
/// malformed (ignored, as tonic does).
fn grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 60 * 60),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn reflection_failed(err: tonic_reflection::server::Error) {
    tracing::error!(error = %err, "cannot build the reflection service");
}

/// A registered operation's route as [`Dispatch`] calls it.
type Endpoint = fn(Arc<Grpc>, Admission, Request) -> Pin<Box<dyn Future<Output = Response> + Send>>;

/// The registered operations by path, served without axum's router (see [`Dispatch`]).
pub(crate) struct Ours {
    grpc: Arc<Grpc>,
    routes: HashMap<&'static str, (Admission, Endpoint)>,
}

/// The gRPC router: a registered operation by its exact path, found with one hash lookup;
/// anything else (health, reflection, the UNIMPLEMENTED answers, the fallback) through
/// axum's router as before.
///
/// axum's path router costs a call more than the lookup: it records the matched path and the
/// (empty) URL parameters in the request's extensions (a map allocated for them), clones the
/// boxed route, and boxes the route's future around the handler's — ~2.5k instructions of a
/// write's ~100k (BENCHMARKS.md, issue 29). The answer is the one axum's route gives: the
/// same handler, and `content-length` set as axum sets it. Only `POST` (every gRPC call) takes
/// this way; a request with another method gets axum's handling of it.
#[derive(Clone)]
struct Dispatch {
    ours: Arc<Ours>,
    rest: tonic::service::Routes,
}

impl<B> tower::Service<http::Request<B>> for Dispatch
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = crate::observe::GrpcResponse;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        DispatchFuture,
        <tonic::service::Routes as tower::Service<http::Request<B>>>::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        tower::Service::<http::Request<B>>::poll_ready(&mut self.rest, cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let found = match req.method() == http::Method::POST {
            true => self.ours.routes.get(req.uri().path()),
            false => None,
        };
        match found {
            Some(&(admission, endpoint)) => {
                let call = endpoint(
                    self.ours.grpc.clone(),
                    admission,
                    req.map(axum::body::Body::new),
                );
                futures::future::Either::Left(DispatchFuture { call })
            }
            None => futures::future::Either::Right(self.rest.call(req)),
        }
    }
}

/// A registered operation's call, answered as axum's route would answer it.
pub(crate) struct DispatchFuture {
    call: Pin<Box<dyn Future<Output = Response> + Send>>,
}

impl Future for DispatchFuture {
    type Output = Result<crate::observe::GrpcResponse, std::convert::Infallible>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut response = std::task::ready!(self.call.as_mut().poll(cx));
        // What axum's route does to every answer of a POST: a body of known length says so.
        let size = axum::body::HttpBody::size_hint(response.body()).exact();
        if let Some(size) = size {
            let headers = response.headers_mut();
            if !headers.contains_key(http::header::CONTENT_LENGTH) {
                headers.insert(http::header::CONTENT_LENGTH, size.into());
            }
        }
        std::task::Poll::Ready(Ok(response.map(tonic::body::Body::new)))
    }
}

/// Our routes: one per registered operation (by path, for [`Dispatch`]), and UNIMPLEMENTED
/// for every other method of a service we serve (the rest is [`unknown_method`], the
/// server's fallback). The router also has the registered operations' routes, for requests
/// [`Dispatch`] passes on (another HTTP method than `POST`).
pub(crate) fn router(grpc: Grpc) -> (Arc<Ours>, axum::Router) {
    let mut routes = Routes(axum::Router::new(), HashMap::new());
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
    let grpc = Arc::new(grpc);
    let ours = Arc::new(Ours {
        grpc: grpc.clone(),
        routes: routes.1,
    });
    (ours, router.with_state(grpc))
}

fn admission(method: &'static Method, large: bool) -> Admission {
    Admission {
        name: method.name,
        large,
        streaming: method.server_streaming,
    }
}

/// Adds a route per registration, to the router and to [`Ours`].
struct Routes(
    axum::Router<Arc<Grpc>>,
    HashMap<&'static str, (Admission, Endpoint)>,
);

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
        self.1.insert(
            R::PATH,
            (admission, |grpc, admission, req| {
                Box::pin(unary::<R>(grpc, admission, req))
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
        self.1.insert(
            S::PATH,
            (admission, |grpc, admission, req| {
                Box::pin(streams::serve::<S>(grpc, admission, req))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &'static str) -> Option<Duration> {
        grpc_timeout(&http::HeaderValue::from_static(value))
    }

    #[test]
    fn grpc_timeouts_parse_as_the_spec_says() {
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout("40m"), Some(Duration::from_millis(40)));
        assert_eq!(timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        // At most 8 digits, a known unit, nothing else (tonic also took a sign).
        assert_eq!(timeout("123456789S"), None);
        assert_eq!(timeout("S"), None);
        assert_eq!(timeout("10"), None);
        assert_eq!(timeout("10x"), None);
        assert_eq!(timeout("+1S"), None);
        assert_eq!(timeout(""), None);
    }
}

//! HTTP/JSON transport (docs/protocol.md §1, §3, §9): the same operations as gRPC
//! (`crate::rpc`), under the colon-verb routes the official SDK's `createHttpClient` calls, in
//! proto3 JSON.
//!
//! Layout:
//! - this file: the route table ([`routes`]: every registered operation at its annotated
//!   route, UNIMPLEMENTED for the rest of the protocol, then the routes of our own), the
//!   router, and the error envelope every non-2xx answer goes through.
//! - `rpc`: the generic handler of an operation's route.
//! - `decode`: bodies and query strings into messages; the body timeout.
//! - `sse`: `GET /v1/events:stream`, the resumable Server-Sent-Events stream.
//! - `hooks`: `/v1/webhooks` management for the token's account.
//! - `health`: `/healthz`, `/readyz` and `/metrics`, which need no token.
//! - `console`: the web console's page and its `/console/api/` routes (admin token only), and
//!   what a browser asks the root for (`/` and `/console` redirect to `/console/`, a favicon).
//!
//! Every error body has the shape of docs/protocol.md §6.3, decided by [`wire`]: a handler returns
//! [`ApiError`], which leaves the error in the response's extensions, and [`envelope`] renders
//! it with the request id. Anything that still arrives as a 4xx or 5xx without a JSON body (an
//! extractor's own rejection, say) is rendered there too, so no error is plain text or HTML.

pub(crate) mod console;
pub(crate) mod decode;
mod health;
mod hooks;
mod rpc;
mod sse;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use imgroups_core::Error;
use serde::Serialize;

use crate::app::{AdminApp, App, Caller};
use crate::events::Streams;
use crate::observe::{RequestId, REQUEST_ID, UNKNOWN_METHOD};
use crate::rpc::{Registry, Served};
use crate::wire::{self, HttpOnly};

pub(crate) use decode::{decode_body, BodyResult, QueryResult};

/// Everything a route needs.
#[derive(Clone)]
pub(crate) struct Http {
    /// Token, rate limit and stream cap, checked before a body is read.
    pub(crate) guard: crate::guard::Guard,
    pub(crate) app: App,
    /// What the console does.
    pub(crate) admin: AdminApp,
    pub(crate) streams: Streams,
    /// Largest body of an operation registered as large (the icon upload), in bytes; other
    /// routes take [`crate::NetLimits::max_message_bytes`].
    pub(crate) body_limit: usize,
    pub(crate) health: crate::health::Health,
}

/// One route: method, path (as in the OpenAPI document) and handler.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    /// Whether its body may be as large as an icon.
    large: bool,
    handler: MethodRouter<Http>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<Http>) -> Route {
    Route {
        method,
        path,
        large: false,
        handler,
    }
}

/// Adds the route of each registered operation whose method has an HTTP annotation.
struct RpcRoutes(Vec<Route>);

impl Registry for RpcRoutes {
    fn rpc<R: crate::rpc::Rpc>(&mut self) {
        let Some(method) = imgroups_proto::methods::method(R::PATH) else {
            return;
        };
        let Some(http) = &method.http else {
            return;
        };
        if let (Some((verb, _)), Some(handler)) = (rpc::verb(http), rpc::handler::<R>(method, http))
        {
            self.0.push(Route {
                method: verb,
                path: http.path,
                large: R::LARGE_BODY,
                handler,
            });
        }
    }

    /// Streams are gRPC only; over HTTP, events come by SSE and webhooks.
    fn stream<S: crate::grpc::streams::EncodedMethod>(&mut self) {}
}

/// Every route served. The router, the metric labels and the OpenAPI test are built from it.
pub(crate) fn routes() -> Vec<Route> {
    let mut rpcs = RpcRoutes(Vec::new());
    crate::rpc::register(&mut rpcs);
    let mut routes = rpcs.0;
    // The protocol's routes (the official SDK's, docs/protocol.md §9) of RPCs this server does
    // not implement: authenticated, then UNIMPLEMENTED with `operationNotSupported`, with the
    // same `method` context as over gRPC. Unlike gRPC, which answers calls to whole services
    // it does not serve without looking at the token, every route here checks the token
    // first. Paths unknown to the protocol get 404.
    let served = Served::get();
    for method in served.unimplemented() {
        let name = served.unimplemented_name(method);
        // The proto3-JSON route and the raw-byte ones (files) alike.
        for http in method.http.iter().chain(method.raw_http) {
            if let (Some((verb, _)), Some(handler)) =
                (rpc::verb(http), rpc::unimplemented(method, http, name))
            {
                routes.push(route(verb, http.path, handler));
            }
        }
    }
    routes.extend([
        // Events over HTTP
        route(Method::GET, "/v1/events:stream", get(sse::stream)),
        route(Method::POST, "/v1/webhooks", post(hooks::add)),
        route(Method::GET, "/v1/webhooks", get(hooks::list)),
        route(Method::DELETE, "/v1/webhooks/{id}", delete(hooks::remove)),
        route(Method::POST, "/v1/webhooks:resume", post(hooks::resume)),
        // This document
        route(Method::GET, "/openapi.json", get(openapi)),
        // Operations, without a token
        route(Method::GET, "/healthz", get(health::healthz)),
        route(Method::GET, "/readyz", get(health::readyz)),
        route(Method::GET, "/metrics", get(health::metrics)),
    ]);
    routes
}

/// `GET /metrics` alone, for a metrics listener of its own.
pub(crate) fn metrics_router() -> Router {
    Router::new().route("/metrics", get(health::metrics))
}

/// Each route's method label (`GET /v1/chats:get`), by path as matched: a fixed set, made once.
static METHOD_LABELS: std::sync::LazyLock<
    std::collections::HashMap<&'static str, Vec<(Method, &'static str)>>,
> = std::sync::LazyLock::new(|| {
    let mut labels = std::collections::HashMap::<_, Vec<_>>::new();
    for r in routes() {
        let label: &'static str = Box::leak(format!("{} {}", r.method, r.path).into_boxed_str());
        labels.entry(r.path).or_default().push((r.method, label));
    }
    labels
});

/// The method label of a request routed to `path` (`None`: no route matched).
fn method_label(method: &Method, path: Option<&str>) -> &'static str {
    if path.is_some_and(console::is_console) {
        return "console";
    }
    path.and_then(|p| METHOD_LABELS.get(p))
        .and_then(|routes| routes.iter().find(|(m, _)| m == method))
        .map_or(UNKNOWN_METHOD, |(_, label)| label)
}

/// The HTTP application: routes, fallbacks, body limit and the error envelope.
pub(crate) fn router(state: Http) -> Router {
    let large_limit = state.body_limit;
    let limit = state.guard.limits.max_message_bytes;
    let body_timeout = state.guard.limits.body_timeout;
    let mut router = Router::new();
    for r in routes() {
        // The route layer's limit wins over the router's.
        let handler = if r.large {
            r.handler.layer(DefaultBodyLimit::max(large_limit))
        } else {
            r.handler
        };
        router = router.route(r.path, handler);
    }
    router
        .merge(console::router(large_limit))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            body_timeout,
            decode::body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            large_limit.max(limit),
            refuse_declared_over,
        ))
        .layer(axum::middleware::from_fn(envelope))
        .with_state(state)
}

/// A request's `content-length`, when it has one that parses.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses, before its body is touched, a request declaring a body larger than any route
/// takes (`largest`): hyper answers `Expect: 100-continue` only once a body is read, so such
/// a client gets 413 instead of an invitation to send gigabytes. Each operation's own, smaller
/// limit is checked the same way in its handler.
async fn refuse_declared_over(
    axum::extract::State(largest): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    match declared_length(req.headers()) {
        Some(len) if len > largest => ApiError::from(
            crate::guard::too_large(largest, "the request body").with("field", "body"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

// ------------------------------------------------------------------------------------ errors

/// A failed request, rendered by [`envelope`].
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    Domain(Error),
    Http(HttpOnly, String),
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::Domain(err)
    }
}

impl ApiError {
    /// The wire `error-code` (`chatNotFound`, …).
    fn error_code(&self) -> &'static str {
        match self {
            ApiError::Domain(err) => wire::code_of_error(err).error_code,
            ApiError::Http(kind, _) => wire::code_of_http_only(*kind).error_code,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(err) => wire::http_status_of(err.kind),
            ApiError::Http(kind, _) => wire::http_only_status(*kind),
        }
    }

    fn render(&self, request_id: &str) -> Response {
        let status = self.status();
        let body = match self {
            ApiError::Domain(err) => wire::error_body(err, request_id),
            ApiError::Http(kind, message) => {
                wire::to_http_body(&wire::code_of_http_only(*kind), message, &[], request_id)
            }
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let ApiError::Domain(err) = self {
            // The SDK's HTTP transport honours `Retry-After` (docs/protocol.md §6.3).
            let retry = err.context_value(crate::guard::RETRY_AFTER);
            if let Some(value) = retry.and_then(|v| HeaderValue::from_str(v).ok()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body needs the request id, which only the envelope knows.
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status();
        response.extensions_mut().insert(self);
        response
    }
}

type Reply = std::result::Result<Response, ApiError>;

/// Gives every request an id (the caller's `x-request-id` when it is a sane one), echoes it in
/// the `x-request-id` response header, and renders errors with it; then has the request
/// observed (`crate::observe`: counted, timed, logged). Runs after routing (it is a
/// [`Router::layer`]), so the matched route names the method.
async fn envelope(req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let request_id = RequestId::of(req.headers());
    let method = method_label(
        req.method(),
        req.extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str),
    );
    let mut response = next.run(req).await;
    let mut error_code = None;
    if let Some(err) = response.extensions_mut().remove::<ApiError>() {
        error_code = Some(err.error_code());
        response = err.render(&request_id.to_string());
    } else if is_error(response.status()) && !is_json(response.headers()) {
        // Not one of ours: an extractor or the framework answered. Same shape regardless.
        let err = stray_error(response.status());
        error_code = Some(err.error_code());
        response = err.render(&request_id.to_string());
    }
    if let Some(value) = request_id.header() {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    crate::observe::http_request(
        method,
        &request_id,
        response.status(),
        error_code,
        start.elapsed(),
    );
    response
}

/// A 4xx or 5xx: an answer that gets the error body. Redirects and other answers pass as they
/// are.
fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

fn stray_error(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::Http(HttpOnly::UnknownRoute, "no such route".into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::Http(
            HttpOnly::MethodNotAllowed,
            "method not allowed on this route".into(),
        ),
        s if s.is_client_error() => Error::invalid(format!("bad request ({})", s.as_u16())).into(),
        _ => {
            tracing::error!(status = status.as_u16(), "unexpected http error response");
            Error::internal().into()
        }
    }
}

async fn unknown_route(method: Method, uri: http::Uri) -> ApiError {
    ApiError::Http(
        HttpOnly::UnknownRoute,
        format!("no route {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: http::Uri) -> ApiError {
    ApiError::Http(
        HttpOnly::MethodNotAllowed,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

// ------------------------------------------------------------------------------ responses

/// The authenticated caller of a route of our own (SSE, webhooks). An extractor from the
/// request head, which axum runs before the body extractor: the body of a request without a
/// valid token, or over the account's rate limit, is never read. The same authentication as
/// gRPC: `authorization: Bearer <token>`, and the optional `x-idempotency-key`. An injected
/// fault names these routes by their path (`*` reaches them too).
pub(crate) struct Authed(pub(crate) Caller);

impl axum::extract::FromRequestParts<Http> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        h: &Http,
    ) -> std::result::Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let caller = h
            .guard
            .admit(
                parts.uri.path(),
                header("authorization"),
                header("x-idempotency-key"),
            )
            .await?;
        Ok(Authed(caller))
    }
}

/// A 200 with a JSON body.
pub(crate) fn json<T: Serialize>(value: &T) -> Reply {
    let bytes = serde_json::to_vec(value).map_err(|err| {
        tracing::error!(error = %err, "cannot encode a response as json");
        Error::internal()
    })?;
    let mut response = Response::new(Body::from(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The OpenAPI document of this surface (`crate::openapi`), made on first request; the
/// committed docs/openapi.json is the same text (a test keeps them equal).
async fn openapi() -> Response {
    static OPENAPI: std::sync::LazyLock<Bytes> =
        std::sync::LazyLock::new(|| Bytes::from(crate::openapi::render()));
    let mut response = Response::new(Body::from(OPENAPI.clone()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_exactly_the_routes_served() {
        let doc = crate::openapi::document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = routes()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}

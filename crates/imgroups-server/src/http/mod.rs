//! HTTP/JSON transport (docs/protocol.md §1, §3, §9): the same application functions as gRPC,
//! under the colon-verb routes the official SDK's `createHttpClient` calls, in proto3 JSON.
//!
//! Layout:
//! - this file: the route table, authentication, body and query decoding, the group and chat
//!   routes, and the error envelope every non-2xx answer goes through.
//! - `sse`: `GET /v1/events:stream`, the resumable Server-Sent-Events stream.
//! - `hooks`: `/v1/webhooks` management for the token's account.
//! - `ops`: `/healthz`, `/readyz` and `/metrics`, which need no token.
//! - `console`: the web console's page and its `/console/api/` routes (admin token only).
//!
//! Every error body has the shape of docs/protocol.md §6.3, decided by [`wire`]: a handler returns
//! [`ApiError`], which leaves the error in the response's extensions, and [`envelope`] renders
//! it with the request id. Anything that still arrives as a non-2xx without a JSON body (an
//! extractor's own rejection, say) is rendered there too, so no answer is plain text or HTML.

mod console;
mod hooks;
mod ops;
mod sse;

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodFilter, MethodRouter};
use axum::Router;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use imgroups_core::{Error, Result};
use imgroups_proto::pbjson_types::Empty;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{unimplemented, App, Caller};
use crate::events::Streams;
use crate::metrics::{RequestId, Transport, REQUEST_ID, UNKNOWN_METHOD};
use crate::wire::{self, HttpOnly};

/// The OpenAPI document of this surface, served at `GET /openapi.json`; the committed file is
/// the source (a test keeps it in sync with [`routes`]).
pub(crate) const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Everything a route needs.
#[derive(Clone)]
pub(crate) struct Http {
    /// Token, rate limit and stream cap, checked before a body is read.
    pub(crate) guard: crate::guard::Guard,
    pub(crate) app: App,
    pub(crate) streams: Streams,
    /// Largest `setIcon` request body accepted, in bytes; other routes take
    /// [`crate::NetLimits::max_message_bytes`].
    pub(crate) body_limit: usize,
    pub(crate) ops: crate::ops::Ops,
}

/// One route: method, path (as in the OpenAPI document) and handler.
pub(crate) struct Route {
    /// Implied by the handler; spelled out for the OpenAPI test.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    /// The RPC it serves (`SetDisplayName`), which an injected fault names.
    rpc: Option<&'static str>,
    handler: MethodRouter<Http>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<Http>) -> Route {
    Route {
        method,
        path,
        rpc: None,
        handler,
    }
}

/// A route that serves the RPC `rpc`.
fn rpc(
    method: Method,
    path: &'static str,
    rpc: &'static str,
    handler: MethodRouter<Http>,
) -> Route {
    Route {
        rpc: Some(rpc),
        ..route(method, path, handler)
    }
}

/// Every route served. The router is built from this table, and the OpenAPI test compares it
/// with the document.
pub(crate) fn routes() -> Vec<Route> {
    let mut routes = vec![
        // GroupService (docs/protocol.md §1.1)
        rpc(
            Method::POST,
            "/v1/groups:setDisplayName",
            "SetDisplayName",
            post(set_display_name),
        ),
        rpc(
            Method::POST,
            "/v1/groups:addParticipants",
            "AddParticipants",
            post(add_participants),
        ),
        rpc(
            Method::POST,
            "/v1/groups:removeParticipants",
            "RemoveParticipants",
            post(remove_participants),
        ),
        rpc(
            Method::POST,
            "/v1/groups:leave",
            "LeaveGroup",
            post(leave_group),
        ),
        rpc(
            Method::POST,
            "/v1/groups:setIcon",
            "SetIcon",
            post(set_icon),
        ),
        rpc(
            Method::POST,
            "/v1/groups:removeIcon",
            "RemoveIcon",
            post(remove_icon),
        ),
        rpc(Method::GET, "/v1/groups:icon", "GetIcon", get(get_icon)),
        // ChatService (docs/protocol.md §3)
        rpc(Method::POST, "/v1/chats", "CreateChat", post(create_chat)),
        rpc(Method::GET, "/v1/chats:get", "GetChat", get(get_chat)),
        rpc(
            Method::GET,
            "/v1/chats:count",
            "GetChatCount",
            get(get_chat_count),
        ),
        // Events over HTTP
        route(Method::GET, "/v1/events:stream", get(sse::stream)),
        route(Method::POST, "/v1/webhooks", post(hooks::add)),
        route(Method::GET, "/v1/webhooks", get(hooks::list)),
        route(Method::DELETE, "/v1/webhooks/{id}", delete(hooks::remove)),
        route(Method::POST, "/v1/webhooks:resume", post(hooks::resume)),
        // This document
        route(Method::GET, "/openapi.json", get(openapi)),
        // Operations, without a token
        route(Method::GET, "/healthz", get(ops::healthz)),
        route(Method::GET, "/readyz", get(ops::readyz)),
        route(Method::GET, "/metrics", get(ops::metrics)),
    ];
    for &(method, path, rpc) in UNIMPLEMENTED {
        let handler = move |_: Authed| async move { Reply::Err(unimplemented(rpc).into()) };
        let (method, filter) = match method {
            "GET" => (Method::GET, MethodFilter::GET),
            _ => (Method::POST, MethodFilter::POST),
        };
        let name = rpc.rsplit('/').next().unwrap_or(rpc);
        routes.push(self::rpc(
            method,
            path,
            name,
            axum::routing::on(filter, handler),
        ));
    }
    routes
}

/// The protocol's HTTP routes (the official SDK's, docs/protocol.md §9) of RPCs this server does
/// not implement: authenticated, then UNIMPLEMENTED with `operationNotSupported`, with the same
/// `method` context as over gRPC (ChatService's short names as in `grpc`, full gRPC paths for
/// whole services, as the gRPC fallback gives). Unlike gRPC, which answers calls to whole
/// services it does not serve without looking at the token, every route here checks the token
/// first. Paths unknown to the protocol get 404.
const UNIMPLEMENTED: &[(&str, &str, &str)] = &[
    ("POST", "/v1/chats:markRead", "MarkChatRead"),
    ("POST", "/v1/chats:setBackground", "SetBackground"),
    ("POST", "/v1/chats:removeBackground", "RemoveBackground"),
    ("POST", "/v1/chats:shareContactInfo", "ShareContactInfo"),
    ("POST", "/v1/chats:setTyping", "SetTyping"),
    ("GET", "/v1/chats:hasBackground", "HasBackground"),
    (
        "GET",
        "/v1/addresses:focusStatus",
        "photon.imessage.v1.AddressService/GetFocusStatus",
    ),
    (
        "GET",
        "/v1/addresses:imessageAvailability",
        "photon.imessage.v1.AddressService/GetIMessageAvailability",
    ),
    (
        "GET",
        "/v1/addresses:info",
        "photon.imessage.v1.AddressService/GetAddressInfo",
    ),
    (
        "GET",
        "/v1/attachments/{guid}",
        "photon.imessage.v1.AttachmentService/GetAttachmentInfo",
    ),
    (
        "GET",
        "/v1/attachments/{guid}/data",
        "photon.imessage.v1.AttachmentService/DownloadAttachment",
    ),
    (
        "GET",
        "/v1/attachments/{guid}/companion",
        "photon.imessage.v1.AttachmentService/DownloadCompanion",
    ),
    (
        "POST",
        "/v1/attachments:upload",
        "photon.imessage.v1.AttachmentService/UploadAttachment",
    ),
    (
        "POST",
        "/v1/locations:requestSharing",
        "photon.imessage.v1.LocationService/RequestFriendLocationSharing",
    ),
    (
        "GET",
        "/v1/locations:sharedFriend",
        "photon.imessage.v1.LocationService/GetSharedFriendLocation",
    ),
    (
        "GET",
        "/v1/locations:sharedFriends",
        "photon.imessage.v1.LocationService/ListSharedFriendLocations",
    ),
    (
        "GET",
        "/v1/messages/{guid}",
        "photon.imessage.v1.MessageService/GetMessage",
    ),
    (
        "GET",
        "/v1/messages:embeddedMedia",
        "photon.imessage.v1.MessageService/GetEmbeddedMedia",
    ),
    (
        "POST",
        "/v1/messages:edit",
        "photon.imessage.v1.MessageService/EditMessage",
    ),
    (
        "GET",
        "/v1/messages:listByChat",
        "photon.imessage.v1.MessageService/ListChatMessages",
    ),
    (
        "GET",
        "/v1/messages:listRecent",
        "photon.imessage.v1.MessageService/ListRecentMessages",
    ),
    (
        "POST",
        "/v1/messages:notifySilenced",
        "photon.imessage.v1.MessageService/NotifySilencedMessage",
    ),
    (
        "POST",
        "/v1/messages:placeSticker",
        "photon.imessage.v1.MessageService/PlaceSticker",
    ),
    (
        "POST",
        "/v1/messages:sendAttachment",
        "photon.imessage.v1.MessageService/SendAttachmentMessage",
    ),
    (
        "POST",
        "/v1/messages:sendCustomizedMiniApp",
        "photon.imessage.v1.MessageService/SendCustomizedMiniAppMessage",
    ),
    (
        "POST",
        "/v1/messages:sendMultipart",
        "photon.imessage.v1.MessageService/SendMultipartMessage",
    ),
    (
        "POST",
        "/v1/messages:sendText",
        "photon.imessage.v1.MessageService/SendTextMessage",
    ),
    (
        "POST",
        "/v1/messages:setReaction",
        "photon.imessage.v1.MessageService/SetReaction",
    ),
    (
        "POST",
        "/v1/messages:unsend",
        "photon.imessage.v1.MessageService/UnsendMessage",
    ),
    (
        "POST",
        "/v1/messages:updateCustomizedMiniApp",
        "photon.imessage.v1.MessageService/UpdateCustomizedMiniAppMessage",
    ),
    (
        "POST",
        "/v1/polls",
        "photon.imessage.v1.PollService/CreatePoll",
    ),
    (
        "GET",
        "/v1/polls/{guid}",
        "photon.imessage.v1.PollService/GetPoll",
    ),
    (
        "POST",
        "/v1/polls:addOption",
        "photon.imessage.v1.PollService/AddPollOption",
    ),
    (
        "POST",
        "/v1/polls:unvote",
        "photon.imessage.v1.PollService/UnvotePoll",
    ),
    (
        "POST",
        "/v1/polls:vote",
        "photon.imessage.v1.PollService/VotePoll",
    ),
];

/// The RPC a route serves (what an injected fault names), for the routes that have one;
/// others are named by their path (faults with method `*` reach them too).
fn rpc_of(path: &str) -> &str {
    static RPCS: std::sync::LazyLock<std::collections::HashMap<&'static str, &'static str>> =
        std::sync::LazyLock::new(|| {
            routes()
                .into_iter()
                .filter_map(|r| Some((r.path, r.rpc?)))
                .collect()
        });
    RPCS.get(path).copied().unwrap_or(path)
}

/// The one route whose body may be large.
const SET_ICON: &str = "/v1/groups:setIcon";

/// `GET /metrics` alone, for a metrics listener of its own.
pub(crate) fn metrics_router() -> Router {
    Router::new().route("/metrics", get(ops::metrics))
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
    if path.is_some_and(|p| p.starts_with("/console")) {
        return "console";
    }
    path.and_then(|p| METHOD_LABELS.get(p))
        .and_then(|routes| routes.iter().find(|(m, _)| m == method))
        .map_or(UNKNOWN_METHOD, |(_, label)| label)
}

/// The HTTP application: routes, fallbacks, body limit and the error envelope.
pub(crate) fn router(state: Http) -> Router {
    let icon_limit = state.body_limit;
    let limit = state.guard.limits.max_message_bytes;
    let body_timeout = state.guard.limits.body_timeout;
    let mut router = Router::new();
    for r in routes() {
        // Only the icon upload may be large (the route layer's limit wins over the router's).
        let handler = if r.path == SET_ICON {
            r.handler.layer(DefaultBodyLimit::max(icon_limit))
        } else {
            r.handler
        };
        router = router.route(r.path, handler);
    }
    router
        .merge(console::router(icon_limit))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            body_timeout,
            crate::guard::http_body_timeout,
        ))
        .layer(axum::middleware::from_fn(envelope))
        .with_state(state)
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
            ApiError::Domain(err) => wire::to_http_body(
                &wire::code_of_error(err),
                &err.message,
                &err.context,
                request_id,
            ),
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
/// the `x-request-id` response header, and renders errors with it; counts the request and
/// logs it (at `debug`, or `warn` for an error answer). Runs after routing (it is a
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
    } else if !response.status().is_success() && !is_json(response.headers()) {
        // Not one of ours: an extractor or the framework answered. Same shape regardless.
        let err = stray_error(response.status());
        error_code = Some(err.error_code());
        response = err.render(&request_id.to_string());
    }
    if let Some(value) = request_id.header() {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    crate::metrics::record_latency(Transport::Http, method, elapsed);
    crate::metrics::count_request(Transport::Http, method, status);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if response.status().is_client_error() || response.status().is_server_error() {
        tracing::warn!(request_id = %request_id, transport = "http", method, code = status, error_code, duration_us, "request failed");
    } else {
        tracing::debug!(request_id = %request_id, transport = "http", method, code = status, duration_us, "request");
    }
    response
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

// ------------------------------------------------------------------------ request decoding

/// The authenticated caller. An extractor from the request head, which axum runs before the
/// body extractor: the body of a request without a valid token, or over the account's rate
/// limit, is never read. The same authentication as gRPC: `authorization: Bearer <token>`,
/// and the optional `x-idempotency-key`.
pub(crate) struct Authed(pub(crate) Caller);

impl axum::extract::FromRequestParts<Http> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        h: &Http,
    ) -> std::result::Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let method = rpc_of(parts.uri.path());
        let caller = h
            .guard
            .admit(method, header("authorization"), header("x-idempotency-key"))
            .await?;
        Ok(Authed(caller))
    }
}

/// Lower-cases the first letter of a parser's message, so every message reads the same.
fn lower_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A request body as proto3 JSON. An empty body is `{}`.
pub(crate) fn decode_body<T: DeserializeOwned>(
    body: std::result::Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::guard::too_large(limit, "the request body").with("field", "body")
        } else if timed_out(&rejection) {
            Error::new(
                imgroups_core::ErrorKind::Timeout,
                "the request body was not received in time",
            )
            .with("field", "body")
        } else {
            Error::invalid(format!(
                "cannot read the request body: {}",
                lower_first(&rejection.body_text())
            ))
            .with("field", "body")
        }
    })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|err| {
        Error::invalid(format!(
            "invalid json body: {}",
            lower_first(&err.to_string())
        ))
        .with("field", "body")
    })
}

/// Whether the body failed because [`crate::guard::http_body_timeout`] cut it.
fn timed_out(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<crate::guard::BodyTimedOut>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Query parameters (camelCase or snake_case names) as a proto3 JSON message. `bools` names
/// the boolean fields, whose values must be `true` or `false`; every other value is a string.
pub(crate) fn decode_query<T: DeserializeOwned>(
    query: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>,
    bools: &[&str],
) -> Result<T> {
    let Query(pairs) = query.map_err(|rejection| {
        Error::invalid(format!(
            "invalid query string: {}",
            lower_first(&rejection.body_text())
        ))
        .with("field", "query")
    })?;
    let mut object = serde_json::Map::new();
    for (key, value) in pairs {
        let json = if bools.contains(&key.as_str()) {
            // What grpc-gateway accepts (Go's `strconv.ParseBool`); an empty value is an
            // error there too, not `false`.
            match value.as_str() {
                "true" | "True" | "TRUE" | "t" | "T" | "1" => serde_json::Value::Bool(true),
                "false" | "False" | "FALSE" | "f" | "F" | "0" => serde_json::Value::Bool(false),
                _ => {
                    return Err(Error::invalid(format!(
                        "query parameter {key} must be true or false, not {value:?}"
                    ))
                    .with("field", key))
                }
            }
        } else {
            serde_json::Value::String(value)
        };
        object.insert(key, json);
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
        Error::invalid(format!(
            "invalid query parameters: {}",
            lower_first(&err.to_string())
        ))
        .with("field", "query")
    })
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

/// Authenticates, decodes, runs `f` on the shared application, encodes.
async fn unary<Req, Resp, Fut>(
    h: &Http,
    caller: Caller,
    req: Result<Req>,
    f: impl FnOnce(App, Caller, Req) -> Fut,
) -> Reply
where
    Resp: Serialize,
    Fut: Future<Output = Result<Resp>>,
{
    let req = req?;
    let resp = f(h.app.clone(), caller, req).await?;
    json(&resp)
}

impl Http {
    /// The body limit of a POST route, by handler name: large for the icon upload only.
    fn limit_of(&self, handler: &str) -> usize {
        if handler == "set_icon" {
            self.body_limit
        } else {
            self.guard.limits.max_message_bytes
        }
    }
}

type BodyResult = std::result::Result<Bytes, BytesRejection>;
type QueryResult = std::result::Result<Query<Vec<(String, String)>>, QueryRejection>;

/// A POST route whose whole body is the request message.
macro_rules! post_route {
    ($name:ident, $method:ident) => {
        async fn $name(State(h): State<Http>, Authed(caller): Authed, body: BodyResult) -> Reply {
            let req = decode_body(body, h.limit_of(stringify!($name)));
            unary(&h, caller, req, |app, caller, req| async move {
                app.$method(&caller, req).await
            })
            .await
        }
    };
    ($name:ident, $method:ident, empty) => {
        async fn $name(State(h): State<Http>, Authed(caller): Authed, body: BodyResult) -> Reply {
            let req = decode_body(body, h.limit_of(stringify!($name)));
            unary(&h, caller, req, |app, caller, req| async move {
                app.$method(&caller, req).await.map(|()| Empty {})
            })
            .await
        }
    };
}

/// A GET route whose query parameters are the request message.
macro_rules! get_route {
    ($name:ident, $method:ident, $bools:expr) => {
        async fn $name(State(h): State<Http>, Authed(caller): Authed, query: QueryResult) -> Reply {
            let req = decode_query(query, $bools);
            unary(&h, caller, req, |app, caller, req| async move {
                app.$method(&caller, req).await
            })
            .await
        }
    };
}

post_route!(set_display_name, set_display_name);
post_route!(add_participants, add_participants);
post_route!(remove_participants, remove_participants);
post_route!(leave_group, leave_group, empty);
post_route!(set_icon, set_icon, empty);
post_route!(remove_icon, remove_icon, empty);
get_route!(get_icon, get_icon, &[]);
post_route!(create_chat, create_chat);
get_route!(get_chat, get_chat, &[]);
get_route!(
    get_chat_count,
    get_chat_count,
    &["includeArchived", "include_archived"]
);

async fn openapi() -> Response {
    let mut response = Response::new(Body::from(OPENAPI));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgroups_core::ErrorKind;
    use imgroups_proto::pb;

    #[test]
    fn openapi_lists_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is json");
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

    #[test]
    fn query_decoding() {
        let q = |s: &str| {
            let uri: http::Uri = format!("/x?{s}").parse().expect("uri");
            Query::<Vec<(String, String)>>::try_from_uri(&uri)
        };
        let req: pb::GetChatCountRequest =
            decode_query(q("includeArchived=true"), &["includeArchived"]).expect("decode");
        assert!(req.include_archived);
        let req: pb::GetIconRequest =
            decode_query(q("chatGuid=any%3B%2B%3Bchat1"), &[]).expect("decode");
        assert_eq!(req.chat_guid, "any;+;chat1");
        let err = decode_query::<pb::GetChatCountRequest>(
            q("includeArchived=maybe"),
            &["includeArchived"],
        )
        .expect_err("not a bool");
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        // Empty is not false (as in grpc-gateway).
        decode_query::<pb::GetChatCountRequest>(q("includeArchived="), &["includeArchived"])
            .expect_err("empty is not a bool");
        let req: pb::GetChatCountRequest =
            decode_query(q("includeArchived=F"), &["includeArchived"]).expect("decode");
        assert!(!req.include_archived);
    }
}

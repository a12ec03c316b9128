//! The HTTP route of a registered operation (`crate::rpc`), from its method's
//! `google.api.http` annotation in the method table: the verb and path template, and where
//! the request message comes from — the whole body (`body: "*"`), the query string and path
//! parameters (no body), or one field from the body and the rest from the query.
//!
//! As over gRPC, the token, rate limit and injected faults are checked before the body is read.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request, State};
use axum::routing::{on, MethodFilter, MethodRouter};
use imgroups_core::Result;
use imgroups_proto::methods::{HttpRoute, Method};
use serde_json::{Map, Value};

use super::decode::{body_value, decode_body, from_object, query_object, set_field};
use super::{json, ApiError, Http, Reply};
use crate::app::Caller;
use crate::rpc::{self, Rpc};

/// The verb of an annotation, as axum filters it.
pub(super) fn verb(route: &HttpRoute) -> Option<(http::Method, MethodFilter)> {
    let method = http::Method::from_bytes(route.verb.as_bytes()).ok()?;
    let filter = MethodFilter::try_from(method.clone()).ok()?;
    Some((method, filter))
}

/// The handler of `R` at its annotated route.
pub(super) fn handler<R: Rpc>(
    method: &'static Method,
    route: &'static HttpRoute,
) -> Option<MethodRouter<Http>> {
    let (_, filter) = verb(route)?;
    Some(on(filter, move |State(h): State<Http>, req: Request| {
        serve::<R>(h, method, route.body, req)
    }))
}

/// The handler of an RPC this server does not serve: the token is checked as for any other
/// route, then UNIMPLEMENTED names `name`.
pub(super) fn unimplemented(
    method: &'static Method,
    route: &HttpRoute,
    name: &'static str,
) -> Option<MethodRouter<Http>> {
    let (_, filter) = verb(route)?;
    Some(on(
        filter,
        move |State(h): State<Http>, req: Request| async move {
            let (parts, _) = req.into_parts();
            admit(&h, method, &parts).await?;
            Reply::Err(rpc::unimplemented(name).into())
        },
    ))
}

/// Authenticates the request's head for `method`: token, rate, faults.
async fn admit(h: &Http, method: &Method, parts: &http::request::Parts) -> Result<Caller> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    h.guard
        .admit(
            method.name,
            header("authorization"),
            header("x-idempotency-key"),
        )
        .await
}

async fn serve<R: Rpc>(
    h: Http,
    method: &'static Method,
    body: &'static str,
    req: Request,
) -> Reply {
    let (mut parts, stream) = req.into_parts();
    let caller = admit(&h, method, &parts).await?;
    let limit = if R::LARGE_BODY {
        h.body_limit
    } else {
        h.guard.limits.max_message_bytes
    };
    // Before anything of the body is read (so `Expect: 100-continue` is not answered): a
    // declared length over the method's limit, or over what the body budgets have left.
    let _reservation = if body.is_empty() {
        None
    } else {
        match reserve_body(&h, &caller, &parts.headers, limit) {
            Ok(reservation) => reservation,
            Err(err) => {
                if err.context_value("reason")
                    == Some(imgroups_core::Reason::BodiesInFlight.as_str())
                {
                    discard_unless_continue(&parts.headers, stream).await;
                }
                return Err(err.into());
            }
        }
    };
    let path = RawPathParams::from_request_parts(&mut parts, &h)
        .await
        .map_err(|rejection| {
            ApiError::from(
                imgroups_core::Error::invalid(format!("invalid path: {}", rejection.body_text()))
                    .with("field", "path"),
            )
        })?;
    let message: R::Req = if body == "*" && path.iter().next().is_none() {
        // The usual write: the whole body is the message, decoded straight from its bytes.
        let bytes = Bytes::from_request(Request::from_parts(parts, stream), &h).await;
        decode_body(bytes, limit)?
    } else {
        let fields = method.input_fields;
        let mut object = Map::new();
        if body != "*" {
            object = query_object(Query::try_from_uri(&parts.uri), fields)?;
        }
        for (key, value) in &path {
            set_field(&mut object, fields, key.to_owned(), value.to_owned())?;
        }
        if !body.is_empty() {
            let bytes = Bytes::from_request(Request::from_parts(parts, stream), &h).await;
            let value = body_value(bytes, limit)?;
            if body == "*" {
                let Value::Object(mut whole) = value else {
                    return Err(imgroups_core::Error::invalid(
                        "the request body must be a json object",
                    )
                    .with("field", "body")
                    .into());
                };
                // Path parameters win over the same fields in the body, as in grpc-gateway.
                whole.extend(object);
                object = whole;
            } else {
                let name = fields
                    .iter()
                    .find(|f| f.name == body)
                    .map_or(body, |f| f.json_name);
                object.insert(name.to_owned(), value);
            }
        }
        from_object(object)?
    };
    json(&R::call(&h.app, &caller, message).await?)
}

/// Reads a refused body to its end without keeping it, unless its client waits for
/// `100 Continue`: an HTTP/1 client that sends its body at once would otherwise see the
/// connection reset (hyper closes it with the body unread) instead of the answer. It costs
/// the bandwidth, not memory, and the body timeout still applies.
async fn discard_unless_continue(headers: &http::HeaderMap, body: axum::body::Body) {
    use futures::StreamExt;
    if headers.contains_key(http::header::EXPECT) {
        return;
    }
    let mut data = body.into_data_stream();
    while let Some(Ok(_)) = data.next().await {}
}

/// The body budget for a request of `caller` with these headers: its declared length, or the
/// method's `limit` when it declares none (chunked). Refuses a declared length over `limit`
/// at once, and a body the budgets cannot take now (retryable).
fn reserve_body(
    h: &Http,
    caller: &Caller,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Option<crate::guard::BodyReservation>> {
    let bytes = match super::declared_length(headers) {
        Some(0) => return Ok(None),
        Some(len) if len > limit => {
            return Err(crate::guard::too_large(limit, "the request body").with("field", "body"))
        }
        Some(len) => len,
        None => limit,
    };
    h.guard.reserve_body(caller.account, bytes).map(Some)
}

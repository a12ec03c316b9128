//! What a gRPC call must pass before its message is read: the token, the account's request
//! rate, injected faults ([`Guard::admit`]), the cap on open event streams, the method's size
//! limit and the body timeout.
//!
//! tonic decodes a whole message before a method runs, so authenticating inside the method
//! would let anyone make the server buffer 100 MiB per call. Every route of ours calls
//! [`admit`] first; it reads the (only) request message within the method's limit and hands
//! the caller to the method directly. Errors are trailers-only, as tonic's own.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use bytes::BytesMut;
use futures::StreamExt;
use imgroups_core::{Error, Result};

use crate::app::Caller;
use crate::guard::{body_timeout, too_large, BodyReservation, Guard, StreamPermit};
use crate::wire;

/// Looked up on every call: a header name made once, not parsed each time.
const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("x-idempotency-key");

/// What the guard needs to know of a method.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    /// The RPC's name (`SetDisplayName`): what an injected fault names.
    pub(crate) name: &'static str,
    /// Whether the message may be as large as an icon ([`Guard::icon_message_bytes`]) rather
    /// than [`crate::NetLimits::max_message_bytes`].
    pub(crate) large: bool,
    /// An event stream: counted against the account's and the token's caps while open.
    pub(crate) streaming: bool,
}

/// A call that passed: the request with its message read, who made it, and for a stream the
/// permit that counts it ([`hold`] it in the response).
pub(crate) struct Admitted {
    pub(crate) req: Request,
    pub(crate) caller: Caller,
    pub(crate) permit: Option<StreamPermit>,
}

/// The answer to a call that failed before its method ran.
pub(crate) fn error(err: Error) -> Response {
    wire::to_status(err).into_http()
}

/// Authenticates a call from its metadata, applies the rate limit and any injected fault,
/// counts an event stream, and reads its message within the method's size limit and the
/// body timeout; or the error response.
pub(crate) async fn admit(
    guard: &Guard,
    method: Admission,
    req: Request,
) -> std::result::Result<Admitted, Response> {
    // Every write passes here: nothing below allocates or arms a timer unless it must.
    let limit = if method.large {
        guard.icon_message_bytes
    } else {
        guard.limits.max_message_bytes
    };
    fn text(v: Option<&http::HeaderValue>) -> Option<&str> {
        v.and_then(|v| v.to_str().ok())
    }
    let headers = req.headers();
    let authorization = headers.get(http::header::AUTHORIZATION);
    let key = headers.get(&IDEMPOTENCY_KEY);
    let caller = match guard.admit_now(text(authorization), text(key)) {
        Some(admitted) => admitted.map_err(error)?,
        None => {
            // Header values are reference-counted: cloning them is cheap, and they outlive
            // the request, which cannot be borrowed across an await (its body is not `Sync`).
            let (authorization, key) = (authorization.cloned(), key.cloned());
            guard
                .admit_later(
                    method.name,
                    text(authorization.as_ref()),
                    text(key.as_ref()),
                )
                .await
                .map_err(error)?
        }
    };
    let permit = if method.streaming {
        Some(guard.open_stream(&caller).map_err(error)?)
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let timeout = guard.limits.body_timeout;
    let account = caller.account;
    let read = read_message(body, limit, |len| guard.reserve_body(account, len));
    futures::pin_mut!(read);
    // A small message has usually arrived with its headers: read it without arming a timer,
    // and time only a body that is still on its way.
    let read = match futures::poll!(&mut read) {
        Poll::Ready(read) => read,
        Poll::Pending => match tokio::time::timeout(timeout, read).await {
            Ok(read) => read,
            Err(_) => return Err(error(body_timeout(timeout))),
        },
    };
    let (message, reservation) = read.map_err(error)?;
    if let Some(reservation) = reservation {
        // Held while tonic decodes the message and the method takes it.
        parts.extensions.insert(Arc::new(reservation));
    }
    Ok(Admitted {
        req: Request::from_parts(parts, Body::from(message)),
        caller,
        permit,
    })
}

/// `response`, holding `permit` (if any) for as long as its body is open.
pub(crate) fn hold(permit: Option<StreamPermit>, response: Response) -> Response {
    match permit {
        Some(permit) => response.map(|body| {
            Body::new(Held {
                body,
                _permit: permit,
            })
        }),
        None => response,
    }
}

/// The length-prefixed request message: our methods take exactly one. The prefix is checked
/// against `limit` before the message is read, so an oversized one costs nothing. A message
/// that arrives in one chunk (the usual case) is passed on without a copy. A message still on
/// its way after its first chunk takes its declared length from the body budgets first
/// (`reserve`), and is refused without being read when they are spent.
async fn read_message(
    body: Body,
    limit: usize,
    reserve: impl FnOnce(usize) -> Result<BodyReservation>,
) -> Result<(Bytes, Option<BodyReservation>)> {
    let mut reserve = Some(reserve);
    let mut reservation = None;
    let mut data = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut expected = None;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|_| Error::invalid("the request body was cut off"))?;
        if first.is_none() && buf.is_empty() {
            first = Some(chunk);
        } else {
            if let Some(first) = first.take() {
                buf.extend_from_slice(&first);
            }
            buf.extend_from_slice(&chunk);
        }
        let seen: &[u8] = first.as_deref().unwrap_or(&buf);
        if expected.is_none() && seen.len() >= 5 {
            let len = u32::from_be_bytes([seen[1], seen[2], seen[3], seen[4]]) as usize;
            if len > limit {
                return Err(too_large(limit, "the request message"));
            }
            expected = Some(5 + len);
        }
        if seen.len() > limit + 5 {
            return Err(too_large(limit, "the request message"));
        }
        match expected {
            Some(n) if seen.len() >= n => break,
            Some(n) => {
                if let Some(reserve) = reserve.take() {
                    reservation = Some(reserve(n)?);
                }
            }
            None => {}
        }
    }
    Ok((first.unwrap_or_else(|| buf.freeze()), reservation))
}

/// A response body holding a [`StreamPermit`] for as long as the stream is open.
struct Held {
    body: Body,
    _permit: StreamPermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

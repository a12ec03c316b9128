//! The one error table, and conversions between domain values and wire messages.
//!
//! Every error any transport sends is decided in [`code_of`]: an exhaustive match, so a new
//! [`ErrorKind`] does not compile until someone picks its status and `error-code`.

#![deny(clippy::wildcard_enum_match_arm)] // every error kind decided here, none by default

use imgroups_core::error::{excerpt, MAX_ECHO_CHARS};
use imgroups_core::{Address, Change, Chat, Error, ErrorKind, Event, Message, Timestamp};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// Wire facts for one error kind: gRPC status, `error-code`, and whether a retry can succeed.
pub(crate) struct WireCode {
    pub(crate) status: Code,
    pub(crate) error_code: &'static str,
    pub(crate) retryable: bool,
}

pub(crate) fn code_of(kind: ErrorKind) -> WireCode {
    let (status, error_code, retryable) = match kind {
        ErrorKind::Unauthenticated => (Code::Unauthenticated, "unauthenticated", false),
        ErrorKind::TokenBlocked => (Code::Unauthenticated, "tokenBlocked", false),
        ErrorKind::InvalidArgument => (Code::InvalidArgument, "invalidArgument", false),
        ErrorKind::ChatNotFound => (Code::NotFound, "chatNotFound", false),
        ErrorKind::AddressNotFound => (Code::NotFound, "addressNotFound", false),
        ErrorKind::GroupIconNotFound => (Code::NotFound, "groupIconNotFound", false),
        ErrorKind::OperationNotSupported => {
            (Code::FailedPrecondition, "operationNotSupported", false)
        }
        ErrorKind::PreconditionFailed => (Code::FailedPrecondition, "preconditionFailed", false),
        ErrorKind::DuplicateMessage => (Code::FailedPrecondition, "duplicateMessage", false),
        ErrorKind::Unimplemented => (Code::Unimplemented, "operationNotSupported", false),
        ErrorKind::Unavailable => (Code::Unavailable, "databaseError", true),
        ErrorKind::Internal => (Code::Internal, "internalError", false),
        // tonic's own status for an oversized message; HTTP answers 413 (`http_status_of`).
        ErrorKind::TooLarge => (Code::ResourceExhausted, "invalidArgument", false),
        // The official SDK maps RESOURCE_EXHAUSTED to `RateLimitError`, and knows this code.
        ErrorKind::RateLimited => (Code::ResourceExhausted, "burstRateExceeded", true),
        // HTTP answers 408 (`http_status_of`).
        ErrorKind::Timeout => (Code::DeadlineExceeded, "timeout", true),
    };
    WireCode {
        status,
        error_code,
        retryable,
    }
}

/// The gRPC form: status + message, and `error-code`, `x-retryable`, `error-context-*` as
/// metadata. tonic sends a failed call's metadata in the trailers, which is where the official
/// SDK reads them.
/// Longest error message sent, in characters: room for a message that echoes an input
/// excerpt ([`MAX_ECHO_CHARS`]) and explains it.
const MAX_MESSAGE_CHARS: usize = 512;

/// The one bound on what an error echoes, applied here because every error leaves through
/// this module: no trailer or JSON body carries a huge value, whatever built the error.
/// Context values are cut to [`MAX_ECHO_CHARS`], messages to [`MAX_MESSAGE_CHARS`].
fn bounded_message(message: &str) -> std::borrow::Cow<'_, str> {
    excerpt(message, MAX_MESSAGE_CHARS)
}

fn bounded_value(value: &str) -> std::borrow::Cow<'_, str> {
    excerpt(value, MAX_ECHO_CHARS)
}

/// [`code_of`] the error's kind, with the error's own retryable flag where it has one.
pub(crate) fn code_of_error(err: &Error) -> WireCode {
    let mut wire = code_of(err.kind);
    if let Some(retryable) = err.retryable {
        wire.retryable = retryable;
    }
    wire
}

pub(crate) fn to_status(err: Error) -> Status {
    let wire = code_of_error(&err);
    let mut meta = MetadataMap::new();
    meta.insert("error-code", MetadataValue::from_static(wire.error_code));
    if wire.retryable {
        meta.insert("x-retryable", MetadataValue::from_static("true"));
    }
    for (key, value) in &err.context {
        let key = format!("error-context-{key}");
        let (Ok(key), Ok(value)) = (
            key.parse::<tonic::metadata::AsciiMetadataKey>(),
            MetadataValue::try_from(ascii_safe(&bounded_value(value))),
        ) else {
            continue;
        };
        meta.insert(key, value);
    }
    Status::with_metadata(
        wire.status,
        bounded_message(&err.message).into_owned(),
        meta,
    )
}

/// Errors that exist only on the HTTP surface, where a request can miss every route.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HttpOnly {
    /// No route has this path.
    UnknownRoute,
    /// The path exists, but not with this method.
    MethodNotAllowed,
}

pub(crate) fn code_of_http_only(kind: HttpOnly) -> WireCode {
    let (status, error_code) = match kind {
        // grpc-gateway's answers to the same two situations.
        HttpOnly::UnknownRoute => (Code::NotFound, "operationNotSupported"),
        HttpOnly::MethodNotAllowed => (Code::Unimplemented, "operationNotSupported"),
    };
    WireCode {
        status,
        error_code,
        retryable: false,
    }
}

/// The HTTP status of an [`HttpOnly`] error: the plain HTTP answers, so generic HTTP clients
/// understand them too (the body's `code` is what the SDK reads).
pub(crate) fn http_only_status(kind: HttpOnly) -> http::StatusCode {
    match kind {
        HttpOnly::UnknownRoute => http::StatusCode::NOT_FOUND,
        HttpOnly::MethodNotAllowed => http::StatusCode::METHOD_NOT_ALLOWED,
    }
}

/// The HTTP status of a domain error: [`http_status`] of its gRPC status, except that an
/// oversized body is 413 and a stalled one 408, the answers generic HTTP clients know.
pub(crate) fn http_status_of(kind: ErrorKind) -> http::StatusCode {
    if kind == ErrorKind::TooLarge {
        http::StatusCode::PAYLOAD_TOO_LARGE
    } else if kind == ErrorKind::Timeout {
        http::StatusCode::REQUEST_TIMEOUT
    } else {
        http_status(code_of(kind).status)
    }
}

/// The HTTP status for a gRPC status: grpc-gateway's canonical mapping.
pub(crate) fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        // 499 "client closed request" (nginx); always valid, so the fallback is unreachable.
        Code::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        Code::Unknown => S::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => S::BAD_REQUEST,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists => S::CONFLICT,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => S::BAD_REQUEST,
        Code::Aborted => S::CONFLICT,
        Code::OutOfRange => S::BAD_REQUEST,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Internal => S::INTERNAL_SERVER_ERROR,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::DataLoss => S::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => S::UNAUTHORIZED,
    }
}

/// The lower-case snake name of a gRPC status: the `code` of the HTTP error body, which the
/// official SDK's HTTP transport classifies errors by.
pub(crate) fn status_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP error body (docs/protocol.md §6.3), sent with [`http_status`] of `wire.status`: `code`, `message`,
/// `errorCode`, `retryable`, `context` (the same lower-case keys as the gRPC
/// `error-context-*` trailers) and `requestId`.
pub(crate) fn to_http_body(
    wire: &WireCode,
    message: &str,
    context: &[(String, String)],
    request_id: &str,
) -> serde_json::Value {
    let context: serde_json::Map<String, serde_json::Value> = context
        .iter()
        .map(|(k, v)| (k.clone(), bounded_value(v).into_owned().into()))
        .collect();
    serde_json::json!({
        "code": status_name(wire.status),
        "message": bounded_message(message),
        "errorCode": wire.error_code,
        "retryable": wire.retryable,
        "context": context,
        "requestId": request_id,
    })
}

/// Metadata values must be visible ASCII; anything else (a non-ASCII name, say) is escaped.
fn ascii_safe(value: &str) -> String {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        value.to_owned()
    } else {
        value.escape_default().to_string()
    }
}

pub(crate) fn timestamp(t: Timestamp) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.seconds(),
        nanos: t.subsec_nanos(),
    }
}

pub(crate) fn address(a: &Address) -> pb::SingleServiceAddressInfo {
    address_owned(a.clone())
}

fn address_owned(a: Address) -> pb::SingleServiceAddressInfo {
    pb::SingleServiceAddressInfo {
        address: a.into_string(),
        service: pb::ChatServiceType::Imessage as i32,
        country: None,
    }
}

pub(crate) fn chat(c: &Chat) -> pb::Chat {
    pb::Chat {
        guid: c.guid.to_string(),
        chat_identifier: Some(c.chat_identifier.clone()),
        group_id: c.group_id.clone(),
        display_name: c.display_name.clone(),
        is_group: c.is_group,
        service: pb::ChatServiceType::Imessage as i32,
        is_archived: false,
        is_filtered: false,
        unread_count: Some(0),
        participants: c.participants.iter().map(address).collect(),
        last_message: None,
    }
}

pub(crate) fn message(m: &Message) -> pb::Message {
    pb::Message {
        guid: m.guid.clone(),
        content: Some(pb::MessageContent {
            text: Some(m.text.clone()),
            ..Default::default()
        }),
        subject: m.subject.clone(),
        date_created: Some(timestamp(m.date_created)),
        is_from_me: m.is_from_me,
        is_sent: m.is_sent,
        ..Default::default()
    }
}

pub(crate) fn group_event(e: &Event) -> pb::GroupChangeEvent {
    group_event_owned(e.clone())
}

/// [`group_event`] for an event that is not needed afterwards: its strings move instead of
/// being copied (catch-up sends a million of these).
pub(crate) fn group_event_owned(e: Event) -> pb::GroupChangeEvent {
    use pb::group_change_event::Change as C;
    let change = match e.change {
        Change::DisplayNameChanged { display_name } => {
            C::DisplayNameChanged(pb::GroupDisplayNameChanged { display_name })
        }
        Change::ParticipantAdded { participant } => {
            C::ParticipantAdded(pb::GroupParticipantAdded {
                participant: Some(address_owned(participant)),
            })
        }
        Change::ParticipantRemoved { participant } => {
            C::ParticipantRemoved(pb::GroupParticipantRemoved {
                participant: Some(address_owned(participant)),
            })
        }
        Change::ParticipantLeft { participant } => C::ParticipantLeft(pb::GroupParticipantLeft {
            participant: Some(address_owned(participant)),
        }),
        Change::IconChanged => C::IconChanged(pb::GroupIconChanged {}),
        Change::IconRemoved => C::IconRemoved(pb::GroupIconRemoved {}),
    };
    pb::GroupChangeEvent {
        chat_guid: String::from(&e.chat_guid),
        occurred_at: Some(timestamp(e.occurred_at)),
        actor: e.actor.map(address_owned),
        is_from_me: e.is_from_me,
        change: Some(change),
    }
}

/// A group event as HTTP consumers (SSE, webhooks) receive it: the proto3 JSON of
/// `GroupChangeEvent`, plus `sequence` (a JSON number) and `type: "group.changed"`. The
/// official SDK's `parseGroupChangeEvent(json, json.sequence)` accepts it as is.
pub(crate) fn group_event_json(e: &Event) -> serde_json::Result<serde_json::Value> {
    let mut value = serde_json::to_value(group_event(e))?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("type".into(), "group.changed".into());
        map.insert("sequence".into(), e.sequence.into());
    }
    Ok(value)
}

/// The error kind an injected fault fails with, from the wire `error-code` a user names (the
/// codes [`code_of`] sends; `operationNotSupported` and `invalidArgument` name the kinds a
/// client would see for them). `None` for a code this server never sends.
pub(crate) fn kind_of_code(code: &str) -> Option<ErrorKind> {
    FAULT_CODES
        .iter()
        .find(|(name, _)| *name == code)
        .map(|(_, kind)| *kind)
}

/// Every `error-code` a fault may inject, with its kind.
pub(crate) const FAULT_CODES: &[(&str, ErrorKind)] = &[
    ("unauthenticated", ErrorKind::Unauthenticated),
    ("tokenBlocked", ErrorKind::TokenBlocked),
    ("invalidArgument", ErrorKind::InvalidArgument),
    ("chatNotFound", ErrorKind::ChatNotFound),
    ("addressNotFound", ErrorKind::AddressNotFound),
    ("groupIconNotFound", ErrorKind::GroupIconNotFound),
    ("operationNotSupported", ErrorKind::OperationNotSupported),
    ("preconditionFailed", ErrorKind::PreconditionFailed),
    ("duplicateMessage", ErrorKind::DuplicateMessage),
    ("databaseError", ErrorKind::Unavailable),
    ("internalError", ErrorKind::Internal),
    ("burstRateExceeded", ErrorKind::RateLimited),
    ("timeout", ErrorKind::Timeout),
];

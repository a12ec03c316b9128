//! Typed errors, mirroring the official SDK's classes.
//!
//! The class ([`ErrorKind`]) comes from the gRPC status, exactly as the TypeScript SDK decides
//! it; `code`, `retryable` and `context` come from the server's trailers (`error-code`,
//! `x-retryable`, `error-context-*`).

use std::collections::BTreeMap;
use std::fmt;

pub use tonic::Code;

/// The SDK error class, decided by the gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `UNAUTHENTICATED`, `PERMISSION_DENIED` (the SDK's `AuthenticationError`).
    Authentication,
    /// `NOT_FOUND` (`NotFoundError`).
    NotFound,
    /// `RESOURCE_EXHAUSTED` (`RateLimitError`).
    RateLimit,
    /// `INVALID_ARGUMENT`, `FAILED_PRECONDITION` (`ValidationError`); also input this SDK
    /// refuses before sending anything.
    Validation,
    /// `UNAVAILABLE`, `DEADLINE_EXCEEDED`, and failures to reach the server at all
    /// (`ConnectionError`).
    Connection,
    /// Anything else (`IMessageError`): `INTERNAL`, `UNIMPLEMENTED`, a malformed response, a
    /// checkpoint store that failed, …
    Other,
}

impl ErrorKind {
    /// The class for a gRPC status; the same table as the official SDK.
    pub fn from_code(code: Code) -> Self {
        match code {
            Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Authentication,
            Code::NotFound => ErrorKind::NotFound,
            Code::ResourceExhausted => ErrorKind::RateLimit,
            Code::InvalidArgument | Code::FailedPrecondition => ErrorKind::Validation,
            Code::Unavailable | Code::DeadlineExceeded => ErrorKind::Connection,
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::AlreadyExists
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Authentication => "authentication",
            ErrorKind::NotFound => "not found",
            ErrorKind::RateLimit => "rate limit",
            ErrorKind::Validation => "validation",
            ErrorKind::Connection => "connection",
            ErrorKind::Other => "other",
        })
    }
}

/// An error from the server or from this SDK. Displays as `<message> (<code>)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct Error {
    kind: ErrorKind,
    code: String,
    message: String,
    retryable: bool,
    status: Code,
    context: BTreeMap<String, String>,
    /// No `error-code`: the status came from the transport or a proxy, not the server.
    transport: bool,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error made on this side of the wire.
    pub(crate) fn local(
        kind: ErrorKind,
        status: Code,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
            status,
            context: BTreeMap::new(),
            transport: false,
        }
    }

    /// The server answered with something this SDK cannot read.
    pub(crate) fn malformed(what: impl fmt::Display) -> Self {
        Error::local(
            ErrorKind::Other,
            Code::Internal,
            "internalError",
            format!("malformed response from the server: {what}"),
        )
    }

    pub(crate) fn with_context(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// Reads a gRPC status the way the official SDK does: class from the status code, `code`
    /// from the `error-code` trailer, `retryable` only for `x-retryable: true`, context from
    /// `error-context-*`. A status without `error-code` (the server was never reached, or a
    /// proxy answered) gets a code derived from its status, as the Go SDK does.
    pub fn from_status(status: &tonic::Status) -> Self {
        let meta = status.metadata();
        let server_code = meta
            .get("error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let transport = server_code.is_none();
        let code = server_code.unwrap_or_else(|| default_code(status.code()).to_owned());
        let retryable = meta
            .get("x-retryable")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "true");
        let mut context = BTreeMap::new();
        for entry in meta.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
                let Some(name) = key.as_str().strip_prefix("error-context-") else {
                    continue;
                };
                if let Ok(value) = value.to_str() {
                    context
                        .entry(name.to_owned())
                        .or_insert_with(|| value.to_owned());
                }
            }
        }
        let message = if status.message().is_empty() {
            format!("the server answered {}", status.code().description())
        } else {
            status.message().to_owned()
        };
        // A call cut off underneath (connection reset or closed) reaches us as CANCELLED or
        // UNKNOWN without an `error-code`: the server never answered, so it is a connection
        // failure, as in the Go SDK.
        let kind = match status.code() {
            Code::Cancelled | Code::Unknown if transport => ErrorKind::Connection,
            _ if transport && cut_off(status) => ErrorKind::Connection,
            other => ErrorKind::from_code(other),
        };
        Error {
            kind,
            code,
            message,
            retryable,
            status: status.code(),
            context,
            transport,
        }
    }

    /// Whether a stream that failed this way is worth reopening: connection trouble, a
    /// retryable server error, or a transport failure (reset, broken connection) that the
    /// server never classified.
    pub(crate) fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Connection
            || self.retryable
            || (self.transport && self.kind == ErrorKind::Other)
    }

    /// The SDK class.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `error-code` (e.g. `chatNotFound`, `invalidArgument`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the server said that retrying the same request can succeed (`x-retryable: true`).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> Code {
        self.status
    }

    /// The `error-context-*` entries, keys lower-case without the prefix (`chatguid`,
    /// `address`, `field`, `reason`, `limit`, …).
    pub fn context(&self) -> &BTreeMap<String, String> {
        &self.context
    }

    /// One context entry.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context.get(key).map(String::as_str)
    }
}

/// Invalid input refused before anything was sent, e.g. `ChatGuid::parse`.
impl From<imgroups_types::Error> for Error {
    fn from(err: imgroups_types::Error) -> Self {
        let mut out = Error::local(
            ErrorKind::Validation,
            Code::InvalidArgument,
            "invalidArgument",
            err.message,
        );
        for (key, value) in err.context {
            out.context.entry(key).or_insert(value);
        }
        out
    }
}

fn default_code(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "unauthorized",
        Code::InvalidArgument => "invalidArgument",
        Code::FailedPrecondition => "preconditionFailed",
        Code::Unimplemented => "operationNotSupported",
        Code::Unavailable => "serviceUnavailable",
        Code::DeadlineExceeded => "timeout",
        Code::Cancelled | Code::Unknown => "networkError",
        Code::Ok
        | Code::NotFound
        | Code::AlreadyExists
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Internal
        | Code::DataLoss => "internalError",
    }
}

/// Whether the call was cut off by its HTTP/2 connection rather than answered: the server
/// went away (GOAWAY, e.g. while it shut down) or the connection failed. h2 reports these with
/// reasons such as `NO_ERROR` that tonic turns into `INTERNAL`, which would read as a server
/// fault; like a reset connection they are connection failures, and a write that failed this
/// way may be retried with the same idempotency key.
fn cut_off(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_go_away()
                || h2.is_io()
                || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn status(code: Code, error_code: Option<&'static str>, retryable: bool) -> tonic::Status {
        let mut meta = MetadataMap::new();
        if let Some(c) = error_code {
            meta.insert("error-code", MetadataValue::from_static(c));
        }
        if retryable {
            meta.insert("x-retryable", MetadataValue::from_static("true"));
        }
        meta.insert(
            "error-context-chatguid",
            MetadataValue::from_static("any;+;chat1"),
        );
        tonic::Status::with_metadata(code, "boom", meta)
    }

    #[test]
    fn classes_follow_the_sdk_table() {
        let cases = [
            (Code::Unauthenticated, ErrorKind::Authentication),
            (Code::PermissionDenied, ErrorKind::Authentication),
            (Code::NotFound, ErrorKind::NotFound),
            (Code::ResourceExhausted, ErrorKind::RateLimit),
            (Code::InvalidArgument, ErrorKind::Validation),
            (Code::FailedPrecondition, ErrorKind::Validation),
            (Code::Unavailable, ErrorKind::Connection),
            (Code::DeadlineExceeded, ErrorKind::Connection),
            (Code::Internal, ErrorKind::Other),
            (Code::Unimplemented, ErrorKind::Other),
            (Code::AlreadyExists, ErrorKind::Other),
        ];
        for (code, kind) in cases {
            let err = Error::from_status(&status(code, Some("x"), false));
            assert_eq!(err.kind(), kind, "{code:?}");
            assert_eq!(err.grpc_code(), code);
        }
    }

    #[test]
    fn trailers_are_read() {
        let err = Error::from_status(&status(
            Code::ResourceExhausted,
            Some("burstRateExceeded"),
            true,
        ));
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        assert_eq!(err.code(), "burstRateExceeded");
        assert!(err.is_retryable());
        assert_eq!(err.context_value("chatguid"), Some("any;+;chat1"));
        assert_eq!(err.to_string(), "boom (burstRateExceeded)");
    }

    #[test]
    fn missing_code_is_derived_from_status() {
        let err = Error::from_status(&tonic::Status::unavailable("tcp connect error"));
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert_eq!(err.code(), "serviceUnavailable");
        assert!(!err.is_retryable());
        let err = Error::from_status(&status(Code::Internal, None, false));
        assert_eq!(err.code(), "internalError");
    }
}

//! The one error type every layer returns. Transports map [`ErrorKind`] to wire codes in exactly
//! one place (the server's error table); nothing here knows about gRPC or HTTP.

use serde::{Deserialize, Serialize};

/// What went wrong, by meaning. Each kind is one `error-code` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Missing or unknown bearer token.
    Unauthenticated,
    /// The token was revoked.
    TokenBlocked,
    /// Malformed input: it can never succeed as sent.
    InvalidArgument,
    /// The group chat is not visible to this account.
    ChatNotFound,
    /// An address is not reachable on iMessage.
    AddressNotFound,
    /// The group has no custom icon.
    GroupIconNotFound,
    /// The operation does not apply to this kind of chat.
    OperationNotSupported,
    /// The current state forbids the change.
    PreconditionFailed,
    /// An idempotency key was reused for a different request.
    DuplicateMessage,
    /// The server does not implement this RPC.
    Unimplemented,
    /// Storage is busy or unavailable; retrying can succeed.
    Unavailable,
    /// Anything unexpected. The cause is logged, never sent.
    Internal,
}

/// A failure with a human message (lower case, no internals) and context naming the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Lower-case keys: `chatguid`, `address`, `field`, `reason`, `limit`, …
    pub context: Vec<(String, String)>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
        }
    }

    /// Adds one context entry; the key is lower-cased because gRPC metadata keys are.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.context
            .push((key.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn precondition(reason: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, message).with("reason", reason)
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotSupported, message)
    }

    pub fn chat_not_found(guid: &impl ToString) -> Self {
        let guid = guid.to_string();
        Self::new(ErrorKind::ChatNotFound, format!("chat {guid} not found")).with("chatguid", guid)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// An unexpected failure. Log the cause before calling this; the message sent is generic.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "internal error")
    }

    /// Whether this outcome depends on nothing but the request and state, so that an
    /// idempotent retry must see it again. Transient failures are not remembered.
    pub fn is_final(&self) -> bool {
        !matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Internal)
    }

    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// No message with this GUID in the account's view (of this chat).
    MessageNotFound,
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
    /// A request message or body is larger than this method accepts.
    TooLarge,
    /// Too many requests or open event streams for this token, for now; retry later.
    RateLimited,
    /// The request was not received in time (a stalled body).
    Timeout,
    /// Send limits (`serve --limits`): the line sent its day's messages; retry later.
    DailyLimitExceeded,
    /// Send limits: the line messaged its day's number of different people.
    RecipientLimitExceeded,
    /// Send limits: the line messaged its day's number of people never messaged before.
    NewContactThrottled,
    /// Send limits: the same text was sent too many times in a window.
    ContentDuplicateExceeded,
    /// Send limits: the line messaged one person too often in a window; it must let that
    /// conversation cool down.
    RecipientCoolingDown,
    /// Send limits: the line sent too many messages for those it received in a day.
    SendReceiveRatioExceeded,
}

/// Why a request was refused, more precisely than its [`ErrorKind`]: sent as the `reason`
/// context entry (`error-context-reason`, or `context.reason` over HTTP). An enum, so a typo
/// does not compile and every reason the server can give is listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A value is longer than allowed: a display name, a chat GUID, an address, an
    /// idempotency key, or a list of addresses longer than any group.
    TooLong,
    /// A value is larger than allowed (an icon).
    TooLarge,
    /// An icon is not a PNG, JPEG, GIF, HEIC or HEIF image.
    UnsupportedImageType,
    /// An icon's declared width, height or pixel count is beyond the configured limits.
    ImageTooLarge,
    /// An icon has bytes after the end its format defines (a polyglot, or an appended file).
    TrailingData,
    /// An icon's structure is not what its type requires (a bad PNG checksum, a missing image
    /// data chunk, a JPEG without a frame, a GIF without a trailer, HEIF boxes that do not
    /// add up); the `detail` context entry says what.
    InvalidImage,
    /// A display name contains a control character or a bidirectional override.
    ControlCharacter,
    /// A display name contains a format character that has no place in a name: the byte
    /// order mark U+FEFF, a deprecated or reserved invisible character, an interlinear
    /// annotation.
    FormatCharacter,
    /// A display name contains a tag character (U+E0000–U+E007F) outside the flags of
    /// England, Scotland and Wales.
    TagCharacter,
    /// A display name stacks more combining marks (or format characters) on one character
    /// than the limit.
    TooManyMarks,
    /// A display name shows nothing once rendered: only invisible characters, blanks and
    /// combining marks.
    InvisibleName,
    /// The same address twice in one request.
    Duplicate,
    /// The address is already in the group.
    AlreadyParticipant,
    /// The address is not in the group.
    NotParticipant,
    /// Removing yourself: leave instead.
    UseLeave,
    /// The group would have too few members.
    GroupTooSmall,
    /// The group would have too many members.
    GroupFull,
    /// Events after this cursor were removed by retention.
    CursorTooOld,
    /// The account exists already.
    AccountExists,
    /// Too many requests per second for this account.
    RequestRate,
    /// Too many open event streams for this account.
    TooManyStreams,
    /// Too many request body bytes on their way to the server at once, for this account or
    /// for the whole server: a retry once others have arrived can succeed.
    BodiesInFlight,
    /// A catch-up or resume cursor beyond the newest event.
    BeyondHead,
    /// A required value is empty (a message's text, a GUID).
    Empty,
    /// A number or range outside what is accepted (a page size, a formatting range).
    OutOfRange,
    /// A page token that this server did not hand out for this listing.
    InvalidPageToken,
    /// The message was unsent: it can no longer be edited, reacted to or unsent again.
    MessageUnsent,
    /// Only the sender can edit or unsend a message.
    NotFromMe,
    /// Messages can be edited only within 15 minutes of sending.
    EditWindowClosed,
    /// A message can be edited at most 5 times.
    TooManyEdits,
    /// Messages can be unsent only within 2 minutes of sending.
    UnsendWindowClosed,
    /// The simulator was reset while a stream was open.
    Reset,
    /// The clock was asked to move, but the store has none that can (`serve --seed`).
    ClockNotControllable,
    /// Send limits: too many messages in a short window (`burstRateExceeded`).
    SendRate,
}

impl Reason {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLong => "tooLong",
            Reason::TooLarge => "tooLarge",
            Reason::UnsupportedImageType => "unsupportedImageType",
            Reason::ImageTooLarge => "imageTooLarge",
            Reason::TrailingData => "trailingData",
            Reason::InvalidImage => "invalidImage",
            Reason::ControlCharacter => "controlCharacter",
            Reason::FormatCharacter => "formatCharacter",
            Reason::TagCharacter => "tagCharacter",
            Reason::TooManyMarks => "tooManyMarks",
            Reason::InvisibleName => "invisibleName",
            Reason::Duplicate => "duplicate",
            Reason::AlreadyParticipant => "alreadyParticipant",
            Reason::NotParticipant => "notParticipant",
            Reason::UseLeave => "useLeave",
            Reason::GroupTooSmall => "groupTooSmall",
            Reason::GroupFull => "groupFull",
            Reason::CursorTooOld => "cursorTooOld",
            Reason::AccountExists => "accountExists",
            Reason::RequestRate => "requestRate",
            Reason::TooManyStreams => "tooManyStreams",
            Reason::BodiesInFlight => "bodiesInFlight",
            Reason::BeyondHead => "beyondHead",
            Reason::Empty => "empty",
            Reason::OutOfRange => "outOfRange",
            Reason::InvalidPageToken => "invalidPageToken",
            Reason::MessageUnsent => "messageUnsent",
            Reason::NotFromMe => "notFromMe",
            Reason::EditWindowClosed => "editWindowClosed",
            Reason::TooManyEdits => "tooManyEdits",
            Reason::UnsendWindowClosed => "unsendWindowClosed",
            Reason::Reset => "reset",
            Reason::ClockNotControllable => "clockNotControllable",
            Reason::SendRate => "sendRate",
        }
    }
}

/// What a person can do about a refusal when the fix is a command of the program that runs
/// the engine. The engine names no command (it does not know which program runs it), so it
/// says which fix applies and the server's error table words it, once for every transport and
/// the CLI. Fieldless, so that [`Error`] is no larger for it: what a fix names is in the
/// error's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hint {
    /// The store has no controllable clock: start the server with one (`serve --seed N`).
    SeedTheClock,
    /// The account exists: make another token for it (`token create ADDRESS`, the `address`
    /// context entry).
    AnotherToken,
}

/// A failure with a human message (lower case, no internals) and context naming the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Lower-case keys: `chatguid`, `address`, `field`, `reason`, `limit`, …
    pub context: Vec<(String, String)>,
    /// Overrides whether a retry can succeed (the wire's `x-retryable`), which otherwise
    /// follows from the kind. Only injected faults choose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// The fix, where it is a command the message cannot name (see [`Hint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<Hint>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            retryable: None,
            hint: None,
        }
    }

    /// Adds one context entry; the key is lower-cased because gRPC metadata keys are.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.context
            .push((key.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Says whether a retry can succeed, whatever the kind implies.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Says which command fixes it, for the program around the engine to name.
    pub fn hint(mut self, hint: Hint) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, message).because(reason)
    }

    /// Adds the `reason` context entry.
    pub fn because(self, reason: Reason) -> Self {
        self.with("reason", reason.as_str())
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotSupported, message)
    }

    pub fn chat_not_found(guid: &impl ToString) -> Self {
        let guid = guid.to_string();
        Self::new(ErrorKind::ChatNotFound, format!("chat {guid} not found")).with("chatguid", guid)
    }

    pub fn message_not_found(guid: &str) -> Self {
        Self::new(
            ErrorKind::MessageNotFound,
            format!("message {} not found", excerpt(guid, MAX_ECHO_CHARS)),
        )
        .with("messageguid", excerpt(guid, MAX_ECHO_CHARS))
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
        !matches!(
            self.kind,
            ErrorKind::Unavailable
                | ErrorKind::Internal
                | ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::DailyLimitExceeded
                | ErrorKind::RecipientLimitExceeded
                | ErrorKind::NewContactThrottled
                | ErrorKind::ContentDuplicateExceeded
                | ErrorKind::RecipientCoolingDown
                | ErrorKind::SendReceiveRatioExceeded
        )
    }

    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest echo of a caller's input in an error, in characters. Errors name the input at
/// fault, but a 10 MB GUID echoed whole would be copied into gRPC trailers (which clients cap
/// at a few KiB, so the call fails obscurely) and into JSON bodies and logs.
pub const MAX_ECHO_CHARS: usize = 128;

/// `input` as it may be echoed in an error: at most `max` characters, with `…` when cut.
/// Linear in `max`, not in the input's length.
pub fn excerpt(input: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(input),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}…", &input[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_cut_on_character_boundaries() {
        assert_eq!(excerpt("short", 128), "short");
        let long = "é".repeat(1000);
        let cut = excerpt(&long, MAX_ECHO_CHARS);
        assert_eq!(cut.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(
            excerpt(&"x".repeat(128), 128).len(),
            128,
            "exactly the limit is kept"
        );
    }
}

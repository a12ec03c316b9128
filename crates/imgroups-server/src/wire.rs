//! The one error table, and conversions between domain values and wire messages. The gRPC
//! event streams write the same messages without building them ([`encode`]).
//!
//! Every error any transport sends is decided in [`code_of`]: an exhaustive match, so a new
//! [`ErrorKind`] does not compile until someone picks its status and `error-code`.

#![deny(clippy::wildcard_enum_match_arm)] // every error kind decided here, none by default

use imgroups_core::error::{excerpt, MAX_ECHO_CHARS};
use imgroups_core::{
    Address, AppliedReaction, Change, Chat, Error, ErrorKind, Event, Hint, Message, Reaction,
    TextFormat, Timestamp,
};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

pub(crate) mod encode;

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
        ErrorKind::MessageNotFound => (Code::NotFound, "messageNotFound", false),
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
        // Send limits (`serve --limits`): the SDK's own codes, all `RateLimitError`.
        ErrorKind::DailyLimitExceeded => (Code::ResourceExhausted, "dailyLimitExceeded", true),
        ErrorKind::RecipientLimitExceeded => {
            (Code::ResourceExhausted, "recipientLimitExceeded", true)
        }
        ErrorKind::NewContactThrottled => (Code::ResourceExhausted, "newContactThrottled", true),
        ErrorKind::ContentDuplicateExceeded => {
            (Code::ResourceExhausted, "contentDuplicateExceeded", true)
        }
        ErrorKind::RecipientCoolingDown => (Code::ResourceExhausted, "recipientCoolingDown", true),
        ErrorKind::SendReceiveRatioExceeded => {
            (Code::ResourceExhausted, "sendReceiveRatioExceeded", true)
        }
    };
    WireCode {
        status,
        error_code,
        retryable,
    }
}

/// An error's message as people read it, over every transport and from the CLI: the
/// engine's words, then the command that fixes it where the engine gave a [`Hint`]. The
/// engine names no command; this is the imgroups server, and the commands are its own.
pub(crate) fn message_of(err: &Error) -> std::borrow::Cow<'_, str> {
    let Some(hint) = err.hint else {
        return std::borrow::Cow::Borrowed(&err.message);
    };
    let message = &err.message;
    std::borrow::Cow::Owned(match hint {
        Hint::SeedTheClock => {
            format!("{message}: start the server with `imgroups serve --seed N` to get one")
        }
        Hint::AnotherToken => {
            let address = err.context_value("address").unwrap_or("ADDRESS");
            format!("{message}; use `imgroups token create {address}` for another token")
        }
    })
}

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

/// The gRPC form: status + message, and `error-code`, `x-retryable`, `error-context-*` as
/// metadata. tonic sends a failed call's metadata in the trailers, which is where the official
/// SDK reads them.
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
        bounded_message(&message_of(&err)).into_owned(),
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

/// [`to_http_body`] of a domain error, its kind's codes and its [`message_of`].
pub(crate) fn error_body(err: &Error, request_id: &str) -> serde_json::Value {
    to_http_body(
        &code_of_error(err),
        &message_of(err),
        &err.context,
        request_id,
    )
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
        service: SERVICE as i32,
        country: None,
    }
}

/// The service of every address and chat: only iMessage is served.
const SERVICE: pb::ChatServiceType = pb::ChatServiceType::Imessage;

pub(crate) fn chat(c: &Chat) -> pb::Chat {
    pb::Chat {
        guid: c.guid.to_string(),
        chat_identifier: Some(c.chat_identifier.clone()),
        group_id: c.group_id.clone(),
        display_name: c.display_name.clone(),
        is_group: c.is_group,
        service: SERVICE as i32,
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
            text: shown_text(m).map(str::to_owned),
            formatting: m.formatting.iter().map(text_format).collect(),
            expressive_send_style_id: m.effect_id.clone(),
            ..Default::default()
        }),
        subject: m.subject.clone(),
        date_created: Some(timestamp(m.date_created)),
        date_read: m.date_read.map(timestamp),
        date_delivered: delivered_at(m).map(timestamp),
        date_edited: m.date_edited.map(timestamp),
        date_retracted: m.date_retracted.map(timestamp),
        sender: m.sender.as_ref().map(address),
        is_from_me: m.is_from_me,
        is_sent: m.is_sent,
        is_delivered: IS_DELIVERED,
        reply_to_guid: m.reply_to.clone(),
        reply_target_guid: m.reply_to.clone(),
        thread_originator_guid: m.reply_to.clone(),
        applied_reactions: m
            .reactions
            .iter()
            .map(|r| applied_reaction(&m.guid, r))
            .collect(),
        chat_guids: m.chat_guid.iter().map(ToString::to_string).collect(),
        ..Default::default()
    }
}

// The decisions of the message mapping that are more than a copy, shared with the streams'
// direct encoder (`encode`) so the two cannot decide differently.

/// A message's text as clients see it: an unsent message keeps its place, not its words.
fn shown_text(m: &Message) -> Option<&str> {
    (!m.is_unsent()).then_some(m.text.as_str())
}

/// When a message was delivered: delivery is immediate in the simulated network, and only
/// my own messages report it.
fn delivered_at(m: &Message) -> Option<Timestamp> {
    m.is_from_me.then_some(m.date_created)
}

/// Every message is delivered (see [`delivered_at`]).
const IS_DELIVERED: bool = true;

/// A formatting range's start or length on the wire, an `int32`.
fn wire_int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Who a tapback is from on the wire: nobody named when it is mine.
fn reaction_sender(r: &AppliedReaction) -> Option<&Address> {
    (!r.is_from_me).then_some(&r.sender)
}

fn text_format(f: &TextFormat) -> pb::TextFormat {
    pb::TextFormat {
        r#type: f.style.clone(),
        start: wire_int(f.start),
        length: wire_int(f.length),
        effect_name: f.effect_name.clone(),
    }
}

/// A formatting range from the wire; negative numbers are refused.
pub(crate) fn text_format_in(f: pb::TextFormat) -> imgroups_core::Result<TextFormat> {
    let number = |n: i32, what: &str| {
        u32::try_from(n).map_err(|_| {
            Error::invalid(format!("formatting {what} {n} is negative"))
                .with("field", "formatting")
                .because(imgroups_core::Reason::OutOfRange)
        })
    };
    Ok(TextFormat {
        start: number(f.start, "start")?,
        length: number(f.length, "length")?,
        style: f.r#type,
        effect_name: f.effect_name.filter(|e| !e.is_empty()),
    })
}

pub(crate) fn reaction(r: &Reaction) -> pb::MessageReaction {
    let (kind, emoji) = reaction_kind(r);
    pb::MessageReaction {
        kind: kind as i32,
        emoji: emoji.map(str::to_owned),
    }
}

/// A tapback's kind on the wire, and its emoji for an emoji tapback.
fn reaction_kind(r: &Reaction) -> (pb::MessageReactionKind, Option<&str>) {
    use pb::MessageReactionKind as K;
    match r {
        Reaction::Love => (K::Love, None),
        Reaction::Like => (K::Like, None),
        Reaction::Dislike => (K::Dislike, None),
        Reaction::Laugh => (K::Laugh, None),
        Reaction::Emphasize => (K::Emphasize, None),
        Reaction::Question => (K::Question, None),
        Reaction::Emoji(emoji) => (K::Emoji, Some(emoji)),
    }
}

/// A tapback from the wire: stickers are not served (`operationNotSupported`), an emoji
/// tapback needs its emoji.
pub(crate) fn reaction_in(r: Option<pb::MessageReaction>) -> imgroups_core::Result<Reaction> {
    use pb::MessageReactionKind as K;
    let r = r.ok_or_else(|| Error::invalid("reaction is required").with("field", "reaction"))?;
    let kind = K::try_from(r.kind).map_err(|_| {
        Error::invalid(format!("unknown reaction kind {}", r.kind)).with("field", "reaction.kind")
    })?;
    Ok(match kind {
        K::Love => Reaction::Love,
        K::Like => Reaction::Like,
        K::Dislike => Reaction::Dislike,
        K::Laugh => Reaction::Laugh,
        K::Emphasize => Reaction::Emphasize,
        K::Question => Reaction::Question,
        K::Emoji => Reaction::Emoji(r.emoji.unwrap_or_default()),
        K::Sticker => {
            return Err(Error::not_supported(
                "sticker tapbacks are not supported by this server: use placeSticker",
            )
            .with("field", "reaction.kind"))
        }
    })
}

fn applied_reaction(guid: &str, r: &AppliedReaction) -> pb::MessageAppliedReaction {
    pb::MessageAppliedReaction {
        message_guid: guid.to_owned(),
        target_part_index: None,
        reaction: Some(reaction(&r.reaction)),
        sender: reaction_sender(r).map(address),
        is_from_me: r.is_from_me,
        date_created: Some(timestamp(r.date_created)),
    }
}

/// An event in the wire form of its family.
pub(crate) enum Payload {
    Group(pb::GroupChangeEvent),
    /// Boxed: a message event carries a whole message.
    Message(Box<pb::MessageChangeEvent>),
    Chat(pb::ChatChangeEvent),
}

/// Any event in the wire form of its family, its strings moved.
pub(crate) fn payload_owned(e: Event) -> Payload {
    use pb::group_change_event::Change as G;
    use pb::message_change_event::Change as M;
    /// The change in its family's form, before the envelope is built (so that the
    /// envelope's strings move rather than being copied).
    enum Family {
        Group(G),
        Message(Box<M>),
        Chat(pb::chat_change_event::Change),
    }
    let group = Family::Group;
    let message = |m: M| Family::Message(Box::new(m));
    let family = match e.change {
        Change::DisplayNameChanged { display_name } => {
            group(G::DisplayNameChanged(pb::GroupDisplayNameChanged {
                display_name,
            }))
        }
        Change::ParticipantAdded { participant } => {
            group(G::ParticipantAdded(pb::GroupParticipantAdded {
                participant: Some(address_owned(participant)),
            }))
        }
        Change::ParticipantRemoved { participant } => {
            group(G::ParticipantRemoved(pb::GroupParticipantRemoved {
                participant: Some(address_owned(participant)),
            }))
        }
        Change::ParticipantLeft { participant } => {
            group(G::ParticipantLeft(pb::GroupParticipantLeft {
                participant: Some(address_owned(participant)),
            }))
        }
        Change::IconChanged => group(G::IconChanged(pb::GroupIconChanged {})),
        Change::IconRemoved => group(G::IconRemoved(pb::GroupIconRemoved {})),
        Change::MessageReceived { message: m } => {
            message(M::MessageReceived(pb::MessageReceived {
                message: Some(self::message(&m)),
            }))
        }
        Change::MessageEdited {
            message_guid,
            text,
            formatting,
            edited_at,
        } => message(M::MessageEdited(pb::MessageEdited {
            message_guid,
            content: Some(pb::MessageContent {
                text: Some(text),
                formatting: formatting.iter().map(text_format).collect(),
                ..Default::default()
            }),
            edited_at: Some(timestamp(edited_at)),
        })),
        Change::MessageUnsent {
            message_guid,
            retracted_at,
        } => message(M::MessageUnsent(pb::MessageUnsent {
            message_guid,
            retracted_at: Some(timestamp(retracted_at)),
        })),
        Change::ReactionAdded {
            message_guid,
            reaction: r,
        } => message(M::ReactionAdded(pb::MessageReactionAdded {
            message_guid,
            target_part_index: None,
            reaction: Some(reaction(&r)),
        })),
        Change::ReactionRemoved {
            message_guid,
            reaction: r,
        } => message(M::ReactionRemoved(pb::MessageReactionRemoved {
            message_guid,
            target_part_index: None,
            reaction: Some(reaction(&r)),
        })),
        Change::MessageRead {
            message_guid,
            read_at,
        } => message(M::MessageRead(pb::MessageRead {
            message_guid,
            read_at: Some(timestamp(read_at)),
        })),
        Change::ChatMarkedRead => Family::Chat(pb::chat_change_event::Change::MarkedRead(
            pb::ChatMarkedRead {},
        )),
        Change::BackgroundChanged => Family::Chat(
            pb::chat_change_event::Change::BackgroundChanged(pb::ChatBackgroundChanged {}),
        ),
        Change::BackgroundRemoved => Family::Chat(
            pb::chat_change_event::Change::BackgroundRemoved(pb::ChatBackgroundRemoved {}),
        ),
    };
    let chat_guid = String::from(&e.chat_guid);
    let occurred_at = Some(timestamp(e.occurred_at));
    let actor = e.actor.map(address_owned);
    let is_from_me = e.is_from_me;
    match family {
        Family::Group(change) => Payload::Group(pb::GroupChangeEvent {
            chat_guid,
            occurred_at,
            actor,
            is_from_me,
            change: Some(change),
        }),
        Family::Message(change) => Payload::Message(Box::new(pb::MessageChangeEvent {
            chat_guid,
            occurred_at,
            actor,
            is_from_me,
            change: Some(*change),
        })),
        Family::Chat(change) => Payload::Chat(pb::ChatChangeEvent {
            chat_guid,
            occurred_at,
            actor,
            is_from_me,
            change: Some(change),
        }),
    }
}

/// An event as HTTP consumers (SSE, webhooks) receive it: the proto3 JSON of its family's
/// message (`GroupChangeEvent`, `MessageChangeEvent`, `ChatChangeEvent`), plus `sequence` (a
/// JSON number) and `type` (`group.changed`, `message.received`, …). The official SDK's
/// parsers (`parseGroupChangeEvent(json, json.sequence)`, …) accept it as is. This is the
/// only place that shape is made; people-facing surfaces (the console, the CLI) show the SDK
/// shape of [`imgroups_proto::sdk`] instead.
pub(crate) fn event_json(e: &Event) -> serde_json::Result<serde_json::Value> {
    let kind = e.change.event_type();
    let mut value = match payload_owned(e.clone()) {
        Payload::Group(g) => serde_json::to_value(g)?,
        Payload::Message(m) => serde_json::to_value(m)?,
        Payload::Chat(c) => serde_json::to_value(c)?,
    };
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("type".into(), kind.into());
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
    ("messageNotFound", ErrorKind::MessageNotFound),
    ("addressNotFound", ErrorKind::AddressNotFound),
    ("groupIconNotFound", ErrorKind::GroupIconNotFound),
    ("operationNotSupported", ErrorKind::OperationNotSupported),
    ("preconditionFailed", ErrorKind::PreconditionFailed),
    ("duplicateMessage", ErrorKind::DuplicateMessage),
    ("databaseError", ErrorKind::Unavailable),
    ("internalError", ErrorKind::Internal),
    ("burstRateExceeded", ErrorKind::RateLimited),
    ("timeout", ErrorKind::Timeout),
    ("dailyLimitExceeded", ErrorKind::DailyLimitExceeded),
    ("recipientLimitExceeded", ErrorKind::RecipientLimitExceeded),
    ("newContactThrottled", ErrorKind::NewContactThrottled),
    (
        "contentDuplicateExceeded",
        ErrorKind::ContentDuplicateExceeded,
    ),
    ("recipientCoolingDown", ErrorKind::RecipientCoolingDown),
    (
        "sendReceiveRatioExceeded",
        ErrorKind::SendReceiveRatioExceeded,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal the engine hints at reads the same over gRPC, over HTTP and from the CLI:
    /// its words, then the command that fixes it.
    #[test]
    fn hinted_refusals_name_the_command_that_fixes_them() {
        let cases = [
            (
                imgroups_core::clock::no_controllable_clock(),
                "the store has no controllable clock: start the server with \
                 `imgroups serve --seed N` to get one",
            ),
            (
                Error::precondition(
                    imgroups_core::Reason::AccountExists,
                    "account me@example.com already exists",
                )
                .with("address", "me@example.com")
                .hint(Hint::AnotherToken),
                "account me@example.com already exists; use \
                 `imgroups token create me@example.com` for another token",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(crate::error_message(&err), expected);
            assert_eq!(error_body(&err, "r")["message"], expected);
            assert_eq!(to_status(err).message(), expected);
        }
        let plain = Error::invalid("no hint here");
        assert_eq!(message_of(&plain), "no hint here");
    }
}

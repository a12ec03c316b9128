//! Request decoding: a body or query string into a proto3 JSON message, with precise errors,
//! and the body timeout every route's body is read under.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use imgroups_core::{Error, ErrorKind, Result};
use imgroups_proto::methods::{Field, FieldKind};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub(crate) type BodyResult = std::result::Result<Bytes, BytesRejection>;
pub(crate) type QueryResult = std::result::Result<Query<Vec<(String, String)>>, QueryRejection>;

/// A parser's message made to read like ours: lower case first, unless the first word is an
/// acronym ("JSON", "UTF-8"), which keeps its capitals.
fn lower_first(message: &str) -> String {
    let mut chars = message.chars();
    let acronym = chars.nth(1).is_some_and(char::is_uppercase);
    let mut chars = message.chars();
    match chars.next() {
        Some(first) if !acronym => first.to_lowercase().chain(chars).collect(),
        _ => message.to_owned(),
    }
}

/// A JSON parser error in words a person reads naturally. serde_json says "EOF while parsing
/// a value at line 1 column 0" for a cut-off body; "end of file" means nothing to someone who
/// sent a request body, so that one is spelt out, and the rest keep serde_json's wording
/// (which names the line and column) in our lower-case style.
fn json_error_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.strip_prefix("EOF while parsing") {
        Some(rest) => format!("unexpected end of input while parsing{rest}"),
        None => lower_first(&text),
    }
}

/// The body's bytes, or why they could not be read (`limit` is the route's).
/// A request body's bytes, or the error for a body too large, too slow or unreadable.
pub(crate) fn body_bytes(body: BodyResult, limit: usize) -> Result<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::guard::too_large(limit, "the request body").with("field", "body")
        } else if timed_out(&rejection) {
            Error::new(
                ErrorKind::Timeout,
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
    })
}

/// A request body that is a file sent as it is, as UTF-8 text.
pub(crate) fn body_text(body: BodyResult, limit: usize) -> Result<String> {
    let bytes = body_bytes(body, limit)?;
    String::from_utf8(bytes.to_vec()).map_err(|err| {
        Error::invalid(format!(
            "the request body is not UTF-8 text (an invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        ))
        .with("field", "body")
    })
}

fn invalid_json(err: serde_json::Error) -> Error {
    Error::invalid(format!("invalid JSON body: {}", json_error_message(&err))).with("field", "body")
}

/// What an empty (or all-whitespace) body means: `{}`.
fn or_empty(bytes: &[u8]) -> &[u8] {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    }
}

/// A request body as proto3 JSON. An empty body is `{}`.
pub(crate) fn decode_body<T: DeserializeOwned>(body: BodyResult, limit: usize) -> Result<T> {
    let bytes = body_bytes(body, limit)?;
    serde_json::from_slice(or_empty(&bytes)).map_err(invalid_json)
}

/// A request body as a JSON value (any JSON, for a field of the message). An empty body is
/// `{}`.
pub(crate) fn body_value(body: BodyResult, limit: usize) -> Result<Value> {
    let bytes = body_bytes(body, limit)?;
    serde_json::from_slice(or_empty(&bytes)).map_err(invalid_json)
}

/// Query parameters (camelCase or snake_case names) as the fields of a proto3 JSON message,
/// typed by the message's `fields`: a boolean must be `true` or `false` (as grpc-gateway
/// reads it), a repeated field collects every value given, anything else is a string (proto3
/// JSON reads numbers and enum names from strings).
pub(crate) fn query_object(query: QueryResult, fields: &[Field]) -> Result<Map<String, Value>> {
    let Query(pairs) = query.map_err(|rejection| {
        Error::invalid(format!(
            "invalid query string: {}",
            lower_first(&rejection.body_text())
        ))
        .with("field", "query")
    })?;
    let mut object = Map::new();
    for (key, value) in pairs {
        set_field(&mut object, fields, key, value)?;
    }
    Ok(object)
}

/// Sets the field `key` (a JSON or proto name) of `object` from the text `value`.
pub(crate) fn set_field(
    object: &mut Map<String, Value>,
    fields: &[Field],
    key: String,
    value: String,
) -> Result<()> {
    let field = fields.iter().find(|f| f.json_name == key || f.name == key);
    let json = match field.map(|f| f.kind) {
        Some(FieldKind::Bool) => Value::Bool(parse_bool(&key, &value)?),
        _ => Value::String(value),
    };
    match field {
        Some(field) if field.repeated => match object
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(values) => values.push(json),
            other => *other = Value::Array(vec![json]),
        },
        _ => {
            object.insert(key, json);
        }
    }
    Ok(())
}

/// What grpc-gateway accepts (Go's `strconv.ParseBool`); an empty value is an error there too,
/// not `false`.
fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "True" | "TRUE" | "t" | "T" | "1" => Ok(true),
        "false" | "False" | "FALSE" | "f" | "F" | "0" => Ok(false),
        _ => Err(Error::invalid(format!(
            "query parameter {key} must be true or false, not {value:?}"
        ))
        .with("field", key)),
    }
}

/// A message from its proto3 JSON object (query parameters, path parameters, a body field).
pub(crate) fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(object)).map_err(|err| {
        Error::invalid(format!(
            "invalid query parameters: {}",
            json_error_message(&err)
        ))
        .with("field", "query")
    })
}

/// Query parameters as a proto3 JSON message (see [`query_object`]).
#[cfg(test)]
pub(crate) fn decode_query<T: DeserializeOwned>(query: QueryResult, fields: &[Field]) -> Result<T> {
    from_object(query_object(query, fields)?)
}

/// Whether the body failed because [`body_timeout`] cut it.
fn timed_out(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Cuts a request body that has not ended `timeout` after the request began.
pub(crate) async fn body_timeout(
    State(timeout): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let req = req.map(|body| {
        Body::new(Timed {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    });
    next.run(req).await
}

struct Timed {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, axum::Error>>> {
        use std::future::Future as _;
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The error a [`Timed`] body ends with; [`decode_body`] recognises it.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not received in time")
    }
}

impl std::error::Error for BodyTimedOut {}

#[cfg(test)]
mod tests {
    use super::*;
    use imgroups_proto::pb;

    fn fields(path: &str) -> &'static [Field] {
        imgroups_proto::methods::method(path)
            .expect("in the table")
            .input_fields
    }

    #[test]
    fn query_decoding() {
        let q = |s: &str| {
            let uri: http::Uri = format!("/x?{s}").parse().expect("uri");
            Query::<Vec<(String, String)>>::try_from_uri(&uri)
        };
        let count = fields("/photon.imessage.v1.ChatService/GetChatCount");
        let req: pb::GetChatCountRequest =
            decode_query(q("includeArchived=true"), count).expect("decode");
        assert!(req.include_archived);
        let req: pb::GetChatCountRequest =
            decode_query(q("include_archived=1"), count).expect("decode");
        assert!(req.include_archived);
        let icon = fields("/photon.imessage.v1.GroupService/GetIcon");
        let req: pb::GetIconRequest =
            decode_query(q("chatGuid=any%3B%2B%3Bchat1"), icon).expect("decode");
        assert_eq!(req.chat_guid, "any;+;chat1");
        let err = decode_query::<pb::GetChatCountRequest>(q("includeArchived=maybe"), count)
            .expect_err("not a bool");
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        // Empty is not false (as in grpc-gateway).
        decode_query::<pb::GetChatCountRequest>(q("includeArchived="), count)
            .expect_err("empty is not a bool");
        let req: pb::GetChatCountRequest =
            decode_query(q("includeArchived=F"), count).expect("decode");
        assert!(!req.include_archived);
        // A repeated field takes every value; numbers come as strings.
        let add = fields("/photon.imessage.v1.GroupService/AddParticipants");
        let req: pb::AddParticipantsRequest =
            decode_query(q("addresses=a%40x.com&addresses=b%40x.com"), add).expect("decode");
        assert_eq!(req.addresses, ["a@x.com", "b@x.com"]);
        let catch_up = fields("/photon.imessage.v1.EventService/CatchUpEvents");
        let req: pb::CatchUpEventsRequest =
            decode_query(q("afterSequence=42"), catch_up).expect("decode");
        assert_eq!(req.after_sequence, Some(42));
    }

    #[test]
    fn parser_messages_read_naturally() {
        let body = |text: &'static str| -> Error {
            decode_body::<pb::GetChatCountRequest>(Ok(Bytes::from_static(text.as_bytes())), 1024)
                .expect_err("not a request")
        };
        // A cut-off body: serde_json's "EOF while parsing", spelt out.
        let cut = body("{\"includeArchived\": ");
        assert_eq!(cut.kind, ErrorKind::InvalidArgument);
        assert!(
            cut.message
                .starts_with("invalid JSON body: unexpected end of input while parsing a value"),
            "{}",
            cut.message
        );
        assert!(cut.message.contains("line 1 column"), "{}", cut.message);
        assert_eq!(cut.context_value("field"), Some("body"));
        // Any other parser message: lower case first, wording and position kept.
        let wrong = body("{\"includeArchived\": \"yes\"}");
        assert!(
            wrong.message.starts_with("invalid JSON body: "),
            "{}",
            wrong.message
        );
        let detail = &wrong.message["invalid JSON body: ".len()..];
        assert!(detail.starts_with(char::is_lowercase), "{}", wrong.message);
        assert!(!body("{,}").message.contains("eOF"));

        assert_eq!(lower_first("Failed to parse"), "failed to parse");
        assert_eq!(lower_first("EOF while parsing"), "EOF while parsing");
        assert_eq!(lower_first("JSON is broken"), "JSON is broken");
        assert_eq!(lower_first("x"), "x");
        assert_eq!(lower_first(""), "");
    }
}

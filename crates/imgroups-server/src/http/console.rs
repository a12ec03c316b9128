//! The web console: `GET /console/` serves a page (plain HTML, CSS and one JavaScript module,
//! compiled into the binary) that shows every account's world and acts on it; the page talks
//! to the JSON routes under `/console/api/`, defined here, which call the console's
//! application (`crate::app::AdminApp`). A browser pointed at the server finds the console:
//! `GET /` and `GET /console` redirect to `/console/`, and `/favicon.ico` is served.
//!
//! Every API route needs an **admin token** (`imgroups admin token`) as
//! `authorization: Bearer <admin token>`; without one the answer is 401 with the usual JSON
//! error body and nothing else. Account tokens do not open the console, and admin tokens do not
//! work as account tokens. The page keeps the admin token in the browser's session storage and
//! sends it as that header, never in a URL; the assets themselves are public (they hold no
//! data).
//!
//! Routes (JSON bodies; timestamps in milliseconds since the Unix epoch):
//! - `GET session` — checks the token.
//! - `GET accounts`, `POST accounts {address}` (answers the first token, shown once),
//!   `POST tokens {address}`, `POST tokens:revoke {id}`.
//! - `GET chats?account=A&offset=N&limit=N` — one page of A's groups, newest first, with
//!   members and an icon version; `GET icon?account=A&chat=G` — the icon's bytes.
//! - `GET events?account=A&before=N&limit=N` — A's log backwards from `before` (default: the
//!   newest); `GET events:stream?account=A&after=N` — Server-Sent Events from `after`. Events
//!   are in the official SDK's shape ([`imgroups_proto::sdk`]), as `events tail --json` prints
//!   them.
//! - `POST act {account, puppet?, op, chat?, name?, addresses?}` — a group operation as the
//!   account, or as the puppet `puppet` (a simulated person who is not an account) for the
//!   account to see; `POST icon?account=A&chat=G&puppet=P` with the image as the body.
//! - `POST sim:reset {all?}` — clears the simulated world (accounts and tokens stay unless
//!   `all`); open streams end with `preconditionFailed`, `reason=reset`. Answers `{resets}`,
//!   how many resets the store has had.
//! - `GET sim/snapshot` — the simulated world as a snapshot file (`imgroups sim snapshot
//!   export`; docs/simulator.md, "Snapshots"), `application/json`, as an attachment;
//!   `POST sim/snapshot:import` with a snapshot file as the body (at most
//!   [`MAX_SNAPSHOT`] bytes) replaces the world with it, as a reset does for open streams;
//!   answers `{resets, accounts, groups, messages, events}`. A bad file is `invalidArgument`
//!   with its `line` and `column`, and changes nothing.
//! - `POST sim:seed?reset=true` with a seed file (TOML, as `imgroups sim seed FILE` reads it)
//!   as the body — makes its accounts and does its steps (after a reset, with `reset`).
//!   Answers `{reset, tokens: {ADDRESS: TOKEN}, chats: {ID: GUID}, messages: {ID: GUID},
//!   counts: {accounts, chats, steps}}`. A bad file is `invalidArgument` naming its line and
//!   column (context `line`, `column`) and changes nothing; a step that would read a file
//!   on the server's disk (an icon's `file`) is such a mistake. A refused step answers its
//!   own error, `line N: …` (context `line`); the steps before it stay done.
//! - `GET sim/clock` — the store's clock: `{controllable, now, nowNanos, seed, ids}` (`seed`
//!   and `ids` null without a controllable clock); `POST sim/clock:advance {by}` moves a
//!   controllable clock forward by `by` (`"10m"`, `"90s"`, `"1h30m"`) and answers the same
//!   shape; `preconditionFailed` (`reason=clockNotControllable`) without one,
//!   `invalidArgument` for a negative or malformed duration.
//! - `POST sim:expect {account, kind?, chat?, matching?, since?, timeoutMs?}` — waits (a long
//!   poll, at most 60 s) until the account did something expected; answers `{matched, event |
//!   seen, cursor}` (see `expect`).
//! - `GET sim`, `POST sim/unreachable {address, unreachable}`, `POST faults {…}`,
//!   `POST faults:clear {id? | account?}` — the simulator's directory and injected faults.
//! - `GET webhooks` — every endpoint's delivery status.
//! - `GET actions` — what a person can do to a group (`imgroups_core::action`), for the
//!   page's forms: `{actions: [{name, summary, label, destructive, params: [{name, kind,
//!   label, help}]}]}`.

mod expect;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use imgroups_core::{AccountId, Address, Command, Error, ErrorKind, Event, Result, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode_body, ApiError, Http};
use crate::events::{Frame, Weighed};
use crate::revocation::Token;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");
/// The icon a browser shows in its tab, asked for at `/favicon.ico` on every first visit.
const FAVICON: &[u8] = include_bytes!("../../console/favicon.ico");

/// Largest page of groups or events one call returns.
const MAX_PAGE: usize = 200;
/// Largest console request body but an icon, a seed or a snapshot.
const MAX_BODY: usize = 64 * 1024;
/// Largest seed file: a world of a few thousand steps.
const MAX_SEED: usize = 1024 * 1024;
/// Largest snapshot an import takes over HTTP (the CLI reads files of any size). Only an
/// admin token gets this far: the token is checked before the body is read.
pub(crate) const MAX_SNAPSHOT: usize = 256 * 1024 * 1024;

/// The console's routes, to merge into the HTTP router.
pub(crate) fn router(icon_limit: usize) -> Router<Http> {
    let api = Router::new()
        .route("/session", get(session))
        .route("/accounts", get(accounts).post(add_account))
        .route("/tokens", post(add_token))
        .route("/tokens:revoke", post(revoke_token))
        .route("/admin-tokens", get(admin_tokens))
        .route("/admin-tokens:revoke", post(revoke_admin_token))
        .route("/chats", get(chats))
        .route("/conversation", get(conversation))
        .route("/events", get(events))
        .route("/events:stream", get(stream))
        .route("/act", post(act))
        .route("/sim", get(sim))
        .route("/sim/unreachable", post(unreachable))
        .route("/sim:reset", post(reset))
        .route("/sim/clock", get(clock))
        .route("/sim/clock:advance", post(advance_clock))
        .route("/sim:expect", post(expect::expect))
        .route("/faults", post(add_fault))
        .route("/faults:clear", post(clear_faults))
        .route("/webhooks", get(webhooks))
        .route("/actions", get(actions))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Added after the layer above: only the icon upload and a seed file may be large.
        .route(
            "/sim:seed",
            post(seed).layer(DefaultBodyLimit::max(MAX_SEED)),
        )
        .route(
            "/icon",
            get(icon)
                .post(set_icon)
                .layer(DefaultBodyLimit::max(icon_limit)),
        )
        .route("/sim/snapshot", get(export_snapshot))
        .route(
            "/sim/snapshot:import",
            post(import_snapshot).layer(DefaultBodyLimit::max(MAX_SNAPSHOT)),
        );
    Router::new()
        // What a browser asks for at the root: the console, and its tab's icon.
        .route("/", get(|| async { redirect("/console/") }))
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/favicon.ico", get(favicon))
        .route("/console/favicon.ico", get(favicon))
        .route(
            "/console/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .nest("/console/api", api)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary; revalidating them is cheap on loopback.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether a route is the console's (its requests are labelled `console` in the metrics).
pub(super) fn is_console(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path.starts_with("/console")
}

async fn favicon() -> Response {
    let mut response = FAVICON.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/x-icon"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(http::header::LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

// ----------------------------------------------------------------------------- access

/// A request made with an admin token; the token is kept for the streams it opens.
pub(crate) struct AdminToken(Token);

impl axum::extract::FromRequestParts<Http> for AdminToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        h: &Http,
    ) -> std::result::Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = crate::app::bearer(authorization).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "the console needs an admin token (`imgroups admin token`) as \
                     `authorization: Bearer <admin token>`",
            )
        })?;
        h.admin.authenticate(token).await?;
        Ok(AdminToken(Token::new(token)))
    }
}

type Reply = std::result::Result<Response, ApiError>;

fn ok(value: Value) -> Reply {
    Ok(axum::Json(value).into_response())
}

fn body<T: serde::de::DeserializeOwned>(
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    decode_body(body, MAX_BODY)
}

/// The account with this address (`addressNotFound` if there is none).
async fn account(h: &Http, address: &str) -> Result<AccountId> {
    h.admin.account(address).await
}

fn millis(at: Timestamp) -> i64 {
    at.0.div_euclid(1_000_000)
}

/// A query parameter that must be present.
fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Error::invalid(format!("{field} is required")).with("field", field))
}

// ---------------------------------------------------------------------------- accounts

async fn session(_: AdminToken) -> Reply {
    ok(json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }))
}

async fn accounts(State(h): State<Http>, _: AdminToken) -> Reply {
    let (accounts, tokens) = h.admin.accounts().await?;
    let list: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let tokens: Vec<Value> = tokens
                .iter()
                .filter(|t| t.address == a.address)
                .map(|t| {
                    json!({
                        "id": t.id.0,
                        "createdAt": millis(t.created_at),
                        "revoked": t.revoked,
                    })
                })
                .collect();
            json!({
                "address": a.address.as_str(),
                "createdAt": millis(a.created_at),
                "tokens": tokens,
            })
        })
        .collect();
    ok(json!({ "accounts": list }))
}

#[derive(Deserialize)]
struct AddressBody {
    #[serde(default)]
    address: String,
}

async fn add_account(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: AddressBody = body(req)?;
    let address = Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
    let token = h.admin.add_account(&address).await?;
    tracing::info!(account = %address, "account created from the console");
    ok(json!({ "address": address.as_str(), "token": token }))
}

async fn add_token(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: AddressBody = body(req)?;
    let address = Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
    let token = h.admin.create_token(&address).await?;
    ok(json!({ "address": address.as_str(), "token": token }))
}

#[derive(Deserialize)]
struct IdBody {
    id: Option<i64>,
}

async fn revoke_token(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: IdBody = body(req)?;
    let id = req
        .id
        .ok_or_else(|| Error::invalid("id is required").with("field", "id"))?;
    let id = h.admin.revoke_token(id).await?;
    ok(json!({ "id": id.0 }))
}

/// The admin tokens (never their secrets).
async fn admin_tokens(State(h): State<Http>, _: AdminToken) -> Reply {
    let tokens: Vec<Value> = h
        .admin
        .admin_tokens()
        .await?
        .iter()
        .map(|t| json!({ "id": t.id.0, "createdAt": millis(t.created_at) }))
        .collect();
    ok(json!({ "tokens": tokens }))
}

/// Revokes an admin token, the caller's own included: every console request and stream
/// made with it is refused from then on, by every process on the store.
async fn revoke_admin_token(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: IdBody = body(req)?;
    let id = req
        .id
        .ok_or_else(|| Error::invalid("id is required").with("field", "id"))?;
    let id = h.admin.revoke_admin_token(id).await?;
    tracing::info!(id = id.0, "admin token revoked from the console");
    ok(json!({ "id": id.0 }))
}

// ------------------------------------------------------------------------------- chats

#[derive(Deserialize)]
struct ChatsQuery {
    account: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn chats(State(h): State<Http>, _: AdminToken, Query(q): Query<ChatsQuery>) -> Reply {
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let (total, page) = h.admin.groups(account, offset, limit).await?;
    let chats: Vec<Value> = page
        .into_iter()
        .map(|(chat, icon)| {
            json!({
                "guid": chat.guid.to_string(),
                "chatIdentifier": chat.chat_identifier,
                "groupId": chat.group_id,
                "displayName": chat.display_name,
                "participants": chat.participants.iter().map(Address::as_str).collect::<Vec<_>>(),
                "iconVersion": icon.map(|hash| hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()),
            })
        })
        .collect();
    ok(json!({ "total": total, "offset": offset, "chats": chats }))
}

#[derive(Deserialize)]
struct ConversationQuery {
    account: Option<String>,
    chat: Option<String>,
    limit: Option<usize>,
}

/// A chat as its conversation view shows it: messages (the proto3 JSON of `Message`, as the
/// HTTP API answers) and group changes as the grey lines Messages shows, oldest first, and
/// who is typing.
async fn conversation(
    State(h): State<Http>,
    _: AdminToken,
    Query(q): Query<ConversationQuery>,
) -> Reply {
    use crate::app::Item;
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let chat = required(&q.chat, "chat")?.to_owned();
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let view = h.admin.conversation(account, chat, limit).await?;
    let items: Vec<Value> = view
        .items
        .iter()
        .map(|item| match item {
            Item::Message(m) => json!({
                "type": "message",
                "message": serde_json::to_value(crate::wire::message(m)).unwrap_or(Value::Null),
            }),
            Item::Change(e) => json!({
                "type": "system",
                "text": system_line(e),
                "occurredAt": crate::wire::timestamp(e.occurred_at),
            }),
        })
        .collect();
    ok(json!({
        "chat": {
            "guid": view.chat.guid.to_string(),
            "displayName": view.chat.display_name,
            "isGroup": view.chat.is_group,
            "participants": view.chat.participants.iter().map(Address::as_str).collect::<Vec<_>>(),
        },
        "items": items,
        "typing": view.typing.iter().map(Address::as_str).collect::<Vec<_>>(),
    }))
}

/// A group change as the grey line Messages shows for it ("Zoe named the conversation …").
fn system_line(e: &Event) -> String {
    use imgroups_core::Change;
    let who = match (&e.actor, e.is_from_me) {
        (_, true) => "You".to_owned(),
        (Some(actor), false) => actor.to_string(),
        (None, false) => "Someone".to_owned(),
    };
    match &e.change {
        Change::DisplayNameChanged { display_name } => {
            format!("{who} named the conversation \u{201c}{display_name}\u{201d}")
        }
        Change::ParticipantAdded { participant } => {
            format!("{who} added {participant} to the conversation")
        }
        Change::ParticipantRemoved { participant } => {
            format!("{who} removed {participant} from the conversation")
        }
        Change::ParticipantLeft { .. } => format!("{who} left the conversation"),
        Change::IconChanged => format!("{who} changed the group photo"),
        Change::IconRemoved => format!("{who} removed the group photo"),
        Change::BackgroundChanged => format!("{who} changed the background"),
        Change::BackgroundRemoved => format!("{who} removed the background"),
        other => format!("{who}: {}", other.event_type()),
    }
}

#[derive(Deserialize)]
struct IconQuery {
    account: Option<String>,
    chat: Option<String>,
    puppet: Option<String>,
}

async fn icon(State(h): State<Http>, _: AdminToken, Query(q): Query<IconQuery>) -> Reply {
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let chat = required(&q.chat, "chat")?.to_owned();
    let (bytes, mime) = h.admin.icon(account, chat).await?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(&mime) {
        headers.insert(CONTENT_TYPE, mime);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// Sets a group's icon to the request body, as the account or as `puppet`.
async fn set_icon(
    State(h): State<Http>,
    _: AdminToken,
    Query(q): Query<IconQuery>,
    data: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let chat = required(&q.chat, "chat")?;
    let data = data.map_err(|rejection| {
        Error::invalid(format!("cannot read the image: {}", rejection.body_text()))
            .with("field", "body")
    })?;
    let command = Command::set_icon(chat, data.to_vec(), &h.admin.limits)?;
    h.admin
        .perform(account, q.puppet.as_deref(), command)
        .await?;
    ok(json!({}))
}

// ------------------------------------------------------------------------------ events

#[derive(Deserialize)]
struct EventsQuery {
    account: Option<String>,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// An event as the console shows it: the official SDK's shape ([`imgroups_proto::sdk`]), as
/// the CLI's `events tail --json` prints it, for every kind of event.
pub(crate) fn event_json(event: &Event) -> Value {
    use crate::wire::Payload;
    use imgroups_proto::sdk;
    let sequence = event.sequence;
    let shown = match crate::wire::payload_owned(event.clone()) {
        Payload::Group(g) => sdk::GroupEvent::from_wire(sequence, &g).map(serde_json::to_value),
        Payload::Message(m) => sdk::MessageEvent::from_wire(sequence, &m).map(serde_json::to_value),
        Payload::Chat(c) => sdk::ChatEvent::from_wire(sequence, &c).map(serde_json::to_value),
    };
    match shown {
        Some(Ok(value)) => value,
        // Every change of ours has its SDK form: a missing one is a bug, shown not hidden.
        _ => {
            tracing::error!(sequence, "event without an sdk form");
            json!({ "sequence": sequence, "chatGuid": event.chat_guid.to_string() })
        }
    }
}

/// The log backwards: up to `limit` events with sequence < `before` (default: all), newest
/// first, and where the log stands.
async fn events(State(h): State<Http>, _: AdminToken, Query(q): Query<EventsQuery>) -> Reply {
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let page = h.admin.events(account, q.before, limit).await?;
    ok(json!({
        "head": page.bounds.head,
        "prunedThrough": page.bounds.pruned_through,
        "events": page.events.iter().map(event_json).collect::<Vec<_>>(),
    }))
}

fn console_frame(frame: Frame) -> Weighed<std::result::Result<SseEvent, Infallible>> {
    let (event, bytes) = match frame {
        Frame::Event(event) => {
            let data = event_json(&event).to_string();
            let bytes = data.len();
            let event = SseEvent::default()
                .id(event.sequence.to_string())
                .data(data);
            (event, bytes)
        }
        Frame::Heartbeat | Frame::Complete { .. } => (SseEvent::default().comment("heartbeat"), 0),
        Frame::Failed(err) => {
            let body = crate::wire::error_body(&err, "").to_string();
            let bytes = body.len();
            (SseEvent::default().event("error").data(body), bytes)
        }
    };
    Weighed {
        frame: Ok(event),
        bytes: bytes + super::sse::SSE_FRAMING_BYTES,
    }
}

/// The account's events after `after` (default: from now), then live, as Server-Sent Events.
/// Not counted against the account's stream cap: the console is the operator's, not the
/// account's.
async fn stream(State(h): State<Http>, admin: AdminToken, Query(q): Query<EventsQuery>) -> Reply {
    let account = self::account(&h, required(&q.account, "account")?).await?;
    let rx = h
        .streams
        .subscribe_after(
            &admin.0,
            account,
            crate::events::Filter::default(),
            q.after,
            console_frame,
        )
        .await?;
    let frames = futures::StreamExt::map(crate::events::frames(rx), |weighed| weighed.frame);
    Ok(Sse::new(frames).into_response())
}

// --------------------------------------------------------------------------------- act

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActBody {
    #[serde(default)]
    account: String,
    puppet: Option<String>,
    #[serde(default)]
    op: String,
    #[serde(default)]
    chat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    addresses: Vec<String>,
    /// The text values of the other actions, by parameter name (`text`, `message`,
    /// `reaction`: see `imgroups_core::action`).
    #[serde(flatten)]
    values: std::collections::HashMap<String, Value>,
}

/// One group operation, or something said or done in a chat, as the account or as a puppet.
async fn act(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: ActBody = body(req)?;
    let account = self::account(&h, &req.account).await?;
    let puppet = req.puppet.as_deref().filter(|p| !p.trim().is_empty());
    let command = match req.op.as_str() {
        "create" => {
            if puppet.is_some() {
                return Err(Error::not_supported(
                    "a simulated person can change groups, not create chats",
                )
                .into());
            }
            let guid = h
                .admin
                .create_group(account, &req.addresses, &req.name)
                .await?;
            return ok(json!({ "chatGuid": guid.to_string() }));
        }
        "rename" => Command::set_display_name(&req.chat, &req.name)?,
        "add" => Command::add_participants(&req.chat, &req.addresses)?,
        "remove" => Command::remove_participants(&req.chat, &req.addresses)?,
        "removeIcon" => Command::remove_icon(&req.chat)?,
        "leave" => Command::leave(&req.chat)?,
        other => {
            // The actions that take only text (say, reply, react, …), by their description.
            let action = imgroups_core::action::find(other)
                .filter(|a| {
                    a.params
                        .iter()
                        .all(|p| p.kind == imgroups_core::action::Kind::Text)
                })
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "unknown op {other:?}: one of create, rename, add, remove, removeIcon, \
                         leave, or an action that takes text (say, reply, react, unreact, \
                         edit, unsend, read)"
                    ))
                    .with("field", "op")
                })?;
            let values = action
                .params
                .iter()
                .map(|p| {
                    let text = req.values.get(p.name).and_then(Value::as_str).unwrap_or("");
                    imgroups_core::action::Value::Text(text.to_owned())
                })
                .collect();
            action.command(&req.chat, values, &h.admin.limits)?
        }
    };
    match h.admin.perform(account, puppet, command).await? {
        imgroups_core::Outcome::Message(message) => ok(json!({ "messageGuid": message.guid })),
        _ => ok(json!({})),
    }
}

// --------------------------------------------------------------------------- simulator

async fn sim(State(h): State<Http>, _: AdminToken) -> Reply {
    let (unreachable, faults) = h.admin.simulator().await?;
    let faults: Vec<Value> = faults
        .iter()
        .map(|f| {
            json!({
                "id": f.id.0,
                "account": f.address.as_str(),
                "method": f.spec.method,
                "code": f.spec.error_code,
                "retryable": f.spec.retryable,
                "latencyMs": f.spec.latency_ms,
                "left": f.spec.count,
                "until": f.spec.until.map(millis),
                "createdAt": millis(f.created_at),
            })
        })
        .collect();
    ok(json!({
        "unreachable": unreachable.iter().map(Address::as_str).collect::<Vec<_>>(),
        "faults": faults,
        "codes": crate::fault_codes().collect::<Vec<_>>(),
        "methods": crate::method_names(),
    }))
}

#[derive(Deserialize, Default)]
struct ResetBody {
    /// Accounts and tokens too.
    #[serde(default)]
    all: bool,
}

async fn reset(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    // An empty body is a plain reset.
    let req: ResetBody = match &req {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => ResetBody::default(),
        _ => body(req)?,
    };
    let scope = imgroups_core::port::ResetScope { accounts: req.all };
    let resets = h.admin.reset(scope).await?;
    tracing::info!(all = req.all, "simulator reset from the console");
    ok(json!({ "resets": resets, "all": req.all }))
}

async fn export_snapshot(State(h): State<Http>, _: AdminToken) -> Reply {
    let world = h.admin.export().await?;
    Ok((
        [
            (CONTENT_TYPE, "application/json"),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"imgroups-snapshot.json\"",
            ),
        ],
        world.to_json(),
    )
        .into_response())
}

async fn import_snapshot(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let bytes = super::decode::body_bytes(req, MAX_SNAPSHOT)?;
    let world = imgroups_core::snapshot::Snapshot::from_json(&bytes)?;
    let (accounts, groups) = (world.accounts.len(), world.groups.len());
    let (messages, events) = world.accounts.iter().fold((0, 0), |(m, e), a| {
        (m + a.messages.len(), e + a.events.len())
    });
    let resets = h.admin.import(world).await?;
    tracing::info!(
        accounts,
        groups,
        messages,
        events,
        "snapshot imported from the console"
    );
    ok(json!({
        "resets": resets,
        "accounts": accounts,
        "groups": groups,
        "messages": messages,
        "events": events,
    }))
}

/// Why a seed sent to the console names no file: the server's disk is not the sender's, and
/// reading it for a caller would hand the caller the server's files.
const NO_FILES: &str = "a seed sent over HTTP cannot read a file on the server's disk: leave \
                        this step out and set the icon with POST /console/api/icon";

#[derive(Deserialize)]
struct SeedQuery {
    reset: Option<String>,
}

/// Applies the seed file in the body, as `imgroups sim seed` does: checked whole before
/// anything is written (a reset included), then its accounts and steps in file order.
async fn seed(
    State(h): State<Http>,
    _: AdminToken,
    Query(q): Query<SeedQuery>,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let reset = match q.reset.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => {
            return Err(
                Error::invalid(format!("reset is true or false, not {other:?}"))
                    .with("field", "reset")
                    .into(),
            )
        }
    };
    let source = super::decode::body_text(req, MAX_SEED)?;
    let seed = imgroups_scenario::parse_seed(&source, imgroups_scenario::Files::Refused(NO_FILES))
        .map_err(|err| {
            Error::invalid(format!(
                "line {}, column {}: {}",
                err.line, err.column, err.message
            ))
            .with("field", "body")
            .with("line", err.line)
            .with("column", err.column)
        })?;
    let report = match h.admin.seed(&seed, reset).await? {
        Ok(report) => report,
        Err(imgroups_scenario::Failed::Step { line, err }) => {
            let message = format!("line {line}: {}", err.message);
            return Err(Error { message, ..err }.with("line", line).into());
        }
        // A seed has no waits (refused when read).
        Err(imgroups_scenario::Failed::NotMet { .. }) => return Err(Error::internal().into()),
    };
    let seeded = report.seeded;
    tracing::info!(
        reset,
        accounts = seeded.accounts,
        chats = seeded.chats,
        steps = seeded.steps,
        "simulator seeded from the console"
    );
    let named = |pairs: &[(String, String)]| -> serde_json::Map<String, Value> {
        pairs
            .iter()
            .map(|(id, guid)| (id.clone(), Value::from(guid.as_str())))
            .collect()
    };
    let tokens: serde_json::Map<String, Value> = report
        .tokens
        .iter()
        .map(|(address, token)| (address.to_string(), Value::from(token.as_str())))
        .collect();
    ok(json!({
        "reset": reset,
        "tokens": tokens,
        "chats": named(&report.chats),
        "messages": named(&report.messages),
        "counts": {
            "accounts": seeded.accounts,
            "chats": seeded.chats,
            "steps": seeded.steps,
        },
    }))
}

fn clock_json(clock: Option<imgroups_core::clock::SimClock>) -> Value {
    let now = clock.map_or_else(Timestamp::now, |c| c.now);
    json!({
        "controllable": clock.is_some(),
        "now": millis(now),
        "nowNanos": now.0,
        "seed": clock.map(|c| c.seed),
        "ids": clock.map(|c| c.ids),
    })
}

async fn clock(State(h): State<Http>, _: AdminToken) -> Reply {
    ok(clock_json(h.admin.clock().await?))
}

#[derive(Deserialize)]
struct AdvanceBody {
    #[serde(default)]
    by: Option<String>,
}

async fn advance_clock(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: AdvanceBody = body(req)?;
    let by = required(&req.by, "by")?;
    let nanos = imgroups_core::clock::parse_duration(by)?;
    let clock = h.admin.advance_clock(nanos).await?;
    tracing::info!(
        by,
        now = clock.now.0,
        "simulator clock advanced from the console"
    );
    ok(clock_json(Some(clock)))
}

#[derive(Deserialize)]
struct UnreachableBody {
    #[serde(default)]
    address: String,
    #[serde(default = "yes")]
    unreachable: bool,
}

fn yes() -> bool {
    true
}

async fn unreachable(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: UnreachableBody = body(req)?;
    let address = Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
    h.admin.set_unreachable(&address, req.unreachable).await?;
    tracing::info!(address = %address, unreachable = req.unreachable, "directory changed from the console");
    ok(json!({ "address": address.as_str(), "unreachable": req.unreachable }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultBody {
    #[serde(default)]
    account: String,
    #[serde(default)]
    method: String,
    code: Option<String>,
    #[serde(default)]
    retryable: bool,
    #[serde(default)]
    latency_ms: u64,
    count: Option<u32>,
    for_secs: Option<u64>,
}

async fn add_fault(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: FaultBody = body(req)?;
    let request = crate::FaultRequest {
        method: req.method.trim(),
        code: req.code.as_deref().map(str::trim).filter(|c| !c.is_empty()),
        retryable: req.retryable,
        latency_ms: req.latency_ms,
        count: req.count,
        for_secs: req.for_secs,
    };
    let fault = h.admin.add_fault(&request, &req.account).await?;
    let method = request.method;
    tracing::warn!(fault = fault.id.0, account = %fault.address, method, "fault injected from the console");
    ok(json!({ "id": fault.id.0 }))
}

#[derive(Deserialize)]
struct ClearBody {
    id: Option<i64>,
    account: Option<String>,
}

async fn clear_faults(
    State(h): State<Http>,
    _: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: ClearBody = body(req)?;
    let cleared = h.admin.clear_faults(req.account.as_deref(), req.id).await?;
    tracing::info!(cleared, "faults cleared from the console");
    ok(json!({ "cleared": cleared }))
}

// ---------------------------------------------------------------------------- webhooks

async fn webhooks(State(h): State<Http>, _: AdminToken) -> Reply {
    let hooks = h.admin.webhooks().await?;
    let mut list = Vec::with_capacity(hooks.len());
    for (hook, head) in hooks {
        list.push(json!({
            "id": hook.id.0,
            "account": hook.address.as_str(),
            "url": hook.url,
            "delivered": hook.cursor,
            "head": head,
            "failures": hook.failures,
            "paused": hook.paused,
            "lastError": hook.last_error,
            "createdAt": millis(hook.created_at),
        }))
    }
    ok(json!({ "webhooks": list }))
}

/// The description the page builds its group forms from.
async fn actions(_: AdminToken) -> Reply {
    ok(json!({ "actions": imgroups_core::action::ACTIONS }))
}

//! [`BlueBubblesHelper`]: the actuator that drives Messages through the BlueBubbles Private API
//! helper, a bundle injected into Messages.app (Apache-2.0, maintained by BlueBubbles). Users
//! install that helper; we speak its socket protocol with our own code.
//!
//! # The protocol, as we rely on it
//!
//! Facts read from the public sources (`BB` = BlueBubblesApp/bluebubbles-server,
//! `BBH` = BlueBubblesApp/bluebubbles-helper); nothing was copied.
//!
//! - **Who listens.** The *server* listens on TCP and the *helper* connects to it: BB
//!   `packages/server/src/server/api/privateApi/PrivateApiService.ts` (`net.createServer`,
//!   `listen(port, "localhost")`); BBH `MacOS-11+/BlueBubblesHelper/NetworkController.m`
//!   (`connectToHost:@"localhost" onPort:`).
//! - **Port.** `45670 + uid - 501`, so each macOS user (uids start at 501) gets its own; BB
//!   clamps it to `45670..=65535` (`PrivateApiService.port`), BBH computes the same
//!   (`NetworkController.m` `connect`). See [`default_port`].
//! - **Reconnects.** When the connection drops the helper retries after 5 s
//!   (`NetworkController.m` `socketDidDisconnect:`); the server keeps listening and accepts it
//!   again (BB keeps a list of connected clients and writes each request to all of them).
//! - **Framing.** One JSON object per line, UTF-8. The server writes `JSON + "\n"`
//!   (`PrivateApiService.writeData`); the helper writes `JSON + "\r\n"` (`NetworkController.m`
//!   `sendMessage:`); the server splits on `\n` and trims (`privateApi/JsonLineBuffer.ts`).
//! - **One request per read.** The helper parses each socket read as one message and, when
//!   two arrive together, keeps only the first (`BlueBubblesHelper.m` `handleMessage:` cuts at
//!   `}\n{`). BB therefore serialises writes and holds its write lock 200 ms after each
//!   (`SOCKET_WRITE_RELEASE_DELAY_MS`); we do the same ([`WRITE_GAP`]).
//! - **Request.** `{"action": <name>, "data": {…}, "transactionId": <string>}`; BB makes the
//!   id a UUID (`transactionManager/transactionPromise.ts`). The group actions, with their
//!   `data` (BB `privateApi/apis/PrivateApiChat.ts`; BBH `BlueBubblesHelper.m`):
//!   - `set-display-name`: `chatGuid`, `newName` (→ `IMChat _setDisplayName:`)
//!   - `add-participant` / `remove-participant`: `chatGuid`, `address`
//!     (→ `inviteParticipantsToiMessageChat:reason:` / `removeParticipantsFromiMessageChat:`)
//!   - `update-group-photo`: `chatGuid`, `filePath`; a `null` or empty `filePath` removes the
//!     photo (→ `sendGroupPhotoUpdate:` with a transfer GUID, or `nil`)
//!   - `leave-chat`: `chatGuid` (→ `leaveiMessageGroup`, only when `canLeaveChat`)
//! - **Response.** `{"transactionId": <the same id>}` on success, with `"error": <text>` on
//!   failure (e.g. `Chat does not exist!`, `Failed to add address to chat!`); some actions add
//!   `"identifier"` (a message or chat GUID), which group actions do not. BB resolves the
//!   transaction when `error` is empty and rejects it otherwise (`PrivateApiService.onEvent`).
//! - **Events.** Lines without `transactionId` carry `"event"`; on connecting the helper sends
//!   `{"event": "ping", "message": "Helper Connected!"}`, newer ones with `"process"` (BB
//!   `eventHandlers/PrivateApiPingEventHandler.ts`). We log events and ignore them.
//! - **Silence.** The helper sometimes answers nothing: `leave-chat` when the chat cannot be
//!   left, any action on an unknown chat when the lookup fails without a transaction. Hence
//!   [`ActuatorError::Timeout`].
//!
//! # Our choices
//!
//! - One helper connection at a time: a new connection replaces the old one (a reconnecting
//!   helper's old socket may linger half-open). Actions sent on a connection that closes fail
//!   with [`ActuatorError::NotConnected`] at once instead of waiting for the timeout.
//! - Every action carries a fresh UUID transaction id, registered before the request is
//!   written, so a fast answer cannot be missed; a dropped `perform` future unregisters it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::JoinHandle;

use super::{Actuator, ActuatorError, HelperAction};

/// The helper's port for the first macOS user (uid 501).
pub const BASE_PORT: u16 = 45670;

/// How long [`BlueBubblesHelper::perform`] waits for the helper's answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause after each request before the next may be written (see the module doc).
pub const WRITE_GAP: Duration = Duration::from_millis(200);

/// The port the helper of macOS user `uid` connects to: `45670 + uid - 501`, within
/// `45670..=65535`.
pub fn default_port(uid: u32) -> u16 {
    let port = i64::from(BASE_PORT) + i64::from(uid) - 501;
    port.clamp(i64::from(BASE_PORT), i64::from(u16::MAX)) as u16
}

/// The server end of the helper protocol: listens, accepts the helper (again after each
/// reconnect), sends it actions and matches its answers to them.
///
/// Dropping it stops listening and closes the helper's connection.
pub struct BlueBubblesHelper {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    timeout: Duration,
    write_gap: Duration,
}

struct Shared {
    /// The current helper connection's write half. Held across a write and the gap after it,
    /// which is what keeps requests apart on the wire.
    writer: Arc<Mutex<Option<Writer>>>,
    /// Transactions sent and not yet answered, by transaction id.
    pending: StdMutex<HashMap<String, Pending>>,
    /// The id of the connected helper's connection, `None` when none is.
    connected: watch::Sender<Option<u64>>,
    /// The current connection's reader task.
    reader: StdMutex<Option<JoinHandle<()>>>,
    next_connection: AtomicU64,
}

struct Writer {
    connection: u64,
    half: OwnedWriteHalf,
}

struct Pending {
    connection: u64,
    answer: oneshot::Sender<Result<(), String>>,
}

impl BlueBubblesHelper {
    /// Listens on `addr` (the helper connects to `127.0.0.1:`[`default_port`] on a Mac).
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<BlueBubblesHelper> {
        BlueBubblesHelper::new(TcpListener::bind(addr).await?)
    }

    /// Serves the helper protocol on an already-bound listener. Must be called within a tokio
    /// runtime (it spawns the accept loop).
    pub fn new(listener: TcpListener) -> io::Result<BlueBubblesHelper> {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            writer: Arc::new(Mutex::new(None)),
            pending: StdMutex::new(HashMap::new()),
            connected: watch::Sender::new(None),
            reader: StdMutex::new(None),
            next_connection: AtomicU64::new(1),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(BlueBubblesHelper {
            shared,
            local_addr,
            accept,
            timeout: DEFAULT_TIMEOUT,
            write_gap: WRITE_GAP,
        })
    }

    /// How long an action waits for its answer (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> BlueBubblesHelper {
        self.timeout = timeout;
        self
    }

    /// The pause after each request (default [`WRITE_GAP`]; only a helper that frames by line,
    /// like the fake one, can do with less).
    pub fn with_write_gap(mut self, gap: Duration) -> BlueBubblesHelper {
        self.write_gap = gap;
        self
    }

    /// The address the helper connects to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether a helper is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.borrow().is_some()
    }

    /// Waits until a helper is connected (at once if one is).
    pub async fn connected(&self) {
        let mut rx = self.shared.connected.subscribe();
        // The sender lives in `self.shared`, so this cannot fail while `self` exists.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Waits until no helper is connected (at once if none is): a helper dropped.
    pub async fn disconnected(&self) {
        let mut rx = self.shared.connected.subscribe();
        let _ = rx.wait_for(Option::is_none).await;
    }

    async fn send(&self, action: &HelperAction) -> Result<(), ActuatorError> {
        let transaction = uuid::Uuid::new_v4().to_string();
        let line = wire::request(action, &transaction);
        let (answer, answered) = oneshot::channel();
        let mut writer = self.shared.writer.clone().lock_owned().await;
        let Some(connection) = writer.as_ref().map(|w| w.connection) else {
            return Err(ActuatorError::NotConnected);
        };
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let previous = pending.insert(transaction.clone(), Pending { connection, answer });
            debug_assert!(previous.is_none(), "transaction ids are unique");
        }
        let _registered = Registered {
            shared: &self.shared,
            transaction: transaction.clone(),
        };
        // The write and the pause after it run in a task of their own: if this future is
        // dropped (timeout, caller gone) the line is still written whole and the pause still
        // kept, so the next request cannot be glued to half of this one.
        let gap = self.write_gap;
        let write = tokio::spawn(async move {
            // Checked above, and the lock is held since: always there.
            let Some(w) = writer.as_mut() else {
                return Err(io::Error::from(io::ErrorKind::NotConnected));
            };
            let written = w.half.write_all(line.as_bytes()).await;
            if written.is_ok() {
                tokio::time::sleep(gap).await;
            }
            written
        });
        match write.await {
            Ok(Ok(())) => {
                tracing::debug!(%transaction, action = wire::action_name(action), "sent to the Messages helper");
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "writing to the Messages helper failed");
                return Err(ActuatorError::NotConnected);
            }
            // Only when the runtime shuts down.
            Err(_) => return Err(ActuatorError::NotConnected),
        }
        match answered.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(ActuatorError::Rejected(message)),
            // The connection closed before the answer came.
            Err(_) => Err(ActuatorError::NotConnected),
        }
    }
}

#[async_trait]
impl Actuator for BlueBubblesHelper {
    async fn perform(&self, action: &HelperAction) -> Result<(), ActuatorError> {
        tokio::time::timeout(self.timeout, self.send(action))
            .await
            .unwrap_or(Err(ActuatorError::Timeout))
    }
}

impl Drop for BlueBubblesHelper {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(reader) = self
            .shared
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            reader.abort();
        }
    }
}

/// Unregisters a transaction when its `perform` ends, however it ends (answer, timeout, or
/// the future being dropped).
struct Registered<'a> {
    shared: &'a Shared,
    transaction: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.remove(&self.transaction);
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Per-connection failures (the peer reset before accept, too many open
                // files): wait a moment and keep listening.
                tracing::warn!(error = %e, "accepting a Messages helper connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, connection, "Messages helper connected");
        let (read, write) = stream.into_split();
        let previous = shared.writer.lock().await.replace(Writer {
            connection,
            half: write,
        });
        if let Some(previous) = previous {
            fail_pending(&shared, previous.connection);
        }
        let reader = tokio::spawn(read_loop(read, connection, shared.clone()));
        if let Some(old) = shared
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(reader)
        {
            old.abort();
        }
        shared.connected.send_replace(Some(connection));
    }
}

async fn read_loop(read: OwnedReadHalf, connection: u64, shared: Arc<Shared>) {
    let mut lines = BufReader::new(read).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => on_line(&shared, line.trim()),
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading from the Messages helper failed");
                break;
            }
        }
    }
    tracing::info!(connection, "Messages helper disconnected");
    {
        let mut writer = shared.writer.lock().await;
        if writer.as_ref().is_some_and(|w| w.connection == connection) {
            *writer = None;
        }
    }
    shared.connected.send_if_modified(|c| {
        let was = *c == Some(connection);
        if was {
            *c = None;
        }
        was
    });
    fail_pending(&shared, connection);
}

fn on_line(shared: &Shared, line: &str) {
    if line.is_empty() {
        return;
    }
    match wire::parse_response(line) {
        Some(wire::Incoming::Answer {
            transaction,
            result,
        }) => {
            let pending = shared
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&transaction);
            match pending {
                // The receiver may be gone (timed out): nothing to tell.
                Some(p) => drop(p.answer.send(result)),
                None => tracing::debug!(%transaction, "answer for no pending action"),
            }
        }
        Some(wire::Incoming::Event(event)) => {
            tracing::debug!(%event, "event from the Messages helper");
        }
        None => tracing::debug!(line, "unreadable line from the Messages helper"),
    }
}

/// Fails the transactions sent on `connection`: their answers cannot come any more.
fn fail_pending(shared: &Shared, connection: u64) {
    // Dropping the senders makes the waiting `perform`s return `NotConnected`.
    shared
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|_, p| p.connection != connection);
}

/// The JSON lines of the protocol, both directions (the fake helper reads requests with it).
pub(crate) mod wire {
    use std::path::PathBuf;

    use serde_json::{json, Map, Value};

    use crate::actuator::{HelperAction, HelperChat};

    pub(crate) fn action_name(action: &HelperAction) -> &'static str {
        match action {
            HelperAction::Rename { .. } => "set-display-name",
            HelperAction::AddParticipant { .. } => "add-participant",
            HelperAction::RemoveParticipant { .. } => "remove-participant",
            HelperAction::SetIcon { .. } | HelperAction::RemoveIcon { .. } => "update-group-photo",
            HelperAction::Leave { .. } => "leave-chat",
        }
    }

    /// A request line, newline included.
    pub(crate) fn request(action: &HelperAction, transaction: &str) -> String {
        let chat = action.chat().helper_guid();
        let data = match action {
            HelperAction::Rename { name, .. } => json!({ "chatGuid": chat, "newName": name }),
            HelperAction::AddParticipant { address, .. }
            | HelperAction::RemoveParticipant { address, .. } => {
                json!({ "chatGuid": chat, "address": address })
            }
            HelperAction::SetIcon { file, .. } => {
                json!({ "chatGuid": chat, "filePath": file.to_string_lossy() })
            }
            HelperAction::RemoveIcon { .. } => json!({ "chatGuid": chat, "filePath": null }),
            HelperAction::Leave { .. } => json!({ "chatGuid": chat }),
        };
        let message = json!({
            "action": action_name(action),
            "data": data,
            "transactionId": transaction,
        });
        format!("{message}\n")
    }

    /// What came from the helper.
    pub(crate) enum Incoming {
        /// The answer to a transaction: `Err` with the helper's error text.
        Answer {
            transaction: String,
            result: Result<(), String>,
        },
        /// An event (`ping`, typing, …), by name.
        Event(String),
    }

    pub(crate) fn parse_response(line: &str) -> Option<Incoming> {
        let Value::Object(message) = serde_json::from_str::<Value>(line).ok()? else {
            return None;
        };
        if let Some(transaction) = message.get("transactionId").and_then(Value::as_str) {
            let result = match message.get("error") {
                Some(Value::String(e)) if !e.is_empty() => Err(e.clone()),
                Some(Value::Null) | None => Ok(()),
                Some(Value::String(_)) => Ok(()),
                Some(other) => Err(other.to_string()),
            };
            return Some(Incoming::Answer {
                transaction: transaction.to_owned(),
                result,
            });
        }
        let event = message.get("event").and_then(Value::as_str)?;
        Some(Incoming::Event(event.to_owned()))
    }

    /// A request as the helper reads it.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) struct Request {
        /// `None` for actions the helper does not answer.
        pub(crate) transaction: Option<String>,
        /// `Err` with the action's name when it is not a group action we know, or its data is
        /// unusable (the real helper answers the latter with an error).
        pub(crate) action: Result<HelperAction, String>,
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn parse_request(line: &str) -> Option<Request> {
        let Value::Object(message) = serde_json::from_str::<Value>(line).ok()? else {
            return None;
        };
        let transaction = message
            .get("transactionId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = message.get("action").and_then(Value::as_str)?.to_owned();
        let empty = Map::new();
        let data = message
            .get("data")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
        let chat = text("chatGuid").and_then(|g| HelperChat::from_helper_guid(&g));
        let action = match (name.as_str(), chat) {
            (_, None) => None,
            ("set-display-name", Some(chat)) => {
                text("newName").map(|name| HelperAction::Rename { chat, name })
            }
            ("add-participant", Some(chat)) => {
                text("address").map(|address| HelperAction::AddParticipant { chat, address })
            }
            ("remove-participant", Some(chat)) => {
                text("address").map(|address| HelperAction::RemoveParticipant { chat, address })
            }
            ("update-group-photo", Some(chat)) => match text("filePath") {
                Some(path) if !path.is_empty() => Some(HelperAction::SetIcon {
                    chat,
                    file: PathBuf::from(path),
                }),
                _ => Some(HelperAction::RemoveIcon { chat }),
            },
            ("leave-chat", Some(chat)) => Some(HelperAction::Leave { chat }),
            (_, Some(_)) => None,
        };
        Some(Request {
            transaction,
            action: action.ok_or(name),
        })
    }

    /// An answer line as the helper writes it (`\r\n`-terminated).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn answer(transaction: &str, error: Option<&str>) -> String {
        let message = match error {
            None => json!({ "transactionId": transaction }),
            Some(error) => json!({ "transactionId": transaction, "error": error }),
        };
        format!("{message}\r\n")
    }

    /// The helper's greeting on connecting.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn ping() -> String {
        format!(
            "{}\r\n",
            json!({ "event": "ping", "message": "Helper Connected!", "process": "com.apple.MobileSMS" })
        )
    }
}

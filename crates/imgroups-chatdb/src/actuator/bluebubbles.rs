//! [`BlueBubblesHelper`]: the actuator that drives Messages through the BlueBubbles Private API
//! helper, a library injected into Messages.app (Apache-2.0, maintained by BlueBubbles). Users
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
//!   (`connectToHost:@"localhost" onPort:`). The helper connects 5 s after it is loaded
//!   (`BlueBubblesHelper.m` `+load`), and only inside Messages (`com.apple.MobileSMS`).
//! - **Port.** `45670 + uid - 501`, so each macOS user (uids start at 501) gets its own; BB
//!   clamps it to `45670..=65535` (`PrivateApiService.port`), BBH computes the same
//!   (`NetworkController.m` `connect`). See [`default_port`]. The BlueBubbles server listens
//!   on the same port: only one of the two can run.
//! - **Reconnects.** When the connection drops the helper retries after 5 s
//!   (`NetworkController.m` `socketDidDisconnect:`).
//! - **Greeting.** On connecting the helper sends `{"event": "ping", "message": "Helper
//!   Connected!", "process": <the host app's bundle id>}` (`NetworkController.m`
//!   `didConnectToHost:`); BB keeps one client per `process` (`PrivateApiService.registerClient`,
//!   `eventHandlers/PrivateApiPingEventHandler.ts`). Messages is `com.apple.MobileSMS`.
//! - **Framing.** One JSON object per line, UTF-8. The server writes `JSON + "\n"`
//!   (`PrivateApiService.writeData`); the helper writes `JSON + "\r\n"` (`NetworkController.m`
//!   `sendMessage:`); the server splits on `\n`, trims, and refuses lines over 16 MiB
//!   (`privateApi/JsonLineBuffer.ts`).
//! - **One request per read.** The helper parses each socket read as one message and, when
//!   two arrive together, keeps only the first (`BlueBubblesHelper.m` `handleMessage:` cuts at
//!   `}\n{`). BB therefore serialises writes and holds its write lock 200 ms after each
//!   (`SOCKET_WRITE_RELEASE_DELAY_MS`); we do the same ([`WRITE_GAP`]), and also keep the line
//!   until the request is answered ([`ANSWER_HOLD`] at most): a request written while the
//!   helper is still busy would be read together with the next one.
//! - **Chat lookup.** Every action finds its chat with one exact
//!   `[[IMChatRegistry sharedInstance] existingChatWithGUID:]` (`BlueBubblesHelper.m`
//!   `getChat::`), and BB sends `chat.guid` exactly as chat.db holds it: so do we
//!   ([`HelperChat`](super::HelperChat)). An unknown chat is answered `Chat does not exist!`, a
//!   missing GUID `Provide a chat GUID!`.
//! - **Request.** `{"action": <name>, "data": {…}, "transactionId": <string>}`; BB makes the
//!   id a UUID (`transactionManager/transactionPromise.ts`). The group actions, with their
//!   `data` (BB `privateApi/apis/PrivateApiChat.ts`; BBH `BlueBubblesHelper.m`):
//!   - `set-display-name`: `chatGuid`, `newName` (no `newName`: `Provide a new name for the
//!     chat!`, before the chat is looked up — which makes it a harmless liveness probe)
//!   - `add-participant` / `remove-participant`: `chatGuid`, `address` (`Failed to add address
//!     to chat!` / `Failed to remove address from chat!`)
//!   - `update-group-photo`: `chatGuid`, `filePath`; a `null` or empty `filePath` removes the
//!     photo. The helper copies the file into Messages' attachment store; when it cannot (the
//!     file is somewhere Messages may not read) it calls `sendGroupPhotoUpdate:nil`, which
//!     *removes* the photo, and still answers success (`prepareFileTransferForAttachment:`).
//!     BB therefore copies the file under `~/Library/Messages/Attachments/BlueBubbles/<uuid>/`
//!     first (`fileSystem/index.ts` `copyAttachment`, `messagesAttachmentsDir`); we write ours
//!     under `~/Library/Messages/Attachments/imgroups/`.
//!   - `leave-chat`: `chatGuid` (→ `leaveiMessageGroup`, only when `canLeaveChat`; otherwise
//!     no answer at all)
//!
//!   The message actions (BB `privateApi/apis/PrivateApiMessage.ts`, the chat's in
//!   `PrivateApiChat.ts`), in groups and direct chats alike:
//!   - `send-message`: `chatGuid`, `message` (the text), `subject`, `effectId`,
//!     `selectedMessageGuid` and `partIndex` (the message answered), `attributedBody`, `ddScan`
//!   - `send-reaction`: `chatGuid`, `selectedMessageGuid`, `reactionType` (`love`, `like`,
//!     `dislike`, `laugh`, `emphasize`, `question`; `-love` … removes), `partIndex`
//!   - `edit-message`: `chatGuid`, `messageGuid`, `editedMessage`,
//!     `backwardsCompatibilityMessage` (sent to devices that cannot show edits), `partIndex`
//!   - `unsend-message`: `chatGuid`, `messageGuid`, `partIndex`
//!   - `mark-chat-read`: `chatGuid`
//!   - `start-typing` / `stop-typing`: `chatGuid` (BB `PrivateApiChat.ts` `startTyping` /
//!     `stopTyping`; BBH `handleMessage:` sets `localUserIsTyping` on the chat `getChat::`
//!     found, and answers `{transactionId}` when the request has one). BB sends these without
//!     waiting for an answer; we send a transaction id like every other action, so that an
//!     unknown chat or a missing helper is reported to the caller.
//! - **Response.** `{"transactionId": <the same id>}` on success, with `"error": <text>` on
//!   failure. An unknown chat can be answered twice (the lookup's error, then the action's own
//!   answer); the first one counts (BB resolves a transaction once, `PrivateApiService.onEvent`).
//!
//! # Our choices
//!
//! - **Loopback only.** [`BlueBubblesHelper::bind`] refuses a non-loopback address unless
//!   [`HelperOptions::allow_remote`] (the helper always connects to `localhost`).
//! - **Who may connect.** Before anything is read from a connection, the process at its other
//!   end is looked up ([`PeerCheck`]; by default [`ProcessCheck::platform_default`]: on macOS a
//!   process of this user running Messages' own executable, elsewhere any process of this user).
//!   Then the connection must greet with a `ping` whose `process` is Messages
//!   ([`MESSAGES_BUNDLE_ID`]); other injected apps (FaceTime, Find My) are not given writes.
//! - **One helper at a time, and a live one keeps the line.** A new Messages connection takes
//!   over only when the current one no longer answers a liveness probe (`set-display-name`
//!   without a name, answered with an error and no effect by the real helper) within
//!   [`HelperOptions::probe_timeout`]; otherwise the newcomer is closed.
//! - **Bounded input.** A line longer than [`HelperOptions::max_line`] closes its connection;
//!   at most [`MAX_HANDSHAKES`] connections may be between accept and their greeting at once.
//! - Actions sent on a connection that closes fail with [`ActuatorError::NotConnected`] at
//!   once instead of waiting for the timeout. Every action carries a fresh UUID transaction
//!   id, registered before the request is written, so a fast answer cannot be missed; a
//!   dropped `perform` future unregisters it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{oneshot, watch, Mutex, Semaphore};
use tokio::task::JoinHandle;

use super::{Actuator, ActuatorError, HelperAction};
use crate::mac::system::{peer_process, RealSystem, System};

/// The helper's port for the first macOS user (uid 501).
pub const BASE_PORT: u16 = 45670;

/// How long [`BlueBubblesHelper::perform`] waits for the helper's answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause after each request before the next may be written (see the module doc).
pub const WRITE_GAP: Duration = Duration::from_millis(200);

/// How long the line is kept for one request while its answer is awaited (see `transact`); a
/// helper that answers nothing (`leave-chat` it cannot do) holds it no longer.
pub const ANSWER_HOLD: Duration = Duration::from_secs(2);

/// The bundle id Messages' helper names in its `ping`.
pub const MESSAGES_BUNDLE_ID: &str = "com.apple.MobileSMS";

/// Where Messages' executable is, newest macOS first (BB `dylibPlugins/index.ts`
/// `parentProcessPath`).
pub const MESSAGES_EXECUTABLES: [&str; 2] = [
    "/System/Applications/Messages.app/Contents/MacOS/Messages",
    "/Applications/Messages.app/Contents/MacOS/Messages",
];

/// The longest line read from a helper connection (1 MiB): group actions are answered in a few
/// hundred bytes; the longest events of the Messages helper are far below this.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Connections between accept and their greeting at once; more are closed at accept.
pub const MAX_HANDSHAKES: usize = 8;

/// How long an action waits, when no helper is connected but one is being admitted (its peer
/// check and greeting take a moment after the connection), before it fails as not connected.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(3);

/// The port the helper of macOS user `uid` connects to: `45670 + uid - 501`, within
/// `45670..=65535`.
pub fn default_port(uid: u32) -> u16 {
    let port = i64::from(BASE_PORT) + i64::from(uid) - 501;
    port.clamp(i64::from(BASE_PORT), i64::from(u16::MAX)) as u16
}

/// Decides whether a connection to the helper port may speak to us, before anything is read
/// from it.
pub trait PeerCheck: Send + Sync {
    /// `Ok` with a description of the peer (for the log), `Err` with why it is refused.
    fn check(&self, listener: SocketAddr, peer: SocketAddr) -> Result<String, String>;
}

/// The peer check of the platform: the connecting process, found with `lsof`, must belong to
/// this user and, when `executables` is set, run one of those programs.
///
/// What it protects against: another user's processes, and this user's ordinary programs (a
/// script, another app) connecting to the port to receive the writes meant for Messages or to
/// answer them falsely. What it does not: code running inside Messages itself — with System
/// Integrity Protection off (which the helper needs) any program of this user can start
/// Messages with a library of its own — nor root.
pub struct ProcessCheck {
    system: Arc<dyn System>,
    executables: Option<Vec<PathBuf>>,
}

impl ProcessCheck {
    /// On macOS: this user's processes running Messages ([`MESSAGES_EXECUTABLES`]). Elsewhere
    /// (no Messages exists there; a test double plays it): any process of this user.
    pub fn platform_default() -> ProcessCheck {
        if cfg!(target_os = "macos") {
            ProcessCheck::running(
                Arc::new(RealSystem),
                MESSAGES_EXECUTABLES.iter().map(PathBuf::from).collect(),
            )
        } else {
            ProcessCheck::same_user(Arc::new(RealSystem))
        }
    }

    /// Any process of this user.
    pub fn same_user(system: Arc<dyn System>) -> ProcessCheck {
        ProcessCheck {
            system,
            executables: None,
        }
    }

    /// This user's processes running one of `executables`.
    pub fn running(system: Arc<dyn System>, executables: Vec<PathBuf>) -> ProcessCheck {
        ProcessCheck {
            system,
            executables: Some(executables),
        }
    }
}

impl PeerCheck for ProcessCheck {
    fn check(&self, listener: SocketAddr, peer: SocketAddr) -> Result<String, String> {
        let process = peer_process(&*self.system, listener, peer, self.executables.is_some())?;
        let uid = self.system.uid();
        if process.uid != uid {
            return Err(format!(
                "process {} belongs to user {}, not to this server's user {uid}",
                process.pid, process.uid
            ));
        }
        if let (Some(allowed), Some(exe)) = (&self.executables, &process.executable) {
            if !allowed.iter().any(|a| a == exe) {
                return Err(format!(
                    "process {} runs {}, not Messages",
                    process.pid,
                    exe.display()
                ));
            }
        }
        Ok(match &process.executable {
            Some(exe) => format!("process {} ({})", process.pid, exe.display()),
            None => format!("process {}", process.pid),
        })
    }
}

/// How the helper listener behaves; [`HelperOptions::default`] is what `serve` uses.
#[derive(Clone)]
pub struct HelperOptions {
    /// Listen on a non-loopback address too (the helper only ever connects from this Mac).
    pub allow_remote: bool,
    /// Who may connect; `None`: anyone who greets as Messages (tests only).
    pub peer: Option<Arc<dyn PeerCheck>>,
    /// Longest line read.
    pub max_line: usize,
    /// How long a new connection has to send its `ping`.
    pub greeting_timeout: Duration,
    /// How long the current helper has to answer the liveness probe when another connection
    /// claims to be Messages.
    pub probe_timeout: Duration,
}

impl Default for HelperOptions {
    fn default() -> HelperOptions {
        HelperOptions {
            allow_remote: false,
            peer: Some(Arc::new(ProcessCheck::platform_default())),
            max_line: MAX_LINE_BYTES,
            greeting_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// The server end of the helper protocol: listens, admits the helper (again after each
/// reconnect), sends it actions and matches its answers to them.
///
/// Dropping it stops listening and closes the helper's connection.
pub struct BlueBubblesHelper {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    timeout: Duration,
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
    /// One admission (probe, then install) at a time.
    admission: Mutex<()>,
    /// Connections accepted and not yet admitted or refused.
    admitting: std::sync::atomic::AtomicUsize,
    handshakes: Arc<Semaphore>,
    options: HelperOptions,
    write_gap: StdMutex<Duration>,
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
    /// Listens on `addr` (a loopback address; see [`BlueBubblesHelper::bind_with`]) with the
    /// default [`HelperOptions`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<BlueBubblesHelper> {
        BlueBubblesHelper::bind_with(addr, HelperOptions::default()).await
    }

    /// Listens on `addr` for the helper. A non-loopback address is refused
    /// ([`io::ErrorKind::InvalidInput`]) unless `options.allow_remote`, and then logged as a
    /// warning. An address in use says who holds it when `lsof` can tell (the BlueBubbles
    /// server listens on the same port).
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        options: HelperOptions,
    ) -> io::Result<BlueBubblesHelper> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
        let Some(&first) = addrs.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address"));
        };
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            if !options.allow_remote {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{remote} is not a loopback address: the Messages helper connects from \
                         this Mac only (use 127.0.0.1:PORT), or pass --helper-allow-remote to \
                         listen there anyway"
                    ),
                ));
            }
            tracing::warn!(addr = %remote, "listening for the Messages helper on a non-loopback address: any host that can reach it may try to connect");
        }
        let listener = match TcpListener::bind(first).await {
            Ok(listener) => listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let holder = crate::mac::launch::port_holder(&RealSystem, first.port());
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    crate::mac::launch::port_taken_message(first.port(), holder.as_ref()),
                ));
            }
            Err(e) => return Err(e),
        };
        BlueBubblesHelper::from_listener_with(listener, options)
    }

    /// Serves on an already bound listener with the default options.
    pub fn from_listener(listener: TcpListener) -> io::Result<BlueBubblesHelper> {
        BlueBubblesHelper::from_listener_with(listener, HelperOptions::default())
    }

    /// Serves on an already bound listener.
    pub fn from_listener_with(
        listener: TcpListener,
        options: HelperOptions,
    ) -> io::Result<BlueBubblesHelper> {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            writer: Arc::new(Mutex::new(None)),
            pending: StdMutex::new(HashMap::new()),
            connected: watch::Sender::new(None),
            reader: StdMutex::new(None),
            next_connection: AtomicU64::new(1),
            admission: Mutex::new(()),
            admitting: std::sync::atomic::AtomicUsize::new(0),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            options,
            write_gap: StdMutex::new(WRITE_GAP),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(BlueBubblesHelper {
            shared,
            local_addr,
            accept,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long an action waits for its answer (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> BlueBubblesHelper {
        self.timeout = timeout;
        self
    }

    /// The pause after each request (default [`WRITE_GAP`]; only a helper that frames by line
    /// can do with less).
    pub fn with_write_gap(self, gap: Duration) -> BlueBubblesHelper {
        *self
            .shared
            .write_gap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = gap;
        self
    }

    /// The address the helper connects to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether a Messages helper is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.borrow().is_some()
    }

    /// Waits until a Messages helper is connected (at once if one is).
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

    /// The id of the current helper connection (they count up from 1), `None` when none is.
    pub fn connection(&self) -> Option<u64> {
        *self.shared.connected.borrow()
    }
}

#[async_trait]
impl Actuator for BlueBubblesHelper {
    async fn perform(&self, action: &HelperAction) -> Result<(), ActuatorError> {
        let transaction = uuid::Uuid::new_v4().to_string();
        let line = wire::request(action, &transaction);
        tracing::debug!(%transaction, action = wire::action_name(action), "to the Messages helper");
        tokio::time::timeout(self.timeout, transact(&self.shared, line, transaction))
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

/// Writes one request line to the current connection and waits for its answer.
async fn transact(shared: &Shared, line: String, transaction: String) -> Result<(), ActuatorError> {
    if shared.connected.borrow().is_none() && shared.admitting.load(Ordering::Acquire) > 0 {
        // A helper (re)connecting right now: give its admission a moment.
        let mut rx = shared.connected.subscribe();
        let _ = tokio::time::timeout(ADMISSION_WAIT, rx.wait_for(Option::is_some)).await;
    }
    let (answer, mut answered) = oneshot::channel();
    let mut writer = shared.writer.clone().lock_owned().await;
    let Some(connection) = writer.as_ref().map(|w| w.connection) else {
        return Err(ActuatorError::NotConnected);
    };
    shared
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(transaction.clone(), Pending { connection, answer });
    let _registered = Registered {
        shared,
        transaction,
    };
    // The write and the pause after it run in a task of their own: if this future is dropped
    // (timeout, caller gone) the line is still written whole and the pause still kept, so the
    // next request cannot be glued to half of this one.
    let gap = *shared
        .write_gap
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let write = tokio::spawn(async move {
        // Checked above, and the lock is held since: always there.
        let Some(w) = writer.as_mut() else {
            return (Err(io::Error::from(io::ErrorKind::NotConnected)), writer);
        };
        let written = w.half.write_all(line.as_bytes()).await;
        if written.is_ok() {
            tokio::time::sleep(gap).await;
        }
        (written, writer)
    });
    let writer = match write.await {
        Ok((Ok(()), writer)) => writer,
        Ok((Err(e), _)) => {
            tracing::debug!(error = %e, "writing to the Messages helper failed");
            return Err(ActuatorError::NotConnected);
        }
        // Only when the runtime shuts down.
        Err(_) => return Err(ActuatorError::NotConnected),
    };
    // The line stays ours until the helper answered (for at most ANSWER_HOLD): it handles one
    // request at a time and takes whatever one socket read holds as one message, so a request
    // written while it is still busy with this one would arrive glued to the next and be lost.
    let held = tokio::time::timeout(ANSWER_HOLD, &mut answered).await;
    drop(writer);
    let answer = match held {
        Ok(answer) => answer,
        Err(_) => answered.await,
    };
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(ActuatorError::Rejected(message)),
        // The connection closed before the answer came.
        Err(_) => Err(ActuatorError::NotConnected),
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
    let local = listener.local_addr().ok();
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
        let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections waiting to greet on the helper port; closed");
            continue;
        };
        let shared = shared.clone();
        let local = local.unwrap_or(peer);
        shared.admitting.fetch_add(1, Ordering::AcqRel);
        let admitting = Admitting(shared.clone());
        tokio::spawn(async move {
            admit(stream, local, peer, shared).await;
            drop((admitting, permit));
        });
    }
}

/// Counts a connection as being admitted until dropped (however its admission ends).
struct Admitting(Arc<Shared>);

impl Drop for Admitting {
    fn drop(&mut self) {
        self.0.admitting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Checks a new connection (peer, greeting) and makes it the current helper if it may be.
async fn admit(stream: TcpStream, local: SocketAddr, peer: SocketAddr, shared: Arc<Shared>) {
    let options = &shared.options;
    if !options.allow_remote && !peer.ip().is_loopback() {
        tracing::warn!(%peer, "refused a helper connection from another host");
        return;
    }
    if let Some(check) = options.peer.clone() {
        let verdict = tokio::task::spawn_blocking(move || check.check(local, peer))
            .await
            .unwrap_or_else(|_| Err("the peer check failed".to_owned()));
        match verdict {
            Ok(who) => tracing::debug!(%peer, %who, "helper connection from"),
            Err(reason) => {
                tracing::warn!(%peer, %reason, "refused a connection on the Messages helper port");
                return;
            }
        }
    }
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = LineReader::new(read, options.max_line);
    let greeting = tokio::time::timeout(options.greeting_timeout, reader.next_line()).await;
    let process = match greeting {
        Ok(Ok(Some(line))) => match wire::parse_response(line.trim()) {
            Some(wire::Incoming::Event { name, process }) if name == "ping" => process,
            _ => {
                tracing::warn!(%peer, "a helper connection did not greet with a ping; closed");
                return;
            }
        },
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "a helper connection sent an unreadable greeting; closed");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "a helper connection sent no ping in time; closed");
            return;
        }
    };
    if process.as_deref() != Some(MESSAGES_BUNDLE_ID) {
        tracing::info!(
            %peer,
            process = process.as_deref().unwrap_or("(none)"),
            "a helper inside another app connected; only Messages ({MESSAGES_BUNDLE_ID}) is given writes: closed"
        );
        return;
    }
    let _admission = shared.admission.lock().await;
    if shared.connected.borrow().is_some() && current_answers(&shared).await {
        tracing::warn!(
            %peer,
            "a second connection claiming to be Messages was refused: the connected helper still answers"
        );
        return;
    }
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, connection, "Messages helper connected");
    let previous = shared.writer.lock().await.replace(Writer {
        connection,
        half: write,
    });
    if let Some(previous) = previous {
        fail_pending(&shared, previous.connection);
    }
    let task = tokio::spawn(read_loop(reader, connection, shared.clone()));
    if let Some(old) = shared
        .reader
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(task)
    {
        old.abort();
    }
    shared.connected.send_replace(Some(connection));
}

/// Whether the current helper answers the liveness probe in time.
async fn current_answers(shared: &Shared) -> bool {
    let transaction = uuid::Uuid::new_v4().to_string();
    let line = wire::probe(&transaction);
    let answer = tokio::time::timeout(
        shared.options.probe_timeout,
        transact(shared, line, transaction),
    )
    .await;
    matches!(answer, Ok(Ok(()) | Err(ActuatorError::Rejected(_))))
}

async fn read_loop(mut reader: LineReader<OwnedReadHalf>, connection: u64, shared: Arc<Shared>) {
    loop {
        match reader.next_line().await {
            Ok(Some(line)) => on_line(&shared, line.trim()),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(connection, error = %e, "reading from the Messages helper failed; closing its connection");
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
        Some(wire::Incoming::Event { name, .. }) => {
            tracing::debug!(event = %name, "event from the Messages helper");
        }
        None => tracing::debug!(
            bytes = line.len(),
            "unreadable line from the Messages helper"
        ),
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

/// Reads `\n`-terminated lines of at most `max` bytes; a longer one is an error (the
/// connection is then closed), so a peer cannot make us hold more than `max` bytes.
struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    line: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> LineReader<R> {
    fn new(read: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(read),
            max,
            line: Vec::new(),
        }
    }

    /// The next line without its `\n` (lossily decoded), `None` at the end of the stream.
    async fn next_line(&mut self) -> io::Result<Option<String>> {
        self.line.clear();
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.line.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > self.max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {} bytes", self.max),
                ));
            }
            self.line.extend_from_slice(&available[..take]);
            let consumed = if done { take + 1 } else { take };
            self.inner.consume(consumed);
            if done {
                break;
            }
        }
        Ok(Some(String::from_utf8_lossy(&self.line).into_owned()))
    }
}

/// The JSON lines of the protocol, both directions (the fake helper reads requests with it).
pub(crate) mod wire {
    use serde_json::{json, Value};

    use crate::actuator::HelperAction;

    pub(crate) fn action_name(action: &HelperAction) -> &'static str {
        match action {
            HelperAction::Rename { .. } => "set-display-name",
            HelperAction::AddParticipant { .. } => "add-participant",
            HelperAction::RemoveParticipant { .. } => "remove-participant",
            HelperAction::SetIcon { .. } | HelperAction::RemoveIcon { .. } => "update-group-photo",
            HelperAction::Leave { .. } => "leave-chat",
            HelperAction::SendMessage { .. } => "send-message",
            HelperAction::SendReaction { .. } => "send-reaction",
            HelperAction::EditMessage { .. } => "edit-message",
            HelperAction::UnsendMessage { .. } => "unsend-message",
            HelperAction::MarkChatRead { .. } => "mark-chat-read",
            HelperAction::SetTyping { typing: true, .. } => "start-typing",
            HelperAction::SetTyping { typing: false, .. } => "stop-typing",
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
            HelperAction::Leave { .. }
            | HelperAction::MarkChatRead { .. }
            | HelperAction::SetTyping { .. } => {
                json!({ "chatGuid": chat })
            }
            // BB `privateApi/apis/PrivateApiMessage.ts` `send`: the text as `message`, no
            // `attributedBody` (plain text), part 0 of the message answered.
            HelperAction::SendMessage {
                text,
                subject,
                effect,
                reply_to,
                ..
            } => json!({
                "chatGuid": chat,
                "message": text,
                "subject": subject,
                "effectId": effect,
                "selectedMessageGuid": reply_to,
                "partIndex": 0,
                "attributedBody": null,
                "ddScan": 0,
            }),
            // `react`: `reactionType` is `love` … `question`, `-love` … to remove.
            HelperAction::SendReaction {
                message, reaction, ..
            } => json!({
                "chatGuid": chat,
                "selectedMessageGuid": message,
                "reactionType": reaction,
                "partIndex": 0,
            }),
            // `edit`: older devices are sent `backwardsCompatibilityMessage` as a new message.
            HelperAction::EditMessage { message, text, .. } => json!({
                "chatGuid": chat,
                "messageGuid": message,
                "editedMessage": text,
                "backwardsCompatibilityMessage": format!("Edited to \u{201c}{text}\u{201d}"),
                "partIndex": 0,
            }),
            HelperAction::UnsendMessage { message, .. } => json!({
                "chatGuid": chat,
                "messageGuid": message,
                "partIndex": 0,
            }),
        };
        let message = json!({
            "action": action_name(action),
            "data": data,
            "transactionId": transaction,
        });
        format!("{message}\n")
    }

    /// The liveness probe: `set-display-name` without `newName`, which the helper answers with
    /// an error before it looks any chat up (`BlueBubblesHelper.m` `handleMessage:`), so it
    /// changes nothing.
    pub(crate) fn probe(transaction: &str) -> String {
        let message = json!({
            "action": "set-display-name",
            "data": {},
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
        /// An event (`ping`, typing, …), by name, with the `process` a `ping` names.
        Event {
            name: String,
            process: Option<String>,
        },
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
        let name = message.get("event").and_then(Value::as_str)?;
        Some(Incoming::Event {
            name: name.to_owned(),
            process: message
                .get("process")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// An answer line as the helper writes it (`\r\n`-terminated, `NetworkController.m`
    /// `sendMessage:`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn answer(transaction: &str, error: Option<&str>) -> String {
        let message = match error {
            None => json!({ "transactionId": transaction }),
            Some(error) => json!({ "transactionId": transaction, "error": error }),
        };
        format!("{message}\r\n")
    }

    /// The helper's greeting on connecting (`NetworkController.m` `didConnectToHost:`):
    /// `process` is the host app's bundle id.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn ping(process: Option<&str>) -> String {
        let message = match process {
            Some(process) => {
                json!({ "event": "ping", "message": "Helper Connected!", "process": process })
            }
            None => json!({ "event": "ping", "message": "Helper Connected!" }),
        };
        format!("{message}\r\n")
    }
}

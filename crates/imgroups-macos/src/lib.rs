//! imgroups on a real Mac: the backend behind `imgroups serve --backend chatdb`.
//!
//! - **Reads** Messages' database (`HOME/Library/Messages/chat.db`) read-only through
//!   `imgroups-chatdb`: every group chat (from the `chat` table and `chat_handle_join`, so a
//!   group without any group-change row is there too; new ones are looked for whenever the
//!   group chats' count or highest ROWID moves), and group-change rows turned into events (see
//!   that crate's docs for the mapping). Handles that are no e-mail or E.164 number (short
//!   codes, numbers without a country) are kept as members as they are. On the first start
//!   the whole history is recorded into the account's log in date order; afterwards new rows
//!   are recorded as they appear, each exactly once across restarts (`ingest`). Names pass
//!   through core's input policy on the way in (`imgroups_core::text`): sanitised, never
//!   refused.
//! - **Writes** (rename, add, remove, set and remove the icon, leave) go through the Messages
//!   helper — the BlueBubbles Private API helper library, spoken to over its socket protocol
//!   (`imgroups_chatdb::actuator`). The engine's rules run first; the change is handed to the
//!   helper, and the call is answered once its rows were read back from chat.db and recorded
//!   (`observer`): an observed network (`imgroups_core::port::ObservedNetwork`), so the answer
//!   and the event agree. Icons are written under
//!   `HOME/Library/Messages/Attachments/imgroups/` ([`icon_dir`]), where Messages may read them.
//!   SMS/RCS groups are refused (`operationNotSupported`): the helper acts through iMessage
//!   only. Only "helper not connected" is retryable; once Messages had the request, a failure
//!   is final, so that a client's retry cannot make the change twice. Without a helper the
//!   backend is read-only: writes fail with `operationNotSupported`.
//! - **Conversations**: message rows of group and direct chats (said, tapbacks, edits, unsends,
//!   read receipts, and my reads on any device: `date_read` of received messages, recorded as
//!   `chat.markedRead`) are recorded after each scan's group changes through
//!   `Engine::record_messages`, under their own cursor and ids (`chatdb.messages`), each once.
//!   Message writes (send, tapback, edit, unsend, mark read) go through the helper's message
//!   actions and are answered once observed, as group writes are; typing indicators go to the
//!   helper too (`start-typing` / `stop-typing`) and, being transient, are answered once it
//!   acknowledged them; emoji tapbacks, backgrounds and contact sharing answer
//!   `operationNotSupported`.
//! - One account: the Mac's own iMessage address ("me"). Creating chats is not supported.
//!
//! Plain Rust that builds and runs on Linux too (the tests run there on fixture databases with
//! the real schemas); only the default paths are macOS ones.

mod ingest;
mod observer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use imgroups_chatdb::ChatDb;
use imgroups_chatdb::{Actuator, ActuatorError, HelperAction};
use imgroups_core::command::MessageOp;
use imgroups_core::port::{Network, ObservedNetwork};
use imgroups_core::{Address, ChatGuid, Engine, Error, ErrorKind, Mutation, Result};

pub use ingest::{Imported, MESSAGES_SOURCE, SOURCE};

use observer::{Expect, ExpectMessage, Waiters};

/// How `serve --backend chatdb` is set up.
pub struct MacOptions {
    /// The home directory whose `Library/Messages/chat.db` is read; `~` in attachment paths
    /// means this directory.
    pub home: PathBuf,
    /// The Mac's own iMessage address: the one account.
    pub me: Address,
    /// The Messages helper; `None`: read-only.
    pub helper: Option<Arc<dyn Actuator>>,
    /// How often chat.db is re-read even without a file notification (the safety net for lost
    /// notifications).
    pub rescan: Duration,
    /// How long a write waits to see its change in chat.db before it answers `unavailable`.
    pub write_timeout: Duration,
}

/// The database path under `home`.
pub fn chat_db_path(home: &Path) -> PathBuf {
    ChatDb::default_path(home)
}

/// Reads this Mac's own address from chat.db (the address most of its own messages were sent
/// from), for when none is given.
pub fn detect_account(home: &Path) -> std::result::Result<Option<String>, String> {
    let db = open(home)?;
    db.detect_account().map_err(|e| e.to_string())
}

/// What follows the path and SQLite's reason when chat.db cannot be opened; docs/mac.md quotes
/// it word for word (a test checks).
pub const FULL_DISK_ACCESS_HINT: &str = "on a Mac, give the program that runs imgroups (Terminal, \
     or the imgroups binary itself) Full Disk Access in System Settings > Privacy & Security > \
     Full Disk Access, then start it again";

/// The error for a chat.db that cannot be opened: `cannot read PATH: REASON (HINT)`.
pub fn unreadable_message(path: &Path, reason: &dyn std::fmt::Display) -> String {
    format!(
        "cannot read {}: {reason} ({FULL_DISK_ACCESS_HINT})",
        path.display()
    )
}

fn open(home: &Path) -> std::result::Result<ChatDb, String> {
    let path = chat_db_path(home);
    ChatDb::open(home).map_err(|err| unreadable_message(&path, &err))
}

/// The backend, before it is started with its engine.
pub struct Mac {
    options: MacOptions,
    waiters: Arc<Waiters>,
    network: Arc<MacNetwork>,
    stop: Arc<AtomicBool>,
}

impl Mac {
    /// Checks that chat.db can be read.
    pub fn new(options: MacOptions) -> std::result::Result<Mac, String> {
        // The network's own connection, to look chats up for the helper.
        let lookup = open(&options.home)?;
        let waiters = Arc::new(Waiters::default());
        let network = Arc::new(MacNetwork {
            helper: options.helper.clone(),
            waiters: waiters.clone(),
            timeout: options.write_timeout,
            lookup: Arc::new(Mutex::new(lookup)),
            icons: icon_dir(&options.home),
        });
        Ok(Mac {
            options,
            waiters,
            network,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The network to build the engine with: observed, since Messages makes the changes.
    pub fn network(&self) -> Network {
        Network::Observed(self.network.clone())
    }

    /// Records everything chat.db holds up to now (the first start's import, or what
    /// happened while the server was down), then watches it on a thread of its own until
    /// [`Running::stop`]. Blocking: call it from a blocking context (`spawn_blocking`).
    pub fn start(
        self,
        engine: Arc<Engine>,
        runtime: tokio::runtime::Handle,
    ) -> std::result::Result<(Imported, Running), String> {
        let db = open(&self.options.home)?;
        let ingest = ingest::Ingest {
            engine,
            db_path: chat_db_path(&self.options.home),
            home: self.options.home.clone(),
            me: self.options.me.clone(),
            waiters: self.waiters.clone(),
            rescan: self.options.rescan,
            runtime,
            stop: self.stop.clone(),
            saved: std::cell::RefCell::new(None),
            chats_seen: std::cell::Cell::new(None),
            messages_saved: std::cell::RefCell::new(None),
            pending: std::cell::RefCell::default(),
            bulk: std::cell::Cell::new(false),
        };
        let imported = ingest.catch_up(&db)?;
        let thread = std::thread::Builder::new()
            .name("chatdb-ingest".into())
            .spawn(move || ingest.run(db))
            .map_err(|e| format!("cannot start the chat.db reader: {e}"))?;
        Ok((
            imported,
            Running {
                stop: self.stop,
                thread: Some(thread),
            },
        ))
    }
}

/// The watching thread; stopped and joined by [`Running::stop`] (or on drop).
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}

/// This Mac's Messages as an observed network: writes go to the helper and are answered once
/// chat.db shows them.
struct MacNetwork {
    helper: Option<Arc<dyn Actuator>>,
    waiters: Arc<Waiters>,
    timeout: Duration,
    lookup: Arc<Mutex<ChatDb>>,
    /// [`icon_dir`].
    icons: PathBuf,
}

/// Where icons are written for the helper: `HOME/Library/Messages/Attachments/imgroups`, as
/// the BlueBubbles server copies files under `Attachments/BlueBubbles` first
/// (bluebubbles-server `fileSystem/index.ts` `copyAttachment`): the helper copies the file into
/// Messages' store, and when Messages may not read it, it removes the group photo instead and
/// still answers success (bluebubbles-helper `BlueBubblesHelper.m` `update-group-photo`).
pub fn icon_dir(home: &Path) -> PathBuf {
    home.join("Library")
        .join("Messages")
        .join("Attachments")
        .join("imgroups")
}

/// The helper's `reactionType` of a classic tapback (BB `PrivateApiMessage.ts` `react`).
fn tapback_name(reaction: &imgroups_core::Reaction) -> Option<&'static str> {
    use imgroups_core::Reaction;
    Some(match reaction {
        Reaction::Love => "love",
        Reaction::Like => "like",
        Reaction::Dislike => "dislike",
        Reaction::Laugh => "laugh",
        Reaction::Emphasize => "emphasize",
        Reaction::Question => "question",
        Reaction::Emoji(_) => return None,
    })
}

/// The answer to every write when no helper is configured.
fn read_only() -> Error {
    Error::not_supported(
        "this server reads chat.db only: start it with --helper ADDR (the Messages helper) to \
         change groups",
    )
}

/// Only "not connected" is retryable: the request never reached Messages. Once it did (no
/// answer in time, or a refusal) a retry could make the same change again — a client retrying
/// an `unavailable` write did it four times — so those are final.
fn helper_failed(err: ActuatorError) -> Error {
    match err {
        ActuatorError::NotConnected => Error::new(ErrorKind::Unavailable, err.to_string()),
        ActuatorError::Timeout => Error::new(
            ErrorKind::Unavailable,
            format!(
                "{err}: it may still make the change, which is then recorded as an event; not \
                 retried, so that it is not made twice"
            ),
        )
        .retryable(false),
        ActuatorError::Rejected(_) => {
            Error::new(ErrorKind::Unavailable, err.to_string()).retryable(false)
        }
    }
}

/// The refusal of a message action (or a typing indicator) in a chat Messages keeps as SMS or
/// RCS.
fn sms_chat(chat: &ChatGuid) -> Error {
    Error::not_supported(format!(
        "{chat} is an SMS/RCS chat: the Messages helper acts through iMessage only"
    ))
}

/// The refusal for a group Messages keeps as SMS or RCS.
fn sms_group(chat: &ChatGuid) -> Error {
    Error::not_supported(format!(
        "{chat} is an SMS/RCS group: the Messages helper changes iMessage groups only; change it \
         on the phone"
    ))
}

impl MacNetwork {
    /// The helper's chat for a group or a direct chat (as this account names it).
    async fn any_helper_chat(&self, chat: &ChatGuid) -> Result<imgroups_chatdb::HelperChat> {
        if chat.kind() == imgroups_core::ChatKind::Group {
            return self.helper_chat(chat).await;
        }
        let lookup = self.lookup.clone();
        let address = chat.id().to_owned();
        let found = tokio::task::spawn_blocking(move || {
            let mut db = lookup.lock().unwrap_or_else(|p| p.into_inner());
            if db.wal_replaced() {
                *db = db.reopen()?;
            }
            db.direct_helper_chat(&address)
        })
        .await
        .map_err(|_| Error::internal())?
        .map_err(|e| Error::unavailable(format!("cannot read chat.db: {e}")))?;
        found.ok_or_else(|| Error::chat_not_found(chat))
    }

    /// Whether chat.db shows messages received and unread in `target` ([`ChatDb::has_unread`]).
    async fn has_unread(&self, target: &imgroups_chatdb::HelperChat) -> Result<bool> {
        let lookup = self.lookup.clone();
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = lookup.lock().unwrap_or_else(|p| p.into_inner());
            if db.wal_replaced() {
                *db = db.reopen()?;
            }
            db.has_unread(&target)
        })
        .await
        .map_err(|_| Error::internal())?
        .map_err(|e| Error::unavailable(format!("cannot read chat.db: {e}")))
    }

    async fn helper_chat(&self, chat: &ChatGuid) -> Result<imgroups_chatdb::HelperChat> {
        let lookup = self.lookup.clone();
        let guid = imgroups_chatdb::ChatGuid::from_identifier(chat.id())
            .ok_or_else(|| Error::chat_not_found(chat))?;
        let found = tokio::task::spawn_blocking(move || {
            let mut db = lookup.lock().unwrap_or_else(|p| p.into_inner());
            if db.wal_replaced() {
                // As the watcher does (`ingest::Ingest::run`): a stale WAL hides new chats.
                *db = db.reopen()?;
            }
            db.helper_chat(&guid)
        })
        .await
        .map_err(|_| Error::internal())?
        .map_err(|e| Error::unavailable(format!("cannot read chat.db: {e}")))?;
        found.ok_or_else(|| Error::chat_not_found(chat))
    }

    /// Writes an icon where Messages can read it ([`icon_dir`]), in a folder named by its hash.
    fn icon_file(&self, data: &[u8], mime: &str, hash: &[u8]) -> Result<PathBuf> {
        let ext = match mime {
            "image/png" => "png",
            "image/jpeg" => "jpg",
            "image/gif" => "gif",
            "image/heic" => "heic",
            "image/heif" => "heif",
            _ => "img",
        };
        let name: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let dir = self.icons.join(name);
        let path = dir.join(format!("icon.{ext}"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, data))
            .map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "cannot write an icon for Messages");
                Error::unavailable("cannot write the icon file for Messages")
            })?;
        Ok(path)
    }
}

#[async_trait]
impl ObservedNetwork for MacNetwork {
    async fn carry_out(&self, chat: &ChatGuid, actor: &Address, mutation: &Mutation) -> Result<()> {
        let Some(helper) = &self.helper else {
            return Err(read_only());
        };
        let target = self.helper_chat(chat).await?;
        if target.is_sms() {
            return Err(sms_group(chat));
        }
        let actions: Vec<HelperAction> = match mutation {
            Mutation::SetDisplayName(name) => vec![HelperAction::Rename {
                chat: target,
                name: name.clone(),
            }],
            Mutation::AddParticipants(addresses) => addresses
                .iter()
                .map(|a| HelperAction::AddParticipant {
                    chat: target.clone(),
                    address: a.to_string(),
                })
                .collect(),
            Mutation::RemoveParticipants(addresses) => addresses
                .iter()
                .map(|a| HelperAction::RemoveParticipant {
                    chat: target.clone(),
                    address: a.to_string(),
                })
                .collect(),
            Mutation::Leave => vec![HelperAction::Leave { chat: target }],
            Mutation::SetIcon { data, mime, hash } => vec![HelperAction::SetIcon {
                chat: target,
                file: self.icon_file(data, mime, hash)?,
            }],
            Mutation::RemoveIcon => vec![HelperAction::RemoveIcon { chat: target }],
        };
        // Registered before the helper acts, so a change recorded at once is not missed.
        let wait = self.waiters.expect(chat, actor, Expect::of(mutation));
        for action in &actions {
            helper.perform(action).await.map_err(helper_failed)?;
        }
        wait.done(self.timeout).await
    }

    async fn carry_out_message(
        &self,
        chat: &ChatGuid,
        actor: &Address,
        op: &MessageOp,
    ) -> Result<Option<String>> {
        let Some(helper) = &self.helper else {
            return Err(read_only());
        };
        let target = self.any_helper_chat(chat).await?;
        if target.is_sms() {
            return Err(sms_chat(chat));
        }
        let (action, expect) =
            match op {
                MessageOp::Send(new) => (
                    HelperAction::SendMessage {
                        chat: target,
                        text: new.text.clone(),
                        subject: new.subject.clone(),
                        effect: new.effect_id.clone(),
                        reply_to: new.reply_to.clone(),
                    },
                    Some(ExpectMessage::Said(new.text.clone())),
                ),
                MessageOp::React {
                    message,
                    reaction,
                    set,
                } => {
                    let Some(name) = tapback_name(reaction) else {
                        return Err(Error::not_supported(
                        "emoji tapbacks are not sent through the Messages helper yet: use one of \
                         love, like, dislike, laugh, emphasize, question",
                    ));
                    };
                    (
                        HelperAction::SendReaction {
                            chat: target,
                            message: message.clone(),
                            reaction: if *set {
                                name.to_owned()
                            } else {
                                format!("-{name}")
                            },
                        },
                        Some(ExpectMessage::Reaction {
                            target: message.clone(),
                            reaction: reaction.clone(),
                            set: *set,
                        }),
                    )
                }
                MessageOp::Edit { message, text } => (
                    HelperAction::EditMessage {
                        chat: target,
                        message: message.clone(),
                        text: text.clone(),
                    },
                    Some(ExpectMessage::Edited {
                        target: message.clone(),
                        text: text.clone(),
                    }),
                ),
                MessageOp::Unsend { message } => (
                    HelperAction::UnsendMessage {
                        chat: target,
                        message: message.clone(),
                    },
                    Some(ExpectMessage::Unsent(message.clone())),
                ),
                // Messages sets `date_read` on the messages received, which the scan records as
                // `chat.markedRead`: waited for when something was unread in chat.db (else
                // nothing will change, and there is nothing to wait for).
                MessageOp::MarkRead => {
                    let unread = self.has_unread(&target).await?;
                    (
                        HelperAction::MarkChatRead { chat: target },
                        unread.then_some(ExpectMessage::MarkedRead),
                    )
                }
                MessageOp::SetBackground { .. }
                | MessageOp::RemoveBackground
                | MessageOp::ShareContactInfo => return Err(Error::not_supported(
                    "chat backgrounds and sharing contact info are not carried out on a Mac yet",
                )),
            };
        let wait = expect.map(|e| self.waiters.expect_message(chat, actor, e));
        helper.perform(&action).await.map_err(helper_failed)?;
        match (wait, op) {
            // Messages did mark the chat read (the helper said so); if chat.db does not show it
            // in time, the read is recorded when it does: no reason to fail a mark read.
            (Some(wait), MessageOp::MarkRead) => {
                if let Err(err) = wait.done(self.timeout).await {
                    tracing::warn!(%chat, error = %err, "marked read in Messages, not seen in chat.db yet");
                }
                Ok(None)
            }
            (Some(wait), _) => wait.done(self.timeout).await.map(|guid| match op {
                MessageOp::Send(_) => Some(guid),
                _ => None,
            }),
            (None, _) => Ok(None),
        }
    }

    /// Tells Messages to show or hide my typing indicator (`start-typing` / `stop-typing`),
    /// with the chat's `chat.guid` as the helper needs it. Nothing to observe: Messages stores
    /// nothing for it, so this returns once the helper answered. Refused as every write is
    /// without a helper or in an SMS/RCS chat.
    async fn set_typing(&self, chat: &ChatGuid, _actor: &Address, typing: bool) -> Result<()> {
        let Some(helper) = &self.helper else {
            return Err(read_only());
        };
        let target = self.any_helper_chat(chat).await?;
        if target.is_sms() {
            return Err(sms_chat(chat));
        }
        helper
            .perform(&HelperAction::SetTyping {
                chat: target,
                typing,
            })
            .await
            .map_err(helper_failed)
    }
}

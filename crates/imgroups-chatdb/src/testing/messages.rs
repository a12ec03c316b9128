//! [`FakeMessages`]: what Messages writes to chat.db when the helper makes a group change.
//!
//! For each action, in one transaction on a connection of its own (Messages is another
//! process; the reader under test never shares a connection with it):
//! - a `message` row: `item_type`/`group_action_type` as in the table of the crate docs,
//!   `is_from_me = 1`, `handle_id = 0`, `other_handle` (the participant's `handle` ROWID, 0
//!   otherwise), `group_title` (the new name, NULL when cleared), `date` now (nanoseconds since
//!   2001, or seconds on layouts before macOS 10.13), a fresh upper-case UUID `guid`;
//! - its `chat_message_join` row (with `message_date` where the layout has it);
//! - the state change: `chat.display_name`; a `chat_handle_join` row inserted or deleted (and
//!   a `handle` row created for a new address); for a photo, an `attachment` row (the file
//!   copied under `Library/Messages/Attachments/`, `filename` written with `~` for the home
//!   directory as Messages does), its `message_attachment_join` row and `groupPhotoGuid` in
//!   the `chat.properties` plist, removed again when the photo is removed.
//!
//! Leaving: only the `(3, 0)` row from me is written. No public source says what else marks a
//! group I left in chat.db (the members in `chat_handle_join` are the others, who stay); this
//! is to be checked on a real Mac.

use std::io::Cursor as IoCursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::actuator::HelperAction;
use crate::time::APPLE_EPOCH_UNIX_SECS;

use super::fixture::register_messages_functions;

/// Writes what Messages writes for a [`HelperAction`] into the chat.db at a path.
#[derive(Clone, Debug)]
pub struct FakeMessages {
    db: PathBuf,
}

/// What [`FakeMessages::apply`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The new `message.guid`.
    pub message_guid: String,
    pub message_rowid: i64,
    /// The `chat` row it was joined to.
    pub chat_rowid: i64,
}

/// Why an action could not be applied; the texts are the real helper's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum FakeMessagesError {
    #[error("Chat does not exist!")]
    NoSuchChat,
    #[error("Failed to remove address from chat!")]
    NotAMember,
    #[error("cannot read the photo {path}: {source}")]
    Photo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No such message in that chat (our words: what the real helper answers is not known).
    #[error("Message does not exist!")]
    NoSuchMessage,
    #[error("Unknown reaction type!")]
    UnknownReaction,
    #[error("writing chat.db failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl FakeMessages {
    /// For the chat.db at `db`. When it lies at `HOME/Library/Messages/chat.db`, attachment
    /// paths are written relative to `HOME` (`~/…`), as Messages writes them.
    pub fn new(db: impl Into<PathBuf>) -> FakeMessages {
        FakeMessages { db: db.into() }
    }

    /// The database this writes to.
    pub fn path(&self) -> &Path {
        &self.db
    }

    /// Whether a `chat` row has exactly this `guid` (what `existingChatWithGUID:` finds).
    pub fn has_chat(&self, helper_guid: &str) -> Result<bool, FakeMessagesError> {
        let conn = Connection::open(&self.db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn
            .query_row(
                "SELECT 1 FROM chat WHERE guid = ?1 LIMIT 1",
                [helper_guid],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Whether Messages may read `file`: an existing file under the `Attachments` folder beside
    /// chat.db (`~/Library/Messages/Attachments`). BlueBubbles copies files there before it
    /// hands them to the helper (bluebubbles-server `fileSystem/index.ts` `copyAttachment`);
    /// the helper's own note says Messages may not read elsewhere even with Full Disk Access
    /// (BlueBubblesHelper.m `prepareFileTransferForAttachment:filename:`).
    pub fn readable_by_messages(&self, file: &Path) -> bool {
        let attachments = self
            .db
            .parent()
            .unwrap_or(Path::new("."))
            .join("Attachments");
        file.is_absolute()
            && !file
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            && file.starts_with(&attachments)
            && file.is_file()
    }

    /// Writes the rows Messages writes for `action` (see the module doc), in one transaction.
    pub fn apply(&self, action: &HelperAction) -> Result<Applied, FakeMessagesError> {
        let mut conn = Connection::open(&self.db)?;
        register_messages_functions(&conn);
        conn.busy_timeout(Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        let chat =
            find_chat(&tx, action.chat().helper_guid())?.ok_or(FakeMessagesError::NoSuchChat)?;
        if let Some(applied) = apply_message(&tx, chat, action)? {
            tx.commit()?;
            return Ok(applied);
        }
        let mut row = Row::default();
        let mut leaving = None;
        match action {
            HelperAction::Rename { name, .. } => {
                row.item_type = 2;
                row.title = (!name.is_empty()).then(|| name.clone());
                if has(&tx, "chat", "display_name")? {
                    tx.execute(
                        "UPDATE chat SET display_name = ?1 WHERE ROWID = ?2",
                        params![name, chat],
                    )?;
                }
            }
            HelperAction::AddParticipant { address, .. } => {
                let handle = match find_handle(&tx, address)? {
                    Some(h) => h,
                    None => {
                        let service = if address.contains('@') || address.starts_with('+') {
                            "iMessage"
                        } else {
                            "SMS"
                        };
                        tx.execute(
                            "INSERT INTO handle (id, service, country) VALUES (?1, ?2, 'us')",
                            params![address, service],
                        )?;
                        tx.last_insert_rowid()
                    }
                };
                row.item_type = 1;
                row.action = 0;
                row.other = handle;
                tx.execute(
                    "INSERT OR IGNORE INTO chat_handle_join (chat_id, handle_id) VALUES (?1, ?2)",
                    [chat, handle],
                )?;
            }
            HelperAction::RemoveParticipant { address, .. } => {
                let handle = find_handle(&tx, address)?.ok_or(FakeMessagesError::NotAMember)?;
                let member: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM chat_handle_join WHERE chat_id = ?1 AND handle_id = ?2",
                        [chat, handle],
                        |r| r.get(0),
                    )
                    .optional()?;
                if member.is_none() {
                    return Err(FakeMessagesError::NotAMember);
                }
                row.item_type = 1;
                row.action = 1;
                row.other = handle;
                // After the row that names the handle: from macOS 13 on, a trigger deletes a
                // handle that no chat or message refers to once it leaves chat_handle_join.
                leaving = Some(handle);
            }
            HelperAction::SetIcon { file, .. } => {
                let attachment = self.store_photo(&tx, file)?;
                row.item_type = 3;
                row.action = 1;
                row.attachment = Some(attachment.0);
                set_photo_guid(&tx, chat, Some(&attachment.1))?;
            }
            HelperAction::RemoveIcon { .. } => {
                row.item_type = 3;
                row.action = 2;
                set_photo_guid(&tx, chat, None)?;
            }
            HelperAction::Leave { .. } => {
                row.item_type = 3;
                row.action = 0;
            }
            HelperAction::SendMessage { .. }
            | HelperAction::SendReaction { .. }
            | HelperAction::EditMessage { .. }
            | HelperAction::UnsendMessage { .. }
            | HelperAction::MarkChatRead { .. }
            | HelperAction::SetTyping { .. } => unreachable!("applied by apply_message"),
        }
        let applied = insert_message(&tx, chat, &row)?;
        if let Some(handle) = leaving {
            tx.execute(
                "DELETE FROM chat_handle_join WHERE chat_id = ?1 AND handle_id = ?2",
                [chat, handle],
            )?;
        }
        tx.commit()?;
        Ok(applied)
    }

    /// Copies the photo into Messages' attachment store and adds its `attachment` row:
    /// `(ROWID, guid)`.
    fn store_photo(
        &self,
        tx: &Transaction<'_>,
        file: &Path,
    ) -> Result<(i64, String), FakeMessagesError> {
        let guid = new_guid();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "photo".to_owned());
        let messages_dir = self.db.parent().unwrap_or(Path::new("."));
        let relative = Path::new("Attachments").join(&guid).join(&name);
        let stored = messages_dir.join(&relative);
        let photo_err = |source| FakeMessagesError::Photo {
            path: file.to_owned(),
            source,
        };
        std::fs::create_dir_all(stored.parent().expect("a file in a directory"))
            .map_err(photo_err)?;
        let bytes = std::fs::copy(file, &stored).map_err(photo_err)?;
        let home = self.home();
        let filename = match &home {
            Some(_) => format!("~/Library/Messages/{}", relative.to_string_lossy()),
            None => stored.to_string_lossy().into_owned(),
        };
        let mime = mime_type(&name);
        // `created_date` counts seconds since 2001 (unlike `message.date`).
        let created = nanos_since_2001() / 1_000_000_000;
        let sql = if has(tx, "attachment", "original_guid")? {
            "INSERT INTO attachment (guid, filename, mime_type, transfer_name, total_bytes, \
             is_outgoing, transfer_state, created_date, original_guid) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 5, ?6, ?1)"
        } else {
            "INSERT INTO attachment (guid, filename, mime_type, transfer_name, total_bytes, \
             is_outgoing, transfer_state, created_date) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 5, ?6)"
        };
        tx.execute(
            sql,
            params![guid, filename, mime, name, bytes as i64, created],
        )?;
        Ok((tx.last_insert_rowid(), guid))
    }

    /// `HOME` when the database is at `HOME/Library/Messages/chat.db`.
    fn home(&self) -> Option<PathBuf> {
        let messages = self.db.parent()?;
        let library = messages.parent()?;
        (messages.file_name()? == "Messages" && library.file_name()? == "Library")
            .then(|| library.parent().map(Path::to_owned))
            .flatten()
    }
}

/// The group-change row to insert.
#[derive(Default)]
struct Row {
    item_type: i64,
    action: i64,
    other: i64,
    title: Option<String>,
    attachment: Option<i64>,
}

/// What Messages writes for the message actions (`None` for the group actions):
/// - send: a `message` row from me (`item_type` 0) with `text` and the same text in
///   `attributedBody` (as macOS 13+ write both for a sent message), `subject`,
///   `expressive_send_style_id`, `thread_originator_guid` (+ `_part` `0:0:N`) for a reply;
/// - a tapback: a row from me with `associated_message_type` 2000–2005 (3000–3005 to remove),
///   `associated_message_guid` `p:0/<target>` and the text other devices show;
/// - an edit: the row's `text` and `attributedBody` replaced, `date_edited` now;
/// - an unsend: `text` and `attributedBody` cleared, `date_retracted` now where the layout has
///   it (macOS 14+), else `date_edited` (macOS 13 marks an unsend as an edit that leaves no
///   text);
/// - mark read: every message received in the chat gets `is_read` 1 and `date_read` now.
/// - typing (`start-typing` / `stop-typing`): nothing (the indicator is not stored).
fn apply_message(
    tx: &Transaction<'_>,
    chat: i64,
    action: &HelperAction,
) -> Result<Option<Applied>, FakeMessagesError> {
    let date = now_apple(tx)?;
    let chat_message = |guid: &str| -> Result<i64, FakeMessagesError> {
        tx.query_row(
            "SELECT m.ROWID FROM message m JOIN chat_message_join j ON j.message_id = m.ROWID \
             WHERE m.guid = ?1 AND j.chat_id = ?2",
            params![guid, chat],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(FakeMessagesError::NoSuchMessage)
    };
    let applied = |rowid: i64, guid: String| Applied {
        message_guid: guid,
        message_rowid: rowid,
        chat_rowid: chat,
    };
    match action {
        HelperAction::SendMessage {
            text,
            subject,
            effect,
            reply_to,
            ..
        } => {
            if let Some(target) = reply_to {
                chat_message(target)?;
            }
            let row = insert_said(tx, chat, date, text, 0, None)?;
            let set = |column: &str, value: &Option<String>| -> rusqlite::Result<()> {
                if value.is_some() && has(tx, "message", column)? {
                    tx.execute(
                        &format!("UPDATE message SET {column} = ?1 WHERE ROWID = ?2"),
                        params![value, row.message_rowid],
                    )?;
                }
                Ok(())
            };
            set("subject", subject)?;
            set("expressive_send_style_id", effect)?;
            set("thread_originator_guid", reply_to)?;
            if reply_to.is_some() {
                set("thread_originator_part", &Some("0:0:0".to_owned()))?;
            }
            Ok(Some(row))
        }
        HelperAction::SendReaction {
            message, reaction, ..
        } => {
            chat_message(message)?;
            let (removing, name) = match reaction.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, reaction.as_str()),
            };
            let (kind, verb) = match name {
                "love" => (0, "Loved"),
                "like" => (1, "Liked"),
                "dislike" => (2, "Disliked"),
                "laugh" => (3, "Laughed at"),
                "emphasize" => (4, "Emphasized"),
                "question" => (5, "Questioned"),
                _ => return Err(FakeMessagesError::UnknownReaction),
            };
            let base = if removing { 3000 } else { 2000 };
            let shown = if removing {
                format!("Removed a heart from a message ({verb})")
            } else {
                format!("{verb} a message")
            };
            let target = format!("p:0/{message}");
            Ok(Some(insert_said(
                tx,
                chat,
                date,
                &shown,
                base + kind,
                Some(&target),
            )?))
        }
        HelperAction::EditMessage { message, text, .. } => {
            let rowid = chat_message(message)?;
            tx.execute(
                "UPDATE message SET text = ?1, attributedBody = ?2 WHERE ROWID = ?3",
                params![text, super::attributed_body(text), rowid],
            )?;
            let column = if has(tx, "message", "date_edited")? {
                "date_edited"
            } else {
                return Err(FakeMessagesError::NoSuchMessage);
            };
            tx.execute(
                &format!("UPDATE message SET {column} = ?1 WHERE ROWID = ?2"),
                params![date, rowid],
            )?;
            Ok(Some(applied(rowid, message.clone())))
        }
        HelperAction::UnsendMessage { message, .. } => {
            let rowid = chat_message(message)?;
            tx.execute(
                "UPDATE message SET text = NULL, attributedBody = NULL WHERE ROWID = ?1",
                [rowid],
            )?;
            let column = if has(tx, "message", "date_retracted")? {
                "date_retracted"
            } else if has(tx, "message", "date_edited")? {
                "date_edited"
            } else {
                return Err(FakeMessagesError::NoSuchMessage);
            };
            tx.execute(
                &format!("UPDATE message SET {column} = ?1 WHERE ROWID = ?2"),
                params![date, rowid],
            )?;
            Ok(Some(applied(rowid, message.clone())))
        }
        HelperAction::MarkChatRead { .. } => {
            tx.execute(
                "UPDATE message SET is_read = 1, date_read = ?1 WHERE is_from_me = 0 \
                 AND coalesce(date_read, 0) = 0 \
                 AND ROWID IN (SELECT message_id FROM chat_message_join WHERE chat_id = ?2)",
                params![date, chat],
            )?;
            Ok(Some(applied(0, String::new())))
        }
        // Transient: Messages shows the indicator to the others and writes no row.
        HelperAction::SetTyping { .. } => Ok(Some(applied(0, String::new()))),
        HelperAction::Rename { .. }
        | HelperAction::AddParticipant { .. }
        | HelperAction::RemoveParticipant { .. }
        | HelperAction::SetIcon { .. }
        | HelperAction::RemoveIcon { .. }
        | HelperAction::Leave { .. } => Ok(None),
    }
}

/// A row of something I said (a text or a tapback), joined to `chat`.
fn insert_said(
    tx: &Transaction<'_>,
    chat: i64,
    date: i64,
    text: &str,
    associated_type: i64,
    associated_guid: Option<&str>,
) -> rusqlite::Result<Applied> {
    let guid = new_guid();
    tx.execute(
        "INSERT INTO message (guid, text, attributedBody, handle_id, service, date, is_from_me, \
         is_finished, is_sent, is_read, item_type, associated_message_type, \
         associated_message_guid) \
         VALUES (?1, ?2, ?3, 0, 'iMessage', ?4, 1, 1, 1, 1, 0, ?5, ?6)",
        params![
            guid,
            text,
            super::attributed_body(text),
            date,
            associated_type,
            associated_guid
        ],
    )?;
    let message = tx.last_insert_rowid();
    if has(tx, "chat_message_join", "message_date")? {
        tx.execute(
            "INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?1, ?2, ?3)",
            params![chat, message, date],
        )?;
    } else {
        tx.execute(
            "INSERT INTO chat_message_join (chat_id, message_id) VALUES (?1, ?2)",
            [chat, message],
        )?;
    }
    Ok(Applied {
        message_guid: guid,
        message_rowid: message,
        chat_rowid: chat,
    })
}

fn insert_message(tx: &Transaction<'_>, chat: i64, row: &Row) -> rusqlite::Result<Applied> {
    let guid = new_guid();
    let date = now_apple(tx)?;
    tx.execute(
        "INSERT INTO message (guid, text, handle_id, service, date, is_from_me, is_finished, \
         item_type, other_handle, group_title, group_action_type) \
         VALUES (?1, NULL, 0, 'iMessage', ?2, 1, 1, ?3, ?4, ?5, ?6)",
        params![guid, date, row.item_type, row.other, row.title, row.action],
    )?;
    let message = tx.last_insert_rowid();
    if has(tx, "chat_message_join", "message_date")? {
        tx.execute(
            "INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?1, ?2, ?3)",
            params![chat, message, date],
        )?;
    } else {
        tx.execute(
            "INSERT INTO chat_message_join (chat_id, message_id) VALUES (?1, ?2)",
            [chat, message],
        )?;
    }
    if let Some(attachment) = row.attachment {
        tx.execute(
            "INSERT INTO message_attachment_join (message_id, attachment_id) VALUES (?1, ?2)",
            [message, attachment],
        )?;
    }
    Ok(Applied {
        message_guid: guid,
        message_rowid: message,
        chat_rowid: chat,
    })
}

/// The `chat` row an action applies to: the one whose `guid` is exactly what the helper was
/// given, as `existingChatWithGUID:` finds it (BlueBubblesHelper.m `getChat::`); no other form
/// of the GUID is tried.
fn find_chat(tx: &Transaction<'_>, helper_guid: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT ROWID FROM chat WHERE guid = ?1 ORDER BY ROWID LIMIT 1",
        [helper_guid],
        |r| r.get(0),
    )
    .optional()
}

/// A `handle` for an address, the iMessage one first.
fn find_handle(tx: &Transaction<'_>, address: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT ROWID FROM handle WHERE id = ?1 \
         ORDER BY service = 'iMessage' DESC, ROWID LIMIT 1",
        [address],
        |r| r.get(0),
    )
    .optional()
}

/// Sets or removes `groupPhotoGuid` in the chat's `properties` plist, keeping its other keys.
fn set_photo_guid(tx: &Transaction<'_>, chat: i64, photo: Option<&str>) -> rusqlite::Result<()> {
    if !has(tx, "chat", "properties")? {
        return Ok(());
    }
    let blob: Option<Vec<u8>> = tx.query_row(
        "SELECT properties FROM chat WHERE ROWID = ?1",
        [chat],
        |r| r.get(0),
    )?;
    let mut dict = blob
        .and_then(|b| plist::Value::from_reader(IoCursor::new(b)).ok())
        .and_then(plist::Value::into_dictionary)
        .unwrap_or_default();
    match photo {
        Some(guid) => {
            dict.insert("groupPhotoGuid".into(), guid.into());
        }
        None => {
            dict.remove("groupPhotoGuid");
        }
    }
    let mut out = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_binary(&mut out)
        .expect("writing a plist to memory");
    tx.execute(
        "UPDATE chat SET properties = ?1 WHERE ROWID = ?2",
        params![out, chat],
    )?;
    Ok(())
}

fn has(tx: &Transaction<'_>, table: &str, column: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// 1 on layouts that count `date` in nanoseconds, 10⁹ on the older ones (seconds). Told apart
/// by `chat_message_join.message_date`, which came with the nanosecond dates (macOS 10.13).
fn date_divisor(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    Ok(if has(tx, "chat_message_join", "message_date")? {
        1
    } else {
        1_000_000_000
    })
}

/// Now as a `message.date` in this layout's unit.
fn now_apple(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    Ok(nanos_since_2001() / date_divisor(tx)?)
}

fn nanos_since_2001() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    unix.as_nanos() as i64 - APPLE_EPOCH_UNIX_SECS * 1_000_000_000
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

fn mime_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "heic" => "image/heic",
        "gif" => "image/gif",
        _ => return None,
    })
}

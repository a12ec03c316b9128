//! Builds chat.db files the way Messages lays them out, from the schema facts in
//! `src/testing/schema/` (trimmed from public schema dumps of macOS 10.12, 12, 13/14 and 26).
//!
//! The real triggers call functions that exist only inside Messages; [`Fixture::new`]
//! registers no-op stand-ins on the writing connection, so the triggers stay as they are and
//! still fire (the reader under test never needs them: it never writes).

use std::path::{Path, PathBuf};

use crate::ChatDb;
use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection};
use tempfile::TempDir;

/// The macOS versions whose layouts the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// macOS 10.12 generation: dates in seconds, no `chat_message_join.message_date`, no
    /// `message.destination_caller_id`.
    Sierra,
    /// macOS 12.
    Monterey,
    /// macOS 13, whose layout macOS 14 keeps for everything this crate reads: adds the edit and
    /// unsend columns, and deletes a handle left by its last chat.
    Ventura,
    /// macOS 26.
    Tahoe,
}

pub const ALL: [Version; 4] = [
    Version::Sierra,
    Version::Monterey,
    Version::Ventura,
    Version::Tahoe,
];

impl Version {
    pub fn schema(self) -> &'static str {
        match self {
            Version::Sierra => include_str!("schema/sierra.sql"),
            Version::Monterey => include_str!("schema/monterey.sql"),
            Version::Ventura => include_str!("schema/ventura.sql"),
            Version::Tahoe => include_str!("schema/tahoe.sql"),
        }
    }

    /// Whether `message.date` counts nanoseconds (macOS 10.13 and later).
    pub fn nanos(self) -> bool {
        self != Version::Sierra
    }
}

/// Functions that only Messages defines, with their argument counts as the triggers call them.
const MESSAGES_ONLY: [(&str, i32); 7] = [
    ("verify_chat", 1),
    ("before_delete_attachment_path", 2),
    ("delete_attachment_path", 1),
    ("after_delete_message_plugin", 2),
    ("delete_chat_background_before_deleting_chat", 2),
    ("is_mic_enabled", 0),
    ("guid_for_chat", 3),
];

/// 2024-01-01 00:00:00 UTC, in seconds since 2001-01-01.
pub const BASE_SECS: i64 = 725_760_000;
/// The same instant in Unix milliseconds.
pub const BASE_UNIX_MS: i64 = 1_704_067_200_000;

pub struct Fixture {
    pub version: Version,
    home: PathBuf,
    /// The temp dir that is `home` (removed on drop); `None` for [`Fixture::create_in`], whose
    /// home outlives the fixture.
    dir: Option<TempDir>,
    pub conn: Connection,
}

/// A `message` row; unset fields take Messages' defaults.
#[derive(Default)]
pub struct Msg<'a> {
    pub guid: &'a str,
    pub text: Option<&'a str>,
    pub item_type: i64,
    pub action: i64,
    pub from_me: bool,
    pub handle: i64,
    pub other: i64,
    pub title: Option<&'a str>,
    /// Minutes after [`BASE_SECS`].
    pub minute: i64,
    pub account: Option<&'a str>,
    pub caller_id: Option<&'a str>,
    /// An explicit ROWID (default: the next one).
    pub rowid: Option<i64>,
}

impl Fixture {
    /// An empty chat.db of `version`'s layout in a fresh temp dir (removed on drop).
    pub fn new(version: Version) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut fixture = Fixture::create_in(dir.path(), version);
        fixture.dir = Some(dir);
        fixture
    }

    /// An empty chat.db of `version`'s layout at `HOME/Library/Messages/chat.db`, left in
    /// place on drop (for a test in another language that runs the server on it).
    pub fn create_in(home: &Path, version: Version) -> Fixture {
        let path = ChatDb::default_path(home);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = Connection::open(&path).unwrap();
        register_messages_functions(&conn);
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(version.schema()).unwrap();
        Fixture {
            version,
            home: home.to_owned(),
            dir: None,
            conn,
        }
    }

    /// Closes the writing connection (Messages not running) and hands back the home and the
    /// temp dir holding it, which removes it on drop (`None` after [`Fixture::create_in`]).
    pub fn close(self) -> (PathBuf, Option<TempDir>) {
        drop(self.conn);
        (self.home, self.dir)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn path(&self) -> PathBuf {
        ChatDb::default_path(self.home())
    }

    pub fn open(&self) -> ChatDb {
        ChatDb::open(self.home()).unwrap()
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)` on the writing connection, as Messages runs it at
    /// times: the WAL is copied into the database and cut to zero bytes. Returns whether it
    /// completed (it does not while a reader holds an old snapshot).
    pub fn checkpoint_truncate(&self) -> bool {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        busy == 0
    }

    /// Closes the writing connection, runs `closed` with the database's path (e.g. to delete
    /// the WAL), and opens a new one: Messages quitting and starting again.
    pub fn reopen(&mut self, closed: impl FnOnce(&Path)) {
        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory().unwrap());
        old.close().map_err(|(_, e)| e).unwrap();
        closed(&self.path());
        self.conn = Connection::open(self.path()).unwrap();
        register_messages_functions(&self.conn);
    }

    /// Whether this layout has `table.column`.
    pub fn has(&self, table: &str, column: &str) -> bool {
        self.conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    }

    /// A raw `date` value for `minute` minutes after the base, in this version's unit.
    pub fn date(&self, minute: i64) -> i64 {
        let secs = BASE_SECS + minute * 60;
        if self.version.nanos() {
            secs * 1_000_000_000
        } else {
            secs
        }
    }

    pub fn handle(&self, id: &str) -> i64 {
        let service = if id.contains('@') { "iMessage" } else { "SMS" };
        self.conn
            .execute(
                "INSERT INTO handle (id, service, country) VALUES (?1, ?2, 'us')",
                params![id, service],
            )
            .unwrap();
        self.conn.last_insert_rowid()
    }

    /// A chat row; `guid` is `<service>;<+|->;<identifier>` and sets the other columns as
    /// Messages does.
    pub fn chat(&self, guid: &str, style: i64, name: Option<&str>, props: Option<Vec<u8>>) -> i64 {
        let mut parts = guid.splitn(3, ';');
        let service = parts.next().unwrap();
        let identifier = parts.nth(1).unwrap();
        let room = (style == 43).then_some(identifier);
        self.conn
            .execute(
                "INSERT INTO chat (guid, style, state, account_id, properties, chat_identifier, \
                 service_name, room_name, account_login, display_name, group_id) \
                 VALUES (?1, ?2, 3, 'ACCOUNT-UUID', ?3, ?4, ?5, ?6, 'E:me@icloud.com', ?7, ?8)",
                params![
                    guid,
                    style,
                    props,
                    identifier,
                    service,
                    room,
                    name.unwrap_or(""),
                    "GROUP-UUID"
                ],
            )
            .unwrap();
        self.conn.last_insert_rowid()
    }

    /// Sets a chat's `service_name` (`iMessage`, `SMS`, `RCS`): macOS 26 writes `any;+;…`
    /// GUIDs and keeps the service only here.
    pub fn set_service(&self, chat: i64, service: &str) {
        self.conn
            .execute(
                "UPDATE chat SET service_name = ?1 WHERE ROWID = ?2",
                params![service, chat],
            )
            .unwrap();
    }

    pub fn group(&self, guid: &str, name: Option<&str>, props: Option<Vec<u8>>) -> i64 {
        self.chat(guid, 43, name, props)
    }

    pub fn member(&self, chat: i64, handle: i64) {
        self.conn
            .execute(
                "INSERT INTO chat_handle_join (chat_id, handle_id) VALUES (?1, ?2)",
                [chat, handle],
            )
            .unwrap();
    }

    pub fn attachment(&self, guid: &str, filename: Option<&str>, mime: Option<&str>) -> i64 {
        if self.has("attachment", "original_guid") {
            self.conn
                .execute(
                    "INSERT INTO attachment (guid, filename, mime_type, transfer_name, original_guid) \
                     VALUES (?1, ?2, ?3, 'photo', ?1)",
                    params![guid, filename, mime],
                )
                .unwrap();
        } else {
            self.conn
                .execute(
                    "INSERT INTO attachment (guid, filename, mime_type, transfer_name) \
                     VALUES (?1, ?2, ?3, 'photo')",
                    params![guid, filename, mime],
                )
                .unwrap();
        }
        self.conn.last_insert_rowid()
    }

    pub fn message(&self, m: Msg<'_>) -> i64 {
        let caller = if self.has("message", "destination_caller_id") {
            "destination_caller_id"
        } else {
            "subject" // any TEXT column, left NULL below when there is no caller id column
        };
        let caller_id = if caller == "subject" {
            None
        } else {
            m.caller_id
        };
        self.conn
            .execute(
                &format!(
                    "INSERT INTO message (ROWID, guid, text, handle_id, service, account, date, \
                     is_from_me, is_finished, item_type, other_handle, group_title, \
                     group_action_type, {caller}) \
                     VALUES (?1, ?2, ?3, ?4, 'iMessage', ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    m.rowid,
                    m.guid,
                    m.text,
                    if m.from_me { 0 } else { m.handle },
                    m.account,
                    self.date(m.minute),
                    m.from_me,
                    m.item_type,
                    m.other,
                    m.title,
                    m.action,
                    caller_id,
                ],
            )
            .unwrap();
        self.conn.last_insert_rowid()
    }

    /// Sets one column of a message row, if this layout has it (a column a layout lacks is
    /// what an older macOS never writes). Returns whether it did.
    pub fn set(&self, message: i64, column: &str, value: impl rusqlite::ToSql) -> bool {
        if !self.has("message", column) {
            return false;
        }
        self.conn
            .execute(
                &format!("UPDATE message SET {column} = ?1 WHERE ROWID = ?2"),
                params![value, message],
            )
            .unwrap();
        true
    }

    /// A direct chat (`style` 45) with `handle`'s person; `service` `iMessage`, or `any` as
    /// macOS 26 writes it.
    pub fn direct(&self, service: &str, address: &str, handle: i64) -> i64 {
        let chat = self.chat(&format!("{service};-;{address}"), 45, None, None);
        self.member(chat, handle);
        chat
    }

    pub fn join(&self, chat: i64, message: i64) {
        if self.has("chat_message_join", "message_date") {
            self.conn
                .execute(
                    "INSERT INTO chat_message_join (chat_id, message_id, message_date) \
                     SELECT ?1, ?2, date FROM message WHERE ROWID = ?2",
                    [chat, message],
                )
                .unwrap();
        } else {
            self.conn
                .execute(
                    "INSERT INTO chat_message_join (chat_id, message_id) VALUES (?1, ?2)",
                    [chat, message],
                )
                .unwrap();
        }
    }

    /// A message joined to `chat` right away.
    pub fn post(&self, chat: i64, m: Msg<'_>) -> i64 {
        let id = self.message(m);
        self.join(chat, id);
        id
    }

    pub fn attach(&self, message: i64, attachment: i64) {
        self.conn
            .execute(
                "INSERT INTO message_attachment_join (message_id, attachment_id) VALUES (?1, ?2)",
                [message, attachment],
            )
            .unwrap();
    }
}

pub fn register_messages_functions(conn: &Connection) {
    for (name, args) in MESSAGES_ONLY {
        conn.create_scalar_function(name, args, FunctionFlags::SQLITE_UTF8, |_| Ok(0_i64))
            .unwrap();
    }
}

/// A binary `chat.properties` plist, with `groupPhotoGuid` when given.
pub fn properties(photo: Option<&str>) -> Vec<u8> {
    let mut dict = plist::Dictionary::new();
    dict.insert("shouldForceToSMS".into(), false.into());
    dict.insert("hasBeenAutoSpamReported".into(), false.into());
    if let Some(photo) = photo {
        dict.insert("groupPhotoGuid".into(), photo.into());
    }
    let mut out = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_binary(&mut out)
        .unwrap();
    out
}

//! Opening chat.db read-only; group chats, their members and icons; who "me" is.

use std::collections::BTreeMap;
use std::io::Cursor as IoCursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Context, Error, Result, SqlError};
use crate::guid::{service_rank, ChatGuid};
use crate::schema::Schema;

/// `chat.style` of a group chat (45 is a one-to-one chat).
pub const GROUP_STYLE: i64 = 43;

/// How long a read waits for Messages' write lock before failing (reads of a WAL database
/// rarely wait at all; this covers a checkpoint or recovery in progress).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A read-only connection to a Messages database.
///
/// Opened with `SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only`, so nothing here can write:
/// no row, no WAL checkpoint (a read-only connection never checkpoints, even when it is the
/// last one to close), no journal-mode change. Messages stays the only writer.
pub struct ChatDb {
    pub(crate) conn: Connection,
    pub(crate) home: PathBuf,
    pub(crate) schema: Schema,
    path: PathBuf,
    /// Which file was `chat.db-wal` just before the connection opened (see
    /// [`ChatDb::wal_replaced`]).
    wal: Option<FileId>,
}

/// A file's identity (device and inode): a file deleted and created again under the same name
/// is another file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| FileId(m.dev(), m.ino()))
    }

    /// No inode numbers here: a replaced WAL goes unnoticed (chat.db exists on macOS only; the
    /// tests run on Linux).
    #[cfg(not(unix))]
    fn of(_path: &Path) -> Option<FileId> {
        None
    }
}

/// `PATH-wal`, SQLite's name for the WAL of the database at `PATH`.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A group chat as the SDK sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub guid: ChatGuid,
    /// `chat.display_name`; `None` when unset or empty (Messages then shows the members).
    pub display_name: Option<String>,
    /// Current members other than me (`chat_handle_join` → `handle.id`), sorted, distinct.
    pub participants: Vec<String>,
    pub icon: Option<Icon>,
    /// The `chat` rows merged into this group, the preferred one first (see [`ChatDb::groups`]).
    pub chat_rowids: Vec<i64>,
    /// Their raw `chat.guid` values, in the same order.
    pub raw_guids: Vec<String>,
}

/// A group photo: an attachment row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icon {
    /// `attachment.guid` (what `groupPhotoGuid` names).
    pub attachment_guid: String,
    /// `attachment.filename` with a leading `~` replaced by the home directory; `None` when the
    /// attachment row is missing or has no file name (not downloaded yet).
    pub path: Option<PathBuf>,
    /// `attachment.mime_type`, else guessed from the file extension.
    pub mime_type: Option<String>,
}

impl ChatDb {
    /// `HOME/Library/Messages/chat.db`.
    pub fn default_path(home: &Path) -> PathBuf {
        home.join("Library").join("Messages").join("chat.db")
    }

    /// Opens `HOME/Library/Messages/chat.db` read-only; `~` in attachment paths means `home`.
    pub fn open(home: impl Into<PathBuf>) -> Result<ChatDb> {
        let home = home.into();
        ChatDb::open_file(&ChatDb::default_path(&home), home)
    }

    /// Opens the database at `path` read-only; `~` in attachment paths means `home`.
    pub fn open_file(path: &Path, home: impl Into<PathBuf>) -> Result<ChatDb> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source: SqlError(source),
        };
        // Before opening: should the WAL be replaced between this and the connection opening
        // it, the next `wal_replaced` says so (a needless reopen at worst, never a missed one).
        let wal = FileId::of(&wal_path(path));
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(open_err)?;
        // Reading the schema is the first real read: a file that is not a database, or one
        // we may not read (no Full Disk Access), fails here rather than on first use.
        let schema = Schema::probe(&conn).map_err(|e| match e {
            Error::Query { source, .. } => Error::Open {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        Ok(ChatDb {
            conn,
            home: home.into(),
            schema,
            path: path.to_owned(),
            wal,
        })
    }

    /// Whether `chat.db-wal` is no longer the file this connection opened: deleted, created
    /// again (a new inode), or created where there was none. The connection keeps reading the
    /// WAL it opened, so it no longer sees new commits: SQLite only ever deletes the WAL when
    /// the last connection closes, but another program (a cleanup tool, a restore) can delete
    /// it under our feet, and Messages then writes to a new one. Then [`ChatDb::reopen`].
    /// A `stat` call: cheap enough for every scan.
    pub fn wal_replaced(&self) -> bool {
        FileId::of(&wal_path(&self.path)) != self.wal
    }

    /// A new connection to the same database (see [`ChatDb::wal_replaced`]).
    pub fn reopen(&self) -> Result<ChatDb> {
        ChatDb::open_file(&self.path, self.home.clone())
    }

    /// Which columns this database has.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Every group chat (`chat.style = 43`), sorted by GUID.
    ///
    /// Rows whose GUIDs normalise to the same `any;+;…` GUID are merged into one group; its
    /// name, members and icon come from the preferred row: an `any;` GUID first, then
    /// `iMessage;`, then others, and among equals the highest ROWID (the newest row).
    pub fn groups(&self) -> Result<Vec<Group>> {
        let s = &self.schema;
        let sql = format!(
            "SELECT c.ROWID, c.guid, {ident}, {name}, {props} FROM chat c WHERE c.style = {GROUP_STYLE}",
            ident = s.col("chat", "c", "chat_identifier", "NULL"),
            name = s.col("chat", "c", "display_name", "NULL"),
            props = s.col("chat", "c", "properties", "NULL"),
        );
        let mut stmt = self.conn.prepare(&sql).context("listing group chats")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ChatRow {
                    rowid: r.get(0)?,
                    guid: r.get(1)?,
                    identifier: r.get(2)?,
                    display_name: lossy_text(r, 3)?,
                    properties: r.get(4)?,
                })
            })
            .context("listing group chats")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("listing group chats")?;
        let mut by_guid: BTreeMap<ChatGuid, Vec<ChatRow>> = BTreeMap::new();
        for row in rows {
            let guid =
                ChatGuid::from_row(&row.guid, row.identifier.as_deref()).ok_or_else(|| {
                    Error::InvalidChatGuid {
                        rowid: row.rowid,
                        guid: row.guid.clone(),
                    }
                })?;
            by_guid.entry(guid).or_default().push(row);
        }
        by_guid
            .into_iter()
            .map(|(guid, mut rows)| {
                rows.sort_by_key(|r| (service_rank(&r.guid), std::cmp::Reverse(r.rowid)));
                self.group_from_rows(guid, rows)
            })
            .collect()
    }

    /// The group chats' highest `chat.ROWID` and their number: when neither moved, no group
    /// was created or deleted since (one cheap query, for deciding whether to list groups).
    pub fn group_fingerprint(&self) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                &format!(
                    "SELECT coalesce(max(ROWID), 0), count(*) FROM chat WHERE style = {GROUP_STYLE}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .context("counting group chats")
    }

    /// One group by GUID, in any form (`iMessage;+;chat1` finds `any;+;chat1`).
    pub fn group(&self, guid: &str) -> Result<Option<Group>> {
        let Some(guid) = ChatGuid::parse(guid) else {
            return Ok(None);
        };
        Ok(self.groups()?.into_iter().find(|g| g.guid == guid))
    }

    fn group_from_rows(&self, guid: ChatGuid, rows: Vec<ChatRow>) -> Result<Group> {
        let primary = &rows[0];
        let participants = self.participants(primary.rowid)?;
        let icon = match primary.properties.as_deref().and_then(group_photo_guid) {
            Some(attachment_guid) => Some(self.icon(&attachment_guid)?),
            None => None,
        };
        Ok(Group {
            guid,
            display_name: primary.display_name.clone().filter(|n| !n.is_empty()),
            participants,
            icon,
            chat_rowids: rows.iter().map(|r| r.rowid).collect(),
            raw_guids: rows.iter().map(|r| r.guid.clone()).collect(),
        })
    }

    fn participants(&self, chat_rowid: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT h.id FROM chat_handle_join j JOIN handle h ON h.ROWID = j.handle_id \
                 WHERE j.chat_id = ?1 ORDER BY h.id",
            )
            .context("listing participants")?;
        let ids = stmt
            .query_map([chat_rowid], |r| lossy_text(r, 0))
            .context("listing participants")?
            .filter_map(|row| row.transpose())
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("listing participants")?;
        Ok(ids)
    }

    /// The attachment named `attachment_guid`, as an icon (with no path if the row is missing).
    pub(crate) fn icon(&self, attachment_guid: &str) -> Result<Icon> {
        let mut icon = Icon {
            attachment_guid: attachment_guid.to_owned(),
            path: None,
            mime_type: None,
        };
        if !self.schema.has("attachment", "guid") {
            return Ok(icon);
        }
        let s = &self.schema;
        let sql = format!(
            "SELECT {file}, {mime} FROM attachment a WHERE a.guid = ?1",
            file = s.col("attachment", "a", "filename", "NULL"),
            mime = s.col("attachment", "a", "mime_type", "NULL"),
        );
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(&sql, [attachment_guid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .context("reading an attachment")?;
        if let Some((filename, mime)) = row {
            let path = filename.filter(|f| !f.is_empty()).map(|f| self.expand(&f));
            icon.mime_type = mime
                .filter(|m| !m.is_empty())
                .or_else(|| path.as_deref().and_then(guess_mime).map(str::to_owned));
            icon.path = path;
        }
        Ok(icon)
    }

    /// `~` and `~/…` mean the home directory given at open; other paths are kept as they are.
    fn expand(&self, filename: &str) -> PathBuf {
        if filename == "~" {
            self.home.clone()
        } else if let Some(rest) = filename.strip_prefix("~/") {
            self.home.join(rest)
        } else {
            PathBuf::from(filename)
        }
    }

    /// The account's own address ("me"), when the caller does not give one.
    ///
    /// Tried in order, each over the newest 10,000 messages so that a large database does not
    /// make start-up slow, taking the most frequent non-empty value:
    /// 1. `message.destination_caller_id` of messages I sent (macOS 10.13+: the address I
    ///    sent from);
    /// 2. `chat.last_addressed_handle` of group chats (the address I last used there);
    /// 3. `message.account` of messages I sent, without its `e:` / `p:` prefix.
    ///
    /// `None` when none of these has a value; the caller must then be told the address.
    pub fn detect_account(&self) -> Result<Option<String>> {
        let recent = "m.ROWID > (SELECT coalesce(max(ROWID), 0) - 10000 FROM message)";
        let mut queries = Vec::new();
        if self.schema.has("message", "destination_caller_id") {
            queries.push(format!(
                "SELECT m.destination_caller_id FROM message m WHERE m.is_from_me = 1 AND {recent} \
                 AND coalesce(m.destination_caller_id, '') != '' \
                 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            ));
        }
        if self.schema.has("chat", "last_addressed_handle") {
            queries.push(format!(
                "SELECT c.last_addressed_handle FROM chat c WHERE c.style = {GROUP_STYLE} \
                 AND coalesce(c.last_addressed_handle, '') != '' \
                 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            ));
        }
        if self.schema.has("message", "account") {
            queries.push(format!(
                "SELECT m.account FROM message m WHERE m.is_from_me = 1 AND {recent} \
                 AND coalesce(m.account, '') != '' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            ));
        }
        for sql in queries {
            let found: Option<String> = self
                .conn
                .query_row(&sql, [], |r| r.get(0))
                .optional()
                .context("detecting the account address")?;
            if let Some(found) = found {
                let address = strip_account_prefix(&found);
                if !address.is_empty() {
                    return Ok(Some(address.to_owned()));
                }
            }
        }
        Ok(None)
    }
}

struct ChatRow {
    rowid: i64,
    guid: String,
    identifier: Option<String>,
    display_name: Option<String>,
    properties: Option<Vec<u8>>,
}

/// A text column that people choose (a group's name, a handle), as Messages stored it.
/// SQLite keeps whatever bytes it is given, and text from another device is not always valid
/// UTF-8 (an unpaired UTF-16 surrogate, converted by SQLite, is not): such bytes are decoded
/// with U+FFFD instead of failing the read, which would stop the import of every group for
/// one member's name. What the text may then contain is the reader's policy, not this crate's.
pub(crate) fn lossy_text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
    })
}

/// `message.account` is `e:` + an e-mail address or `p:` + a phone number.
fn strip_account_prefix(account: &str) -> &str {
    account
        .strip_prefix("e:")
        .or_else(|| account.strip_prefix("E:"))
        .or_else(|| account.strip_prefix("p:"))
        .or_else(|| account.strip_prefix("P:"))
        .unwrap_or(account)
}

/// `groupPhotoGuid` from a `chat.properties` plist (binary on every macOS seen; XML is read
/// too). `None` for no blob, an unreadable blob, or no such key.
pub fn group_photo_guid(properties: &[u8]) -> Option<String> {
    let value = plist::Value::from_reader(IoCursor::new(properties)).ok()?;
    let guid = value.as_dictionary()?.get("groupPhotoGuid")?.as_string()?;
    (!guid.is_empty()).then(|| guid.to_owned())
}

fn guess_mime(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "webp" => "image/webp",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_prefixes() {
        assert_eq!(strip_account_prefix("e:me@icloud.com"), "me@icloud.com");
        assert_eq!(strip_account_prefix("p:+15550001"), "+15550001");
        assert_eq!(strip_account_prefix("me@icloud.com"), "me@icloud.com");
    }

    #[test]
    fn photo_guid_from_binary_and_xml_plists() {
        let mut dict = plist::Dictionary::new();
        dict.insert("groupPhotoGuid".into(), "at_0_ABC".into());
        dict.insert("shouldForceToSMS".into(), false.into());
        let mut bin = Vec::new();
        plist::Value::Dictionary(dict.clone())
            .to_writer_binary(&mut bin)
            .unwrap();
        assert_eq!(group_photo_guid(&bin).as_deref(), Some("at_0_ABC"));
        let mut xml = Vec::new();
        plist::Value::Dictionary(dict)
            .to_writer_xml(&mut xml)
            .unwrap();
        assert_eq!(group_photo_guid(&xml).as_deref(), Some("at_0_ABC"));
        assert_eq!(group_photo_guid(b"not a plist"), None);
        assert_eq!(group_photo_guid(&[]), None);
    }
}

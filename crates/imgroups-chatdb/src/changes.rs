//! Group changes: `message` rows with `item_type` 1–3 in a group chat, decoded into
//! [`Change`]s, and the incremental read over them ([`ChatDb::scan`]).
//!
//! # The cursor
//!
//! `message.ROWID` is `AUTOINCREMENT` and SQLite has one writer at a time, so every row inserted
//! after a read has a larger ROWID than every row that read saw: "ROWID > last seen" finds
//! every new row, in commit order. What it does not give:
//! - **Chronology.** iCloud backfill inserts *old* messages with *new* ROWIDs. They are new to
//!   us and are returned once, with their old `occurred_at`; a caller importing history orders
//!   by [`Change::sort_key`] (date, then ROWID), and a live caller simply appends them.
//! - **A complete row.** Messages can commit a message before its `chat_message_join` row, so
//!   a group-change row without a join (or joined to a chat row not there yet) is not yet
//!   decodable. The cursor remembers such ROWIDs as *pending* and every scan looks at them
//!   again, until they are decoded, turn out not to belong to a group chat, disappear, or fall
//!   more than [`PENDING_WINDOW`] ROWIDs behind the newest (then they are given up on).
//! - **Stable numbering.** A rebuilt database renumbers ROWIDs. When the database's ROWID
//!   high-water mark (`sqlite_sequence`) is below the cursor, the scan starts over from the
//!   beginning and says so in [`Scan::restarted`].
//!
//! Contract: each scan returns every change not returned by an earlier scan from the same
//! cursor chain, except after a restart, when changes already returned come again with the same
//! `message.guid`. The caller dedupes by [`Change::guid`] (it must keep the GUIDs it stored
//! anyway, for exactly-once across restarts) and stores the returned [`Cursor`] in the same
//! transaction as the events it produced.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::db::{lossy_text, ChatDb, Icon, GROUP_STYLE};
use crate::error::{Context, Error, Result};
use crate::guid::ChatGuid;
use crate::time::Timestamp;

/// A pending ROWID this far behind the newest message is given up on: its join row is not
/// coming (Messages writes both within one burst; this is many thousands of messages later).
pub const PENDING_WINDOW: i64 = 10_000;

/// At most this many pending ROWIDs are kept (the oldest are dropped first), so the cursor
/// stays small.
pub const MAX_PENDING: usize = 256;

/// Who did something, or whom it was done to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// The account owner (`is_from_me = 1`, or handle 0).
    Me,
    /// Someone else, by `handle.id` (a phone number or e-mail address).
    Address(String),
    /// A handle ROWID with no `handle` row.
    Unknown,
}

impl Party {
    /// The address, with `me` standing for [`Party::Me`].
    pub fn address<'a>(&'a self, me: &'a str) -> Option<&'a str> {
        match self {
            Party::Me => Some(me),
            Party::Address(a) => Some(a),
            Party::Unknown => None,
        }
    }
}

/// What a group-change row means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// `item_type = 1, group_action_type = 0`: `target` (`other_handle`) was added.
    ParticipantAdded { target: Party },
    /// `item_type = 1, group_action_type = 1`: `target` (`other_handle`) was removed.
    ParticipantRemoved { target: Party },
    /// `item_type = 2`: the group was renamed to `group_title`; `None` when the name was
    /// cleared.
    Renamed { name: Option<String> },
    /// `item_type = 3, group_action_type = 0`: the actor left.
    Left,
    /// `item_type = 3, group_action_type = 1`: a group photo was set; the photo is the row's
    /// attachment (`message_attachment_join`) when there is one.
    IconSet { icon: Option<Icon> },
    /// `item_type = 3, group_action_type = 2`: the group photo was removed.
    IconRemoved,
    /// Any other combination (chat backgrounds, a participant "adding" themselves, which some
    /// tools read as a phone-number change, actions of newer macOS): reported, not interpreted.
    Unrecognised {
        item_type: i64,
        group_action_type: i64,
    },
}

/// One group change, from one `message` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `message.guid`: the dedupe key.
    pub guid: String,
    /// `message.ROWID`.
    pub rowid: i64,
    pub chat: ChatGuid,
    /// The `chat` row the message is joined to.
    pub chat_rowid: i64,
    pub actor: Party,
    /// From `message.date` (see [`Timestamp::from_apple`]).
    pub occurred_at: Timestamp,
    pub kind: ChangeKind,
}

impl Change {
    /// The import order: by date, then ROWID.
    pub fn sort_key(&self) -> (Timestamp, i64) {
        (self.occurred_at, self.rowid)
    }
}

/// Where a [`ChatDb::scan`] resumes. Stored by the caller as its [`fmt::Display`] text
/// (`v1:<rowid>` or `v1:<rowid>:<pending>,<pending>…`) and read back with [`str::parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    after: i64,
    pending: BTreeSet<i64>,
}

impl Cursor {
    /// Before the first message: a scan from here imports the whole history.
    pub fn start() -> Cursor {
        Cursor::default()
    }

    /// Every message with a ROWID up to this one has been looked at.
    pub fn after_rowid(&self) -> i64 {
        self.after
    }

    /// Group-change rows seen without a usable chat join, to look at again.
    pub fn pending(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending.iter().copied()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1:{}", self.after)?;
        for (i, rowid) in self.pending.iter().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            write!(f, "{rowid}")?;
        }
        Ok(())
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || Error::InvalidCursor(s.to_owned());
        let rest = s.strip_prefix("v1:").ok_or_else(bad)?;
        let (after, pending) = match rest.split_once(':') {
            Some((after, pending)) => (after, Some(pending)),
            None => (rest, None),
        };
        let after = after.parse::<i64>().map_err(|_| bad())?;
        let pending = match pending {
            Some(list) => list
                .split(',')
                .map(|p| p.parse::<i64>().map_err(|_| bad()))
                .collect::<Result<BTreeSet<_>>>()?,
            None => BTreeSet::new(),
        };
        if after < 0 || pending.iter().any(|&p| p <= 0 || p > after) {
            return Err(bad());
        }
        Ok(Cursor { after, pending })
    }
}

/// What one [`ChatDb::scan`] found.
#[derive(Clone, Debug)]
pub struct Scan {
    /// New changes, ordered by [`Change::sort_key`].
    pub changes: Vec<Change>,
    /// Where the next scan resumes; store it with the events made from `changes`.
    pub cursor: Cursor,
    /// The database was renumbered (rebuilt) since the cursor was made, so this scan started
    /// over and may repeat changes returned before (same `guid`).
    pub restarted: bool,
}

/// One `message` row of item type 1–3 with one of its chat joins (if any).
struct Row {
    rowid: i64,
    guid: String,
    date: Option<i64>,
    item_type: i64,
    action: i64,
    is_from_me: bool,
    handle_id: i64,
    handle: Option<String>,
    other_handle: i64,
    other: Option<String>,
    title: Option<String>,
    chat_rowid: Option<i64>,
    chat_guid: Option<String>,
    chat_identifier: Option<String>,
    chat_style: Option<i64>,
}

impl ChatDb {
    /// The group changes after `cursor` (all of them from [`Cursor::start`]), and the cursor
    /// to resume from. One read transaction: the result is a consistent snapshot. See the
    /// module doc for the contract.
    pub fn scan(&self, cursor: &Cursor) -> Result<Scan> {
        let tx = self
            .conn
            .unchecked_transaction()
            .context("starting a read")?;
        let high_water = self.high_water()?;
        let restarted = high_water < cursor.after;
        let from = if restarted {
            Cursor::start()
        } else {
            cursor.clone()
        };
        let newest: i64 = self
            .conn
            .query_row("SELECT coalesce(max(ROWID), 0) FROM message", [], |r| {
                r.get(0)
            })
            .context("reading the newest message")?;
        let newest = newest.max(from.after);

        // Rows come ordered by ROWID, then chat ROWID, and are decoded as they come (a long
        // history is never held as rows, only as changes); a message joined to several chats
        // counts for the first group chat only, so one message is at most one change.
        let mut found = Found {
            newest,
            changes: Vec::new(),
            pending: BTreeSet::new(),
            rows: Vec::new(),
        };
        self.group_rows(&from, newest, &mut |db, row| found.push(db, row))?;
        found.flush(self)?;
        let Found {
            mut changes,
            mut pending,
            ..
        } = found;
        while pending.len() > MAX_PENDING {
            pending.pop_first();
        }
        tx.commit().context("ending a read")?;
        changes.sort_by_key(Change::sort_key);
        Ok(Scan {
            changes,
            cursor: Cursor {
                after: newest,
                pending,
            },
            restarted,
        })
    }

    /// Every group change in the database, in import order (date, then ROWID).
    pub fn all_changes(&self) -> Result<Vec<Change>> {
        Ok(self.scan(&Cursor::start())?.changes)
    }

    /// The largest ROWID `message` has ever handed out (`sqlite_sequence`, which deleting the
    /// newest rows does not lower), else the largest present.
    fn high_water(&self) -> Result<i64> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'message'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                // No sqlite_sequence table at all: nothing was ever inserted with AUTOINCREMENT.
                rusqlite::Error::SqliteFailure(..) => Ok(None),
                other => Err(other),
            })
            .context("reading the ROWID high-water mark")?;
        match seq {
            Some(seq) => Ok(seq),
            None => self
                .conn
                .query_row("SELECT coalesce(max(ROWID), 0) FROM message", [], |r| {
                    r.get(0)
                })
                .context("reading the newest message"),
        }
    }

    /// The candidate rows, in ROWID order, to `each`: the pending ROWIDs (all at or below
    /// `from.after`), then ROWIDs in `(from.after, newest]`. Two queries rather than one `OR`,
    /// so that each uses the ROWID key instead of a table scan.
    fn group_rows(
        &self,
        from: &Cursor,
        newest: i64,
        each: &mut dyn FnMut(&ChatDb, Row) -> Result<()>,
    ) -> Result<()> {
        if !from.pending.is_empty() {
            // Pending ROWIDs are integers we produced or validated: safe to inline.
            let pending = from
                .pending
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            self.group_rows_where(&format!("m.ROWID IN ({pending})"), &[], each)?;
        }
        self.group_rows_where(
            "m.ROWID > ?1 AND m.ROWID <= ?2",
            &[from.after, newest],
            each,
        )
    }

    fn group_rows_where(
        &self,
        filter: &str,
        params: &[i64],
        each: &mut dyn FnMut(&ChatDb, Row) -> Result<()>,
    ) -> Result<()> {
        let s = &self.schema;
        let sql = format!(
            "SELECT m.ROWID, m.guid, m.date, m.item_type, {action}, m.is_from_me, m.handle_id, \
                    a.id, {other}, t.id, {title}, c.ROWID, c.guid, {ident}, c.style \
             FROM message m \
             LEFT JOIN chat_message_join j ON j.message_id = m.ROWID \
             LEFT JOIN chat c ON c.ROWID = j.chat_id \
             LEFT JOIN handle a ON a.ROWID = m.handle_id \
             LEFT JOIN handle t ON t.ROWID = {other} \
             WHERE {filter} AND m.item_type IN (1, 2, 3) \
             ORDER BY m.ROWID, j.chat_id",
            action = s.col("message", "m", "group_action_type", "0"),
            other = s.col("message", "m", "other_handle", "0"),
            title = s.col("message", "m", "group_title", "NULL"),
            ident = s.col("chat", "c", "chat_identifier", "NULL"),
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .context("reading group changes")?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok(Row {
                    rowid: r.get(0)?,
                    guid: r.get(1)?,
                    date: r.get(2)?,
                    item_type: r.get(3)?,
                    action: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    is_from_me: r.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
                    handle_id: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                    handle: lossy_text(r, 7)?,
                    other_handle: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                    other: lossy_text(r, 9)?,
                    title: lossy_text(r, 10)?,
                    chat_rowid: r.get(11)?,
                    chat_guid: r.get(12)?,
                    chat_identifier: r.get(13)?,
                    chat_style: r.get(14)?,
                })
            })
            .context("reading group changes")?;
        for row in rows {
            each(self, row.context("reading group changes")?)?;
        }
        Ok(())
    }

    fn decode(&self, row: &Row) -> Result<Change> {
        let chat_rowid = row.chat_rowid.unwrap_or_default();
        let raw_guid = row.chat_guid.as_deref().unwrap_or_default();
        let chat =
            ChatGuid::from_row(raw_guid, row.chat_identifier.as_deref()).ok_or_else(|| {
                Error::InvalidChatGuid {
                    rowid: chat_rowid,
                    guid: raw_guid.to_owned(),
                }
            })?;
        let kind = match decode_kind(row) {
            Kind::IconSet => ChangeKind::IconSet {
                icon: self.message_icon(row.rowid)?,
            },
            Kind::Other(kind) => kind,
        };
        Ok(Change {
            guid: row.guid.clone(),
            rowid: row.rowid,
            chat,
            chat_rowid,
            actor: actor(row),
            occurred_at: Timestamp::from_apple(row.date.unwrap_or(0)),
            kind,
        })
    }

    /// The first attachment of a message, as an icon.
    fn message_icon(&self, message_rowid: i64) -> Result<Option<Icon>> {
        if !self.schema.has_attachments() {
            return Ok(None);
        }
        let guid: Option<String> = self
            .conn
            .query_row(
                "SELECT a.guid FROM message_attachment_join j JOIN attachment a \
                 ON a.ROWID = j.attachment_id WHERE j.message_id = ?1 ORDER BY a.ROWID LIMIT 1",
                [message_rowid],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .context("reading a group photo attachment")?;
        guid.map(|g| self.icon(&g)).transpose()
    }
}

/// What a scan has found so far, and the rows of the message being read.
struct Found {
    newest: i64,
    changes: Vec<Change>,
    pending: BTreeSet<i64>,
    /// The rows (one per chat join) of the current message.
    rows: Vec<Row>,
}

impl Found {
    fn push(&mut self, db: &ChatDb, row: Row) -> Result<()> {
        if self.rows.first().is_some_and(|r| r.rowid != row.rowid) {
            self.flush(db)?;
        }
        self.rows.push(row);
        Ok(())
    }

    /// Decides the current message.
    fn flush(&mut self, db: &ChatDb) -> Result<()> {
        let Some(first) = self.rows.first() else {
            return Ok(());
        };
        let rowid = first.rowid;
        match self.rows.iter().find(|r| r.chat_style == Some(GROUP_STYLE)) {
            Some(row) => self.changes.push(db.decode(row)?),
            None => {
                // No join yet, or joined to a chat row not written yet: look again later.
                // Joined only to existing non-group chats: not a group change.
                let incomplete = self
                    .rows
                    .iter()
                    .all(|r| r.chat_rowid.is_none() || r.chat_style.is_none());
                if incomplete && rowid > self.newest - PENDING_WINDOW {
                    self.pending.insert(rowid);
                }
            }
        }
        self.rows.clear();
        Ok(())
    }
}

enum Kind {
    /// Needs a query for the attachment.
    IconSet,
    Other(ChangeKind),
}

/// The mapping table of the crate doc, as code.
fn decode_kind(row: &Row) -> Kind {
    let target = || party(row.other_handle, row.other.as_deref());
    Kind::Other(match (row.item_type, row.action) {
        // Someone "adding" themselves is not a membership change we can model.
        (1, 0) if row.other_handle != 0 && row.other_handle == row.handle_id => {
            ChangeKind::Unrecognised {
                item_type: 1,
                group_action_type: 0,
            }
        }
        (1, 0) => ChangeKind::ParticipantAdded { target: target() },
        (1, 1) => ChangeKind::ParticipantRemoved { target: target() },
        (2, _) => ChangeKind::Renamed {
            name: row.title.clone().filter(|t| !t.is_empty()),
        },
        (3, 0) => ChangeKind::Left,
        (3, 1) => return Kind::IconSet,
        (3, 2) => ChangeKind::IconRemoved,
        (item_type, group_action_type) => ChangeKind::Unrecognised {
            item_type,
            group_action_type,
        },
    })
}

/// `is_from_me = 1` or handle 0 is me (Messages writes no handle row for the account itself);
/// otherwise the handle's address.
fn actor(row: &Row) -> Party {
    if row.is_from_me {
        Party::Me
    } else {
        party(row.handle_id, row.handle.as_deref())
    }
}

fn party(handle_rowid: i64, id: Option<&str>) -> Party {
    match (handle_rowid, id) {
        (0, _) => Party::Me,
        (_, Some(id)) if !id.is_empty() => Party::Address(id.to_owned()),
        _ => Party::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            after: 42,
            pending: [7, 40].into(),
        };
        assert_eq!(c.to_string(), "v1:42:7,40");
        assert_eq!("v1:42:7,40".parse::<Cursor>().unwrap(), c);
        assert_eq!("v1:0".parse::<Cursor>().unwrap(), Cursor::start());
        for bad in ["", "42", "v1:", "v1:x", "v1:5:6", "v1:5:", "v2:5", "v1:-1"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}

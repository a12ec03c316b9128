//! Conversations: the `message` rows of what people say (`item_type` 0) in group chats
//! (`chat.style` 43) and direct chats (45), decoded into [`MessageEvent`]s, and the
//! incremental read over them ([`ChatDb::scan_messages`]).
//!
//! | chat.db | event |
//! |---|---|
//! | a new row, `associated_message_type` 0 | [`MessageEventKind::Said`]: `text`, else the text of `attributedBody` ([`crate::attributed_text`]); `subject`; `expressive_send_style_id`; `thread_originator_guid` (the reply's target); with the state it has now (`date_read`, `date_edited`, `date_retracted`) |
//! | a new row, `associated_message_type` 2000–2006 / 3000–3006 | [`MessageEventKind::Reaction`] set / removed: love, like, dislike, laugh, emphasize, question, emoji (`associated_message_emoji`) on `associated_message_guid` without its `p:N/` or `bp:` prefix |
//! | `date_edited` of a row seen before moves | [`MessageEventKind::Edited`] with the row's text now; an edit that leaves no text is an unsend (macOS 13 marks an unsend so) |
//! | `date_retracted` of a row seen before is set | [`MessageEventKind::Unsent`] |
//! | `date_read` of my message in a direct chat is set | [`MessageEventKind::Read`], by the other side |
//! | `date_read` of messages I received is set (I read them, in Messages or on another device) | one [`MessageEventKind::MarkedRead`] per chat and scan, by me, listing them |
//!
//! Other associated types (stickers 1000, 2007/3007 stickers as tapbacks, polls, …) and rows
//! without any text (attachments only) give nothing yet.
//!
//! # The cursor
//!
//! New rows are found as group changes are ([`crate::Cursor`]): ROWIDs above the last one
//! seen, and rows that had no chat join yet kept as pending. Changes to rows seen before are
//! found by their dates: each of `date_edited`, `date_retracted`, `date_read` of my messages
//! and `date_read` of the messages I received past the highest value seen so far, among the
//! newest [`UPDATE_WINDOW`] rows (an edit is possible for 15 minutes and an unsend for 2, and a
//! receipt or a read comes for a recent message; looking no further back keeps each scan to the
//! ROWID key, with no table scan). Each event has an id (`MessageEvent::id`) that is the same
//! however often it is read, for the caller's exactly-once.
//!
//! A scan can be read a window of rows at a time ([`ChatDb::message_windows`]), still in date
//! order: the new rows' dates are read first (and sorted; 16 bytes a row), then each window
//! reads its rows, so a first start on a long history holds one window of decoded rows, not
//! the history. A scan cut short (its events recorded in order up to some point, then a
//! crash) resumes from a cursor that says how far it got ([`MessageWindows::through`]): the
//! same rows are read again and only what comes after is given, exactly once without ids.
//!
//! A row first read already read (the history, or a message read as it arrived) carries its
//! read state in [`MessageEventKind::Said`] and gives no `MarkedRead`. A `date_read` older than
//! the newest one already seen (a read synced late from another device, after a later one was
//! recorded) is not found: the marks only move forward.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::changes::{Party, MAX_PENDING, PENDING_WINDOW};
use crate::db::{lossy_text, ChatDb, GROUP_STYLE};
use crate::error::{Context, Error, Result};
use crate::guid::ChatGuid;
use crate::time::Timestamp;
use crate::typedstream::attributed_text;

/// `chat.style` of a one-to-one chat.
pub const DIRECT_STYLE: i64 = 45;

/// How far back (in ROWIDs from the newest row) edits, unsends and receipts are looked for.
pub const UPDATE_WINDOW: i64 = 10_000;

/// The chat a message belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conversation {
    Group(ChatGuid),
    /// With the person whose `handle.id` this is (a direct chat's `chat_identifier`).
    Direct(String),
}

/// A tapback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tapback {
    Love,
    Like,
    Dislike,
    Laugh,
    Emphasize,
    Question,
    Emoji(String),
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageEventKind {
    /// A message, with what happened to it up to the read.
    Said {
        text: String,
        subject: Option<String>,
        effect: Option<String>,
        reply_to: Option<String>,
        read_at: Option<Timestamp>,
        edited_at: Option<Timestamp>,
        retracted_at: Option<Timestamp>,
    },
    Reaction {
        target: String,
        tapback: Tapback,
        set: bool,
    },
    Edited {
        text: String,
    },
    Unsent,
    /// The other side of a direct chat read my message.
    Read,
    /// I read these messages of the chat, received from others (`message.guid` and
    /// `date_read` of each, oldest first): their `date_read` was set after they were first
    /// read, by Messages on this Mac or synced from another device. One per chat and scan, so
    /// a chat read at once is one event, as `chats.markRead` is.
    MarkedRead {
        messages: Vec<(String, Timestamp)>,
    },
}

/// One event from one `message` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEvent {
    /// `message.guid` of the row: the message itself, or the tapback's own row (for
    /// [`MessageEventKind::MarkedRead`], the newest message read).
    pub guid: String,
    pub rowid: i64,
    pub chat: Conversation,
    /// Who said or did it.
    pub actor: Party,
    pub at: Timestamp,
    pub kind: MessageEventKind,
    /// The raw date the event is known by (for [`MessageEvent::id`]).
    raw_at: i64,
}

impl MessageEvent {
    /// The same for the same event however often it is read: the row's GUID for what a row
    /// says, with a suffix for what happened to it later.
    pub fn id(&self) -> String {
        match &self.kind {
            MessageEventKind::Said { .. } | MessageEventKind::Reaction { .. } => self.guid.clone(),
            MessageEventKind::Edited { .. } => format!("{}/edit/{}", self.guid, self.raw_at),
            MessageEventKind::Unsent => format!("{}/unsent", self.guid),
            MessageEventKind::Read => format!("{}/read", self.guid),
            // The newest message read and when: the same set read again gives the same id,
            // and a set that grew (a scan cut short by a crash, read again) is told apart by
            // its newest date; what was recorded read already is not recorded again.
            MessageEventKind::MarkedRead { .. } => format!("{}/seen/{}", self.guid, self.raw_at),
        }
    }

    /// The import order: by date, then ROWID.
    pub fn sort_key(&self) -> (Timestamp, i64) {
        (self.at, self.rowid)
    }
}

/// Where a [`ChatDb::scan_messages`] resumes; stored as its [`fmt::Display`] text
/// (`m2:<rowid>:<edited>:<retracted>:<read>:<seen>[:<pending>,…][@<newest>:<at>:<at rowid>]`,
/// the last part only in a cursor of a scan cut short, [`MessageWindows::through`]; the `m1:`
/// text of earlier versions, without `<seen>`, is read as `<seen>` 0: the first scan then looks
/// at every read message in the window once, and only those not recorded read yet change
/// anything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCursor {
    after: i64,
    edited: i64,
    retracted: i64,
    /// The newest `date_read` of my messages seen (receipts).
    read: i64,
    /// The newest `date_read` of received messages seen (my reads).
    seen: i64,
    pending: BTreeSet<i64>,
    /// A scan from this cursor was cut short, its events recorded in order up to here: it is
    /// read again to the same end, and only what comes after is given.
    through: Option<Through>,
}

/// How far a scan cut short got (see [`MessageWindows::through`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Through {
    /// The scan's last ROWID.
    newest: i64,
    /// The sort key of the last event recorded.
    at: Timestamp,
    rowid: i64,
}

impl MessageCursor {
    pub fn start() -> MessageCursor {
        MessageCursor::default()
    }

    pub fn after_rowid(&self) -> i64 {
        self.after
    }
}

impl fmt::Display for MessageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m2:{}:{}:{}:{}:{}",
            self.after, self.edited, self.retracted, self.read, self.seen
        )?;
        for (i, rowid) in self.pending.iter().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            write!(f, "{rowid}")?;
        }
        if let Some(t) = &self.through {
            write!(f, "@{}:{}:{}", t.newest, t.at.unix_nanos(), t.rowid)?;
        }
        Ok(())
    }
}

impl FromStr for MessageCursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<MessageCursor> {
        let bad = || Error::InvalidCursor(text.to_owned());
        let (s, through) = match text.split_once('@') {
            Some((s, through)) => (s, Some(through)),
            None => (text, None),
        };
        let through = match through {
            None => None,
            Some(t) => {
                let nums = t
                    .split(':')
                    .map(|p| p.parse::<i64>().map_err(|_| bad()))
                    .collect::<Result<Vec<_>>>()?;
                let &[newest, at, rowid] = nums.as_slice() else {
                    return Err(bad());
                };
                Some(Through {
                    newest,
                    at: Timestamp::from_unix_nanos(at),
                    rowid,
                })
            }
        };
        let (rest, fields) = match (s.strip_prefix("m2:"), s.strip_prefix("m1:")) {
            (Some(rest), _) => (rest, 5),
            (None, Some(rest)) => (rest, 4),
            (None, None) => return Err(bad()),
        };
        let mut parts = rest.splitn(fields + 1, ':');
        let mut num = || -> Result<i64> {
            parts
                .next()
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(bad)
        };
        let (after, edited, retracted, read) = (num()?, num()?, num()?, num()?);
        let seen = if fields == 5 { num()? } else { 0 };
        let pending = match parts.next() {
            Some(list) => list
                .split(',')
                .map(|p| p.parse::<i64>().map_err(|_| bad()))
                .collect::<Result<BTreeSet<_>>>()?,
            None => BTreeSet::new(),
        };
        if after < 0 || pending.iter().any(|&p| p <= 0 || p > after) {
            return Err(bad());
        }
        if through.is_some_and(|t| t.newest < after || t.rowid <= 0) {
            return Err(bad());
        }
        Ok(MessageCursor {
            after,
            edited,
            retracted,
            read,
            seen,
            pending,
            through,
        })
    }
}

/// What one [`ChatDb::scan_messages`] found.
#[derive(Clone, Debug)]
pub struct MessageScan {
    /// Ordered by [`MessageEvent::sort_key`].
    pub events: Vec<MessageEvent>,
    pub cursor: MessageCursor,
    /// The database was renumbered since the cursor was made: the scan started over and may
    /// repeat events (same [`MessageEvent::id`]).
    pub restarted: bool,
}

/// One `message` row with one of its chat joins.
struct Row {
    rowid: i64,
    guid: String,
    text: Option<String>,
    body: Option<Vec<u8>>,
    subject: Option<String>,
    date: i64,
    from_me: bool,
    handle: Option<String>,
    assoc_type: i64,
    assoc_guid: Option<String>,
    assoc_emoji: Option<String>,
    reply_to: Option<String>,
    effect: Option<String>,
    date_read: i64,
    date_edited: i64,
    date_retracted: i64,
    /// `chat_message_join.chat_id` (`None`: no join row).
    chat_id: Option<i64>,
    chat_guid: Option<String>,
    chat_identifier: Option<String>,
    chat_style: Option<i64>,
}

impl Row {
    fn conversation(&self) -> Option<Conversation> {
        let guid = self.chat_guid.as_deref().unwrap_or_default();
        match self.chat_style? {
            GROUP_STYLE => {
                ChatGuid::from_row(guid, self.chat_identifier.as_deref()).map(Conversation::Group)
            }
            DIRECT_STYLE => {
                let after = guid.splitn(3, ';').nth(2).filter(|s| !s.is_empty());
                after
                    .or(self.chat_identifier.as_deref())
                    .filter(|s| !s.is_empty())
                    .map(|s| Conversation::Direct(s.to_owned()))
            }
            _ => None,
        }
    }

    fn actor(&self) -> Party {
        if self.from_me {
            Party::Me
        } else {
            match &self.handle {
                Some(id) => Party::Address(id.clone()),
                None => Party::Unknown,
            }
        }
    }

    /// `text`, else the text in `attributedBody`; `None` when neither has any.
    fn text(&self) -> Option<String> {
        if let Some(text) = self.text.as_deref().filter(|t| !t.is_empty()) {
            return Some(text.to_owned());
        }
        let body = self.body.as_deref().filter(|b| !b.is_empty())?;
        match attributed_text(body) {
            Ok(text) if !text.is_empty() => Some(text),
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(guid = %self.guid, error = %err, "cannot read a message's attributedBody");
                None
            }
        }
    }
}

fn when(raw: i64) -> Option<Timestamp> {
    (raw > 0).then(|| Timestamp::from_apple(raw))
}

/// `p:0/GUID` (a part of a message) and `bp:GUID` (a balloon) name `GUID`.
fn target_guid(raw: &str) -> &str {
    if let Some((_, guid)) = raw.split_once('/') {
        return guid;
    }
    raw.strip_prefix("bp:").unwrap_or(raw)
}

fn tapback(assoc_type: i64, emoji: Option<&str>) -> Option<(Tapback, bool)> {
    let (set, kind) = match assoc_type {
        2000..=2006 => (true, assoc_type - 2000),
        3000..=3006 => (false, assoc_type - 3000),
        _ => return None,
    };
    let tapback = match kind {
        0 => Tapback::Love,
        1 => Tapback::Like,
        2 => Tapback::Dislike,
        3 => Tapback::Laugh,
        4 => Tapback::Emphasize,
        5 => Tapback::Question,
        _ => Tapback::Emoji(emoji.filter(|e| !e.is_empty())?.to_owned()),
    };
    Some((tapback, set))
}

/// Rows a window reads at once by default ([`ChatDb::message_windows`]).
pub const WINDOW: usize = 5_000;

/// A scan's message events, read a window at a time in import order
/// ([`ChatDb::message_windows`]): only the new rows' sort keys (16 bytes a row) are held for
/// the whole scan, and one window's rows at a time, so a first start on a long history does
/// not hold the history.
pub struct MessageWindows<'db> {
    db: &'db ChatDb,
    /// The cursor the scan started from, without a [`Through`].
    from: MessageCursor,
    /// Skip events up to here (a scan cut short, read again).
    through: Option<Through>,
    /// The scan's last ROWID.
    newest: i64,
    /// The new rows' (and the pending rows') sort keys, sorted; `keys[next..]` are unread.
    keys: Vec<(Timestamp, i64)>,
    next: usize,
    /// Events of rows seen before (edits, unsends, receipts, reads), sorted, not given yet.
    updates: std::collections::VecDeque<MessageEvent>,
    window: usize,
    /// Raised as windows are read; the scan's resume point once they are all read.
    cursor: MessageCursor,
    done: bool,
    restarted: bool,
    total: usize,
}

impl MessageWindows<'_> {
    /// The next window's events, in import order ([`MessageEvent::sort_key`]), every one
    /// after all of the previous windows' (a window may be empty); `None` once all are read.
    pub fn next_window(&mut self) -> Result<Option<Vec<MessageEvent>>> {
        if self.done {
            return Ok(None);
        }
        let mut events: Vec<MessageEvent>;
        if self.next == self.keys.len() {
            if self.updates.is_empty() {
                self.done = true;
                while self.cursor.pending.len() > MAX_PENDING {
                    self.cursor.pending.pop_first();
                }
                return Ok(None);
            }
            events = self.updates.drain(..).collect();
        } else {
            let end = (self.next + self.window).min(self.keys.len());
            let keys = &self.keys[self.next..end];
            let last = keys[keys.len() - 1];
            let mut rowids: Vec<i64> = keys.iter().map(|k| k.1).collect();
            rowids.sort_unstable();
            let (lo, hi) = (rowids[0], rowids[rowids.len() - 1]);
            // Rows are mostly dated in ROWID order: a window is then a ROWID range, read in
            // order. Rows out of it (a backfill) are looked up one by one.
            let filter = if hi - lo < 4 * rowids.len() as i64 {
                format!("m.ROWID >= {lo} AND m.ROWID <= {hi}")
            } else {
                let list: Vec<String> = rowids.iter().map(i64::to_string).collect();
                format!("m.ROWID IN ({})", list.join(","))
            };
            let mut rows = Vec::new();
            self.db.message_rows(&filter, &mut |row| {
                if rowids.binary_search(&row.rowid).is_ok() {
                    rows.push(row);
                }
                Ok(())
            })?;
            // Updates dated up to the window's last key go first: sorted stably below, they
            // stay before a new row's event of the same key, as in one sorted scan.
            let mut take = 0;
            while self.updates.get(take).is_some_and(|e| e.sort_key() <= last) {
                take += 1;
            }
            events = self.updates.drain(..take).collect();
            for group in by_message(rows) {
                let Some((row, chat)) = pick(&group) else {
                    let incomplete = group
                        .iter()
                        .all(|r| r.chat_guid.is_none() || r.chat_style.is_none());
                    let rowid = group[0].rowid;
                    if incomplete && rowid > self.newest - PENDING_WINDOW {
                        self.cursor.pending.insert(rowid);
                    }
                    continue;
                };
                self.cursor.raise(row);
                if let Some(event) = said(row, chat) {
                    events.push(event);
                }
            }
            self.next = end;
        }
        events.sort_by_key(MessageEvent::sort_key);
        if let Some(t) = self.through {
            events.retain(|e| e.sort_key() > (t.at, t.rowid));
        }
        Ok(Some(events))
    }

    /// Once every window was read: where the next scan resumes.
    pub fn cursor(&self) -> Option<&MessageCursor> {
        self.done.then_some(&self.cursor)
    }

    /// Where a scan resumes that was cut short after the events up to `key` (a
    /// [`MessageEvent::sort_key`]) were recorded, in order: this scan's rows are read again,
    /// to the same last ROWID, and only the events after `key` are given. Every event of
    /// one key must be recorded before this is stored.
    pub fn through(&self, key: (Timestamp, i64)) -> MessageCursor {
        MessageCursor {
            through: Some(Through {
                newest: self.newest,
                at: key.0,
                rowid: key.1,
            }),
            ..self.from.clone()
        }
    }

    /// The scan reads the database from its beginning for the first time (not a renumbered
    /// database read again): nothing of it can have been recorded before, except what a
    /// [`MessageWindows::through`] cursor it resumes from says.
    pub fn first_read(&self) -> bool {
        !self.restarted && self.from.after == 0
    }

    /// The database was renumbered since the cursor was made: the scan started over and may
    /// repeat events (same [`MessageEvent::id`]).
    pub fn restarted(&self) -> bool {
        self.restarted
    }

    /// Rows (new ones, and ones seen before that changed) the scan reads: an upper bound of
    /// its events, for progress reports.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl ChatDb {
    /// The message events after `cursor` (the whole history from [`MessageCursor::start`]),
    /// and the cursor to resume from: [`ChatDb::message_windows`] read to the end.
    pub fn scan_messages(&self, cursor: &MessageCursor) -> Result<MessageScan> {
        let mut windows = self.message_windows(cursor, WINDOW)?;
        let mut events = Vec::new();
        while let Some(mut window) = windows.next_window()? {
            events.append(&mut window);
        }
        Ok(MessageScan {
            events,
            cursor: windows.cursor.clone(),
            restarted: windows.restarted,
        })
    }

    /// The message events after `cursor`, to be read `window` rows at a time
    /// ([`MessageWindows`]). Which rows the scan covers, and their order, is read now in one
    /// read transaction (the rows seen before whose dates moved, and the new rows' keys);
    /// each window then reads its rows.
    pub fn message_windows(
        &self,
        cursor: &MessageCursor,
        window: usize,
    ) -> Result<MessageWindows<'_>> {
        let tx = self
            .conn
            .unchecked_transaction()
            .context("starting a read")?;
        let high_water = self.high_water_mark()?;
        let restarted =
            high_water < cursor.after || cursor.through.is_some_and(|t| high_water < t.newest);
        let mut from = if restarted {
            MessageCursor::start()
        } else {
            cursor.clone()
        };
        let through = from.through.take();
        let newest = match through {
            Some(t) => t.newest,
            None => {
                let newest: i64 = self
                    .conn
                    .query_row("SELECT coalesce(max(ROWID), 0) FROM message", [], |r| {
                        r.get(0)
                    })
                    .context("reading the newest message")?;
                newest.max(from.after)
            }
        };
        let mut next = MessageCursor {
            after: newest,
            edited: from.edited,
            retracted: from.retracted,
            read: from.read,
            seen: from.seen,
            pending: BTreeSet::new(),
            through: None,
        };
        let mut events = Vec::new();

        // Rows seen before whose dates moved. Read first, before the new rows raise the
        // marks.
        let window_start = (from.after - UPDATE_WINDOW).max(0);
        if from.after > 0 {
            let filter = format!(
                "m.ROWID > {window_start} AND m.ROWID <= {after} AND ({edited} > {e} OR {retracted} > {r} \
                 OR (m.is_from_me = 1 AND {read} > {d}) OR (m.is_from_me = 0 AND {read} > {s}))",
                after = from.after,
                edited = self.column("date_edited"),
                retracted = self.column("date_retracted"),
                read = self.column("date_read"),
                e = from.edited,
                r = from.retracted,
                d = from.read,
                s = from.seen,
            );
            let mut rows = Vec::new();
            self.message_rows(&filter, &mut |row| {
                rows.push(row);
                Ok(())
            })?;
            // My reads, by chat: what one scan finds read in a chat is one event.
            let mut reads: BTreeMap<Conversation, Vec<(i64, String, i64)>> = BTreeMap::new();
            for group in by_message(rows) {
                let Some((row, chat)) = pick(&group) else {
                    continue;
                };
                next.raise(row);
                if row.assoc_type != 0 {
                    continue;
                }
                if !row.from_me && row.date_read > from.seen {
                    reads.entry(chat.clone()).or_default().push((
                        row.date_read,
                        row.guid.clone(),
                        row.rowid,
                    ));
                }
                let base = |kind, raw_at: i64, actor: Party| MessageEvent {
                    guid: row.guid.clone(),
                    rowid: row.rowid,
                    chat: chat.clone(),
                    actor,
                    at: Timestamp::from_apple(raw_at),
                    kind,
                    raw_at,
                };
                if row.date_retracted > from.retracted {
                    events.push(base(
                        MessageEventKind::Unsent,
                        row.date_retracted,
                        row.actor(),
                    ));
                } else if row.date_edited > from.edited {
                    let kind = match row.text() {
                        Some(text) => MessageEventKind::Edited { text },
                        None => MessageEventKind::Unsent,
                    };
                    events.push(base(kind, row.date_edited, row.actor()));
                }
                if let Conversation::Direct(other) = &chat {
                    if row.from_me && row.date_read > from.read {
                        events.push(base(
                            MessageEventKind::Read,
                            row.date_read,
                            Party::Address(other.clone()),
                        ));
                    }
                }
            }
            for (chat, mut read) in reads {
                read.sort();
                let Some((raw_at, guid, _)) = read.last().cloned() else {
                    continue;
                };
                let rowid = read.iter().map(|r| r.2).max().unwrap_or_default();
                events.push(MessageEvent {
                    guid,
                    rowid,
                    chat,
                    actor: Party::Me,
                    at: Timestamp::from_apple(raw_at),
                    kind: MessageEventKind::MarkedRead {
                        messages: read
                            .into_iter()
                            .map(|(raw, guid, _)| (guid, Timestamp::from_apple(raw)))
                            .collect(),
                    },
                    raw_at,
                });
            }
        }
        events.sort_by_key(MessageEvent::sort_key);

        // The keys of the new rows, and of those still waiting for their chat.
        let pending = if from.pending.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = from.pending.iter().map(i64::to_string).collect();
            format!(" OR m.ROWID IN ({})", list.join(","))
        };
        let sql = format!(
            "SELECT m.ROWID, m.date FROM message m \
             WHERE ((m.ROWID > {} AND m.ROWID <= {newest}){pending}) AND m.item_type = 0",
            from.after
        );
        let mut keys = Vec::new();
        {
            let mut stmt = self.conn.prepare(&sql).context("reading messages")?;
            let mut rows = stmt.query([]).context("reading messages")?;
            while let Some(row) = rows.next().context("reading messages")? {
                let rowid: i64 = row.get(0).context("reading messages")?;
                let date: Option<i64> = row.get(1).context("reading messages")?;
                keys.push((Timestamp::from_apple(date.unwrap_or(0)), rowid));
            }
        }
        keys.sort_unstable();
        keys.shrink_to_fit();
        tx.commit().context("ending a read")?;
        Ok(MessageWindows {
            db: self,
            from,
            through,
            newest,
            total: keys.len() + events.len(),
            keys,
            next: 0,
            updates: events.into(),
            window: window.max(1),
            cursor: next,
            done: false,
            restarted,
        })
    }

    /// Every message event in the database, in import order.
    pub fn all_messages(&self) -> Result<Vec<MessageEvent>> {
        Ok(self.scan_messages(&MessageCursor::start())?.events)
    }

    fn column(&self, name: &str) -> String {
        format!(
            "coalesce({}, 0)",
            self.schema.col("message", "m", name, "0")
        )
    }

    fn high_water_mark(&self) -> Result<i64> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'message'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows | rusqlite::Error::SqliteFailure(..) => {
                    Ok(None)
                }
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

    /// Rows of `item_type` 0 matching `filter` (which inlines only integers), one per chat
    /// join, ordered by ROWID ([`by_message`] orders a message's joins by chat).
    ///
    /// Only by ROWID here: the range or `IN` search of `message` gives that order, where
    /// `ORDER BY m.ROWID, j.chat_id` had SQLite sort each message's rows (whole rows, text and
    /// `attributedBody` included) through its sorter: a sixth of a million-message first
    /// start's CPU, for messages that nearly all have one join (BENCHMARKS.md).
    fn message_rows(&self, filter: &str, each: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let s = &self.schema;
        let sql = format!(
            "SELECT m.ROWID, m.guid, {text}, {body}, {subject}, m.date, m.is_from_me, a.id, \
                    {assoc_type}, {assoc_guid}, {assoc_emoji}, {reply}, {effect}, \
                    {read}, {edited}, {retracted}, c.guid, {ident}, c.style, j.chat_id \
             FROM message m \
             LEFT JOIN chat_message_join j ON j.message_id = m.ROWID \
             LEFT JOIN chat c ON c.ROWID = j.chat_id \
             LEFT JOIN handle a ON a.ROWID = m.handle_id \
             WHERE {filter} AND m.item_type = 0 \
             ORDER BY m.ROWID",
            text = s.col("message", "m", "text", "NULL"),
            body = s.col("message", "m", "attributedBody", "NULL"),
            subject = s.col("message", "m", "subject", "NULL"),
            assoc_type = s.col("message", "m", "associated_message_type", "0"),
            assoc_guid = s.col("message", "m", "associated_message_guid", "NULL"),
            assoc_emoji = s.col("message", "m", "associated_message_emoji", "NULL"),
            reply = s.col("message", "m", "thread_originator_guid", "NULL"),
            effect = s.col("message", "m", "expressive_send_style_id", "NULL"),
            read = self.column("date_read"),
            edited = self.column("date_edited"),
            retracted = self.column("date_retracted"),
            ident = s.col("chat", "c", "chat_identifier", "NULL"),
        );
        let mut stmt = self.conn.prepare_cached(&sql).context("reading messages")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    rowid: r.get(0)?,
                    guid: r.get(1)?,
                    text: lossy_text(r, 2)?,
                    body: r.get(3)?,
                    subject: lossy_text(r, 4)?,
                    date: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    from_me: r.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0,
                    handle: lossy_text(r, 7)?,
                    assoc_type: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                    assoc_guid: lossy_text(r, 9)?,
                    assoc_emoji: lossy_text(r, 10)?,
                    reply_to: lossy_text(r, 11)?,
                    effect: lossy_text(r, 12)?,
                    date_read: r.get::<_, Option<i64>>(13)?.unwrap_or(0),
                    date_edited: r.get::<_, Option<i64>>(14)?.unwrap_or(0),
                    date_retracted: r.get::<_, Option<i64>>(15)?.unwrap_or(0),
                    chat_guid: r.get(16)?,
                    chat_identifier: r.get(17)?,
                    chat_style: r.get(18)?,
                    chat_id: r.get(19)?,
                })
            })
            .context("reading messages")?;
        for row in rows {
            each(row.context("reading messages")?)?;
        }
        Ok(())
    }
}

impl MessageCursor {
    /// Raises the date marks to a row's.
    fn raise(&mut self, row: &Row) {
        self.edited = self.edited.max(row.date_edited);
        self.retracted = self.retracted.max(row.date_retracted);
        if row.from_me {
            self.read = self.read.max(row.date_read);
        } else {
            self.seen = self.seen.max(row.date_read);
        }
    }
}

/// Rows grouped by message (they come ordered by ROWID), each message's rows ordered by chat
/// (`chat_message_join.chat_id`, no join first): [`pick`] takes the first that names a chat.
fn by_message(rows: Vec<Row>) -> Vec<Vec<Row>> {
    let mut out: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(last) if last[0].rowid == row.rowid => last.push(row),
            _ => out.push(vec![row]),
        }
    }
    for group in &mut out {
        if group.len() > 1 {
            group.sort_by_key(|row| row.chat_id);
        }
    }
    out
}

/// The row of a message's first group or direct chat, with that chat.
fn pick(rows: &[Row]) -> Option<(&Row, Conversation)> {
    rows.iter()
        .find_map(|row| row.conversation().map(|chat| (row, chat)))
}

/// What a new row says; `None` for rows that mean nothing here yet.
fn said(row: &Row, chat: Conversation) -> Option<MessageEvent> {
    let kind = if row.assoc_type != 0 {
        let (tapback, set) = tapback(row.assoc_type, row.assoc_emoji.as_deref())?;
        let target = target_guid(row.assoc_guid.as_deref()?).to_owned();
        MessageEventKind::Reaction {
            target,
            tapback,
            set,
        }
    } else {
        // An unsend on macOS 13 is an edit that leaves no text.
        let retracted = when(row.date_retracted);
        let text = row.text();
        let retracted_at = match (&text, retracted) {
            (_, Some(at)) => Some(at),
            (None, None) if row.date_edited > 0 => when(row.date_edited),
            (None, None) => return None,
            (Some(_), None) => None,
        };
        let read_at = match chat {
            Conversation::Direct(_) => when(row.date_read),
            Conversation::Group(_) if !row.from_me => when(row.date_read),
            Conversation::Group(_) => None,
        };
        MessageEventKind::Said {
            text: text.unwrap_or_default(),
            subject: row.subject.clone().filter(|s| !s.is_empty()),
            effect: row.effect.clone().filter(|s| !s.is_empty()),
            reply_to: row.reply_to.clone().filter(|s| !s.is_empty()),
            read_at,
            edited_at: when(row.date_edited).filter(|_| retracted_at.is_none()),
            retracted_at,
        }
    };
    Some(MessageEvent {
        guid: row.guid.clone(),
        rowid: row.rowid,
        chat,
        actor: row.actor(),
        at: Timestamp::from_apple(row.date),
        kind,
        raw_at: row.date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips() {
        let mut c = MessageCursor {
            after: 42,
            edited: 7,
            retracted: 0,
            read: 9,
            seen: 11,
            pending: BTreeSet::new(),
            through: None,
        };
        assert_eq!(c.to_string().parse::<MessageCursor>().unwrap(), c);
        c.pending.insert(40);
        c.pending.insert(41);
        assert_eq!(c.to_string(), "m2:42:7:0:9:11:40,41");
        assert_eq!(c.to_string().parse::<MessageCursor>().unwrap(), c);
        // An earlier version's cursor: no mark for my reads yet.
        c.seen = 0;
        assert_eq!("m1:42:7:0:9:40,41".parse::<MessageCursor>().unwrap(), c);
        // A scan cut short: where it got to.
        c.through = Some(Through {
            newest: 50,
            at: Timestamp::from_unix_nanos(-123),
            rowid: 44,
        });
        assert_eq!(c.to_string(), "m2:42:7:0:9:0:40,41@50:-123:44");
        assert_eq!(c.to_string().parse::<MessageCursor>().unwrap(), c);
        c.pending.clear();
        assert_eq!(c.to_string(), "m2:42:7:0:9:0@50:-123:44");
        assert_eq!(c.to_string().parse::<MessageCursor>().unwrap(), c);
        for bad in [
            "",
            "v1:3",
            "m1:1:2:3",
            "m1:a:0:0:0",
            "m1:5:0:0:0:9",
            "m2:1:2:3:4",
            "m2:5:0:0:0:0:9",
            "m2:5:0:0:0:0@4:1:1",
            "m2:5:0:0:0:0@9:1",
            "m2:5:0:0:0:0@9:1:0",
            "m2:5:0:0:0:0@9:1:2:3",
        ] {
            assert!(bad.parse::<MessageCursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tapback_types_and_targets() {
        assert_eq!(tapback(2000, None), Some((Tapback::Love, true)));
        assert_eq!(tapback(3005, None), Some((Tapback::Question, false)));
        assert_eq!(
            tapback(2006, Some("🔥")),
            Some((Tapback::Emoji("🔥".into()), true))
        );
        assert_eq!(tapback(2006, None), None);
        assert_eq!(tapback(1000, None), None);
        assert_eq!(tapback(2007, None), None);
        assert_eq!(target_guid("p:0/ABC-1"), "ABC-1");
        assert_eq!(target_guid("p:12/ABC-1"), "ABC-1");
        assert_eq!(target_guid("bp:ABC-1"), "ABC-1");
        assert_eq!(target_guid("ABC-1"), "ABC-1");
    }
}

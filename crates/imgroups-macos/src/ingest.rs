//! From chat.db rows to the log: one thread owns the read-only connection and the watcher,
//! scans after every notification (and on a periodic re-scan, the safety net for lost
//! notifications), and records each scan as one batch — the changes, the groups first seen,
//! and the chat.db cursor, in one store transaction, so a restart resumes exactly after what
//! was recorded and every row enters the log once (`message.guid` is the dedupe key).
//!
//! Message rows (`imgroups_chatdb`'s conversations) are read in the same pass and recorded
//! through `Engine::record_history` under their own cursor and ids ([`MESSAGES_SOURCE`]),
//! interleaved with the group changes by date: before each group change, the messages dated
//! before it, so the log follows chat.db's dates across both kinds. Messages are read a window
//! of [`WINDOW`] rows at a time, in date order ([`MessageWindows`]): a first start on a long
//! history holds the history's sort keys (16 bytes a message) and one window, not every
//! decoded row.
//!
//! A scan with many changes (the first start's import of a long history) is recorded in
//! chunks of [`CHUNK`] changes and messages growing to [`MAX_CHUNK`] ([`Pending::chunk`]),
//! one store transaction each, still in date order, so that no transaction (and nothing the
//! store keeps until its commit) grows with the history. A chunk gathers consecutive parts of both kinds ([`Pending`]): a history whose
//! messages fall between most of its group changes is cut into many small parts, and one
//! transaction (one durable commit to wait for) per part made a first start on a million
//! messages take minutes. A part of messages stores where a restart resumes: after its last
//! message ([`MessageWindows::through`]), the scan's last part the scan's new cursor; a
//! restart after a crash between chunks reads the scan again, to the same end, and records
//! only what comes after. A part of group changes stores the old cursor but in the scan's
//! last part (a chunk is not a ROWID prefix: date order is not ROWID order), and a restart
//! skips what was recorded by its id (kept in the same transaction as the events). Exactly
//! once either way. On the first start (chat.db read from its beginning) a message said is
//! recorded without its id ([`ObservedMessages::first_read`]): the cursor alone makes it
//! exactly-once, and a long first start does one B-tree insert per message less. Such a
//! first start on a long history is also a bulk import ([`BulkImport`]): its first
//! transaction lets the store drop what only listings read (the SQLite store's indexes of
//! messages by chat and unread), its last builds that again in one pass; a crash in between
//! leaves it to the store's next open.
//!
//! A group the store does not know yet is created, before anything else of the scan, in the
//! state it had *before* the scan's changes (its current members, name and icon, rewound
//! through those changes), so that on the first start the whole history is recorded as
//! events, in date order; afterwards the store's state is set to chat.db's current one
//! (chat.db is the truth).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgroups_chatdb::{
    Change, ChangeKind, ChatDb, Conversation, Cursor, Icon, MessageCursor, MessageEventKind,
    MessageWindows, Party, Tapback, Wake, Watcher, WINDOW,
};
use imgroups_core::error::{excerpt, MAX_ECHO_CHARS};
use imgroups_core::port::store;
use imgroups_core::text;
use imgroups_core::{Address, ChatGuid, Engine, Mutation, Observed, Timestamp};
use imgroups_core::{
    BulkImport, MessageEvent, ObservedBatch, ObservedGroup, ObservedMessage, ObservedMessages,
    ObservedPart,
};

use crate::observer::Waiters;

/// The source name under which the cursor and the message GUIDs are kept.
pub const SOURCE: &str = "chatdb";

/// The source name of message rows: their cursor and their event ids.
pub const MESSAGES_SOURCE: &str = "chatdb.messages";

/// Changes and messages recorded in a scan's first store transaction (see the module doc and
/// [`Pending::chunk`]).
const CHUNK: usize = 5_000;

/// The most recorded per store transaction. Its dirty pages must stay within the store
/// writer's page cache (64 MiB): about 400 bytes of new rows per message, and the pages of
/// the indexes each message touches. The server holds about two transactions' items (one
/// recorded, one read), so this also sets the first start's memory: 40,000 items, 225 MiB
/// peak on a million messages; 80,000 gained about 1 s of CPU more for 310 MiB (BENCHMARKS.md).
const MAX_CHUNK: usize = 40_000;

/// Largest icon file read from the attachments folder.
const MAX_ICON_BYTES: u64 = 10 * 1024 * 1024;

/// What the ingest thread needs.
pub(crate) struct Ingest {
    pub(crate) engine: Arc<Engine>,
    pub(crate) db_path: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) me: Address,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) rescan: Duration,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) stop: Arc<AtomicBool>,
    /// The cursor this thread last saved, so a wake reads only chat.db; `None`: read the
    /// store's (at start, and after a failed scan).
    pub(crate) saved: std::cell::RefCell<Option<Cursor>>,
    /// The group chats' [`ChatDb::group_fingerprint`] at the last recorded scan; `None`: look
    /// for new groups (at start).
    pub(crate) chats_seen: std::cell::Cell<Option<(i64, i64)>>,
    /// As `saved`, for message rows.
    pub(crate) messages_saved: std::cell::RefCell<Option<MessageCursor>>,
    /// What the current scan has read and not recorded yet.
    pub(crate) pending: std::cell::RefCell<Pending>,
    /// A long import's listing indexes were dropped and not built again yet
    /// ([`BulkImport`]): the next scan's last transaction builds them.
    pub(crate) bulk: std::cell::Cell<bool>,
}

/// Parts of a scan read and waiting to be recorded in one transaction, with what to tell the
/// waiters once they are, and how many of each kind were recorded so far in the scan.
#[derive(Default)]
pub(crate) struct Pending {
    parts: Vec<ObservedPart>,
    items: usize,
    /// Transactions handed to the store so far in the scan (see [`Pending::chunk`]).
    commits: u32,
    /// The scan reads a long history for the first time: its first transaction drops what
    /// only listings read, its last builds it again ([`BulkImport`]).
    long: bool,
    /// The next transaction is the scan's last.
    finishing: bool,
    changes_recorded: usize,
    messages_recorded: usize,
    /// Items (changes and messages) the scan read, and of those handed to the store so far,
    /// for the progress lines of a long first start.
    total: usize,
    done: usize,
    reported: Option<Instant>,
    /// The transaction handed to the store and not waited for yet.
    in_flight: Option<InFlight>,
}

/// A transaction of [`Ingest::commit`] the store is recording while the next is read. Its
/// parts come back once recorded, to tell the waiters what they held.
struct InFlight {
    recorded: tokio::task::JoinHandle<imgroups_core::Result<Vec<(usize, ObservedPart)>>>,
    items: usize,
    /// It ends a long import ([`BulkImport::end`]).
    ends: bool,
}

impl Pending {
    /// Items to gather for the next transaction: [`CHUNK`] for the first, twice as many for
    /// each next one, up to [`MAX_CHUNK`]. A scan of a few rows (the usual one) is one small
    /// transaction; a first start on a long history commits far less often, and each commit
    /// writes the pages it changed to the WAL again (the right edges of every index, the
    /// leaves of each chat's run in the per-chat indexes), so fewer, larger commits write
    /// much less (BENCHMARKS.md, "The Mac's first start in fewer, larger transactions"). The
    /// first stays small so that the first progress line (and a restart's first resumable
    /// point) comes soon.
    fn chunk(&self) -> usize {
        // Never below `CHUNK` (a part of no items would hold the messages back), and no
        // shift that overflows however long the scan.
        (CHUNK << self.commits.min(8)).clamp(CHUNK, MAX_CHUNK)
    }
}

/// How often a long scan (a first start) logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How one scan went, for the caller's first-start progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imported {
    /// Group-change rows read.
    pub changes: usize,
    /// Of those, recorded now (not recorded before).
    pub recorded: usize,
    pub groups: usize,
    /// Message events (messages, tapbacks, edits, unsends, receipts) read.
    pub messages: usize,
    /// Of those, recorded now.
    pub messages_recorded: usize,
    pub elapsed: Duration,
}

impl Ingest {
    /// Opens chat.db and records everything up to now (the first start's import, or what
    /// happened while the server was down). Errors if chat.db cannot be read.
    pub(crate) fn catch_up(&self, db: &ChatDb) -> Result<Imported, String> {
        let started = Instant::now();
        let mut imported = self.scan_once(db)?;
        imported.elapsed = started.elapsed();
        Ok(imported)
    }

    /// Watches and records until `stop`; runs on its own thread.
    pub(crate) fn run(self, mut db: ChatDb) {
        let mut watcher = match Watcher::new(&self.db_path, self.rescan) {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                tracing::warn!(
                    path = %err.path.display(),
                    reason = %err.reason,
                    every_ms = self.rescan.as_millis() as u64,
                    "cannot watch chat.db; re-scanning periodically only"
                );
                None
            }
        };
        while !self.stop.load(Ordering::Acquire) {
            let wake = match &mut watcher {
                Some(watcher) => watcher.wait_timeout(Duration::from_millis(500)),
                None => {
                    std::thread::sleep(self.rescan.min(Duration::from_millis(500)));
                    Some(Wake::Rescan)
                }
            };
            if wake.is_none() {
                continue;
            }
            if db.wal_replaced() {
                // A WAL deleted and created again: the old connection would read the deleted
                // file forever and miss every new row (see `ChatDb::wal_replaced`).
                match db.reopen() {
                    Ok(fresh) => db = fresh,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot reopen chat.db after its WAL was replaced; trying again on the next change");
                        continue;
                    }
                }
            }
            if let Err(err) = self.scan_once(&db) {
                tracing::warn!(error = %err, "cannot read chat.db; trying again on the next change");
            }
        }
    }

    /// Group changes and messages, recorded in one date order (see [`Ingest::record_scan`]).
    fn scan_once(&self, db: &ChatDb) -> Result<Imported, String> {
        self.pending.replace(Pending::default());
        let scanned = self.message_cursor().and_then(|from| {
            let mut messages = Messages::open(db, &from)?;
            {
                let mut pending = self.pending.borrow_mut();
                pending.total = messages.windows.len();
                // A first start on a long history (or its resumption after a crash).
                pending.long = messages.windows.first_read() && pending.total > 2 * CHUNK;
            }
            let mut imported = self.record_scan(db, &mut messages)?;
            messages.flush(self, None)?;
            self.pending.borrow_mut().finishing = true;
            self.commit()?;
            self.settle()?;
            let to = messages
                .windows
                .cursor()
                .cloned()
                .ok_or("chat.db's messages were not read to the end")?;
            self.messages_saved.replace(Some(to));
            let pending = self.pending.take();
            imported.recorded = pending.changes_recorded;
            imported.messages = messages.read;
            imported.messages_recorded = pending.messages_recorded;
            Ok(imported)
        });
        if scanned.is_err() {
            // What is in flight may still be recorded: the next scan reads the store's
            // cursors after it.
            let _ = self.settle();
            self.pending.replace(Pending::default());
            self.saved.replace(None);
            self.chats_seen.set(None);
            self.messages_saved.replace(None);
        }
        scanned
    }

    fn message_cursor(&self) -> Result<MessageCursor, String> {
        if let Some(cursor) = self.messages_saved.borrow().as_ref() {
            return Ok(cursor.clone());
        }
        let saved = self
            .runtime
            .block_on(store::read(&**self.engine.store(), |r| {
                r.observer_cursor(MESSAGES_SOURCE)
            }))
            .map_err(|e| e.to_string())?;
        match saved {
            None => Ok(MessageCursor::start()),
            Some(text) => text
                .parse()
                .map_err(|e: imgroups_chatdb::Error| e.to_string()),
        }
    }

    /// A message event as the engine takes it; `None` when its chat or actor cannot be named
    /// (a handle that is no address, a direct chat with a short code). Taken by value: its
    /// texts move over rather than being copied (a first start reads a million).
    fn observed_message(&self, event: imgroups_chatdb::MessageEvent) -> Option<ObservedMessage> {
        let chat = match &event.chat {
            Conversation::Group(guid) => chat_guid(guid),
            Conversation::Direct(handle) => ChatGuid::direct(&handle_address(handle)?),
        };
        let actor = self.party(&event.actor)?;
        let target = event.guid;
        let kind = match event.kind {
            MessageEventKind::Said {
                text,
                subject,
                effect,
                reply_to,
                read_at,
                edited_at,
                retracted_at,
            } => MessageEvent::Received {
                guid: target,
                text,
                subject,
                effect_id: effect,
                reply_to,
                read_at: read_at.map(core_time),
                edited_at: edited_at.map(core_time),
                retracted_at: retracted_at.map(core_time),
            },
            MessageEventKind::Reaction {
                target,
                tapback,
                set,
            } => MessageEvent::Reaction {
                target,
                reaction: reaction(tapback),
                set,
            },
            MessageEventKind::Edited { text } => MessageEvent::Edited { target, text },
            MessageEventKind::Unsent => MessageEvent::Unsent { target },
            MessageEventKind::Read => MessageEvent::Read { target },
            MessageEventKind::MarkedRead { messages } => MessageEvent::MarkedRead {
                read: messages
                    .into_iter()
                    .map(|(guid, at)| (guid, core_time(at)))
                    .collect(),
            },
        };
        Some(ObservedMessage {
            me: self.me.clone(),
            chat,
            actor,
            at: core_time(event.at),
            event: kind,
        })
    }

    /// Records the group changes after the saved cursor, and before each the message events
    /// dated before it, so that the log follows chat.db's dates across both kinds (the first
    /// start's history included). Consecutive group changes go together in parts of at most
    /// [`CHUNK`]; groups first seen are created before anything (in their state before the
    /// scan's changes), so a message in them is never recorded before its chat exists, and
    /// settled after the last change.
    fn record_scan(&self, db: &ChatDb, messages: &mut Messages<'_>) -> Result<Imported, String> {
        let cursor = self.cursor()?;
        let scan = db.scan(&cursor).map_err(|e| e.to_string())?;
        // New `chat` rows (a group created, or one first seen) are looked for when the group
        // chats' count or highest ROWID moved: one cheap query per scan.
        let chats = db.group_fingerprint().map_err(|e| e.to_string())?;
        let discover = self.chats_seen.get() != Some(chats);
        if scan.changes.is_empty() && scan.cursor == cursor && !discover {
            self.saved.replace(Some(scan.cursor));
            return Ok(Imported::default());
        }
        let changes = scan.changes.len();
        self.pending.borrow_mut().total += changes;
        let started = Instant::now();
        let (first, last) = self.batches(db, &scan.changes, &cursor, &scan.cursor, discover)?;
        let groups = first.new_groups.len();
        let planned = started.elapsed();
        self.submit(ObservedPart::Changes(first))?;
        // Changes in between store `cursor` again (see `batches`).
        let part = |changes| {
            ObservedPart::Changes(ObservedBatch {
                source: SOURCE.to_owned(),
                cursor: cursor.to_string(),
                changes,
                ..ObservedBatch::default()
            })
        };
        let mut run = Vec::new();
        for change in &scan.changes {
            let key = change.sort_key();
            if messages.any_before(key)? {
                if !run.is_empty() {
                    self.submit(part(std::mem::take(&mut run)))?;
                }
                messages.flush(self, Some(key))?;
            }
            if let Some(observed) = self.observed(change) {
                run.push((change.guid.clone(), observed));
            }
            if run.len() >= self.pending.borrow().chunk() {
                self.submit(part(std::mem::take(&mut run)))?;
            }
        }
        if !run.is_empty() {
            self.submit(part(run))?;
        }
        self.submit(ObservedPart::Changes(last))?;
        self.saved.replace(Some(scan.cursor));
        self.chats_seen.set(Some(chats));
        if changes > 0 {
            tracing::debug!(
                changes,
                plan_ms = planned.as_millis() as u64,
                record_ms = (started.elapsed() - planned).as_millis() as u64,
                "chat.db changes read and recorded"
            );
        }
        Ok(Imported {
            changes,
            groups,
            elapsed: Duration::ZERO,
            ..Imported::default()
        })
    }

    /// Adds a part to the pending ones; records them all once they hold
    /// [`Pending::chunk`] items.
    fn submit(&self, part: ObservedPart) -> Result<(), String> {
        let full = {
            let mut pending = self.pending.borrow_mut();
            pending.items += part.len();
            pending.parts.push(part);
            pending.items >= pending.chunk()
        };
        if full {
            self.commit()?;
        }
        Ok(())
    }

    /// Hands the pending parts to the store, to be recorded in one transaction, in order,
    /// once the one before is: this thread reads chat.db for the next meanwhile, so reading
    /// and the store's writer work at once. Only one is in flight: one that fails stops the
    /// scan before anything after it is handed over ([`Ingest::settle`]).
    fn commit(&self) -> Result<(), String> {
        let (parts, items, bulk) = {
            let mut pending = self.pending.borrow_mut();
            let begin = pending.long && !self.bulk.get();
            let bulk = BulkImport {
                begin,
                end: pending.finishing && (begin || self.bulk.get()),
            };
            (
                std::mem::take(&mut pending.parts),
                std::mem::take(&mut pending.items),
                bulk,
            )
        };
        if parts.is_empty() && !bulk.end {
            return Ok(());
        }
        self.settle()?;
        let engine = self.engine.clone();
        let recorded = self
            .runtime
            .spawn(async move { engine.record_import(parts, bulk).await });
        if bulk.begin {
            self.bulk.set(true);
        }
        let mut pending = self.pending.borrow_mut();
        pending.commits += 1;
        pending.in_flight = Some(InFlight {
            recorded,
            items,
            ends: bulk.end,
        });
        Ok(())
    }

    /// Waits for the transaction in flight, if any, then tells its waiters.
    fn settle(&self) -> Result<(), String> {
        let Some(InFlight {
            recorded,
            items,
            ends,
        }) = self.pending.borrow_mut().in_flight.take()
        else {
            return Ok(());
        };
        let recorded = self
            .runtime
            .block_on(recorded)
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if ends {
            self.bulk.set(false);
        }
        let mut pending = self.pending.borrow_mut();
        pending.done += items;
        let now = Instant::now();
        if pending.total > 2 * CHUNK && pending.reported.is_none_or(|at| now - at >= PROGRESS_EVERY)
        {
            tracing::info!(
                done = pending.done,
                of = pending.total,
                "recording chat.db's history"
            );
            pending.reported = Some(now);
        }
        for (count, part) in recorded {
            match part {
                ObservedPart::Changes(batch) => {
                    pending.changes_recorded += count;
                    let observed: Vec<Observed> =
                        batch.changes.into_iter().map(|(_, o)| o).collect();
                    self.waiters.observed(&observed);
                }
                ObservedPart::Messages(batch) => {
                    pending.messages_recorded += count;
                    let observed: Vec<ObservedMessage> =
                        batch.items.into_iter().map(|(_, o)| o).collect();
                    self.waiters.observed_messages(&observed);
                }
            }
        }
        Ok(())
    }

    fn cursor(&self) -> Result<Cursor, String> {
        if let Some(cursor) = self.saved.borrow().as_ref() {
            return Ok(cursor.clone());
        }
        let saved = self
            .runtime
            .block_on(store::read(&**self.engine.store(), |r| {
                r.observer_cursor(SOURCE)
            }))
            .map_err(|e| e.to_string())?;
        match saved {
            None => Ok(Cursor::start()),
            Some(text) => text
                .parse()
                .map_err(|e: imgroups_chatdb::Error| e.to_string()),
        }
    }

    /// Which of these group identifiers the store has.
    fn known(&self, identifiers: Vec<String>) -> Result<HashSet<String>, String> {
        self.runtime
            .block_on(store::read(&**self.engine.store(), move |r| {
                let mut known = HashSet::new();
                for identifier in identifiers {
                    if r.group(&identifier)?.is_some() {
                        known.insert(identifier);
                    }
                }
                Ok(known)
            }))
            .map_err(|e| e.to_string())
    }

    /// The first and the last part of the scan's changes, without the changes themselves
    /// (the caller puts them between, in date order): a group first seen is created in the
    /// first, in the state it had before all of the scan's changes to it, and settled in the
    /// last, which alone stores `next` (every other part stores `from` again: changes are
    /// recorded in date order, not ROWID order, so only the whole scan moves the cursor; a
    /// crash in between reads the scan again and skips what was recorded by its id).
    ///
    /// With `discover`, every group chat of chat.db the store does not have yet is created
    /// too, changes or not: Messages writes no group-change row for a group's first members,
    /// so a group with only text messages is known from the `chat` table alone.
    fn batches(
        &self,
        db: &ChatDb,
        changes: &[Change],
        from: &Cursor,
        next: &Cursor,
        discover: bool,
    ) -> Result<(ObservedBatch, ObservedBatch), String> {
        let mut by_chat: BTreeMap<String, Vec<(usize, &Change)>> = BTreeMap::new();
        for (i, change) in changes.iter().enumerate() {
            by_chat
                .entry(change.chat.identifier().to_owned())
                .or_default()
                .push((i, change));
        }
        // Every group chat read once for all new groups: looking each up on its own re-reads
        // all of them every time (quadratic in the groups of a first start).
        let mut groups: Option<BTreeMap<String, imgroups_chatdb::Group>> = None;
        let mut candidates: Vec<String> = by_chat.keys().cloned().collect();
        if discover {
            let all = db.groups().map_err(|e| e.to_string())?;
            let all: BTreeMap<String, imgroups_chatdb::Group> = all
                .into_iter()
                .map(|g| (g.guid.identifier().to_owned(), g))
                .collect();
            candidates.extend(all.keys().filter(|k| !by_chat.contains_key(*k)).cloned());
            groups = Some(all);
        }
        let known = self.known(candidates.clone())?;
        let mut first = ObservedBatch {
            source: SOURCE.to_owned(),
            cursor: from.to_string(),
            ..ObservedBatch::default()
        };
        let mut last = ObservedBatch {
            source: SOURCE.to_owned(),
            cursor: next.to_string(),
            ..ObservedBatch::default()
        };
        for identifier in &candidates {
            if known.contains(identifier) {
                continue;
            }
            if groups.is_none() {
                let all = db.groups().map_err(|e| e.to_string())?;
                groups = Some(
                    all.into_iter()
                        .map(|g| (g.guid.identifier().to_owned(), g))
                        .collect(),
                );
            }
            let Some(group) = groups.as_ref().and_then(|g| g.get(identifier)) else {
                continue;
            };
            let indexed = by_chat.get(identifier).map(Vec::as_slice).unwrap_or(&[]);
            let chat_changes: Vec<&Change> = indexed.iter().map(|(_, c)| *c).collect();
            let now = self.snapshot(group, &chat_changes);
            first
                .new_groups
                .push(rewind(now.clone(), &chat_changes, &self.me));
            last.settle.push(now);
        }
        Ok((first, last))
    }

    /// The group as chat.db has it now. The account counts as a member unless its last
    /// membership change in `changes` took it out.
    fn snapshot(&self, group: &imgroups_chatdb::Group, changes: &[&Change]) -> ObservedGroup {
        let mut members: Vec<Address> = group
            .participants
            .iter()
            .filter_map(|p| handle_address(p))
            .filter(|a| *a != self.me)
            .collect();
        let gone = changes.iter().rev().find_map(|c| match &c.kind {
            ChangeKind::Left if c.actor == Party::Me => Some(true),
            ChangeKind::ParticipantRemoved { target: Party::Me } => Some(true),
            ChangeKind::ParticipantAdded { target: Party::Me } => Some(false),
            _ => None,
        });
        if gone != Some(true) {
            members.insert(0, self.me.clone());
        }
        ObservedGroup {
            chat: chat_guid(&group.guid),
            group_id: group.guid.identifier().to_owned(),
            display_name: group
                .display_name
                .as_deref()
                .map(observed_name)
                .filter(|n| !n.is_empty()),
            members,
            icon: group.icon.as_ref().and_then(|icon| self.icon_bytes(icon)),
        }
    }

    fn party(&self, party: &Party) -> Option<Address> {
        address_of(party, &self.me)
    }

    /// The change as the engine takes it; `None` for rows that mean nothing to the log
    /// (unrecognised actions, unknown handles).
    fn observed(&self, change: &Change) -> Option<Observed> {
        let actor = self.party(&change.actor);
        let mutation = match &change.kind {
            ChangeKind::ParticipantAdded { target } => {
                Mutation::AddParticipants(vec![self.party(target)?])
            }
            ChangeKind::ParticipantRemoved { target } => {
                Mutation::RemoveParticipants(vec![self.party(target)?])
            }
            ChangeKind::Renamed { name } => {
                Mutation::SetDisplayName(observed_name(name.as_deref().unwrap_or_default()))
            }
            ChangeKind::Left => Mutation::Leave,
            ChangeKind::IconSet { icon } => {
                let (data, mime) = icon
                    .as_ref()
                    .and_then(|icon| self.icon_bytes(icon))
                    .unwrap_or_default();
                // A photo whose file is gone (not downloaded, cleaned up) is still a change:
                // its hash is the message's, so each such change differs from the last.
                let hash = {
                    use sha2::Digest;
                    let seed: &[u8] = if data.is_empty() {
                        change.guid.as_bytes()
                    } else {
                        &data
                    };
                    sha2::Sha256::digest(seed).to_vec()
                };
                Mutation::SetIcon { data, mime, hash }
            }
            ChangeKind::IconRemoved => Mutation::RemoveIcon,
            ChangeKind::Unrecognised { .. } => return None,
        };
        let actor = actor?;
        Some(Observed {
            chat: chat_guid(&change.chat),
            actor,
            occurred_at: Some(core_time(change.occurred_at)),
            mutation,
        })
    }

    /// An icon file's bytes and type, if it is there and not absurdly large.
    fn icon_bytes(&self, icon: &Icon) -> Option<(Vec<u8>, String)> {
        let path = icon.path.as_ref()?;
        let path = if path.is_absolute() {
            path.clone()
        } else {
            self.home.join(path)
        };
        let size = std::fs::metadata(&path).ok()?.len();
        if size > MAX_ICON_BYTES {
            tracing::warn!(path = %path.display(), size, "group photo too large; not imported");
            return None;
        }
        let data = std::fs::read(&path).ok()?;
        // The type from the bytes, as for an uploaded icon; else what chat.db says.
        let mime = match imgroups_core::image::sniff(&data) {
            Ok(kind) => kind.mime().to_owned(),
            Err(_) => icon
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
        };
        Some((data, mime))
    }
}

/// A group name from chat.db (`chat.display_name`, a rename's `message.group_title`) as it is
/// stored and served: the change is kept — it happened — but the name is what the input
/// policy makes of it ([`text::DISPLAY_NAME`]'s `sanitise`: controls replaced, bidirectional
/// overrides, format and tag characters removed, stacked marks thinned, cut to 256
/// characters); a name with nothing visible is no name (empty). A name the API would accept
/// comes back unchanged, so a rename made through the API and read back from chat.db is the
/// same name.
fn observed_name(raw: &str) -> String {
    let name = text::DISPLAY_NAME.sanitise(raw);
    if name != raw.trim() {
        tracing::warn!(
            raw = %excerpt(&raw.escape_debug().to_string(), MAX_ECHO_CHARS),
            stored = %name.escape_debug(),
            "a group name from chat.db breaks the input policy; stored sanitised"
        );
    }
    name.into_owned()
}

/// A party's address, `me` standing for [`Party::Me`]; `None` for an unknown handle or one
/// that is no address.
fn address_of(party: &Party, me: &Address) -> Option<Address> {
    match party {
        Party::Me => Some(me.clone()),
        Party::Address(address) => handle_address(address),
        Party::Unknown => None,
    }
}

/// A `handle.id` as an address. E-mail addresses and E.164 numbers are normalised as the API
/// does; other handles Messages keeps — short codes (`12345`), SMS numbers without a country
/// (`5551234567`), business ids — are kept as they are rather than dropped, so member lists
/// stay complete. The API cannot name them (its addresses are e-mails and E.164 numbers), so
/// they can be read but not added or removed. An id that is empty, longer than 512 bytes, or
/// holds anything but visible characters (white space, control, format, zero-width, tag or
/// combining characters: [`text::is_inert_identifier`]) is left out, not altered: an id is
/// compared, and a changed one would name someone else.
pub(crate) fn handle_address(id: &str) -> Option<Address> {
    if let Ok(address) = Address::parse(id) {
        return Some(address);
    }
    let id = id.trim();
    if !text::is_inert_identifier(id) {
        tracing::warn!(
            handle = %excerpt(&id.escape_debug().to_string(), MAX_ECHO_CHARS),
            "a chat.db handle that is no address; left out"
        );
        return None;
    }
    Some(Address::from_trusted(id.to_owned()))
}

/// A scan's message events, read a window at a time ([`MessageWindows`]) and recorded in
/// date order between the group changes.
struct Messages<'db> {
    windows: MessageWindows<'db>,
    /// The current window's events not recorded yet.
    window: VecDeque<imgroups_chatdb::MessageEvent>,
    /// Events read so far.
    read: usize,
    /// The cursor the scan started from.
    from: MessageCursor,
    /// A part was handed over in this scan.
    submitted: bool,
    /// The part with the scan's new cursor was handed over.
    finished: bool,
}

impl<'db> Messages<'db> {
    fn open(db: &'db ChatDb, from: &MessageCursor) -> Result<Messages<'db>, String> {
        let windows = db
            .message_windows(from, WINDOW)
            .map_err(|e| e.to_string())?;
        Ok(Messages {
            windows,
            window: VecDeque::new(),
            read: 0,
            from: from.clone(),
            submitted: false,
            finished: false,
        })
    }

    /// The next event, reading the next window when this one is used up; `None` once all
    /// are read.
    fn front(&mut self) -> Result<Option<&imgroups_chatdb::MessageEvent>, String> {
        while self.window.is_empty() {
            match self.windows.next_window().map_err(|e| e.to_string())? {
                Some(events) => {
                    self.read += events.len();
                    self.window = events.into();
                }
                None => return Ok(None),
            }
        }
        Ok(self.window.front())
    }

    /// Whether an event not recorded yet is dated before `key`.
    fn any_before(&mut self, key: (imgroups_chatdb::Timestamp, i64)) -> Result<bool, String> {
        Ok(self.front()?.is_some_and(|e| e.sort_key() < key))
    }

    /// Hands the events dated before `until` (all with `None`) to [`Ingest::submit`], in
    /// parts of at most about [`CHUNK`]. Each part stores where a restart resumes: after its
    /// last event ([`MessageWindows::through`]; a part never ends between two events of one
    /// date and row), and the part that takes the last event the scan's new cursor.
    fn flush(
        &mut self,
        ingest: &Ingest,
        until: Option<(imgroups_chatdb::Timestamp, i64)>,
    ) -> Result<(), String> {
        let first_read = self.windows.first_read();
        while !self.finished {
            let mut items = Vec::new();
            let mut last_key = None;
            let mut held = false;
            while let Some(event) = self.front()? {
                let key = event.sort_key();
                if until.is_some_and(|until| key >= until) {
                    held = true;
                    break;
                }
                if items.len() >= ingest.pending.borrow().chunk() && last_key != Some(key) {
                    break;
                }
                let Some(event) = self.window.pop_front() else {
                    break;
                };
                last_key = Some(key);
                let id = event.id();
                if let Some(observed) = ingest.observed_message(event) {
                    items.push((id, observed));
                }
            }
            let cursor = match (self.windows.cursor(), last_key) {
                (Some(to), _) => {
                    self.finished = true;
                    // Nothing new and nothing moved: no write.
                    if last_key.is_none() && !self.submitted && *to == self.from {
                        return Ok(());
                    }
                    to.clone()
                }
                (None, Some(key)) => self.windows.through(key),
                (None, None) => return Ok(()),
            };
            self.submitted = true;
            ingest.submit(ObservedPart::Messages(ObservedMessages {
                source: MESSAGES_SOURCE.to_owned(),
                cursor: cursor.to_string(),
                items,
                first_read,
            }))?;
            if held {
                break;
            }
        }
        Ok(())
    }
}

fn core_time(t: imgroups_chatdb::Timestamp) -> Timestamp {
    Timestamp(t.unix_nanos())
}

fn reaction(tapback: Tapback) -> imgroups_core::model::Reaction {
    use imgroups_core::model::Reaction;
    match tapback {
        Tapback::Love => Reaction::Love,
        Tapback::Like => Reaction::Like,
        Tapback::Dislike => Reaction::Dislike,
        Tapback::Laugh => Reaction::Laugh,
        Tapback::Emphasize => Reaction::Emphasize,
        Tapback::Question => Reaction::Question,
        Tapback::Emoji(emoji) => Reaction::Emoji(emoji),
    }
}

fn chat_guid(guid: &imgroups_chatdb::ChatGuid) -> ChatGuid {
    ChatGuid::group(guid.identifier())
}

/// `now` as it was before `changes` (oldest first): each change undone, newest first. A name
/// or an icon changed in `changes` was, before them, unknown: none.
fn rewind(mut group: ObservedGroup, changes: &[&Change], me: &Address) -> ObservedGroup {
    let party = |p: &Party| address_of(p, me);
    for change in changes.iter().rev() {
        match &change.kind {
            ChangeKind::ParticipantAdded { target } => {
                if let Some(target) = party(target) {
                    group.members.retain(|m| *m != target);
                }
            }
            ChangeKind::ParticipantRemoved { target } => {
                if let Some(target) = party(target) {
                    if !group.members.contains(&target) {
                        group.members.push(target);
                    }
                }
            }
            ChangeKind::Left => {
                if let Some(actor) = party(&change.actor) {
                    if !group.members.contains(&actor) {
                        group.members.push(actor);
                    }
                }
            }
            ChangeKind::Renamed { .. } => group.display_name = None,
            ChangeKind::IconSet { .. } | ChangeKind::IconRemoved => group.icon = None,
            ChangeKind::Unrecognised { .. } => {}
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first transaction is small, each next one twice as large up to the cap, and no
    /// number of transactions makes it smaller again: a chunk of 0 (a shift that overflowed)
    /// would cut parts of no messages and hold every message back behind the group changes.
    #[test]
    fn transactions_grow_to_the_cap_and_stay_there() {
        let mut pending = Pending::default();
        let mut sizes = Vec::new();
        for commits in 0..200 {
            pending.commits = commits;
            sizes.push(pending.chunk());
        }
        assert_eq!(&sizes[..5], &[5_000, 10_000, 20_000, 40_000, 40_000]);
        assert!(sizes.iter().all(|&s| (CHUNK..=MAX_CHUNK).contains(&s)));
        pending.commits = u32::MAX;
        assert_eq!(pending.chunk(), MAX_CHUNK);
    }
}

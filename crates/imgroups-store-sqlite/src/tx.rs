//! The SQL: the engine's transaction port ([`Tx`], [`Reader`]) over one SQLite connection,
//! idempotency records, retention, and reads of the event log.

use std::borrow::Cow;

use imgroups_core::port::content;
use imgroups_core::port::tx::{deliver_each, deliver_to_new, stored};
use imgroups_core::port::{
    Delivery, GroupRow, KeyScope, LogBounds, MessageQuery, NewEvent, Reader, Recorded, SimTx, Tx,
};
use imgroups_core::{
    AccountId, Address, Change, ChatGuid, Error, Event, GroupKey, Message, Result, Timestamp,
};
// The writer's cache is looked up several times per write (heads, groups, members, which
// addresses are accounts): foldhash, seeded per map, instead of SipHash (BENCHMARKS.md,
// stage 10).
use foldhash::{HashMap, HashSet};

use imgroups_core::clock::SimClock;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Maps a SQLite failure to a domain error: contention is transient and retryable, anything
/// else is logged here and reported as internal (SQL never reaches a client).
pub(crate) fn sql_error(err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            tracing::warn!(error = %err, "database busy");
            Error::unavailable("the database is busy; retry")
        }
        _ => {
            tracing::error!(error = %err, "database error");
            Error::internal()
        }
    }
}

pub(crate) trait SqlResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(sql_error)
    }
}

/// The change stored as (kind, value), reading the message a delivery refers to
/// ([`stored::MESSAGE_DELIVERED`]) on `conn`; the event's own chat and ownership complete it.
pub(crate) fn decode_change(
    conn: &Connection,
    kind: i64,
    value: Option<String>,
    chat_guid: &ChatGuid,
    is_from_me: bool,
) -> rusqlite::Result<Change> {
    let joined = match kind == stored::MESSAGE_DELIVERED {
        true => {
            let (body_id, _) = value
                .as_deref()
                .and_then(parse_delivery)
                .ok_or_else(unreadable_delivery)?;
            Some(body(conn, body_id)?)
        }
        false => None,
    };
    let joined = joined
        .as_ref()
        .map(|(guid, body)| (guid.as_str(), body.as_slice()));
    change_of(kind, value.as_deref(), joined, chat_guid, is_from_me)
}

fn unreadable_delivery() -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(6, "value".into(), rusqlite::types::Type::Text)
}

/// An event's change from its kind and value; a delivery's body (its GUID and content) is
/// `joined`, read with the event (see [`read_events`]). The value is borrowed from the row: a
/// delivery's (two numbers) is parsed where it lies, and only the kinds that keep their value
/// copy it.
fn change_of(
    kind: i64,
    value: Option<&str>,
    joined: Option<(&str, &[u8])>,
    chat_guid: &ChatGuid,
    is_from_me: bool,
) -> rusqlite::Result<Change> {
    if kind == stored::MESSAGE_DELIVERED {
        let (_, date_read) = value
            .and_then(parse_delivery)
            .ok_or_else(unreadable_delivery)?;
        let (guid, body) = joined.ok_or_else(unreadable_delivery)?;
        let content = content::decode(body).ok_or_else(unreadable_delivery)?;
        return Ok(Change::MessageReceived {
            message: Box::new(content::copy(
                content,
                guid.to_owned(),
                Some(chat_guid.clone()),
                is_from_me,
                date_read.map(Timestamp),
            )),
        });
    }
    stored::decode(kind, value.map(Cow::Borrowed))
        .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(6, kind))
}

/// A delivery event's value ([`stored::MESSAGE_DELIVERED`]): the body's id, and the time the
/// copy was read as delivered, if it was.
pub(crate) fn delivery_value(body_id: i64, date_read: Option<Timestamp>) -> String {
    match date_read {
        None => body_id.to_string(),
        Some(at) => format!("{body_id} {}", at.0),
    }
}

fn parse_delivery(value: &str) -> Option<(i64, Option<i64>)> {
    // The space found by a plain scan of these few bytes: a `split`'s searcher cost more than
    // the numbers' parsing (a catch-up parses one value per delivery).
    match value.bytes().position(|b| b == b' ') {
        None => Some((value.parse().ok()?, None)),
        Some(space) => Some((
            value[..space].parse().ok()?,
            Some(value[space + 1..].parse().ok()?),
        )),
    }
}

/// An event row and, for a delivery, its body, in one statement: a catch-up reads thousands of
/// deliveries, and a lookup statement per row cost as much as the row. A delivery's value
/// starts with the body's id (`CAST` reads that leading integer).
const EVENT_COLUMNS: &str = "e.seq, e.chat_guid, e.occurred_at, e.is_from_me, e.actor, e.kind,
     e.value, b.guid, b.body";

/// Reads an event row into `event`, the event read from the row before, keeping what is the
/// same (the chat of a run of events in one chat, the actor) as it is, and reusing the strings
/// of what is not: a catch-up reads a million rows, and making, validating and freeing the
/// same strings for each was a tenth of its work (BENCHMARKS.md, "M3 … rows read into the
/// event before them"). A delivery's message is read into `spare`, the message of the
/// delivery before, if there is one. Only a delivery's row reads its body's columns.
///
/// On an error, `event` is left partly overwritten.
fn read_into(
    row: &Row<'_>,
    event: &mut Event,
    spare: &mut Option<Box<Message>>,
) -> rusqlite::Result<()> {
    use rusqlite::types::ValueRef;
    event.sequence = row.get::<_, i64>(0)? as u64;
    let chat = text_bytes(row, 1, "chat_guid")?;
    if !is_chat(&event.chat_guid, chat) {
        event.chat_guid = chat_guid_of(chat)?;
    }
    event.occurred_at = Timestamp(row.get(2)?);
    event.is_from_me = row.get(3)?;
    match row.get_ref(4)? {
        ValueRef::Null => event.actor = None,
        ValueRef::Text(actor) => {
            if event.actor.as_ref().map(|a| a.as_str().as_bytes()) != Some(actor) {
                let actor = std::str::from_utf8(actor).map_err(|_| bad_text(4, "actor"))?;
                let mut held = event
                    .actor
                    .take()
                    .map(Address::into_string)
                    .unwrap_or_default();
                held.clear();
                held.push_str(actor);
                event.actor = Some(Address::from_trusted(held));
            }
        }
        _ => return Err(bad_text(4, "actor")),
    }
    let kind: i64 = row.get(5)?;
    if let Change::MessageReceived { message } =
        std::mem::replace(&mut event.change, Change::IconChanged)
    {
        *spare = Some(message);
    }
    event.change = match kind == stored::MESSAGE_DELIVERED {
        true => Change::MessageReceived {
            message: delivered(row, &event.chat_guid, event.is_from_me, spare.take())?,
        },
        false => change_of(
            kind,
            row.get_ref(6)?.as_str_or_null()?,
            None,
            &event.chat_guid,
            event.is_from_me,
        )?,
    };
    Ok(())
}

/// A delivery's copy of its message ([`change_of`]'s, read into `spare` if there is one).
fn delivered(
    row: &Row<'_>,
    chat_guid: &ChatGuid,
    is_from_me: bool,
    spare: Option<Box<Message>>,
) -> rusqlite::Result<Box<Message>> {
    use rusqlite::types::ValueRef;
    let (_, date_read) = row
        .get_ref(6)?
        .as_str()
        .ok()
        .and_then(parse_delivery)
        .ok_or_else(unreadable_delivery)?;
    let (ValueRef::Text(guid), ValueRef::Blob(body)) = (row.get_ref(7)?, row.get_ref(8)?) else {
        return Err(unreadable_delivery());
    };
    let guid = std::str::from_utf8(guid).map_err(|_| unreadable_delivery())?;
    let mut message = match spare {
        Some(mut message) => {
            content::decode_into(body, &mut message).ok_or_else(unreadable_delivery)?;
            message
        }
        None => Box::new(content::decode(body).ok_or_else(unreadable_delivery)?),
    };
    // What `content::copy` makes of the content for this member.
    message.guid.clear();
    message.guid.push_str(guid);
    if message.chat_guid.as_ref() != Some(chat_guid) {
        message.chat_guid = Some(chat_guid.clone());
    }
    message.is_from_me = is_from_me;
    if is_from_me {
        message.sender = None;
    }
    message.date_read = date_read.map(Timestamp);
    Ok(message)
}

/// Whether `stored` is `chat`'s normal form, which then is what parsing it would make.
fn is_chat(chat: &ChatGuid, stored: &[u8]) -> bool {
    let (prefix, id) = (chat.prefix().as_bytes(), chat.id().as_bytes());
    stored.len() == prefix.len() + id.len()
        && stored.starts_with(prefix)
        && &stored[prefix.len()..] == id
}

fn chat_guid_of(stored: &[u8]) -> rusqlite::Result<ChatGuid> {
    std::str::from_utf8(stored)
        .ok()
        .and_then(|guid| ChatGuid::parse(guid).ok())
        .ok_or_else(|| bad_text(1, "chat_guid"))
}

/// A text column's bytes, not yet checked to be UTF-8.
fn text_bytes<'r>(row: &'r Row<'_>, index: usize, name: &str) -> rusqlite::Result<&'r [u8]> {
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Text(bytes) => Ok(bytes),
        _ => Err(bad_text(index, name)),
    }
}

fn bad_text(index: usize, name: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(index, name.into(), rusqlite::types::Type::Text)
}

/// A message body's GUID and content bytes.
fn body(conn: &Connection, id: i64) -> rusqlite::Result<(String, Vec<u8>)> {
    conn.prepare_cached("SELECT guid, body FROM message_bodies WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The columns of a copy that [`copy_from_row`] reads, in its order.
/// One log entry; the same text wherever an event is appended, so both places share one
/// cached statement.
const INSERT_EVENT: &str =
    "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// A chat's GUID as stored: `to_string` without the formatter (which grew the string as it
/// wrote its two parts), one exact allocation per event.
fn guid_text(chat: &ChatGuid) -> String {
    [chat.prefix(), chat.id()].concat()
}

/// The parameters of one row of [`INSERT_EVENT`].
const EVENT_PARAMS: usize = 8;

/// The multi-row forms of [`INSERT_EVENT`] that [`WriterCache::flush_events`] uses: (rows,
/// statement), largest first. 64 rows are 512 parameters, far below SQLite's limit (32,766).
static EVENT_CHUNKS: std::sync::LazyLock<Vec<(usize, String)>> = std::sync::LazyLock::new(|| {
    [64, 32, 16, 8, 4, 2, 1]
        .into_iter()
        .map(|rows| {
            let row = "(?, ?, ?, ?, ?, ?, ?, ?)";
            let values = vec![row; rows].join(", ");
            let sql = format!(
                "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me, \
                     actor, kind, value) VALUES {values}"
            );
            (rows, sql)
        })
        .collect()
});

/// One group's display name, `(key, name)`: in the writer, run once per group renamed in a
/// batch, at its end ([`WriterCache::flush_names`]).
const SET_DISPLAY_NAME: &str = "UPDATE groups SET display_name = ?2 WHERE id = ?1";

/// An event appended by the writer, kept until its batch's events are inserted together
/// ([`WriterCache::flush_events`]).
struct PendingEvent {
    account: i64,
    seq: i64,
    chat_guid: String,
    occurred_at: i64,
    is_from_me: bool,
    actor: Option<String>,
    kind: i64,
    value: Option<String>,
}

impl PendingEvent {
    /// Binds this row's parameters, the `at + 1`th to the `at + EVENT_PARAMS`th.
    fn bind(&self, stmt: &mut rusqlite::Statement<'_>, at: usize) -> rusqlite::Result<()> {
        stmt.raw_bind_parameter(at + 1, self.account)?;
        stmt.raw_bind_parameter(at + 2, self.seq)?;
        stmt.raw_bind_parameter(at + 3, self.chat_guid.as_str())?;
        stmt.raw_bind_parameter(at + 4, self.occurred_at)?;
        stmt.raw_bind_parameter(at + 5, self.is_from_me)?;
        stmt.raw_bind_parameter(at + 6, self.actor.as_deref())?;
        stmt.raw_bind_parameter(at + 7, self.kind)?;
        stmt.raw_bind_parameter(at + 8, self.value.as_deref())
    }
}

const COPY_COLUMNS: &str = "place, body_id, chat_guid, is_from_me, date_read, state";

/// A member's copy from its row ([`COPY_COLUMNS`]) and its body.
fn copy_from_row(conn: &Connection, row: &Row<'_>) -> rusqlite::Result<(u64, Message)> {
    let place: i64 = row.get(0)?;
    let (guid, body) = body(conn, row.get(1)?)?;
    let message = compose(
        guid,
        &body,
        row.get_ref(2)?.as_str()?,
        row.get(3)?,
        row.get(4)?,
        row.get_ref(5)?,
    )?;
    Ok((place as u64, message))
}

/// A member's copy: its `state` if it has one — the whole message as JSON (rows written
/// before bodies were shared), or its changed content — else its body's content as delivered,
/// with what is the member's own.
pub(crate) fn compose(
    guid: String,
    body: &[u8],
    chat_guid: &str,
    is_from_me: bool,
    date_read: Option<i64>,
    state: rusqlite::types::ValueRef<'_>,
) -> rusqlite::Result<Message> {
    use rusqlite::types::{Type, ValueRef};
    let unreadable = |what: &str, kind| rusqlite::Error::InvalidColumnType(5, what.into(), kind);
    let content = match state {
        ValueRef::Text(json) => {
            return std::str::from_utf8(json)
                .ok()
                .and_then(stored::decode_message)
                .ok_or_else(|| unreadable("state", Type::Text));
        }
        ValueRef::Blob(changed) => content::decode(changed),
        ValueRef::Null => content::decode(body),
        _ => None,
    }
    .ok_or_else(|| unreadable("body", Type::Blob))?;
    // Copies stored without a chat (answers recorded before messages were kept per chat)
    // have an empty one.
    let chat_guid = match chat_guid {
        "" => None,
        chat => Some(ChatGuid::parse(chat).map_err(|_| unreadable("chat_guid", Type::Text))?),
    };
    Ok(content::copy(
        content,
        guid,
        chat_guid,
        is_from_me,
        date_read.map(Timestamp),
    ))
}

/// Stores `account`'s copy of `message` at `place`, or replaces its copy with the same GUID
/// (keeping its place): the body is the first copy's content; a copy that differs from it
/// keeps its own content in `state`. The other columns are given as stored (an import gives
/// them as its snapshot has them).
#[allow(clippy::too_many_arguments)]
///
/// `bodies`: an import's bodies in memory ([`ImportBodies`]), which find the body and learn a
/// new one; `None`: the unique GUID index does.
pub(crate) fn put_copy(
    conn: &Connection,
    bodies: Option<&mut ImportBodies>,
    account: i64,
    place: i64,
    chat_guid: &str,
    created_at: i64,
    is_from_me: bool,
    is_read: bool,
    message: &Message,
) -> rusqlite::Result<()> {
    let found: Option<(i64, Vec<u8>)> = match bodies.as_deref() {
        Some(_) => match find_body(conn, bodies.as_deref(), &message.guid)? {
            Some(id) => Some((
                id,
                conn.prepare_cached("SELECT body FROM message_bodies WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))?,
            )),
            None => None,
        },
        None => conn
            .prepare_cached("SELECT id, body FROM message_bodies WHERE guid = ?1")?
            .query_row([&message.guid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    };
    let (body_id, body) = match found {
        Some(found) => found,
        None => {
            let body = content::encode(message);
            conn.prepare_cached("INSERT INTO message_bodies (guid, body) VALUES (?1, ?2)")?
                .execute(params![message.guid, body])?;
            let id = conn.last_insert_rowid();
            if let Some(bodies) = bodies {
                bodies.insert(&message.guid, id);
            }
            (id, body)
        }
    };
    let as_delivered = content::decode(&body).map(|content| {
        content::copy(
            content,
            message.guid.clone(),
            message.chat_guid.clone(),
            message.is_from_me,
            message.date_read,
        )
    });
    let state = (as_delivered.as_ref() != Some(message)).then(|| content::encode(message));
    conn.prepare_cached(
        "INSERT INTO chat_messages (account_id, place, body_id, chat_guid, created_at,
                                    is_from_me, is_read, date_read, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (account_id, body_id) DO UPDATE SET
             is_read = excluded.is_read, date_read = excluded.date_read, state = excluded.state",
    )?
    .execute(params![
        account,
        place,
        body_id,
        chat_guid,
        created_at,
        is_from_me,
        is_read,
        message.date_read.map(|t| t.0),
        state,
    ])
    .map(drop)
}

/// Every message body's id by its GUID, kept by the writer while a first start's import
/// records a history with the unique GUID index dropped ([`Tx::begin_bulk_import`],
/// [`crate::schema::GUID_INDEX`]). With random GUIDs (a real chat.db's), each body's look-up
/// and insert searched that index at a random place, a page-cache miss after another: a
/// quarter of a million-message first start (BENCHMARKS.md). Only the writer's units of work
/// write bodies meanwhile, and each finds and adds them here; whatever else could
/// (another connection's commit, a rollback, an admin job) ends it first
/// ([`WriterCache::end_import_bodies`]).
///
/// Keyed by a 64-bit hash of the GUID, not its text (16 bytes a body instead of ~70: ~34 MiB
/// per million at the table's load): a body found by its hash is read back and its GUID
/// compared, so two GUIDs with one hash cost a read, never a wrong body; the second of them
/// is kept by its text (`collided`).
pub(crate) struct ImportBodies {
    hasher: foldhash::quality::RandomState,
    by_hash: HashMap<u64, i64>,
    collided: HashMap<String, i64>,
}

impl ImportBodies {
    /// Every body stored so far (none on a first start; those of a first start killed midway
    /// when it starts again).
    fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut bodies = ImportBodies {
            hasher: foldhash::quality::RandomState::default(),
            by_hash: HashMap::default(),
            collided: HashMap::default(),
        };
        let mut stmt = conn.prepare("SELECT id, guid FROM message_bodies")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            bodies.insert(row.get_ref(1)?.as_str()?, row.get(0)?);
        }
        Ok(bodies)
    }

    fn hash(&self, guid: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(guid)
    }

    /// The id of the body with `guid`, if one is stored.
    fn find(&self, conn: &Connection, guid: &str) -> rusqlite::Result<Option<i64>> {
        if let Some(id) = self.collided.get(guid) {
            return Ok(Some(*id));
        }
        let Some(&id) = self.by_hash.get(&self.hash(guid)) else {
            return Ok(None);
        };
        let same: bool = conn
            .prepare_cached("SELECT guid = ?2 FROM message_bodies WHERE id = ?1")?
            .query_row(params![id, guid], |r| r.get(0))?;
        Ok(same.then_some(id))
    }

    /// Adds the body `id` just stored with `guid` (which [`ImportBodies::find`] did not find).
    fn insert(&mut self, guid: &str, id: i64) {
        let hash = self.hash(guid);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(free) => {
                free.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(guid.to_owned(), id);
            }
        }
    }

    /// Bodies kept.
    fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }
}

/// The id of the body with `guid`, if one is stored: from `bodies` during an import, else by
/// the unique index.
fn find_body(
    conn: &Connection,
    bodies: Option<&ImportBodies>,
    guid: &str,
) -> rusqlite::Result<Option<i64>> {
    match bodies {
        Some(bodies) => bodies.find(conn, guid),
        None => conn
            .prepare_cached("SELECT id FROM message_bodies WHERE guid = ?1")?
            .query_row([guid], |r| r.get(0))
            .optional(),
    }
}

/// The port over one connection: a read snapshot ([`Db::new`]) or the writer's open
/// transaction ([`Db::with_cache`]).
pub(crate) struct Db<'c> {
    conn: &'c Connection,
    /// Whether this unit of work has changed anything (even by a write that failed).
    /// Recording an idempotent answer does not count: it is bookkeeping.
    pub(crate) wrote: bool,
    cache: Option<&'c mut WriterCache>,
    /// The commit time of the writer's transaction.
    now: Timestamp,
    /// The statements run once per message ([`Held`]), each held from its first use to the
    /// unit of work's end.
    held: [Option<rusqlite::CachedStatement<'c>>; HELD],
}

/// A statement a unit of work may run once per message of thousands (a first start's import
/// records 40,000 in one): taken from the connection's statement cache once and held by the
/// [`Db`] until the unit of work ends, rather than looked up (its text hashed) and handed back
/// at every run, which cost 6–7 % of a million-message first start (BENCHMARKS.md). Each
/// names neither `events` nor `groups`, so [`Db::prepare`] stores nothing deferred before it
/// ([`WriterCache::before`]) and holding it skips nothing.
#[derive(Clone, Copy)]
enum Held {
    /// A body's insert during an import (no unique GUID index: found in memory).
    ImportBody,
    /// A body's insert otherwise.
    Body,
    /// A delivered copy's insert.
    Copy,
}

const HELD: usize = 3;

impl Held {
    fn sql(self) -> &'static str {
        match self {
            Held::ImportBody => "INSERT INTO message_bodies (guid, body) VALUES (?1, ?2)",
            Held::Body => {
                "INSERT INTO message_bodies (guid, body) VALUES (?1, ?2)
                 ON CONFLICT (guid) DO NOTHING"
            }
            Held::Copy => {
                "INSERT INTO chat_messages (account_id, place, body_id, chat_guid, created_at,
                                            is_from_me, is_read, date_read)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            }
        }
    }
}

/// State the writer keeps between requests so that each request reads less.
///
/// Exact, not approximate: account addresses never change once created, and the writer is the
/// only writer of groups and members, so it updates its cache as it writes. A rejected request
/// has written nothing (the engine checks every rule first); a batch that does not commit may
/// have changed cached rows that the database then discarded, so the writer calls
/// [`WriterCache::forget_all`] whenever that happens.
#[derive(Default)]
pub(crate) struct WriterCache {
    /// Each account's head sequence as of this transaction (committed heads plus what this
    /// batch appended).
    heads: HashMap<AccountId, i64>,
    /// Accounts whose head moved and must be stored before commit.
    dirty: HashSet<AccountId>,
    /// Accounts whose head moved in this batch: the commit's notices.
    moved: HashSet<AccountId>,
    addresses: HashMap<AccountId, Address>,
    /// Which addresses are accounts (`None`: not one).
    accounts: HashMap<Address, Option<AccountId>>,
    /// `PRAGMA data_version` when last checked: it changes when another connection commits.
    data_version: Option<i64>,
    group_keys: HashMap<String, GroupKey>,
    groups: HashMap<GroupKey, GroupRow>,
    members: HashMap<GroupKey, Vec<Address>>,
    /// Events appended in this batch, for `imgroups_events_appended_total`.
    appended: u64,
    /// Events appended in this batch and not yet inserted: the writer inserts a batch's
    /// events together at its end ([`WriterCache::flush`]), a few multi-row `INSERT`s
    /// instead of one statement per event.
    pending: Vec<PendingEvent>,
    /// Display names set in this batch and not yet stored, the last one per group: stored
    /// together at its end, through one statement ([`WriterCache::flush_names`]).
    /// Kept apart from the cached rows, which may be forgotten before the batch ends. Whatever
    /// reads `groups` on the writer's connection runs after they are stored: a unit of work's
    /// statements through [`Db::prepare`], admin jobs and COMMIT after
    /// [`WriterCache::flush`].
    renamed: HashMap<GroupKey, String>,
    /// The controllable clock as this batch sees it (read when the batch begins), with the
    /// identifiers drawn so far; `None`: the store has none.
    pub(crate) sim: Option<SimClock>,
    /// Identifiers were drawn since the count was last stored.
    sim_drawn: bool,
    /// A first start's import is under way with the unique GUID index dropped: every body's
    /// id by its GUID ([`ImportBodies`]).
    import_bodies: Option<ImportBodies>,
    /// An import's bodies in memory were forgotten ([`WriterCache::forget_all`]), or the
    /// batch that built the GUID index at an import's end was rolled back, either of which
    /// may leave it dropped: the next transaction builds it first
    /// ([`WriterCache::restore_guid_index`]).
    guid_index_owed: bool,
    /// This batch ended an import ([`Tx::end_bulk_import`]): if it does not commit, the
    /// index it built is gone again.
    import_ended: bool,
}

/// Above this many cached groups the cache starts over, bounding its memory.
const MAX_CACHED_GROUPS: usize = 10_000;
/// The same for cached address lookups.
const MAX_CACHED_ACCOUNTS: usize = 100_000;

impl WriterCache {
    /// Call at the start of each write transaction (which holds the write lock, so nobody
    /// else can commit until it ends): if another connection has committed since the last
    /// one — the CLI creating an account, or a simulated person acting from another process —
    /// nothing cached can be trusted. Outside writes are rare; the server's own are not.
    pub(crate) fn check_outside_writes(&mut self, tx: &Connection) -> Result<()> {
        let version: i64 = tx
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .db()?;
        if self.data_version != Some(version) {
            self.forget_all();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Reads the controllable clock; call when a batch begins, and after an admin job (which
    /// may have moved it).
    pub(crate) fn load_clock(&mut self, tx: &Connection) -> Result<()> {
        self.sim = crate::clock::get(tx)?;
        self.sim_drawn = false;
        Ok(())
    }

    /// The batch's time: the controllable clock's, or else the system's.
    pub(crate) fn clock_now(&self) -> Timestamp {
        self.sim.map_or_else(Timestamp::now, |c| c.now)
    }

    /// Stores how many identifiers the controllable clock has drawn, if this batch drew any.
    fn flush_clock(&mut self, tx: &Connection) -> Result<()> {
        if let (true, Some(clock)) = (std::mem::take(&mut self.sim_drawn), self.sim) {
            crate::clock::save_ids(tx, clock.ids)?;
        }
        Ok(())
    }

    /// Stores the heads moved since the last call.
    fn flush_heads(&mut self, tx: &Connection) -> Result<()> {
        let mut stmt = tx
            .prepare_cached("UPDATE accounts SET head_seq = ?2 WHERE id = ?1")
            .db()?;
        for account in self.dirty.drain() {
            if let Some(head) = self.heads.get(&account) {
                stmt.execute(params![account.0, head]).db()?;
            }
        }
        Ok(())
    }

    /// Stores every row this batch deferred to its end — its events, display names, heads and
    /// the controllable clock's count — inside the batch transaction. The writer calls this
    /// once, before whatever may read them outside a unit of work: COMMIT (and the retention
    /// before it) and admin jobs. Within a unit of work, [`Db::prepare`] stores what a
    /// statement may read before it runs.
    pub(crate) fn flush(&mut self, tx: &Connection) -> Result<()> {
        self.flush_events(tx)?;
        self.flush_names(tx)?;
        self.flush_heads(tx)?;
        self.flush_clock(tx)
    }

    /// Whether nothing deferred waits to be stored ([`WriterCache::flush`]).
    pub(crate) fn is_flushed(&self) -> bool {
        self.pending.is_empty() && self.renamed.is_empty() && self.dirty.is_empty()
    }

    /// Before `statement` runs in a unit of work: stores the deferred rows of the tables it
    /// names (`events`, `groups`), so that it reads them as written. Only the names are
    /// looked for, which may store rows earlier than needed (an `INSERT INTO groups`), never
    /// later.
    fn before(&mut self, tx: &Connection, statement: &str) -> Result<()> {
        if !self.pending.is_empty() && statement.contains("events") {
            self.flush_events(tx)?;
        }
        if !self.renamed.is_empty() && statement.contains("groups") {
            self.flush_names(tx)?;
        }
        Ok(())
    }

    /// Inserts the events appended since the last call ([`WriterCache::pending`]).
    /// In chunks of [`EVENT_CHUNKS`] rows, largest first, so a batch of `n` events takes at
    /// most one statement per bit of `n` (below the largest chunk), each prepared once.
    fn flush_events(&mut self, tx: &Connection) -> Result<()> {
        let mut rest = self.pending.as_slice();
        while !rest.is_empty() {
            let (rows, sql) = EVENT_CHUNKS
                .iter()
                .find(|(rows, _)| *rows <= rest.len())
                .map_or((1, INSERT_EVENT), |(rows, sql)| (*rows, sql.as_str()));
            let (chunk, after) = rest.split_at(rows);
            let mut stmt = tx.prepare_cached(sql).db()?;
            for (i, event) in chunk.iter().enumerate() {
                event.bind(&mut stmt, i * EVENT_PARAMS).db()?;
            }
            stmt.raw_execute().db()?;
            rest = after;
        }
        self.pending.clear();
        Ok(())
    }

    /// Stores the display names set since the last call ([`WriterCache::renamed`]): one
    /// statement, bound and run once per group. (Rather than a multi-row `UPDATE … FROM
    /// (VALUES …)`, which SQLite runs by materializing the rows first: 6.5k instructions a
    /// row against 5.6k for an `UPDATE` of its own; BENCHMARKS.md.) What this saves is the
    /// statement cache's look-up and return per rename.
    fn flush_names(&mut self, tx: &Connection) -> Result<()> {
        if self.renamed.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(SET_DISPLAY_NAME).db()?;
        for (key, name) in &self.renamed {
            stmt.raw_bind_parameter(1, key.0).db()?;
            stmt.raw_bind_parameter(2, name.as_str()).db()?;
            stmt.raw_execute().db()?;
        }
        self.renamed.clear();
        Ok(())
    }

    /// The accounts whose logs this batch moved, with their heads; forgets them. Call at
    /// commit.
    pub(crate) fn moved_heads(&mut self) -> Vec<(AccountId, u64)> {
        let heads = &self.heads;
        self.moved
            .drain()
            .filter_map(|account| heads.get(&account).map(|h| (account, *h as u64)))
            .collect()
    }

    /// How many events this batch appended; starts the count over. Call at commit.
    pub(crate) fn take_appended(&mut self) -> u64 {
        std::mem::take(&mut self.appended)
    }

    /// Forgets which addresses are accounts (after a change that may have made one).
    pub(crate) fn forget_accounts(&mut self) {
        self.accounts.clear();
    }

    /// The batch did not commit: nothing cached can be trusted.
    pub(crate) fn forget_all(&mut self) {
        // An import's bodies in memory may have been rolled back, or another connection
        // may have stored some: the unique index takes over, built at the next transaction's
        // start. (Also when the batch that built it at an import's end was rolled back.)
        if self.import_bodies.take().is_some() {
            tracing::info!("a first start's import goes on with the unique GUID index");
            self.guid_index_owed = true;
        }
        if std::mem::take(&mut self.import_ended) {
            self.guid_index_owed = true;
        }
        self.accounts.clear();
        self.data_version = None;
        self.heads.clear();
        self.dirty.clear();
        self.moved.clear();
        self.appended = 0;
        self.pending.clear();
        self.renamed.clear();
        self.forget_groups();
    }

    /// A reset cleared the chats (and, with `accounts`, the accounts, whose ids may then be
    /// handed out again): forget what was cached of them. Heads stay for accounts that
    /// remain — a reset keeps them — and this batch's moved heads are kept for its notices.
    pub(crate) fn forget_world(&mut self, accounts: bool) {
        self.forget_groups();
        self.accounts.clear();
        if accounts {
            self.addresses.clear();
            self.heads.clear();
            self.moved.clear();
        }
    }

    /// Call at the start of each write transaction, after
    /// [`WriterCache::check_outside_writes`]: builds the unique GUID index if it may be
    /// missing ([`WriterCache::guid_index_owed`]: only after an import's bodies in memory
    /// were forgotten, or its end rolled back; in steady state this is one flag's test).
    pub(crate) fn restore_guid_index(&mut self, tx: &Connection) -> Result<()> {
        // The batch before committed, or was forgotten (which looked at this).
        self.import_ended = false;
        if self.guid_index_owed {
            build_guid_index(tx)?;
            self.guid_index_owed = false;
        }
        Ok(())
    }

    /// Ends an import's bodies in memory, if any, and builds the unique GUID index in this
    /// transaction: before an admin job, which may write bodies on the connection itself.
    pub(crate) fn end_import_bodies(&mut self, tx: &Connection) -> Result<()> {
        if self.import_bodies.take().is_some() {
            tracing::info!("a first start's import goes on with the unique GUID index");
            build_guid_index(tx)?;
        }
        Ok(())
    }

    pub(crate) fn forget_groups(&mut self) {
        self.group_keys.clear();
        self.groups.clear();
        self.members.clear();
    }

    fn remember_group(&mut self, row: &GroupRow) {
        if self.groups.len() >= MAX_CACHED_GROUPS {
            self.forget_groups();
        }
        self.group_keys.insert(row.identifier.clone(), row.key);
        self.groups.insert(row.key, row.clone());
    }
}

/// Builds the unique index of message GUIDs ([`crate::schema::GUID_INDEX`]) if it is not
/// there. It fails only if a GUID was stored twice while it was dropped, which is a bug.
pub(crate) fn build_guid_index(conn: &Connection) -> Result<()> {
    conn.execute_batch(crate::schema::GUID_INDEX)
        .map_err(|err| {
            tracing::error!(
                error = %err,
                "cannot build the unique index of message GUIDs: a message is stored twice (bug)"
            );
            err
        })
        .db()
}

impl<'c> Db<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Db {
            conn,
            wrote: false,
            cache: None,
            now: Timestamp::now(),
            held: Default::default(),
        }
    }

    pub(crate) fn with_cache(
        conn: &'c Connection,
        cache: &'c mut WriterCache,
        now: Timestamp,
    ) -> Self {
        Db {
            conn,
            wrote: false,
            cache: Some(cache),
            now,
            held: Default::default(),
        }
    }

    /// Every statement a unit of work runs is prepared here (from the connection's statement
    /// cache). In the writer, the rows its batch deferred ([`WriterCache::renamed`],
    /// [`WriterCache::pending`]) of the tables the statement names are stored first, so that
    /// a read sees every write before it. Storing them is a write: if it fails, the unit of
    /// work has written, and the writer fails the batch, as when a write fails.
    fn prepare(&mut self, statement: &str) -> Result<rusqlite::CachedStatement<'c>> {
        if let Some(cache) = self.cache.as_deref_mut() {
            if let Err(err) = cache.before(self.conn, statement) {
                self.wrote = true;
                return Err(err);
            }
        }
        self.conn.prepare_cached(statement).db()
    }

    /// A [`Held`] statement, prepared (through [`Db::prepare`]) at its first use in this
    /// unit of work.
    fn held(&mut self, which: Held) -> Result<&mut rusqlite::CachedStatement<'c>> {
        let slot = which as usize;
        let stmt = match self.held[slot].take() {
            Some(stmt) => stmt,
            None => self.prepare(which.sql())?,
        };
        Ok(self.held[slot].insert(stmt))
    }

    fn cached_group(&mut self, key: GroupKey) -> Option<&mut GroupRow> {
        self.cache.as_mut().and_then(|c| c.groups.get_mut(&key))
    }

    /// The next sequence for `account` from the writer's in-memory head (loaded on first use).
    fn next_sequence(&mut self, account: AccountId) -> Result<i64> {
        let known = self
            .cache
            .as_ref()
            .and_then(|c| c.heads.get(&account).copied());
        let head = match known {
            Some(head) => head,
            None => self
                .prepare("SELECT head_seq FROM accounts WHERE id = ?1")?
                .query_row([account.0], |r| r.get::<_, i64>(0))
                .db()?,
        };
        if let Some(cache) = self.cache.as_mut() {
            cache.heads.insert(account, head + 1);
            cache.dirty.insert(account);
            cache.moved.insert(account);
            cache.appended += 1;
        }
        Ok(head + 1)
    }
}

impl Db<'_> {
    /// Appends one log entry: in the writer, kept for the batch's multi-row insert at commit
    /// ([`WriterCache::flush_events`]); elsewhere, inserted now.
    fn insert_event(&mut self, event: PendingEvent) -> Result<()> {
        if let Some(cache) = self.cache.as_mut() {
            cache.pending.push(event);
            return Ok(());
        }
        self.prepare(INSERT_EVENT)?
            .execute(params![
                event.account,
                event.seq,
                event.chat_guid,
                event.occurred_at,
                event.is_from_me,
                event.actor,
                event.kind,
                event.value,
            ])
            .db()
            .map(drop)
    }

    /// The account's next sequence, taken.
    fn next_seq(&mut self, account: AccountId) -> Result<i64> {
        match self.cache.is_some() {
            // The writer hands out sequences from memory and stores the heads once per batch
            // (`WriterCache::flush_heads`), in the same transaction.
            true => self.next_sequence(account),
            false => self
                .prepare(
                    "UPDATE accounts SET head_seq = head_seq + 1 WHERE id = ?1 RETURNING head_seq",
                )?
                .query_row([account.0], |r| r.get::<_, i64>(0))
                .db(),
        }
    }
}

impl Db<'_> {
    /// Stores `message`'s content, sent by `actor`, once; its id, or `None` if a body with its
    /// GUID is kept already.
    fn insert_body(&mut self, message: &Message, actor: &Address) -> Result<Option<i64>> {
        // The content as sent by `actor` (each copy is its view of it, `Delivery`); the
        // observed path builds it so already, and is not copied again.
        let encoded = if message.sender.as_ref() == Some(actor) {
            content::encode(message)
        } else {
            content::encode(&Message {
                sender: Some(actor.clone()),
                ..message.clone()
            })
        };
        let conn = self.conn;
        if let Some(bodies) = self.import_bodies() {
            // An import with the GUID index dropped: found in memory, else new.
            if bodies.find(conn, &message.guid).db()?.is_some() {
                return Ok(None);
            }
            self.held(Held::ImportBody)?
                .execute(params![message.guid, encoded])
                .db()?;
            let id = conn.last_insert_rowid();
            if let Some(bodies) = self.import_bodies() {
                bodies.insert(&message.guid, id);
            }
            return Ok(Some(id));
        }
        let inserted = self
            .held(Held::Body)?
            .execute(params![message.guid, encoded])
            .db()?;
        Ok((inserted == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// The bodies of an import under way in the writer ([`ImportBodies`]), if any.
    fn import_bodies(&mut self) -> Option<&mut ImportBodies> {
        self.cache.as_deref_mut()?.import_bodies.as_mut()
    }

    /// Each copy's event and thin row, referring to the body `body_id`; their places.
    fn deliver_copies(
        &mut self,
        body_id: i64,
        message: &Message,
        actor: &Address,
        occurred_at: Timestamp,
        copies: &[Delivery<'_>],
    ) -> Result<Vec<u64>> {
        let mut places = Vec::with_capacity(copies.len());
        for copy in copies {
            let seq = self.next_seq(copy.account)?;
            let chat = guid_text(copy.chat_guid);
            self.insert_event(PendingEvent {
                account: copy.account.0,
                seq,
                chat_guid: chat.clone(),
                occurred_at: occurred_at.0,
                is_from_me: copy.is_from_me,
                actor: Some(actor.as_str().to_owned()),
                kind: stored::MESSAGE_DELIVERED,
                value: Some(delivery_value(body_id, copy.date_read)),
            })?;
            self.held(Held::Copy)?
                .execute(params![
                    copy.account.0,
                    seq,
                    body_id,
                    chat,
                    message.date_created.0,
                    copy.is_from_me,
                    copy.is_from_me || copy.date_read.is_some(),
                    copy.date_read.map(|t| t.0),
                ])
                .db()?;
            places.push(seq as u64);
        }
        Ok(places)
    }
}

/// A copy and its body as [`Reader::message`] selects them: place, chat, `is_from_me`,
/// `date_read`, state, GUID, body.
fn message_from_row(row: &Row<'_>) -> rusqlite::Result<(u64, Message)> {
    let message = compose(
        row.get(5)?,
        row.get_ref(6)?.as_blob()?,
        row.get_ref(1)?.as_str()?,
        row.get(2)?,
        row.get(3)?,
        row.get_ref(4)?,
    )?;
    Ok((row.get::<_, i64>(0)? as u64, message))
}

const GROUP_COLUMNS: &str = "id, identifier, group_id, display_name, icon_hash";

fn group_from_row(row: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        key: GroupKey(row.get(0)?),
        identifier: row.get(1)?,
        group_id: row.get(2)?,
        display_name: row.get(3)?,
        icon_hash: row.get(4)?,
    })
}

impl Db<'_> {
    fn query_account_address(&mut self, account: AccountId) -> Result<Address> {
        let address: Option<String> = self
            .prepare("SELECT address FROM accounts WHERE id = ?1")?
            .query_row([account.0], |r| r.get(0))
            .optional()
            .db()?;
        address.map(Address::from_trusted).ok_or_else(|| {
            tracing::error!(%account, "token names an account that does not exist");
            Error::internal()
        })
    }
}

impl Reader for Db<'_> {
    fn account_address(&mut self, account: AccountId) -> Result<Address> {
        if let Some(known) = self.cache.as_ref().and_then(|c| c.addresses.get(&account)) {
            return Ok(known.clone());
        }
        let address = self.query_account_address(account)?;
        if let Some(cache) = self.cache.as_mut() {
            cache.addresses.insert(account, address.clone());
        }
        Ok(address)
    }

    fn group(&mut self, identifier: &str) -> Result<Option<GroupRow>> {
        if let Some(cache) = self.cache.as_ref() {
            if let Some(row) = cache
                .group_keys
                .get(identifier)
                .and_then(|key| cache.groups.get(key))
            {
                return Ok(Some(row.clone()));
            }
        }
        let row = self
            .prepare(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups WHERE identifier = ?1"
            ))?
            .query_row([identifier], group_from_row)
            .optional()
            .db()?;
        if let (Some(cache), Some(row)) = (self.cache.as_mut(), row.as_ref()) {
            cache.remember_group(row);
        }
        Ok(row)
    }

    fn members(&mut self, group: GroupKey) -> Result<Vec<Address>> {
        if let Some(known) = self.cache.as_ref().and_then(|c| c.members.get(&group)) {
            return Ok(known.clone());
        }
        let members = self.query_members(group)?;
        if let Some(cache) = self.cache.as_mut() {
            // Only members of groups whose row is cached, so the group bound covers both.
            if cache.groups.contains_key(&group) {
                cache.members.insert(group, members.clone());
            }
        }
        Ok(members)
    }

    fn icon(&mut self, group: GroupKey) -> Result<Option<(Vec<u8>, String)>> {
        self.query_icon(group)
    }

    fn groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>> {
        self.query_groups_of(address)
    }

    fn groups_with_all(&mut self, addresses: &[Address]) -> Result<Vec<GroupRow>> {
        // A zig-zag join over each address's groups, which `members_by_address` keeps sorted:
        // each step seeks one address to its first group at or after the candidate, so the
        // seeks are bounded by the address in the fewest groups.
        let mut found = Vec::new();
        if addresses.is_empty() {
            return Ok(found);
        }
        let mut candidate = 0;
        'search: loop {
            let mut agreed = 0;
            let mut next = 0;
            while agreed < addresses.len() {
                let Some(key) = self.query_next_group_of(&addresses[next], candidate)? else {
                    break 'search;
                };
                if key == candidate {
                    agreed += 1;
                } else {
                    candidate = key;
                    agreed = 1;
                }
                next = (next + 1) % addresses.len();
            }
            if let Some(row) = self.query_group_by_key(GroupKey(candidate))? {
                found.push(row);
            }
            candidate += 1;
        }
        Ok(found)
    }

    fn has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool> {
        self.query_has_direct_chat(account, address)
    }

    fn count_direct_chats(&mut self, account: AccountId) -> Result<u64> {
        self.query_count_direct_chats(account)
    }

    fn observer_cursor(&mut self, source: &str) -> Result<Option<String>> {
        self.prepare("SELECT cursor FROM observer_cursors WHERE source = ?1")?
            .query_row([source], |r| r.get(0))
            .optional()
            .db()
    }

    fn message(&mut self, account: AccountId, guid: &str) -> Result<Option<(u64, Message)>> {
        let conn = self.conn;
        if let Some(bodies) = self.import_bodies() {
            // An import with the GUID index dropped: the body found in memory, the copy by
            // `chat_messages_by_body`.
            let Some(body_id) = bodies.find(conn, guid).db()? else {
                return Ok(None);
            };
            return self
                .prepare(
                    "SELECT c.place, c.chat_guid, c.is_from_me, c.date_read, c.state, b.guid, b.body
                     FROM chat_messages c JOIN message_bodies b ON b.id = c.body_id
                     WHERE c.account_id = ?1 AND c.body_id = ?2",
                )?
                .query_row(params![account.0, body_id], message_from_row)
                .optional()
                .db();
        }
        self.prepare(
            "SELECT c.place, c.chat_guid, c.is_from_me, c.date_read, c.state, b.guid, b.body
             FROM message_bodies b JOIN chat_messages c ON c.account_id = ?1 AND c.body_id = b.id
             WHERE b.guid = ?2",
        )?
        .query_row(params![account.0, guid], message_from_row)
        .optional()
        .db()
    }

    fn list_messages(
        &mut self,
        account: AccountId,
        query: &MessageQuery,
    ) -> Result<Vec<(u64, Message)>> {
        let conn = self.conn;
        let sql = listing_sql(query.chat.is_some(), query.is_read == Some(false));
        let mut stmt = self.prepare(&sql)?;
        let rows = stmt
            .query_map(
                params![
                    account.0,
                    query.chat.as_ref().map(ToString::to_string),
                    query.below.map(|p| p as i64),
                    query.is_from_me,
                    query.is_read,
                    query.created_before.map(|t| t.0),
                    query.created_after.map(|t| t.0),
                    query.limit as i64,
                ],
                |row| copy_from_row(conn, row),
            )
            .db()?;
        rows.collect::<rusqlite::Result<Vec<_>>>().db()
    }

    fn background_hash(&mut self, chat: &str) -> Result<Option<Vec<u8>>> {
        self.query_background_hash(chat)
    }

    fn message_times(
        &mut self,
        account: AccountId,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, bool)>> {
        // The two columns only: no message body is read or decoded.
        let mut stmt = self.prepare(
            "SELECT created_at, is_from_me FROM chat_messages
                 WHERE account_id = ?1 AND created_at >= ?2 ORDER BY place DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![account.0, since.0, limit as i64], |row| {
                Ok((Timestamp(row.get(0)?), row.get(1)?))
            })
            .db()?;
        rows.collect::<rusqlite::Result<Vec<_>>>().db()
    }
}

impl Db<'_> {
    fn query_background_hash(&mut self, chat: &str) -> Result<Option<Vec<u8>>> {
        self.prepare("SELECT hash FROM chat_backgrounds WHERE chat_key = ?1")?
            .query_row([chat], |r| r.get(0))
            .optional()
            .db()
    }
}

/// The statement that lists messages ([`Reader::list_messages`]), for one chat or every chat,
/// and for what is unread or not.
///
/// Four statements, so that each searches the index that serves its order: the chat's, or the
/// account's own (the primary key); and, for what is unread (a mark-read reads it at every
/// call), the partial indexes of unread messages, which hold only those. The page bound is a
/// plain range on `place` (no `?3 IS NULL OR …`), so that a page deep in a long chat starts
/// where it should instead of walking every newer message. The index is named: on a database
/// never analysed (every new one), SQLite's planner walks the whole account by its primary key
/// to list one chat.
fn listing_sql(one_chat: bool, unread: bool) -> String {
    const FILTERS: &str = "AND place < coalesce(?3, 9223372036854775807)
         AND (?4 IS NULL OR is_from_me = ?4)
         AND (?5 IS NULL OR is_read = ?5)
         AND (?6 IS NULL OR created_at < ?6)
         AND (?7 IS NULL OR created_at >= ?7)
         ORDER BY place DESC LIMIT ?8";
    // `is_read = 0` is spelled as the partial indexes' condition, which SQLite requires.
    let (index, scope) = match (one_chat, unread) {
        (true, false) => ("INDEXED BY chat_messages_by_chat", "chat_guid = ?2"),
        (true, true) => (
            "INDEXED BY chat_messages_unread_by_chat",
            "chat_guid = ?2 AND is_read = 0",
        ),
        (false, false) => ("", "?2 IS NULL"),
        (false, true) => (
            "INDEXED BY chat_messages_unread",
            "?2 IS NULL AND is_read = 0",
        ),
    };
    format!(
        "SELECT {COPY_COLUMNS} FROM chat_messages {index} WHERE account_id = ?1 AND {scope} {FILTERS}"
    )
}

impl Db<'_> {
    fn query_members(&mut self, group: GroupKey) -> Result<Vec<Address>> {
        let mut stmt =
            self.prepare("SELECT address FROM members WHERE group_key = ?1 ORDER BY id")?;
        let rows = stmt
            .query_map([group.0], |r| {
                r.get::<_, String>(0).map(Address::from_trusted)
            })
            .db()?;
        rows.collect::<rusqlite::Result<_>>().db()
    }

    fn query_icon(&mut self, group: GroupKey) -> Result<Option<(Vec<u8>, String)>> {
        self.prepare("SELECT data, mime FROM icons WHERE group_key = ?1")?
            .query_row([group.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .db()
    }

    fn query_groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>> {
        let mut stmt = self.prepare(
            "SELECT g.id, g.identifier, g.group_id, g.display_name, g.icon_hash
                 FROM members m JOIN groups g ON g.id = m.group_key
                 WHERE m.address = ?1 ORDER BY g.id",
        )?;
        let rows = stmt.query_map([address.as_str()], group_from_row).db()?;
        rows.collect::<rusqlite::Result<_>>().db()
    }

    /// The first group at or after `from` (by key) that `address` is a member of.
    fn query_next_group_of(&mut self, address: &Address, from: i64) -> Result<Option<i64>> {
        self.prepare(
            "SELECT group_key FROM members WHERE address = ?1 AND group_key >= ?2
                 ORDER BY group_key LIMIT 1",
        )?
        .query_row(params![address.as_str(), from], |r| r.get(0))
        .optional()
        .db()
    }

    fn query_group_by_key(&mut self, key: GroupKey) -> Result<Option<GroupRow>> {
        self.prepare(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"))?
            .query_row([key.0], group_from_row)
            .optional()
            .db()
    }

    fn query_has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool> {
        self.prepare("SELECT 1 FROM direct_chats WHERE account_id = ?1 AND address = ?2")?
            .exists(params![account.0, address.as_str()])
            .db()
    }

    fn query_count_direct_chats(&mut self, account: AccountId) -> Result<u64> {
        self.prepare("SELECT count(*) FROM direct_chats WHERE account_id = ?1")?
            .query_row([account.0], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .db()
    }
}

impl Tx for Db<'_> {
    fn sim(&mut self) -> Option<&mut dyn SimTx> {
        Some(self)
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn fresh_id(&mut self) -> Result<[u8; 16]> {
        if let Some(cache) = self.cache.as_deref_mut() {
            if let Some(clock) = cache.sim.as_mut() {
                cache.sim_drawn = true;
                return Ok(clock.draw());
            }
            return Ok(imgroups_core::clock::random_id());
        }
        // Outside the writer a `Db` only reads; a draw there would not be counted.
        Ok(imgroups_core::clock::random_id())
    }

    fn accounts_for(&mut self, addresses: &[Address]) -> Result<Vec<(AccountId, Address)>> {
        let mut found = Vec::with_capacity(addresses.len());
        for address in addresses {
            let known = self
                .cache
                .as_ref()
                .and_then(|c| c.accounts.get(address).copied());
            let account = match known {
                Some(account) => account,
                None => {
                    let account: Option<AccountId> = self
                        .prepare("SELECT id FROM accounts WHERE address = ?1")?
                        .query_row([address.as_str()], |r| r.get(0).map(AccountId))
                        .optional()
                        .db()?;
                    if let Some(cache) = self.cache.as_mut() {
                        if cache.accounts.len() >= MAX_CACHED_ACCOUNTS {
                            cache.accounts.clear();
                        }
                        cache.accounts.insert(address.clone(), account);
                    }
                    account
                }
            };
            if let Some(account) = account {
                found.push((account, address.clone()));
            }
        }
        Ok(found)
    }

    fn create_group(
        &mut self,
        identifier: &str,
        group_id: &str,
        now: Timestamp,
    ) -> Result<Option<GroupKey>> {
        self.wrote = true;
        let inserted = self
            .prepare(
                "INSERT INTO groups (identifier, group_id, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identifier) DO NOTHING",
            )?
            .execute(params![identifier, group_id, now.0])
            .db()?;
        Ok((inserted == 1).then(|| GroupKey(self.conn.last_insert_rowid())))
    }

    fn set_display_name(&mut self, group: GroupKey, name: &str) -> Result<()> {
        self.wrote = true;
        let Some(cache) = self.cache.as_deref_mut() else {
            return self
                .prepare(SET_DISPLAY_NAME)?
                .execute(params![group.0, name])
                .db()
                .map(drop);
        };
        // In the writer, stored with the batch's other names ([`WriterCache::renamed`]).
        cache.renamed.insert(group, name.to_owned());
        if let Some(row) = cache.groups.get_mut(&group) {
            row.display_name = Some(name.to_owned());
        }
        Ok(())
    }

    fn add_member(&mut self, group: GroupKey, address: &Address) -> Result<()> {
        self.wrote = true;
        self.prepare("INSERT INTO members (group_key, address) VALUES (?1, ?2)")?
            .execute(params![group.0, address.as_str()])
            .db()?;
        if let Some(members) = self.cache.as_mut().and_then(|c| c.members.get_mut(&group)) {
            members.push(address.clone());
        }
        Ok(())
    }

    fn remove_member(&mut self, group: GroupKey, address: &Address) -> Result<()> {
        self.wrote = true;
        self.prepare("DELETE FROM members WHERE group_key = ?1 AND address = ?2")?
            .execute(params![group.0, address.as_str()])
            .db()?;
        if let Some(members) = self.cache.as_mut().and_then(|c| c.members.get_mut(&group)) {
            members.retain(|m| m != address);
        }
        Ok(())
    }

    fn set_icon(&mut self, group: GroupKey, data: &[u8], mime: &str, hash: &[u8]) -> Result<()> {
        self.wrote = true;
        self.prepare(
            "INSERT INTO icons (group_key, data, mime) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_key) DO UPDATE SET data = excluded.data, mime = excluded.mime",
        )?
        .execute(params![group.0, data, mime])
        .db()?;
        self.prepare("UPDATE groups SET icon_hash = ?2 WHERE id = ?1")?
            .execute(params![group.0, hash])
            .db()?;
        if let Some(row) = self.cached_group(group) {
            row.icon_hash = Some(hash.to_vec());
        }
        Ok(())
    }

    fn clear_icon(&mut self, group: GroupKey) -> Result<()> {
        self.wrote = true;
        self.prepare("DELETE FROM icons WHERE group_key = ?1")?
            .execute([group.0])
            .db()?;
        self.prepare("UPDATE groups SET icon_hash = NULL WHERE id = ?1")?
            .execute([group.0])
            .db()?;
        if let Some(row) = self.cached_group(group) {
            row.icon_hash = None;
        }
        Ok(())
    }

    fn ensure_direct_chat(
        &mut self,
        account: AccountId,
        address: &Address,
        now: Timestamp,
    ) -> Result<()> {
        self.wrote = true;
        self.prepare(
            "INSERT INTO direct_chats (account_id, address, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
        )?
        .execute(params![account.0, address.as_str(), now.0])
        .db()
        .map(drop)
    }

    fn put_message(&mut self, account: AccountId, place: u64, message: &Message) -> Result<()> {
        self.wrote = true;
        let chat = message
            .chat_guid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        // (Its statements, on `message_bodies` and `chat_messages`, read nothing the writer
        // defers: see `Db::prepare`.)
        let conn = self.conn;
        put_copy(
            conn,
            self.import_bodies(),
            account.0,
            place as i64,
            &chat,
            message.date_created.0,
            message.is_from_me,
            message.is_read(),
            message,
        )
        .db()
    }

    fn deliver_message(
        &mut self,
        message: &Message,
        actor: &Address,
        occurred_at: Timestamp,
        copies: &[Delivery<'_>],
    ) -> Result<Vec<u64>> {
        self.wrote = true;
        match self.insert_body(message, actor)? {
            Some(body_id) => self.deliver_copies(body_id, message, actor, occurred_at, copies),
            // Copies of it are kept already (a backend recording one message twice): those
            // decide the body; these copies are stored whole.
            None => deliver_each(self, message, actor, occurred_at, copies),
        }
    }

    fn deliver_new_message(
        &mut self,
        message: &Message,
        actor: &Address,
        occurred_at: Timestamp,
        copies: &[Delivery<'_>],
    ) -> Result<usize> {
        if copies.is_empty() {
            return Ok(0);
        }
        self.wrote = true;
        // Every copy refers to its body, so a body that is new means nobody holds the message:
        // no look-up per copy (the GUID index is sought once, by the insert).
        if let Some(body_id) = self.insert_body(message, actor)? {
            self.deliver_copies(body_id, message, actor, occurred_at, copies)?;
            return Ok(copies.len());
        }
        // The body was kept already: some accounts may hold the message, others not.
        deliver_to_new(self, message, actor, occurred_at, copies)
    }

    fn begin_bulk_import(&mut self) -> Result<()> {
        self.wrote = true;
        // Indexes of `chat_messages` and `message_bodies` only, which the writer defers
        // nothing of (`Db::prepare`).
        self.conn
            .execute_batch(crate::schema::DROP_LISTING_INDEXES)
            .db()?;
        let conn = self.conn;
        // Only in the writer, which then finds bodies by GUID in memory until the import's
        // end; it is the only one to write bodies meanwhile: the server holds the data
        // directory's lock, and it ends this at anything else (see `ImportBodies`).
        if let Some(cache) = self.cache.as_deref_mut() {
            conn.execute_batch(crate::schema::DROP_GUID_INDEX).db()?;
            let bodies = ImportBodies::load(conn).db()?;
            tracing::debug!(
                bodies = bodies.len(),
                "a first start's import: message bodies found in memory"
            );
            cache.import_bodies = Some(bodies);
        }
        Ok(())
    }

    fn end_bulk_import(&mut self) -> Result<()> {
        self.wrote = true;
        self.conn
            .execute_batch(crate::schema::LISTING_INDEXES)
            .db()?;
        // Dropped at the import's begin (or by an import that ended abnormally); its bodies
        // in memory are dropped with it.
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.import_bodies = None;
            cache.import_ended = true;
        }
        build_guid_index(self.conn)
    }

    fn set_background(
        &mut self,
        chat: &str,
        background: Option<(&[u8], &str, &[u8])>,
    ) -> Result<()> {
        self.wrote = true;
        match background {
            Some((data, mime, hash)) => self
                .prepare(
                    "INSERT INTO chat_backgrounds (chat_key, data, mime, hash) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (chat_key) DO UPDATE SET
                         data = excluded.data, mime = excluded.mime, hash = excluded.hash",
                )?
                .execute(params![chat, data, mime, hash]),
            None => self
                .prepare("DELETE FROM chat_backgrounds WHERE chat_key = ?1")?
                .execute([chat]),
        }
        .db()
        .map(drop)
    }

    fn set_observer_cursor(&mut self, source: &str, cursor: &str) -> Result<()> {
        self.wrote = true;
        self.prepare(
            "INSERT INTO observer_cursors (source, cursor) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
        )?
        .execute(params![source, cursor])
        .db()
        .map(drop)
    }

    fn mark_observed(&mut self, source: &str, id: &str) -> Result<bool> {
        self.wrote = true;
        let inserted = self
            .prepare("INSERT INTO observed (source, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
            .execute(params![source, id])
            .db()?;
        Ok(inserted == 1)
    }

    fn append_event(&mut self, account: AccountId, event: NewEvent<'_>) -> Result<u64> {
        self.wrote = true;
        let seq = self.next_seq(account)?;
        let (kind, value) = stored::encode(event.change);
        self.insert_event(PendingEvent {
            account: account.0,
            seq,
            chat_guid: guid_text(event.chat_guid),
            occurred_at: event.occurred_at.0,
            is_from_me: event.is_from_me,
            actor: event.actor.map(|a| a.as_str().to_owned()),
            kind,
            value: value.map(std::borrow::Cow::into_owned),
        })?;
        Ok(seq as u64)
    }

    fn idempotency_get(
        &mut self,
        scope: KeyScope<'_>,
        not_before: Timestamp,
    ) -> Result<Option<Recorded>> {
        self.prepare(
            "SELECT fingerprint, outcome FROM idempotency
                 WHERE account_id = ?1 AND method = ?2 AND key = ?3 AND created_at >= ?4",
        )?
        .query_row(
            params![scope.account.0, scope.method, scope.key, not_before.0],
            |r| {
                Ok(Recorded {
                    fingerprint: r.get(0)?,
                    outcome: r.get(1)?,
                })
            },
        )
        .optional()
        .db()
    }

    fn idempotency_put(
        &mut self,
        scope: KeyScope<'_>,
        record: &Recorded,
        at: Timestamp,
    ) -> Result<()> {
        // Not a change (`wrote` stays as it is): the answer it records may be a rejection.
        self.prepare(
            "INSERT INTO idempotency (account_id, method, key, fingerprint, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET fingerprint = excluded.fingerprint,
                     outcome = excluded.outcome, created_at = excluded.created_at",
        )?
        .execute(params![
            scope.account.0,
            scope.method,
            scope.key,
            record.fingerprint,
            record.outcome,
            at.0
        ])
        .db()
        .map(drop)
    }
}

/// The simulated directory, read in the write's transaction ([`SimTx`]).
impl SimTx for Db<'_> {
    fn is_unreachable(&mut self, address: &Address) -> Result<bool> {
        self.prepare("SELECT 1 FROM unreachable WHERE address = ?1")?
            .exists([address.as_str()])
            .db()
    }
}

/// Runs a parameterless statement through the statement cache (no re-parse per request).
pub(crate) fn sql(tx: &Connection, statement: &str) -> Result<()> {
    tx.prepare_cached(statement)
        .and_then(|mut s| s.execute([]))
        .db()
        .map(drop)
}

/// Drops all but the newest `keep` events of every account whose log a batch moved (`heads`),
/// in the same transaction, and records how far it pruned so catch-up can refuse to skip
/// silently.
pub(crate) fn retain(tx: &Connection, heads: &[(AccountId, u64)], keep: u64) -> Result<()> {
    for &(account, head) in heads {
        let Some(through) = head.checked_sub(keep).filter(|t| *t > 0) else {
            continue;
        };
        tx.prepare_cached("DELETE FROM events WHERE account_id = ?1 AND seq <= ?2")
            .and_then(|mut s| s.execute(params![account.0, through as i64]))
            .db()?;
        tx.prepare_cached(
            "UPDATE accounts SET pruned_through = max(pruned_through, ?2) WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![account.0, through as i64]))
        .db()?;
    }
    Ok(())
}

/// Deletes idempotency records made before `cutoff`.
pub(crate) fn forget_keys_before(tx: &Connection, cutoff: Timestamp) -> Result<()> {
    tx.prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")
        .and_then(|mut s| s.execute([cutoff.0]))
        .db()
        .map(drop)
}

pub(crate) fn log_bounds(conn: &Connection, account: AccountId) -> Result<LogBounds> {
    conn.prepare_cached(
        "SELECT head_seq, pruned_through, reset_through FROM accounts WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([account.0], |r| {
            Ok(LogBounds {
                head: r.get::<_, i64>(0)? as u64,
                pruned_through: r.get::<_, i64>(1)? as u64,
                reset_through: r.get::<_, i64>(2)? as u64,
            })
        })
    })
    .db()
}

/// A page of an account's log, `?2 < seq <= ?3`, at most `?4` rows: the statement of
/// [`read_events`].
fn catch_up_sql() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events e
         LEFT JOIN message_bodies b
             ON e.kind = {delivered} AND b.id = CAST(e.value AS INTEGER)
         WHERE e.account_id = ?1 AND e.seq > ?2 AND e.seq <= ?3
         ORDER BY e.seq LIMIT ?4",
        delivered = stored::MESSAGE_DELIVERED
    )
}

pub(crate) fn read_events(
    conn: &Connection,
    account: AccountId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    // Sized for the page up front: a catch-up's page is thousands of events, and a vector
    // grown as rows arrive copied every event read so far at each doubling. Capped, since a
    // caller may ask for any number.
    let expected = limit.min(usize::try_from(up_to.saturating_sub(after)).unwrap_or(usize::MAX));
    let mut events = Vec::with_capacity(expected.min(MOST_RESERVED_EVENTS));
    read_events_each(conn, account, after, up_to, limit, &mut |event| {
        events.push(event.clone())
    })?;
    Ok(events)
}

/// [`read_events`], handing each event to `each` as soon as its row is read; answers the first
/// and last sequences read.
pub(crate) fn read_events_each(
    conn: &Connection,
    account: AccountId,
    after: u64,
    up_to: u64,
    limit: usize,
    each: &mut dyn FnMut(&Event),
) -> Result<Option<(u64, u64)>> {
    let mut stmt = conn.prepare_cached(&catch_up_sql()).db()?;
    let mut rows = stmt
        .query(params![account.0, after as i64, up_to as i64, limit as i64])
        .db()?;
    let mut read: Option<(u64, u64)> = None;
    // Each row is read into the event of the row before (see `read_into`).
    let mut event: Option<Event> = None;
    let mut spare = None;
    while let Some(row) = rows.next().db()? {
        let event = match &mut event {
            Some(event) => event,
            None => event.insert(Event {
                sequence: 0,
                chat_guid: chat_guid_of(text_bytes(row, 1, "chat_guid").db()?).db()?,
                occurred_at: Timestamp(0),
                is_from_me: false,
                actor: None,
                change: Change::IconChanged,
            }),
        };
        read_into(row, event, &mut spare).db()?;
        let sequence = event.sequence;
        read = Some((read.map_or(sequence, |(first, _)| first), sequence));
        each(event);
    }
    Ok(read)
}

/// Most events [`read_events`] makes room for before it reads them (a catch-up's page is 2,048).
const MOST_RESERVED_EVENTS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery's value, as `delivery_value` writes it, and nothing else.
    #[test]
    fn a_delivery_value_is_read_as_written() {
        for date_read in [
            None,
            Some(Timestamp(1_765_000_000_123_456_789)),
            Some(Timestamp(-5)),
        ] {
            let value = delivery_value(42, date_read);
            assert_eq!(parse_delivery(&value), Some((42, date_read.map(|t| t.0))));
        }
        for bad in ["", " ", "4 ", " 4", "4 5 6", "4  5", "x", "4 x"] {
            assert_eq!(parse_delivery(bad), None, "{bad:?}");
        }
    }

    /// A catch-up's page walks the account's log by its key, and finds each delivery's body
    /// by its id: no scan of either table, on a database never analysed.
    #[test]
    fn a_catch_up_searches_the_log_and_each_body_by_key() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        assert_eq!(
            plan(&conn, &catch_up_sql(), 4),
            [
                "SEARCH e USING PRIMARY KEY (account_id=? AND seq>? AND seq<?)",
                "SEARCH b USING INTEGER PRIMARY KEY (rowid=?) LEFT-JOIN",
            ]
        );
    }

    /// Two groups `g1` and `g2` (keys 1 and 2), each of `a@x.com` and `b@x.com`, and the
    /// writer's transaction open.
    fn two_groups() -> (Connection, [Address; 2]) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO groups (id, identifier, group_id, created_at)
                 VALUES (1, 'g1', 'G1', 0), (2, 'g2', 'G2', 0);
             INSERT INTO members (group_key, address)
                 VALUES (1, 'a@x.com'), (1, 'b@x.com'), (2, 'a@x.com'), (2, 'b@x.com');
             BEGIN IMMEDIATE;",
        )
        .unwrap();
        let people = ["a@x.com", "b@x.com"].map(|a| Address::from_trusted(a.to_owned()));
        (conn, people)
    }

    fn stored_name(conn: &Connection, key: i64) -> Option<String> {
        conn.query_row(
            "SELECT display_name FROM groups WHERE id = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn names(rows: Vec<GroupRow>) -> Vec<Option<String>> {
        rows.into_iter().map(|g| g.display_name).collect()
    }

    /// The writer stores a batch's display names at its end, yet every read of `groups` in
    /// the batch after a rename sees it: the group's look-up when it is not cached, the
    /// groups of an address, the groups of several; and what the writer runs outside a unit
    /// of work (admin jobs, COMMIT) after [`WriterCache::flush`].
    #[test]
    fn a_read_after_a_deferred_rename_sees_it() {
        let (conn, [a, b]) = two_groups();
        let mut cache = WriterCache::default();
        let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
        db.group("g1").unwrap();
        db.set_display_name(GroupKey(1), "one").unwrap();
        // Not cached: its row is read after the rename.
        db.set_display_name(GroupKey(2), "two").unwrap();
        assert_eq!(stored_name(&conn, 1), None, "deferred");
        assert_eq!(
            db.group("g1").unwrap().unwrap().display_name.unwrap(),
            "one"
        );
        assert_eq!(
            db.group("g2").unwrap().unwrap().display_name.unwrap(),
            "two"
        );
        assert_eq!(
            stored_name(&conn, 2).unwrap(),
            "two",
            "stored before the read"
        );

        db.set_display_name(GroupKey(1), "uno").unwrap();
        db.set_display_name(GroupKey(1), "eins").unwrap();
        assert_eq!(stored_name(&conn, 1).unwrap(), "one", "deferred again");
        assert_eq!(
            names(db.groups_of(&a).unwrap()),
            [Some("eins".into()), Some("two".into())]
        );
        db.set_display_name(GroupKey(2), "dos").unwrap();
        assert_eq!(
            names(db.groups_with_all(&[a.clone(), b.clone()]).unwrap()),
            [Some("eins".into()), Some("dos".into())]
        );

        // A later unit of work, after the cache forgot the groups.
        db.set_display_name(GroupKey(1), "un").unwrap();
        drop(db);
        cache.forget_groups();
        let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
        assert_eq!(db.group("g1").unwrap().unwrap().display_name.unwrap(), "un");
        assert!(
            !db.wrote,
            "storing what earlier units deferred is not this one's write"
        );

        // What the writer runs outside a unit of work.
        drop(db);
        let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
        db.set_display_name(GroupKey(2), "deux").unwrap();
        drop(db);
        assert!(!cache.is_flushed());
        cache.flush(&conn).unwrap();
        assert!(cache.is_flushed());
        assert_eq!(stored_name(&conn, 2).unwrap(), "deux");
    }

    /// A batch's names stored together: each group's last name, whatever their number.
    #[test]
    fn a_batch_of_renames_is_stored_whole() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        for key in 1..=140 {
            conn.execute(
                "INSERT INTO groups (id, identifier, group_id, created_at) VALUES (?1, ?1, ?1, 0)",
                [key],
            )
            .unwrap();
        }
        for count in 0..=130 {
            let mut cache = WriterCache::default();
            let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
            for key in 1..=count {
                db.set_display_name(GroupKey(key), "first").unwrap();
                db.set_display_name(GroupKey(key), &format!("{count} {key}"))
                    .unwrap();
            }
            drop(db);
            cache.flush(&conn).unwrap();
            let renamed: i64 = conn
                .query_row(
                    "SELECT count(*) FROM groups WHERE display_name = ?1 || ' ' || id",
                    [count],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(renamed, count, "{count} renames");
        }
    }

    /// Storing what the batch deferred is a write: if it fails in a unit of work that has
    /// written nothing itself, that unit still counts as having written, so the writer fails
    /// the whole batch, as when the rename's own `UPDATE` failed.
    #[test]
    fn a_failed_deferred_rename_fails_the_unit_that_stores_it() {
        let (conn, [a, _]) = two_groups();
        conn.execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE OF display_name ON groups
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        let mut cache = WriterCache::default();
        let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
        db.set_display_name(GroupKey(1), "one").unwrap();
        drop(db);
        let mut db = Db::with_cache(&conn, &mut cache, Timestamp(0));
        assert!(db.groups_of(&a).is_err());
        assert!(db.wrote);
        drop(db);
        assert!(cache.flush(&conn).is_err(), "the commit fails too");
    }

    /// The query plan of `sql` with its `params` parameters unbound, one line per step.
    fn plan(conn: &Connection, sql: &str, params: usize) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(
            rusqlite::params_from_iter(std::iter::repeat_n(rusqlite::types::Null, params)),
            |r| r.get::<_, String>(3),
        )
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// Each listing searches an index for its first page and for a page deep down, on a
    /// database that was never analysed (as every new one is).
    #[test]
    fn every_listing_searches_an_index() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        for (one_chat, unread, index) in [
            (
                true,
                false,
                "INDEX chat_messages_by_chat (account_id=? AND chat_guid=? AND place<?)",
            ),
            (false, false, "PRIMARY KEY (account_id=? AND place<?)"),
            (
                true,
                true,
                "INDEX chat_messages_unread_by_chat (account_id=? AND chat_guid=? AND place<?)",
            ),
            (
                false,
                true,
                "INDEX chat_messages_unread (account_id=? AND place<?)",
            ),
        ] {
            assert_eq!(
                plan(&conn, &listing_sql(one_chat, unread), 8),
                [format!("SEARCH chat_messages USING {index}")],
                "one chat: {one_chat}, unread: {unread}"
            );
        }
    }
}

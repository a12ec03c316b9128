//! SQL shared by the writer and the readers: error mapping, the engine's read queries, and
//! rows to domain values. The queries run through [`Query`], which the writer's transaction
//! and a read snapshot both implement (synchronously: the engine's port is synchronous).

use std::borrow::Cow;

use imgroups_core::port::tx::stored;
use imgroups_core::port::{GroupRow, MessageQuery};
use imgroups_core::{
    AccountId, Address, ChatGuid, Error, Event, GroupKey, Message, Result, Timestamp,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::describe;

/// Parameters of one statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Maps a PostgreSQL failure to a domain error: a lost connection, a conflict between
/// transactions or a server shutting down is transient and retryable; anything else is logged
/// here and reported as internal (SQL never reaches a client).
pub(crate) fn pg_error(err: tokio_postgres::Error) -> Error {
    let transient = err.is_closed()
        || err.code().is_some_and(|code| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
            ]
            .contains(code)
                || code.code().starts_with("08")
        })
        // No code at all: the socket failed.
        || err.code().is_none();
    if transient {
        tracing::warn!(error = %err, "database unavailable");
        Error::unavailable("the database is unavailable; retry")
    } else {
        tracing::error!(error = %describe(&err), "database error");
        Error::internal()
    }
}

pub(crate) trait PgResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> PgResult<T> for std::result::Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T> {
        self.map_err(pg_error)
    }
}

/// Runs a statement synchronously and returns its rows.
pub(crate) trait Query {
    fn rows(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>>;

    fn row(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

pub(crate) fn group_from_row(row: &Row) -> GroupRow {
    GroupRow {
        key: GroupKey(row.get(0)),
        identifier: row.get(1),
        group_id: row.get(2),
        display_name: row.get(3),
        icon_hash: row.get(4),
    }
}

pub(crate) fn account_address(q: &mut impl Query, account: AccountId) -> Result<Address> {
    q.row("SELECT address FROM accounts WHERE id = $1", &[&account.0])?
        .map(|row| Address::from_trusted(row.get::<_, String>(0)))
        .ok_or_else(|| {
            tracing::error!(%account, "token names an account that does not exist");
            Error::internal()
        })
}

pub(crate) fn group(q: &mut impl Query, identifier: &str) -> Result<Option<GroupRow>> {
    Ok(q.row(
        "SELECT id, identifier, group_id, display_name, icon_hash FROM groups
             WHERE identifier = $1",
        &[&identifier],
    )?
    .map(|row| group_from_row(&row)))
}

pub(crate) fn members(q: &mut impl Query, group: GroupKey) -> Result<Vec<Address>> {
    Ok(q.rows(
        "SELECT address FROM members WHERE group_key = $1 ORDER BY id",
        &[&group.0],
    )?
    .iter()
    .map(|row| Address::from_trusted(row.get::<_, String>(0)))
    .collect())
}

pub(crate) fn icon(q: &mut impl Query, group: GroupKey) -> Result<Option<(Vec<u8>, String)>> {
    Ok(q.row(
        "SELECT data, mime FROM icons WHERE group_key = $1",
        &[&group.0],
    )?
    .map(|row| (row.get(0), row.get(1))))
}

pub(crate) fn groups_of(q: &mut impl Query, address: &Address) -> Result<Vec<GroupRow>> {
    Ok(q.rows(
        "SELECT g.id, g.identifier, g.group_id, g.display_name, g.icon_hash
             FROM members m JOIN groups g ON g.id = m.group_key
             WHERE m.address = $1 ORDER BY g.id",
        &[&address.as_str()],
    )?
    .iter()
    .map(group_from_row)
    .collect())
}

/// Groups whose members include every one of `addresses`. One statement: it first counts
/// each address's groups, stopping at 256, and walks the groups of the address with the
/// fewest, checking the others by index; so its cost follows the rarest address.
pub(crate) fn groups_with_all(q: &mut impl Query, addresses: &[Address]) -> Result<Vec<GroupRow>> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<&str> = addresses.iter().map(Address::as_str).collect();
    Ok(q.rows(
        "WITH rarest AS (
                 SELECT a.address
                 FROM unnest($1::text[]) AS a(address)
                 ORDER BY (SELECT count(*) FROM (SELECT 1 FROM members m
                           WHERE m.address = a.address LIMIT 256) AS s)
                 LIMIT 1)
             SELECT g.id, g.identifier, g.group_id, g.display_name, g.icon_hash
             FROM rarest JOIN members m0 ON m0.address = rarest.address
             JOIN groups g ON g.id = m0.group_key
             WHERE NOT EXISTS (
                 SELECT 1 FROM unnest($1::text[]) AS b(address)
                 WHERE NOT EXISTS (SELECT 1 FROM members m
                                   WHERE m.group_key = g.id AND m.address = b.address))
             ORDER BY g.id",
        &[&all],
    )?
    .iter()
    .map(group_from_row)
    .collect())
}

pub(crate) fn has_direct_chat(
    q: &mut impl Query,
    account: AccountId,
    address: &Address,
) -> Result<bool> {
    Ok(q.row(
        "SELECT 1 FROM direct_chats WHERE account_id = $1 AND address = $2",
        &[&account.0, &address.as_str()],
    )?
    .is_some())
}

pub(crate) fn count_direct_chats(q: &mut impl Query, account: AccountId) -> Result<u64> {
    Ok(q.row(
        "SELECT count(*) FROM direct_chats WHERE account_id = $1",
        &[&account.0],
    )?
    .map(|row| row.get::<_, i64>(0).max(0) as u64)
    .unwrap_or(0))
}

fn message_from_row(row: &Row) -> Result<(u64, Message)> {
    let place: i64 = row.get(0);
    let body: String = row.get(1);
    let message = stored::decode_message(&body).ok_or_else(|| {
        tracing::error!(place, "a stored message that does not decode");
        Error::internal()
    })?;
    // Messages moved over from before places existed sit below 0, after every other. Their
    // place goes out and comes back (page tokens, rewrites) through the same two's-complement
    // cast as in the SQLite store: clamping them all to 0 made a page token of 0 that listed
    // them again, page after page.
    Ok((place as u64, message))
}

pub(crate) fn message(
    q: &mut impl Query,
    account: AccountId,
    guid: &str,
) -> Result<Option<(u64, Message)>> {
    q.row(
        "SELECT place, body FROM chat_messages WHERE account_id = $1 AND guid = $2",
        &[&account.0, &guid],
    )?
    .as_ref()
    .map(message_from_row)
    .transpose()
}

pub(crate) fn list_messages(
    q: &mut impl Query,
    account: AccountId,
    query: &MessageQuery,
) -> Result<Vec<(u64, Message)>> {
    let chat = query.chat.as_ref().map(ToString::to_string);
    let below = query.below.map(|p| p as i64);
    let before = query.created_before.map(|t| t.0);
    let after = query.created_after.map(|t| t.0);
    let limit = query.limit as i64;
    let params: Params<'_> = &[
        &account.0,
        &chat,
        &below,
        &query.is_from_me,
        &query.is_read,
        &before,
        &after,
        &limit,
    ];
    // Four statements, so that each has an index that serves its order: the chat's, or the
    // primary key; and, for what is unread (a mark-read reads it at every call), the partial
    // indexes of unread messages, which hold only those. The page bound is a plain range on
    // `place` (not `$3 IS NULL OR …`): our plans are generic (see `pg_config`), and only then
    // is it an index condition, so a page deep in a long chat starts where it should instead
    // of filtering every newer message.
    macro_rules! select {
        ($scope:literal) => {
            concat!(
                "SELECT place, body FROM chat_messages WHERE account_id = $1 AND ",
                $scope,
                " AND place < COALESCE($3::bigint, 9223372036854775807)
                  AND ($4::boolean IS NULL OR is_from_me = $4)
                  AND ($5::boolean IS NULL OR is_read = $5)
                  AND ($6::bigint IS NULL OR created_at < $6)
                  AND ($7::bigint IS NULL OR created_at >= $7)
                ORDER BY place DESC LIMIT $8"
            )
        };
    }
    // `NOT is_read` spelled as the indexes' condition, so that a generic plan can use them.
    let sql = match (chat.is_some(), query.is_read == Some(false)) {
        (true, false) => select!("chat_guid = $2::text"),
        (true, true) => select!("chat_guid = $2::text AND NOT is_read"),
        (false, false) => select!("$2::text IS NULL"),
        (false, true) => select!("$2::text IS NULL AND NOT is_read"),
    };
    let rows = q.rows(sql, params)?;
    rows.iter().map(message_from_row).collect()
}

/// [`imgroups_core::port::Reader::message_times`]: the two columns only, no body decoded.
pub(crate) fn message_times(
    q: &mut impl Query,
    account: AccountId,
    since: Timestamp,
    limit: usize,
) -> Result<Vec<(Timestamp, bool)>> {
    let limit = limit as i64;
    let rows = q.rows(
        "SELECT created_at, is_from_me FROM chat_messages
         WHERE account_id = $1 AND created_at >= $2 ORDER BY place DESC LIMIT $3",
        &[&account.0, &since.0, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|row| (Timestamp(row.get(0)), row.get(1)))
        .collect())
}

pub(crate) fn background_hash(q: &mut impl Query, chat: &str) -> Result<Option<Vec<u8>>> {
    Ok(q.row(
        "SELECT hash FROM chat_backgrounds WHERE chat_key = $1",
        &[&chat],
    )?
    .map(|row| row.get(0)))
}

pub(crate) fn observer_cursor(q: &mut impl Query, source: &str) -> Result<Option<String>> {
    Ok(q.row(
        "SELECT cursor FROM observer_cursors WHERE source = $1",
        &[&source],
    )?
    .map(|row| row.get(0)))
}

pub(crate) const EVENTS: &str = "SELECT seq, chat_guid, occurred_at, is_from_me, actor, kind, value
     FROM events WHERE account_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";

pub(crate) fn event_from_row(row: &Row) -> Result<Event> {
    let corrupt = |what: &str| {
        tracing::error!(what, "an event row cannot be read");
        Error::internal()
    };
    let guid: &str = row.get(1);
    let kind: i64 = row.get(5);
    Ok(Event {
        sequence: row.get::<_, i64>(0) as u64,
        chat_guid: ChatGuid::parse(guid).map_err(|_| corrupt("chat_guid"))?,
        occurred_at: Timestamp(row.get(2)),
        is_from_me: row.get(3),
        actor: row.get::<_, Option<String>>(4).map(Address::from_trusted),
        change: stored::decode(kind, row.get::<_, Option<&str>>(6).map(Cow::Borrowed))
            .ok_or_else(|| corrupt("kind"))?,
    })
}

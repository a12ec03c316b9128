//! Injected faults (simulator controls), in SQL. Changes run on the writer's connection
//! (`SqliteStore::write_with`), so taking one use of a counted fault is one `UPDATE` ordered
//! with every other write; other processes on the database (a second server, the CLI) take
//! SQLite's write lock for theirs, so a count is never spent twice.

use imgroups_core::port::{Fault, NewFault};
use imgroups_core::{AccountId, Address, Error, FaultId, Result, Timestamp};
use rusqlite::{params, Connection};

use crate::tx::SqlResult;

const SELECT: &str = "SELECT f.id, f.account_id, a.address, f.method, f.error_code, f.retryable,
     f.latency_ms, f.remaining, f.until, f.created_at
     FROM faults f JOIN accounts a ON a.id = f.account_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Fault> {
    Ok(Fault {
        id: FaultId(r.get(0)?),
        address: Address::from_trusted(r.get(2)?),
        spec: NewFault {
            account: AccountId(r.get(1)?),
            method: r.get(3)?,
            error_code: r.get(4)?,
            retryable: r.get(5)?,
            latency_ms: r.get::<_, i64>(6)?.max(0) as u64,
            count: r
                .get::<_, Option<i64>>(7)?
                .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
            until: r.get::<_, Option<i64>>(8)?.map(Timestamp),
        },
        created_at: Timestamp(r.get(9)?),
    })
}

/// Stores `fault`, armed at once.
pub(crate) fn add(conn: &Connection, fault: &NewFault) -> Result<Fault> {
    let inserted = conn
        .execute(
            "INSERT INTO faults (account_id, method, error_code, retryable, latency_ms,
                 remaining, until, created_at)
             SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM accounts WHERE id = ?1",
            params![
                fault.account.0,
                fault.method,
                fault.error_code,
                fault.retryable,
                i64::try_from(fault.latency_ms).unwrap_or(i64::MAX),
                fault.count.map(i64::from),
                fault.until.map(|t| t.0),
                crate::clock::now(conn)?.0,
            ],
        )
        .db()?;
    if inserted == 0 {
        return Err(Error::invalid("no such account").with("field", "account"));
    }
    let id = conn.last_insert_rowid();
    conn.query_row(&format!("{SELECT} WHERE f.id = ?1"), [id], from_row)
        .db()
}

/// The armed faults at `now`, by id.
pub(crate) fn armed(conn: &Connection, now: Timestamp) -> Result<Vec<Fault>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "{SELECT} WHERE (f.remaining IS NULL OR f.remaining > 0)
               AND (f.until IS NULL OR f.until > ?1)
             ORDER BY f.id"
        ))
        .db()?;
    let rows = stmt.query_map([now.0], from_row).db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Removes fault `id`, or else every fault of `account`, or else every fault.
pub(crate) fn clear(
    conn: &Connection,
    account: Option<AccountId>,
    id: Option<FaultId>,
) -> Result<u64> {
    let removed = match (id, account) {
        (Some(id), _) => conn.execute("DELETE FROM faults WHERE id = ?1", [id.0]),
        (None, Some(account)) => {
            conn.execute("DELETE FROM faults WHERE account_id = ?1", [account.0])
        }
        (None, None) => conn.execute("DELETE FROM faults", []),
    }
    .db()?;
    Ok(removed as u64)
}

/// Takes one use of fault `id` at `now`: whether it was armed. One statement, so the check
/// and the decrement cannot be split by another writer. (`NULL - 1` is `NULL`: an uncounted
/// fault matches, and stays uncounted.)
pub(crate) fn take(conn: &Connection, id: FaultId, now: Timestamp) -> Result<bool> {
    let taken = conn
        .prepare_cached(
            "UPDATE faults SET remaining = remaining - 1
             WHERE id = ?1 AND (remaining IS NULL OR remaining > 0)
               AND (until IS NULL OR until > ?2)",
        )
        .and_then(|mut s| s.execute(params![id.0, now.0]))
        .db()?;
    Ok(taken == 1)
}

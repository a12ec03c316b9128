//! Injected faults, in SQL. None of them is cached by the writers, so no write lock: taking one
//! use of a counted fault is one `UPDATE`, whose row lock orders it with every other process's.

use deadpool_postgres::Client;
use imgroups_core::port::{Fault, NewFault};
use imgroups_core::{AccountId, Address, Error, FaultId, Result, Timestamp};
use tokio_postgres::Row;

use crate::sql::PgResult;

const FAULT: &str = "SELECT f.id, f.account_id, a.address, f.method, f.error_code, f.retryable,
     f.latency_ms, f.remaining, f.until, f.created_at
     FROM faults f JOIN accounts a ON a.id = f.account_id";

fn fault_from_row(r: &Row) -> Fault {
    Fault {
        id: FaultId(r.get(0)),
        address: Address::from_trusted(r.get::<_, String>(2)),
        spec: NewFault {
            account: AccountId(r.get(1)),
            method: r.get(3),
            error_code: r.get(4),
            retryable: r.get(5),
            latency_ms: r.get::<_, i64>(6).max(0) as u64,
            count: r
                .get::<_, Option<i64>>(7)
                .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
            until: r.get::<_, Option<i64>>(8).map(Timestamp),
        },
        created_at: Timestamp(r.get(9)),
    }
}

pub(crate) async fn add_fault(client: &Client, fault: &NewFault) -> Result<Fault> {
    let row = client
        .query_opt(
            "INSERT INTO faults (account_id, method, error_code, retryable, latency_ms,
                 remaining, until, created_at)
             SELECT id, $2::text, $3::text, $4::boolean, $5::bigint, $6::bigint, $7::bigint,
                 $8::bigint
             FROM accounts WHERE id = $1
             RETURNING id",
            &[
                &fault.account.0,
                &fault.method,
                &fault.error_code,
                &fault.retryable,
                &i64::try_from(fault.latency_ms).unwrap_or(i64::MAX),
                &fault.count.map(i64::from),
                &fault.until.map(|t| t.0),
                &Timestamp::now().0,
            ],
        )
        .await
        .db()?
        .ok_or_else(|| Error::invalid("no such account").with("field", "account"))?;
    let id: i64 = row.get(0);
    let sql = format!("{FAULT} WHERE f.id = $1");
    let row = client.query_one(&sql, &[&id]).await.db()?;
    Ok(fault_from_row(&row))
}

/// The armed faults at `now`, by id.
pub(crate) async fn faults(client: &Client, now: Timestamp) -> Result<Vec<Fault>> {
    let sql = format!(
        "{FAULT} WHERE (f.remaining IS NULL OR f.remaining > 0)
           AND (f.until IS NULL OR f.until > $1)
         ORDER BY f.id"
    );
    let rows = client.query(&sql, &[&now.0]).await.db()?;
    Ok(rows.iter().map(fault_from_row).collect())
}

/// Removes fault `id`, or else every fault of `account`, or else every fault.
pub(crate) async fn clear_faults(
    client: &Client,
    account: Option<AccountId>,
    id: Option<FaultId>,
) -> Result<u64> {
    match (id, account) {
        (Some(id), _) => {
            client
                .execute("DELETE FROM faults WHERE id = $1", &[&id.0])
                .await
        }
        (None, Some(account)) => {
            client
                .execute("DELETE FROM faults WHERE account_id = $1", &[&account.0])
                .await
        }
        (None, None) => client.execute("DELETE FROM faults", &[]).await,
    }
    .db()
}

/// Takes one use of fault `id` at `now`: whether it was armed. (`NULL - 1` is `NULL`: an
/// uncounted fault matches and stays uncounted.) Under READ COMMITTED, an `UPDATE` that
/// waited for another's row lock re-checks its `WHERE` on the new row, so a count is never
/// spent twice.
pub(crate) async fn take_fault(client: &Client, id: FaultId, now: Timestamp) -> Result<bool> {
    let statement = client
        .prepare_cached(
            "UPDATE faults SET remaining = remaining - 1
             WHERE id = $1 AND (remaining IS NULL OR remaining > 0)
               AND (until IS NULL OR until > $2)",
        )
        .await
        .db()?;
    let taken = client.execute(&statement, &[&id.0, &now.0]).await.db()?;
    Ok(taken == 1)
}

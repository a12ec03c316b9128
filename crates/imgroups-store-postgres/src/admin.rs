//! Accounts, tokens, the simulated directory, the clock and resets, in SQL, each on a pooled
//! connection in a transaction of its own (the engine's write batches do not carry them).
//! Webhook endpoints are in `hooks`, injected faults in `faults`.
//! Changes to what the writer caches (accounts, the directory) take the write lock and move
//! `writer_state.epoch`, so they are ordered with the batches and every writer notices them.

use deadpool_postgres::{Client, Transaction};
use imgroups_core::clock::SimClock;
use imgroups_core::port::{AccountInfo, AdminTokenInfo, TokenInfo, TokenRef};
use imgroups_core::tokens::hash_token;
use imgroups_core::{AccountId, Address, Error, ErrorKind, Result, Timestamp, TokenId};
use tokio_postgres::Row;

use crate::sql::PgResult;
use crate::writer::WRITE_LOCK;

/// Opens a transaction ordered with the write batches, and marks the writers' caches stale.
pub(crate) async fn locked(client: &mut Client) -> Result<Transaction<'_>> {
    let tx = client.transaction().await.db()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .db()?;
    tx.execute(
        "UPDATE writer_state SET epoch = epoch + 1 WHERE id = 1",
        &[],
    )
    .await
    .db()?;
    Ok(tx)
}

pub(crate) async fn ensure_account(
    client: &mut Client,
    address: &Address,
) -> Result<(AccountId, bool)> {
    let tx = locked(client).await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO accounts (address, created_at) VALUES ($1, $2)
             ON CONFLICT (address) DO NOTHING RETURNING id",
            &[&address.as_str(), &Timestamp::now().0],
        )
        .await
        .db()?;
    let found = match inserted {
        Some(row) => (AccountId(row.get(0)), true),
        None => {
            let row = tx
                .query_one(
                    "SELECT id FROM accounts WHERE address = $1",
                    &[&address.as_str()],
                )
                .await
                .db()?;
            (AccountId(row.get(0)), false)
        }
    };
    tx.commit().await.db()?;
    Ok(found)
}

pub(crate) async fn find_account(client: &Client, address: &Address) -> Result<Option<AccountId>> {
    let statement = client
        .prepare_cached("SELECT id FROM accounts WHERE address = $1")
        .await
        .db()?;
    Ok(client
        .query_opt(&statement, &[&address.as_str()])
        .await
        .db()?
        .map(|row| AccountId(row.get(0))))
}

pub(crate) async fn add_token(client: &Client, account: AccountId, hash: &[u8]) -> Result<TokenId> {
    let row = client
        .query_one(
            "INSERT INTO tokens (account_id, hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[&account.0, &hash, &Timestamp::now().0],
        )
        .await
        .db()?;
    Ok(TokenId(row.get(0)))
}

pub(crate) async fn list_tokens(client: &Client) -> Result<Vec<TokenInfo>> {
    let rows = client
        .query(
            "SELECT t.id, a.address, t.created_at, t.revoked_at IS NOT NULL
             FROM tokens t JOIN accounts a ON a.id = t.account_id ORDER BY t.id",
            &[],
        )
        .await
        .db()?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            id: TokenId(r.get(0)),
            address: Address::from_trusted(r.get::<_, String>(1)),
            created_at: Timestamp(r.get(2)),
            revoked: r.get(3),
        })
        .collect())
}

/// Revokes a token and, in the same transaction, notifies every listening process (see
/// `notices`): a committed revocation is always announced. Revocations are rare, so NOTIFY's
/// commit-time lock costs nothing here, unlike on the write path.
pub(crate) async fn revoke_token(
    client: &mut Client,
    token: &TokenRef,
    node: &str,
) -> Result<TokenId> {
    let tx = client.transaction().await.db()?;
    let now = Timestamp::now().0;
    let row = match token {
        TokenRef::Id(id) => tx
            .query_opt(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING id",
                &[&id.0, &now],
            )
            .await
            .db()?,
        TokenRef::Secret(secret) => tx
            .query_opt(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE hash = $1
                 RETURNING id",
                &[&hash_token(secret), &now],
            )
            .await
            .db()?,
    };
    let id = row
        .map(|r| TokenId(r.get(0)))
        .ok_or_else(|| Error::invalid("no such token").with("field", "token"))?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[
            &crate::notices::CHANNEL,
            &crate::notices::revoked_payload(node),
        ],
    )
    .await
    .db()?;
    tx.commit().await.db()?;
    Ok(id)
}

pub(crate) async fn authenticate(client: &Client, token: &str) -> Result<AccountId> {
    let statement = client
        .prepare_cached("SELECT account_id, revoked_at IS NOT NULL FROM tokens WHERE hash = $1")
        .await
        .db()?;
    let row = client
        .query_opt(&statement, &[&hash_token(token)])
        .await
        .db()?;
    match row.map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(1))) {
        Some((account, false)) => Ok(AccountId(account)),
        Some((_, true)) => Err(Error::new(
            ErrorKind::TokenBlocked,
            "this token has been revoked",
        )),
        None => Err(Error::new(ErrorKind::Unauthenticated, "unknown token")),
    }
}

pub(crate) async fn set_unreachable(
    client: &mut Client,
    address: &Address,
    unreachable: bool,
) -> Result<()> {
    let tx = locked(client).await?;
    let sql = if unreachable {
        "INSERT INTO unreachable (address) VALUES ($1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM unreachable WHERE address = $1"
    };
    tx.execute(sql, &[&address.as_str()]).await.db()?;
    tx.commit().await.db()
}

/// The addresses marked unreachable, sorted.
pub(crate) async fn unreachable(client: &Client) -> Result<Vec<Address>> {
    let rows = client
        .query("SELECT address FROM unreachable ORDER BY address", &[])
        .await
        .db()?;
    Ok(rows
        .iter()
        .map(|r| Address::from_trusted(r.get::<_, String>(0)))
        .collect())
}

pub(crate) async fn list_accounts(client: &Client) -> Result<Vec<AccountInfo>> {
    let rows = client
        .query(
            "SELECT id, address, created_at FROM accounts ORDER BY id",
            &[],
        )
        .await
        .db()?;
    Ok(rows
        .iter()
        .map(|r| AccountInfo {
            id: AccountId(r.get(0)),
            address: Address::from_trusted(r.get::<_, String>(1)),
            created_at: Timestamp(r.get(2)),
        })
        .collect())
}

/// Stores an admin token's hash, in a table of its own: an account's token is never an
/// admin token, nor the other way round.
pub(crate) async fn add_admin_token(client: &Client, hash: &[u8]) -> Result<()> {
    client
        .execute(
            "INSERT INTO admin_tokens (hash, created_at) VALUES ($1, $2)",
            &[&hash, &Timestamp::now().0],
        )
        .await
        .db()
        .map(drop)
}

/// `Ok` if `token` is an admin token.
pub(crate) async fn authenticate_admin(client: &Client, token: &str) -> Result<()> {
    let statement = client
        .prepare_cached("SELECT 1 FROM admin_tokens WHERE hash = $1")
        .await
        .db()?;
    match client
        .query_opt(&statement, &[&hash_token(token)])
        .await
        .db()?
    {
        Some(_) => Ok(()),
        None => Err(Error::new(
            ErrorKind::Unauthenticated,
            "unknown admin token",
        )),
    }
}

/// Every admin token, by id.
pub(crate) async fn list_admin_tokens(client: &Client) -> Result<Vec<AdminTokenInfo>> {
    let rows = client
        .query("SELECT id, created_at FROM admin_tokens ORDER BY id", &[])
        .await
        .db()?;
    Ok(rows
        .iter()
        .map(|r| AdminTokenInfo {
            id: TokenId(r.get(0)),
            created_at: Timestamp(r.get(1)),
        })
        .collect())
}

/// Removes an admin token: its row is its only trace, and every console call reads it.
pub(crate) async fn revoke_admin_token(client: &Client, token: &TokenRef) -> Result<TokenId> {
    let row = match token {
        TokenRef::Id(id) => {
            client
                .query_opt(
                    "DELETE FROM admin_tokens WHERE id = $1 RETURNING id",
                    &[&id.0],
                )
                .await
        }
        TokenRef::Secret(secret) => {
            client
                .query_opt(
                    "DELETE FROM admin_tokens WHERE hash = $1 RETURNING id",
                    &[&hash_token(secret)],
                )
                .await
        }
    }
    .db()?;
    row.map(|r| TokenId(r.get(0)))
        .ok_or_else(|| Error::invalid("no such admin token").with("field", "token"))
}

pub(crate) async fn forget_keys_before(client: &Client, cutoff: Timestamp) -> Result<()> {
    client
        .execute(
            "DELETE FROM idempotency WHERE created_at < $1",
            &[&cutoff.0],
        )
        .await
        .db()
        .map(drop)
}

/// Clears the simulated world (see [`imgroups_core::port::Store::reset`]) under the write
/// lock, so it is ordered with every node's batches and their caches are marked stale.
/// `TRUNCATE` frees a table at once whatever its size (and takes an exclusive lock on it,
/// which readers wait for only as long as this transaction lasts).
pub(crate) async fn reset(client: &mut Client, accounts: bool, node: &str) -> Result<()> {
    let tx = locked(client).await?;
    clear(&tx, accounts, node).await?;
    tx.commit().await.db()
}

/// A reset's work inside `tx` (taken with [`locked`]); a snapshot import begins with it.
pub(crate) async fn clear(tx: &Transaction<'_>, accounts: bool, node: &str) -> Result<()> {
    tx.batch_execute(
        "TRUNCATE icons, members, groups, direct_chats, chat_messages, chat_backgrounds, events,
             idempotency, faults, unreachable;
         UPDATE accounts SET reset_through = head_seq WHERE reset_through <> head_seq;
         UPDATE webhooks w SET cursor = a.head_seq FROM accounts a
             WHERE a.id = w.account_id AND w.cursor < a.head_seq;
         UPDATE sim_state SET resets = resets + 1 WHERE id = 1;",
    )
    .await
    .db()?;
    if accounts {
        tx.batch_execute("TRUNCATE webhooks, tokens, faults, direct_chats, accounts;")
            .await
            .db()?;
        // Every account token is gone: every node forgets the ones it checked.
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[
                &crate::notices::CHANNEL,
                &crate::notices::revoked_payload(node),
            ],
        )
        .await
        .db()?;
    }
    Ok(())
}

/// How many resets the database has had.
pub(crate) async fn resets(client: &Client) -> Result<u64> {
    let row = client
        .query_one("SELECT resets FROM sim_state WHERE id = 1", &[])
        .await
        .db()?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// The controllable clock, if the database has one.
pub(crate) async fn clock(client: &Client) -> Result<Option<SimClock>> {
    let row = client
        .query_one(
            "SELECT sim_now, sim_seed, sim_ids FROM writer_state WHERE id = 1",
            &[],
        )
        .await
        .db()?;
    Ok(clock_of(&row))
}

fn clock_of(row: &Row) -> Option<SimClock> {
    let (now, seed, ids): (Option<i64>, Option<i64>, i64) = (row.get(0), row.get(1), row.get(2));
    now.map(|now| SimClock {
        now: Timestamp(now),
        seed: seed.unwrap_or(0) as u64,
        ids: ids.max(0) as u64,
    })
}

/// The database's time: the controllable clock's, or else the system's.
pub(crate) async fn now(client: &Client) -> Result<Timestamp> {
    Ok(clock(client).await?.map_or_else(Timestamp::now, |c| c.now))
}

pub(crate) async fn put_clock(tx: &Transaction<'_>, clock: Option<SimClock>) -> Result<()> {
    tx.execute(
        "UPDATE writer_state SET sim_now = $1, sim_seed = $2, sim_ids = $3 WHERE id = 1",
        &[
            &clock.map(|c| c.now.0),
            &clock.map(|c| c.seed as i64),
            &clock.map_or(0, |c| c.ids as i64),
        ],
    )
    .await
    .db()
    .map(drop)
}

/// Gives the database a controllable clock seeded with `seed` (the same seed keeps the one it
/// has), or takes it away; ordered with the write batches, which read it when they begin.
pub(crate) async fn set_clock(client: &mut Client, seed: Option<u64>) -> Result<Option<SimClock>> {
    let tx = locked(client).await?;
    let row = tx
        .query_one(
            "SELECT sim_now, sim_seed, sim_ids FROM writer_state WHERE id = 1",
            &[],
        )
        .await
        .db()?;
    let current = clock_of(&row);
    let next = match (current, seed) {
        (Some(clock), Some(seed)) if clock.seed == seed => return Ok(Some(clock)),
        (Some(clock), Some(seed)) => {
            return Err(Error::precondition(
                imgroups_core::Reason::ClockNotControllable,
                format!(
                    "this store's controllable clock was started with seed {}, not {seed}: use \
                     the same seed, or a new store",
                    clock.seed
                ),
            )
            .with("field", "seed"))
        }
        (None, Some(seed)) => Some(SimClock::start(seed)),
        (_, None) => None,
    };
    if next != current {
        put_clock(&tx, next).await?;
        tx.commit().await.db()?;
    }
    Ok(next)
}

/// Moves the controllable clock forward by `nanos`, ordered with the write batches.
pub(crate) async fn advance_clock(client: &mut Client, nanos: i64) -> Result<SimClock> {
    let tx = locked(client).await?;
    let row = tx
        .query_one(
            "SELECT sim_now, sim_seed, sim_ids FROM writer_state WHERE id = 1",
            &[],
        )
        .await
        .db()?;
    let clock = clock_of(&row)
        .ok_or_else(imgroups_core::clock::no_controllable_clock)?
        .advanced(nanos)?;
    put_clock(&tx, Some(clock)).await?;
    tx.commit().await.db()?;
    Ok(clock)
}

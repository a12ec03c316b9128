//! Accounts, tokens and the simulated network's directory, in SQL. Writes run on the writer's
//! connection (`SqliteStore::write_with`), reads on pooled ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use imgroups_core::port::{AccountInfo, AdminTokenInfo, TokenInfo, TokenRef};
use imgroups_core::tokens::hash_token;
use imgroups_core::{AccountId, Address, Error, ErrorKind, Result, Timestamp, TokenId};
use rusqlite::{params, Connection, OptionalExtension};

use crate::tx::SqlResult;

pub(crate) fn find_account(conn: &Connection, address: &Address) -> Result<Option<AccountId>> {
    conn.prepare_cached("SELECT id FROM accounts WHERE address = ?1")
        .and_then(|mut s| {
            s.query_row([address.as_str()], |r| r.get(0).map(AccountId))
                .optional()
        })
        .db()
}

/// Creates the account if it does not exist; returns its id and whether it was created.
pub(crate) fn ensure_account(conn: &Connection, address: &Address) -> Result<(AccountId, bool)> {
    let now = crate::clock::now(conn)?.0;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO accounts (address, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![address.as_str(), now]))
        .db()?;
    let id = find_account(conn, address)?.ok_or_else(Error::internal)?;
    Ok((id, inserted == 1))
}

pub(crate) fn add_token(conn: &Connection, account: AccountId, hash: &[u8]) -> Result<TokenId> {
    let now = crate::clock::now(conn)?.0;
    conn.prepare_cached("INSERT INTO tokens (account_id, hash, created_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![account.0, hash, now]))
        .db()?;
    Ok(TokenId(conn.last_insert_rowid()))
}

/// Revokes a token; the caller tells running servers once this is committed
/// ([`note_revocation`]).
pub(crate) fn revoke_token(conn: &Connection, token: &TokenRef) -> Result<TokenId> {
    let id: Option<i64> = match token {
        TokenRef::Id(id) => conn
            .query_row("SELECT id FROM tokens WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .db()?,
        TokenRef::Secret(secret) => conn
            .query_row(
                "SELECT id FROM tokens WHERE hash = ?1",
                [hash_token(secret)],
                |r| r.get(0),
            )
            .optional()
            .db()?,
    };
    let id = id.ok_or_else(|| Error::invalid("no such token").with("field", "token"))?;
    conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, crate::clock::now(conn)?.0],
    )
    .db()?;
    Ok(TokenId(id))
}

/// Beside the database, a file that grows by one byte per revocation: its length is the
/// revocation count. Servers cache good tokens and `stat` this file on every request, so a
/// revocation made from another process (the CLI) takes effect on the next request, at the
/// cost of a `stat` instead of a database read.
pub(crate) fn revocations_path(db: &Path) -> PathBuf {
    crate::beside(db, "-revocations")
}

/// The database's revocations file ([`revocations_path`]) as the token check reads it: kept
/// open, so that each check is an `fstat` of the open file rather than a `stat` of its path
/// (a walk of every directory in it: the larger part of the call, measured in issue 29).
///
/// The file is created empty (a count of 0, as a missing file is) the first time it is
/// read, so that there is a file to keep open. Whatever happens to the path is still seen:
/// if the file kept open has been removed or replaced (no name links to it any more), the
/// count is read from the path again, on every call from then on.
pub(crate) struct RevocationsFile {
    path: PathBuf,
    open: std::sync::OnceLock<std::fs::File>,
}

impl RevocationsFile {
    /// The revocations file of the database at `db`.
    pub(crate) fn new(db: &Path) -> Self {
        RevocationsFile {
            path: revocations_path(db),
            open: std::sync::OnceLock::new(),
        }
    }
}

/// How many revocations have been made (0 before the first): changes whenever one is.
/// `None` if that cannot be known, in which case nothing may be cached.
pub(crate) fn revocation_count(file: &RevocationsFile) -> Option<u64> {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    if let Some(open) = file.open.get() {
        #[cfg(unix)]
        if let Ok(meta) = open.metadata() {
            if meta.nlink() > 0 {
                return Some(meta.len());
            }
        }
        return count_at(&file.path);
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // As `note_revocation` creates it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&file.path) {
        Ok(open) => {
            // Read through the path, as every later call reads through the file: the same
            // answer either way.
            let count = count_at(&file.path);
            // Another check may have opened it first: either file serves.
            let _ = file.open.set(open);
            count
        }
        // Cannot be created (a read-only directory): read through the path each time.
        Err(_) => count_at(&file.path),
    }
}

/// [`revocation_count`] through the path.
fn count_at(path: &Path) -> Option<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Some(meta.len()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

/// Tells every server on `db` that a token was revoked. Call once the revocation is durable:
/// a server that re-checked a token before that would cache it as good.
pub(crate) fn note_revocation(db: &Path) -> Result<()> {
    let path = revocations_path(db);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // As the database beside it: other users have no business with it (its length tells
    // how many tokens were revoked, and whoever can write it can empty every server's
    // token cache).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .and_then(|mut file| file.write_all(b"."))
        .map_err(|err| {
            tracing::error!(error = %err, path = %path.display(), "cannot record a revocation");
            Error::unavailable(
                "the token is revoked in the database, but running servers could not be told; \
                 restart them",
            )
        })
}

pub(crate) fn list_tokens(conn: &Connection) -> Result<Vec<TokenInfo>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.id, a.address, t.created_at, t.revoked_at IS NOT NULL
             FROM tokens t JOIN accounts a ON a.id = t.account_id ORDER BY t.id",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(TokenInfo {
                id: TokenId(r.get(0)?),
                address: Address::from_trusted(r.get(1)?),
                created_at: Timestamp(r.get(2)?),
                revoked: r.get(3)?,
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// The account a bearer token belongs to.
pub(crate) fn authenticate(conn: &Connection, token: &str) -> Result<AccountId> {
    let row: Option<(i64, bool)> = conn
        .prepare_cached("SELECT account_id, revoked_at IS NOT NULL FROM tokens WHERE hash = ?1")
        .and_then(|mut s| {
            s.query_row([hash_token(token)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .db()?;
    match row {
        Some((account, false)) => Ok(AccountId(account)),
        Some((_, true)) => Err(Error::new(
            ErrorKind::TokenBlocked,
            "this token has been revoked",
        )),
        None => Err(Error::new(ErrorKind::Unauthenticated, "unknown token")),
    }
}

/// Marks an address as not on iMessage (or, with `unreachable` false, undoes that).
pub(crate) fn set_unreachable(
    conn: &Connection,
    address: &Address,
    unreachable: bool,
) -> Result<()> {
    let sql = if unreachable {
        "INSERT INTO unreachable (address) VALUES (?1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM unreachable WHERE address = ?1"
    };
    conn.execute(sql, [address.as_str()]).db().map(drop)
}

/// The addresses marked unreachable, sorted.
pub(crate) fn unreachable(conn: &Connection) -> Result<Vec<Address>> {
    let mut stmt = conn
        .prepare_cached("SELECT address FROM unreachable ORDER BY address")
        .db()?;
    let rows = stmt
        .query_map([], |r| r.get(0).map(Address::from_trusted))
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

pub(crate) fn list_accounts(conn: &Connection) -> Result<Vec<AccountInfo>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, address, created_at FROM accounts ORDER BY id")
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AccountInfo {
                id: AccountId(r.get(0)?),
                address: Address::from_trusted(r.get(1)?),
                created_at: Timestamp(r.get(2)?),
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Stores an admin token's hash. Admin tokens live in a table of their own: an account's
/// token is never one, nor the other way round.
pub(crate) fn add_admin_token(conn: &Connection, hash: &[u8]) -> Result<()> {
    let now = crate::clock::now(conn)?.0;
    conn.prepare_cached("INSERT INTO admin_tokens (hash, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![hash, now]))
        .db()
        .map(drop)
}

/// `Ok` if `token` is an admin token.
pub(crate) fn authenticate_admin(conn: &Connection, token: &str) -> Result<()> {
    let found = conn
        .prepare_cached("SELECT 1 FROM admin_tokens WHERE hash = ?1")
        .and_then(|mut s| s.query_row([hash_token(token)], |_| Ok(())).optional())
        .db()?;
    found.ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "unknown admin token"))
}

/// Every admin token, by id.
pub(crate) fn list_admin_tokens(conn: &Connection) -> Result<Vec<AdminTokenInfo>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, created_at FROM admin_tokens ORDER BY id")
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AdminTokenInfo {
                id: TokenId(r.get(0)?),
                created_at: Timestamp(r.get(1)?),
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().db()
}

/// Removes an admin token: its row is its only trace, and every console call reads it.
pub(crate) fn revoke_admin_token(conn: &Connection, token: &TokenRef) -> Result<TokenId> {
    let id: Option<i64> = match token {
        TokenRef::Id(id) => conn
            .query_row(
                "DELETE FROM admin_tokens WHERE id = ?1 RETURNING id",
                [id.0],
                |r| r.get(0),
            )
            .optional()
            .db()?,
        TokenRef::Secret(secret) => conn
            .query_row(
                "DELETE FROM admin_tokens WHERE hash = ?1 RETURNING id",
                [hash_token(secret)],
                |r| r.get(0),
            )
            .optional()
            .db()?,
    };
    id.map(TokenId)
        .ok_or_else(|| Error::invalid("no such admin token").with("field", "token"))
}

/// Clears the simulated world (see [`imgroups_core::port::Store::reset`]). Whole-table
/// `DELETE`s: SQLite empties a table without visiting its rows when no trigger or enforced
/// foreign key involves it, so the cost is that of freeing its pages, not of its row count
/// (the writer runs this with foreign-key checks off: `writer.rs`, `Writer::apply_admin`).
pub(crate) fn reset(conn: &Connection, accounts: bool) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM icons;
         DELETE FROM members;
         DELETE FROM groups;
         DELETE FROM direct_chats;
         DELETE FROM chat_messages;
         DELETE FROM message_bodies;
         DELETE FROM chat_backgrounds;
         DELETE FROM events;
         DELETE FROM idempotency;
         DELETE FROM faults;
         DELETE FROM unreachable;
         UPDATE accounts SET reset_through = head_seq WHERE reset_through <> head_seq;
         UPDATE webhooks SET cursor = (SELECT head_seq FROM accounts WHERE id = account_id)
             WHERE cursor < (SELECT head_seq FROM accounts WHERE id = account_id);
         UPDATE sim_state SET resets = resets + 1 WHERE id = 1;",
    )
    .db()?;
    if accounts {
        conn.execute_batch(
            "DELETE FROM webhooks;
             DELETE FROM tokens;
             DELETE FROM accounts;",
        )
        .db()?;
    }
    Ok(())
}

/// How many resets the database has had.
pub(crate) fn resets(conn: &Connection) -> Result<u64> {
    conn.prepare_cached("SELECT resets FROM sim_state WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .db()
        .map(|n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count read through the file kept open follows every revocation, and a file
    /// removed (or replaced) after it was opened is read through its path again.
    #[test]
    fn the_revocation_count_follows_the_file_kept_open_and_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("imgroups.db");
        let file = RevocationsFile::new(&db);
        assert_eq!(revocation_count(&file), Some(0));
        assert!(file.open.get().is_some(), "created and kept open");
        note_revocation(&db).unwrap();
        note_revocation(&db).unwrap();
        assert_eq!(revocation_count(&file), Some(2));
        std::fs::remove_file(revocations_path(&db)).unwrap();
        assert_eq!(revocation_count(&file), Some(0));
        note_revocation(&db).unwrap();
        assert_eq!(revocation_count(&file), Some(1));
    }
}

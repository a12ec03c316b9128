//! Accounts, tokens and the simulated network's directory: the operations the CLI performs,
//! directly on the database, while a server may be running on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use imgroups_core::{AccountId, Address, Error, ErrorKind, Result, Timestamp};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::db::SqlResult;

/// Token text starts with this, so a leaked one is recognisable in logs and scanners.
const TOKEN_PREFIX: &str = "imgr_";

/// A token as listed; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub address: String,
    pub created_at: Timestamp,
    pub revoked: bool,
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut secret = [0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    format!("{TOKEN_PREFIX}{}", hex::encode(secret))
}

fn account_id(conn: &Connection, address: &Address) -> Result<Option<AccountId>> {
    conn.query_row(
        "SELECT id FROM accounts WHERE address = ?1",
        [address.as_str()],
        |r| r.get(0),
    )
    .optional()
    .db()
}

/// Creates the account if it does not exist; returns its id and whether it was created.
pub fn ensure_account(conn: &Connection, address: &Address) -> Result<(AccountId, bool)> {
    let inserted = conn
        .execute(
            "INSERT INTO accounts (address, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![address.as_str(), Timestamp::now().0],
        )
        .db()?;
    let id = account_id(conn, address)?.ok_or_else(Error::internal)?;
    Ok((id, inserted == 1))
}

/// Creates a new account and its first token. An existing account is an error: use
/// [`create_token`] to add a device.
pub fn add_account(conn: &Connection, address: &Address) -> Result<String> {
    let (_, created) = ensure_account(conn, address)?;
    if !created {
        return Err(Error::precondition(
            "accountExists",
            format!("account {address} already exists; use `imgroups token create {address}` for another token"),
        )
        .with("address", address));
    }
    create_token(conn, address)
}

/// A new token (another device) for an existing account.
pub fn create_token(conn: &Connection, address: &Address) -> Result<String> {
    let account = account_id(conn, address)?.ok_or_else(|| {
        Error::new(ErrorKind::AddressNotFound, format!("no account {address}"))
            .with("address", address)
    })?;
    let token = new_token();
    conn.execute(
        "INSERT INTO tokens (account_id, hash, created_at) VALUES (?1, ?2, ?3)",
        params![account, hash_token(&token), Timestamp::now().0],
    )
    .db()?;
    Ok(token)
}

/// Revokes a token given as its id (from `token list`) or its full text. Returns its id.
pub fn revoke_token(conn: &Connection, id_or_token: &str) -> Result<i64> {
    let id: Option<i64> = match id_or_token.parse::<i64>() {
        Ok(id) => conn
            .query_row("SELECT id FROM tokens WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .db()?,
        Err(_) => conn
            .query_row(
                "SELECT id FROM tokens WHERE hash = ?1",
                [hash_token(id_or_token)],
                |r| r.get(0),
            )
            .optional()
            .db()?,
    };
    let id = id.ok_or_else(|| Error::invalid("no such token").with("field", "token"))?;
    conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, Timestamp::now().0],
    )
    .db()?;
    // Committed: now tell running servers to forget the tokens they have checked.
    note_revocation(conn)?;
    Ok(id)
}

/// Beside the database, a file that grows by one byte per revocation: its length is the
/// revocation count. Servers cache good tokens and `stat` this file on every request, so a
/// revocation made from another process (the CLI) takes effect on the next request, at the
/// cost of a `stat` instead of a database read.
pub fn revocations_path(db: &Path) -> PathBuf {
    crate::beside(db, "-revocations")
}

/// How many revocations have been made (0 before the first): changes whenever one is.
/// `None` if that cannot be known, in which case nothing may be cached.
pub fn revocation_count(db: &Path) -> Option<u64> {
    match std::fs::metadata(revocations_path(db)) {
        Ok(meta) => Some(meta.len()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

fn note_revocation(conn: &Connection) -> Result<()> {
    let Some(db) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(()); // an in-memory database has no other process to tell
    };
    let path = revocations_path(Path::new(db));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
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

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenInfo>> {
    let mut stmt = conn
        .prepare(
            "SELECT t.id, a.address, t.created_at, t.revoked_at IS NOT NULL
             FROM tokens t JOIN accounts a ON a.id = t.account_id ORDER BY t.id",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                address: r.get(1)?,
                created_at: Timestamp(r.get(2)?),
                revoked: r.get(3)?,
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// The account a bearer token belongs to.
pub fn authenticate(conn: &Connection, token: &str) -> Result<AccountId> {
    let row: Option<(AccountId, bool)> = conn
        .prepare_cached("SELECT account_id, revoked_at IS NOT NULL FROM tokens WHERE hash = ?1")
        .and_then(|mut s| {
            s.query_row([hash_token(token)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .db()?;
    match row {
        Some((account, false)) => Ok(account),
        Some((_, true)) => Err(Error::new(
            ErrorKind::TokenBlocked,
            "this token has been revoked",
        )),
        None => Err(Error::new(ErrorKind::Unauthenticated, "unknown token")),
    }
}

/// Marks an address as not on iMessage (or, with `reachable`, undoes that).
pub fn set_unreachable(conn: &Connection, address: &Address, unreachable: bool) -> Result<()> {
    let sql = if unreachable {
        "INSERT INTO unreachable (address) VALUES (?1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM unreachable WHERE address = ?1"
    };
    conn.execute(sql, [address.as_str()]).db().map(drop)
}

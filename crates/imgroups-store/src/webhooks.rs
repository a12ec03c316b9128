//! Webhook endpoints and their durable delivery cursors.
//!
//! One row per endpoint: the account whose events it receives, the URL, the signing secret,
//! and `cursor`, the last sequence the endpoint acknowledged with a 2xx. The cursor only moves
//! forward and only after that answer, so a restart or an outage resumes where delivery
//! stopped (at-least-once). After too many consecutive failures an endpoint is paused until
//! someone resumes it.
//!
//! The functions taking a [`Connection`] are what the CLI runs directly on the database while
//! a server may be running; the [`Store`] methods are the server's async equivalents. These
//! are small single-row writes, made outside the group-committing writer: they only ever touch
//! the `webhooks` table, so they cannot reorder the event log.

use imgroups_core::{AccountId, Address, Error, ErrorKind, Result, Timestamp};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::Store;

/// Secrets start with this, so a leaked one is recognisable.
const SECRET_PREFIX: &str = "whsec_";
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// One registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub account: AccountId,
    /// The account's address, for listings.
    pub address: String,
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    /// Last sequence acknowledged with a 2xx.
    pub cursor: u64,
    /// Consecutive failed attempts since the last success.
    pub failures: u32,
    pub paused: bool,
    /// What the last failed attempt saw (status or transport error), lower case.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

fn new_secret() -> String {
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    format!("{SECRET_PREFIX}{}", hex::encode(secret))
}

/// Accepts `http://` and `https://` URLs with a host; nothing else can be delivered to.
pub fn validate_url(url: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::invalid(format!("invalid webhook url {url:?}: {why}")).with("field", "url")
    };
    if url.len() > MAX_URL_LEN {
        return Err(bad("too long"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("has no host"));
    }
    Ok(())
}

const COLUMNS: &str = "w.id, w.account_id, a.address, w.url, w.secret, w.cursor, w.failures, \
                       w.paused, w.last_error, w.created_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        account: r.get(1)?,
        address: r.get(2)?,
        url: r.get(3)?,
        secret: r.get(4)?,
        cursor: r.get::<_, i64>(5)?.max(0) as u64,
        failures: r.get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
        paused: r.get(7)?,
        last_error: r.get(8)?,
        created_at: Timestamp(r.get(9)?),
    })
}

fn not_found(id: i64) -> Error {
    Error::invalid(format!("no webhook {id}")).with("field", "id")
}

/// Registers `url` for `account`. Delivery starts after the account's current head: events
/// already in the log are not sent.
pub fn add(conn: &Connection, account: AccountId, url: &str) -> Result<Webhook> {
    validate_url(url)?;
    let head: i64 = conn
        .query_row(
            "SELECT head_seq FROM accounts WHERE id = ?1",
            [account],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| Error::invalid("no such account").with("field", "account"))?;
    conn.execute(
        "INSERT INTO webhooks (account_id, url, secret, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![account, url, new_secret(), head, Timestamp::now().0],
    )
    .db()?;
    let id = conn.last_insert_rowid();
    get(conn, id)?.ok_or_else(Error::internal)
}

/// [`add`] for the account with this address (the CLI's form).
pub fn add_for_address(conn: &Connection, address: &Address, url: &str) -> Result<Webhook> {
    let account: AccountId = conn
        .query_row(
            "SELECT id FROM accounts WHERE address = ?1",
            [address.as_str()],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| {
            Error::new(ErrorKind::AddressNotFound, format!("no account {address}"))
                .with("address", address)
        })?;
    add(conn, account, url)
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Webhook>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id
             WHERE w.id = ?1"
        ),
        [id],
        from_row,
    )
    .optional()
    .db()
}

/// Every endpoint, or only `account`'s, by id.
pub fn list(conn: &Connection, account: Option<AccountId>) -> Result<Vec<Webhook>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id
             WHERE ?1 IS NULL OR w.account_id = ?1 ORDER BY w.id"
        ))
        .db()?;
    let rows = stmt.query_map([account], from_row).db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Deletes an endpoint (only `account`'s, when given).
pub fn remove(conn: &Connection, account: Option<AccountId>, id: i64) -> Result<()> {
    let n = conn
        .execute(
            "DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![id, account],
        )
        .db()?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Un-pauses an endpoint and clears its failure count; delivery resumes from its cursor.
pub fn resume(conn: &Connection, account: Option<AccountId>, id: i64) -> Result<Webhook> {
    let n = conn
        .execute(
            "UPDATE webhooks SET paused = 0, failures = 0
             WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![id, account],
        )
        .db()?;
    if n == 0 {
        return Err(not_found(id));
    }
    get(conn, id)?.ok_or_else(|| not_found(id))
}

/// The endpoint acknowledged `sequence`: advance its cursor (never backwards) and reset its
/// failure count.
pub fn acknowledge(conn: &Connection, id: i64, sequence: u64) -> Result<()> {
    conn.execute(
        "UPDATE webhooks SET cursor = MAX(cursor, ?2), failures = 0, last_error = NULL
         WHERE id = ?1",
        params![id, sequence as i64],
    )
    .db()
    .map(drop)
}

/// Records a failed attempt; pauses the endpoint once `max_failures` consecutive attempts
/// failed. Returns whether it is now paused.
pub fn record_failure(conn: &Connection, id: i64, error: &str, max_failures: u32) -> Result<bool> {
    conn.query_row(
        "UPDATE webhooks SET failures = failures + 1, last_error = ?2,
             paused = CASE WHEN failures + 1 >= ?3 THEN 1 ELSE paused END
         WHERE id = ?1 RETURNING paused",
        params![id, error, i64::from(max_failures)],
        |r| r.get::<_, bool>(0),
    )
    .optional()
    .db()
    .map(|paused| paused.unwrap_or(true))
}

/// Changes go through the writer ([`Store::write_with`]); reads use the reader pool.
impl Store {
    pub async fn webhook_add(&self, account: AccountId, url: String) -> Result<Webhook> {
        self.write_with(move |conn| add(conn, account, &url)).await
    }

    pub async fn webhook_get(&self, id: i64) -> Result<Option<Webhook>> {
        self.read(move |conn| get(conn, id)).await
    }

    pub async fn webhook_list(&self, account: Option<AccountId>) -> Result<Vec<Webhook>> {
        self.read(move |conn| list(conn, account)).await
    }

    pub async fn webhook_remove(&self, account: Option<AccountId>, id: i64) -> Result<()> {
        self.write_with(move |conn| remove(conn, account, id)).await
    }

    pub async fn webhook_resume(&self, account: Option<AccountId>, id: i64) -> Result<Webhook> {
        self.write_with(move |conn| resume(conn, account, id)).await
    }

    pub async fn webhook_acknowledge(&self, id: i64, sequence: u64) -> Result<()> {
        self.write_with(move |conn| acknowledge(conn, id, sequence))
            .await
    }

    pub async fn webhook_failure(&self, id: i64, error: String, max_failures: u32) -> Result<bool> {
        self.write_with(move |conn| record_failure(conn, id, &error, max_failures))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(validate_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(validate_url("https://example.com").is_ok());
        for bad in [
            "",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a b",
            "example.com",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_and_pause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::open_connection(&dir.path().join("db"), crate::Durability::Normal)
            .expect("open");
        let me = Address::parse("me@example.com").expect("address");
        crate::admin::ensure_account(&conn, &me).expect("account");
        let hook = add_for_address(&conn, &me, "http://127.0.0.1:9/x").expect("add");
        assert!(hook.secret.starts_with(SECRET_PREFIX));
        assert_eq!(hook.cursor, 0);
        acknowledge(&conn, hook.id, 5).expect("ack");
        acknowledge(&conn, hook.id, 3).expect("ack");
        assert_eq!(get(&conn, hook.id).expect("get").expect("row").cursor, 5);
        assert!(!record_failure(&conn, hook.id, "status 500", 2).expect("fail"));
        assert!(record_failure(&conn, hook.id, "status 500", 2).expect("fail"));
        let paused = get(&conn, hook.id).expect("get").expect("row");
        assert!(paused.paused);
        assert_eq!(paused.failures, 2);
        let resumed = resume(&conn, None, hook.id).expect("resume");
        assert!(!resumed.paused);
        assert_eq!(resumed.failures, 0);
        remove(&conn, None, hook.id).expect("rm");
        assert!(remove(&conn, None, hook.id).is_err());
    }
}

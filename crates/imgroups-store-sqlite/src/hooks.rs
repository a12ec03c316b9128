//! The webhooks port ([`Hooks`]): webhook endpoints and their durable delivery cursors, in SQL.
//!
//! One row per endpoint: the account whose events it receives, the URL, the signing secret,
//! and `cursor`, the last sequence the endpoint acknowledged with a 2xx. The cursor only moves
//! forward and only after that answer, so a restart or an outage resumes where delivery
//! stopped (at-least-once). After too many consecutive failures an endpoint is paused until
//! someone resumes it. Changes run on the writer's connection (`SqliteStore::write_with`).

use async_trait::async_trait;
use imgroups_core::port::{Hooks, Webhook, WebhookUrl};
use imgroups_core::{AccountId, Address, Error, Result, Timestamp, WebhookId};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::watch;

use crate::tx::SqlResult;
use crate::SqliteStore;

#[async_trait]
impl Hooks for SqliteStore {
    fn webhook_changes(&self) -> watch::Receiver<u64> {
        self.inner.notices.webhook_changes()
    }

    async fn add_webhook(
        &self,
        account: AccountId,
        url: &WebhookUrl,
        secret: &str,
    ) -> Result<Webhook> {
        let (url, secret) = (url.clone(), secret.to_owned());
        let hook = self
            .write_with(move |conn| add(conn, account, &url, &secret))
            .await?;
        self.webhooks_changed();
        Ok(hook)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        self.read_with(move |conn| get(conn, id)).await
    }

    async fn webhooks(&self, account: Option<AccountId>) -> Result<Vec<Webhook>> {
        self.read_with(move |conn| list(conn, account)).await
    }

    async fn remove_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<()> {
        self.write_with(move |conn| remove(conn, account, id))
            .await?;
        self.webhooks_changed();
        Ok(())
    }

    async fn resume_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<Webhook> {
        let hook = self
            .write_with(move |conn| resume(conn, account, id))
            .await?;
        self.webhooks_changed();
        Ok(hook)
    }

    async fn webhook_delivered(&self, id: WebhookId, sequence: u64) -> Result<()> {
        self.write_with(move |conn| acknowledge(conn, id, sequence))
            .await
    }

    async fn webhook_failed(&self, id: WebhookId, error: &str, max_failures: u32) -> Result<bool> {
        let error = error.to_owned();
        let paused = self
            .write_with(move |conn| record_failure(conn, id, &error, max_failures))
            .await?;
        if paused {
            self.webhooks_changed();
        }
        Ok(paused)
    }
}

const COLUMNS: &str = "w.id, w.account_id, a.address, w.url, w.secret, w.cursor, w.failures, \
                       w.paused, w.last_error, w.created_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: WebhookId(r.get(0)?),
        account: AccountId(r.get(1)?),
        address: Address::from_trusted(r.get(2)?),
        url: r.get(3)?,
        secret: r.get(4)?,
        cursor: r.get::<_, i64>(5)?.max(0) as u64,
        failures: r.get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
        paused: r.get(7)?,
        last_error: r.get(8)?,
        created_at: Timestamp(r.get(9)?),
    })
}

fn not_found(id: WebhookId) -> Error {
    Error::invalid(format!("no webhook {id}")).with("field", "id")
}

/// Registers `url` for `account`. Delivery starts after the account's current head: events
/// already in the log are not sent.
pub(crate) fn add(
    conn: &Connection,
    account: AccountId,
    url: &WebhookUrl,
    secret: &str,
) -> Result<Webhook> {
    let head: i64 = conn
        .query_row(
            "SELECT head_seq FROM accounts WHERE id = ?1",
            [account.0],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| Error::invalid("no such account").with("field", "account"))?;
    conn.execute(
        "INSERT INTO webhooks (account_id, url, secret, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            account.0,
            url.as_str(),
            secret,
            head,
            crate::clock::now(conn)?.0
        ],
    )
    .db()?;
    let id = WebhookId(conn.last_insert_rowid());
    get(conn, id)?.ok_or_else(Error::internal)
}

pub(crate) fn get(conn: &Connection, id: WebhookId) -> Result<Option<Webhook>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id
             WHERE w.id = ?1"
        ),
        [id.0],
        from_row,
    )
    .optional()
    .db()
}

/// Every endpoint, or only `account`'s, by id.
pub(crate) fn list(conn: &Connection, account: Option<AccountId>) -> Result<Vec<Webhook>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id
             WHERE ?1 IS NULL OR w.account_id = ?1 ORDER BY w.id"
        ))
        .db()?;
    let rows = stmt.query_map([account.map(|a| a.0)], from_row).db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Deletes an endpoint (only `account`'s, when given).
pub(crate) fn remove(conn: &Connection, account: Option<AccountId>, id: WebhookId) -> Result<()> {
    let n = conn
        .execute(
            "DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![id.0, account.map(|a| a.0)],
        )
        .db()?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Un-pauses an endpoint and clears its failure count; delivery resumes from its cursor.
pub(crate) fn resume(
    conn: &Connection,
    account: Option<AccountId>,
    id: WebhookId,
) -> Result<Webhook> {
    let n = conn
        .execute(
            "UPDATE webhooks SET paused = 0, failures = 0
             WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![id.0, account.map(|a| a.0)],
        )
        .db()?;
    if n == 0 {
        return Err(not_found(id));
    }
    get(conn, id)?.ok_or_else(|| not_found(id))
}

/// The endpoint acknowledged `sequence`: advance its cursor (never backwards) and reset its
/// failure count.
pub(crate) fn acknowledge(conn: &Connection, id: WebhookId, sequence: u64) -> Result<()> {
    conn.execute(
        "UPDATE webhooks SET cursor = MAX(cursor, ?2), failures = 0, last_error = NULL
         WHERE id = ?1",
        params![id.0, sequence as i64],
    )
    .db()
    .map(drop)
}

/// Records a failed attempt; pauses the endpoint once `max_failures` consecutive attempts
/// failed. Returns whether it is now paused.
pub(crate) fn record_failure(
    conn: &Connection,
    id: WebhookId,
    error: &str,
    max_failures: u32,
) -> Result<bool> {
    conn.query_row(
        "UPDATE webhooks SET failures = failures + 1, last_error = ?2,
             paused = CASE WHEN failures + 1 >= ?3 THEN 1 ELSE paused END
         WHERE id = ?1 RETURNING paused",
        params![id.0, error, i64::from(max_failures)],
        |r| r.get::<_, bool>(0),
    )
    .optional()
    .db()
    .map(|paused| paused.unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_and_pause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::open_connection(&dir.path().join("db"), crate::Durability::Normal)
            .expect("open");
        let me = Address::parse("me@example.com").expect("address");
        let (account, _) = crate::admin::ensure_account(&conn, &me).expect("account");
        let url = WebhookUrl::parse("http://127.0.0.1:9/x").expect("url");
        let hook = add(&conn, account, &url, "whsec_test").expect("add");
        assert_eq!(hook.secret, "whsec_test");
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

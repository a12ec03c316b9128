//! The webhooks port ([`Hooks`]): webhook endpoints and their delivery leases, in SQL, each
//! on a pooled connection in a transaction of its own (see `admin`).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Client;
use imgroups_core::port::{Hooks, Webhook, WebhookUrl};
use imgroups_core::{AccountId, Address, Error, Result, Timestamp, WebhookId};
use tokio::sync::watch;
use tokio_postgres::Row;

use crate::sql::PgResult;
use crate::PgStore;

#[async_trait]
impl Hooks for PgStore {
    fn webhook_changes(&self) -> watch::Receiver<u64> {
        self.inner.hints.webhook_changes()
    }

    async fn add_webhook(
        &self,
        account: AccountId,
        url: &WebhookUrl,
        secret: &str,
    ) -> Result<Webhook> {
        let (url, secret) = (url.clone(), secret.to_owned());
        let hook = self
            .with_client(
                move |client| async move { add_webhook(&client, account, &url, &secret).await },
            )
            .await?;
        self.inner.hints.webhooks_changed();
        Ok(hook)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        self.with_client(move |client| async move { webhook(&client, id).await })
            .await
    }

    async fn webhooks(&self, account: Option<AccountId>) -> Result<Vec<Webhook>> {
        self.with_client(move |client| async move { webhooks(&client, account).await })
            .await
    }

    async fn remove_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<()> {
        self.with_client(move |client| async move { remove_webhook(&client, account, id).await })
            .await?;
        self.inner.hints.webhooks_changed();
        Ok(())
    }

    async fn resume_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<Webhook> {
        let hook = self
            .with_client(move |client| async move { resume_webhook(&client, account, id).await })
            .await?;
        self.inner.hints.webhooks_changed();
        Ok(hook)
    }

    async fn webhook_delivered(&self, id: WebhookId, sequence: u64) -> Result<()> {
        self.with_client(
            move |client| async move { webhook_delivered(&client, id, sequence).await },
        )
        .await
    }

    async fn webhook_failed(&self, id: WebhookId, error: &str, max_failures: u32) -> Result<bool> {
        let error = error.to_owned();
        let paused = self
            .with_client(move |client| async move {
                webhook_failed(&client, id, &error, max_failures).await
            })
            .await?;
        if paused {
            self.inner.hints.webhooks_changed();
        }
        Ok(paused)
    }

    async fn claim_webhook(&self, id: WebhookId, lease: Duration) -> Result<Option<u64>> {
        let owner = self.node().to_owned();
        self.with_client(move |client| async move {
            claim_webhook(&client, id, &owner, lease.as_secs_f64()).await
        })
        .await
    }
}

const WEBHOOK: &str = "SELECT w.id, w.account_id, a.address, w.url, w.secret, w.cursor,
     w.failures, w.paused, w.last_error, w.created_at
     FROM webhooks w JOIN accounts a ON a.id = w.account_id";

fn webhook_from_row(r: &Row) -> Webhook {
    Webhook {
        id: WebhookId(r.get(0)),
        account: AccountId(r.get(1)),
        address: Address::from_trusted(r.get::<_, String>(2)),
        url: r.get(3),
        secret: r.get(4),
        cursor: r.get::<_, i64>(5).max(0) as u64,
        failures: r.get::<_, i32>(6).max(0) as u32,
        paused: r.get(7),
        last_error: r.get(8),
        created_at: Timestamp(r.get(9)),
    }
}

fn no_webhook(id: WebhookId) -> Error {
    Error::invalid(format!("no webhook {id}")).with("field", "id")
}

pub(crate) async fn add_webhook(
    client: &Client,
    account: AccountId,
    url: &WebhookUrl,
    secret: &str,
) -> Result<Webhook> {
    // Delivery starts after the head as of this statement.
    let row = client
        .query_opt(
            "INSERT INTO webhooks (account_id, url, secret, cursor, created_at)
             SELECT id, $2, $3, head_seq, $4 FROM accounts WHERE id = $1
             RETURNING id",
            &[&account.0, &url.as_str(), &secret, &Timestamp::now().0],
        )
        .await
        .db()?
        .ok_or_else(|| Error::invalid("no such account").with("field", "account"))?;
    let id = WebhookId(row.get(0));
    webhook(client, id).await?.ok_or_else(Error::internal)
}

pub(crate) async fn webhook(client: &Client, id: WebhookId) -> Result<Option<Webhook>> {
    let sql = format!("{WEBHOOK} WHERE w.id = $1");
    Ok(client
        .query_opt(&sql, &[&id.0])
        .await
        .db()?
        .map(|r| webhook_from_row(&r)))
}

pub(crate) async fn webhooks(client: &Client, account: Option<AccountId>) -> Result<Vec<Webhook>> {
    let sql = format!("{WEBHOOK} WHERE $1::bigint IS NULL OR w.account_id = $1 ORDER BY w.id");
    let rows = client.query(&sql, &[&account.map(|a| a.0)]).await.db()?;
    Ok(rows.iter().map(webhook_from_row).collect())
}

pub(crate) async fn remove_webhook(
    client: &Client,
    account: Option<AccountId>,
    id: WebhookId,
) -> Result<()> {
    let n = client
        .execute(
            "DELETE FROM webhooks WHERE id = $1 AND ($2::bigint IS NULL OR account_id = $2)",
            &[&id.0, &account.map(|a| a.0)],
        )
        .await
        .db()?;
    if n == 0 {
        return Err(no_webhook(id));
    }
    Ok(())
}

pub(crate) async fn resume_webhook(
    client: &Client,
    account: Option<AccountId>,
    id: WebhookId,
) -> Result<Webhook> {
    let n = client
        .execute(
            "UPDATE webhooks SET paused = false, failures = 0
             WHERE id = $1 AND ($2::bigint IS NULL OR account_id = $2)",
            &[&id.0, &account.map(|a| a.0)],
        )
        .await
        .db()?;
    if n == 0 {
        return Err(no_webhook(id));
    }
    webhook(client, id).await?.ok_or_else(|| no_webhook(id))
}

pub(crate) async fn webhook_delivered(client: &Client, id: WebhookId, sequence: u64) -> Result<()> {
    client
        .execute(
            "UPDATE webhooks SET cursor = greatest(cursor, $2), failures = 0, last_error = NULL
             WHERE id = $1",
            &[&id.0, &(sequence as i64)],
        )
        .await
        .db()
        .map(drop)
}

pub(crate) async fn webhook_failed(
    client: &Client,
    id: WebhookId,
    error: &str,
    max_failures: u32,
) -> Result<bool> {
    let row = client
        .query_opt(
            "UPDATE webhooks SET failures = failures + 1, last_error = $2,
                 paused = paused OR failures + 1 >= $3
             WHERE id = $1 RETURNING paused",
            &[
                &id.0,
                &error,
                &i32::try_from(max_failures).unwrap_or(i32::MAX),
            ],
        )
        .await
        .db()?;
    Ok(row.is_none_or(|r| r.get(0)))
}

/// Takes or renews the delivery lease on endpoint `id` for `owner`, for `seconds`; the
/// endpoint's cursor if `owner` holds it now, `None` if another process does (or it is paused
/// or gone). Lease times are the database's clock, so nodes' clocks need not agree.
pub(crate) async fn claim_webhook(
    client: &Client,
    id: WebhookId,
    owner: &str,
    seconds: f64,
) -> Result<Option<u64>> {
    let statement = client
        .prepare_cached(
            "UPDATE webhooks
             SET lease_owner = $2, lease_until = clock_timestamp() + make_interval(secs => $3)
             WHERE id = $1 AND NOT paused
               AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < clock_timestamp())
             RETURNING cursor",
        )
        .await
        .db()?;
    Ok(client
        .query_opt(&statement, &[&id.0, &owner, &seconds])
        .await
        .db()?
        .map(|r| r.get::<_, i64>(0).max(0) as u64))
}

/// Gives up every lease `owner` holds (on a clean stop: another node takes over at once).
pub(crate) async fn release_webhooks(client: &Client, owner: &str) -> Result<()> {
    client
        .execute(
            "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            &[&owner],
        )
        .await
        .db()
        .map(drop)
}

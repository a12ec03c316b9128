//! The benchmark's yardstick: raw single-row commits with tokio-postgres, no imgroups
//! in between — what a naive store (one transaction per request) could reach on the same
//! database. The group-committing writer must beat it by batching.

use std::sync::Arc;

use imgroups_core::Result;

use crate::sql::PgResult;

/// Creates the yardstick's table in the database at `url` (dropping an old one).
pub async fn prepare(url: &str) -> Result<tokio_postgres::Client> {
    let config = crate::pg_config(url)?;
    let client = crate::connect(&config, &tokio::runtime::Handle::current()).await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS baseline_rows;
             CREATE TABLE baseline_rows (id bigserial PRIMARY KEY, body text NOT NULL)",
        )
        .await
        .db()?;
    Ok(client)
}

/// Opens a connection for one yardstick writer.
pub async fn connect(url: &str) -> Result<Arc<tokio_postgres::Client>> {
    let config = crate::pg_config(url)?;
    Ok(Arc::new(
        crate::connect(&config, &tokio::runtime::Handle::current()).await?,
    ))
}

/// One `BEGIN; INSERT …; COMMIT` transaction (pipelined: one round trip and one WAL flush).
pub async fn commit_one(client: &tokio_postgres::Client, body: &str) -> Result<()> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&body];
    let (begin, insert, commit) = futures::join!(
        client.execute("BEGIN", &[]),
        client.execute("INSERT INTO baseline_rows (body) VALUES ($1)", &params),
        client.execute("COMMIT", &[]),
    );
    begin.db()?;
    insert.db()?;
    commit.db().map(drop)
}

//! The log port ([`Log`]): the engine's units of work handed to the writer, queries on read
//! snapshots, and reads of an account's log. Shared queries are in `sql`.

use async_trait::async_trait;
use imgroups_core::port::{GroupRow, Log, LogBounds, MessageQuery, Notices, ReadFn, Reader, Work};
use imgroups_core::{
    AccountId, Address, Error, Event, GroupKey, Message, Outcome, Result, Timestamp,
};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::Row;

use crate::sql::{self, Params, PgResult, Query};
use crate::writer::{Job, Msg};
use crate::{admin, PgStore};

/// A read snapshot on a pooled connection, used synchronously by the engine's queries.
struct Snapshot {
    client: deadpool_postgres::Client,
    handle: Handle,
}

impl Query for Snapshot {
    fn rows(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let client = &self.client;
        self.handle.block_on(async {
            let statement = client.prepare_cached(sql).await.db()?;
            client.query(&statement, params).await.db()
        })
    }
}

impl Reader for Snapshot {
    fn account_address(&mut self, account: AccountId) -> Result<Address> {
        sql::account_address(self, account)
    }
    fn group(&mut self, identifier: &str) -> Result<Option<GroupRow>> {
        sql::group(self, identifier)
    }
    fn members(&mut self, group: GroupKey) -> Result<Vec<Address>> {
        sql::members(self, group)
    }
    fn icon(&mut self, group: GroupKey) -> Result<Option<(Vec<u8>, String)>> {
        sql::icon(self, group)
    }
    fn groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>> {
        sql::groups_of(self, address)
    }
    fn groups_with_all(&mut self, addresses: &[Address]) -> Result<Vec<GroupRow>> {
        sql::groups_with_all(self, addresses)
    }
    fn has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool> {
        sql::has_direct_chat(self, account, address)
    }
    fn count_direct_chats(&mut self, account: AccountId) -> Result<u64> {
        sql::count_direct_chats(self, account)
    }
    fn observer_cursor(&mut self, source: &str) -> Result<Option<String>> {
        sql::observer_cursor(self, source)
    }

    fn message(&mut self, account: AccountId, guid: &str) -> Result<Option<(u64, Message)>> {
        sql::message(self, account, guid)
    }

    fn list_messages(
        &mut self,
        account: AccountId,
        query: &MessageQuery,
    ) -> Result<Vec<(u64, Message)>> {
        sql::list_messages(self, account, query)
    }

    fn background_hash(&mut self, chat: &str) -> Result<Option<Vec<u8>>> {
        sql::background_hash(self, chat)
    }

    fn message_times(
        &mut self,
        account: AccountId,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, bool)>> {
        sql::message_times(self, account, since, limit)
    }
}

#[async_trait]
impl Log for PgStore {
    async fn write(&self, work: Work) -> Result<Outcome> {
        let gone = || Error::unavailable("the server is shutting down");
        let (reply, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Msg::Write(Job { work, reply }))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    async fn read(&self, query: ReadFn) -> Result<()> {
        let pool = self.inner.pool.clone();
        let handle = self.inner.handle.clone();
        self.inner
            .handle
            .spawn_blocking(move || {
                let client = handle.block_on(pool.get()).map_err(|err| {
                    tracing::warn!(error = %err, "no database connection");
                    Error::unavailable("the database is unavailable; retry")
                })?;
                handle
                    .block_on(
                        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                    )
                    .db()?;
                let mut snapshot = Snapshot { client, handle };
                query(&mut snapshot);
                let Snapshot { client, handle } = snapshot;
                handle.block_on(client.batch_execute("COMMIT")).db()
            })
            .await
            .map_err(|_| Error::unavailable("the store is closed"))?
    }

    async fn log_bounds(&self, account: AccountId) -> Result<LogBounds> {
        self.with_client(move |client| async move {
            let statement = client
                .prepare_cached(
                    "SELECT head_seq, pruned_through, reset_through FROM accounts WHERE id = $1",
                )
                .await
                .db()?;
            let row = client.query_opt(&statement, &[&account.0]).await.db()?;
            Ok(row.map_or(
                LogBounds {
                    head: 0,
                    pruned_through: 0,
                    reset_through: 0,
                },
                |r| LogBounds {
                    head: r.get::<_, i64>(0).max(0) as u64,
                    pruned_through: r.get::<_, i64>(1).max(0) as u64,
                    reset_through: r.get::<_, i64>(2).max(0) as u64,
                },
            ))
        })
        .await
    }

    async fn read_events(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (after, up_to, limit) = (to_i64(after), to_i64(up_to), to_i64(limit as u64));
        self.with_client(move |client| async move {
            let statement = client.prepare_cached(sql::EVENTS).await.db()?;
            let rows = client
                .query(&statement, &[&account.0, &after, &up_to, &limit])
                .await
                .db()?;
            rows.iter().map(sql::event_from_row).collect()
        })
        .await
    }

    fn notices(&self) -> broadcast::Receiver<Notices> {
        self.inner.hints.subscribe()
    }

    async fn forget_keys_before(&self, cutoff: Timestamp) -> Result<()> {
        self.with_client(
            move |client| async move { admin::forget_keys_before(&client, cutoff).await },
        )
        .await
    }
}

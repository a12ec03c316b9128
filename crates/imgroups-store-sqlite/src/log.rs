//! The log port ([`Log`]): the engine's units of work handed to the writer, queries on read
//! snapshots, and reads of an account's log. The SQL is in `tx`.

use async_trait::async_trait;
use imgroups_core::port::{EachEvent, Log, LogBounds, Notices, ReadFn, Work};
use imgroups_core::{AccountId, Event, Outcome, Result, Timestamp};
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use crate::tx::{self, Db};
use crate::writer::{Job, Msg};
use crate::{SqliteStore, Wait, SMALL_READ};

#[async_trait]
impl Log for SqliteStore {
    async fn write(&self, work: Work) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.submit(Msg::Write(Job { work, reply }), rx).await?
    }

    async fn read(&self, query: ReadFn) -> Result<()> {
        self.read_with(move |conn| {
            query(&mut Db::new(conn));
            Ok(())
        })
        .await
    }

    async fn log_bounds(&self, account: AccountId) -> Result<LogBounds> {
        self.read_small(move |conn| tx::log_bounds(conn, account), Wait::Durable)
            .await
    }

    async fn read_events(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read_log(limit, move |conn| {
            tx::read_events(conn, account, after, up_to, limit)
        })
        .await
    }

    async fn read_events_each(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
        mut each: EachEvent,
    ) -> Result<Option<(u64, u64)>> {
        self.read_log(limit, move |conn| {
            tx::read_events_each(conn, account, after, up_to, limit, &mut each)
        })
        .await
    }

    fn notices(&self) -> broadcast::Receiver<Notices> {
        self.inner.notices.subscribe()
    }

    async fn forget_keys_before(&self, cutoff: Timestamp) -> Result<()> {
        self.write_with(move |conn| tx::forget_keys_before(conn, cutoff))
            .await
    }
}

impl SqliteStore {
    /// A read of at most `limit` log events: on the caller's thread when small, else on the
    /// blocking pool. No wait for durability: `up_to` is a head this store reported, so every
    /// event up to it is durable already, whatever else the snapshot holds (events never
    /// change once written; one an undurable commit pruned shows as a gap, which callers check
    /// through `log_bounds`, which waits). Waiting would cost a live delivery an fsync under
    /// steady writes (BENCHMARKS.md, session 5).
    async fn read_log<T, F>(&self, limit: usize, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if limit <= SMALL_READ {
            self.read_small(read, Wait::Already).await
        } else {
            self.read_pooled(read, Wait::Already).await
        }
    }
}

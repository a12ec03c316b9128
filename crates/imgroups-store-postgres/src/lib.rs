//! imgroups on PostgreSQL: one implementation of the store port
//! ([`imgroups_core::port::Store`]) that several server processes can share, so they can run
//! behind a load balancer as stateless nodes.
//!
//! Layout:
//! - [`PgStore`] (this file): connects, migrates, owns the writer thread, the connection pool
//!   and the hint tasks, and implements the port. It runs its I/O on a small runtime of its
//!   own, so it works the same from a server, a CLI command or a test.
//! - `writer`: group commit — the engine's units of work in batches, each batch one
//!   transaction under a cluster-wide write lock, which keeps every account's sequences
//!   1, 2, 3, … in commit order across processes.
//! - `tx`: the engine's transaction port ([`imgroups_core::port::Tx`]) on the open batch.
//! - `notices`: commit hints, token revocations and webhook changes between processes, over
//!   LISTEN/NOTIFY, sent after commit and coalesced; lossy by design.
//! - `admin`: accounts, tokens (accounts' and admin), the directory, the clock and resets;
//!   `hooks`: webhook endpoints and their delivery leases; `faults`: injected faults.
//! - `sql`: queries shared by the writer and read snapshots. `schema`: versioned migrations.
//! - [`baseline`]: raw single-row commits, the benchmark's yardstick.
//!
//! Durability: every connection runs `synchronous_commit = on`, and nothing is answered,
//! hinted or readable before its `COMMIT` returned.

mod admin;
pub mod baseline;
mod faults;
mod hooks;
mod notices;
mod schema;
mod snapshot;
mod sql;
mod tx;
mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use imgroups_core::clock::SimClock;
use imgroups_core::port::{
    AccountInfo, Accounts, AdminTokenInfo, Fault, GroupRow, Hooks, Log, LogBounds, MessageQuery,
    NewFault, Notices, ReadFn, Reader, ResetScope, SimControls, Store, TokenInfo, TokenRef,
    Webhook, WebhookUrl, Work,
};
use imgroups_core::snapshot::Snapshot as World;
use imgroups_core::tokens::TokenCache;
use imgroups_core::{
    AccountId, Address, Error, Event, FaultId, GroupKey, Message, Outcome, Result, Timestamp,
    TokenId, WebhookId,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_postgres::Row;

use crate::notices::Hints;
use crate::sql::{Params, PgResult, Query};
use crate::writer::{Job, Msg, Writer};

/// What this process does with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server: listens for other processes' hints and passes them on to its live streams,
    /// webhook deliveries and token checks.
    Serve,
    /// A tool (the CLI): sends hints of its own commits, listens for none.
    Tool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `postgres://user@host:port/database` (or key=value form).
    pub url: String,
    /// Most requests committed together.
    pub max_batch: usize,
    /// Keep only this many newest events per account (`None`: keep every event).
    pub retain_events: Option<u64>,
    /// Pooled connections for reads and bookkeeping (the writer and the listener have their
    /// own).
    pub pool_size: usize,
    pub role: Role,
}

impl Config {
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            max_batch: 512,
            retain_events: None,
            pool_size: 16,
            role: Role::Serve,
        }
    }
}

/// Parses a connection URL and sets what every connection of ours needs.
fn pg_config(url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|err| {
        Error::invalid(format!("invalid database url: {err}")).with("field", "database-url")
    })?;
    // An acknowledged write must be durable, whatever the database's default says.
    // Generic plans: every statement is prepared once and its shape never changes, so
    // re-planning per execution (PostgreSQL's default for the first runs, and for array
    // parameters) is pure cost on the write path.
    config.options(
        "-c synchronous_commit=on -c client_min_messages=warning \
         -c plan_cache_mode=force_generic_plan",
    );
    if config.get_application_name().is_none() {
        config.application_name("imgroups");
    }
    config.connect_timeout(Duration::from_secs(10));
    Ok(config)
}

/// Connects and runs the connection on `handle`.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    handle: &Handle,
) -> Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|err| {
        let why = describe(&err);
        tracing::warn!(error = %why, "cannot connect to PostgreSQL");
        Error::unavailable(format!("cannot connect to the database: {why}"))
    })?;
    handle.spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "a database connection ended");
        }
    });
    Ok(client)
}

/// What went wrong, in words: the server's message, or the error with its causes.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return db.message().to_owned();
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The store's own runtime. Dropped from anywhere — also from inside another runtime, where
/// a plain `Runtime` may not be dropped — it shuts down without waiting.
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` to completion on `handle` from wherever we are: a plain thread, or a thread
/// of some other runtime (where blocking directly is not allowed).
fn block_on<T: Send + 'static>(
    handle: &Handle,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    if Handle::try_current().is_err() {
        return handle.block_on(future);
    }
    let handle = handle.clone();
    std::thread::scope(|s| {
        s.spawn(move || handle.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    handle: Handle,
    pool: deadpool_postgres::Pool,
    jobs: mpsc::Sender<Msg>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    hints: Arc<Hints>,
    publisher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop_listener: watch::Sender<bool>,
    tokens: TokenCache,
    /// Dropped last (fields drop in order): everything above may still use it.
    _runtime: OwnedRuntime,
}

impl Drop for Inner {
    /// A store dropped without [`Store::close`] (a test, a failed start) still stops its
    /// writer and its runtime.
    fn drop(&mut self) {
        let _ = self.jobs.try_send(Msg::Stop);
        let writer = self.writer.get_mut().ok().and_then(|w| w.take());
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

impl PgStore {
    /// Connects, brings the schema up to date, and starts the writer (and, for
    /// [`Role::Serve`], the hint listener).
    pub fn open(config: Config) -> Result<Self> {
        let pg = pg_config(&config.url)?;
        let runtime = OwnedRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("imgroups-pg")
                .enable_all()
                .build()
                .map_err(|err| {
                    tracing::error!(error = %err, "cannot start the database runtime");
                    Error::internal()
                })?,
        ));
        let handle = runtime
            .0
            .as_ref()
            .ok_or_else(Error::internal)?
            .handle()
            .clone();
        {
            let (pg, handle) = (pg.clone(), handle.clone());
            block_on(&handle.clone(), async move {
                let mut client = connect(&pg, &handle).await?;
                schema::migrate(&mut client).await
            })?;
        }
        let manager = deadpool_postgres::Manager::from_config(
            pg.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|err| {
                tracing::error!(error = %err, "cannot build the connection pool");
                Error::internal()
            })?;
        // The process id first, so an operator (or a test) can tell which process holds a lease.
        let node = format!("{}-{:08x}", std::process::id(), rand_u64() as u32);
        let (hints, outbox) = Hints::new(node);
        let (stop_listener, stop) = watch::channel(false);
        let publisher = {
            let _entered = handle.enter();
            if config.role == Role::Serve {
                notices::spawn_listener(hints.clone(), pg.clone(), stop);
            }
            notices::spawn_publisher(hints.clone(), outbox, pg.clone())
        };
        let (jobs, rx) = mpsc::channel(4 * config.max_batch.max(1));
        let writer = Writer::new(
            pg,
            config.max_batch.max(1),
            config.retain_events,
            hints.clone(),
        );
        let writer = std::thread::Builder::new()
            .name("imgroups-pg-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|err| {
                tracing::error!(error = %err, "cannot start the writer thread");
                Error::internal()
            })?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                config,
                handle,
                pool,
                jobs,
                writer: Mutex::new(Some(writer)),
                hints,
                publisher: Mutex::new(Some(publisher)),
                stop_listener,
                tokens: TokenCache::new(TOKEN_TTL),
                _runtime: runtime,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// This process's name in hints and webhook leases.
    pub fn node(&self) -> &str {
        self.inner.hints.node()
    }

    /// Runs `f` with a pooled connection on the store's runtime.
    async fn with_client<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        let pool = self.inner.pool.clone();
        self.inner
            .handle
            .spawn(async move {
                let client = pool.get().await.map_err(|err| {
                    tracing::warn!(error = %err, "no database connection");
                    Error::unavailable("the database is unavailable; retry")
                })?;
                f(client).await
            })
            .await
            .map_err(|_| Error::unavailable("the store is closed"))?
    }
}

/// A random number for this process's node name.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

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

#[async_trait]
impl Accounts for PgStore {
    /// A good token is remembered for a few seconds while the hint listener is connected:
    /// a revocation anywhere reaches every process as a hint and empties the cache.
    fn authenticate_cached(&self, token: &str) -> Option<AccountId> {
        let generation = self.inner.hints.token_generation();
        self.inner.tokens.get(token, generation)
    }

    async fn authenticate(&self, token: &str) -> Result<AccountId> {
        let generation = self.inner.hints.token_generation();
        if let Some(account) = self.inner.tokens.get(token, generation) {
            return Ok(account);
        }
        let owned = token.to_owned();
        let account = self
            .with_client(move |client| async move { admin::authenticate(&client, &owned).await })
            .await?;
        self.inner.tokens.put(token.to_owned(), account, generation);
        Ok(account)
    }

    async fn ensure_account(&self, address: &Address) -> Result<(AccountId, bool)> {
        let address = address.clone();
        self.with_client(move |mut client| async move {
            admin::ensure_account(&mut client, &address).await
        })
        .await
    }

    async fn find_account(&self, address: &Address) -> Result<Option<AccountId>> {
        let address = address.clone();
        self.with_client(move |client| async move { admin::find_account(&client, &address).await })
            .await
    }

    async fn add_token(&self, account: AccountId, hash: Vec<u8>) -> Result<TokenId> {
        self.with_client(
            move |client| async move { admin::add_token(&client, account, &hash).await },
        )
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.with_client(|client| async move { admin::list_tokens(&client).await })
            .await
    }

    async fn revoke_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        let node = self.node().to_owned();
        let id = self
            .with_client(move |mut client| async move {
                admin::revoke_token(&mut client, &token, &node).await
            })
            .await?;
        self.inner.hints.revoked();
        // Committed and announced: give running servers a moment to hear it (delivery takes
        // a few milliseconds), so the revoked token fails on the very next call.
        tokio::time::sleep(REVOCATION_SETTLE).await;
        Ok(id)
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        self.with_client(|client| async move { admin::list_accounts(&client).await })
            .await
    }

    async fn add_admin_token(&self, hash: Vec<u8>) -> Result<()> {
        self.with_client(move |client| async move { admin::add_admin_token(&client, &hash).await })
            .await
    }

    /// Not cached, unlike account tokens: the console makes few calls, and a read per call
    /// means a removed admin token stops working at once on every node.
    async fn authenticate_admin(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.with_client(
            move |client| async move { admin::authenticate_admin(&client, &token).await },
        )
        .await
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenInfo>> {
        self.with_client(|client| async move { admin::list_admin_tokens(&client).await })
            .await
    }

    async fn revoke_admin_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        self.with_client(
            move |client| async move { admin::revoke_admin_token(&client, &token).await },
        )
        .await
    }
}

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
            .with_client(move |client| async move {
                hooks::add_webhook(&client, account, &url, &secret).await
            })
            .await?;
        self.inner.hints.webhooks_changed();
        Ok(hook)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        self.with_client(move |client| async move { hooks::webhook(&client, id).await })
            .await
    }

    async fn webhooks(&self, account: Option<AccountId>) -> Result<Vec<Webhook>> {
        self.with_client(move |client| async move { hooks::webhooks(&client, account).await })
            .await
    }

    async fn remove_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<()> {
        self.with_client(
            move |client| async move { hooks::remove_webhook(&client, account, id).await },
        )
        .await?;
        self.inner.hints.webhooks_changed();
        Ok(())
    }

    async fn resume_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<Webhook> {
        let hook = self
            .with_client(
                move |client| async move { hooks::resume_webhook(&client, account, id).await },
            )
            .await?;
        self.inner.hints.webhooks_changed();
        Ok(hook)
    }

    async fn webhook_delivered(&self, id: WebhookId, sequence: u64) -> Result<()> {
        self.with_client(move |client| async move {
            hooks::webhook_delivered(&client, id, sequence).await
        })
        .await
    }

    async fn webhook_failed(&self, id: WebhookId, error: &str, max_failures: u32) -> Result<bool> {
        let error = error.to_owned();
        let paused = self
            .with_client(move |client| async move {
                hooks::webhook_failed(&client, id, &error, max_failures).await
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
            hooks::claim_webhook(&client, id, &owner, lease.as_secs_f64()).await
        })
        .await
    }
}

#[async_trait]
impl SimControls for PgStore {
    async fn set_unreachable(&self, address: &Address, unreachable: bool) -> Result<()> {
        let address = address.clone();
        self.with_client(move |mut client| async move {
            admin::set_unreachable(&mut client, &address, unreachable).await
        })
        .await
    }

    async fn unreachable(&self) -> Result<Vec<Address>> {
        self.with_client(|client| async move { admin::unreachable(&client).await })
            .await
    }

    async fn add_fault(&self, fault: &NewFault) -> Result<Fault> {
        let fault = fault.clone();
        self.with_client(move |client| async move { faults::add_fault(&client, &fault).await })
            .await
    }

    async fn faults(&self) -> Result<Vec<Fault>> {
        self.with_client(|client| async move {
            faults::faults(&client, admin::now(&client).await?).await
        })
        .await
    }

    async fn clear_faults(&self, account: Option<AccountId>, id: Option<FaultId>) -> Result<u64> {
        self.with_client(
            move |client| async move { faults::clear_faults(&client, account, id).await },
        )
        .await
    }

    async fn take_fault(&self, id: FaultId) -> Result<bool> {
        self.with_client(move |client| async move {
            faults::take_fault(&client, id, admin::now(&client).await?).await
        })
        .await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn reset(&self, scope: ResetScope) -> Result<()> {
        let node = self.node().to_owned();
        self.with_client(move |mut client| async move {
            admin::reset(&mut client, scope.accounts, &node).await
        })
        .await?;
        self.inner.hints.webhooks_changed();
        if scope.accounts {
            self.inner.hints.revoked();
            tokio::time::sleep(REVOCATION_SETTLE).await;
        }
        Ok(())
    }

    async fn resets(&self) -> Result<u64> {
        self.with_client(|client| async move { admin::resets(&client).await })
            .await
    }

    async fn export(&self) -> Result<World> {
        self.with_client(|mut client| async move { snapshot::export(&mut client).await })
            .await
    }

    async fn import(&self, world: World) -> Result<()> {
        let node = self.node().to_owned();
        self.with_client(move |mut client| async move {
            snapshot::import(&mut client, &world, &node).await
        })
        .await?;
        // As after a reset with accounts (see `reset` above).
        self.inner.hints.webhooks_changed();
        self.inner.hints.revoked();
        tokio::time::sleep(REVOCATION_SETTLE).await;
        Ok(())
    }

    async fn clock(&self) -> Result<Option<SimClock>> {
        self.with_client(|client| async move { admin::clock(&client).await })
            .await
    }

    async fn set_clock(&self, seed: Option<u64>) -> Result<Option<SimClock>> {
        self.with_client(move |mut client| async move { admin::set_clock(&mut client, seed).await })
            .await
    }

    async fn advance_clock(&self, nanos: i64) -> Result<SimClock> {
        self.with_client(
            move |mut client| async move { admin::advance_clock(&mut client, nanos).await },
        )
        .await
    }

    /// `SELECT 1` on a pooled connection: the database itself answers, not just the pool.
    async fn ready(&self) -> Result<()> {
        self.with_client(
            |client| async move { client.simple_query("SELECT 1").await.db().map(|_| ()) },
        )
        .await
    }

    async fn close(&self) {
        let inner = self.inner.clone();
        let _ = self.inner.jobs.send(Msg::Stop).await;
        let writer = inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        // Hints of the last commits go out before we stop; leases go back so another node
        // takes over at once.
        inner.hints.close();
        let publisher = inner.publisher.lock().ok().and_then(|mut p| p.take());
        if let Some(publisher) = publisher {
            let _ = tokio::time::timeout(Duration::from_secs(2), publisher).await;
        }
        let owner = self.node().to_owned();
        if let Err(err) = self
            .with_client(
                move |client| async move { hooks::release_webhooks(&client, &owner).await },
            )
            .await
        {
            tracing::debug!(error = %err, "cannot release webhook leases");
        }
        let _ = inner.stop_listener.send(true);
        inner.pool.close();
    }
}

/// How long a checked token is trusted without a database read, while the hint listener is
/// connected (a revocation hint from any process empties the cache at once; this bounds the
/// damage of a lost hint).
const TOKEN_TTL: Duration = Duration::from_secs(5);

/// How long `revoke_token` waits after its commit for running servers to hear of it.
const REVOCATION_SETTLE: Duration = Duration::from_millis(100);

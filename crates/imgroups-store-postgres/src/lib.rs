//! imgroups on PostgreSQL: one implementation of the store port
//! ([`imgroups_core::port::Store`]) that several server processes can share, so they can run
//! behind a load balancer as stateless nodes.
//!
//! Layout:
//! - [`PgStore`] (this file): the store's assembly. Connects, migrates, owns the writer
//!   thread, the connection pool and the hint tasks, and implements [`Store`] itself (resets,
//!   snapshots, the clock, readiness, close). It runs its I/O on a small runtime of its own,
//!   so it works the same from a server, a CLI command or a test.
//! - The port's other traits, one module each, named as in the SQLite store: `log`
//!   ([`imgroups_core::port::Log`]: units of work, read snapshots, log reads), `accounts`
//!   ([`imgroups_core::port::Accounts`]: accounts and tokens, checks cached), `hooks`
//!   ([`imgroups_core::port::Hooks`], with the webhooks' SQL and delivery leases) and `sim`
//!   ([`imgroups_core::port::SimControls`]: the simulator's directory and faults).
//! - `writer`: group commit — the engine's units of work in batches, each batch one
//!   transaction under a cluster-wide write lock, which keeps every account's sequences
//!   1, 2, 3, … in commit order across processes.
//! - `tx`: the engine's transaction port ([`imgroups_core::port::Tx`]) on the open batch.
//! - `notices`: commit hints, token revocations and webhook changes between processes, over
//!   LISTEN/NOTIFY, sent after commit and coalesced; lossy by design.
//! - `admin`, `faults`: accounts, tokens (accounts' and admin), the directory, the clock and
//!   resets; injected faults, in SQL. `snapshot`: the world as a file.
//! - `sql`: queries shared by the writer and read snapshots. `schema`: versioned migrations.
//! - [`baseline`]: raw single-row commits, the benchmark's yardstick.
//!
//! Durability: every connection runs `synchronous_commit = on`, and nothing is answered,
//! hinted or readable before its `COMMIT` returned.

mod accounts;
mod admin;
pub mod baseline;
mod faults;
mod hooks;
mod log;
mod notices;
mod schema;
mod sim;
mod snapshot;
mod sql;
mod tx;
mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use imgroups_core::clock::SimClock;
use imgroups_core::port::{ResetScope, Store};
use imgroups_core::snapshot::Snapshot as World;
use imgroups_core::tokens::TokenCache;
use imgroups_core::{Error, Result};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, watch};

use crate::notices::Hints;
use crate::sql::PgResult;
use crate::writer::{Msg, Writer};

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

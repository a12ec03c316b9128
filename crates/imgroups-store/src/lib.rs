//! imgroups storage: the single source of truth for chat state, the per-account event logs,
//! idempotency records and tokens.
//!
//! Layout:
//! - [`Store`] (this file): opens the database, owns the writer and the reader pool, checks
//!   tokens.
//! - `writer`: one thread applies every write inside one open transaction and commits whatever
//!   it applied whenever a syncer is free; two syncer threads fsync the WAL, and each commit
//!   rings the doorbell and is answered once it and every earlier commit are durable:
//!   pipelined group commit. Because there is one writer, commit order is total
//!   and the per-account sequences it hands out are gap-free.
//! - `checkpoint`: copies the WAL back into the database file on a thread of its own, so no
//!   commit waits for a checkpoint.
//! - `db`: the engine's storage port ([`imgroups_core::port::Tx`]) over a SQLite connection.
//! - [`admin`]: accounts, tokens and the simulated directory (used by the CLI too).
//! - `schema`: migrations.
//! - [`webhooks`]: webhook endpoints and their durable delivery cursors.
//!
//! Durability (default [`Durability::Full`]): a write is acknowledged only after the WAL holding
//! it was fsynced, so it survives power loss; and no read, event or answer reflects a write
//! before that (see `writer::Gate`). The syncers' fsync is exactly the one `synchronous=FULL`
//! would do inside `COMMIT`, moved out of the writer so the next batch is applied meanwhile.

pub mod admin;
mod checkpoint;
mod db;
mod schema;
pub mod webhooks;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgroups_core::engine::query;
use imgroups_core::{AccountId, Chat, Command, Error, Event, Outcome, Result};
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::db::{Db, SqlResult};

pub use rusqlite;
pub use writer::Committed;

/// A file beside the database: its path with `suffix` appended (as SQLite names `-wal`).
pub(crate) fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An acknowledged write survives power loss: the WAL is fsynced before the answer
    /// (what `synchronous=FULL` does, done by the syncer thread).
    Full,
    /// `synchronous=NORMAL`: survives a process crash, may lose the last commits on power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The database file.
    pub path: PathBuf,
    pub durability: Durability,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Most requests committed together.
    pub max_batch: usize,
    /// Keep only this many newest events per account (`None`: keep every event forever).
    pub retain_events: Option<u64>,
    /// WAL length (in frames, one page each) at which a checkpoint copies it back into the
    /// database file, off the write path (see `checkpoint`). The WAL stays about this long
    /// (8,192 frames: 32 MiB).
    pub checkpoint_frames: u32,
}

impl Config {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            durability: Durability::Full,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            max_batch: 512,
            retain_events: None,
            checkpoint_frames: 8192,
        }
    }
}

/// Opens a connection with the settings every user of the database shares.
pub fn open_connection(path: &Path, durability: Durability) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| {
            tracing::error!(error = %err, dir = %dir.display(), "cannot create data directory");
            Error::unavailable("cannot create the data directory")
        })?;
    }
    let mut conn = Connection::open(path).db()?;
    // The write path alone uses more distinct statements than rusqlite's default cache (16)
    // holds; a thrashing cache re-parses SQL on every request.
    conn.set_prepared_statement_cache_capacity(128);
    conn.busy_timeout(Duration::from_secs(10)).db()?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .db()?;
    conn.pragma_update(None, "journal_mode", "WAL").db()?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    schema::migrate(&mut conn).db()?;
    Ok(conn)
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    jobs: mpsc::Sender<writer::Msg>,
    readers: Mutex<Vec<Connection>>,
    /// A connection kept for token checks, which run inline (see [`Store::authenticate`]).
    auth: Mutex<Option<Connection>>,
    tokens: TokenCache,
    committed: broadcast::Sender<Arc<Committed>>,
    gate: Arc<writer::Gate>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Capacity of the commit broadcast: how many commits a live reader may fall behind before it
/// has to re-read from the log.
const COMMIT_BUFFER: usize = 256;

impl Store {
    pub fn open(config: Config) -> Result<Self> {
        let conn = open_connection(&config.path, config.durability)?;
        let (jobs, rx) = mpsc::channel(4 * config.max_batch);
        let (committed, _) = broadcast::channel(COMMIT_BUFFER);
        let gate = Arc::new(writer::Gate::new());
        let writer = writer::spawn(
            conn,
            &jobs,
            rx,
            config.clone(),
            committed.clone(),
            gate.clone(),
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                jobs,
                readers: Mutex::new(Vec::new()),
                auth: Mutex::new(None),
                tokens: TokenCache::default(),
                committed,
                gate,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Applies a write as `account`. With a key, a repeat of the same request returns the
    /// original outcome (success or error) without a new effect, and a different request under
    /// the same key fails with `duplicateMessage`. Returns once the write is durable.
    pub async fn execute(
        &self,
        account: AccountId,
        key: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        let job = writer::Job {
            account,
            key,
            command,
            reply,
        };
        self.submit(writer::Msg::Write(job), rx).await?
    }

    /// Queues `msg` for the writer and waits for its answer on `rx`.
    async fn submit<T>(
        &self,
        msg: writer::Msg,
        rx: oneshot::Receiver<writer::Answer<T>>,
    ) -> Result<T> {
        let gone = || Error::unavailable("the server is shutting down");
        self.inner.jobs.send(msg).await.map_err(|_| gone())?;
        let writer::Answer { result, rest } = rx.await.map_err(|_| gone())?;
        // Answer the requests this one carries (if any) before going on with its own.
        drop(rest);
        Ok(result)
    }

    /// Runs `f` on the writer's connection inside its transaction (in a savepoint: an error
    /// undoes what `f` wrote), and returns once that is durable. For writes outside the engine
    /// (webhook bookkeeping): one writer means they never wait on a database lock.
    pub async fn write_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = writer::AdminJob {
            run: Box::new(move |conn| f(conn).map(|v| Box::new(v) as writer::Any)),
            reply,
        };
        let value = self.submit(writer::Msg::Admin(job), rx).await??;
        value.downcast::<T>().map(|v| *v).map_err(|_| {
            tracing::error!("admin job returned an unexpected type");
            Error::internal()
        })
    }

    /// Runs `f` on a pooled read connection on the blocking pool. Its result is returned only
    /// once every write it could have seen is durable.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let (result, horizon) = tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map(|mut v| v.pop()).unwrap_or(None);
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.config.path, inner.config.durability)?,
            };
            let result = f(&conn);
            let horizon = inner.gate.horizon();
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            Ok((result, horizon))
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "read task failed");
            Error::internal()
        })
        .and_then(|r: Result<_>| r)?;
        self.inner.gate.wait_durable(horizon).await;
        result
    }

    /// The account a bearer token belongs to.
    ///
    /// Every request starts here, so a good token is remembered (see [`TokenCache`]) and
    /// checking it again costs one `stat` of the revocations file, not a database read. A
    /// miss runs inline on the caller's thread rather than hopping to the blocking pool: it is
    /// one indexed read of a hot page in WAL mode (never waiting on the writer).
    pub async fn authenticate(&self, token: String) -> Result<AccountId> {
        let revocations = admin::revocation_count(&self.inner.config.path);
        if let Some(account) = self.inner.tokens.get(&token, revocations) {
            return Ok(account);
        }
        let account = {
            let mut slot = self.inner.auth.lock().map_err(|_| {
                tracing::error!("auth connection lock poisoned");
                Error::internal()
            })?;
            if slot.is_none() {
                *slot = Some(open_connection(
                    &self.inner.config.path,
                    self.inner.config.durability,
                )?);
            }
            match slot.as_ref() {
                Some(conn) => admin::authenticate(conn, &token)?,
                None => return Err(Error::internal()),
            }
        };
        self.inner.tokens.put(token, account, revocations);
        Ok(account)
    }

    pub async fn get_chat(&self, account: AccountId, chat: String) -> Result<Chat> {
        self.read(move |conn| query::get_chat(&mut Db::new(conn), account, &chat))
            .await
    }

    pub async fn get_icon(&self, account: AccountId, chat: String) -> Result<(Vec<u8>, String)> {
        self.read(move |conn| query::get_icon(&mut Db::new(conn), account, &chat))
            .await
    }

    pub async fn count_chats(&self, account: AccountId) -> Result<u64> {
        self.read(move |conn| query::count_chats(&mut Db::new(conn), account))
            .await
    }

    /// The account's latest sequence (0 before its first event).
    pub async fn head(&self, account: AccountId) -> Result<u64> {
        self.read(move |conn| log_bounds(conn, account).map(|b| b.head))
            .await
    }

    /// The account's head and what retention has removed, read together.
    pub async fn log_bounds(&self, account: AccountId) -> Result<LogBounds> {
        self.read(move |conn| log_bounds(conn, account)).await
    }

    /// Up to `limit` events with `after < sequence <= up_to`, in order.
    pub async fn read_events(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |conn| read_events(conn, account, after, up_to, limit))
            .await
    }

    /// Every commit that appended events, as it happens. A receiver that lags misses
    /// notifications, never events: the log still has them.
    pub fn subscribe_commits(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.inner.committed.subscribe()
    }

    /// Stops the writer after the writes already queued, and waits for it.
    pub fn close(&self) {
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // The writer would exit once every sender is gone, but ours lives as long as any
            // handle does, so ask it explicitly. Blocking: call from a blocking context.
            let _ = self.inner.jobs.blocking_send(writer::Msg::Stop);
            let _ = handle.join();
        }
    }
}

/// Good tokens already checked, valid while the revocation count they were checked under
/// stands (any revocation, by anyone, empties the cache) and for at most [`TOKEN_TTL`] (which
/// bounds the damage if a revoking process died between its commit and its notice).
#[derive(Default)]
struct TokenCache {
    state: Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    revocations: u64,
    accounts: HashMap<String, (AccountId, Instant)>,
}

const TOKEN_TTL: Duration = Duration::from_secs(10);
/// Above this many remembered tokens the cache starts over.
const MAX_CACHED_TOKENS: usize = 10_000;

impl TokenCache {
    fn get(&self, token: &str, revocations: Option<u64>) -> Option<AccountId> {
        let revocations = revocations?;
        let mut state = self.state.lock().ok()?;
        if state.revocations != revocations {
            state.accounts.clear();
            state.revocations = revocations;
            return None;
        }
        match state.accounts.get(token) {
            Some((account, checked)) if checked.elapsed() < TOKEN_TTL => Some(*account),
            _ => None,
        }
    }

    /// Remembers `token` as checked under `revocations`, unless a revocation has been seen
    /// since (then the check may predate it).
    fn put(&self, token: String, account: AccountId, revocations: Option<u64>) {
        let Some(revocations) = revocations else {
            return;
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.revocations != revocations {
            return;
        }
        if state.accounts.len() >= MAX_CACHED_TOKENS {
            state.accounts.clear();
        }
        state.accounts.insert(token, (account, Instant::now()));
    }
}

/// Where an account's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The latest sequence (0 before the first event).
    pub head: u64,
    /// Events up to and including this sequence were removed by retention (0: none).
    pub pruned_through: u64,
}

impl LogBounds {
    /// Fails with `preconditionFailed` (`reason=cursorTooOld`) when reading after `after`
    /// would silently skip pruned events.
    pub fn check_cursor(&self, after: u64) -> Result<()> {
        if after < self.pruned_through {
            let oldest = self.pruned_through + 1;
            return Err(Error::precondition(
                "cursorTooOld",
                format!("events before sequence {oldest} are no longer retained"),
            )
            .with("oldest", oldest)
            .with("after", after));
        }
        Ok(())
    }
}

fn log_bounds(conn: &Connection, account: AccountId) -> Result<LogBounds> {
    conn.prepare_cached("SELECT head_seq, pruned_through FROM accounts WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([account], |r| {
                Ok(LogBounds {
                    head: r.get::<_, i64>(0)? as u64,
                    pruned_through: r.get::<_, i64>(1)? as u64,
                })
            })
        })
        .db()
}

fn read_events(
    conn: &Connection,
    account: AccountId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {} FROM events WHERE account_id = ?1 AND seq > ?2 AND seq <= ?3
             ORDER BY seq LIMIT ?4",
            db::EVENT_COLUMNS
        ))
        .db()?;
    let rows = stmt
        .query_map(
            rusqlite::params![account, after as i64, up_to as i64, limit as i64],
            db::event_from_row,
        )
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

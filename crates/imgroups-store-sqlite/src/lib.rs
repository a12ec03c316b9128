//! imgroups on SQLite: the embedded store, one implementation of the store port
//! ([`imgroups_core::port::Store`]). The source of truth for chat state, the per-account event
//! logs, idempotency records, accounts and tokens, the simulated directory and webhooks.
//!
//! Layout:
//! - [`SqliteStore`] (this file): the store's assembly. Opens the database, owns the writer
//!   and the reader pool, runs jobs on them (`write_with`, `read_with`), and implements
//!   [`Store`] itself (resets, snapshots, the clock, readiness, close).
//! - The port's other traits, one module each, named as in the PostgreSQL store: `log`
//!   ([`imgroups_core::port::Log`]: units of work, read snapshots, log reads), `accounts`
//!   ([`imgroups_core::port::Accounts`]: accounts and tokens, checks cached), `hooks`
//!   ([`imgroups_core::port::Hooks`], with the webhooks' SQL) and `sim`
//!   ([`imgroups_core::port::SimControls`]: the simulator's directory and faults).
//! - `writer`: one thread runs every write inside one open transaction and commits whatever
//!   it ran whenever a syncer is free; two syncer threads fsync the WAL, and each commit's
//!   notices go out and its requests are answered once it and every earlier commit are
//!   durable: pipelined group commit. Because there is one writer, commit order is total and
//!   the per-account sequences it hands out are gap-free.
//! - `reply`: answering a commit's requests with one wake-up of the runtime.
//! - `checkpoint`: copies the WAL back into the database file on a thread of its own, so no
//!   commit waits for a checkpoint.
//! - `tx`: the SQL of the engine's transaction port ([`imgroups_core::port::Tx`]), idempotency
//!   records, retention and log reads.
//! - `admin`, `faults`: accounts, tokens (accounts' and admin), the directory and resets;
//!   injected faults, in SQL. `clock`: the simulated clock. `snapshot`: the world as a file.
//! - `lock`: a serving store's lock on its database.
//! - `notices`: commit notices, in this process and from other processes on the database.
//! - `schema`: migrations. [`baseline`]: raw SQLite commits, the benchmark's yardstick.
//!
//! Durability (default [`Durability::Full`]): a write is acknowledged only after the WAL holding
//! it was fsynced, so it survives power loss; and no read, notice or answer reflects a write
//! before that (see `writer::Gate`). The syncers' fsync is exactly the one
//! `synchronous=FULL` would do inside `COMMIT`, moved out of the writer so the next batch is
//! applied meanwhile.

mod accounts;
mod admin;
pub mod baseline;
mod checkpoint;
mod clock;
mod faults;
mod hooks;
mod lock;
mod log;
mod notices;
mod reply;
mod schema;
mod sim;
mod snapshot;
mod tx;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use imgroups_core::clock::SimClock;
use imgroups_core::port::{ResetScope, Store};
use imgroups_core::snapshot::Snapshot;
use imgroups_core::tokens::TokenCache;
use imgroups_core::{Error, Result};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::notices::{Listener, Publisher};
use crate::reply::Answer;
use crate::tx::SqlResult;
use crate::writer::{AdminJob, Clears, Gate, Msg};

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

/// What this process does with the database, for notices across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server: listens for other processes' notices (`<db>-notices`) and passes them on to
    /// its live streams and webhook deliveries.
    Serve,
    /// A tool (the CLI): tells a server on the same database about each of its commits.
    Tool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The database file.
    pub path: PathBuf,
    pub durability: Durability,
    /// Most requests committed together.
    pub max_batch: usize,
    /// Keep only this many newest events per account (`None`: keep every event forever).
    pub retain_events: Option<u64>,
    /// WAL length (in frames, one page each) at which a checkpoint copies it back into the
    /// database file, off the write path (see `checkpoint`). The WAL stays about this long
    /// (8,192 frames: 32 MiB).
    pub checkpoint_frames: u32,
    pub role: Role,
}

impl Config {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            durability: Durability::Full,
            max_batch: 512,
            retain_events: None,
            checkpoint_frames: 8192,
            role: Role::Serve,
        }
    }
}

/// Creates the directory of the database at `path` if it is missing: readable by its owner
/// only, since it holds tokens' hashes, webhook secrets and every account's groups.
fn create_data_dir(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|err| {
        Error::unavailable(format!(
            "cannot create the data directory {}: {err}",
            dir.display()
        ))
    })
}

/// Creates the database file with mode 0600 if it does not exist yet, and checks that it can
/// be written (SQLite would quietly open an unwritable file read-only and fail on the first
/// write, without naming the file). SQLite would create it 0644, and it gives its `-wal` and
/// `-shm` files the database file's mode, so making this one private makes them all private.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop).map_err(|err| {
        Error::unavailable(format!("cannot open {} for writing: {err}", path.display()))
    })
}

/// Opens a connection with the settings every user of the database shares.
pub(crate) fn open_connection(path: &Path, durability: Durability) -> Result<Connection> {
    create_data_dir(path)?;
    create_private(path)?;
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

/// Bytes of the database file a read connection maps into memory (`PRAGMA mmap_size`), at
/// most: address space, not memory (the pages are the kernel's file cache, shared by every
/// reader).
///
/// Why: a catch-up reads the log's pages one after the other, and without a mapping SQLite
/// copies each page out of the kernel's cache with `pread` into a page of its own: a system
/// call and a copy per page, most of the kernel's share of a catch-up. Mapped, a B-tree page
/// is read where the kernel keeps it (BENCHMARKS.md, "M3 catch-up: mapped reads").
///
/// Safe with WAL: pages the WAL holds are still read from the WAL; only the database file is
/// mapped, and SQLite checks the WAL index before every page it reads, as without a mapping.
/// Only readers map: the writer and the checkpointer write through `write`, and Linux and
/// macOS share one cache between the two paths, so readers see what they wrote. The risk
/// SQLite documents is a database file that shrinks under a mapping (`VACUUM`, or
/// `auto_vacuum`, a `SIGBUS` on a page past the new end); this store never shrinks its file.
/// The other: a disk error on a mapped page is a `SIGBUS` as well, not an `SQLITE_IOERR`.
/// Beyond this size (a log of several million events), reads fall back to `pread`.
const READER_MMAP_BYTES: i64 = 1 << 30;

/// A connection for reads ([`SqliteStore::read_pooled`]): as every connection, with the
/// database file mapped ([`READER_MMAP_BYTES`]).
fn open_reader(config: &Config) -> Result<Connection> {
    let conn = open_connection(&config.path, config.durability)?;
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
        .db()?;
    Ok(conn)
}

/// The SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    jobs: mpsc::Sender<Msg>,
    readers: Mutex<Vec<Connection>>,
    /// A connection kept for token checks, which run inline (see
    /// [`imgroups_core::port::Accounts::authenticate`]).
    auth: Mutex<Option<Connection>>,
    tokens: TokenCache,
    /// The revocations file ([`admin::revocations_path`]), whose size every token check
    /// reads: found once, and kept open (see [`admin::RevocationsFile`]).
    revocations: admin::RevocationsFile,
    notices: Arc<Publisher>,
    listener: Mutex<Option<Listener>>,
    gate: Arc<Gate>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A serving store's lock on its database (see `lock`); released by `close`.
    serve_lock: Mutex<Option<lock::ServeLock>>,
}

impl Inner {
    /// A pooled read connection, if one is free.
    fn pooled(&self) -> Option<Connection> {
        self.readers.lock().ok().and_then(|mut pool| pool.pop())
    }

    /// Runs `f` on `conn` and gives `conn` back to the pool. Returns `f`'s result and the
    /// generation it may depend on (see `writer::Gate`).
    fn read_on<T>(&self, conn: Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Read<T> {
        let result = f(&conn);
        let horizon = self.gate.horizon();
        if let Ok(mut pool) = self.readers.lock() {
            // A burst of concurrent reads opens as many connections as it needs; afterwards
            // only a few are kept, so the memory of their page caches is given back.
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        Read { result, horizon }
    }

    /// `read`'s result, once everything it could have seen is durable (with [`Wait::Durable`]).
    async fn settle<T>(&self, read: Read<T>, wait: Wait) -> Result<T> {
        if wait == Wait::Durable {
            self.gate.wait_durable(read.horizon).await;
        }
        read.result
    }
}

/// A read's result and the commit generation it may reflect.
struct Read<T> {
    result: Result<T>,
    horizon: u64,
}

impl Drop for Inner {
    /// A store dropped without [`SqliteStore::close_blocking`] (a test, a failed start) still
    /// stops listening and removes its socket. The writer stops by itself once its queue's
    /// senders are gone.
    fn drop(&mut self) {
        let listener = self.listener.get_mut().ok().and_then(|l| l.take());
        if let Some(listener) = listener {
            listener.stop();
        }
    }
}

/// Whether a read waits until everything it could have seen is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Durable,
    /// The caller reads only what is durable already.
    Already,
}

/// Read connections kept open between reads (each holds a page cache of up to ~2 MiB).
const MAX_IDLE_READERS: usize = 16;

/// Most events read on the caller's thread (see [`SqliteStore::read_small`]).
const SMALL_READ: usize = 64;

/// Capacity of the notice broadcast: how many commits a listener may fall behind before it
/// has to re-read its cursor's log (it misses notices, never events).
const NOTICE_BUFFER: usize = 256;

impl SqliteStore {
    pub fn open(config: Config) -> Result<Self> {
        let serve_lock = match config.role {
            Role::Serve => {
                create_data_dir(&config.path)?;
                Some(lock::acquire(&config.path)?)
            }
            Role::Tool => None,
        };
        let conn = open_connection(&config.path, config.durability)?;
        let (jobs, rx) = mpsc::channel(4 * config.max_batch);
        let local = notices::Local::new(NOTICE_BUFFER);
        let socket = beside(&config.path, "-notices");
        let (notices, listener) = match config.role {
            Role::Serve => (
                Publisher::local(local.clone()),
                Listener::start(socket, local),
            ),
            Role::Tool => (Publisher::with_remote(local, socket), None),
        };
        let notices = Arc::new(notices);
        let gate = Arc::new(Gate::new());
        let writer = writer::spawn(
            conn,
            &jobs,
            rx,
            config.clone(),
            notices.clone(),
            gate.clone(),
        )?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                revocations: admin::RevocationsFile::new(&config.path),
                config,
                jobs,
                readers: Mutex::new(Vec::new()),
                auth: Mutex::new(None),
                tokens: TokenCache::new(TOKEN_TTL),
                notices,
                listener: Mutex::new(listener),
                gate,
                writer: Mutex::new(Some(writer)),
                serve_lock: Mutex::new(serve_lock),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Queues `msg` for the writer and waits for its answer on `rx`.
    async fn submit<T>(&self, msg: Msg, rx: oneshot::Receiver<Answer<T>>) -> Result<T> {
        let gone = || Error::unavailable("the server is shutting down");
        self.inner.jobs.send(msg).await.map_err(|_| gone())?;
        let Answer { result, rest } = rx.await.map_err(|_| gone())?;
        // Answer the requests this one carries (if any) before going on with its own.
        drop(rest);
        Ok(result)
    }

    /// Runs `f` on the writer's connection inside its transaction (in a savepoint: an error
    /// undoes what `f` wrote), and returns once that is durable. For writes outside the engine
    /// (accounts, tokens, webhooks): one writer means they never wait on a database lock.
    async fn write_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_clearing(Clears::Nothing, f).await
    }

    /// [`Self::write_with`] for a job that clears what the writer caches (`clears`).
    async fn write_clearing<T, F>(&self, clears: Clears, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        // The job's value goes back on a channel of its own type, taken once the writer's
        // answer says the job is durable (an error there means the value does not count).
        let (value_tx, value_rx) = oneshot::channel();
        let job = AdminJob {
            run: Box::new(move |conn| {
                let _ = value_tx.send(f(conn)?);
                Ok(())
            }),
            reply,
            clears,
        };
        self.submit(Msg::Admin(job), rx).await??;
        value_rx.await.map_err(|_| Error::internal())
    }

    /// Runs `f` on a pooled read connection on the blocking pool. Its result is returned only
    /// once every write it could have seen is durable.
    async fn read_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.read_pooled(f, Wait::Durable).await
    }

    /// `f` on a pooled connection on the blocking pool; with [`Wait::Durable`], returned only
    /// once every write it could have seen is durable.
    async fn read_pooled<T, F>(&self, f: F, wait: Wait) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let read = tokio::task::spawn_blocking(move || {
            let conn = match inner.pooled() {
                Some(conn) => conn,
                None => open_reader(&inner.config)?,
            };
            Ok(inner.read_on(conn, f))
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "read task failed");
            Error::internal()
        })
        .and_then(|r: Result<_>| r)?;
        self.inner.settle(read, wait).await
    }

    /// [`Self::read_pooled`] for a read of a few rows: run on the caller's thread with a
    /// pooled connection, when one is free, instead of a trip through the blocking pool. Such
    /// a read (a log's bounds, a notified commit's events) takes tens of microseconds in WAL
    /// mode and never waits on the writer; the trip costs more, and delays every live delivery
    /// behind it when the CPU is busy (BENCHMARKS.md, session 5).
    async fn read_small<T, F>(&self, f: F, wait: Wait) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        match self.inner.pooled() {
            Some(conn) => {
                let read = self.inner.read_on(conn, f);
                self.inner.settle(read, wait).await
            }
            None => self.read_pooled(f, wait).await,
        }
    }

    /// Tells this process's listeners and, for a tool, a server on the same database.
    fn webhooks_changed(&self) {
        self.inner.notices.webhooks_changed();
    }

    /// Stops the writer after the writes already queued, and waits for it. Blocking: call
    /// from a blocking context.
    pub fn close_blocking(&self) {
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // The writer would exit once every sender is gone, but ours lives as long as any
            // handle does, so ask it explicitly.
            let _ = self.inner.jobs.blocking_send(Msg::Stop);
            let _ = handle.join();
        }
        let listener = self.inner.listener.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener {
            listener.stop();
        }
        // Last: another server may start on this database once the lock is gone.
        if let Ok(mut lock) = self.inner.serve_lock.lock() {
            lock.take();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// The writer is running (a closed store, or one whose writer died, takes no writes) and a
    /// pooled connection answers `SELECT 1`.
    async fn ready(&self) -> Result<()> {
        let writing = self
            .inner
            .writer
            .lock()
            .is_ok_and(|w| w.as_ref().is_some_and(|h| !h.is_finished()));
        if !writing {
            return Err(Error::unavailable("the store is closed"));
        }
        self.read_pooled(
            |conn| conn.query_row("SELECT 1", [], |_| Ok(())).db(),
            Wait::Already,
        )
        .await
    }

    async fn reset(&self, scope: ResetScope) -> Result<()> {
        let clears = if scope.accounts {
            Clears::ChatsAndAccounts
        } else {
            Clears::Chats
        };
        self.write_clearing(clears, move |conn| admin::reset(conn, scope.accounts))
            .await?;
        // Durable now. Webhook cursors moved (or endpoints went): deliveries re-read them.
        self.webhooks_changed();
        if scope.accounts {
            // Every account token is gone: servers must forget the ones they checked.
            admin::note_revocation(&self.inner.config.path)?;
        }
        Ok(())
    }

    async fn resets(&self) -> Result<u64> {
        self.read_small(admin::resets, Wait::Durable).await
    }

    async fn export(&self) -> Result<Snapshot> {
        self.read_with(snapshot::export).await
    }

    async fn import(&self, world: Snapshot) -> Result<()> {
        self.write_clearing(Clears::ChatsAndAccounts, move |conn| {
            snapshot::import(conn, &world)
        })
        .await?;
        // As after a reset with accounts: deliveries re-read their endpoints, and servers
        // forget every token they checked (the imported world has its own).
        self.webhooks_changed();
        admin::note_revocation(&self.inner.config.path)
    }

    async fn clock(&self) -> Result<Option<SimClock>> {
        self.read_small(clock::get, Wait::Durable).await
    }

    async fn set_clock(&self, seed: Option<u64>) -> Result<Option<SimClock>> {
        self.write_with(move |conn| clock::set(conn, seed)).await
    }

    async fn advance_clock(&self, nanos: i64) -> Result<SimClock> {
        self.write_with(move |conn| clock::advance(conn, nanos))
            .await
    }

    async fn close(&self) {
        let store = self.clone();
        let _ = tokio::task::spawn_blocking(move || store.close_blocking()).await;
    }
}

/// How long a checked token is trusted without a database read (any revocation, by anyone,
/// empties the cache at once; this bounds the damage if a revoking process died between its
/// commit and its notice).
const TOKEN_TTL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    /// A reset runs with foreign-key checks off (so SQLite can drop whole tables); the
    /// writer's next transaction has them on again, and the world is empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_keys_are_back_on_after_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(Config::new(dir.path().join("imgroups.db"))).unwrap();
        let pragma = |store: &SqliteStore| {
            let store = store.clone();
            async move {
                store
                    .write_clearing(Clears::Nothing, |conn| {
                        conn.query_row("PRAGMA foreign_keys", [], |r| r.get::<_, i64>(0))
                            .db()
                    })
                    .await
            }
        };
        assert_eq!(pragma(&store).await.unwrap(), 1);
        for accounts in [false, true] {
            store.reset(ResetScope { accounts }).await.unwrap();
            assert_eq!(
                pragma(&store).await.unwrap(),
                1,
                "after reset(accounts={accounts})"
            );
        }
        assert_eq!(store.resets().await.unwrap(), 2);
        store.close().await;
    }

    /// A first start's import finds bodies by GUID in memory with the unique GUID index
    /// dropped (`tx::ImportBodies`): a GUID delivered twice, a copy looked up and replaced
    /// by its GUID, still one body per GUID. Whatever the memory may not know of — another
    /// connection's commit, a rolled-back batch, an admin job — hands over to the index, built
    /// again first; an import that never ends (a crash) leaves it to the next open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_import_finds_bodies_in_memory_and_hands_over_to_the_guid_index() {
        use imgroups_core::port::{Delivery, Log, Tx};
        use imgroups_core::{Address, ChatGuid, Message, Outcome, Timestamp};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgroups.db");
        let store = SqliteStore::open(Config::new(path.clone())).unwrap();
        let me = Address::parse("me@x.com").unwrap();
        let bob = Address::parse("bob@x.com").unwrap();
        let (account, _) = imgroups_core::admin::ensure_account(&store, &me)
            .await
            .unwrap();
        let chat = ChatGuid::parse("any;+;chat000000000000000001").unwrap();
        let message = move |guid: &str, text: &str| Message {
            guid: guid.into(),
            text: text.into(),
            date_created: Timestamp(1),
            is_sent: true,
            chat_guid: Some(chat.clone()),
            sender: Some(Address::parse("bob@x.com").unwrap()),
            ..Message::default()
        };
        // Delivers `guid` to the account; how many copies were new.
        let deliver = move |tx: &mut dyn Tx, guid: &str| -> imgroups_core::Result<usize> {
            let m = message(guid, guid);
            let chat = m.chat_guid.clone().unwrap();
            let copies = [Delivery {
                account,
                chat_guid: &chat,
                is_from_me: false,
                date_read: None,
            }];
            tx.deliver_new_message(&m, &bob, Timestamp(1), &copies)
        };
        let write = |work: imgroups_core::port::Work| {
            let store = store.clone();
            async move { store.write(work).await }
        };
        let has_guid_index = |store: &SqliteStore| {
            let store = store.clone();
            async move {
                store
                    .read_with(|conn| {
                        conn.query_row(
                            "SELECT count(*) FROM sqlite_master WHERE name = 'message_bodies_by_guid'",
                            [],
                            |r| r.get::<_, i64>(0),
                        )
                        .db()
                    })
                    .await
                    .unwrap()
                    == 1
            }
        };
        let (dup, put) = (deliver.clone(), deliver.clone());
        write(Box::new(move |tx| {
            tx.begin_bulk_import()?;
            assert_eq!(dup(tx, "A")?, 1);
            assert_eq!(dup(tx, "B")?, 1);
            // Read again (a chat.db row joined to two chats): found in memory, nobody new.
            assert_eq!(dup(tx, "A")?, 0);
            let (place, mut copy) = tx.message(account, "A")?.expect("A is kept");
            assert!(tx.message(account, "C")?.is_none());
            copy.text = "A, edited".into();
            tx.put_message(account, place, &copy)?;
            assert_eq!(tx.message(account, "A")?.unwrap().1.text, "A, edited");
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        assert!(!has_guid_index(&store).await, "dropped during the import");

        // A rolled-back batch: the memory may hold what it stored; the index takes over.
        write(Box::new(move |tx| {
            put(tx, "D")?;
            Err(imgroups_core::Error::internal())
        }))
        .await
        .unwrap_err();
        let again = deliver.clone();
        write(Box::new(move |tx| {
            assert_eq!(again(tx, "D")?, 1);
            assert_eq!(again(tx, "A")?, 0);
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        assert!(has_guid_index(&store).await, "built after the rollback");

        // Another import: then another connection stores a body (as a tool beside the server
        // could), which the memory does not know of: the index takes over.
        let again = deliver.clone();
        write(Box::new(move |tx| {
            tx.begin_bulk_import()?;
            assert_eq!(again(tx, "E")?, 1);
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        assert!(!has_guid_index(&store).await);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO message_bodies (guid, body) VALUES ('F', X'')",
                [],
            )
            .unwrap();
        let again = deliver.clone();
        write(Box::new(move |tx| {
            assert_eq!(again(tx, "F")?, 1, "the body is there, no copy of it");
            assert_eq!(again(tx, "E")?, 0);
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        assert!(
            has_guid_index(&store).await,
            "built after the outside write"
        );

        // An admin job during an import runs with the index.
        let again = deliver.clone();
        write(Box::new(move |tx| {
            tx.begin_bulk_import()?;
            assert_eq!(again(tx, "G")?, 1);
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        let indexed = store
            .write_clearing(Clears::Nothing, |conn| {
                conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'message_bodies_by_guid'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .db()
            })
            .await
            .unwrap();
        assert_eq!(indexed, 1, "built before the admin job");

        // An import that never ends (the server killed midway): the next open builds it.
        let again = deliver.clone();
        write(Box::new(move |tx| {
            tx.begin_bulk_import()?;
            assert_eq!(again(tx, "H")?, 1);
            assert_eq!(again(tx, "G")?, 0);
            Ok(Outcome::Empty)
        }))
        .await
        .unwrap();
        assert!(!has_guid_index(&store).await);
        store.close().await;
        let store = SqliteStore::open(Config::new(path.clone())).unwrap();
        assert!(has_guid_index(&store).await, "built at the open");
        // And an import that ends builds it at its end.
        let again = deliver.clone();
        write_on(&store, move |tx| {
            tx.begin_bulk_import()?;
            assert_eq!(again(tx, "I")?, 1);
            assert_eq!(again(tx, "H")?, 0);
            tx.end_bulk_import()?;
            Ok(Outcome::Empty)
        })
        .await;
        assert!(has_guid_index(&store).await, "built at the import's end");
        let (bodies, guids, copies) = store
            .read_with(|conn| {
                conn.query_row(
                    "SELECT (SELECT count(*) FROM message_bodies),
                            (SELECT count(DISTINCT guid) FROM message_bodies),
                            (SELECT count(*) FROM chat_messages)",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .db()
            })
            .await
            .unwrap();
        assert_eq!(
            (bodies, guids, copies),
            (8, 8, 8),
            "A B D E F G H I, once each"
        );
        store.close().await;
    }

    async fn write_on(
        store: &SqliteStore,
        work: impl FnOnce(&mut dyn imgroups_core::port::Tx) -> Result<imgroups_core::Outcome>
            + Send
            + 'static,
    ) {
        imgroups_core::port::Log::write(store, Box::new(work))
            .await
            .unwrap();
    }

    /// After a burst of concurrent reads, only a few read connections stay open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_pool_shrinks_after_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(Config::new(dir.path().join("imgroups.db"))).unwrap();
        let gate = Arc::new(std::sync::Barrier::new(40));
        let reads: Vec<_> = (0..40)
            .map(|_| {
                let store = store.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    // Every read waits for the others: 40 connections at once.
                    store
                        .read_with(move |_| {
                            gate.wait();
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for read in reads {
            read.await.unwrap().unwrap();
        }
        let idle = store.inner.readers.lock().unwrap().len();
        assert!(idle <= MAX_IDLE_READERS, "{idle} idle read connections");
        assert!(idle > 0);
        store.close().await;
    }
}

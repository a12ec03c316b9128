//! The commit pipeline: the single writer thread, its group commit, and the syncers that make
//! commits durable.
//!
//! Every write goes through here, so there is exactly one commit order and sequences are
//! handed out in it. The write path is a two-stage pipeline:
//!
//! 1. **Writer thread.** Applies requests as they arrive inside one open transaction. A
//!    rejected request has written nothing (the engine checks every rule before its first
//!    write), so requests need no savepoints; a request that fails *after* writing (a storage
//!    error) fails the whole batch, so nothing is ever half-applied. It commits as soon as a
//!    syncer is free (or the batch is full), so the requests that arrive while an fsync is in
//!    flight are *applied* during that fsync instead of waiting for it. Before committing it
//!    yields the CPU once: where it shares a CPU with the transport, requests already on
//!    their way join this batch instead of the next (one fsync round for many requests);
//!    where it has a CPU of its own, the yield returns at once. The connection runs
//!    `synchronous=NORMAL`: `COMMIT` writes the WAL frames but does not fsync.
//! 2. **Syncer threads** ([`SYNCERS`] of them). Each takes the next commit, fsyncs the WAL
//!    (covering that commit and everything before it: group commit), and files the result.
//!    Results are published strictly in commit order: the durable generation, the commit's
//!    notices (which accounts' logs moved, to which head — never the events), and only then
//!    the answers ([`crate::reply`]). Two fsyncs may be in flight at once, so a commit does
//!    not wait for the previous one's fsync to return.
//!
//! So an answer, a notice or a read (see [`Gate`]) never reflects a write that is not
//! yet on disk: acknowledged = durable, exactly as with `synchronous=FULL`, with the fsync of
//! one batch overlapping the work of the next.
//!
//! The writer runs units of work the engine hands over ([`imgroups_core::port::Work`]); it knows
//! nothing of their rules, only that one that fails after it changed something breaks the
//! batch.
//!
//! Measured reasons for this shape are in BENCHMARKS.md (sessions 2 and 3).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use imgroups_core::port::{Notice, Work};
use imgroups_core::{Error, ErrorKind, Outcome, Result, Timestamp};
use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::Checkpoints;
use crate::notices::Publisher;
use crate::reply::{deliver, Answer, Reply};
use crate::tx::{retain, sql, Db, SqlResult, WriterCache};
use crate::{Config, Durability};

pub(crate) enum Msg {
    Write(Job),
    /// Bookkeeping outside the engine (accounts, tokens, webhooks…), run in the same
    /// transactions so the writer stays the only writer.
    Admin(AdminJob),
    /// From a syncer, sent only while the writer waits for one: a commit became durable.
    Synced,
    Stop,
}

pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) reply: oneshot::Sender<Answer<Result<Outcome>>>,
}

/// What an admin job runs, on the writer's connection.
pub(crate) type AdminFn = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

pub(crate) struct AdminJob {
    pub(crate) run: AdminFn,
    pub(crate) reply: oneshot::Sender<Answer<Result<()>>>,
    /// What the job clears of what the writer caches: nothing (accounts aside, which are
    /// always forgotten), the chats, or the chats and the accounts (a reset).
    pub(crate) clears: Clears,
}

/// What an admin job clears of the writer's cache (see [`AdminJob::clears`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clears {
    Nothing,
    Chats,
    ChatsAndAccounts,
}

/// What readers may see: a read must not return a write before that write is durable.
///
/// Each commit has a generation. The writer publishes a commit's generation as `committing`
/// *before* its `COMMIT` runs, and the syncer publishes it as `durable` after the fsync. A
/// reader that loads `committing` after its read gets a generation at least as new as any
/// commit its snapshot could contain, and waits until that generation is durable (normally it
/// already is; at worst it waits for the fsync in flight).
pub(crate) struct Gate {
    committing: AtomicU64,
    durable: watch::Sender<u64>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            committing: AtomicU64::new(0),
            durable: watch::Sender::new(0),
        }
    }

    /// Call right after a read: the generation the read's result may depend on.
    pub(crate) fn horizon(&self) -> u64 {
        self.committing.load(Ordering::SeqCst)
    }

    /// Returns once every commit up to `generation` is durable.
    pub(crate) async fn wait_durable(&self, generation: u64) {
        if *self.durable.borrow() >= generation {
            return;
        }
        let mut durable = self.durable.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = durable.wait_for(|d| *d >= generation).await;
    }

    /// Every commit up to this generation is durable.
    fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    fn publish_durable(&self, generation: u64) {
        self.durable.send_if_modified(|d| {
            let newer = generation > *d;
            if newer {
                *d = generation;
            }
            newer
        });
    }
}

/// Metric handles of the write path, registered once (the server's `/metrics` renders them;
/// names and meanings are shared with the PostgreSQL store).
struct WriteMetrics {
    /// Requests per commit.
    batch_size: metrics::Histogram,
    /// The WAL fsync that makes a commit durable.
    commit_seconds: metrics::Histogram,
    appended: metrics::Counter,
}

static WRITE_METRICS: std::sync::LazyLock<WriteMetrics> =
    std::sync::LazyLock::new(|| WriteMetrics {
        batch_size: metrics::histogram!("imgroups_commit_batch_size"),
        commit_seconds: metrics::histogram!("imgroups_commit_duration_seconds"),
        appended: metrics::counter!("imgroups_events_appended_total"),
    });

/// Commits whose fsyncs may be in flight at once. The virtual disks measured here complete two
/// concurrent fsyncs about as fast as one, so a commit need not wait for the previous one's
/// fsync to return: a request waits for about one fsync instead of one and a half.
const SYNCERS: usize = 2;

/// The writer connection's page cache, as SQLite's `cache_size` takes it (negative: KiB):
/// 64 MiB.
const WRITER_CACHE_KIB: i64 = -64 * 1024;

/// Starts the writer (which starts the syncers). `jobs` is the writer's own queue, for the
/// syncers' "synced" notices.
pub(crate) fn spawn(
    mut conn: Connection,
    jobs: &mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    config: Config,
    notices: Arc<Publisher>,
    gate: Arc<Gate>,
) -> Result<std::thread::JoinHandle<()>> {
    let waiting = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Syncer {
        wal: crate::beside(&config.path, "-wal"),
        fsync: config.durability == Durability::Full,
        gate: gate.clone(),
        notices,
        wake: jobs.downgrade(),
        writer_waiting: waiting.clone(),
        done: Mutex::new(Done {
            next: 1,
            finished: BTreeMap::new(),
        }),
    });
    let cannot_start = |err: std::io::Error| {
        tracing::error!(error = %err, "cannot start the writer threads");
        Error::internal()
    };
    // The syncers fsync the WAL themselves, so the writer's COMMIT need not.
    conn.pragma_update(None, "synchronous", "NORMAL").db()?;
    // A send writes ten members' rows at random places of the `(account_id, guid)` index (the
    // GUIDs are random); with SQLite's default 2 MiB page cache the writer spilled dirty pages
    // to the WAL in the middle of its transactions and read evicted pages back (M1 in
    // BENCHMARKS.md). Pages are allocated as they are used, so a small database costs no more.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .db()?;
    // A first start's import that never ended (killed midway) left the listing indexes
    // dropped: built here, before any request (a no-op when they are there).
    conn.execute_batch(crate::schema::LISTING_INDEXES).db()?;
    // The same for the unique index of message GUIDs; it fails loudly if a GUID was stored
    // twice while it was dropped (a bug).
    crate::tx::build_guid_index(&conn)?;
    let checkpoints = Checkpoints::start(&mut conn, &config)?;
    let mut syncers = Vec::with_capacity(SYNCERS);
    let mut handoffs = Vec::with_capacity(SYNCERS);
    for _ in 0..SYNCERS {
        let shared = shared.clone();
        let (handoff, queue) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("imgroups-syncer".into())
            .spawn(move || shared.run(queue))
            .map_err(cannot_start)?;
        syncers.push(thread);
        handoffs.push(handoff);
    }
    let writer = Writer::new(conn, config, gate, handoffs, waiting, checkpoints);
    std::thread::Builder::new()
        .name("imgroups-writer".into())
        .spawn(move || writer.run(rx, syncers))
        .map_err(cannot_start)
}

/// One commit (or failed batch), passed from the writer to the syncer.
struct Handoff {
    generation: u64,
    /// Whether the commit succeeded (a failed batch needs no fsync, only its answers).
    committed: bool,
    replies: Vec<Reply>,
    /// The accounts whose logs this commit moved, with their new heads.
    notices: Vec<Notice>,
}

struct Writer {
    conn: Connection,
    config: Config,
    gate: Arc<Gate>,
    /// One queue per syncer; commit `g` goes to syncer `g % SYNCERS`, whose previous commit
    /// (`g - SYNCERS`) is normally done by then (the writer keeps fewer than `SYNCERS` in
    /// flight unless a batch fills up).
    syncers: Vec<std_mpsc::Sender<Handoff>>,
    /// Set while the writer waits for a syncer to be free, so the syncers wake it only then.
    waiting: Arc<AtomicBool>,
    checkpoints: Checkpoints,
    /// Last commit time handed out; commit times never go backwards.
    clock: Timestamp,
    cache: WriterCache,
    /// The generation of the last commit handed to a syncer.
    generation: u64,
    /// The commits handed to a syncer and not yet seen durable: generation, write requests.
    unanswered: VecDeque<(u64, usize)>,
    /// Clients answered by the latest durable commits whose next request has not come yet
    /// (see [`Writer::may_commit`]).
    expected: usize,
    /// Whether the open batch waited for [`Writer::expected`] requests.
    gathering: bool,
    /// Whether a transaction is open, and its answers in the order applied.
    open: bool,
    replies: Vec<Reply>,
    /// Set while SQLite's foreign-key checks are off (a reset, see [`Writer::apply_admin`]);
    /// the next transaction turns them back on before it begins.
    foreign_keys_off: bool,
}

impl Writer {
    fn new(
        conn: Connection,
        config: Config,
        gate: Arc<Gate>,
        syncers: Vec<std_mpsc::Sender<Handoff>>,
        waiting: Arc<AtomicBool>,
        checkpoints: Checkpoints,
    ) -> Self {
        Writer {
            conn,
            checkpoints,
            replies: Vec::with_capacity(config.max_batch),
            config,
            gate,
            syncers,
            waiting,
            clock: Timestamp(0),
            cache: WriterCache::default(),
            generation: 0,
            unanswered: VecDeque::with_capacity(SYNCERS + 1),
            expected: 0,
            gathering: false,
            open: false,
            foreign_keys_off: false,
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>, syncers: Vec<std::thread::JoinHandle<()>>) {
        let mut yielded = false;
        loop {
            let msg = if !self.replies.is_empty() && self.may_commit() {
                // A syncer is idle: commit what is applied, unless more is already queued.
                match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Empty) if !yielded => {
                        // Before committing, let anything else runnable on this CPU (the
                        // transport, with requests for this batch) run first. Where the writer
                        // has a CPU to itself this returns at once.
                        yielded = true;
                        std::thread::yield_now();
                        continue;
                    }
                    Err(TryRecvError::Empty) => {
                        yielded = false;
                        self.commit();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => None,
                }
            } else if self.replies.is_empty() {
                rx.blocking_recv()
            } else {
                // Every syncer is busy, or the batch waits for the requests it expects:
                // apply what arrives meanwhile, and commit once a syncer reports back.
                // Announce the wait, then look again: a syncer that finished in between
                // either sees the flag and wakes us, or we see its result.
                self.waiting.store(true, Ordering::SeqCst);
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.may_commit() {
                    self.waiting.store(false, Ordering::SeqCst);
                    continue;
                }
                self.gathering |= self.syncer_free();
                rx.blocking_recv()
            };
            match msg {
                Some(Msg::Write(job)) => {
                    // Its client may be one of those the last durable commit answered.
                    self.note_durable();
                    self.expected = self.expected.saturating_sub(1);
                    self.apply(job);
                    if self.replies.len() >= self.config.max_batch {
                        self.commit();
                    }
                }
                Some(Msg::Admin(job)) => self.apply_admin(job),
                // Only a wake-up: the loop reads the durable generation itself.
                Some(Msg::Synced) => {}
                Some(Msg::Stop) | None => break,
            }
        }
        // Answer whatever raced the stop rather than dropping it silently.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Write(job) => self.apply(job),
                Msg::Admin(job) => self.apply_admin(job),
                Msg::Synced | Msg::Stop => {}
            }
        }
        if !self.replies.is_empty() {
            self.commit();
        }
        self.syncers.clear();
        for syncer in syncers {
            let _ = syncer.join();
        }
        self.checkpoints.stop();
        // Nothing more will become durable: release any reader still waiting.
        self.gate.publish_durable(u64::MAX);
        tracing::debug!("writer stopped");
    }

    /// Whether fewer than [`SYNCERS`] commits are waiting for their fsync.
    fn syncer_free(&self) -> bool {
        self.generation.saturating_sub(self.gate.durable()) < SYNCERS as u64
    }

    /// Whether the open batch may be committed now: a syncer is free, and the batch does not
    /// wait for requests it expects.
    ///
    /// A commit answers its clients all at once, and under steady load they send their next
    /// requests within a fraction of an fsync. With a syncer free, the writer would commit
    /// the first few of them as soon as its queue is empty for a moment (it applies a request
    /// faster than the transport hands over the next), and the rest a commit later: two small
    /// batches, two fsyncs and two WAL writes, where one would do — at c=16 a batch's fsync,
    /// WAL `pwrite`s and wake-ups cost several times a request's own CPU (BENCHMARKS.md,
    /// "c=16: the same work per batch, more batches"). And once split, the split stays: a
    /// commit of one request and one of fifteen take turns, each answering the clients of
    /// the next. So while another commit's fsync is in flight, a batch waits — at most until
    /// that fsync returns — for the clients the latest durable commits answered
    /// ([`Writer::expected`]), and, to even out a split, until it is at least half as large
    /// as the commit in flight. With no fsync in flight it commits at once: a lone client
    /// never waits, and a request waits for at most one fsync more than it would have.
    fn may_commit(&mut self) -> bool {
        self.note_durable();
        if !self.syncer_free() {
            return false;
        }
        let in_flight: usize = self.unanswered.iter().map(|&(_, writes)| writes).sum();
        self.generation <= self.gate.durable()
            || self.replies.len() >= self.config.max_batch
            || (self.expected == 0 && 2 * self.replies.len() >= in_flight)
    }

    /// Counts the clients answered by the commits that became durable since the last look.
    fn note_durable(&mut self) {
        let durable = self.gate.durable();
        let mut answered = None;
        while let Some(&(generation, writes)) = self.unanswered.front() {
            if generation > durable {
                break;
            }
            self.unanswered.pop_front();
            *answered.get_or_insert(0) += writes;
        }
        if let Some(answered) = answered {
            // Clients still expected when a fsync returned during the wait for them are not
            // coming soon (closed, or done): expect only the newly answered ones.
            if self.gathering {
                self.expected = 0;
                self.gathering = false;
            }
            self.expected += answered;
        }
    }

    fn tick(&mut self) -> Timestamp {
        self.clock = self.clock.max(self.cache.clock_now());
        self.clock
    }

    /// Opens the batch transaction if none is open.
    fn begin(&mut self) -> Result<()> {
        if self.open {
            return Ok(());
        }
        if self.foreign_keys_off {
            sql(&self.conn, "PRAGMA foreign_keys = ON")?;
            self.foreign_keys_off = false;
        }
        sql(&self.conn, "BEGIN IMMEDIATE")?;
        self.open = true;
        if let Err(err) = self
            .cache
            .check_outside_writes(&self.conn)
            .and_then(|()| self.cache.restore_guid_index(&self.conn))
            .and_then(|()| self.cache.load_clock(&self.conn))
        {
            self.abort(err.clone());
            return Err(err);
        }
        Ok(())
    }

    /// Runs one unit of work inside the open transaction (opening it if needed).
    fn apply(&mut self, job: Job) {
        if let Err(err) = self.begin() {
            tracing::warn!(error = %err, "cannot begin a write transaction");
            let _ = job.reply.send(Answer::alone(Err(retryable(err))));
            return;
        }
        let now = self.tick();
        let mut db = Db::with_cache(&self.conn, &mut self.cache, now);
        let result = (job.work)(&mut db);
        // Ended here, handing its held statements back, before the batch may roll back.
        let wrote = db.wrote;
        drop(db);
        match result {
            Err(err) if wrote => {
                // Either storage failed mid-request, or the engine broke its promise to check
                // every rule first; without a savepoint the only clean way back is the whole
                // batch.
                if err.is_final() {
                    tracing::error!(error = %err, "a request was rejected after it wrote (bug)");
                }
                self.replies.push(Reply::Write(job.reply, Err(err.clone())));
                self.abort(err);
            }
            result => self.replies.push(Reply::Write(job.reply, result)),
        }
    }

    /// Runs an admin job in its own savepoint inside the open transaction. It sees the heads
    /// as of the requests before it (they are stored first).
    ///
    /// A job that clears the world (a reset) runs in a transaction of its own with SQLite's
    /// foreign-key checks off: with them on, SQLite deletes every row of a table that is a
    /// parent or a child in a foreign key one by one (10,000 groups and their 30,000 members:
    /// ~100 ms), where without them it drops the table's pages at once. Safe because the job
    /// deletes every child table together with its parents. The requests before it are
    /// committed first; the pragma only changes outside a transaction, and is back on before
    /// the next request.
    fn apply_admin(&mut self, job: AdminJob) {
        if job.clears == Clears::Nothing {
            return self.apply_admin_in_batch(job);
        }
        if self.open {
            self.commit();
        }
        if let Err(err) = sql(&self.conn, "PRAGMA foreign_keys = OFF") {
            let _ = job.reply.send(Answer::alone(Err(retryable(err))));
            return;
        }
        self.apply_admin_in_batch(job);
        self.foreign_keys_off = true;
        if self.open {
            self.commit();
        }
    }

    fn apply_admin_in_batch(&mut self, job: AdminJob) {
        if let Err(err) = self.begin() {
            tracing::warn!(error = %err, "cannot begin a write transaction");
            let _ = job.reply.send(Answer::alone(Err(retryable(err))));
            return;
        }
        let outcome = (|| -> Result<Result<()>> {
            // The job may read anything: the rows the batch deferred are stored first. It may
            // write message bodies (a reset, a snapshot's import), which an import's bodies in
            // memory would not know of: those end first, the GUID index built.
            self.cache.flush(&self.conn)?;
            self.cache.end_import_bodies(&self.conn)?;
            sql(&self.conn, "SAVEPOINT admin")?;
            let result = (job.run)(&self.conn);
            if result.is_err() {
                sql(&self.conn, "ROLLBACK TO admin")?;
            }
            sql(&self.conn, "RELEASE admin")?;
            // It may have moved the clock.
            self.cache.load_clock(&self.conn)?;
            Ok(result)
        })();
        // It may have created an account the cache knows as "not an account".
        self.cache.forget_accounts();
        match job.clears {
            Clears::Nothing => {}
            Clears::Chats => self.cache.forget_world(false),
            Clears::ChatsAndAccounts => {
                self.cache.forget_world(true);
                // A new world (an import may bring an earlier controllable clock): commit
                // times restart from its clock, so a fixture replayed gives the same times.
                self.clock = Timestamp(0);
            }
        }
        match outcome {
            Ok(result) => self.replies.push(Reply::Admin(job.reply, result)),
            Err(err) => {
                self.replies.push(Reply::Admin(job.reply, Err(err.clone())));
                self.abort(err);
            }
        }
    }

    /// Rolls back the open transaction and fails every request in it: none is half-applied.
    fn abort(&mut self, err: Error) {
        if !self.conn.is_autocommit() {
            if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %rollback, "rollback failed");
            }
        }
        self.open = false;
        self.cache.forget_all();
        tracing::warn!(error = %err, requests = self.replies.len(), "batch not committed");
        let err = retryable(err);
        for reply in self.replies.drain(..) {
            reply.send(Some(err.clone()));
        }
    }

    /// Commits the open transaction (WAL written, not yet fsynced) and hands it to the syncer,
    /// which answers its requests once it is durable.
    fn commit(&mut self) {
        let outcome = (|| -> Result<Vec<Notice>> {
            self.cache.flush(&self.conn)?;
            let moved = self.cache.moved_heads();
            if let Some(keep) = self.config.retain_events {
                retain(&self.conn, &moved, keep)?;
            }
            self.generation += 1;
            // Before COMMIT: a reader that can see this commit must also see its generation.
            self.gate
                .committing
                .store(self.generation, Ordering::SeqCst);
            debug_assert!(
                self.cache.is_flushed(),
                "a deferred row would not be committed"
            );
            sql(&self.conn, "COMMIT")?;
            let metrics = &*WRITE_METRICS;
            metrics.batch_size.record(self.replies.len() as f64);
            metrics.appended.increment(self.cache.take_appended());
            Ok(moved
                .into_iter()
                .map(|(account, head)| Notice { account, head })
                .collect())
        })();
        self.open = false;
        let notices = match outcome {
            Ok(notices) => notices,
            Err(err) => {
                // Readers may already wait for this generation; the syncer still publishes it.
                self.abort(err);
                self.hand_off(false, Vec::new());
                return;
            }
        };
        tracing::trace!(
            requests = self.replies.len(),
            logs = notices.len(),
            "committed"
        );
        self.hand_off(true, notices);
        // While the syncer fsyncs what was just committed.
        self.checkpoints.after_commit(&self.conn);
    }

    fn hand_off(&mut self, committed: bool, notices: Vec<Notice>) {
        let writes = self
            .replies
            .iter()
            .filter(|reply| matches!(reply, Reply::Write(..)))
            .count();
        self.unanswered.push_back((self.generation, writes));
        self.gathering = false;
        let handoff = Handoff {
            generation: self.generation,
            committed,
            replies: std::mem::take(&mut self.replies),
            notices,
        };
        let syncer = self.syncers.get(self.generation as usize % SYNCERS);
        let sent = match syncer {
            Some(syncer) => syncer.send(handoff).map_err(|failed| failed.0),
            None => Err(handoff),
        };
        if let Err(handoff) = sent {
            // Only possible if the syncer thread died: the write cannot be confirmed durable.
            tracing::error!("the syncer is gone; failing the batch");
            for reply in handoff.replies {
                reply.send(Some(Error::unavailable(
                    "the write could not be confirmed durable; retry",
                )));
            }
        }
        self.replies.reserve(self.config.max_batch);
    }
}

/// A failure of the store itself is the client's cue to retry, not a bug report.
fn retryable(err: Error) -> Error {
    if err.kind == ErrorKind::Internal {
        Error::unavailable("the write could not be stored; retry")
    } else {
        err
    }
}

/// The second pipeline stage: one fsync for every commit handed over since the last one.
/// This is the syncer threads' shared state. Each takes the next commit handed over, fsyncs the WAL
/// (through its own file descriptor, so a write-back error is reported to every syncer that
/// could be affected by it, not only to whichever asks first), and files the result; results
/// are then published strictly in commit order.
struct Syncer {
    wal: PathBuf,
    /// `false` with `--durability normal`: commits are answered as soon as they are written.
    fsync: bool,
    gate: Arc<Gate>,
    notices: Arc<Publisher>,
    /// The writer's queue, to tell it when a round is done (weak: the writer exits once the
    /// store's handles are gone).
    wake: mpsc::WeakSender<Msg>,
    /// The writer's "waiting for a free syncer" flag: wake it only when it waits.
    writer_waiting: Arc<AtomicBool>,
    done: Mutex<Done>,
}

/// Commits whose fsync has returned, waiting for every earlier commit's.
struct Done {
    /// The generation to publish next (generations are consecutive, one per handoff).
    next: u64,
    finished: BTreeMap<u64, (Handoff, Option<std::io::Error>)>,
}

impl Syncer {
    fn run(&self, handoffs: std_mpsc::Receiver<Handoff>) {
        let mut file = None;
        while let Ok(handoff) = handoffs.recv() {
            let synced = if self.fsync && handoff.committed {
                self.sync(&mut file)
            } else {
                Ok(())
            };
            self.file(handoff, synced.err());
        }
    }

    fn sync(&self, file: &mut Option<File>) -> std::io::Result<()> {
        let open = match file {
            Some(open) => open,
            None => file.insert(File::open(&self.wal)?),
        };
        let started = std::time::Instant::now();
        let synced = open.sync_data();
        WRITE_METRICS
            .commit_seconds
            .record(started.elapsed().as_secs_f64());
        if synced.is_err() {
            *file = None;
        }
        synced
    }

    /// Records one commit's fsync result, then publishes every commit whose turn has come.
    /// A commit is published only after all earlier ones: its WAL frames follow theirs, so it
    /// is only as durable as they are.
    fn file(&self, handoff: Handoff, failed: Option<std::io::Error>) {
        // A poisoned lock means a syncer panicked while publishing: no answer can be trusted
        // from here on, and the requests waiting on them fail when their senders drop.
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        done.finished.insert(handoff.generation, (handoff, failed));
        let mut published = false;
        loop {
            let next = done.next;
            let Some((handoff, failed)) = done.finished.remove(&next) else {
                break;
            };
            done.next += 1;
            self.gate.publish_durable(next);
            self.finish(handoff, failed.as_ref());
            published = true;
        }
        if !published {
            return;
        }
        // After publishing (see `Writer::run` for the other half of this handshake).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.writer_waiting.swap(false, Ordering::SeqCst) {
            if let Some(wake) = self.wake.upgrade() {
                // Fails only when the writer has stopped listening, which is fine.
                let _ = wake.blocking_send(Msg::Synced);
            }
        }
    }

    fn finish(&self, handoff: Handoff, failed: Option<&std::io::Error>) {
        if let Some(err) = failed {
            tracing::error!(error = %err, wal = %self.wal.display(), "fsync of the WAL failed");
        }
        if !handoff.notices.is_empty() {
            // (After a failed fsync the events are still in the log that readers see, so
            // listeners hear of them too.)
            self.notices.publish(handoff.notices.into());
        }
        let replies = handoff.replies.into_iter().map(|reply| {
            let err = match failed {
                Some(_) if !reply.is_err() => Some(Error::unavailable(
                    "the write may not be durable (fsync failed); retry",
                )),
                _ => None,
            };
            reply.or_error(err)
        });
        deliver(replies.collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_read_waits_until_what_it_may_have_seen_is_durable() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let gate = Arc::new(Gate::new());
        // Commit 2 has started (a reader may see it); only commit 1 is on disk.
        gate.committing.store(2, Ordering::SeqCst);
        gate.publish_durable(1);
        let horizon = gate.horizon();
        assert_eq!(horizon, 2);
        rt.block_on(async {
            let early =
                tokio::time::timeout(Duration::from_millis(50), gate.wait_durable(horizon)).await;
            assert!(early.is_err(), "returned before commit 2 was durable");
            let waiting = gate.clone();
            let waiter = tokio::spawn(async move { waiting.wait_durable(horizon).await });
            gate.publish_durable(2);
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("released once durable")
                .unwrap();
            // Older generations are durable already: no wait at all.
            gate.wait_durable(1).await;
            // The durable mark never moves back.
            gate.publish_durable(1);
            gate.wait_durable(2).await;
        });
    }
}

#[cfg(test)]
mod syncer_tests {
    use super::*;
    use imgroups_core::AccountId;

    fn handoff(generation: u64) -> Handoff {
        Handoff {
            generation,
            committed: true,
            replies: Vec::new(),
            notices: vec![Notice {
                account: AccountId(1),
                head: generation,
            }],
        }
    }

    #[test]
    fn commits_whose_fsyncs_finish_out_of_order_are_published_in_order() {
        let local = crate::notices::Local::new(8);
        let mut heard = local.notices.subscribe();
        let (jobs, mut synced) = mpsc::channel(8);
        let gate = Arc::new(Gate::new());
        let syncer = Syncer {
            wal: PathBuf::from("unused-wal"),
            fsync: false,
            gate: gate.clone(),
            notices: Arc::new(Publisher::local(local)),
            wake: jobs.downgrade(),
            writer_waiting: Arc::new(AtomicBool::new(true)),
            done: Mutex::new(Done {
                next: 1,
                finished: BTreeMap::new(),
            }),
        };

        // Commit 2's fsync returns first: nothing may be published before commit 1's.
        syncer.file(handoff(2), None);
        assert_eq!(*gate.durable.borrow(), 0);
        assert!(heard.try_recv().is_err());
        assert!(synced.try_recv().is_err());

        syncer.file(handoff(1), None);
        assert_eq!(*gate.durable.borrow(), 2);
        for generation in [1, 2] {
            let notices = heard.try_recv().unwrap();
            assert_eq!(
                notices[0],
                Notice {
                    account: AccountId(1),
                    head: generation
                }
            );
        }
        assert!(heard.try_recv().is_err());
        // The writer was waiting for a free syncer: woken once, and the flag is down again.
        assert!(matches!(synced.try_recv(), Ok(Msg::Synced)));
        assert!(synced.try_recv().is_err());
        assert!(!syncer.writer_waiting.load(Ordering::SeqCst));
    }
}

//! The single writer thread, its group commit, and the syncers that make commits durable.
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
//!    Results are published strictly in commit order: the durable generation, the doorbell
//!    with the commit's events, and only then the answers. Two fsyncs may be in flight at
//!    once, so a commit does not wait for the previous one's fsync to return.
//!
//! So an answer, a delivered event or a read (see [`Gate`]) never reflects a write that is not
//! yet on disk: acknowledged = durable, exactly as with `synchronous=FULL`, with the fsync of
//! one batch overlapping the work of the next.
//!
//! Measured reasons for this shape are in BENCHMARKS.md (sessions 2 and 3).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use imgroups_core::{
    engine, AccountId, Command, Error, ErrorKind, Event, Outcome, Result, Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::checkpoint::Checkpoints;
use crate::db::{Db, SqlResult, WriterCache};
use crate::{Config, Durability};

pub(crate) enum Msg {
    Write(Job),
    /// Bookkeeping outside the engine (webhook endpoints and cursors), run in the same
    /// transactions so the writer stays the only writer.
    Admin(AdminJob),
    /// From a syncer, sent only while the writer waits for one: a commit became durable.
    Synced,
    Stop,
}

pub(crate) struct Job {
    pub(crate) account: AccountId,
    pub(crate) key: Option<String>,
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Answer<Result<Outcome>>>,
}

/// Any value an admin job returns.
pub(crate) type Any = Box<dyn std::any::Any + Send>;

/// What an admin job runs, on the writer's connection.
pub(crate) type AdminFn = Box<dyn FnOnce(&Connection) -> Result<Any> + Send>;

pub(crate) struct AdminJob {
    pub(crate) run: AdminFn,
    pub(crate) reply: oneshot::Sender<Answer<Result<Any>>>,
}

/// The events one commit appended, in commit order (per account, by sequence).
#[derive(Debug)]
pub struct Committed {
    pub events: Vec<(AccountId, Event)>,
    /// Per event, its wire encoding once a transport has made it: see [`Committed::encoded`].
    encoded: Box<[OnceLock<Bytes>]>,
}

impl Committed {
    pub fn new(events: Vec<(AccountId, Event)>) -> Self {
        let encoded = events.iter().map(|_| OnceLock::new()).collect();
        Committed { events, encoded }
    }

    /// The encoding of event `index`, made by `encode` the first time anyone asks and shared
    /// after that: a commit going out to a thousand live subscribers is encoded once, not a
    /// thousand times. There is one slot per event, so only one encoding may use it (the
    /// gRPC server's; other transports encode for themselves).
    ///
    /// # Panics
    /// If `index` is not an index of `events`.
    pub fn encoded(&self, index: usize, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.encoded[index]
            .get_or_init(|| encode(&self.events[index].1))
            .clone()
    }
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

/// Commits whose fsyncs may be in flight at once. The virtual disks measured here complete two
/// concurrent fsyncs about as fast as one, so a commit need not wait for the previous one's
/// fsync to return: a request waits for about one fsync instead of one and a half.
const SYNCERS: usize = 2;

/// How often expired idempotency records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Starts the writer (which starts the syncers). `jobs` is the writer's own queue, for the
/// syncers' "synced" notices.
pub(crate) fn spawn(
    mut conn: Connection,
    jobs: &mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    config: Config,
    committed: broadcast::Sender<Arc<Committed>>,
    gate: Arc<Gate>,
) -> Result<std::thread::JoinHandle<()>> {
    let waiting = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Syncer {
        wal: crate::beside(&config.path, "-wal"),
        fsync: config.durability == Durability::Full,
        gate: gate.clone(),
        committed,
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

/// What a request's reply channel carries: its answer and, for the first request of a commit,
/// the answers of the others (see [`deliver`]).
pub(crate) struct Answer<T> {
    pub(crate) result: T,
    pub(crate) rest: Carried,
}

impl<T> Answer<T> {
    pub(crate) fn alone(result: T) -> Self {
        Answer {
            result,
            rest: Carried(Vec::new()),
        }
    }
}

/// Answers carried by another request's answer. They are sent when this is dropped: by that
/// request, on the runtime's thread, as soon as it has its own answer; or, if that request has
/// gone away, wherever its unread answer is dropped.
pub(crate) struct Carried(Vec<Reply>);

impl Drop for Carried {
    fn drop(&mut self) {
        for reply in self.0.drain(..) {
            reply.send(None);
        }
    }
}

/// Answers every request of a commit while waking the runtime once. The first request still
/// waiting gets its answer carrying the others', and sends them from the runtime's thread,
/// where waking a task is a queue push. Waking each from the syncer's thread costs a syscall
/// per request and, where the runtime shares the syncer's CPU, two context switches each: the
/// woken runtime preempts the syncer, sends one response and sleeps again (BENCHMARKS.md,
/// session 4).
fn deliver(mut replies: Vec<Reply>) {
    while !replies.is_empty() {
        let first = replies.remove(0);
        match first.carrying(replies) {
            Ok(()) => return,
            // That request has gone away: the next one carries the rest.
            Err(rest) => replies = rest,
        }
    }
}

/// An answer held until its commit is durable.
pub(crate) enum Reply {
    Write(oneshot::Sender<Answer<Result<Outcome>>>, Result<Outcome>),
    Admin(oneshot::Sender<Answer<Result<Any>>>, Result<Any>),
}

impl Reply {
    fn is_err(&self) -> bool {
        match self {
            Reply::Write(_, result) => result.is_err(),
            Reply::Admin(_, result) => result.is_err(),
        }
    }

    /// This answer, or `err` instead.
    fn or_error(self, err: Option<Error>) -> Reply {
        match (self, err) {
            (reply, None) => reply,
            (Reply::Write(reply, _), Some(err)) => Reply::Write(reply, Err(err)),
            (Reply::Admin(reply, _), Some(err)) => Reply::Admin(reply, Err(err)),
        }
    }

    /// Sends the answer, or `err` instead. The client may have gone away; the write stands
    /// regardless.
    fn send(self, err: Option<Error>) {
        let _ = self.or_error(err).carrying(Vec::new());
    }

    /// Sends the answer carrying `rest`; gives `rest` back if the request has gone away.
    fn carrying(self, rest: Vec<Reply>) -> std::result::Result<(), Vec<Reply>> {
        let back = |mut answer: Carried| std::mem::take(&mut answer.0);
        match self {
            Reply::Write(reply, result) => reply
                .send(Answer {
                    result,
                    rest: Carried(rest),
                })
                .map_err(|answer| back(answer.rest)),
            Reply::Admin(reply, result) => reply
                .send(Answer {
                    result,
                    rest: Carried(rest),
                })
                .map_err(|answer| back(answer.rest)),
        }
    }
}

/// One commit (or failed batch), passed from the writer to the syncer.
struct Handoff {
    generation: u64,
    /// Whether the commit succeeded (a failed batch needs no fsync, only its answers).
    committed: bool,
    replies: Vec<Reply>,
    events: Vec<(AccountId, Event)>,
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
    last_prune: Instant,
    cache: WriterCache,
    /// The generation of the last commit handed to a syncer.
    generation: u64,
    /// The open transaction's answers and events, in the order applied.
    open: bool,
    replies: Vec<Reply>,
    events: Vec<(AccountId, Event)>,
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
            last_prune: Instant::now() - PRUNE_EVERY,
            generation: 0,
            open: false,
            events: Vec::new(),
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>, syncers: Vec<std::thread::JoinHandle<()>>) {
        let mut yielded = false;
        loop {
            let msg = if !self.replies.is_empty() && self.syncer_free() {
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
                // Every syncer is busy: apply what arrives meanwhile, and commit once one
                // reports back. Announce the wait, then look again: a syncer that finished
                // in between either sees the flag and wakes us, or we see its result.
                self.waiting.store(true, Ordering::SeqCst);
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.syncer_free() {
                    self.waiting.store(false, Ordering::SeqCst);
                    continue;
                }
                rx.blocking_recv()
            };
            match msg {
                Some(Msg::Write(job)) => {
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

    fn tick(&mut self) -> Timestamp {
        self.clock = self.clock.max(Timestamp::now());
        self.clock
    }

    /// Opens the batch transaction if none is open.
    fn begin(&mut self) -> Result<()> {
        if self.open {
            return Ok(());
        }
        sql(&self.conn, "BEGIN IMMEDIATE")?;
        self.open = true;
        if let Err(err) = self.cache.check_outside_writes(&self.conn) {
            self.abort(err.clone());
            return Err(err);
        }
        Ok(())
    }

    /// Applies one request inside the open transaction (opening it if needed).
    fn apply(&mut self, job: Job) {
        if let Err(err) = self.begin() {
            tracing::warn!(error = %err, "cannot begin a write transaction");
            let _ = job.reply.send(Answer::alone(Err(retryable(err))));
            return;
        }
        let now = self.tick();
        let ttl_start = Timestamp(now.0 - self.config.idempotency_ttl.as_nanos() as i64);
        match apply(&self.conn, &job, now, ttl_start, &mut self.cache) {
            Ok((result, events)) => {
                self.replies.push(Reply::Write(job.reply, result));
                self.events.extend(events);
            }
            Err(err) => {
                // The transaction itself is broken: nothing of this batch may commit.
                self.replies.push(Reply::Write(job.reply, Err(err.clone())));
                self.abort(err);
            }
        }
    }

    /// Runs an admin job in its own savepoint inside the open transaction. It sees the heads
    /// as of the requests before it (they are stored first).
    fn apply_admin(&mut self, job: AdminJob) {
        if let Err(err) = self.begin() {
            tracing::warn!(error = %err, "cannot begin a write transaction");
            let _ = job.reply.send(Answer::alone(Err(retryable(err))));
            return;
        }
        let outcome = (|| -> Result<Result<Any>> {
            self.cache.flush_heads(&self.conn)?;
            sql(&self.conn, "SAVEPOINT admin")?;
            let result = (job.run)(&self.conn);
            if result.is_err() {
                sql(&self.conn, "ROLLBACK TO admin")?;
            }
            sql(&self.conn, "RELEASE admin")?;
            Ok(result)
        })();
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
        self.events.clear();
        tracing::warn!(error = %err, requests = self.replies.len(), "batch not committed");
        let err = retryable(err);
        for reply in self.replies.drain(..) {
            reply.send(Some(err.clone()));
        }
    }

    /// Commits the open transaction (WAL written, not yet fsynced) and hands it to the syncer,
    /// which answers its requests once it is durable.
    fn commit(&mut self) {
        let outcome = (|| -> Result<()> {
            self.cache.flush_heads(&self.conn)?;
            if let Some(keep) = self.config.retain_events {
                retain(&self.conn, &self.events, keep)?;
            }
            self.maybe_prune()?;
            self.generation += 1;
            // Before COMMIT: a reader that can see this commit must also see its generation.
            self.gate
                .committing
                .store(self.generation, Ordering::SeqCst);
            sql(&self.conn, "COMMIT")
        })();
        self.open = false;
        if let Err(err) = outcome {
            // Readers may already wait for this generation; the syncer still publishes it.
            self.abort(err);
            self.hand_off(false);
            return;
        }
        tracing::trace!(
            requests = self.replies.len(),
            events = self.events.len(),
            "committed"
        );
        self.hand_off(true);
        // While the syncer fsyncs what was just committed.
        self.checkpoints.after_commit(&self.conn);
    }

    fn hand_off(&mut self, committed: bool) {
        let handoff = Handoff {
            generation: self.generation,
            committed,
            replies: std::mem::take(&mut self.replies),
            events: std::mem::take(&mut self.events),
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

    /// Deletes expired idempotency records (inside the batch transaction), once a minute.
    fn maybe_prune(&mut self) -> Result<()> {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return Ok(());
        }
        self.last_prune = Instant::now();
        let cutoff = Timestamp::now().0 - self.config.idempotency_ttl.as_nanos() as i64;
        self.conn
            .prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")
            .and_then(|mut s| s.execute([cutoff]))
            .db()
            .map(drop)
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
/// The syncer threads' shared state. Each takes the next commit handed over, fsyncs the WAL
/// (through its own file descriptor, so a write-back error is reported to every syncer that
/// could be affected by it, not only to whichever asks first), and files the result; results
/// are then published strictly in commit order.
struct Syncer {
    wal: PathBuf,
    /// `false` with `--durability normal`: commits are answered as soon as they are written.
    fsync: bool,
    gate: Arc<Gate>,
    committed: broadcast::Sender<Arc<Committed>>,
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
        let synced = open.sync_data();
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
        if !handoff.events.is_empty() {
            // No receivers is fine: nobody is listening. (After a failed fsync the events are
            // still in the log that readers see, so subscribers hear of them too.)
            let _ = self
                .committed
                .send(Arc::new(Committed::new(handoff.events)));
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

/// Drops all but the newest `keep` events of every account this batch wrote to, in the same
/// transaction, and records how far it pruned so catch-up can refuse to skip silently.
fn retain(tx: &Connection, appended: &[(AccountId, Event)], keep: u64) -> Result<()> {
    let mut heads: Vec<(AccountId, u64)> = Vec::new();
    for (account, event) in appended {
        match heads.iter_mut().find(|(a, _)| a == account) {
            Some((_, head)) => *head = (*head).max(event.sequence),
            None => heads.push((*account, event.sequence)),
        }
    }
    for (account, head) in heads {
        let Some(through) = head.checked_sub(keep).filter(|t| *t > 0) else {
            continue;
        };
        tx.prepare_cached("DELETE FROM events WHERE account_id = ?1 AND seq <= ?2")
            .and_then(|mut s| s.execute(params![account, through as i64]))
            .db()?;
        tx.prepare_cached(
            "UPDATE accounts SET pruned_through = max(pruned_through, ?2) WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![account, through as i64]))
        .db()?;
    }
    Ok(())
}

/// Runs a parameterless statement through the statement cache (no re-parse per request).
fn sql(tx: &Connection, statement: &str) -> Result<()> {
    tx.prepare_cached(statement)
        .and_then(|mut s| s.execute([]))
        .db()
        .map(drop)
}

/// One request's answer and the events it appended.
type Applied = (Result<Outcome>, Vec<(AccountId, Event)>);

/// Applies one request inside the batch transaction. The outer `Result` fails the whole batch
/// (the transaction itself is broken); the inner one is this request's answer.
fn apply(
    tx: &Connection,
    job: &Job,
    now: Timestamp,
    ttl_start: Timestamp,
    cache: &mut WriterCache,
) -> Result<Applied> {
    let method = job.command.method();
    // Only keyed requests need a fingerprint (hashing a 10 MiB icon is not free).
    let fingerprint = job.key.as_ref().map(|_| job.command.fingerprint());
    if let Some(key) = &job.key {
        let stored: Option<(Vec<u8>, String)> = tx
            .prepare_cached(
                "SELECT fingerprint, outcome FROM idempotency
                 WHERE account_id = ?1 AND method = ?2 AND key = ?3 AND created_at >= ?4",
            )
            .and_then(|mut s| {
                s.query_row(params![job.account, method, key, ttl_start.0], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .db()?;
        if let Some((stored_fingerprint, outcome)) = stored {
            if Some(stored_fingerprint) != fingerprint {
                let err = Error::new(
                    ErrorKind::DuplicateMessage,
                    "this idempotency key was already used for a different request",
                )
                .with("field", "clientMessageId")
                .with("key", key);
                return Ok((Err(err), Vec::new()));
            }
            let replay: Result<Outcome> = serde_json::from_str(&outcome).map_err(|err| {
                tracing::error!(error = %err, "stored idempotent outcome is unreadable");
                Error::internal()
            })?;
            return Ok((replay, Vec::new()));
        }
    }

    let mut db = Db::with_cache(tx, cache);
    let result = engine::execute(&mut db, job.account, now, &job.command);
    let events = std::mem::take(&mut db.appended);
    if let Err(err) = &result {
        if db.wrote {
            // Either storage failed mid-request, or the engine broke its promise to check every
            // rule first; without a savepoint the only clean way back is the whole batch.
            if err.kind != ErrorKind::Internal {
                tracing::error!(error = %err, "a request was rejected after it wrote (bug)");
            }
            return Err(err.clone());
        }
    }

    if let Some(key) = &job.key {
        let remember = match &result {
            Ok(_) => true,
            Err(err) => err.is_final(),
        };
        if remember {
            let outcome = serde_json::to_string(&result).map_err(|err| {
                tracing::error!(error = %err, "cannot encode outcome");
                Error::internal()
            })?;
            tx.prepare_cached(
                "INSERT INTO idempotency (account_id, method, key, fingerprint, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET fingerprint = excluded.fingerprint,
                     outcome = excluded.outcome, created_at = excluded.created_at",
            )
            .and_then(|mut s| {
                s.execute(params![job.account, method, key, fingerprint, outcome, now.0])
            })
            .db()?;
        }
    }
    Ok((result, events))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    use imgroups_core::{Change, ChatGuid};

    fn handoff(generation: u64) -> Handoff {
        let event = Event {
            sequence: generation,
            chat_guid: ChatGuid::parse("iMessage;+;chat1").unwrap(),
            occurred_at: Timestamp(0),
            is_from_me: true,
            actor: None,
            change: Change::IconChanged,
        };
        Handoff {
            generation,
            committed: true,
            replies: Vec::new(),
            events: vec![(1, event)],
        }
    }

    #[test]
    fn commits_whose_fsyncs_finish_out_of_order_are_published_in_order() {
        let (committed, mut heard) = broadcast::channel(8);
        let (jobs, mut synced) = mpsc::channel(8);
        let gate = Arc::new(Gate::new());
        let syncer = Syncer {
            wal: PathBuf::from("unused-wal"),
            fsync: false,
            gate: gate.clone(),
            committed,
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
            let commit = heard.try_recv().unwrap();
            assert_eq!(commit.events[0].1.sequence, generation);
        }
        assert!(heard.try_recv().is_err());
        // The writer was waiting for a free syncer: woken once, and the flag is down again.
        assert!(matches!(synced.try_recv(), Ok(Msg::Synced)));
        assert!(synced.try_recv().is_err());
        assert!(!syncer.writer_waiting.load(Ordering::SeqCst));
    }

    #[test]
    fn a_commit_is_answered_in_full_even_when_the_requests_carrying_the_answers_are_gone() {
        let mut waiting = Vec::new();
        let mut replies = Vec::new();
        for i in 0..4_usize {
            let (reply, rx) = oneshot::channel();
            replies.push(Reply::Admin(reply, Ok(Box::new(i) as Any)));
            waiting.push(rx);
        }
        let value =
            |answer: Answer<Result<Any>>| *answer.result.unwrap().downcast::<usize>().unwrap();
        let mut waiting = waiting.into_iter();
        // The first request has gone away: the second carries the rest, and only it was sent.
        drop(waiting.next());
        let mut second = waiting.next().unwrap();
        let mut third = waiting.next().unwrap();
        deliver(replies);
        let answer = second.try_recv().unwrap();
        assert_eq!(answer.rest.0.len(), 2);
        assert!(
            third.try_recv().is_err(),
            "answered before the carrier read its answer"
        );
        // The carrier takes its own answer; the carried ones go out as the rest is dropped.
        assert_eq!(value(answer), 1);
        assert_eq!(value(third.try_recv().unwrap()), 2);
        assert_eq!(value(waiting.next().unwrap().try_recv().unwrap()), 3);

        // A carrier that goes away after its answer was sent: dropping the unread answer
        // answers the others.
        let (mut replies, mut waiting) = (Vec::new(), Vec::new());
        for i in 0..3_usize {
            let (reply, rx) = oneshot::channel();
            replies.push(Reply::Admin(reply, Ok(Box::new(i) as Any)));
            waiting.push(rx);
        }
        deliver(replies);
        let mut waiting = waiting.into_iter();
        drop(waiting.next());
        for (i, mut rx) in waiting.enumerate() {
            assert_eq!(value(rx.try_recv().unwrap()), i + 1);
        }
    }
}

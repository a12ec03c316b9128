//! The write path: one writer thread per process, which runs the engine's units of work in
//! batches (group commit), each batch one PostgreSQL transaction.
//!
//! **Across processes.** Each batch first takes a transaction-scoped advisory lock
//! ([`WRITE_LOCK`]), so batches of all processes on the database run one at a time. That
//! makes the engine's check-then-write atomic across processes (two nodes cannot both add
//! the 32nd member, or both create the same group), hands out each account's sequences in
//! commit order with no gap (the heads are read under the lock and stored in the same
//! transaction as the events), and rules out deadlocks between batches. A process waits for
//! the lock only while another process's batch runs; meanwhile its own requests queue up and
//! join its next batch, so under load batches grow instead of queueing one by one.
//!
//! **Round trips.** The engine's port is synchronous; each call blocks this thread on the
//! store's runtime. Writes are not sent when made but queued and sent pipelined with the next
//! read, or with the commit: a request typically costs one or two round trips, and the commit
//! (pending writes, the batch's events in one `INSERT … SELECT unnest(…)`, the heads, the
//! writer state, `COMMIT`) is a single round trip.
//!
//! **Caching.** Like the SQLite writer, this one remembers heads, group rows, members and which
//! addresses are accounts. Every batch and every change to accounts or the directory bumps
//! `writer_state.epoch`; a batch that finds the epoch is not the one its own last commit set
//! forgets everything first. So the cache is exact, whichever process wrote.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use imgroups_core::clock::SimClock;
use imgroups_core::port::{GroupRow, Notice, Work};
use imgroups_core::{AccountId, Address, Error, ErrorKind, GroupKey, Outcome, Result, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, SimpleQueryMessage, Statement};

use crate::notices::Hints;
use crate::sql::{Params, PgResult};
use crate::tx::PgTx;

/// How long a batch may wait for the requests it expects. A batch answers its clients all at
/// once; under steady load they send their next requests a round trip later, just after the
/// next batch began — which would then carry a few requests, and the one after it the rest:
/// two half batches, two WAL flushes, where one would do. So a batch that has fewer requests
/// than the last one waits (this long at most) for the rest. A lone client (last batch: one
/// request) never waits.
const GATHER: Duration = Duration::from_millis(1);

/// Metric handles of the write path, registered once (the server's `/metrics` renders them;
/// names and meanings are shared with the SQLite store).
struct WriteMetrics {
    /// Requests per commit.
    batch_size: metrics::Histogram,
    /// The round trip that carries the batch's last statements and `COMMIT`.
    commit_seconds: metrics::Histogram,
    appended: metrics::Counter,
}

static WRITE_METRICS: std::sync::LazyLock<WriteMetrics> =
    std::sync::LazyLock::new(|| WriteMetrics {
        batch_size: metrics::histogram!("imgroups_commit_batch_size"),
        commit_seconds: metrics::histogram!("imgroups_commit_duration_seconds"),
        appended: metrics::counter!("imgroups_events_appended_total"),
    });

/// The advisory-lock key every write batch holds (an arbitrary, fixed number).
pub(crate) const WRITE_LOCK: i64 = 0x696d_6772_6f75_7000;

pub(crate) enum Msg {
    Write(Job),
    Stop,
}

pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) reply: oneshot::Sender<Result<Outcome>>,
}

/// The writer's connection, used synchronously from the writer thread, with its prepared
/// statements. It runs on a current-thread runtime of its own, driven by the writer thread
/// itself while it waits for an answer: a round trip involves no other thread (measured: the
/// hand-offs to a shared runtime cost about a third of the store's CPU per write).
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    runtime: tokio::runtime::Runtime,
}

/// A write not sent yet: it goes out pipelined with the next read or the commit.
pub(crate) struct Pending {
    pub(crate) sql: &'static str,
    pub(crate) params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conn {
    pub(crate) fn connect(config: &tokio_postgres::Config) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| {
                tracing::error!(error = %err, "cannot start the writer's runtime");
                Error::internal()
            })?;
        let client = runtime.block_on(crate::connect(config, runtime.handle()))?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            runtime,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub(crate) fn prepare(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.runtime.block_on(self.client.prepare(sql)).db()?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Sends `pending` and then `query`, pipelined (one round trip), and returns the query's
    /// rows. The writes are gone from `pending` whatever happens.
    pub(crate) fn run(
        &mut self,
        pending: &mut Vec<Pending>,
        query: Option<(&'static str, Params<'_>)>,
    ) -> Result<Vec<Row>> {
        let writes = std::mem::take(pending);
        let mut statements = Vec::with_capacity(writes.len());
        for write in &writes {
            statements.push(self.prepare(write.sql)?);
        }
        let query = match query {
            Some((sql, params)) => Some((self.prepare(sql)?, params)),
            None => None,
        };
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = writes
            .iter()
            .map(|w| {
                w.params
                    .iter()
                    .map(|p| &**p as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        let client = &self.client;
        self.runtime.block_on(async {
            let sent = statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| client.execute(statement, params));
            let read = async {
                match &query {
                    Some((statement, params)) => client.query(statement, params).await,
                    None => Ok(Vec::new()),
                }
            };
            let (written, rows) = futures::join!(join_all(sent), read);
            for result in written {
                result.db()?;
            }
            rows.db()
        })
    }

    pub(crate) fn simple(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>> {
        self.runtime.block_on(self.client.simple_query(sql)).db()
    }
}

/// What the writer remembers between batches (see the module's notes on caching).
#[derive(Default)]
pub(crate) struct Cache {
    /// `writer_state.epoch` as this writer's last commit left it.
    pub(crate) epoch: Option<i64>,
    pub(crate) heads: HashMap<AccountId, i64>,
    pub(crate) addresses: HashMap<AccountId, Address>,
    pub(crate) accounts: HashMap<Address, Option<AccountId>>,
    pub(crate) unreachable: HashMap<Address, bool>,
    pub(crate) group_keys: HashMap<String, GroupKey>,
    pub(crate) groups: HashMap<GroupKey, GroupRow>,
    pub(crate) members: HashMap<GroupKey, Vec<Address>>,
    /// The controllable clock as this batch read it, with the identifiers drawn so far;
    /// `None`: the store has none. Re-read by every batch.
    pub(crate) sim: Option<SimClock>,
    /// Identifiers were drawn in this batch: its commit stores the count.
    pub(crate) sim_drawn: bool,
}

/// Bounds on what is cached: above them the cache starts over.
const MAX_CACHED_GROUPS: usize = 10_000;
pub(crate) const MAX_CACHED_ADDRESSES: usize = 100_000;

impl Cache {
    pub(crate) fn forget_all(&mut self) {
        *self = Cache::default();
    }

    pub(crate) fn remember_group(&mut self, row: &GroupRow) {
        if self.groups.len() >= MAX_CACHED_GROUPS {
            self.group_keys.clear();
            self.groups.clear();
            self.members.clear();
        }
        self.group_keys.insert(row.identifier.clone(), row.key);
        self.groups.insert(row.key, row.clone());
    }
}

/// An event waiting for the commit, with its sequence.
pub(crate) struct Appended {
    pub(crate) account: AccountId,
    pub(crate) seq: i64,
    pub(crate) chat_guid: String,
    pub(crate) occurred_at: i64,
    pub(crate) is_from_me: bool,
    pub(crate) actor: Option<String>,
    pub(crate) kind: i64,
    pub(crate) value: Option<String>,
}

/// The batch being applied.
pub(crate) struct Batch {
    pub(crate) pending: Vec<Pending>,
    /// Display names set in this batch, the last per group: stored by one statement when the
    /// pending writes go out (a batch of renames costs the database one statement, not one
    /// per rename).
    pub(crate) names: HashMap<GroupKey, String>,
    pub(crate) events: Vec<Appended>,
    /// Accounts whose heads this batch moved.
    pub(crate) moved: HashSet<AccountId>,
}

impl Batch {
    /// The writes to send now, the display names among them.
    pub(crate) fn outgoing(&mut self) -> &mut Vec<Pending> {
        if !self.names.is_empty() {
            let (ids, names): (Vec<i64>, Vec<String>) =
                self.names.drain().map(|(k, n)| (k.0, n)).unzip();
            self.pending.push(Pending {
                sql: "UPDATE groups g SET display_name = v.name
                      FROM unnest($1::bigint[], $2::text[]) AS v(id, name) WHERE g.id = v.id",
                params: vec![Box::new(ids), Box::new(names)],
            });
        }
        &mut self.pending
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) max_batch: usize,
    pub(crate) retain_events: Option<u64>,
    pub(crate) hints: Arc<Hints>,
    conn: Option<Conn>,
    cache: Cache,
    clock: Timestamp,
    /// How many requests the last batch carried.
    last_batch: usize,
}

impl Writer {
    pub(crate) fn new(
        config: tokio_postgres::Config,
        max_batch: usize,
        retain_events: Option<u64>,
        hints: Arc<Hints>,
    ) -> Self {
        Writer {
            config,
            max_batch,
            retain_events,
            hints,
            conn: None,
            cache: Cache::default(),
            clock: Timestamp(0),
            last_batch: 0,
        }
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut jobs = Vec::with_capacity(self.max_batch);
            match first {
                Msg::Write(job) => jobs.push(job),
                Msg::Stop => stopping = true,
            }
            // The transaction opens while the batch gathers: everything already queued, and
            // the clients the last batch answered, who are still on their way back (see
            // `GATHER`).
            let expected = self.last_batch.min(self.max_batch);
            let started = self.begin_gathering(&mut rx, &mut jobs, expected, &mut stopping);
            self.last_batch = jobs.len();
            if jobs.is_empty() {
                // Stopping with nothing to write: end the transaction just opened.
                self.rollback();
            } else {
                self.batch(jobs, started);
            }
        }
        // Answer whatever raced the stop rather than dropping it silently.
        rx.close();
        let mut rest = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Write(job) = msg {
                rest.push(job);
            }
        }
        if !rest.is_empty() {
            let started = self.begin();
            self.batch(rest, started);
        }
        tracing::debug!("postgres writer stopped");
    }

    /// A live connection: the one in use, or a new one if it was lost.
    fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(Conn::is_closed) {
            self.cache.forget_all();
            self.conn = Some(Conn::connect(&self.config)?);
        }
        self.conn.as_mut().ok_or_else(Error::internal)
    }

    /// Opens the batch transaction under the write lock (one round trip: `BEGIN`, the lock and
    /// the writer state, pipelined); returns the commit clock to start from.
    fn begin(&mut self) -> Result<Timestamp> {
        self.begin_gathering_impl(None)
    }

    /// [`Self::begin`] while gathering requests into `jobs`: until `expected` are there, for
    /// at most [`GATHER`], or at once when nothing is expected beyond what is queued. The
    /// round trip of the opening hides in the wait.
    fn begin_gathering(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        jobs: &mut Vec<Job>,
        expected: usize,
        stopping: &mut bool,
    ) -> Result<Timestamp> {
        self.begin_gathering_impl(Some((rx, jobs, expected, stopping)))
    }

    fn begin_gathering_impl(
        &mut self,
        gather: Option<(&mut mpsc::Receiver<Msg>, &mut Vec<Job>, usize, &mut bool)>,
    ) -> Result<Timestamp> {
        let max_batch = self.max_batch;
        let conn = self.conn()?;
        let begin = conn.prepare("BEGIN")?;
        let lock = conn.prepare("SELECT pg_advisory_xact_lock($1)")?;
        let state = conn.prepare(
            "SELECT epoch, clock, sim_now, sim_seed, sim_ids FROM writer_state WHERE id = 1",
        )?;
        let client = &conn.client;
        let opening = async {
            let (begun, locked, row) = futures::join!(
                client.execute(&begin, &[]),
                client.execute(&lock, &[&WRITE_LOCK]),
                client.query_opt(&state, &[]),
            );
            begun.db()?;
            locked.db()?;
            row.db()
        };
        let gathering = async move {
            let Some((rx, jobs, expected, stopping)) = gather else {
                return;
            };
            let deadline = tokio::time::Instant::now() + GATHER;
            while jobs.len() < max_batch && !*stopping {
                let next = match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(_) if jobs.len() >= expected => break,
                    Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(msg) => msg,
                        Err(_) => break,
                    },
                };
                match next {
                    Some(Msg::Write(job)) => jobs.push(job),
                    Some(Msg::Stop) | None => *stopping = true,
                }
            }
        };
        let (row, ()) = conn
            .runtime
            .block_on(async { futures::join!(opening, gathering) });
        let Some(row) = row? else {
            tracing::error!("writer_state has no row");
            return Err(Error::internal());
        };
        let (epoch, clock): (i64, i64) = (row.get(0), row.get(1));
        if self.cache.epoch != Some(epoch) {
            self.cache.forget_all();
            self.cache.epoch = Some(epoch);
            // Another node or an admin change committed: the stored clock is the newest
            // commit time of all (commits store the greatest), unless an import started a new
            // world's times (it stores 0), which this writer must follow too.
            self.clock = Timestamp(0);
        }
        let (sim_now, sim_seed, sim_ids): (Option<i64>, Option<i64>, i64) =
            (row.get(2), row.get(3), row.get(4));
        self.cache.sim = sim_now.map(|now| SimClock {
            now: Timestamp(now),
            seed: sim_seed.unwrap_or(0) as u64,
            ids: sim_ids.max(0) as u64,
        });
        self.cache.sim_drawn = false;
        Ok(Timestamp(clock))
    }

    fn tick(&mut self) -> Timestamp {
        let now = self.cache.sim.map_or_else(Timestamp::now, |c| c.now);
        self.clock = self.clock.max(now);
        self.clock
    }

    fn batch(&mut self, jobs: Vec<Job>, started: Result<Timestamp>) {
        let started = match started {
            Ok(clock) => clock,
            Err(err) => {
                self.rollback();
                for job in jobs {
                    let _ = job.reply.send(Err(retryable(err.clone())));
                }
                return;
            }
        };
        self.clock = self.clock.max(started);
        let mut batch = Batch {
            pending: Vec::new(),
            names: HashMap::new(),
            events: Vec::new(),
            moved: HashSet::new(),
        };
        let mut answers = Vec::with_capacity(jobs.len());
        let mut failed: Option<Error> = None;
        for job in jobs {
            if failed.is_some() {
                answers.push((job.reply, None));
                continue;
            }
            let now = self.tick();
            let Some(conn) = self.conn.as_mut() else {
                failed = Some(Error::internal());
                answers.push((job.reply, None));
                continue;
            };
            let mut tx = PgTx {
                conn,
                cache: &mut self.cache,
                batch: &mut batch,
                now,
                wrote: false,
                broken: false,
            };
            let result = (job.work)(&mut tx);
            match result {
                Err(err) if tx.wrote || tx.broken => {
                    if err.is_final() && !tx.broken {
                        tracing::error!(error = %err, "a request was rejected after it wrote (bug)");
                    }
                    failed = Some(err);
                    answers.push((job.reply, None));
                }
                result => answers.push((job.reply, Some(result))),
            }
        }
        let committed = match failed {
            Some(err) => Err(err),
            None => self.commit(batch, answers.len()),
        };
        match committed {
            Ok(notices) => {
                if !notices.is_empty() {
                    self.hints.appended(notices);
                }
                for (reply, answer) in answers {
                    let _ = reply.send(answer.unwrap_or_else(|| Err(Error::internal())));
                }
            }
            Err(err) => {
                self.rollback();
                tracing::warn!(error = %err, requests = answers.len(), "batch not committed");
                let err = retryable(err);
                for (reply, _) in answers {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Stores the batch's events, heads and retention, and commits, in one round trip.
    fn commit(&mut self, mut batch: Batch, requests: usize) -> Result<Vec<Notice>> {
        let appended = batch.events.len() as u64;
        batch.outgoing();
        let mut heads: Vec<(AccountId, i64)> = batch
            .moved
            .iter()
            .filter_map(|a| self.cache.heads.get(a).map(|h| (*a, *h)))
            .collect();
        heads.sort();
        if !batch.events.is_empty() {
            let mut columns = EventColumns::default();
            for e in batch.events.drain(..) {
                columns.account.push(e.account.0);
                columns.seq.push(e.seq);
                columns.chat_guid.push(e.chat_guid);
                columns.occurred_at.push(e.occurred_at);
                columns.is_from_me.push(e.is_from_me);
                columns.actor.push(e.actor);
                columns.kind.push(e.kind);
                columns.value.push(e.value);
            }
            batch.pending.push(Pending {
                sql: "INSERT INTO events
                          (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
                      SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[],
                                           $5::boolean[], $6::text[], $7::bigint[], $8::text[])",
                params: vec![
                    Box::new(columns.account),
                    Box::new(columns.seq),
                    Box::new(columns.chat_guid),
                    Box::new(columns.occurred_at),
                    Box::new(columns.is_from_me),
                    Box::new(columns.actor),
                    Box::new(columns.kind),
                    Box::new(columns.value),
                ],
            });
        }
        if !heads.is_empty() {
            let keep = self.retain_events.map(|k| k as i64);
            let ids: Vec<i64> = heads.iter().map(|(a, _)| a.0).collect();
            let seqs: Vec<i64> = heads.iter().map(|(_, h)| *h).collect();
            let pruned: Vec<i64> = seqs
                .iter()
                .map(|h| keep.map_or(0, |k| (h - k).max(0)))
                .collect();
            if keep.is_some() {
                batch.pending.push(Pending {
                    sql: "DELETE FROM events e USING unnest($1::bigint[], $2::bigint[]) AS v(id, through)
                          WHERE e.account_id = v.id AND e.seq <= v.through",
                    params: vec![Box::new(ids.clone()), Box::new(pruned.clone())],
                });
            }
            batch.pending.push(Pending {
                sql: "UPDATE accounts a SET head_seq = v.head,
                          pruned_through = greatest(a.pruned_through, v.pruned)
                      FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, head, pruned)
                      WHERE a.id = v.id",
                params: vec![Box::new(ids), Box::new(seqs), Box::new(pruned)],
            });
        }
        if let (true, Some(sim)) = (std::mem::take(&mut self.cache.sim_drawn), self.cache.sim) {
            batch.pending.push(Pending {
                sql: "UPDATE writer_state SET sim_ids = $1 WHERE id = 1",
                params: vec![Box::new(sim.ids as i64)],
            });
        }
        let clock = self.clock.0;
        batch.pending.push(Pending {
            sql: "UPDATE writer_state SET epoch = epoch + 1, clock = greatest(clock, $1) WHERE id = 1",
            params: vec![Box::new(clock)],
        });
        batch.pending.push(Pending {
            sql: "COMMIT",
            params: Vec::new(),
        });
        let conn = self.conn.as_mut().ok_or_else(Error::internal)?;
        let started = std::time::Instant::now();
        conn.run(&mut batch.pending, None)?;
        let metrics = &*WRITE_METRICS;
        metrics
            .commit_seconds
            .record(started.elapsed().as_secs_f64());
        metrics.batch_size.record(requests as f64);
        metrics.appended.increment(appended);
        // Our own commit moved the epoch by one: what is cached stays true.
        self.cache.epoch = self.cache.epoch.map(|e| e + 1);
        Ok(heads
            .into_iter()
            .map(|(account, head)| Notice {
                account,
                head: head as u64,
            })
            .collect())
    }

    /// Ends whatever is left of a failed batch; forgets the cache (it may hold rows the
    /// database discarded).
    fn rollback(&mut self) {
        self.cache.forget_all();
        if let Some(conn) = self.conn.as_ref().filter(|c| !c.is_closed()) {
            if let Err(err) = conn.simple("ROLLBACK") {
                tracing::warn!(error = %err, "rollback failed");
            }
        }
    }
}

#[derive(Default)]
struct EventColumns {
    account: Vec<i64>,
    seq: Vec<i64>,
    chat_guid: Vec<String>,
    occurred_at: Vec<i64>,
    is_from_me: Vec<bool>,
    actor: Vec<Option<String>>,
    kind: Vec<i64>,
    value: Vec<Option<String>>,
}

fn retryable(err: Error) -> Error {
    if err.kind == ErrorKind::Internal {
        Error::unavailable("the write could not be stored; retry")
    } else {
        err
    }
}

//! The single writer thread and its group commit.
//!
//! Every write goes through here, so there is exactly one commit order and sequences are
//! handed out in it. Requests queued while a commit is in flight are applied together: each in
//! its own savepoint (a rejected request rolls back alone and leaves no trace), all committed
//! with one fsync, then all answered. An answer is sent only after the commit returned, so an
//! acknowledged write is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imgroups_core::{
    engine, AccountId, Command, Error, ErrorKind, Event, Outcome, Result, Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::db::{Db, SqlResult, WriterCache};
use crate::Config;

pub(crate) enum Msg {
    Write(Job),
    Stop,
}

pub(crate) struct Job {
    pub(crate) account: AccountId,
    pub(crate) key: Option<String>,
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<Outcome>>,
}

/// The events one commit appended, in commit order (per account, by sequence).
#[derive(Debug)]
pub struct Committed {
    pub events: Vec<(AccountId, Event)>,
}

/// How often expired idempotency records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub(crate) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    config: Config,
    committed: broadcast::Sender<Arc<Committed>>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("imgroups-writer".into())
        .spawn(move || Writer::new(conn, config, committed).run(rx))
        .map_err(|err| {
            tracing::error!(error = %err, "cannot start the writer thread");
            Error::internal()
        })
}

struct Writer {
    conn: Connection,
    config: Config,
    committed: broadcast::Sender<Arc<Committed>>,
    /// Last commit time handed out; commit times never go backwards.
    clock: Timestamp,
    last_prune: Instant,
    cache: WriterCache,
}

impl Writer {
    fn new(conn: Connection, config: Config, committed: broadcast::Sender<Arc<Committed>>) -> Self {
        Writer {
            conn,
            config,
            committed,
            clock: Timestamp(0),
            cache: WriterCache::default(),
            last_prune: Instant::now() - PRUNE_EVERY,
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch = Vec::with_capacity(self.config.max_batch);
        loop {
            let mut stop = false;
            match rx.blocking_recv() {
                Some(Msg::Write(job)) => batch.push(job),
                Some(Msg::Stop) | None => stop = true,
            }
            // Everything queued now rides on this commit.
            while !stop && batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(Msg::Write(job)) => batch.push(job),
                    Ok(Msg::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            if stop {
                // Answer whatever raced the stop rather than dropping it silently.
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    if let Msg::Write(job) = msg {
                        batch.push(job);
                    }
                }
                if !batch.is_empty() {
                    self.commit(&mut batch);
                }
                tracing::debug!("writer stopped");
                return;
            }
            self.maybe_prune();
        }
    }

    fn tick(&mut self) -> Timestamp {
        self.clock = self.clock.max(Timestamp::now());
        self.clock
    }

    fn commit(&mut self, batch: &mut Vec<Job>) {
        let now = self.tick();
        let ttl_start = Timestamp(now.0 - self.config.idempotency_ttl.as_nanos() as i64);
        let mut results = Vec::with_capacity(batch.len());
        let mut appended = Vec::new();
        let outcome = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db()?;
            for job in batch.iter() {
                let (result, events) = apply(&tx, job, now, ttl_start, &mut self.cache)?;
                results.push(result);
                appended.extend(events);
            }
            self.cache.flush_heads(&tx)?;
            if let Some(keep) = self.config.retain_events {
                retain(&tx, &appended, keep)?;
            }
            tx.commit().db()
        })();
        if let Err(err) = outcome {
            // Nothing of this batch was committed: every request fails, none is half-applied.
            self.cache.forget_all();
            tracing::warn!(error = %err, requests = batch.len(), "batch not committed");
            let err = if err.kind == ErrorKind::Internal {
                Error::unavailable("the write could not be stored; retry")
            } else {
                err
            };
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(err.clone()));
            }
            return;
        }
        tracing::trace!(requests = batch.len(), events = appended.len(), "committed");
        if !appended.is_empty() {
            // No receivers is fine: nobody is listening.
            let _ = self
                .committed
                .send(Arc::new(Committed { events: appended }));
        }
        for (job, result) in batch.drain(..).zip(results) {
            // The client may have gone away; the write stands regardless.
            let _ = job.reply.send(result);
        }
    }

    fn maybe_prune(&mut self) {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        let cutoff = Timestamp::now().0 - self.config.idempotency_ttl.as_nanos() as i64;
        if let Err(err) = self
            .conn
            .execute("DELETE FROM idempotency WHERE created_at < ?1", [cutoff])
        {
            tracing::warn!(error = %err, "pruning idempotency records failed");
        }
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

    sql(tx, "SAVEPOINT request")?;
    cache.begin_request();
    let mut db = Db::with_cache(tx, cache);
    let result = engine::execute(&mut db, job.account, now, &job.command);
    let events = match &result {
        Ok(_) => {
            sql(tx, "RELEASE request")?;
            std::mem::take(&mut db.appended)
        }
        Err(_) => {
            sql(tx, "ROLLBACK TO request")?;
            sql(tx, "RELEASE request")?;
            Vec::new()
        }
    };
    if result.is_err() {
        // The rollback undid what this request wrote; the cache must forget it too.
        cache.undo_request();
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

//! WAL checkpoints, kept off the write path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that crosses its threshold (1,000
//! frames): that commit copies every page the WAL holds back into the database file and fsyncs
//! the WAL and the database file, while every request queued behind the writer waits. Under
//! sustained writes that happened dozens of times a second and set the tail latency (see
//! BENCHMARKS.md, session 4). Here the writer only notes how long the WAL is after each commit
//! (a WAL hook, which also turns SQLite's own automatic checkpoint off), and:
//!
//! 1. once the WAL holds [`Config::checkpoint_frames`] frames, it asks the checkpointer thread,
//!    which has a connection of its own, to copy what the WAL holds into the database file.
//!    That is a `PASSIVE` checkpoint: it waits for no reader or writer, so the writer keeps
//!    committing meanwhile.
//! 2. When that pass is done, the writer copies the few frames committed since, itself,
//!    between two transactions. Now the whole WAL is in the database file, and SQLite starts
//!    a wholly copied WAL over from its beginning at the next write transaction, so the WAL
//!    stays about `checkpoint_frames` long instead of growing while writes never stop.
//!
//! If a reader still holds an older snapshot, the copy stops short of the end and the WAL is
//! not started over; it grows on, and the next pass tries again.
//!
//! Durability is SQLite's own: a checkpoint fsyncs the WAL before it copies anything and the
//! database file before the WAL may be started over.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use imgroups_core::{Error, Result};
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

use crate::tx::SqlResult;
use crate::Config;

/// No pass asked for.
const IDLE: u8 = 0;
/// The checkpointer was asked for a pass and has not finished it.
const RUNNING: u8 = 1;
/// The checkpointer finished a pass; the writer copies the rest.
const DONE: u8 = 2;

/// The writer's side of checkpointing.
pub(crate) struct Checkpoints {
    /// Frames in the WAL after the writer's last commit, set by the WAL hook.
    frames: Arc<AtomicU32>,
    state: Arc<AtomicU8>,
    threshold: u32,
    /// Asks the checkpointer for a pass; dropping it stops the thread.
    ask: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    /// Installs the WAL hook on the writer's connection (which turns SQLite's automatic
    /// checkpoint off for it) and starts the checkpointer thread on a connection of its own.
    pub(crate) fn start(writer: &mut Connection, config: &Config) -> Result<Self> {
        let frames = Arc::new(AtomicU32::new(0));
        let seen = frames.clone();
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: c_int| {
                seen.store(u32::try_from(pages).unwrap_or(0), Ordering::Relaxed);
                Ok(())
            }))
            .db()?;
        let conn = crate::open_connection(&config.path, config.durability)?;
        let state = Arc::new(AtomicU8::new(IDLE));
        let (ask, asks) = mpsc::channel();
        let thread = {
            let state = state.clone();
            std::thread::Builder::new()
                .name("imgroups-ckpt".into())
                .spawn(move || run(&conn, &asks, &state))
                .map_err(|err| {
                    tracing::error!(error = %err, "cannot start the checkpointer thread");
                    Error::internal()
                })?
        };
        Ok(Checkpoints {
            frames,
            state,
            threshold: config.checkpoint_frames.max(1),
            ask: Some(ask),
            thread: Some(thread),
        })
    }

    /// Call after each commit, outside any transaction, on the writer's connection.
    pub(crate) fn after_commit(&mut self, writer: &Connection) {
        match self.state.load(Ordering::Acquire) {
            IDLE if self.frames.load(Ordering::Relaxed) >= self.threshold => {
                self.state.store(RUNNING, Ordering::Release);
                let asked = self.ask.as_ref().is_some_and(|ask| ask.send(()).is_ok());
                if !asked {
                    // No checkpointer (it died): copy here, as SQLite itself would.
                    self.state.store(IDLE, Ordering::Release);
                    passive(writer, "writer");
                }
            }
            DONE => {
                self.state.store(IDLE, Ordering::Release);
                passive(writer, "writer");
            }
            _ => {}
        }
    }

    /// Stops the checkpointer thread (after its pass in progress, if any).
    pub(crate) fn stop(&mut self) {
        self.ask = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: &Connection, asks: &mpsc::Receiver<()>, state: &AtomicU8) {
    while asks.recv().is_ok() {
        passive(conn, "checkpointer");
        state.store(DONE, Ordering::Release);
    }
}

/// Copies as much of the WAL into the database file as no reader still needs.
fn passive(conn: &Connection, who: &str) {
    match conn.wal_checkpoint_v2(rusqlite::DEFAULT_NAME, CheckpointMode::PASSIVE) {
        Ok((frames, copied)) => tracing::trace!(who, frames, copied, "checkpoint"),
        // Busy: another checkpoint is running; the next pass copies what this one did not.
        Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            tracing::debug!(who, "checkpoint busy")
        }
        Err(err) => {
            tracing::warn!(who, error = %err, "checkpoint failed; the WAL grows until one succeeds")
        }
    }
}

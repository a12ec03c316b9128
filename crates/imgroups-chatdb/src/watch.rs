//! A doorbell for chat.db: wakes the caller when Messages may have written, and on a timer.
//!
//! What rings it: file notifications on the `Messages` directory (entries created, removed,
//! renamed) and on `chat.db` and `chat.db-wal` themselves. Messages replaces the WAL with a new
//! inode at times (checkpoint with truncate, or delete and recreate), and a watch on the old
//! inode then hears nothing more; so when an event on one of the two files finds it with
//! another inode than the one watched, its watch is added again (re-armed). Only then: with
//! kqueue (macOS) every watch is an open descriptor, and older `kqueue` crates opened a new one
//! for each `watch` call even on a watched path, so re-arming on every write leaked one
//! descriptor per write. Events on `chat.db-shm` are ignored: readers, this crate included,
//! write there too.
//!
//! A notification can arrive a moment before the commit it belongs to is visible (the last WAL
//! write is reported before the fsync and the WAL index update that make the commit visible),
//! and then nothing more rings: so every ring is followed by a few more wakes, [`SETTLE`] after
//! it. The first comes soon (most commits are visible a moment after their last write; one
//! late wake of 25 ms made that the typical latency), the later ones cover a slow fsync; each
//! costs one cheap query when there is nothing new.
//!
//! What the timer is for: notifications can be lost (FSEvents coalescing, an overflowing
//! inotify queue, a watch re-armed a moment late), so [`Watcher::wait`] also returns every
//! `rescan_every` even when nothing rang. A wake is only a hint: the caller scans from its
//! cursor ([`crate::ChatDb::scan`]) on every wake, and the scan is what finds rows; a wake with
//! nothing new costs one cheap query.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

/// When, after a ring, more wakes come (see the module doc).
pub const SETTLE: [Duration; 4] = [
    Duration::from_millis(2),
    Duration::from_millis(10),
    Duration::from_millis(30),
    Duration::from_millis(80),
];

/// Why [`Watcher::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A file notification: Messages probably wrote.
    Changed,
    /// The periodic re-scan is due.
    Rescan,
}

/// Watches one chat.db; see the module doc.
pub struct Watcher {
    watcher: RecommendedWatcher,
    events: Receiver<notify::Result<Event>>,
    db: PathBuf,
    wal: PathBuf,
    rescan_every: Duration,
    next_rescan: Instant,
    /// The last ring and the next of its [`SETTLE`] wakes.
    follow_up: Option<(Instant, usize)>,
    /// The file each watch was added on (device, inode), by path.
    armed: Vec<(PathBuf, (u64, u64))>,
    /// Watches added so far.
    watches_added: usize,
}

/// Why a watch could not be set up (the directory is missing or unreadable, or the platform's
/// watch limit is reached).
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {reason}")]
pub struct WatchError {
    pub path: PathBuf,
    pub reason: String,
}

impl Watcher {
    /// Watches the database at `db` (e.g. [`crate::ChatDb::default_path`]) and its directory.
    pub fn new(db: &Path, rescan_every: Duration) -> Result<Watcher, WatchError> {
        let dir = db.parent().unwrap_or(Path::new(".")).to_owned();
        let (tx, events) = channel();
        let mut watcher = notify::recommended_watcher(tx).map_err(|e| WatchError {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| WatchError {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        let mut this = Watcher {
            watcher,
            events,
            db: db.to_owned(),
            wal: wal_path(db),
            rescan_every,
            next_rescan: Instant::now() + rescan_every,
            follow_up: None,
            armed: Vec::new(),
            watches_added: 0,
        };
        this.arm(&this.db.clone(), false);
        this.arm(&this.wal.clone(), false);
        Ok(this)
    }

    /// Blocks until a notification or the periodic re-scan. Notifications already queued are
    /// drained, so a burst of writes is one wake.
    pub fn wait(&mut self) -> Wake {
        loop {
            if let Some(wake) = self.wait_timeout(self.rescan_every) {
                return wake;
            }
        }
    }

    /// Like [`Watcher::wait`], giving up after `max` (`None`).
    pub fn wait_timeout(&mut self, max: Duration) -> Option<Wake> {
        let give_up = Instant::now() + max;
        loop {
            let now = Instant::now();
            if now >= self.next_rescan {
                self.next_rescan = now + self.rescan_every;
                return Some(Wake::Rescan);
            }
            if let Some((rang, i)) = self.follow_up {
                if now >= rang + SETTLE[i] {
                    self.follow_up = (i + 1 < SETTLE.len()).then_some((rang, i + 1));
                    return Some(Wake::Changed);
                }
            }
            if now >= give_up {
                return None;
            }
            let until = self
                .follow_up
                .map(|(rang, i)| rang + SETTLE[i])
                .unwrap_or(self.next_rescan)
                .min(self.next_rescan)
                .min(give_up);
            match self.events.recv_timeout(until - now) {
                Ok(event) => {
                    if self.relevant(event) {
                        while let Ok(more) = self.events.try_recv() {
                            self.relevant(more);
                        }
                        self.follow_up = Some((Instant::now(), 0));
                        return Some(Wake::Changed);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The sender lives in `self.watcher`, so this cannot happen; rescan if it does.
                Err(RecvTimeoutError::Disconnected) => {
                    self.next_rescan = Instant::now();
                }
            }
        }
    }

    /// Whether an event may mean new rows; re-arms the file watches it calls for.
    fn relevant(&mut self, event: notify::Result<Event>) -> bool {
        let Ok(event) = event else {
            // An error from the backend (e.g. queue overflow): events may be lost, look.
            return true;
        };
        if let EventKind::Access(access) = event.kind {
            if !matches!(access, AccessKind::Close(AccessMode::Write)) {
                return false;
            }
        }
        let mut relevant = event.paths.is_empty();
        for path in &event.paths {
            let ours = *path == self.db || *path == self.wal;
            if ours {
                match event.kind {
                    // A file created under the name is a new file, whatever its inode number
                    // (a freed one may be handed out again at once).
                    EventKind::Create(_) => self.arm(&path.clone(), true),
                    // Maybe a rename onto the name: a new inode says so.
                    EventKind::Modify(_) => self.arm(&path.clone(), false),
                    _ => {}
                }
            }
            relevant |= ours;
        }
        relevant
    }

    /// Watches one file if it exists and is not the file watched already (`fresh`: it is a new
    /// file whatever its inode); a missing file is watched once the directory reports it.
    fn arm(&mut self, path: &Path, fresh: bool) {
        let Some(id) = file_id(path) else {
            return;
        };
        if let Some(i) = self.armed.iter().position(|(p, _)| p == path) {
            if self.armed[i].1 == id && !fresh {
                return;
            }
            // The old inode is gone from under the name; its watch hears nothing any more.
            let _ = self.watcher.unwatch(path);
            self.armed.swap_remove(i);
        }
        // Failure leaves the directory watch and the timer, which is enough to be correct.
        if self
            .watcher
            .watch(path, RecursiveMode::NonRecursive)
            .is_ok()
        {
            self.armed.push((path.to_owned(), id));
            self.watches_added += 1;
        }
    }

    /// How many file watches were added so far: two at start (chat.db and its WAL, when they
    /// exist), then one per file replaced — not one per write.
    pub fn watches_added(&self) -> usize {
        self.watches_added
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Without inode numbers every existing file counts as the same one.
#[cfg(not(unix))]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    path.exists().then_some((0, 0))
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push("-wal");
    db.with_file_name(name)
}

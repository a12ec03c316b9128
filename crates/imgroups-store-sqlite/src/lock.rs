//! One server per database file.
//!
//! Two servers on one SQLite file would each run a writer that believes it alone assigns
//! sequences: their commits interleave, and one in three writes then fails on the events
//! table's unique key (hidden from users only by client retries). So a serving store holds an
//! exclusive lock on a file beside the database for as long as it is open, and a second
//! server is refused with the holder's pid. Tools (the CLI beside a server) take no lock: their
//! writes go through SQLite's own locking and reach the server as notices.
//!
//! The lock is `flock`-style (std's `File::try_lock`): the kernel drops it when the holder's
//! process dies, even by `kill -9`, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use imgroups_core::{Error, ErrorKind};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct ServeLock {
    _file: File,
}

/// Takes the serve lock of the database at `db`, or says who holds it.
pub(crate) fn acquire(db: &Path) -> Result<ServeLock, Error> {
    let path = crate::beside(db, "-serve.lock");
    let cannot =
        |err: std::io::Error| Error::unavailable(format!("cannot lock {}: {err}", path.display()));
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {
            // The pid is only for the message a second server prints; the lock is the truth.
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(pid.as_bytes()))
                .map_err(cannot)?;
            Ok(ServeLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Read errors only make the message vaguer.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "another process".to_owned(),
            };
            Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!(
                "another imgroups server ({holder}) is already serving {}; stop it, or give this \
                 one another --data directory (CLI commands work beside a running server)",
                    dir_of(db).display()
                ),
            ))
        }
        Err(TryLockError::Error(err)) => Err(cannot(err)),
    }
}

fn dir_of(db: &Path) -> PathBuf {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("imgroups.db");
        let held = acquire(&db).unwrap();
        let err = acquire(&db).unwrap_err();
        assert!(
            err.message.contains(&format!("pid {}", std::process::id())),
            "{}",
            err.message
        );
        assert!(err.message.contains(&dir.path().display().to_string()));
        drop(held);
        acquire(&db).unwrap();
    }
}

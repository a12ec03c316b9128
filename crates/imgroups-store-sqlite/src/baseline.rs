//! The benchmark's yardstick for the write path: raw SQLite commits, one small row per
//! transaction, in a WAL database like ours. Here because this crate is where SQLite lives.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

/// Commits one row per transaction into `dir/raw.db` for `secs` seconds, with
/// `synchronous=FULL` if `full` (else `NORMAL`); returns commits per second.
pub fn raw_commits(dir: &Path, full: bool, secs: f64) -> rusqlite::Result<f64> {
    let conn = Connection::open(dir.join("raw.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (account_id INTEGER NOT NULL, seq INTEGER NOT NULL,
            chat_guid TEXT NOT NULL, occurred_at INTEGER NOT NULL, value TEXT,
            PRIMARY KEY (account_id, seq)) WITHOUT ROWID;",
    )?;
    let start_seq: i64 =
        conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let mut n: i64 = 0;
    let mut stmt = conn.prepare(
        "INSERT INTO events (account_id, seq, chat_guid, occurred_at, value) VALUES (1, ?1, ?2, ?3, ?4)",
    )?;
    while start.elapsed() < limit && n < 10_000_000 {
        n += 1;
        // Autocommit: one transaction, one commit per row.
        stmt.execute(params![
            start_seq + n,
            "any;+;chat000000000000000001",
            n,
            format!("name {n}")
        ])?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

//! The controllable clock of deterministic runs (`imgroups_core::clock`), in SQL: a few
//! columns of `sim_state`. The writer reads it when a batch begins, draws identifiers from it
//! in memory and stores the count before the batch commits ([`crate::tx::WriterCache`]);
//! changes to the clock itself are admin jobs on the writer's connection, ordered with every
//! other write, and another process's change is seen by the next batch (it re-reads).

use imgroups_core::clock::{no_controllable_clock, SimClock};
use imgroups_core::{Error, Result, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::tx::SqlResult;

/// The controllable clock, if the store has one.
pub(crate) fn get(conn: &Connection) -> Result<Option<SimClock>> {
    conn.prepare_cached("SELECT clock_now, clock_seed, clock_ids FROM sim_state WHERE id = 1")
        .and_then(|mut s| {
            s.query_row([], |r| {
                let now: Option<i64> = r.get(0)?;
                let seed: Option<i64> = r.get(1)?;
                let ids: i64 = r.get(2)?;
                Ok(now.map(|now| SimClock {
                    now: Timestamp(now),
                    seed: seed.unwrap_or(0) as u64,
                    ids: ids.max(0) as u64,
                }))
            })
            .optional()
        })
        .db()
        .map(Option::flatten)
}

/// The store's time: the controllable clock's, or else the system's.
pub(crate) fn now(conn: &Connection) -> Result<Timestamp> {
    Ok(get(conn)?.map_or_else(Timestamp::now, |c| c.now))
}

/// Sets the clock as it is given (an imported snapshot's), or takes it away.
pub(crate) fn put(conn: &Connection, clock: Option<SimClock>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE sim_state SET clock_now = ?1, clock_seed = ?2, clock_ids = ?3 WHERE id = 1",
    )
    .and_then(|mut s| {
        s.execute(params![
            clock.map(|c| c.now.0),
            clock.map(|c| c.seed as i64),
            clock.map_or(0, |c| c.ids as i64)
        ])
    })
    .db()
    .map(drop)
}

/// Stores how many identifiers the clock has drawn (the writer, before a commit).
pub(crate) fn save_ids(conn: &Connection, ids: u64) -> Result<()> {
    conn.prepare_cached("UPDATE sim_state SET clock_ids = ?1 WHERE id = 1")
        .and_then(|mut s| s.execute([ids as i64]))
        .db()
        .map(drop)
}

/// Gives the store a controllable clock seeded with `seed`, or takes it away (`None`). A
/// clock with the same seed is kept as it is, so a restart continues the run.
pub(crate) fn set(conn: &Connection, seed: Option<u64>) -> Result<Option<SimClock>> {
    let current = get(conn)?;
    let next = match (current, seed) {
        (Some(clock), Some(seed)) if clock.seed == seed => return Ok(Some(clock)),
        (Some(clock), Some(seed)) => {
            return Err(Error::precondition(
                imgroups_core::Reason::ClockNotControllable,
                format!(
                    "this store's controllable clock was started with seed {}, not {seed}: use \
                     the same seed, or a new store",
                    clock.seed
                ),
            )
            .with("field", "seed"))
        }
        (None, Some(seed)) => Some(SimClock::start(seed)),
        (_, None) => None,
    };
    if next != current {
        put(conn, next)?;
    }
    Ok(next)
}

/// Moves the controllable clock forward by `nanos`.
pub(crate) fn advance(conn: &Connection, nanos: i64) -> Result<SimClock> {
    let clock = get(conn)?
        .ok_or_else(no_controllable_clock)?
        .advanced(nanos)?;
    put(conn, Some(clock))?;
    Ok(clock)
}

//! Time and fresh identifiers for deterministic runs.
//!
//! By default a store's time is the system's and new identifiers (message GUIDs, group names)
//! are random. `serve --seed N` gives the store a **controllable clock** ([`SimClock`]): time
//! starts at [`SIM_EPOCH`] and stands still until someone advances it, and identifiers are
//! derived from the seed and a counter ([`seeded_id`]). The store keeps the clock, in the same
//! transactions as everything else, so every process on it (the servers, the CLI acting as a
//! puppet) reads the same time and draws from the same counter: the same operations in the
//! same order produce the same GUIDs and timestamps, byte for byte.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Hint, Reason, Result};
use crate::model::Timestamp;

/// Where a controllable clock starts: 2026-01-01T00:00:00Z.
pub const SIM_EPOCH: Timestamp = Timestamp(1_767_225_600 * 1_000_000_000);

/// A store's controllable clock, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SimClock {
    /// The store's time: moves only when advanced ([`SimClock::advanced`]).
    pub now: Timestamp,
    /// The seed new identifiers are derived from.
    pub seed: u64,
    /// How many identifiers were drawn so far.
    pub ids: u64,
}

impl SimClock {
    /// A clock at [`SIM_EPOCH`] that has drawn no identifier.
    pub fn start(seed: u64) -> Self {
        SimClock {
            now: SIM_EPOCH,
            seed,
            ids: 0,
        }
    }

    /// The clock moved forward by `nanos` (never back: time in the store only grows).
    pub fn advanced(self, nanos: i64) -> Result<Self> {
        if nanos < 0 {
            return Err(Error::invalid(format!(
                "the clock cannot go back (asked to move it by {} s): advance it by a \
                 positive duration",
                nanos as f64 / 1e9
            ))
            .with("field", "by"));
        }
        let now = self.now.0.checked_add(nanos).ok_or_else(|| {
            Error::invalid("advancing the clock that far passes the year 2262").with("field", "by")
        })?;
        Ok(SimClock {
            now: Timestamp(now),
            ..self
        })
    }

    /// The next identifier's bytes, counting it.
    pub fn draw(&mut self) -> [u8; 16] {
        self.ids += 1;
        seeded_id(self.seed, self.ids)
    }
}

/// The answer of a store without a controllable clock to a request to move it. How to get
/// one is the server's to say ([`Hint::SeedTheClock`]): it is a flag of its own.
pub fn no_controllable_clock() -> Error {
    Error::precondition(
        Reason::ClockNotControllable,
        "the store has no controllable clock",
    )
    .hint(Hint::SeedTheClock)
}

/// The `n`th identifier of a seeded run: the first 16 bytes of SHA-256 over the seed and `n`.
pub fn seeded_id(seed: u64, n: u64) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update(b"imgroups id\0");
    hash.update(seed.to_le_bytes());
    hash.update(n.to_le_bytes());
    let digest = hash.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Sixteen random bytes, for an identifier outside a seeded run.
pub fn random_id() -> [u8; 16] {
    rand::random()
}

/// A GUID as Messages writes one: an upper-case version-4 UUID made of `bytes`.
pub fn guid(bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
        .to_uppercase()
}

/// A group's chat identifier as Messages names one: `chat` and 18 digits made of `bytes`.
pub fn group_identifier(bytes: [u8; 16]) -> String {
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    format!(
        "chat{:018}",
        u64::from_le_bytes(low) % 1_000_000_000_000_000_000
    )
}

/// A duration as people write one — `10m`, `90s`, `1h30m`, `1.5s`, `250ms`, `2d` — in
/// nanoseconds; a leading `-` makes it negative (which [`SimClock::advanced`] then refuses
/// with its own error, rather than this parser with a vaguer one).
pub fn parse_duration(text: &str) -> Result<i64> {
    let bad = || {
        Error::invalid(format!(
            "{text:?} is not a duration: write a number and a unit (d, h, m, s, ms), e.g. 10m, \
             90s, 1h30m or 1.5s"
        ))
        .with("field", "by")
    };
    let trimmed = text.trim();
    let (sign, mut rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1i128, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per: i128 = match unit.trim() {
            "d" => 86_400_000_000_000,
            "h" => 3_600_000_000_000,
            "m" | "min" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            _ => return Err(bad()),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 9 {
            return Err(bad());
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_value: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>().map_err(|_| bad())? * per / 10i128.pow(frac.len() as u32)
        };
        total = whole
            .checked_mul(per)
            .and_then(|n| n.checked_add(frac_value))
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= i128::from(i64::MAX))
            .ok_or_else(bad)?;
        rest = after;
    }
    Ok((sign * total) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_for_a_seed_and_differ_between_seeds() {
        assert_eq!(seeded_id(7, 1), seeded_id(7, 1));
        assert_ne!(seeded_id(7, 1), seeded_id(7, 2));
        assert_ne!(seeded_id(7, 1), seeded_id(8, 1));
        let g = guid(seeded_id(7, 1));
        assert_eq!(g.len(), 36);
        assert_eq!(g, g.to_uppercase());
        assert_eq!(&g[14..15], "4");
        let chat = group_identifier(seeded_id(7, 1));
        assert_eq!(chat.len(), 22);
        assert!(chat[4..].bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = SimClock::start(1);
        assert_eq!(clock.now, SIM_EPOCH);
        let later = clock.advanced(60_000_000_000).unwrap();
        assert_eq!(later.now.0 - SIM_EPOCH.0, 60_000_000_000);
        let err = later.advanced(-1).unwrap_err();
        assert!(err.message.contains("cannot go back"), "{err}");
        assert!(clock.advanced(i64::MAX).is_err());
    }

    #[test]
    fn durations_as_people_write_them() {
        let s = 1_000_000_000i64;
        assert_eq!(parse_duration("10m").unwrap(), 600 * s);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400 * s);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration("2d").unwrap(), 172_800 * s);
        assert_eq!(parse_duration("-5m").unwrap(), -300 * s);
        for bad in ["", "10", "m", "10x", "1..5s", "-", "99999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

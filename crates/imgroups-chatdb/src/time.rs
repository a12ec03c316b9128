//! `message.date`: an offset from 2001-01-01 00:00 UTC, in nanoseconds since macOS 10.13 and in
//! seconds before. One database uses one unit, but a restored or migrated database can hold
//! both, so the unit is decided per value by its magnitude: no date after 2001-01-01 00:01:40
//! is below 10^11 in nanoseconds, and no date before the year 5000 reaches 10^11 in seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the Unix epoch to Apple's (2001-01-01 00:00:00 UTC).
pub const APPLE_EPOCH_UNIX_SECS: i64 = 978_307_200;

/// Raw values at or above this count nanoseconds; below, seconds.
pub const NANOS_THRESHOLD: i64 = 100_000_000_000;

/// A point in time, nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Decodes a raw `date` value, whichever unit it is in.
    pub fn from_apple(raw: i64) -> Timestamp {
        let since_2001 = if raw.unsigned_abs() >= NANOS_THRESHOLD as u64 {
            raw
        } else {
            raw.saturating_mul(1_000_000_000)
        };
        Timestamp(since_2001.saturating_add(APPLE_EPOCH_UNIX_SECS * 1_000_000_000))
    }

    pub fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    pub fn unix_nanos(self) -> i64 {
        self.0
    }

    pub fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_nanos(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_nanos(self.0.unsigned_abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_units_decode_to_the_same_instant() {
        // 2024-01-01 00:00:00 UTC is 725_760_000 s after 2001-01-01.
        let secs = Timestamp::from_apple(725_760_000);
        let nanos = Timestamp::from_apple(725_760_000_000_000_000);
        assert_eq!(secs, nanos);
        assert_eq!(secs.unix_millis(), 1_704_067_200_000);
    }

    #[test]
    fn zero_is_the_apple_epoch() {
        assert_eq!(Timestamp::from_apple(0).unix_millis(), 978_307_200_000);
    }
}

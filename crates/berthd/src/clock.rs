//! Wall-clock time as the CRI carries it: nanoseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_nanos() -> i64 {
    nanos(SystemTime::now())
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

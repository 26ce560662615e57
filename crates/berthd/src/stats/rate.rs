//! CPU use as a rate (nanocores: billionths of a core) between two samples of the cumulative
//! counter, per container or pod.

use crate::sync::LockRecovered;
use std::collections::HashMap;
use std::sync::Mutex;

/// Samples closer than this keep the previous rate: the kernel adds a running task's time at
/// scheduler ticks, so over a few milliseconds a busy task can look idle.
const MIN_INTERVAL_NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Nanoseconds since the epoch.
    at: i64,
    usage_ns: u64,
    rate: Option<u64>,
}

#[derive(Debug, Default)]
pub struct CpuRates {
    last: Mutex<HashMap<String, Sample>>,
}

impl CpuRates {
    /// The rate since the previous sample of `id` at least a second older; the first sample's is
    /// the average since `started_at` (when the container or pod began).
    pub fn rate(&self, id: &str, at: i64, usage_ns: u64, started_at: i64) -> Option<u64> {
        let mut last = self.last.lock_recovered();
        let base = last.get(id).copied().unwrap_or(Sample {
            at: started_at,
            usage_ns: 0,
            rate: None,
        });
        let elapsed = at.saturating_sub(base.at);
        if elapsed < MIN_INTERVAL_NS && base.rate.is_some() {
            return base.rate;
        }
        // A counter that went backwards (a new cgroup under the same ID) has no rate.
        let rate = u64::try_from(elapsed)
            .ok()
            .filter(|e| *e > 0)
            .zip(usage_ns.checked_sub(base.usage_ns))
            .map(|(elapsed, used)| (u128::from(used) * 1_000_000_000 / u128::from(elapsed)) as u64);
        last.insert(id.to_owned(), Sample { at, usage_ns, rate });
        rate
    }

    pub fn forget(&self, id: &str) {
        self.last.lock_recovered().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples_a_second_apart() {
        let rates = CpuRates::default();
        let (s, cpu_s) = (1_000_000_000i64, 1_000_000_000u64);
        let half = Some(500_000_000);
        assert_eq!(
            rates.rate("c", 10 * s, 5 * cpu_s, 0),
            half,
            "half a core since start"
        );
        assert_eq!(
            rates.rate("c", 12 * s, 9 * cpu_s, 0),
            Some(2_000_000_000),
            "two cores"
        );
        assert_eq!(
            rates.rate("c", 12 * s + 1000, 9 * cpu_s, 0),
            Some(2_000_000_000),
            "too soon to tell: the last rate"
        );
        assert_eq!(rates.rate("c", 14 * s, 1, 0), None, "counter reset");
        rates.forget("c");
        assert_eq!(rates.rate("c", 14 * s, 7 * cpu_s, 0), half);
    }
}

//! What was measured: durations with their percentiles, or single byte counts.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sample-wise sums: the time of doing one step after the other.
    pub fn plus(&self, other: &Samples) -> Samples {
        Samples(self.0.iter().zip(&other.0).map(|(a, b)| *a + *b).collect())
    }

    /// The `p`th percentile (nearest rank), 0 when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p90(&self) -> Duration {
        self.percentile(90.0)
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        json!({
            "samples": self.len(),
            "p50_ms": ms(self.p50()),
            "p90_ms": ms(self.p90()),
            "max_ms": ms(self.max()),
        })
    }
}

/// One figure of one runtime.
#[derive(Debug, Clone)]
pub enum Figure {
    Time(Samples),
    Bytes(u64),
}

impl Figure {
    /// The number compared between runtimes: the median time in ms, or MiB.
    pub fn headline(&self) -> f64 {
        match self {
            Figure::Time(s) => s.p50().as_secs_f64() * 1000.0,
            Figure::Bytes(b) => *b as f64 / (1024.0 * 1024.0),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Figure::Time(s) => s.to_json(),
            Figure::Bytes(b) => json!({ "bytes": b, "mib": *b as f64 / (1024.0 * 1024.0) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for ms in [5, 1, 4, 2, 3, 6, 7, 8, 9, 10] {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.p50(), Duration::from_millis(5));
        assert_eq!(s.p90(), Duration::from_millis(9));
        assert_eq!(s.max(), Duration::from_millis(10));
        assert_eq!(Samples::default().p50(), Duration::ZERO);
    }
}

//! A lock-free latency histogram (Prometheus-style buckets), shared by the native servers' statistics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the histogram's buckets; a last bucket takes the rest.
/// They include every bound of the Python servers' RPC histogram (`services.common.metrics.LATENCY_BUCKETS`), so a
/// native server's calls merge exactly into it.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Latency {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Non-cumulative bucket counts (the last is +Inf) and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        (
            self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            self.sum_ns.load(Relaxed) as f64 / 1e9,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_that_holds_it() {
        let latency = Latency::default();
        latency.observe(Duration::from_micros(300));
        latency.observe(Duration::from_secs(11));
        let (counts, sum) = latency.snapshot();
        assert_eq!(counts[2], 1);
        assert_eq!(counts[LATENCY_BUCKETS.len()], 1);
        assert!((sum - 11.0003).abs() < 1e-9);
    }
}

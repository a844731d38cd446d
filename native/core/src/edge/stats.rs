//! Counters the control plane exports (Prometheus) and reports to steering. Lock-free on the request path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::latency::Latency;
pub use crate::latency::LATENCY_BUCKETS;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_304: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    /// Body bytes written to clients (the egress).
    pub bytes_sent: AtomicU64,
    pub hits_memory: AtomicU64,
    pub hits_disk: AtomicU64,
    pub misses: AtomicU64,
    /// Body bytes of requests answered from each tier, and of misses (for the byte hit ratio).
    pub hit_bytes_memory: AtomicU64,
    pub hit_bytes_disk: AtomicU64,
    pub miss_bytes: AtomicU64,
    /// Requests that joined a fill already in flight instead of fetching.
    pub coalesced_waiters: AtomicU64,
    pub upstream_fetches: AtomicU64,
    pub upstream_retries: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub upstream_bytes: AtomicU64,
    pub evictions_memory: AtomicU64,
    pub evictions_disk: AtomicU64,
    pub active_connections: AtomicU64,
    pub connections: AtomicU64,
    /// Requests refused because their playback session was revoked.
    pub revoked_refusals: AtomicU64,
    latency: Latency,
}

impl Stats {
    pub fn observe_latency(&self, d: Duration) {
        self.latency.observe(d);
    }

    /// Non-cumulative bucket counts (the last is +Inf) and the sum in seconds.
    pub fn latency(&self) -> (Vec<u64>, f64) {
        self.latency.snapshot()
    }

    pub fn count_status(&self, status: u16) {
        let c = match status {
            304 => &self.responses_304,
            200..=299 => &self.responses_2xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        c.fetch_add(1, Relaxed);
    }

    /// Every counter by name.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let all = [
            ("requests", &self.requests),
            ("responses_2xx", &self.responses_2xx),
            ("responses_304", &self.responses_304),
            ("responses_4xx", &self.responses_4xx),
            ("responses_5xx", &self.responses_5xx),
            ("bytes_sent", &self.bytes_sent),
            ("hits_memory", &self.hits_memory),
            ("hits_disk", &self.hits_disk),
            ("misses", &self.misses),
            ("hit_bytes_memory", &self.hit_bytes_memory),
            ("hit_bytes_disk", &self.hit_bytes_disk),
            ("miss_bytes", &self.miss_bytes),
            ("coalesced_waiters", &self.coalesced_waiters),
            ("upstream_fetches", &self.upstream_fetches),
            ("upstream_retries", &self.upstream_retries),
            ("upstream_errors", &self.upstream_errors),
            ("upstream_bytes", &self.upstream_bytes),
            ("evictions_memory", &self.evictions_memory),
            ("evictions_disk", &self.evictions_disk),
            ("active_connections", &self.active_connections),
            ("connections", &self.connections),
            ("revoked_refusals", &self.revoked_refusals),
        ];
        all.iter().map(|(n, c)| (*n, c.load(Relaxed))).collect()
    }
}

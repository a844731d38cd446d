//! Binding for marquee_core::edge: `EdgeServer` (the running data plane) and `replay_policy` (trace replay
//! through the eviction policies, for the byte hit ratio benchmark).

use std::sync::Mutex;

use marquee_core::edge::policy::{replay, PolicyKind};
use marquee_core::edge::stats::LATENCY_BUCKETS;
use marquee_core::edge::{EdgeConfig, EdgeServer as CoreEdge};
use marquee_core::Error;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::to_py;

/// A running edge: its own tokio runtime serves HTTP without the GIL; these methods are its control surface.
#[pyclass(module = "marquee._native", frozen)]
pub struct EdgeServer {
    inner: Mutex<Option<CoreEdge>>,
    host: String,
    port: u16,
}

impl EdgeServer {
    fn with<T>(&self, f: impl FnOnce(&CoreEdge) -> Result<T, Error>) -> PyResult<T> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let edge = guard
            .as_ref()
            .ok_or_else(|| to_py(Error::Io("the edge is stopped".into())))?;
        f(edge).map_err(to_py)
    }
}

#[pymethods]
impl EdgeServer {
    /// Starts an edge from its JSON configuration (see `edge.config.EdgeConfig`).
    #[new]
    fn new(py: Python<'_>, config_json: &str) -> PyResult<Self> {
        let config = EdgeConfig::from_json(config_json).map_err(to_py)?;
        let edge = py.detach(|| CoreEdge::start(config)).map_err(to_py)?;
        let addr = edge.addr();
        Ok(Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            inner: Mutex::new(Some(edge)),
        })
    }

    #[getter]
    fn host(&self) -> &str {
        &self.host
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// Counters and tier usage (`memory_used_bytes`, `disk_objects`, ...), all integers.
    fn stats(&self) -> PyResult<std::collections::BTreeMap<String, u64>> {
        self.with(|e| {
            let mut out: std::collections::BTreeMap<String, u64> = e
                .stats()
                .counters()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            for (tier, (used, objects, capacity)) in
                ["memory", "disk"].iter().zip(e.cache().usage())
            {
                out.insert(format!("{tier}_used_bytes"), used);
                out.insert(format!("{tier}_objects"), objects);
                out.insert(format!("{tier}_capacity_bytes"), capacity);
            }
            out.insert("revoked_sessions".to_owned(), e.revoked_sessions() as u64);
            Ok(out)
        })
    }

    /// The time-to-response-head histogram: (bucket upper bounds in seconds, non-cumulative counts with a last
    /// +Inf bucket, sum of seconds).
    fn latency(&self) -> PyResult<(Vec<f64>, Vec<u64>, f64)> {
        self.with(|e| {
            let (counts, sum) = e.stats().latency();
            Ok((LATENCY_BUCKETS.to_vec(), counts, sum))
        })
    }

    /// Bytes cached per title, over both tiers.
    fn cached_titles(&self) -> PyResult<std::collections::BTreeMap<String, u64>> {
        self.with(|e| Ok(e.cache().titles()))
    }

    /// Drops every object whose key starts with `prefix` (e.g. `"bbb/"`); returns how many.
    fn purge(&self, prefix: &str) -> PyResult<u64> {
        self.with(|e| Ok(e.cache().purge(prefix)))
    }

    /// The bytes of `key` (below the prefix, e.g. `"bbb/media.json"`), through the cache (which it fills).
    fn fetch<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyBytes>> {
        let body = py.detach(|| self.with(|e| e.fetch(key)))?;
        Ok(PyBytes::new(py, &body))
    }

    /// Makes sure `key` is cached (a fill when it is not); returns its size in bytes.
    fn prefetch(&self, py: Python<'_>, key: &str) -> PyResult<u64> {
        py.detach(|| self.with(|e| e.fetch(key).map(|b| b.len() as u64)))
    }

    /// Per-connection egress cap in bytes/s; 0 removes it. Applies to responses started after the call.
    fn set_rate_limit(&self, bytes_per_sec: u64) -> PyResult<()> {
        self.with(|e| {
            e.set_rate_limit(bytes_per_sec);
            Ok(())
        })
    }

    /// Refuses the signed URLs of these playback sessions from now on: `(session id, unix seconds at which its
    /// tokens expire)` pairs, each remembered until then. Returns how many revoked sessions the edge holds.
    fn revoke_sessions(&self, sessions: Vec<(String, u64)>) -> PyResult<usize> {
        self.with(|e| Ok(e.revoke(sessions)))
    }

    /// Stops serving and releases the port; idempotent.
    fn stop(&self, py: Python<'_>) {
        let edge = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut edge) = edge {
            py.detach(move || edge.stop());
        }
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

/// Replays a trace of `(object id, size)` requests through `policy` ("s3fifo" or "lru") at `capacity` bytes;
/// returns `(requests, hits, bytes, hit_bytes)`.
#[pyfunction]
fn replay_policy(
    py: Python<'_>,
    policy: &str,
    capacity: u64,
    ids: Vec<u64>,
    sizes: Vec<u64>,
) -> PyResult<(u64, u64, u64, u64)> {
    let kind = match policy {
        "s3fifo" => PolicyKind::S3fifo,
        "lru" => PolicyKind::Lru,
        other => {
            return Err(to_py(Error::InvalidArgument(format!(
                "unknown policy {other:?} (s3fifo, lru)"
            ))))
        }
    };
    if ids.len() != sizes.len() {
        return Err(to_py(Error::InvalidArgument(
            "ids and sizes differ in length".into(),
        )));
    }
    let trace: Vec<(u64, u64)> = ids.into_iter().zip(sizes).collect();
    let r = py.detach(|| replay(kind, capacity, &trace));
    Ok((r.requests, r.hits, r.bytes, r.hit_bytes))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EdgeServer>()?;
    m.add_function(wrap_pyfunction!(replay_policy, m)?)?;
    Ok(())
}

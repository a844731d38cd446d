//! Binding for marquee_core::ingest: `IngestFront`, the playback service's public gRPC listener. Its own tokio
//! runtime serves without the GIL; these methods are how the servicer admits tokens and sessions to its fast
//! path, reads its counters, and starts and stops it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marquee_core::ingest::{IngestConfig, IngestServer, IngestStats, SessionGrant, TokenGrant};
use marquee_core::latency::LATENCY_BUCKETS;
use marquee_core::Error;
use pyo3::prelude::*;

use crate::errors::to_py;

#[pyclass(module = "marquee._native", frozen)]
pub struct IngestFront {
    inner: Mutex<Option<IngestServer>>,
    /// Kept past a stop, so that the final counts can still be read.
    stats: Arc<IngestStats>,
    host: String,
    port: u16,
}

impl IngestFront {
    fn with<T>(&self, f: impl FnOnce(&mut IngestServer) -> T) -> PyResult<T> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let front = guard
            .as_mut()
            .ok_or_else(|| to_py(Error::Io("the ingest front is stopped".into())))?;
        Ok(f(front))
    }
}

#[pymethods]
impl IngestFront {
    /// Binds the public address and connects to Redis (OSError when either fails); serves nothing until
    /// `serve()`. The configuration is JSON (see `services.playback.ingest`).
    #[new]
    fn new(py: Python<'_>, config_json: &str) -> PyResult<Self> {
        let config = IngestConfig::from_json(config_json).map_err(to_py)?;
        let front = py.detach(|| IngestServer::bind(config)).map_err(to_py)?;
        let addr = front.addr();
        Ok(Self {
            stats: front.stats(),
            host: addr.ip().to_string(),
            port: addr.port(),
            inner: Mutex::new(Some(front)),
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

    fn serve(&self) -> PyResult<()> {
        self.with(|f| f.serve())
    }

    /// The fast path may serve calls carrying `token` while the clock is before `valid_until` (unix seconds).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (token, account_id, profile_id, session_id, issued_at, valid_until))]
    fn admit_token(
        &self,
        token: String,
        account_id: String,
        profile_id: String,
        session_id: Option<String>,
        issued_at: f64,
        valid_until: f64,
    ) -> PyResult<()> {
        let grant = TokenGrant {
            account_id,
            profile_id,
            session_id,
            issued_at,
            valid_until,
        };
        self.with(|f| f.admitted().admit_token(token, grant))
    }

    /// The fast path may serve reports of this live session until `renew_micros` (unix microseconds).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (session_id, account_id, profile_id, title_id, runtime_ms, region, expire_micros, renew_micros, url_token))]
    fn admit_session(
        &self,
        session_id: String,
        account_id: String,
        profile_id: String,
        title_id: String,
        runtime_ms: i64,
        region: String,
        expire_micros: i64,
        renew_micros: i64,
        url_token: String,
    ) -> PyResult<()> {
        let grant = SessionGrant {
            account_id,
            profile_id,
            title_id,
            runtime_ms,
            region,
            expire_micros,
            renew_micros,
            url_token,
        };
        self.with(|f| f.admitted().admit_session(session_id, grant))
    }

    fn forget_session(&self, session_id: &str) -> PyResult<()> {
        self.with(|f| f.admitted().forget_session(session_id))
    }

    /// Counters: `served`, `forwarded`, `forward_errors`, `declined_<reason>`, and while running
    /// `admitted_tokens`, `admitted_sessions`. They stay readable after `stop()`.
    fn stats(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self.stats.counters().into_iter().collect();
        if let Ok((tokens, sessions)) = self.with(|f| f.admitted().len()) {
            out.insert("admitted_tokens".into(), tokens as u64);
            out.insert("admitted_sessions".into(), sessions as u64);
        }
        out
    }

    /// The latency of calls served on the fast path: (bucket upper bounds in seconds, non-cumulative counts with a
    /// last +Inf bucket, sum of seconds).
    fn latency(&self) -> (Vec<f64>, Vec<u64>, f64) {
        let (counts, sum) = self.stats.latency.snapshot();
        (LATENCY_BUCKETS.to_vec(), counts, sum)
    }

    /// Stops accepting and ends the front's runtime, giving calls in flight up to `grace` seconds; idempotent.
    fn stop(&self, py: Python<'_>, grace: f64) {
        let front = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut front) = front {
            let grace = Duration::from_secs_f64(grace.clamp(0.0, 60.0));
            py.detach(move || front.stop(grace));
        }
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IngestFront>()
}

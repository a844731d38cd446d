//! Where misses come from: the origin store on local disk, or another edge (a shield) over HTTP, with a timeout
//! per step and retries with exponential backoff while no byte has reached the waiters yet.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

use super::config::{EdgeConfig, UpstreamConfig};
use super::fill::{FetchError, Fill, Head};
use super::stats::Stats;

const READ_CHUNK: usize = 256 << 10;

pub enum Upstream {
    Dir {
        root: PathBuf,
    },
    Http {
        client: Client<HttpConnector, Empty<Bytes>>,
        base_url: String,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
    },
}

impl Upstream {
    pub fn new(config: &EdgeConfig) -> Self {
        match &config.upstream {
            UpstreamConfig::Dir { root } => Self::Dir {
                root: PathBuf::from(root),
            },
            UpstreamConfig::Http { base_url } => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector
                    .set_connect_timeout(Some(Duration::from_millis(config.upstream_timeout_ms)));
                Self::Http {
                    client: Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .build(connector),
                    base_url: base_url.clone(),
                    timeout: Duration::from_millis(config.upstream_timeout_ms),
                    retries: config.upstream_retries,
                    backoff: Duration::from_millis(config.upstream_backoff_ms),
                }
            }
        }
    }

    /// Fetches `key` into `fill` (head, then chunks); the caller finishes the fill with the result.
    pub async fn fetch(&self, key: &str, fill: &Fill, stats: &Stats) -> Result<(), FetchError> {
        match self {
            Self::Dir { root } => fetch_file(root, key, fill, stats).await,
            Self::Http {
                client,
                base_url,
                timeout,
                retries,
                backoff,
            } => {
                let url = format!("{base_url}{key}");
                let mut attempt = 0;
                loop {
                    match fetch_http(client, &url, *timeout, fill, stats).await {
                        Err(Attempt::Retryable(_)) if attempt < *retries => {
                            stats
                                .upstream_retries
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(*backoff * 2u32.saturating_pow(attempt)).await;
                            attempt += 1;
                        }
                        Err(Attempt::Retryable(e) | Attempt::Final(e)) => return Err(e),
                        Ok(()) => return Ok(()),
                    }
                }
            }
        }
    }
}

async fn fetch_file(
    root: &std::path::Path,
    key: &str,
    fill: &Fill,
    stats: &Stats,
) -> Result<(), FetchError> {
    // `key` was normalised by `path::cache_key`: relative, no `..`, no hidden segments
    let path = root.join(key);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
        Err(e) => return Err(FetchError::Upstream(format!("open: {e}"))),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| FetchError::Upstream(format!("stat: {e}")))?;
    if !meta.is_file() {
        return Err(FetchError::NotFound);
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    fill.set_head(Head {
        len: meta.len(),
        etag: format!("\"{:x}-{:x}\"", meta.len(), mtime).into(),
    });
    loop {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let n = (&mut file)
            .take(READ_CHUNK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| FetchError::Upstream(format!("read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        stats
            .upstream_bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        fill.push(Bytes::from(buf));
    }
}

enum Attempt {
    Retryable(FetchError),
    Final(FetchError),
}

async fn fetch_http(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout: Duration,
    fill: &Fill,
    stats: &Stats,
) -> Result<(), Attempt> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Attempt::Final(FetchError::Upstream(format!("bad upstream url: {e}"))))?;
    let response = match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_) => return Err(Attempt::Retryable(FetchError::Timeout)),
        Ok(Err(e)) => return Err(Attempt::Retryable(FetchError::Upstream(e.to_string()))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status == http::StatusCode::NOT_FOUND {
        return Err(Attempt::Final(FetchError::NotFound));
    }
    if status.is_server_error() {
        return Err(Attempt::Retryable(FetchError::Upstream(format!(
            "status {status}"
        ))));
    }
    if status != http::StatusCode::OK {
        return Err(Attempt::Final(FetchError::Upstream(format!(
            "status {status}"
        ))));
    }
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(len) = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) else {
        return Err(Attempt::Final(FetchError::Upstream(
            "no Content-Length".into(),
        )));
    };
    let etag = header(http::header::ETAG).unwrap_or_else(|| format!("\"{len:x}\""));
    fill.set_head(Head {
        len,
        etag: etag.into(),
    });
    let mut body = response.into_body();
    loop {
        // once bytes have reached waiters a retry could not be spliced in: failures from here on are final
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(Attempt::Final(FetchError::Timeout)),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(Attempt::Final(FetchError::Upstream(e.to_string()))),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            stats
                .upstream_bytes
                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            fill.push(data);
        }
    }
}

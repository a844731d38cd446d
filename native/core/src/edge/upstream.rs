//! Where misses come from: the origin store on local disk, or another edge (a shield) over HTTP, with a timeout
//! per step and retries with exponential backoff while no byte has reached the waiters yet. Requests to an HTTP
//! upstream carry a fill credential when the edge has fill keys: a token for exactly the requested path, valid
//! for [`FILL_TOKEN_TTL`], signed afresh for each attempt.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

use super::config::{EdgeConfig, UpstreamConfig};
use super::fill::{FetchError, Fill, Head};
use super::server::FILL_HEADER;
use super::stats::Stats;
use crate::token::{self, Claims, Keyring};

const READ_CHUNK: usize = 256 << 10;
/// Seconds a fill credential stays valid (covers the clock skew between an edge and its shield).
pub const FILL_TOKEN_TTL: u64 = 60;

pub enum Upstream {
    Dir {
        root: PathBuf,
    },
    Http {
        client: Box<Client<HttpConnector, Empty<Bytes>>>, // boxed: the other variant is a path
        base_url: String,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
        fill: Option<Box<Keyring>>,
    },
}

impl Upstream {
    pub fn new(config: &EdgeConfig) -> crate::Result<Self> {
        Ok(match &config.upstream {
            UpstreamConfig::Dir { root } => Self::Dir {
                root: PathBuf::from(root),
            },
            UpstreamConfig::Http { base_url } => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector
                    .set_connect_timeout(Some(Duration::from_millis(config.upstream_timeout_ms)));
                Self::Http {
                    client: Box::new(
                        Client::builder(TokioExecutor::new())
                            .pool_idle_timeout(Duration::from_secs(30))
                            .build(connector),
                    ),
                    base_url: base_url.clone(),
                    timeout: Duration::from_millis(config.upstream_timeout_ms),
                    retries: config.upstream_retries,
                    backoff: Duration::from_millis(config.upstream_backoff_ms),
                    fill: config.fill_keyring()?.map(Box::new),
                }
            }
        })
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
                fill: credential,
            } => {
                let url = format!("{base_url}{key}");
                let mut attempt = 0;
                loop {
                    let request = request(&url, credential.as_deref())?;
                    match fetch_http(client, request, *timeout, fill, stats).await {
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

/// The GET of `url`, with a fill credential for its path when the edge has fill keys.
fn request(
    url: &str,
    credential: Option<&Keyring>,
) -> Result<http::Request<Empty<Bytes>>, FetchError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| FetchError::Upstream(format!("bad upstream url: {e}")))?;
    let mut builder = http::Request::get(&uri);
    if let Some(ring) = credential {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            kid: ring.signing_kid().to_owned(),
            expires_at: now + FILL_TOKEN_TTL,
            acl: vec![uri.path().to_owned()],
            session_id: None,
            regions: Vec::new(),
        };
        let signed = token::sign(ring, &claims)
            .map_err(|e| FetchError::Upstream(format!("fill credential: {e}")))?;
        builder = builder.header(FILL_HEADER, signed);
    }
    builder
        .body(Empty::new())
        .map_err(|e| FetchError::Upstream(format!("bad upstream request: {e}")))
}

async fn fetch_http(
    client: &Client<HttpConnector, Empty<Bytes>>,
    request: http::Request<Empty<Bytes>>,
    timeout: Duration,
    fill: &Fill,
    stats: &Stats,
) -> Result<(), Attempt> {
    let response = match tokio::time::timeout(timeout, client.request(request)).await {
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

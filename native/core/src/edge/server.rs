//! The HTTP/1.1 data plane: hyper on a tokio runtime of its own, so serving never touches the Python GIL.
//!
//! Per request: method (GET, HEAD, OPTIONS for CORS preflight; 405 otherwise), path normalisation (400/404),
//! authorization (below), then the cache; ETag / If-None-Match (304), a single byte range
//! (206, 416), `Cache-Control: immutable`, CORS. Request heads are bounded in bytes and header count (431), and
//! in time (a slow client is dropped). An optional per-connection egress cap shapes bodies (ABR testing).
//!
//! Authorization: a request carrying a fill credential (`x-fill-token`, a token of the fill keyring covering the
//! exact path: what an edge sends its shield) is checked against the fill keys alone (403 when it fails). Any
//! other request is a player's: it needs a signed URL token (`?token=`) of the player keyring covering the path
//! (403; 410 once expired), whose playback session has not been revoked (410), and, when the token carries
//! licensed regions, from a client whose address is in one of them (403; see `geo.rs`). A node with fill keys and no
//! player keys (a shield players may not use) refuses players outright; only a node with neither (benchmarks,
//! tests of the cache alone) serves without a token.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::cache::{Cache, Lookup};
use super::config::EdgeConfig;
use super::fill::FetchError;
use super::geo::Geo;
use super::path::{cache_key, PathError};
use super::range::{parse_range, RangeOutcome};
use super::revoked::RevokedSessions;
use super::stats::Stats;
use crate::listen::listen;
use crate::manifest::{Presentation, RenderOptions, AES128_DIR};
use crate::token::{self, Keyring};
use crate::Error;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A client slower than this to send its request head is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Rate-limited bodies are released in pieces of this size.
const SHAPING_CHUNK: usize = 16 << 10;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const EXPOSED: &str = "Content-Length, Content-Range, ETag, X-Cache, X-Served-By";
/// The request header carrying an edge's fill credential to its shield.
pub const FILL_HEADER: &str = "x-fill-token";

/// A parsed media description and the ETag of the `media.json` it came from.
type Parsed = (Arc<str>, Arc<Presentation>);

struct Shared {
    config: EdgeConfig,
    cache: Arc<Cache>,
    keyring: Option<Keyring>,
    fill_keyring: Option<Keyring>,
    revoked: RevokedSessions,
    geo: Option<Geo>,
    stats: Arc<Stats>,
    rate_limit: AtomicU64,
    served_by: HeaderValue,
    /// Parsed media descriptions by media id, with the ETag they were parsed from.
    presentations: std::sync::Mutex<HashMap<String, Parsed>>,
}

/// One connection's token bucket for the optional egress cap.
#[derive(Default)]
struct Connection {
    bucket: tokio::sync::Mutex<Option<(f64, Instant)>>,
}

/// A running edge.
pub struct EdgeServer {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: watch::Sender<bool>,
    addr: SocketAddr,
}

impl EdgeServer {
    /// Binds the listener (so the port is known and bind errors surface here) and starts serving.
    pub fn start(config: EdgeConfig) -> crate::Result<Self> {
        let stats = Arc::new(Stats::default());
        let keyring = config.player_keyring()?;
        let fill_keyring = config.fill_keyring()?;
        let geo = config.geo.as_ref().map(Geo::new).transpose()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers)
            .thread_name(format!("edge-{}", config.name))
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("runtime: {e}")))?;
        let cache = Arc::new(Cache::new(&config, Arc::clone(&stats))?);
        let listener = {
            let _guard = runtime.enter();
            listen(&config.host, config.port)?
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))?;
        let served_by = HeaderValue::from_str(&config.name)
            .map_err(|_| Error::InvalidArgument("edge name must be printable ASCII".into()))?;
        let shared = Arc::new(Shared {
            rate_limit: AtomicU64::new(config.rate_limit_bytes_per_sec),
            revoked: RevokedSessions::new(config.revoked_capacity),
            config,
            cache,
            keyring,
            fill_keyring,
            geo,
            stats,
            served_by,
            presentations: std::sync::Mutex::new(HashMap::new()),
        });
        let (shutdown, rx) = watch::channel(false);
        runtime.spawn(accept_loop(listener, Arc::clone(&shared), rx));
        Ok(Self {
            shared,
            runtime: Some(runtime),
            shutdown,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn cache(&self) -> &Cache {
        &self.shared.cache
    }

    pub fn set_rate_limit(&self, bytes_per_sec: u64) {
        self.shared.rate_limit.store(bytes_per_sec, Relaxed);
    }

    /// Refuses the tokens of these playback sessions from now on, each until its tokens expire (unix seconds);
    /// returns how many revoked sessions the edge holds.
    pub fn revoke(&self, sessions: Vec<(String, u64)>) -> usize {
        self.shared.revoked.revoke(sessions, unix_now())
    }

    pub fn revoked_sessions(&self) -> usize {
        self.shared.revoked.len()
    }

    /// Fetches `key` (a path below the prefix) through the cache and returns its bytes, filling both tiers.
    pub fn fetch(&self, key: &str) -> crate::Result<Bytes> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Io("the edge is stopped".into()))?;
        let key = cache_key(
            &format!("{}{key}", self.shared.config.prefix),
            &self.shared.config.prefix,
        )
        .map_err(|e| Error::InvalidArgument(format!("key {key:?}: {e:?}")))?;
        let cache = Arc::clone(&self.shared.cache);
        runtime.block_on(async move {
            cache
                .body(&key)
                .await
                .map(|(body, _)| body)
                .map_err(|e| fetch_error(&key, e))
        })
    }

    /// Stops accepting, lets disk writes in flight finish, ends the runtime (open connections are closed), and
    /// releases the port.
    pub fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            let cache = Arc::clone(&self.shared.cache);
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), cache.flush()).await;
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fetch_error(key: &str, e: FetchError) -> Error {
    match e {
        FetchError::NotFound => Error::NotFound(key.to_owned()),
        other => Error::Io(format!("{key}: {other}")),
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            // out of file descriptors or a reset before accept: back off briefly instead of spinning
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            shared.stats.connections.fetch_add(1, Relaxed);
            shared.stats.active_connections.fetch_add(1, Relaxed);
            let conn = Arc::new(Connection::default());
            let service_shared = Arc::clone(&shared);
            let service = service_fn(move |req| {
                let shared = Arc::clone(&service_shared);
                let conn = Arc::clone(&conn);
                async move { Ok::<_, Infallible>(handle(shared, conn, req, peer.ip()).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .max_buf_size(shared.config.max_header_bytes)
                .max_headers(shared.config.max_headers)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            shared.stats.active_connections.fetch_sub(1, Relaxed);
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    req: Request<Incoming>,
    peer: IpAddr,
) -> Response<Body> {
    let started = Instant::now();
    shared.stats.requests.fetch_add(1, Relaxed);
    let mut response = route(&shared, conn, &req, peer).await;
    let h = response.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("marquee-edge"));
    h.insert("x-served-by", shared.served_by.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_str(&shared.config.cors_origin).unwrap_or(HeaderValue::from_static("*")),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    shared.stats.count_status(response.status().as_u16());
    shared.stats.observe_latency(started.elapsed());
    response
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{status}: {message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or("") {
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "m4a" => "audio/mp4",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "vtt" => "text/vtt",
        _ => "application/octet-stream",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// If-None-Match against our ETag (weak comparison, as RFC 9110 §13.1.2 asks for this header).
fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*" || header.split(',').any(|t| bare(t) == bare(etag))
}

async fn route(
    shared: &Arc<Shared>,
    conn: Arc<Connection>,
    req: &Request<Incoming>,
    peer: IpAddr,
) -> Response<Body> {
    let head_only = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS => return preflight(),
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET, HEAD and OPTIONS");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return r;
        }
    };
    let path = req.uri().path();
    if path == "/healthz" {
        return plain(StatusCode::OK, "ok");
    }
    let prefix = &shared.config.prefix;
    let key = match cache_key(path, prefix) {
        Ok(k) => k,
        Err(PathError::NotServed) => return plain(StatusCode::NOT_FOUND, "no such object"),
        Err(PathError::Invalid(why)) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let session = match authorize(shared, req, &format!("{prefix}{key}"), peer) {
        Ok(session) => session,
        Err((status, why)) => return plain(status, &why),
    };
    if let Some((media, rendition, kind)) = playlist_request(&key) {
        let token = query_param(req.uri().query(), &shared.config.token_param);
        let key_uri = match (shared.config.key_uri_base.as_str(), session) {
            ("", _) | (_, None) => None,
            (base, Some(sid)) => Some(format!(
                "{}/sessions/{sid}/keys",
                base.trim_end_matches('/')
            )),
        };
        if kind == Playlist::Aes128 && key_uri.is_none() {
            // the variant's key URI names the session's licence endpoint: without it the playlist cannot play
            return plain(
                StatusCode::NOT_FOUND,
                "the AES-128 variant needs key_uri_base and a session token",
            );
        }
        return playlist(shared, media, rendition, kind, token, key_uri, head_only).await;
    }
    let stats = &shared.stats;
    let (lookup_label, fill_or_obj) = match shared.cache.lookup(&key).await {
        Lookup::Memory(o) => {
            stats.hits_memory.fetch_add(1, Relaxed);
            ("HIT-MEMORY", Ok(o))
        }
        Lookup::Disk(o) => {
            stats.hits_disk.fetch_add(1, Relaxed);
            ("HIT-DISK", Ok(o))
        }
        Lookup::Fill { fill, leader } => {
            if leader {
                stats.misses.fetch_add(1, Relaxed);
            } else {
                stats.coalesced_waiters.fetch_add(1, Relaxed);
            }
            (if leader { "MISS" } else { "MISS-COALESCED" }, Err(fill))
        }
    };
    let (len, etag) = match &fill_or_obj {
        Ok(o) => (o.body.len() as u64, Arc::clone(&o.etag)),
        Err(fill) => match fill.head().await {
            Ok(h) => (h.len, h.etag),
            Err(FetchError::NotFound) => return plain(StatusCode::NOT_FOUND, "no such object"),
            Err(FetchError::Timeout) => {
                return plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
            }
            Err(e @ FetchError::Upstream(_)) => {
                return plain(StatusCode::BAD_GATEWAY, &e.to_string())
            }
        },
    };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type(&key))
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &*etag)
        .header("x-cache", lookup_label);
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if inm.is_some_and(|v| none_match(v, &etag)) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"));
    }
    let range = req
        .headers()
        .get(header::RANGE)
        .map(|v| {
            v.to_str()
                .map_or(RangeOutcome::Unsatisfiable, |s| parse_range(s, len))
        })
        .unwrap_or(RangeOutcome::Full);
    let (status, start, end) = match range {
        RangeOutcome::Full => (StatusCode::OK, 0, len.saturating_sub(1)),
        RangeOutcome::Partial { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeOutcome::Unsatisfiable => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    builder = builder.header(header::CONTENT_LENGTH, body_len);
    let counter = match lookup_label {
        "HIT-MEMORY" => &stats.hit_bytes_memory,
        "HIT-DISK" => &stats.hit_bytes_disk,
        _ => &stats.miss_bytes,
    };
    let body = if head_only || body_len == 0 {
        empty()
    } else {
        counter.fetch_add(body_len, Relaxed);
        stats.bytes_sent.fetch_add(body_len, Relaxed);
        let stream: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> =
            match fill_or_obj {
                Ok(o) => {
                    let (a, b) = (
                        usize::try_from(start).unwrap_or(0),
                        usize::try_from(end).unwrap_or(0),
                    );
                    let slice = o.body.slice(a..=b.min(o.body.len().saturating_sub(1)));
                    if shared.rate_limit.load(Relaxed) == 0 {
                        return builder
                            .status(status)
                            .body(full(slice))
                            .unwrap_or_else(|_| {
                                plain(StatusCode::INTERNAL_SERVER_ERROR, "response")
                            });
                    }
                    futures_util::stream::once(async move { Ok(slice) }).boxed()
                }
                Err(fill) => fill.stream(start, end).boxed(),
            };
        let stream = if shared.rate_limit.load(Relaxed) > 0 {
            shape(stream, Arc::clone(shared), conn).boxed()
        } else {
            stream
        };
        StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
    };
    builder
        .status(status)
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

/// Why a request may not read its path: the status and a message for the client.
type Refusal = (StatusCode, String);

/// Whether the request may read `path` (see the module's documentation); when it may, the playback session its
/// signed token is bound to (none for fill credentials and session-less tokens).
fn authorize(
    shared: &Shared,
    req: &Request<Incoming>,
    path: &str,
    peer: IpAddr,
) -> Result<Option<String>, Refusal> {
    let now = unix_now();
    let forbidden = |why: String| (StatusCode::FORBIDDEN, why);
    if let Some(fill) = &shared.fill_keyring {
        if let Some(value) = req.headers().get(FILL_HEADER) {
            let tok = value
                .to_str()
                .map_err(|_| forbidden("fill credential refused: not text".into()))?;
            return token::verify(fill, tok, path, now, None)
                .map(|_| None)
                .map_err(|e| forbidden(format!("fill credential refused: {e}")));
        }
    }
    let Some(keyring) = &shared.keyring else {
        if shared.fill_keyring.is_some() {
            return Err(forbidden(
                "this node serves edges only (players are not allowed to fall back to it)".into(),
            ));
        }
        return Ok(None);
    };
    let Some(tok) = query_param(req.uri().query(), &shared.config.token_param) else {
        return Err(forbidden("a signed token is required".into()));
    };
    match token::verify(keyring, tok, path, now, None) {
        Ok(claims) => {
            if let Some(sid) = &claims.session_id {
                if shared.revoked.contains(sid, now) {
                    shared.stats.revoked_refusals.fetch_add(1, Relaxed);
                    return Err((StatusCode::GONE, "the playback session has ended".into()));
                }
            }
            if claims.regions.is_empty() {
                return Ok(claims.session_id);
            }
            let region = shared.geo.as_ref().map_or("", |geo| {
                let forwarded = req
                    .headers()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                geo.region(geo.client(peer, forwarded))
            });
            if token::region_allowed(&claims.regions, region) {
                Ok(claims.session_id)
            } else {
                let place = if region.is_empty() {
                    "an unknown region"
                } else {
                    region
                };
                Err(forbidden(format!("the title is not licensed in {place}")))
            }
        }
        Err(Error::TokenExpired { .. }) => Err((StatusCode::GONE, "the token has expired".into())),
        Err(e) => Err(forbidden(e.to_string())),
    }
}

/// `{media}/{rendition}/index.m3u8`, `.../iframes.m3u8` or `.../aes128/index.m3u8`: media playlists the edge renders
/// itself (they are not files in the origin), so that every segment URI carries the request's token.
fn playlist_request(key: &str) -> Option<(&str, &str, Playlist)> {
    let mut parts = key.split('/');
    let (media, rendition, file) = (parts.next()?, parts.next()?, parts.next()?);
    let kind = match (file, parts.next(), parts.next()) {
        ("index.m3u8", None, _) => Playlist::Media,
        ("iframes.m3u8", None, _) => Playlist::IFrames,
        (dir, Some("index.m3u8"), None) if dir == AES128_DIR => Playlist::Aes128,
        _ => return None,
    };
    Some((media, rendition, kind))
}

/// Which playlist of a rendition a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playlist {
    Media,
    IFrames,
    /// The media playlist of the rendition's HLS AES-128 variant (`{rendition}/aes128/index.m3u8`).
    Aes128,
}

/// Most parsed media descriptions kept (a new one replaces all when full).
const PRESENTATIONS: usize = 1024;

async fn playlist(
    shared: &Arc<Shared>,
    media: &str,
    rendition: &str,
    kind: Playlist,
    token: Option<&str>,
    key_uri: Option<String>,
    head_only: bool,
) -> Response<Body> {
    let description = format!("{media}/media.json");
    let (body, etag) = match shared.cache.body(&description).await {
        Ok(found) => found,
        Err(FetchError::NotFound) => return plain(StatusCode::NOT_FOUND, "no such title"),
        Err(FetchError::Timeout) => {
            return plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
        }
        Err(e) => return plain(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let presentation = {
        let known = shared
            .presentations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(media)
            .filter(|(e, _)| *e == etag)
            .map(|(_, p)| Arc::clone(p));
        match known {
            Some(p) => p,
            None => {
                let text = String::from_utf8_lossy(&body);
                let parsed = match Presentation::from_json(&text) {
                    Ok(p) => Arc::new(p),
                    Err(e) => {
                        return plain(StatusCode::BAD_GATEWAY, &format!("media description: {e}"))
                    }
                };
                let mut cache = shared
                    .presentations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if cache.len() >= PRESENTATIONS {
                    cache.clear();
                }
                cache.insert(media.to_owned(), (etag, Arc::clone(&parsed)));
                parsed
            }
        }
    };
    let opts = RenderOptions {
        token: token.map(|t| (shared.config.token_param.clone(), t.to_owned())),
        key_uri,
        aes128: kind == Playlist::Aes128,
        ..RenderOptions::default()
    };
    let rendered = if kind == Playlist::IFrames {
        presentation.hls_iframes(rendition, &opts)
    } else {
        presentation.hls_media(rendition, &opts)
    };
    let text = match rendered {
        Ok(t) => t,
        Err(Error::InvalidArgument(m)) if m.contains("rendition") => {
            return plain(StatusCode::NOT_FOUND, "no such rendition")
        }
        Err(Error::InvalidArgument(m)) if m.contains("no HLS AES-128 variant") => {
            return plain(StatusCode::NOT_FOUND, &m)
        }
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    shared
        .stats
        .bytes_sent
        .fetch_add(text.len() as u64, Relaxed);
    let len = text.len();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")
        // the session's token is inside: no shared cache may keep it
        .header(header::CACHE_CONTROL, "private, max-age=300")
        .header(header::CONTENT_LENGTH, len)
        .header("x-cache", "RENDERED")
        .body(if head_only {
            empty()
        } else {
            full(Bytes::from(text))
        })
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn preflight() -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-None-Match, Origin, Accept"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// Releases `stream` in pieces no faster than the edge's current per-connection rate.
fn shape(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
    shared: Arc<Shared>,
    conn: Arc<Connection>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream
        .map_ok(|chunk| {
            let pieces: Vec<Result<Bytes, std::io::Error>> = (0..chunk.len())
                .step_by(SHAPING_CHUNK)
                .map(|i| Ok(chunk.slice(i..(i + SHAPING_CHUNK).min(chunk.len()))))
                .collect();
            futures_util::stream::iter(pieces)
        })
        .try_flatten()
        .and_then(move |piece| {
            let shared = Arc::clone(&shared);
            let conn = Arc::clone(&conn);
            async move {
                let rate = shared.rate_limit.load(Relaxed) as f64;
                if rate > 0.0 {
                    let mut bucket = conn.bucket.lock().await;
                    let now = Instant::now();
                    let burst = (rate / 4.0).max(SHAPING_CHUNK as f64);
                    let (tokens, last) = bucket.unwrap_or((burst, now));
                    let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate)
                        .min(burst)
                        - piece.len() as f64;
                    *bucket = Some((tokens, now));
                    if tokens < 0.0 {
                        tokio::time::sleep(Duration::from_secs_f64(-tokens / rate)).await;
                    }
                }
                Ok(piece)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matching_and_query_parsing() {
        assert!(none_match("\"a\"", "\"a\""));
        assert!(none_match("W/\"a\", \"b\"", "\"a\""));
        assert!(none_match("*", "\"a\""));
        assert!(!none_match("\"b\"", "\"a\""));
        assert_eq!(query_param(Some("x=1&token=abc"), "token"), Some("abc"));
        assert_eq!(query_param(Some("tokenx=1"), "token"), None);
        assert_eq!(
            super::super::config::decode_hex("0aff"),
            Some(vec![10, 255])
        );
        assert_eq!(super::super::config::decode_hex("0g"), None);
    }
}

//! The front's HTTP/2 plane: every call of the configured method goes to the fast path first; everything the
//! fast path declines, and every other call, is forwarded unchanged to the grpc.aio backend, with the client's
//! address (which the backend believes only beside the shared secret) and the backend's answer streamed back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admitted::Admitted;
use super::config::IngestConfig;
use super::fast::{self, Decline};
use super::wire;
use crate::latency::Latency;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Request headers only the front may set on a forwarded call.
pub const PEER_HEADER: &str = "x-marquee-peer";
pub const SECRET_HEADER: &str = "x-marquee-front";

/// Calls answered on the fast path, declined by reason, forwarded, and forwards that failed.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub served: AtomicU64,
    pub declined: [AtomicU64; Decline::ALL.len()],
    pub forwarded: AtomicU64,
    pub forward_errors: AtomicU64,
    /// Client connections open now (a stop waits for them to close, up to its grace).
    pub connections: AtomicU64,
    pub latency: Latency,
}

impl IngestStats {
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("served".to_owned(), self.served.load(Relaxed)),
            ("forwarded".to_owned(), self.forwarded.load(Relaxed)),
            (
                "forward_errors".to_owned(),
                self.forward_errors.load(Relaxed),
            ),
            ("connections".to_owned(), self.connections.load(Relaxed)),
        ];
        for (reason, count) in Decline::ALL.iter().zip(&self.declined) {
            out.push((format!("declined_{}", reason.label()), count.load(Relaxed)));
        }
        out
    }
}

pub struct Shared {
    pub config: IngestConfig,
    pub admitted: Arc<Admitted>,
    pub stats: Arc<IngestStats>,
    /// Set once the first connection succeeded (see `connect`).
    pub redis: Arc<std::sync::OnceLock<redis::aio::ConnectionManager>>,
    pub script: redis::Script,
    pub client: Client<HttpConnector, Body>,
    pub secret: HeaderValue,
}

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue, // out of descriptors, a connection reset before accept: keep serving
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let mut closing = shutdown.clone();
        shared.stats.connections.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let stats = Arc::clone(&shared.stats);
            let service = service_fn(move |req| handle(Arc::clone(&shared), peer, req));
            let connection = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown(); // GOAWAY: calls in flight finish, no new ones
                    let _ = connection.await;
                }
            }
            stats.connections.fetch_sub(1, Relaxed);
        });
    }
}

fn boxed<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// A trailers-only gRPC answer (the status in the headers).
fn status(code: u32, message: &str) -> Response<Body> {
    let mut response = Response::new(boxed(Full::new(Bytes::new())));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(message) {
        headers.insert("grpc-message", value);
    }
    response
}

/// The request id the backend's interceptor would keep (`services.common.context.new_request_id`), else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let incoming = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    match incoming {
        Some(id)
            if (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
        {
            id.to_owned()
        }
        _ => {
            let mut bytes = [0u8; 16];
            let _ = getrandom::getrandom(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

fn answer(message: &wire::UpdatePositionResponse, request_id: &str) -> Response<Body> {
    let frames = [
        Ok::<_, Infallible>(Frame::data(wire::frame(&message.encode_to_vec()))),
        Ok(Frame::trailers(wire::ok_trailers(request_id))),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let mut response = Response::new(boxed(body));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() != shared.config.method {
        return Ok(forward(&shared, peer, req.map(boxed)).await);
    }
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let limit = shared.config.max_message_bytes + 5;
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let message =
                format!("received message larger than max ({limit} bytes with its frame)");
            return Ok(status(8, &message)); // as grpc.aio answers it, before any handler
        }
        Err(_) => return Ok(status(1, "the client cancelled the request")),
    };
    let outcome = match shared.redis.get() {
        Some(redis) => {
            let mut redis = redis.clone();
            fast::update(
                &shared.config,
                &shared.admitted,
                &mut redis,
                &shared.script,
                &parts.headers,
                &body,
            )
            .await
        }
        None => Err(Decline::Redis),
    };
    match outcome {
        Ok(message) => {
            shared.stats.served.fetch_add(1, Relaxed);
            let response = answer(&message, &request_id(&parts.headers));
            shared.stats.latency.observe(started.elapsed());
            Ok(response)
        }
        Err(reason) => {
            if let Some(count) = Decline::ALL.iter().position(|r| *r == reason) {
                shared.stats.declined[count].fetch_add(1, Relaxed);
            }
            let req = Request::from_parts(parts, boxed(Full::new(body)));
            Ok(forward(&shared, peer, req).await)
        }
    }
}

/// The call, forwarded to the backend over HTTP/2 with the client's address; the backend's answer streamed back.
async fn forward(shared: &Shared, peer: SocketAddr, req: Request<Body>) -> Response<Body> {
    shared.stats.forwarded.fetch_add(1, Relaxed);
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{}{}", shared.config.backend, path).parse::<Uri>() else {
        return status(12, "unknown method path");
    };
    parts.uri = uri;
    let headers = &mut parts.headers;
    headers.remove(PEER_HEADER);
    headers.remove(SECRET_HEADER);
    headers.remove(http::header::HOST);
    if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert(PEER_HEADER, value);
    }
    headers.insert(SECRET_HEADER, shared.secret.clone());
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(boxed),
        Err(_) => {
            shared.stats.forward_errors.fetch_add(1, Relaxed);
            status(14, "the playback service is not answering: try again")
        }
    }
}

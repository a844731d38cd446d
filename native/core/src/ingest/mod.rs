//! The playback service's ingest front: its public gRPC listener, answering `UpdatePosition` -- the one RPC every
//! player calls every few seconds for as long as it plays -- natively in the common case, and forwarding every
//! other call to the service's grpc.aio server on a private loopback port.
//!
//! A grpc.aio RPC that authenticates costs more CPU than a trivial one before its handler runs, so no Python
//! handler can reach the position path's throughput target; this path does the servicer's Redis hot path in
//! Rust on its own tokio runtime (no GIL): the token check against what the servicer admitted, the deny list's
//! one MGET, the session's ownership and lease, and the same positions script. It serves only what the servicer
//! has already decided ([`admitted`]) and declines everything else to it, unchanged ([`fast`]), so errors, lease
//! extensions, completions and seeding from the store have one implementation: the servicer's.

pub mod admitted;
pub mod config;
pub mod fast;
pub mod server;
pub mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use admitted::{Admitted, SessionGrant, TokenGrant};
pub use config::IngestConfig;
pub use server::IngestStats;

use crate::listen::listen;
use crate::Error;

const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound front: [`IngestServer::serve`] starts answering; [`IngestServer::stop`] ends it.
pub struct IngestServer {
    shared: Arc<server::Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    listener: Option<TcpListener>,
    shutdown: watch::Sender<bool>,
    addr: SocketAddr,
}

fn redis_client(config: &IngestConfig) -> crate::Result<redis::Client> {
    if !config.redis_url.starts_with("redis://") {
        return Err(Error::InvalidArgument(
            "the ingest front speaks to Redis over redis:// only (no TLS)".into(),
        ));
    }
    let mut info = redis::IntoConnectionInfo::into_connection_info(config.redis_url.as_str())
        .map_err(|e| Error::InvalidArgument(format!("redis url: {e}")))?;
    if let Some(password) = &config.redis_password {
        info.redis.password = Some(password.clone());
    }
    redis::Client::open(info).map_err(|e| Error::InvalidArgument(format!("redis: {e}")))
}

/// Connects to Redis, again every second until it answers; from then on the manager reconnects by itself. Until
/// then the fast path declines every call (the servicer answers them), so Redis away at start delays nothing.
async fn connect(client: redis::Client, cell: Arc<OnceLock<redis::aio::ConnectionManager>>) {
    let settings = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(REDIS_CONNECT_TIMEOUT)
        .set_response_timeout(REDIS_RESPONSE_TIMEOUT);
    loop {
        match redis::aio::ConnectionManager::new_with_config(client.clone(), settings.clone()).await
        {
            Ok(manager) => {
                let _ = cell.set(manager);
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

impl IngestServer {
    /// Binds the listener (so a bind error surfaces here) and starts connecting to Redis; serves nothing yet.
    pub fn bind(config: IngestConfig) -> crate::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ingest")
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("runtime: {e}")))?;
        let client = redis_client(&config)?;
        let listener = {
            let _guard = runtime.enter();
            listen(&config.host, config.port)?
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))?;
        let secret = http::HeaderValue::from_str(&config.peer_secret)
            .map_err(|_| Error::InvalidArgument("peer_secret must be printable ASCII".into()))?;
        let http = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let shared = Arc::new(server::Shared {
            admitted: Arc::new(Admitted::new(config.capacity)),
            stats: Arc::new(IngestStats::default()),
            script: redis::Script::new(&config.update_script),
            redis: Arc::new(OnceLock::new()),
            client: http,
            secret,
            config,
        });
        runtime.spawn(connect(client, Arc::clone(&shared.redis)));
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            shared,
            runtime: Some(runtime),
            listener: Some(listener),
            shutdown,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admitted(&self) -> &Admitted {
        &self.shared.admitted
    }

    /// The front's counters, readable for as long as the handle is kept (after a stop too).
    pub fn stats(&self) -> Arc<IngestStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Starts answering (once; later calls do nothing).
    pub fn serve(&mut self) {
        if let (Some(runtime), Some(listener)) = (&self.runtime, self.listener.take()) {
            runtime.spawn(server::accept_loop(
                listener,
                Arc::clone(&self.shared),
                self.shutdown.subscribe(),
            ));
        }
    }

    /// Stops accepting and sends every connection a GOAWAY, waits up to `grace` for their calls in flight to
    /// finish and the clients to close them, then ends the runtime. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.listener = None;
        if let Some(runtime) = self.runtime.take() {
            let stats = Arc::clone(&self.shared.stats);
            runtime.block_on(async move {
                let deadline = tokio::time::Instant::now() + grace;
                while stats.connections.load(std::sync::atomic::Ordering::Relaxed) > 0
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            runtime.shutdown_background();
        }
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(100));
    }
}

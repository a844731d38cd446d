//! The ingest front's configuration, deserialised from the JSON `services.playback.ingest` writes: every value
//! comes from the Python side's own constants and settings, so the fast path and the servicer cannot disagree.

use serde::Deserialize;

use crate::Error;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Where clients connect (the playback service's public gRPC address).
    pub host: String,
    pub port: u16,
    /// The grpc.aio server every call the fast path does not answer goes to (a private loopback address).
    pub backend: String,
    /// The full gRPC method answered on the fast path.
    pub method: String,
    /// Sent to the backend with every forwarded call, beside the client's address: the backend believes the
    /// address only with this secret (services.common.peer).
    pub peer_secret: String,
    /// Requests larger than this are refused as grpc.aio refuses them (RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
    /// Admitted tokens and sessions kept, each.
    pub capacity: usize,
    pub redis_url: String,
    #[serde(default)]
    pub redis_password: Option<String>,
    pub deny_prefix: String,
    pub positions_prefix: String,
    pub update_stream: String,
    pub update_script: String,
    pub stream_max_len: u64,
    pub idle_ms: u64,
    pub finished_fraction: f64,
    pub position_slack_ms: i64,
    pub max_clock_skew_micros: i64,
    pub earliest_event_seconds: i64,
}

impl IngestConfig {
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("ingest config: {e}")))?;
        if !config.method.starts_with('/') || config.peer_secret.len() < 16 {
            return Err(Error::InvalidArgument(
                "ingest config: method must be a full gRPC path and peer_secret at least 16 characters".into(),
            ));
        }
        Ok(config)
    }

    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            backend: "127.0.0.1:1".into(),
            method: "/marquee.v1.PlaybackService/UpdatePosition".into(),
            peer_secret: "0123456789abcdef".into(),
            max_message_bytes: 4 << 20,
            capacity: 100,
            redis_url: "redis://127.0.0.1:1/0".into(),
            redis_password: None,
            deny_prefix: "marquee:deny:".into(),
            positions_prefix: "marquee:pos:".into(),
            update_stream: "marquee:bus:playback.update".into(),
            update_script: "return {1}".into(),
            stream_max_len: 1000,
            idle_ms: 1000,
            finished_fraction: 0.95,
            position_slack_ms: 1000,
            max_clock_skew_micros: 1_000_000,
            earliest_event_seconds: 946_684_800,
        }
    }
}

//! Edge configuration, deserialised from the JSON the Python control plane (`edge.config.EdgeConfig`) writes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::geo::GeoConfig;
use super::policy::PolicyKind;
use crate::token::Keyring;

/// Where misses are fetched from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UpstreamConfig {
    /// The origin store on local disk: objects are files below `root`.
    Dir { root: String },
    /// Another edge (a shield) or an HTTP origin: `{base_url}{key}`, e.g. `http://127.0.0.1:8081/v/`.
    Http { base_url: String },
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_prefix() -> String {
    "/v/".into()
}
fn default_workers() -> usize {
    2
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_retries() -> u32 {
    2
}
fn default_backoff_ms() -> u64 {
    100
}
fn default_max_object() -> u64 {
    64 << 20
}
fn default_header_bytes() -> usize {
    16 << 10
}
fn default_headers() -> usize {
    64
}
fn default_policy() -> PolicyKind {
    PolicyKind::S3fifo
}
fn default_cors() -> String {
    "*".into()
}
fn default_token_param() -> String {
    "token".into()
}
fn default_revoked_capacity() -> usize {
    1_000_000
}

/// Everything one edge process needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Name in logs and the `X-Cache` header (`edge-a`, `shield`).
    pub name: String,
    #[serde(default = "default_host")]
    pub host: String,
    /// 0 picks a free port.
    #[serde(default)]
    pub port: u16,
    /// URL prefix served; the rest of the path is the cache key and the object's path upstream.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    pub upstream: UpstreamConfig,
    /// Memory tier size in bytes.
    pub memory_bytes: u64,
    /// Disk tier size in bytes (0 disables it).
    #[serde(default)]
    pub disk_bytes: u64,
    /// Disk tier directory (required when `disk_bytes` > 0).
    #[serde(default)]
    pub disk_dir: Option<String>,
    #[serde(default = "default_policy")]
    pub policy: PolicyKind,
    /// Objects larger than this are streamed through without being cached.
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// Runtime worker threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    #[serde(default = "default_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Retries after the first attempt, for connection errors, timeouts and 5xx before any byte arrived.
    #[serde(default = "default_retries")]
    pub upstream_retries: u32,
    /// First retry delay; doubles per retry.
    #[serde(default = "default_backoff_ms")]
    pub upstream_backoff_ms: u64,
    /// Request head limits (431 beyond them).
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_headers")]
    pub max_headers: usize,
    /// Per-connection egress cap in bytes/s (0 = none); can be changed while running.
    #[serde(default)]
    pub rate_limit_bytes_per_sec: u64,
    /// Players' signed URL verification keys, id -> hex secret. Empty: players are not served (unless no key
    /// of any kind is configured, as in benchmarks and tests of the cache alone).
    #[serde(default)]
    pub token_keys: BTreeMap<String, String>,
    #[serde(default = "default_token_param")]
    pub token_param: String,
    /// Fill credential keys shared by the edges and their shield, id -> hex secret: a shield accepts a request
    /// carrying a valid fill token (the `x-fill-token` header) from an edge; an edge signs one per fetch from an
    /// HTTP upstream with `fill_signing_kid`.
    #[serde(default)]
    pub fill_keys: BTreeMap<String, String>,
    #[serde(default)]
    pub fill_signing_kid: String,
    /// Most revoked playback sessions remembered; each is forgotten once its tokens have expired.
    #[serde(default = "default_revoked_capacity")]
    pub revoked_capacity: usize,
    /// Where clients are: checked against the licensed regions a token carries (none: every such token is
    /// refused, the region being unknown).
    #[serde(default)]
    pub geo: Option<GeoConfig>,
    /// `Access-Control-Allow-Origin`.
    #[serde(default = "default_cors")]
    pub cors_origin: String,
    /// Where the playback sessions' raw content keys are (playback's manifest endpoint, e.g.
    /// `https://play.example`): a protected title's media playlists then also announce
    /// `{key_uri_base}/sessions/{session}/keys/{kid}` with `KEYFORMAT="identity"`. Empty: not announced.
    #[serde(default)]
    pub key_uri_base: String,
}

impl EdgeConfig {
    /// The keyring verifying players' signed URLs (None: players need no token, or are not served).
    pub fn player_keyring(&self) -> crate::Result<Option<Keyring>> {
        keyring(&self.token_keys, "")
    }

    /// The keyring of fill credentials: verifies them here, signs them for this edge's HTTP upstream.
    pub fn fill_keyring(&self) -> crate::Result<Option<Keyring>> {
        keyring(&self.fill_keys, &self.fill_signing_kid)
    }

    pub fn from_json(text: &str) -> crate::Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| crate::Error::InvalidArgument(format!("edge config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::InvalidArgument(format!("edge config: {m}")));
        if !(self.prefix.starts_with('/') && self.prefix.ends_with('/')) {
            return bad("prefix must start and end with '/'");
        }
        if self.disk_bytes > 0 && self.disk_dir.is_none() {
            return bad("disk_dir is required when disk_bytes > 0");
        }
        if self.workers == 0 || self.workers > 256 {
            return bad("workers must be 1..=256");
        }
        if self.max_header_bytes < 8192 {
            return bad("max_header_bytes must be at least 8192");
        }
        if self.max_headers == 0 {
            return bad("max_headers must be at least 1");
        }
        if !self.fill_signing_kid.is_empty() && !self.fill_keys.contains_key(&self.fill_signing_kid)
        {
            return bad("fill_signing_kid is not one of fill_keys");
        }
        if self.revoked_capacity == 0 {
            return bad("revoked_capacity must be at least 1");
        }
        if let UpstreamConfig::Http { base_url } = &self.upstream {
            if !(base_url.starts_with("http://") && base_url.ends_with('/')) {
                return bad("upstream base_url must be http://... ending with '/'");
            }
        }
        Ok(())
    }
}

/// A keyring from hex secrets by key id, signing with `signing_kid` (the first key when empty); None when empty.
fn keyring(keys: &BTreeMap<String, String>, signing_kid: &str) -> crate::Result<Option<Keyring>> {
    let Some(first) = keys.keys().next() else {
        return Ok(None);
    };
    let mut decoded = Vec::with_capacity(keys.len());
    for (kid, hex) in keys {
        let secret = decode_hex(hex).ok_or_else(|| {
            crate::Error::InvalidArgument(format!("edge config: key {kid} is not hex"))
        })?;
        decoded.push((kid.clone(), secret));
    }
    let signing = if signing_kid.is_empty() {
        first.clone()
    } else {
        signing_kid.to_owned()
    };
    Keyring::new(decoded, &signing).map(Some)
}

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

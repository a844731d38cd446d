//! Signed URL tokens: HMAC-SHA256 over an expiry, a path ACL with wildcards, an optional session id, optional
//! licensed regions and a key id.
//!
//! Wire form (URL-safe, no padding, at most [`MAX_TOKEN_LEN`] bytes):
//!
//! ```text
//! v1.{kid}.{expires_at}.{acl}.{sid}.{sig}            no regions
//! v2.{kid}.{expires_at}.{acl}.{sid}.{regions}.{sig}  the token serves clients in these regions only
//! ```
//!
//! - `kid`: the signing key's id, `[A-Za-z0-9_-]{1,32}` (rotation: verifiers hold several keys);
//! - `expires_at`: unix seconds, decimal;
//! - `acl`: base64url of the ACL patterns joined with `!`; each pattern is an absolute path where `*` matches
//!   any run of characters, `/` included (`/v/bbb/*` covers a title's manifests and every segment);
//! - `sid`: base64url of the session id, empty when the token is not bound to a session;
//! - `regions` (v2): base64url of ISO 3166-1 alpha-2 codes joined with `,` (the title's licensed regions; the
//!   verifier checks the client's region against them, see [`region_allowed`]);
//! - `sig`: base64url of HMAC-SHA256(key, everything before the last `.`), so every other byte is covered.
//!
//! Verification order is fixed so that a tampered token is always reported as invalid, never as expired or
//! forbidden: parse, key lookup, MAC (constant time), expiry, path ACL, session.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Longest accepted token text.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Most ACL patterns in one token.
pub const MAX_ACL_PATTERNS: usize = 16;
/// Longest ACL pattern or checked path.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Longest session id.
pub const MAX_SESSION_LEN: usize = 256;
/// Shortest accepted key.
pub const MIN_KEY_LEN: usize = 16;
/// Most regions in one token.
pub const MAX_REGIONS: usize = 300;
const VERSION: &str = "v1";
const VERSION_REGIONS: &str = "v2";

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kid: String,
    pub expires_at: u64,
    pub acl: Vec<String>,
    pub session_id: Option<String>,
    /// Regions whose clients the token serves (empty: anywhere).
    pub regions: Vec<String>,
}

fn valid_region(region: &str) -> bool {
    region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether a client in `region` ("" when unknown) may use a token for `allowed` regions (empty: anywhere).
pub fn region_allowed(allowed: &[String], region: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|r| r == region)
}

/// Signing and verification keys by id, and the id new tokens are signed with.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<String, Vec<u8>>,
    signing_kid: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print key material
        f.debug_struct("Keyring")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("signing_kid", &self.signing_kid)
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 32
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Keyring {
    /// A keyring from `(kid, secret)` pairs; `signing_kid` must be one of them.
    pub fn new<I, K, S>(keys: I, signing_kid: &str) -> Result<Self>
    where
        I: IntoIterator<Item = (K, S)>,
        K: Into<String>,
        S: Into<Vec<u8>>,
    {
        let mut map = BTreeMap::new();
        for (kid, secret) in keys {
            let kid = kid.into();
            let secret = secret.into();
            if !valid_kid(&kid) {
                return Err(Error::InvalidArgument(format!(
                    "key id {kid:?} must match [A-Za-z0-9_-]{{1,32}}"
                )));
            }
            if secret.len() < MIN_KEY_LEN {
                return Err(Error::InvalidArgument(format!(
                    "key {kid:?} is shorter than {MIN_KEY_LEN} bytes"
                )));
            }
            map.insert(kid, secret);
        }
        if !map.contains_key(signing_kid) {
            return Err(Error::InvalidArgument(format!(
                "signing key id {signing_kid:?} is not in the keyring"
            )));
        }
        Ok(Self {
            keys: map,
            signing_kid: signing_kid.to_owned(),
        })
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    fn mac(&self, kid: &str) -> Result<HmacSha256> {
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
        HmacSha256::new_from_slice(key).map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}

/// Rejects paths that are not absolute and normalised: `..` or `.` segments, `//`, NUL, backslashes, and
/// over-long paths. Callers (the edge) normalise and percent-decode before checking.
pub fn check_path(path: &str) -> Result<()> {
    if path.len() > MAX_PATTERN_LEN {
        return Err(Error::InvalidArgument(format!(
            "path is longer than {MAX_PATTERN_LEN} bytes"
        )));
    }
    if !path.starts_with('/') {
        return Err(Error::InvalidArgument("path must start with '/'".into()));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(Error::InvalidArgument(
            "path contains a NUL or a backslash".into(),
        ));
    }
    if path.contains("//") {
        return Err(Error::InvalidArgument(
            "path contains an empty segment".into(),
        ));
    }
    if path[1..].split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Error::InvalidArgument(
            "path contains a '.' or '..' segment".into(),
        ));
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<()> {
    if pattern.is_empty() || !pattern.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "ACL pattern {pattern:?} must start with '/'"
        )));
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(Error::InvalidArgument(format!(
            "ACL pattern is longer than {MAX_PATTERN_LEN} bytes"
        )));
    }
    if pattern.contains('!') || pattern.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "ACL pattern {pattern:?} contains '!' or NUL"
        )));
    }
    Ok(())
}

/// Whether `pattern` (with `*` wildcards matching any run of characters, `/` included) matches all of `path`.
///
/// Linear time in `pattern.len() * path.len()` at worst, with no backtracking blow-up: the classic greedy
/// matcher that remembers only the last star.
pub fn acl_matches(pattern: &str, path: &str) -> bool {
    let p = pattern.as_bytes();
    let s = path.as_bytes();
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = si;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Signs `claims` with the key `claims.kid` (use [`Keyring::signing_kid`] for new tokens).
pub fn sign(keyring: &Keyring, claims: &Claims) -> Result<String> {
    if !valid_kid(&claims.kid) {
        return Err(Error::InvalidArgument(format!(
            "key id {:?} is malformed",
            claims.kid
        )));
    }
    if claims.acl.is_empty() || claims.acl.len() > MAX_ACL_PATTERNS {
        return Err(Error::InvalidArgument(format!(
            "a token needs 1 to {MAX_ACL_PATTERNS} ACL patterns"
        )));
    }
    for pattern in &claims.acl {
        check_pattern(pattern)?;
    }
    let sid = match &claims.session_id {
        Some(s) if s.is_empty() || s.len() > MAX_SESSION_LEN => {
            return Err(Error::InvalidArgument(format!(
                "session id must be 1 to {MAX_SESSION_LEN} bytes"
            )))
        }
        Some(s) => URL_SAFE_NO_PAD.encode(s.as_bytes()),
        None => String::new(),
    };
    if claims.regions.len() > MAX_REGIONS || !claims.regions.iter().all(|r| valid_region(r)) {
        return Err(Error::InvalidArgument(format!(
            "regions must be at most {MAX_REGIONS} ISO 3166-1 alpha-2 codes"
        )));
    }
    let acl = URL_SAFE_NO_PAD.encode(claims.acl.join("!").as_bytes());
    let body = if claims.regions.is_empty() {
        format!("{VERSION}.{}.{}.{acl}.{sid}", claims.kid, claims.expires_at)
    } else {
        let regions = URL_SAFE_NO_PAD.encode(claims.regions.join(",").as_bytes());
        format!(
            "{VERSION_REGIONS}.{}.{}.{acl}.{sid}.{regions}",
            claims.kid, claims.expires_at
        )
    };
    let mut mac = keyring.mac(&claims.kid)?;
    mac.update(body.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let token = format!("{body}.{sig}");
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::InvalidArgument(format!(
            "the token would be longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    Ok(token)
}

fn invalid(msg: &str) -> Error {
    Error::TokenInvalid(msg.to_owned())
}

fn decode_text(part: &str, what: &str) -> Result<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(&format!("{what} is not base64url")))?;
    String::from_utf8(bytes).map_err(|_| invalid(&format!("{what} is not UTF-8")))
}

/// Parses and authenticates `token` without checking expiry, path or session.
pub fn authenticate(keyring: &Keyring, token: &str) -> Result<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid("token is too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let regions = match (parts.len(), parts.first().copied()) {
        (6, Some(VERSION)) => None,
        (7, Some(VERSION_REGIONS)) => Some(parts[5]),
        _ => return Err(invalid("token is not a v1 or v2 token")),
    };
    let (kid, exp, acl, sid) = (parts[1], parts[2], parts[3], parts[4]);
    let sig = parts[parts.len() - 1];
    if !valid_kid(kid) {
        return Err(invalid("key id is malformed"));
    }
    let mut mac = keyring.mac(kid)?;
    let body_len = token.len() - sig.len() - 1;
    mac.update(&token.as_bytes()[..body_len]);
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| invalid("signature is not base64url"))?;
    mac.verify_slice(&sig_bytes)
        .map_err(|_| invalid("signature does not match"))?;
    // Authentic from here on: the remaining checks only guard against our own signer's bugs.
    if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("expiry is malformed"));
    }
    let expires_at: u64 = exp.parse().map_err(|_| invalid("expiry is malformed"))?;
    let acl_text = decode_text(acl, "ACL")?;
    let patterns: Vec<String> = acl_text.split('!').map(str::to_owned).collect();
    if patterns.is_empty() || patterns.len() > MAX_ACL_PATTERNS {
        return Err(invalid("ACL has too many patterns"));
    }
    for p in &patterns {
        check_pattern(p).map_err(|_| invalid("ACL pattern is malformed"))?;
    }
    let session_id = if sid.is_empty() {
        None
    } else {
        Some(decode_text(sid, "session id")?)
    };
    let regions: Vec<String> = match regions {
        None => Vec::new(),
        Some(text) => decode_text(text, "regions")?
            .split(',')
            .map(str::to_owned)
            .collect(),
    };
    if regions.len() > MAX_REGIONS || !regions.iter().all(|r| valid_region(r)) {
        return Err(invalid("regions are malformed"));
    }
    Ok(Claims {
        kid: kid.to_owned(),
        expires_at,
        acl: patterns,
        session_id,
        regions,
    })
}

/// Verifies that `token` is authentic, unexpired at `now` (unix seconds), grants `path`, and, when both the
/// token and the caller carry a session id, that they are the same session.
pub fn verify(
    keyring: &Keyring,
    token: &str,
    path: &str,
    now: u64,
    session_id: Option<&str>,
) -> Result<Claims> {
    let claims = authenticate(keyring, token)?;
    if now >= claims.expires_at {
        return Err(Error::TokenExpired {
            expires_at: claims.expires_at,
        });
    }
    check_path(path).map_err(|e| Error::TokenForbidden(e.to_string()))?;
    if !claims.acl.iter().any(|p| acl_matches(p, path)) {
        return Err(Error::TokenForbidden(format!(
            "the token does not cover {path}"
        )));
    }
    if let (Some(expected), Some(actual)) = (claims.session_id.as_deref(), session_id) {
        if expected != actual {
            return Err(Error::TokenForbidden(
                "the token belongs to another session".into(),
            ));
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring() -> Keyring {
        Keyring::new([("k1", b"0123456789abcdef0123".to_vec())], "k1").unwrap()
    }

    #[test]
    fn round_trip() {
        let claims = Claims {
            kid: "k1".into(),
            expires_at: 100,
            acl: vec!["/v/bbb/*".into()],
            session_id: Some("s1".into()),
            regions: vec![],
        };
        let token = sign(&ring(), &claims).unwrap();
        assert!(token.starts_with("v1."));
        assert_eq!(
            verify(&ring(), &token, "/v/bbb/720p/seg-1.m4s", 99, Some("s1")).unwrap(),
            claims
        );
        let licensed = Claims {
            regions: vec!["JP".into(), "KR".into()],
            ..claims
        };
        let token = sign(&ring(), &licensed).unwrap();
        assert!(token.starts_with("v2."));
        let got = verify(&ring(), &token, "/v/bbb/720p/seg-1.m4s", 99, Some("s1")).unwrap();
        assert_eq!(got, licensed);
        assert!(region_allowed(&got.regions, "KR") && !region_allowed(&got.regions, "US"));
        assert!(
            !region_allowed(&got.regions, ""),
            "an unknown region is no licensed region"
        );
        assert!(region_allowed(&[], ""));
        // the regions are signed: dropping them (a v1 token of the same parts) is a bad signature
        let parts: Vec<&str> = token.split('.').collect();
        let stripped = format!(
            "v1.{}.{}.{}.{}.{}",
            parts[1], parts[2], parts[3], parts[4], parts[6]
        );
        assert!(matches!(
            verify(&ring(), &stripped, "/v/bbb/x", 0, None),
            Err(Error::TokenInvalid(_))
        ));
        let bad = Claims {
            regions: vec!["jp".into()],
            ..licensed
        };
        assert!(sign(&ring(), &bad).is_err());
    }

    #[test]
    fn wildcards() {
        assert!(acl_matches("/v/bbb/*", "/v/bbb/master.m3u8"));
        assert!(acl_matches("/v/bbb/*", "/v/bbb/720p/seg-1.m4s"));
        assert!(!acl_matches("/v/bbb/*", "/v/bbbx/a"));
        assert!(!acl_matches("/v/bbb/*", "/v/bbb"));
        assert!(acl_matches("/v/*/init.mp4", "/v/a/720p/init.mp4"));
        assert!(acl_matches("/exact", "/exact"));
        assert!(!acl_matches("/exact", "/exact/"));
        assert!(acl_matches("*", "/anything"));
    }
}

//! Request paths to cache keys: percent-decoded once, normalised, and unable to leave the cache root.
//!
//! The edge serves `{prefix}{title}/{rendition}/{file}` (prefix `/v/`); the key is the part after the prefix,
//! which is also the object's path below the origin root. Every segment must be made of `[A-Za-z0-9._-]`, must
//! not start with `.` (so `.`, `..` and hidden entries such as the origin's `.staging` are unreachable), and
//! decoding never produces `/`, `\` or NUL (an encoded separator is a different name, refused outright).

/// Longest accepted request path (before decoding).
pub const MAX_PATH_LEN: usize = 1024;
/// Most segments in a key.
pub const MAX_SEGMENTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not under the served prefix: 404.
    NotServed,
    /// Malformed or hostile: 400, with the reason.
    Invalid(&'static str),
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::Invalid("bad percent-encoding"));
            };
            let b = h * 16 + l;
            if matches!(b, b'/' | b'\\' | 0 | b'%') {
                return Err(PathError::Invalid("encoded separator, NUL or percent"));
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Invalid("path is not UTF-8"))
}

fn segment_ok(seg: &str) -> bool {
    !seg.is_empty()
        && !seg.starts_with('.')
        && seg.len() <= 128
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The cache key of request path `raw` (without the query) under `prefix` (which starts and ends with `/`).
pub fn cache_key(raw: &str, prefix: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::Invalid("path too long"));
    }
    let decoded = percent_decode(raw)?;
    let Some(rest) = decoded.strip_prefix(prefix) else {
        return Err(PathError::NotServed);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() < 2 || segments.len() > MAX_SEGMENTS {
        return Err(PathError::NotServed);
    }
    if !segments.iter().all(|s| segment_ok(s)) {
        return Err(PathError::Invalid(
            "path segments must be [A-Za-z0-9._-], not empty, not starting with '.'",
        ));
    }
    Ok(rest.to_owned())
}

/// The title (first segment) of a cache key.
pub fn title_of(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let p = "/v/";
        assert_eq!(
            cache_key("/v/bbb/720p/seg-1.m4s", p),
            Ok("bbb/720p/seg-1.m4s".into())
        );
        assert_eq!(
            cache_key("/v/bbb/720p/seg%2D1.m4s", p),
            Ok("bbb/720p/seg-1.m4s".into())
        );
        for bad in [
            "/v/bbb/../secret",
            "/v/bbb/%2e%2e/secret",
            "/v/bbb/%2E%2E/x",
            "/v/bbb/..%2fsecret",
            "/v/bbb/%2fetc",
            "/v/bbb/x%5c..",
            "/v/bbb/x%00",
            "/v/bbb//x",
            "/v/.staging/x",
            "/v/bbb/./x",
            "/v/bbb/x%",
            "/v/bbb/x%zz",
            "/v/bbb/%25",
            "/v/bbb/caf%C3%A9",
        ] {
            assert!(
                matches!(cache_key(bad, p), Err(PathError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(cache_key("/other/x/y", p), Err(PathError::NotServed));
        assert_eq!(cache_key("/v/only", p), Err(PathError::NotServed));
        assert_eq!(title_of("bbb/720p/seg-1.m4s"), "bbb");
    }
}

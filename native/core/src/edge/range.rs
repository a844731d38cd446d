//! `Range` request header parsing (RFC 9110 §14), overflow-safe, for one representation of known length.
//!
//! Only single byte ranges are served as 206. A header with several ranges gets the whole representation (200):
//! RFC 9110 lets a server ignore `Range`, and it is the answer that cannot be abused (no multipart, no
//! overlapping-range amplification). Units other than `bytes` are ignored the same way.

/// Most bytes of a `Range` header looked at; longer headers are ignored (served whole).
pub const MAX_RANGE_HEADER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole representation (no header, several ranges, another unit).
    Full,
    /// Serve bytes `start..=end` (206); always within the representation.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // numbers too large for u64 saturate: they can only mean "to the end" or "unsatisfiable"
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// What to serve for `header` against a representation of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> RangeOutcome {
    if header.len() > MAX_RANGE_HEADER {
        return RangeOutcome::Full;
    }
    let Some((unit, set)) = header.split_once('=') else {
        return RangeOutcome::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match specs.as_slice() {
        [] => RangeOutcome::Unsatisfiable,
        [one] => single(one, len),
        // several ranges: every one must at least be well formed, then the whole body is the answer
        many => {
            if many
                .iter()
                .all(|s| single(s, u64::MAX) != RangeOutcome::Unsatisfiable)
            {
                RangeOutcome::Full
            } else {
                RangeOutcome::Unsatisfiable
            }
        }
    }
}

fn single(spec: &str, len: u64) -> RangeOutcome {
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // suffix range: the last N bytes
        let Some(n) = digits(last) else {
            return RangeOutcome::Unsatisfiable;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeOutcome::Partial {
            start: len - n,
            end: len - 1,
        };
    }
    let Some(start) = digits(first) else {
        return RangeOutcome::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(e) if e >= start => e,
            _ => return RangeOutcome::Unsatisfiable, // reversed or malformed
        }
    };
    if start >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    #[test]
    fn table() {
        let len = 1000;
        let cases = [
            ("bytes=0-99", Partial { start: 0, end: 99 }),
            (
                "bytes=100-",
                Partial {
                    start: 100,
                    end: 999,
                },
            ),
            (
                "bytes=-100",
                Partial {
                    start: 900,
                    end: 999,
                },
            ),
            ("bytes=-5000", Partial { start: 0, end: 999 }),
            (
                "bytes=0-18446744073709551615",
                Partial { start: 0, end: 999 },
            ),
            (
                "bytes=0-99999999999999999999999",
                Partial { start: 0, end: 999 },
            ),
            (
                "bytes=999-999",
                Partial {
                    start: 999,
                    end: 999,
                },
            ),
            ("BYTES = 5-9", Partial { start: 5, end: 9 }),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=18446744073709551615-", Unsatisfiable),
            ("bytes=5-1", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=-", Unsatisfiable),
            ("bytes=--5", Unsatisfiable),
            ("bytes=a-b", Unsatisfiable),
            ("bytes=", Unsatisfiable),
            ("bytes", Unsatisfiable),
            ("bytes=0-1,2-3", Full),
            ("bytes=0-1,5-2", Unsatisfiable),
            ("items=0-5", Full),
        ];
        for (header, want) in cases {
            assert_eq!(parse_range(header, len), want, "{header}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
    }
}

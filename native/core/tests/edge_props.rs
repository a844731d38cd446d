//! Property tests over the edge's input parsing: byte ranges and request paths.

use marquee_core::edge::path::cache_key;
use marquee_core::edge::range::{parse_range, RangeOutcome};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn any_range_header_is_safe(header in ".{0,80}", len in any::<u64>()) {
        if let RangeOutcome::Partial { start, end } = parse_range(&header, len) {
            prop_assert!(start <= end && end < len);
        }
    }

    #[test]
    fn byte_range_shapes(header in "bytes=[0-9]{0,22}-[0-9]{0,22}(,[0-9]{0,3}-[0-9]{0,3}){0,3}", len in 0u64..5000) {
        if let RangeOutcome::Partial { start, end } = parse_range(&header, len) {
            prop_assert!(start <= end && end < len);
        }
    }

    #[test]
    fn satisfiable_ranges_are_served_exactly(len in 1u64..1_000_000, a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (a % len, b % len);
        let (start, end) = (a.min(b), a.max(b));
        prop_assert_eq!(
            parse_range(&format!("bytes={start}-{end}"), len),
            RangeOutcome::Partial { start, end }
        );
    }

    #[test]
    fn keys_never_leave_the_root(raw in "(/v/)?([A-Za-z0-9._%/\\\\-]|%2[eEfF]|%5[cC]|%00|\\.\\.){0,40}") {
        if let Ok(key) = cache_key(&raw, "/v/") {
            let root = std::path::Path::new("/srv/origin");
            let joined = root.join(&key);
            prop_assert!(joined.starts_with(root));
            for part in key.split('/') {
                prop_assert!(!part.is_empty() && !part.starts_with('.'));
                prop_assert!(part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            }
        }
    }

    #[test]
    fn percent_encoding_a_valid_key_changes_nothing(
        parts in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,12}", 2..6),
        mask in any::<u64>(),
    ) {
        let key = parts.join("/");
        let encoded: String = key
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if b != b'/' && mask >> (i % 64) & 1 == 1 { format!("%{b:02X}") } else { (b as char).to_string() }
            })
            .collect();
        prop_assert_eq!(cache_key(&format!("/v/{encoded}"), "/v/"), Ok(key));
    }
}

//! Property tests for signed URL tokens: tampering, expiry, wildcards, rotation, sessions, hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use marquee_core::token::{acl_matches, check_path, sign, verify, Claims, Keyring};
use marquee_core::Error;
use proptest::prelude::*;

fn ring(kids: &[&str], signing: &str) -> Keyring {
    Keyring::new(
        kids.iter().map(|k| {
            (
                k.to_string(),
                format!("secret-for-{k}-0123456789").into_bytes(),
            )
        }),
        signing,
    )
    .unwrap()
}

fn claims(exp: u64, acl: &[&str], sid: Option<&str>) -> Claims {
    Claims {
        kid: "k1".into(),
        expires_at: exp,
        acl: acl.iter().map(|s| s.to_string()).collect(),
        session_id: sid.map(str::to_owned),
        regions: Vec::new(),
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,12}(\\.[a-z0-9]{1,4})?"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..6).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_rejected_as_invalid(
        exp in 1_000u64..u64::MAX / 2,
        sid in proptest::option::of("[a-zA-Z0-9]{1,20}"),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let keys = ring(&["k1"], "k1");
        let token = sign(&keys, &claims(exp, &["/v/t/*"], sid.as_deref())).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let Ok(tampered) = String::from_utf8(bytes) else { return Ok(()); };
        // a valid path, an unexpired time and the right session: only the tampering can fail it
        let result = verify(&keys, &tampered, "/v/t/seg-1.m4s", 0, sid.as_deref());
        match result {
            Err(Error::TokenInvalid(_)) | Err(Error::UnknownKey(_)) => {}
            other => prop_assert!(false, "tampered token at byte {i} gave {other:?}"),
        }
    }

    #[test]
    fn expiry_is_exact(exp in 1u64..u64::MAX - 1) {
        let keys = ring(&["k1"], "k1");
        let token = sign(&keys, &claims(exp, &["/a/*"], None)).unwrap();
        prop_assert!(verify(&keys, &token, "/a/b", exp - 1, None).is_ok());
        prop_assert_eq!(verify(&keys, &token, "/a/b", exp, None), Err(Error::TokenExpired { expires_at: exp }));
    }

    #[test]
    fn prefix_star_matches_exactly_the_extensions(prefix in path(), rest in "[a-z0-9/._-]{0,30}", other in path()) {
        let pattern = format!("{prefix}/*");
        let extended = format!("{prefix}/{rest}");
        prop_assert!(acl_matches(&pattern, &extended));
        let is_extension = other.starts_with(&format!("{prefix}/"));
        prop_assert_eq!(acl_matches(&pattern, &other), is_extension);
    }

    #[test]
    fn matching_never_blows_up(pattern in "[*a/]{0,64}", path in "[a/]{0,256}") {
        // correctness against a simple reference (regex-free DP)
        prop_assert_eq!(acl_matches(&pattern, &path), reference_match(pattern.as_bytes(), path.as_bytes()));
    }

    #[test]
    fn arbitrary_input_never_panics(token in ".{0,600}", path in ".{0,300}") {
        let keys = ring(&["k1"], "k1");
        let _ = verify(&keys, &token, &path, 0, None);
        let _ = check_path(&path);
    }
}

fn reference_match(p: &[u8], s: &[u8]) -> bool {
    let mut dp = vec![vec![false; s.len() + 1]; p.len() + 1];
    dp[0][0] = true;
    for i in 1..=p.len() {
        if p[i - 1] == b'*' {
            dp[i][0] = dp[i - 1][0];
        }
        for j in 1..=s.len() {
            dp[i][j] = if p[i - 1] == b'*' {
                dp[i - 1][j] || dp[i][j - 1]
            } else {
                dp[i - 1][j - 1] && p[i - 1] == s[j - 1]
            };
        }
    }
    dp[p.len()][s.len()]
}

#[test]
fn key_rotation() {
    let old = ring(&["k1"], "k1");
    let token = sign(&old, &claims(100, &["/v/*"], None)).unwrap();
    let rotated = ring(&["k1", "k2"], "k2");
    assert!(
        verify(&rotated, &token, "/v/x", 1, None).is_ok(),
        "old kid verifies while in the ring"
    );
    let mut new_claims = claims(100, &["/v/*"], None);
    new_claims.kid = rotated.signing_kid().to_owned();
    let new_token = sign(&rotated, &new_claims).unwrap();
    assert!(new_token.starts_with("v1.k2."));
    let retired = ring(&["k2"], "k2");
    assert_eq!(
        verify(&retired, &token, "/v/x", 1, None),
        Err(Error::UnknownKey("k1".into()))
    );
    assert!(verify(&retired, &new_token, "/v/x", 1, None).is_ok());
    // a different secret under the same kid is a forgery
    let forged = Keyring::new([("k1", b"another-secret-0123456789".to_vec())], "k1").unwrap();
    assert!(matches!(
        verify(&forged, &token, "/v/x", 1, None),
        Err(Error::TokenInvalid(_))
    ));
}

#[test]
fn session_binding() {
    let keys = ring(&["k1"], "k1");
    let bound = sign(&keys, &claims(100, &["/v/*"], Some("sess-1"))).unwrap();
    assert!(verify(&keys, &bound, "/v/x", 1, Some("sess-1")).is_ok());
    assert!(
        verify(&keys, &bound, "/v/x", 1, None).is_ok(),
        "no session to compare with"
    );
    assert!(matches!(
        verify(&keys, &bound, "/v/x", 1, Some("sess-2")),
        Err(Error::TokenForbidden(_))
    ));
}

#[test]
fn paths_must_be_normalised() {
    let keys = ring(&["k1"], "k1");
    let token = sign(&keys, &claims(100, &["/v/t/*"], None)).unwrap();
    for bad in [
        "/v/t/../u/seg",
        "/v/t/./seg",
        "/v/t//seg",
        "v/t/seg",
        "/v/t/a\\b",
        "/v/t/\0",
    ] {
        assert!(
            matches!(
                verify(&keys, &token, bad, 1, None),
                Err(Error::TokenForbidden(_))
            ),
            "{bad:?} must be refused"
        );
    }
    assert!(matches!(
        verify(&keys, &token, "/v/u/seg", 1, None),
        Err(Error::TokenForbidden(_))
    ));
}

#[test]
fn tampered_token_is_never_expired_or_forbidden() {
    let keys = ring(&["k1"], "k1");
    let token = sign(&keys, &claims(10, &["/v/t/*"], None)).unwrap();
    // move the expiry: the MAC fails first, although the token is also past its expiry
    let moved = token.replacen(".10.", ".11.", 1);
    assert!(matches!(
        verify(&keys, &moved, "/elsewhere", 50, None),
        Err(Error::TokenInvalid(_))
    ));
}

#[test]
fn sign_rejects_bad_claims() {
    let keys = ring(&["k1"], "k1");
    assert!(sign(&keys, &claims(1, &[], None)).is_err());
    assert!(sign(&keys, &claims(1, &["relative"], None)).is_err());
    assert!(sign(&keys, &claims(1, &["/a!b"], None)).is_err());
    assert!(sign(&keys, &claims(1, &["/a"; 17], None)).is_err());
    assert!(Keyring::new([("k1", b"short".to_vec())], "k1").is_err());
    assert!(Keyring::new([("bad kid", b"0123456789abcdef".to_vec())], "bad kid").is_err());
    assert!(Keyring::new([("k1", b"0123456789abcdef".to_vec())], "k2").is_err());
}

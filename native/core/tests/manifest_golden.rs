//! Golden-file tests for the HLS and DASH writers. Set UPDATE_GOLDEN=1 to rewrite the expected files after an
//! intended change, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use marquee_core::manifest::{Pathway, Presentation, RenderOptions, Steering};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn sample() -> Presentation {
    Presentation::from_json(&std::fs::read_to_string(dir().join("sample.json")).unwrap()).unwrap()
}

fn check(name: &str, actual: &str) {
    let path = dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden file {name}"));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

fn steered() -> RenderOptions {
    RenderOptions {
        token: Some(("token".into(), "v1.k1.99.L3Yvc2FtcGxlLyo..sig".into())),
        pathways: vec![
            Pathway {
                id: "edge-a".into(),
                base_uri: "http://127.0.0.1:8081/v/sample/".into(),
            },
            Pathway {
                id: "edge-b".into(),
                base_uri: "http://127.0.0.1:8082/v/sample".into(),
            },
        ],
        steering: Some(Steering {
            server_uri: "http://127.0.0.1:8090/steering/hls?session=s1&x=1".into(),
            default_pathway: "edge-a".into(),
        }),
        max_height: None,
        license_url: None,
        key_uri: None,
        aes128: false,
    }
}

#[test]
fn hls_plain() {
    let p = sample();
    let opts = RenderOptions::default();
    check("master.m3u8", &p.hls_multivariant(&opts).unwrap());
    check("720p.m3u8", &p.hls_media("720p", &opts).unwrap());
    check("720p-iframes.m3u8", &p.hls_iframes("720p", &opts).unwrap());
    check("audio-en.m3u8", &p.hls_media("audio-en", &opts).unwrap());
}

#[test]
fn hls_with_token_and_steering() {
    let p = sample();
    check(
        "master-steered.m3u8",
        &p.hls_multivariant(&steered()).unwrap(),
    );
    let token_only = RenderOptions {
        token: steered().token,
        ..Default::default()
    };
    check(
        "360p-token.m3u8",
        &p.hls_media("360p", &token_only).unwrap(),
    );
}

#[test]
fn dash() {
    let p = sample();
    check("plain.mpd", &p.dash_mpd(&RenderOptions::default()).unwrap());
    check("steered.mpd", &p.dash_mpd(&steered()).unwrap());
}

#[test]
fn resolution_cap_keeps_the_lowest() {
    let p = sample();
    let capped = RenderOptions {
        max_height: Some(480),
        ..Default::default()
    };
    let master = p.hls_multivariant(&capped).unwrap();
    assert!(master.contains("RESOLUTION=640x360") && !master.contains("1280x720"));
    let tiny = RenderOptions {
        max_height: Some(144),
        ..Default::default()
    };
    assert!(p.dash_mpd(&tiny).unwrap().contains("height=\"360\""));
}

#[test]
fn options_that_would_break_out_are_refused() {
    let p = sample();
    for opts in [
        RenderOptions {
            token: Some(("token".into(), "a\"b".into())),
            ..Default::default()
        },
        RenderOptions {
            pathways: vec![Pathway {
                id: "x y".into(),
                base_uri: "http://a/".into(),
            }],
            ..Default::default()
        },
        RenderOptions {
            steering: Some(Steering {
                server_uri: "http://s/".into(),
                default_pathway: "nope".into(),
            }),
            pathways: vec![Pathway {
                id: "a".into(),
                base_uri: "http://a/".into(),
            }],
            ..Default::default()
        },
    ] {
        assert!(p.hls_multivariant(&opts).is_err());
        assert!(p.dash_mpd(&opts).is_err());
    }
    assert!(p.hls_media("1080p", &RenderOptions::default()).is_err());
    assert!(p
        .hls_iframes("audio-en", &RenderOptions::default())
        .is_err());
}

#[test]
fn bad_descriptions_name_the_field() {
    let text = std::fs::read_to_string(dir().join("sample.json")).unwrap();
    for (from, to, words) in [
        ("\"version\": 1", "\"version\": 2", "version"),
        (
            "\"timescale\": 12800",
            "\"timescale\": 0",
            "video[0].timescale",
        ),
        ("\"id\": \"360p\"", "\"id\": \"720p\"", "used twice"),
        (
            "\"media\": \"seg-$Number$.m4s\"",
            "\"media\": \"../seg.m4s\"",
            "video[0].media",
        ),
        (
            "\"codecs\": \"mp4a.40.2\"",
            "\"codecs\": \"\"",
            "audio[0].codecs",
        ),
        (
            "\"frame_rate\": \"25\"",
            "\"frame_rate\": \"fast\"",
            "frame_rate",
        ),
    ] {
        let broken = text.replacen(from, to, 1);
        let err = Presentation::from_json(&broken).unwrap_err().to_string();
        assert!(err.contains(words), "{err} should mention {words}");
    }
    assert!(Presentation::from_json("{").is_err());
    assert!(Presentation::from_json("[]").is_err());
}

/// The sample with a `protection` entry (what the encoder writes for a protected title), with or without the HLS
/// AES-128 variant.
fn protected(scheme: &str, aes128: bool) -> Presentation {
    let text = std::fs::read_to_string(dir().join("sample.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["protection"] = serde_json::json!({
        "scheme": scheme,
        "key_ids": {
            "video": "5a4d0c2b-9d0e-4d1f-8e1c-7b6a5f4e3d2c",
            "audio": "6b5e1d3c-ae1f-5e2f-9f2d-8c7b6a5f4e3d"
        },
        "pssh": {"video": "AAAANHBzc2gBAAAAEHfv7MCyTQKs4zweUuL7SwAAAAFaTQwrnQ5NH44ce2pfTj0sAAAAAA==", "audio": "AAAA"},
        "hls_aes128": aes128
    });
    Presentation::from_json(&doc.to_string()).unwrap()
}

#[test]
fn protected_titles_announce_their_encryption() {
    let p = protected("cenc", false);
    let opts = RenderOptions {
        token: steered().token,
        license_url: Some("https://play.example/license/clearkey?token=t".into()),
        ..Default::default()
    };
    check("protected.mpd", &p.dash_mpd(&opts).unwrap());
    check("protected-720p.m3u8", &p.hls_media("720p", &opts).unwrap());
    check(
        "protected-audio-en.m3u8",
        &p.hls_media("audio-en", &opts).unwrap(),
    );
    let cbcs = protected("cbcs", false).hls_media("720p", &opts).unwrap();
    assert!(cbcs.contains("#EXT-X-KEY:METHOD=SAMPLE-AES,"));
    // with the session's key URI, a second EXT-X-KEY names the raw key (KEYFORMAT "identity")
    let keyed = RenderOptions {
        key_uri: Some("https://play.example/sessions/s1/keys".into()),
        ..opts.clone()
    };
    check(
        "protected-720p-keys.m3u8",
        &p.hls_media("720p", &keyed).unwrap(),
    );
    let bad = RenderOptions {
        key_uri: Some("https://play.example/\"keys".into()),
        ..opts.clone()
    };
    assert!(p.hls_media("720p", &bad).is_err());
    assert!(!sample()
        .hls_media("720p", &keyed)
        .unwrap()
        .contains("EXT-X-KEY"));
    // without a licence URL, ClearKey is still announced (the player is told where to ask by its app)
    let mpd = p.dash_mpd(&RenderOptions::default()).unwrap();
    assert!(
        mpd.contains("urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e") && !mpd.contains("Laurl")
    );
    // clear titles are exactly as before (their golden files above), with no protection namespace
    assert!(!sample()
        .dash_mpd(&opts)
        .unwrap()
        .contains("ContentProtection"));
    assert!(!sample()
        .hls_media("720p", &opts)
        .unwrap()
        .contains("EXT-X-KEY"));
}

#[test]
fn the_aes128_variant_names_whole_segment_keys_and_no_iframes() {
    let p = protected("cenc", true);
    let keyed = RenderOptions {
        token: steered().token,
        key_uri: Some("https://play.example/sessions/s1/keys".into()),
        aes128: true,
        ..Default::default()
    };
    let master = p
        .hls_multivariant(&RenderOptions {
            aes128: true,
            ..steered()
        })
        .unwrap();
    check("aes128-master-steered.m3u8", &master);
    assert!(!master.contains("I-FRAME"));
    assert_eq!(
        master.matches("/index.m3u8").count(),
        master.matches("/aes128/index.m3u8").count()
    );
    check("aes128-720p.m3u8", &p.hls_media("720p", &keyed).unwrap());
    check(
        "aes128-audio-en.m3u8",
        &p.hls_media("audio-en", &keyed).unwrap(),
    );
    // the EME variant of the same title is unchanged by it
    let eme = RenderOptions {
        aes128: false,
        ..keyed.clone()
    };
    assert_eq!(
        p.hls_media("720p", &eme).unwrap(),
        protected("cenc", false).hls_media("720p", &eme).unwrap()
    );
    // no key URI, no I-frames, and titles packaged without the variant (or clear) have none
    let unkeyed = RenderOptions {
        key_uri: None,
        ..keyed.clone()
    };
    assert!(p.hls_media("720p", &unkeyed).is_err());
    assert!(p.hls_iframes("720p", &keyed).is_err());
    for other in [protected("cenc", false), sample()] {
        let err = other.hls_media("720p", &keyed).unwrap_err().to_string();
        assert!(err.contains("no HLS AES-128 variant"), "{err}");
        assert!(other.hls_multivariant(&keyed).is_err());
    }
}

#[test]
fn malformed_protection_is_refused() {
    let text = std::fs::read_to_string(dir().join("sample.json")).unwrap();
    let base: serde_json::Value = serde_json::from_str(&text).unwrap();
    let kid = "5a4d0c2b-9d0e-4d1f-8e1c-7b6a5f4e3d2c";
    for protection in [
        serde_json::json!({"scheme": "cens", "key_ids": {"video": kid, "audio": kid}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid, "audio": "5A4D0C2B-9D0E-4D1F-8E1C-7B6A5F4E3D2C"}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid, "audio": "\"/><x"}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid, "audio": kid, "text": kid}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid, "audio": kid}, "pssh": {"video": "</cenc:pssh>"}}),
        serde_json::json!({"scheme": "cenc", "key_ids": {"video": kid, "audio": kid}, "pssh": {"video": ""}}),
    ] {
        let mut doc = base.clone();
        doc["protection"] = protection.clone();
        assert!(
            Presentation::from_json(&doc.to_string()).is_err(),
            "accepted {protection}"
        );
    }
    let opts = RenderOptions {
        license_url: Some("http://x/\"><y".into()),
        ..Default::default()
    };
    assert!(protected("cenc", false).dash_mpd(&opts).is_err());
}

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

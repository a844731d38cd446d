//! Common Encryption round trips on real encoder output (tests/fixtures/protect, made by make.py there): every
//! scheme and IV size encrypts, the decryptor (which reads only what the files say) restores every sample, and
//! the boxes are where players look for them. Hostile inputs (truncations, flipped bytes) give errors, never
//! panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use marquee_core::protect::decrypt::Decryptor;
use marquee_core::protect::mp4::{boxes, children, BoxRef, Reader};
use marquee_core::protect::{ContentKey, Encryptor, Options, Scheme, TrackKind, COMMON_SYSTEM_ID};
use marquee_core::Error;
use proptest::prelude::*;

const VIDEO_KEY: ContentKey = ContentKey {
    kid: *b"video-kid-000001",
    key: *b"video-key-000001",
};
const AUDIO_KEY: ContentKey = ContentKey {
    kid: *b"audio-kid-000001",
    key: *b"audio-key-000001",
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/protect")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn options(scheme: Scheme, iv_size: u8) -> Options {
    Options {
        scheme,
        keys: vec![(TrackKind::Video, VIDEO_KEY), (TrackKind::Audio, AUDIO_KEY)],
        iv_size,
        constant_ivs: vec![],
        pssh: vec![],
    }
}

fn keys() -> Vec<([u8; 16], [u8; 16])> {
    vec![
        (VIDEO_KEY.kid, VIDEO_KEY.key),
        (AUDIO_KEY.kid, AUDIO_KEY.key),
    ]
}

fn tops(data: &[u8]) -> Vec<BoxRef> {
    boxes(data, 0..data.len())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The payloads of the segment's mdat boxes, in order.
fn mdats(data: &[u8]) -> Vec<Vec<u8>> {
    tops(data)
        .iter()
        .filter(|b| &b.kind == b"mdat")
        .map(|b| data[b.body()].to_vec())
        .collect()
}

/// Every box kind under `b`, depth first (containers this test knows).
fn kinds(data: &[u8], b: &BoxRef, out: &mut Vec<String>) {
    out.push(String::from_utf8_lossy(&b.kind).into_owned());
    let skip = match &b.kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"moof" | b"traf" | b"sinf" | b"schi"
        | b"mvex" => 0,
        b"stsd" => 8,
        b"encv" => 78,
        b"enca" => 28,
        _ => return,
    };
    for c in children(data, b, skip).unwrap() {
        kinds(data, &c.unwrap(), out);
    }
}

fn all_kinds(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for b in tops(data) {
        kinds(data, &b, &mut out);
    }
    out
}

const RENDITIONS: [&str; 5] = ["encoder", "stress", "baseline", "audio", "muxed"];

fn encryptor(name: &str, scheme: Scheme, iv_size: u8) -> Encryptor {
    let init = fixture(&format!("{name}.init.mp4"));
    let mut opts = options(scheme, iv_size);
    opts.keys.retain(|(kind, _)| match name {
        "audio" => *kind == TrackKind::Audio,
        "muxed" => true,
        _ => *kind == TrackKind::Video,
    });
    Encryptor::new(&init, &opts).unwrap()
}

#[test]
fn every_scheme_round_trips_every_rendition() {
    for name in RENDITIONS {
        let clear = fixture(&format!("{name}.seg.m4s"));
        for (scheme, iv_size) in [(Scheme::Cenc, 8), (Scheme::Cenc, 16), (Scheme::Cbcs, 0)] {
            let enc = encryptor(name, scheme, iv_size);
            let protected = enc.encrypt(&clear, None).unwrap();
            assert_ne!(
                mdats(&protected),
                mdats(&clear),
                "{name} {scheme:?}: nothing was encrypted"
            );
            let dec = Decryptor::new(enc.init_segment(), &keys()).unwrap();
            let restored = dec.decrypt(&protected).unwrap();
            assert_eq!(
                mdats(&restored),
                mdats(&clear),
                "{name} {scheme:?} {iv_size}"
            );
        }
    }
}

#[test]
fn init_segment_boxes() {
    let enc = encryptor("muxed", Scheme::Cbcs, 0);
    let init = enc.init_segment();
    let found = all_kinds(init);
    for needed in [
        "encv", "enca", "sinf", "frma", "schm", "schi", "tenc", "pssh", "avcC", "esds",
    ] {
        assert!(
            found.iter().any(|k| k == needed),
            "{needed} missing from {found:?}"
        );
    }
    assert!(
        !found.iter().any(|k| k == "avc1" || k == "mp4a"),
        "{found:?}"
    );
    // the common pssh is version 1 and lists both key ids, sorted
    let pssh = &enc.pssh()[0];
    assert_eq!(pssh[8], 1);
    assert_eq!(&pssh[12..28], &COMMON_SYSTEM_ID);
    assert_eq!(u32::from_be_bytes(pssh[28..32].try_into().unwrap()), 2);
    assert_eq!(&pssh[32..48], &AUDIO_KEY.kid);
    assert_eq!(&pssh[48..64], &VIDEO_KEY.kid);
    assert!(init.windows(pssh.len()).any(|w| w == &pssh[..]));
    let tracks: Vec<_> = enc.tracks().collect();
    let video = tracks.iter().find(|t| t.kind == TrackKind::Video).unwrap();
    assert_eq!(
        (
            video.encryption.crypt_byte_block,
            video.encryption.skip_byte_block
        ),
        (1, 9)
    );
    assert!(video.encryption.constant_iv.is_some() && video.encryption.iv_size == 0);
    let audio = tracks.iter().find(|t| t.kind == TrackKind::Audio).unwrap();
    assert_eq!(
        (
            audio.encryption.crypt_byte_block,
            audio.encryption.skip_byte_block
        ),
        (0, 0)
    );
    assert_eq!(&audio.format, b"mp4a");
}

#[test]
fn media_segment_boxes_and_offsets() {
    let enc = encryptor("encoder", Scheme::Cenc, 8);
    let clear = fixture("encoder.seg.m4s");
    let protected = enc
        .encrypt(&clear, Some(&[0, 0, 0, 0, 0, 0, 0, 1]))
        .unwrap();
    let found = all_kinds(&protected);
    let traf_order: Vec<&str> = found
        .iter()
        .map(String::as_str)
        .skip_while(|k| *k != "traf")
        .take(7)
        .collect();
    assert_eq!(
        traf_order,
        ["traf", "tfhd", "tfdt", "trun", "saiz", "saio", "senc"]
    );
    // every moof's trun data offset points at its mdat's first byte (one traf, data first in the mdat)
    let t = tops(&protected);
    for pair in t.windows(2) {
        if &pair[0].kind != b"moof" {
            continue;
        }
        let traf = children(&protected, &pair[0], 0)
            .unwrap()
            .map(Result::unwrap)
            .find(|b| &b.kind == b"traf")
            .unwrap();
        let trun = children(&protected, &traf, 0)
            .unwrap()
            .map(Result::unwrap)
            .find(|b| &b.kind == b"trun")
            .unwrap();
        let mut r = Reader::body(&protected, &trun);
        r.version_flags().unwrap();
        r.u32().unwrap();
        let offset = r.i32().unwrap() as usize;
        assert_eq!(pair[0].start + offset, pair[1].body_start());
    }
}

#[test]
fn cenc_protected_ranges_are_whole_blocks_and_ivs_count_up() {
    let enc = encryptor("stress", Scheme::Cenc, 8);
    let protected = enc
        .encrypt(&fixture("stress.seg.m4s"), Some(&7u64.to_be_bytes()))
        .unwrap();
    let mut expected_iv = 7u64;
    for moof in tops(&protected).iter().filter(|b| &b.kind == b"moof") {
        for traf in children(&protected, moof, 0)
            .unwrap()
            .map(Result::unwrap)
            .filter(|b| &b.kind == b"traf")
        {
            let senc = children(&protected, &traf, 0)
                .unwrap()
                .map(Result::unwrap)
                .find(|b| &b.kind == b"senc")
                .unwrap();
            let mut r = Reader::body(&protected, &senc);
            let (_, flags) = r.version_flags().unwrap();
            assert_eq!(flags, 2, "video entries carry subsamples");
            for _ in 0..r.u32().unwrap() {
                assert_eq!(u64::from_be_bytes(r.array().unwrap()), expected_iv);
                expected_iv += 1;
                let mut some_protected = false;
                for _ in 0..r.u16().unwrap() {
                    r.u16().unwrap();
                    let p = r.u32().unwrap();
                    assert_eq!(p % 16, 0);
                    some_protected |= p > 0;
                }
                assert!(some_protected);
            }
        }
    }
    assert!(expected_iv > 7 + 40);
}

#[test]
fn fixed_ivs_are_deterministic_and_random_ones_are_not() {
    let clear = fixture("audio.seg.m4s");
    let enc = encryptor("audio", Scheme::Cenc, 16);
    let iv = [9u8; 16];
    assert_eq!(
        enc.encrypt(&clear, Some(&iv)).unwrap(),
        enc.encrypt(&clear, Some(&iv)).unwrap()
    );
    assert_ne!(
        enc.encrypt(&clear, None).unwrap(),
        enc.encrypt(&clear, None).unwrap()
    );
    // cbcs: the constant IV comes from the init segment, one per track, random unless given
    let a = encryptor("audio", Scheme::Cbcs, 0);
    let b = encryptor("audio", Scheme::Cbcs, 0);
    let iv_of = |e: &Encryptor| e.tracks().next().unwrap().encryption.constant_iv;
    assert_ne!(iv_of(&a), iv_of(&b));
    assert!(matches!(
        a.encrypt(&clear, Some(&iv)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn cbcs_audio_has_no_saiz_and_its_senc_is_empty() {
    let enc = encryptor("audio", Scheme::Cbcs, 0);
    let protected = enc.encrypt(&fixture("audio.seg.m4s"), None).unwrap();
    let found = all_kinds(&protected);
    assert!(found.iter().any(|k| k == "senc"));
    assert!(
        !found.iter().any(|k| k == "saiz" || k == "saio"),
        "{found:?}"
    );
}

#[test]
fn extra_pssh_boxes_follow_the_common_one() {
    let init = fixture("encoder.init.mp4");
    let widevine = marquee_core::protect::pssh_box(&[0xed; 16], &[], b"widevine header").unwrap();
    let mut opts = options(Scheme::Cenc, 8);
    opts.keys.truncate(1);
    opts.pssh = vec![widevine.clone()];
    let enc = Encryptor::new(&init, &opts).unwrap();
    assert_eq!(enc.pssh().len(), 2);
    assert_eq!(enc.pssh()[1], widevine);
    let out = enc.init_segment();
    let common = out
        .windows(enc.pssh()[0].len())
        .position(|w| w == &enc.pssh()[0][..])
        .unwrap();
    let extra = out
        .windows(widevine.len())
        .position(|w| w == &widevine[..])
        .unwrap();
    assert!(common < extra);
    opts.pssh = vec![b"not a box".to_vec()];
    assert!(matches!(
        Encryptor::new(&init, &opts),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn bad_arguments_are_invalid_argument_errors() {
    let init = fixture("encoder.init.mp4");
    let mut opts = options(Scheme::Cenc, 12);
    opts.keys.truncate(1);
    assert!(matches!(
        Encryptor::new(&init, &opts),
        Err(Error::InvalidArgument(_))
    ));
    let opts = options(Scheme::Cenc, 8); // an audio key for a video-only init
    assert!(matches!(
        Encryptor::new(&init, &opts),
        Err(Error::InvalidArgument(_))
    ));
    let mut opts = options(Scheme::Cenc, 8);
    opts.keys.clear();
    assert!(matches!(
        Encryptor::new(&init, &opts),
        Err(Error::InvalidArgument(_))
    ));
    assert!(ContentKey::new(&[0; 15], &[0; 16]).is_err());
    let enc = encryptor("encoder", Scheme::Cenc, 8);
    assert!(matches!(
        enc.encrypt(&fixture("encoder.seg.m4s"), Some(&[1; 16])),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn encrypted_or_foreign_inputs_are_refused() {
    let enc = encryptor("encoder", Scheme::Cenc, 8);
    let protected = enc.encrypt(&fixture("encoder.seg.m4s"), None).unwrap();
    assert!(matches!(
        enc.encrypt(&protected, None),
        Err(Error::UnsupportedMedia(_))
    ));
    let opts = Options {
        keys: vec![(TrackKind::Video, VIDEO_KEY)],
        ..options(Scheme::Cenc, 8)
    };
    assert!(matches!(
        Encryptor::new(enc.init_segment(), &opts),
        Err(Error::UnsupportedMedia(_))
    ));
    // a segment of another rendition's track layout: audio samples through a video encryptor
    assert!(enc.encrypt(&fixture("muxed.seg.m4s"), None).is_err());
    assert!(matches!(
        Encryptor::new(&fixture("encoder.seg.m4s"), &opts),
        Err(Error::UnsupportedMedia(_) | Error::MalformedMedia(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn truncated_segments_never_panic(cut in 0usize..31_076) {
        let enc = encryptor("encoder", Scheme::Cbcs, 0);
        let clear = fixture("encoder.seg.m4s");
        let _ = enc.encrypt(&clear[..cut.min(clear.len())], None);
    }

    #[test]
    fn corrupted_segments_never_panic(at in 0usize..2_000, value in any::<u8>(), scheme in prop_oneof![Just(Scheme::Cenc), Just(Scheme::Cbcs)]) {
        let enc = encryptor("stress", scheme, if scheme == Scheme::Cenc { 8 } else { 0 });
        let mut data = fixture("stress.seg.m4s");
        // the moof, and the first samples' NAL lengths and slice headers
        let at = at % data.len();
        data[at] = value;
        if let Ok(out) = enc.encrypt(&data, None) {
            let dec = Decryptor::new(enc.init_segment(), &keys()).unwrap();
            prop_assert_eq!(mdats(&dec.decrypt(&out).unwrap()), mdats(&data));
        }
    }

    #[test]
    fn corrupted_init_segments_never_panic(at in 0usize..1_240, value in any::<u8>()) {
        let mut init = fixture("muxed.init.mp4");
        let at = at % init.len();
        init[at] = value;
        let _ = Encryptor::new(&init, &options(Scheme::Cenc, 8));
        let _ = Encryptor::new(&init[..at], &options(Scheme::Cbcs, 0));
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let enc = encryptor("muxed", Scheme::Cenc, 8);
        let _ = enc.encrypt(&data, None);
        let _ = Encryptor::new(&data, &options(Scheme::Cbcs, 0));
        let dec = Decryptor::new(enc.init_segment(), &keys()).unwrap();
        let _ = dec.decrypt(&data);
    }
}

//! The init segment (ftyp + moov): read each track's facts the encryptor needs, and write the protected init
//! segment, where each sample entry becomes `encv`/`enca` with a `sinf` (frma, schm, schi/tenc) and the movie
//! box ends with the `pssh` boxes.

use crate::error::Result;

use super::h264::ParamSets;
use super::mp4::{
    boxes, children, copy_box, find, malformed, require, show, unsupported, write_box,
    write_full_box, BoxRef, FourCc, Reader,
};
use super::{Scheme, TrackKind};

/// Bytes of a VisualSampleEntry before its child boxes (after the box header).
const VISUAL_ENTRY_FIELDS: usize = 78;
/// Bytes of a version 0 AudioSampleEntry before its child boxes; QuickTime versions 1 and 2 add 16 and 36.
const AUDIO_ENTRY_FIELDS: usize = 28;

/// What the packager knows about one track of a clear init segment.
#[derive(Debug, Clone)]
pub struct ClearTrack {
    pub track_id: u32,
    pub kind: TrackKind,
    /// The sample entry's format (`avc1`, `mp4a`, ...).
    pub format: FourCc,
    /// Video: NAL unit length prefix size and the parameter sets from the avcC record.
    pub avc: Option<AvcConfig>,
    /// trex default_sample_size (0 when the movie has no trex for the track).
    pub default_sample_size: u32,
}

#[derive(Debug, Clone)]
pub struct AvcConfig {
    pub length_size: usize,
    pub params: ParamSets,
}

/// How one track is protected, written into its `tenc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackEncryption {
    pub scheme: Scheme,
    pub kid: [u8; 16],
    /// Per-sample IV size (8 or 16 for 'cenc', 0 for 'cbcs').
    pub iv_size: u8,
    /// 'cbcs': the constant IV.
    pub constant_iv: Option<[u8; 16]>,
    pub crypt_byte_block: u8,
    pub skip_byte_block: u8,
}

const VIDEO_FORMATS: [&FourCc; 2] = [b"avc1", b"avc3"];
const AUDIO_FORMATS: [&FourCc; 1] = [b"mp4a"];
const ENCRYPTED_FORMATS: [&FourCc; 2] = [b"encv", b"enca"];

pub(crate) fn top_level_moov(init: &[u8]) -> Result<BoxRef> {
    let mut moov = None;
    for b in boxes(init, 0..init.len()) {
        let b = b?;
        match &b.kind {
            b"moov" => moov = Some(b),
            b"moof" | b"mdat" => {
                return Err(unsupported(
                    "the init segment has media data (moof/mdat): pass ftyp + moov only",
                ))
            }
            _ => {}
        }
    }
    moov.ok_or_else(|| malformed("the init segment has no moov box"))
}

/// (track_id, default_sample_size) of each trex box in the movie.
pub(crate) fn trex_sample_sizes(init: &[u8], moov: &BoxRef) -> Result<Vec<(u32, u32)>> {
    let mut defaults = Vec::new();
    if let Some(mvex) = find(init, moov, 0, b"mvex")? {
        for trex in children(init, &mvex, 0)? {
            let trex = trex?;
            if &trex.kind == b"trex" {
                let mut r = Reader::body(init, &trex);
                r.version_flags()?;
                let track_id = r.u32()?;
                r.skip(8)?; // default_sample_description_index, default_sample_duration
                defaults.push((track_id, r.u32()?));
            }
        }
    }
    Ok(defaults)
}

/// The tracks of a clear init segment, with their trex defaults.
pub fn read_tracks(init: &[u8]) -> Result<Vec<ClearTrack>> {
    let moov = top_level_moov(init)?;
    let defaults = trex_sample_sizes(init, &moov)?;
    let mut tracks = Vec::new();
    for trak in children(init, &moov, 0)? {
        let trak = trak?;
        if &trak.kind != b"trak" {
            if &trak.kind == b"pssh" {
                return Err(unsupported(
                    "the init segment already carries pssh boxes (already encrypted?)",
                ));
            }
            continue;
        }
        let mut track = read_track(init, &trak)?;
        track.default_sample_size = defaults
            .iter()
            .find(|(id, _)| *id == track.track_id)
            .map_or(0, |(_, size)| *size);
        if tracks
            .iter()
            .any(|t: &ClearTrack| t.track_id == track.track_id)
        {
            return Err(malformed(format!("two tracks with id {}", track.track_id)));
        }
        tracks.push(track);
    }
    if tracks.is_empty() {
        return Err(malformed("the init segment has no tracks"));
    }
    Ok(tracks)
}

pub(crate) fn track_id(init: &[u8], trak: &BoxRef) -> Result<u32> {
    let tkhd = require(init, trak, 0, b"tkhd")?;
    let mut r = Reader::body(init, &tkhd);
    let (version, _) = r.version_flags()?;
    r.skip(if version == 1 { 16 } else { 8 })?; // creation and modification times
    r.u32()
}

pub(crate) fn stsd_of(init: &[u8], trak: &BoxRef) -> Result<BoxRef> {
    let mdia = require(init, trak, 0, b"mdia")?;
    let minf = require(init, &mdia, 0, b"minf")?;
    let stbl = require(init, &minf, 0, b"stbl")?;
    require(init, &stbl, 0, b"stsd")
}

/// The sample entries of an stsd box (after its version, flags and entry count).
pub(crate) fn sample_entries<'a>(
    init: &'a [u8],
    stsd: &BoxRef,
) -> Result<impl Iterator<Item = Result<BoxRef>> + 'a> {
    let mut r = Reader::body(init, stsd);
    r.version_flags()?;
    let count = r.u32()?;
    if count == 0 {
        return Err(malformed("stsd has no sample entries"));
    }
    Ok(children(init, stsd, 8)?.take(count as usize))
}

pub(crate) fn entry_fields(init: &[u8], entry: &BoxRef, kind: TrackKind) -> Result<usize> {
    match kind {
        TrackKind::Video => Ok(VISUAL_ENTRY_FIELDS),
        TrackKind::Audio => {
            let mut r = Reader::body(init, entry);
            r.skip(8)?; // reserved, data_reference_index
            match r.u16()? {
                0 => Ok(AUDIO_ENTRY_FIELDS),
                1 => Ok(AUDIO_ENTRY_FIELDS + 16),
                2 => Ok(AUDIO_ENTRY_FIELDS + 36),
                v => Err(unsupported(format!("audio sample entry version {v}"))),
            }
        }
    }
}

fn read_track(init: &[u8], trak: &BoxRef) -> Result<ClearTrack> {
    let track_id = track_id(init, trak)?;
    let stsd = stsd_of(init, trak)?;
    let mut entries = sample_entries(init, &stsd)?;
    let entry = entries
        .next()
        .ok_or_else(|| malformed("stsd has no sample entries"))??;
    if entries.next().is_some() {
        return Err(unsupported(format!(
            "track {track_id} has several sample entries"
        )));
    }
    let kind = if VIDEO_FORMATS.contains(&&entry.kind) {
        TrackKind::Video
    } else if AUDIO_FORMATS.contains(&&entry.kind) {
        TrackKind::Audio
    } else if ENCRYPTED_FORMATS.contains(&&entry.kind) {
        return Err(unsupported(format!(
            "track {track_id} is already encrypted"
        )));
    } else {
        return Err(unsupported(format!(
            "track {track_id} has codec '{}' (H.264 avc1/avc3 video and AAC mp4a audio are supported)",
            show(&entry.kind)
        )));
    };
    let fields = entry_fields(init, &entry, kind)?;
    if find(init, &entry, fields, b"sinf")?.is_some() {
        return Err(unsupported(format!(
            "track {track_id} already has a sinf box"
        )));
    }
    let avc = match kind {
        TrackKind::Video => Some(read_avcc(init, &require(init, &entry, fields, b"avcC")?)?),
        TrackKind::Audio => None,
    };
    Ok(ClearTrack {
        track_id,
        kind,
        format: entry.kind,
        avc,
        default_sample_size: 0,
    })
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): the NAL length size and SPS/PPS.
fn read_avcc(init: &[u8], avcc: &BoxRef) -> Result<AvcConfig> {
    let mut r = Reader::body(init, avcc);
    r.skip(4)?; // configurationVersion, profile, compatibility, level
    let length_size = usize::from(r.u8()? & 0x03) + 1;
    if length_size == 3 {
        return Err(malformed("avcC lengthSizeMinusOne of 2 is reserved"));
    }
    let mut params = ParamSets::default();
    let sps_count = r.u8()? & 0x1f;
    for _ in 0..sps_count {
        let len = usize::from(r.u16()?);
        params.add(r.bytes(len)?)?;
    }
    let pps_count = r.u8()?;
    for _ in 0..pps_count {
        let len = usize::from(r.u16()?);
        params.add(r.bytes(len)?)?;
    }
    Ok(AvcConfig {
        length_size,
        params,
    })
}

/// The protected init segment: `protect(track_id)` says how each track is encrypted; `pssh` boxes are appended
/// to the movie box in order.
pub fn write_protected(
    init: &[u8],
    protect: &dyn Fn(u32) -> Option<TrackEncryption>,
    pssh: &[Vec<u8>],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(init.len() + 256);
    for top in boxes(init, 0..init.len()) {
        let top = top?;
        if &top.kind != b"moov" {
            copy_box(&mut out, init, &top)?;
            continue;
        }
        write_box(&mut out, b"moov", |o| {
            for child in children(init, &top, 0)? {
                let child = child?;
                let enc = match &child.kind {
                    b"trak" => protect(track_id(init, &child)?),
                    _ => None,
                };
                match enc {
                    Some(enc) => write_trak(o, init, &child, &enc)?,
                    None => copy_box(o, init, &child)?,
                }
            }
            for p in pssh {
                o.extend_from_slice(p);
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Copy `parent` with the child on `path` rewritten by `leaf`, every other child as it was.
fn rewrite_path(
    out: &mut Vec<u8>,
    data: &[u8],
    parent: &BoxRef,
    path: &[&FourCc],
    leaf: &mut dyn FnMut(&mut Vec<u8>, &BoxRef) -> Result<()>,
) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        return leaf(out, parent);
    };
    write_box(out, &parent.kind, |o| {
        for child in children(data, parent, 0)? {
            let child = child?;
            if &child.kind == *first {
                rewrite_path(o, data, &child, rest, leaf)?;
            } else {
                copy_box(o, data, &child)?;
            }
        }
        Ok(())
    })
}

fn write_trak(out: &mut Vec<u8>, init: &[u8], trak: &BoxRef, enc: &TrackEncryption) -> Result<()> {
    rewrite_path(
        out,
        init,
        trak,
        &[b"mdia", b"minf", b"stbl", b"stsd"],
        &mut |o, stsd| {
            let entries = sample_entries(init, stsd)?; // checks that version, flags and count are there
            write_box(o, b"stsd", |o| {
                o.extend_from_slice(&init[stsd.body_start()..stsd.body_start() + 8]);
                for entry in entries {
                    write_entry(o, init, &entry?, enc)?;
                }
                Ok(())
            })
        },
    )
}

fn write_entry(
    out: &mut Vec<u8>,
    init: &[u8],
    entry: &BoxRef,
    enc: &TrackEncryption,
) -> Result<()> {
    let kind = if VIDEO_FORMATS.contains(&&entry.kind) {
        TrackKind::Video
    } else {
        TrackKind::Audio
    };
    let fields = entry_fields(init, entry, kind)?;
    let protected_format = match kind {
        TrackKind::Video => b"encv",
        TrackKind::Audio => b"enca",
    };
    let fields_end = entry.body_start() + fields;
    if fields_end > entry.end {
        return Err(malformed(format!(
            "sample entry '{}' is too short",
            show(&entry.kind)
        )));
    }
    write_box(out, protected_format, |o| {
        o.extend_from_slice(&init[entry.body_start()..fields_end]);
        for child in children(init, entry, fields)? {
            copy_box(o, init, &child?)?;
        }
        write_sinf(o, &entry.kind, enc)
    })
}

fn write_sinf(out: &mut Vec<u8>, original: &FourCc, enc: &TrackEncryption) -> Result<()> {
    write_box(out, b"sinf", |o| {
        write_box(o, b"frma", |o| {
            o.extend_from_slice(original);
            Ok(())
        })?;
        write_full_box(o, b"schm", 0, 0, |o| {
            o.extend_from_slice(&enc.scheme.fourcc());
            o.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // scheme_version 1.0
            Ok(())
        })?;
        write_box(o, b"schi", |o| write_tenc(o, enc))
    })
}

/// TrackEncryptionBox (ISO/IEC 23001-7 8.2): version 1 carries the pattern ('cbcs'), version 0 does not.
fn write_tenc(out: &mut Vec<u8>, enc: &TrackEncryption) -> Result<()> {
    let version = u8::from(enc.scheme == Scheme::Cbcs);
    write_full_box(out, b"tenc", version, 0, |o| {
        o.push(0); // reserved
        o.push(if version == 0 {
            0
        } else {
            (enc.crypt_byte_block << 4) | (enc.skip_byte_block & 0x0f)
        });
        o.push(1); // default_isProtected
        o.push(enc.iv_size);
        o.extend_from_slice(&enc.kid);
        if enc.iv_size == 0 {
            let iv = enc.constant_iv.ok_or_else(|| {
                crate::Error::InvalidArgument(
                    "a constant IV is needed without per-sample IVs".into(),
                )
            })?;
            o.push(16);
            o.extend_from_slice(&iv);
        }
        Ok(())
    })
}

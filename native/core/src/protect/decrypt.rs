//! Decryption of Common Encryption segments, from what the files say (schm, tenc, senc, saiz, saio) rather than
//! from the encryptor's own state: the round-trip half of the tests, and a check that the auxiliary information
//! is where `saio` says it is.

use aes::cipher::StreamCipher;

use crate::error::{Error, Result};

use super::cipher::Key;
use super::fragment::{read_fragment, SENC_SUBSAMPLES};
use super::init::{
    entry_fields, sample_entries, stsd_of, top_level_moov, track_id, trex_sample_sizes,
};
use super::mp4::{boxes, children, find, malformed, require, show, unsupported, BoxRef, Reader};
use super::subsample::Subsample;
use super::{protected_ranges, Scheme, TrackKind};

#[derive(Debug, Clone)]
struct Track {
    track_id: u32,
    scheme: Scheme,
    iv_size: usize,
    constant_iv: Option<[u8; 16]>,
    crypt: usize,
    skip: usize,
    key: Key,
    default_sample_size: u32,
}

/// Decrypts the segments of one protected rendition with keys looked up by key id.
#[derive(Debug)]
pub struct Decryptor {
    tracks: Vec<Track>,
}

fn tenc(init: &[u8], entry: &BoxRef, kind: TrackKind) -> Result<(Scheme, BoxRef)> {
    let fields = entry_fields(init, entry, kind)?;
    let sinf = require(init, entry, fields, b"sinf")?;
    let schm = require(init, &sinf, 0, b"schm")?;
    let mut r = Reader::body(init, &schm);
    r.version_flags()?;
    let scheme = match &r.fourcc()? {
        b"cenc" => Scheme::Cenc,
        b"cbcs" => Scheme::Cbcs,
        other => return Err(unsupported(format!("scheme '{}'", show(other)))),
    };
    let schi = require(init, &sinf, 0, b"schi")?;
    Ok((scheme, require(init, &schi, 0, b"tenc")?))
}

impl Decryptor {
    /// `keys`: (key id, key) pairs; every protected track's default key id must be among them.
    pub fn new(protected_init: &[u8], keys: &[([u8; 16], [u8; 16])]) -> Result<Self> {
        let moov = top_level_moov(protected_init)?;
        let sizes = trex_sample_sizes(protected_init, &moov)?;
        let mut tracks = Vec::new();
        for trak in children(protected_init, &moov, 0)? {
            let trak = trak?;
            if &trak.kind != b"trak" {
                continue;
            }
            let id = track_id(protected_init, &trak)?;
            let stsd = stsd_of(protected_init, &trak)?;
            let Some(entry) = sample_entries(protected_init, &stsd)?.next() else {
                continue;
            };
            let entry = entry?;
            let kind = match &entry.kind {
                b"encv" => TrackKind::Video,
                b"enca" => TrackKind::Audio,
                _ => continue,
            };
            let (scheme, tenc) = tenc(protected_init, &entry, kind)?;
            let mut r = Reader::body(protected_init, &tenc);
            let (version, _) = r.version_flags()?;
            r.u8()?;
            let pattern = r.u8()?;
            let (crypt, skip) = if version == 0 {
                (0, 0)
            } else {
                (usize::from(pattern >> 4), usize::from(pattern & 0x0f))
            };
            if r.u8()? != 1 {
                continue; // default_isProtected 0: clear
            }
            let iv_size = usize::from(r.u8()?);
            let kid: [u8; 16] = r.array()?;
            let constant_iv = if iv_size == 0 {
                let n = usize::from(r.u8()?);
                let mut iv = [0u8; 16];
                iv[..n.min(16)].copy_from_slice(r.bytes(n.min(16))?);
                Some(iv)
            } else {
                None
            };
            let key = keys
                .iter()
                .find(|(k, _)| *k == kid)
                .map(|(_, key)| Key::new(key))
                .ok_or_else(|| {
                    Error::NotFound(format!("no key for key id {kid:02x?} of track {id}"))
                })?;
            tracks.push(Track {
                track_id: id,
                scheme,
                iv_size,
                constant_iv,
                crypt,
                skip,
                key,
                default_sample_size: sizes.iter().find(|(t, _)| *t == id).map_or(0, |(_, s)| *s),
            });
        }
        Ok(Self { tracks })
    }

    /// The segment with every protected sample decrypted in place (its boxes unchanged).
    pub fn decrypt(&self, segment: &[u8]) -> Result<Vec<u8>> {
        let mut out = segment.to_vec();
        let tops: Vec<BoxRef> = boxes(segment, 0..segment.len()).collect::<Result<_>>()?;
        for (i, moof) in tops.iter().enumerate() {
            if &moof.kind != b"moof" {
                continue;
            }
            let mdat = tops
                .get(i + 1)
                .filter(|m| &m.kind == b"mdat")
                .ok_or_else(|| malformed("a moof is not followed by its mdat"))?;
            let sizes = |id: u32| {
                self.tracks
                    .iter()
                    .find(|t| t.track_id == id)
                    .map(|t| t.default_sample_size)
            };
            let fragments = read_fragment(segment, moof, mdat, &sizes)?;
            let trafs: Vec<BoxRef> = children(segment, moof, 0)?
                .filter(|b| b.as_ref().map_or(true, |b| &b.kind == b"traf"))
                .collect::<Result<_>>()?;
            for (traf, fragment) in trafs.iter().zip(&fragments) {
                let Some(track) = self.tracks.iter().find(|t| t.track_id == fragment.track_id)
                else {
                    continue;
                };
                if fragment.samples.is_empty() {
                    continue;
                }
                let entries =
                    read_senc(segment, moof, traf, track.iv_size, fragment.samples.len())?;
                for (range, (iv, subsamples)) in fragment.samples.iter().zip(entries) {
                    let sample = &mut out[range.clone()];
                    let protected = protected_ranges(sample.len(), subsamples.as_deref())?;
                    match track.scheme {
                        Scheme::Cenc => {
                            let mut stream = track.key.ctr(&iv);
                            for r in protected {
                                stream.apply_keystream(&mut sample[r]);
                            }
                        }
                        Scheme::Cbcs => {
                            let iv = track.constant_iv.unwrap_or(iv);
                            for r in protected {
                                track.key.cbc_pattern_decrypt(
                                    &iv,
                                    &mut sample[r],
                                    track.crypt,
                                    track.skip,
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

type SencEntry = ([u8; 16], Option<Vec<Subsample>>);

/// The senc entries of a traf, after checking that saiz sizes and the saio offset (from the moof start) agree.
fn read_senc(
    data: &[u8],
    moof: &BoxRef,
    traf: &BoxRef,
    iv_size: usize,
    samples: usize,
) -> Result<Vec<SencEntry>> {
    let senc = require(data, traf, 0, b"senc")?;
    let mut r = Reader::body(data, &senc);
    let (_, flags) = r.version_flags()?;
    let count = r.u32()? as usize;
    if count != samples {
        return Err(malformed(format!(
            "senc has {count} entries for {samples} samples"
        )));
    }
    let entries_start = senc.body_start() + 8;
    let mut entries = Vec::with_capacity(count);
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.pos();
        let mut iv = [0u8; 16];
        iv[..iv_size.min(16)].copy_from_slice(r.bytes(iv_size.min(16))?);
        let subsamples = if flags & SENC_SUBSAMPLES != 0 {
            let n = r.u16()?;
            let mut subs = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                subs.push(Subsample {
                    clear: r.u16()?,
                    protected: r.u32()?,
                });
            }
            Some(subs)
        } else {
            None
        };
        entries.push((iv, subsamples));
        sizes.push(r.pos() - at);
    }
    match (find(data, traf, 0, b"saiz")?, find(data, traf, 0, b"saio")?) {
        (Some(saiz), Some(saio)) => {
            let mut z = Reader::body(data, &saiz);
            let (_, zflags) = z.version_flags()?;
            if zflags & 1 != 0 {
                z.skip(8)?;
            }
            let default = usize::from(z.u8()?);
            let n = z.u32()? as usize;
            let declared: Vec<usize> = if default != 0 {
                vec![default; n]
            } else {
                z.bytes(n)?.iter().map(|b| usize::from(*b)).collect()
            };
            if declared != sizes {
                return Err(malformed("saiz sizes do not match the senc entries"));
            }
            let mut o = Reader::body(data, &saio);
            let (version, oflags) = o.version_flags()?;
            if oflags & 1 != 0 {
                o.skip(8)?;
            }
            if o.u32()? != 1 {
                return Err(malformed("saio should have one offset"));
            }
            let offset = if version == 0 {
                u64::from(o.u32()?)
            } else {
                o.u64()?
            };
            if moof.start as u64 + offset != entries_start as u64 {
                return Err(malformed(format!(
                    "saio points at {} from the moof, senc data is at {}",
                    offset,
                    entries_start - moof.start
                )));
            }
        }
        (None, None) if sizes.iter().all(|s| *s == 0) => {}
        _ => {
            return Err(malformed(
                "saiz and saio must both be present when samples have auxiliary information",
            ))
        }
    }
    Ok(entries)
}

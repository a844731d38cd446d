//! Content protection at packaging time.
//!
//! - Common Encryption (ISO/IEC 23001-7) of CMAF fragmented MP4, as browsers' EME consume it:
//!   - `cenc`: AES-128-CTR; audio samples are encrypted whole, H.264 samples by subsample (NAL length prefix,
//!     NAL header and slice header clear; the slice data protected in whole 16-byte blocks); 8- or 16-byte
//!     per-sample IVs, fresh random ones per segment unless given.
//!   - `cbcs`: AES-128-CBC with a constant IV per track (tenc default_constant_IV); video slice data with the
//!     1:9 crypt:skip block pattern, audio samples' whole blocks (pattern 0:0), partial tail blocks clear.
//!   - The init segment's sample entries become `encv`/`enca` with `sinf` (frma, schm, schi/tenc); the movie box
//!     ends with a version 1 `pssh` of the W3C common system id listing the key ids, then any caller's `pssh`.
//!   - Each `traf` gets `saiz`, `saio` (pointing at the `senc` sample data, relative to the moof) and `senc`.
//! - HLS AES-128 (RFC 8216): whole-segment AES-128-CBC with PKCS#7 padding ([`hls`]).
//!
//! [`Encryptor`] is built once per rendition from its clear init segment and keys, then encrypts each media
//! segment independently (it holds no per-segment state, so segments can be encrypted in parallel).

mod cipher;
pub mod decrypt;
mod fragment;
mod h264;
pub mod hls;
mod init;
pub mod mp4;
mod subsample;

use crate::error::{Error, Result};

use aes::cipher::StreamCipher;
use cipher::Key;
use fragment::{read_fragment, write_moof, AuxInfo, SENC_SUBSAMPLES};
use h264::ParamSets;
pub use init::TrackEncryption;
use init::{read_tracks, write_protected, AvcConfig};
use mp4::{
    boxes, copy_box, malformed, unsupported, write_box_like, write_full_box, BoxRef, FourCc,
};
use subsample::{h264_subsamples, Alignment, Subsample};

/// The W3C "common" system id (`1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`), whose `pssh` lists key ids; ClearKey
/// reads it.
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// The 'cbcs' video pattern: one 16-byte block encrypted, nine clear.
pub const CBCS_CRYPT_BLOCKS: u8 = 1;
pub const CBCS_SKIP_BLOCKS: u8 = 9;
/// Largest `pssh` a caller may add (Widevine and PlayReady headers are a few hundred bytes to a few KiB).
pub const MAX_PSSH_LEN: usize = 64 * 1024;
/// Most extra `pssh` boxes.
pub const MAX_PSSH_BOXES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Cenc,
    Cbcs,
}

impl Scheme {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cenc" => Ok(Self::Cenc),
            "cbcs" => Ok(Self::Cbcs),
            other => Err(Error::InvalidArgument(format!(
                "unknown scheme {other:?} (cenc, cbcs)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cenc => "cenc",
            Self::Cbcs => "cbcs",
        }
    }

    pub fn fourcc(self) -> FourCc {
        match self {
            Self::Cenc => *b"cenc",
            Self::Cbcs => *b"cbcs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "video" => Ok(Self::Video),
            "audio" => Ok(Self::Audio),
            other => Err(Error::InvalidArgument(format!(
                "unknown track type {other:?} (video, audio)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

/// A 16-byte key and its 16-byte key id.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey {
    pub kid: [u8; 16],
    pub key: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Exactly 16 bytes, or `InvalidArgument` naming `what`.
pub fn bytes16(bytes: &[u8], what: &str) -> Result<[u8; 16]> {
    bytes.try_into().map_err(|_| {
        Error::InvalidArgument(format!("{what} must be 16 bytes, got {}", bytes.len()))
    })
}

impl ContentKey {
    pub fn new(kid: &[u8], key: &[u8]) -> Result<Self> {
        Ok(Self {
            kid: bytes16(kid, "a key id")?,
            key: bytes16(key, "a key")?,
        })
    }
}

/// How to protect a rendition.
#[derive(Debug, Clone)]
pub struct Options {
    pub scheme: Scheme,
    /// One key per track type present in the init segment.
    pub keys: Vec<(TrackKind, ContentKey)>,
    /// 'cenc' per-sample IV size: 8 or 16.
    pub iv_size: u8,
    /// 'cbcs' constant IVs per track type; random when absent.
    pub constant_ivs: Vec<(TrackKind, [u8; 16])>,
    /// Extra complete `pssh` boxes (Widevine, PlayReady...), written after the common one.
    pub pssh: Vec<Vec<u8>>,
}

/// One protected track, as written in the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedTrack {
    pub track_id: u32,
    pub kind: TrackKind,
    /// The clear sample entry's format (`avc1`, `mp4a`).
    pub format: FourCc,
    pub encryption: TrackEncryption,
}

/// How a track's samples are encrypted.
enum SampleCipher {
    /// 'cenc': AES-CTR from each sample's IV.
    Ctr,
    /// 'cbcs': AES-CBC from the constant IV over the crypt:skip pattern of each protected range.
    Cbc {
        iv: [u8; 16],
        crypt: usize,
        skip: usize,
    },
}

struct TrackState {
    info: ProtectedTrack,
    key: Key,
    cipher: SampleCipher,
    avc: Option<AvcConfig>,
    default_sample_size: u32,
}

/// Encrypts one rendition: the protected init segment is made at construction, then [`Encryptor::encrypt`]
/// takes each clear media segment.
pub struct Encryptor {
    scheme: Scheme,
    /// 'cenc' per-sample IV size.
    iv_size: u8,
    init: Vec<u8>,
    pssh: Vec<Vec<u8>>,
    tracks: Vec<TrackState>,
}

/// Fill `buf` from the operating system's random source.
fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Io(format!("no random source: {e}")))
}

/// A `pssh` box (ISO/IEC 23001-7 8.1): version 1 when key ids are listed, else version 0.
pub fn pssh_box(system_id: &[u8; 16], key_ids: &[[u8; 16]], data: &[u8]) -> Result<Vec<u8>> {
    if data.len() > MAX_PSSH_LEN {
        return Err(Error::InvalidArgument(format!(
            "pssh data over {MAX_PSSH_LEN} bytes"
        )));
    }
    let mut out = Vec::new();
    let version = u8::from(!key_ids.is_empty());
    write_full_box(&mut out, b"pssh", version, 0, |o| {
        o.extend_from_slice(system_id);
        if version == 1 {
            o.extend_from_slice(&(key_ids.len() as u32).to_be_bytes());
            for kid in key_ids {
                o.extend_from_slice(kid);
            }
        }
        o.extend_from_slice(&(data.len() as u32).to_be_bytes());
        o.extend_from_slice(data);
        Ok(())
    })?;
    Ok(out)
}

/// Check that `bytes` is exactly one well-formed `pssh` box.
fn check_pssh(bytes: &[u8]) -> Result<()> {
    let bad = |why: &str| Error::InvalidArgument(format!("not a pssh box: {why}"));
    if bytes.len() > MAX_PSSH_LEN {
        return Err(bad(&format!("over {MAX_PSSH_LEN} bytes")));
    }
    let mut all = boxes(bytes, 0..bytes.len());
    let b = all
        .next()
        .ok_or_else(|| bad("empty"))?
        .map_err(|e| bad(&e.to_string()))?;
    if all.next().is_some() || b.end != bytes.len() || &b.kind != b"pssh" {
        return Err(bad("expected exactly one box of type 'pssh'"));
    }
    let mut r = mp4::Reader::body(bytes, &b);
    let parse = |r: &mut mp4::Reader<'_>| -> Result<()> {
        let (version, _) = r.version_flags()?;
        r.skip(16)?;
        if version > 1 {
            return Err(malformed(format!("pssh version {version}")));
        }
        if version == 1 {
            let count = r.u32()? as usize;
            r.skip(
                count
                    .checked_mul(16)
                    .ok_or_else(|| malformed("KID count"))?,
            )?;
        }
        let size = r.u32()? as usize;
        r.skip(size)?;
        if r.remaining() != 0 {
            return Err(malformed("bytes after the pssh data"));
        }
        Ok(())
    };
    parse(&mut r).map_err(|e| bad(&e.to_string()))
}

impl Encryptor {
    pub fn new(clear_init: &[u8], options: &Options) -> Result<Self> {
        let scheme = options.scheme;
        if scheme == Scheme::Cenc && !matches!(options.iv_size, 8 | 16) {
            return Err(Error::InvalidArgument(format!(
                "iv_size must be 8 or 16, got {}",
                options.iv_size
            )));
        }
        if options.pssh.len() > MAX_PSSH_BOXES {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_PSSH_BOXES} extra pssh boxes"
            )));
        }
        for p in &options.pssh {
            check_pssh(p)?;
        }
        let clear = read_tracks(clear_init)?;
        let key_for = |kind: TrackKind| {
            options
                .keys
                .iter()
                .rev()
                .find(|(k, _)| *k == kind)
                .map(|(_, key)| key)
        };
        for (kind, _) in &options.keys {
            if !clear.iter().any(|t| t.kind == *kind) {
                return Err(Error::InvalidArgument(format!(
                    "a {} key was given but the init segment has no {} track",
                    kind.as_str(),
                    kind.as_str()
                )));
            }
        }
        let mut tracks = Vec::new();
        for t in clear {
            let key = key_for(t.kind).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no {} key for track {}",
                    t.kind.as_str(),
                    t.track_id
                ))
            })?;
            let (iv_size, constant_iv, crypt, skip) = match (scheme, t.kind) {
                (Scheme::Cenc, _) => (options.iv_size, None, 0, 0),
                (Scheme::Cbcs, kind) => {
                    let iv = match options.constant_ivs.iter().rev().find(|(k, _)| *k == kind) {
                        Some((_, iv)) => *iv,
                        None => {
                            let mut iv = [0u8; 16];
                            random(&mut iv)?;
                            iv
                        }
                    };
                    let (crypt, skip) = match kind {
                        TrackKind::Video => (CBCS_CRYPT_BLOCKS, CBCS_SKIP_BLOCKS),
                        TrackKind::Audio => (0, 0),
                    };
                    (0, Some(iv), crypt, skip)
                }
            };
            tracks.push(TrackState {
                info: ProtectedTrack {
                    track_id: t.track_id,
                    kind: t.kind,
                    format: t.format,
                    encryption: TrackEncryption {
                        scheme,
                        kid: key.kid,
                        iv_size,
                        constant_iv,
                        crypt_byte_block: crypt,
                        skip_byte_block: skip,
                    },
                },
                key: Key::new(&key.key),
                cipher: match constant_iv {
                    Some(iv) => SampleCipher::Cbc {
                        iv,
                        crypt: usize::from(crypt),
                        skip: usize::from(skip),
                    },
                    None => SampleCipher::Ctr,
                },
                avc: t.avc,
                default_sample_size: t.default_sample_size,
            });
        }
        let mut kids: Vec<[u8; 16]> = tracks.iter().map(|t| t.info.encryption.kid).collect();
        kids.sort_unstable();
        kids.dedup();
        let mut pssh = vec![pssh_box(&COMMON_SYSTEM_ID, &kids, &[])?];
        pssh.extend(options.pssh.iter().cloned());
        let init = write_protected(
            clear_init,
            &|id| {
                tracks
                    .iter()
                    .find(|t| t.info.track_id == id)
                    .map(|t| t.info.encryption.clone())
            },
            &pssh,
        )?;
        Ok(Self {
            scheme,
            iv_size: options.iv_size,
            init,
            pssh,
            tracks,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The protected init segment.
    pub fn init_segment(&self) -> &[u8] {
        &self.init
    }

    /// Every `pssh` box of the init segment (the common one first), for manifests (`cenc:pssh`).
    pub fn pssh(&self) -> &[Vec<u8>] {
        &self.pssh
    }

    pub fn tracks(&self) -> impl Iterator<Item = &ProtectedTrack> {
        self.tracks.iter().map(|t| &t.info)
    }

    fn track(&self, id: u32) -> Option<&TrackState> {
        self.tracks.iter().find(|t| t.info.track_id == id)
    }

    /// Encrypt one clear media segment (styp, then moof + mdat pairs). 'cenc' per-sample IVs count up from
    /// `first_iv` (8 or 16 bytes, the configured IV size) across the segment's samples, or from a random value
    /// when it is `None`: a given IV must never be reused with the same key. 'cbcs' takes no IV here.
    pub fn encrypt(&self, segment: &[u8], first_iv: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut ivs = match self.scheme {
            Scheme::Cenc => Some(IvCounter::new(self.iv_size, first_iv)?),
            Scheme::Cbcs if first_iv.is_some() => {
                return Err(Error::InvalidArgument(
                    "'cbcs' uses the constant IV of the init segment".into(),
                ))
            }
            Scheme::Cbcs => None,
        };
        let mut params: Vec<Option<ParamSets>> = self
            .tracks
            .iter()
            .map(|t| t.avc.as_ref().map(|a| a.params.clone()))
            .collect();
        let tops: Vec<BoxRef> = boxes(segment, 0..segment.len()).collect::<Result<_>>()?;
        if !tops.iter().any(|b| &b.kind == b"moof") {
            return Err(malformed("the segment has no movie fragment (moof)"));
        }
        let mut out = Vec::with_capacity(segment.len() + 4096);
        let mut i = 0;
        while i < tops.len() {
            let b = &tops[i];
            match &b.kind {
                b"moof" => {
                    let mdat = tops
                        .get(i + 1)
                        .filter(|m| &m.kind == b"mdat")
                        .ok_or_else(|| malformed("a moof is not followed by its mdat"))?;
                    self.encrypt_fragment(&mut out, segment, b, mdat, ivs.as_mut(), &mut params)?;
                    i += 2;
                    continue;
                }
                b"mdat" => return Err(malformed("an mdat without a moof before it")),
                b"moov" => {
                    return Err(unsupported(
                        "a media segment with a moov (pass the init segment apart)",
                    ))
                }
                b"sidx" | b"ssix" => {
                    return Err(unsupported(
                        "segment index boxes in a media segment (CMAF segments have none)",
                    ))
                }
                _ => copy_box(&mut out, segment, b)?,
            }
            i += 1;
        }
        Ok(out)
    }

    fn encrypt_fragment(
        &self,
        out: &mut Vec<u8>,
        segment: &[u8],
        moof: &BoxRef,
        mdat: &BoxRef,
        mut ivs: Option<&mut IvCounter>,
        params: &mut [Option<ParamSets>],
    ) -> Result<()> {
        let fragments = read_fragment(segment, moof, mdat, &|id| {
            self.track(id).map(|t| t.default_sample_size)
        })?;
        let base = mdat.body_start();
        let mut payload = segment[mdat.body()].to_vec();
        let mut aux = Vec::with_capacity(fragments.len());
        for fragment in &fragments {
            if fragment.encrypted {
                return Err(unsupported(
                    "the fragment already has senc/saiz/saio boxes (already encrypted?)",
                ));
            }
            if fragment.samples.is_empty() {
                aux.push(None);
                continue;
            }
            let index = self
                .tracks
                .iter()
                .position(|t| t.info.track_id == fragment.track_id)
                .ok_or_else(|| {
                    malformed(format!(
                        "the fragment has unknown track {}",
                        fragment.track_id
                    ))
                })?;
            let track = &self.tracks[index];
            let mut info = AuxInfo {
                flags: if track.avc.is_some() {
                    SENC_SUBSAMPLES
                } else {
                    0
                },
                ..AuxInfo::default()
            };
            for range in &fragment.samples {
                let sample = &mut payload[range.start - base..range.end - base];
                let subsamples = match (&track.avc, params[index].as_mut()) {
                    (Some(avc), Some(p)) => Some(h264_subsamples(
                        sample,
                        avc.length_size,
                        p,
                        self.alignment(),
                    )?),
                    _ => None,
                };
                let entry_start = info.entries.len();
                let protected = protected_ranges(sample.len(), subsamples.as_deref())?;
                match (&track.cipher, ivs.as_deref_mut()) {
                    (SampleCipher::Ctr, Some(ivs)) => {
                        info.entries.extend_from_slice(ivs.entry());
                        let mut stream = track.key.ctr(&ivs.counter_block());
                        for r in protected {
                            stream.apply_keystream(&mut sample[r]);
                        }
                        ivs.advance(sample.len());
                    }
                    (SampleCipher::Cbc { iv, crypt, skip }, _) => {
                        for r in protected {
                            track
                                .key
                                .cbc_pattern_encrypt(iv, &mut sample[r], *crypt, *skip);
                        }
                    }
                    (SampleCipher::Ctr, None) => {
                        return Err(Error::InvalidArgument("'cenc' needs per-sample IVs".into()))
                    }
                }
                if let Some(subsamples) = &subsamples {
                    write_subsamples(&mut info.entries, subsamples)?;
                }
                let size = u8::try_from(info.entries.len() - entry_start).map_err(|_| {
                    unsupported("a sample with too many NAL units for its saiz entry (at most 40 subsamples)")
                })?;
                info.sizes.push(size);
            }
            aux.push(Some(info));
        }
        write_moof(out, segment, moof, &aux)?;
        write_box_like(out, mdat, &payload)
    }

    fn alignment(&self) -> Alignment {
        match self.scheme {
            Scheme::Cenc => Alignment::WholeBlocks,
            Scheme::Cbcs => Alignment::SliceData,
        }
    }
}

/// The protected byte ranges of a sample: its subsamples' protected parts, or the whole sample.
pub(crate) fn protected_ranges(
    len: usize,
    subsamples: Option<&[Subsample]>,
) -> Result<Vec<std::ops::Range<usize>>> {
    let Some(subsamples) = subsamples else {
        return Ok(std::iter::once(0..len).collect());
    };
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(subsamples.len());
    for s in subsamples {
        pos += usize::from(s.clear);
        let end = pos + s.protected as usize;
        if end > len {
            return Err(malformed(format!(
                "subsamples cover {end} bytes of a {len}-byte sample"
            )));
        }
        if s.protected > 0 {
            out.push(pos..end);
        }
        pos = end;
    }
    if pos != len {
        return Err(malformed(format!(
            "subsamples cover {pos} bytes of a {len}-byte sample"
        )));
    }
    Ok(out)
}

fn write_subsamples(out: &mut Vec<u8>, subsamples: &[Subsample]) -> Result<()> {
    let count = u16::try_from(subsamples.len())
        .map_err(|_| unsupported("over 65535 subsamples in a sample"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for s in subsamples {
        out.extend_from_slice(&s.clear.to_be_bytes());
        out.extend_from_slice(&s.protected.to_be_bytes());
    }
    Ok(())
}

/// 'cenc' per-sample IVs: an 8-byte IV is the high half of the counter block and counts up by one per sample;
/// a 16-byte IV is the whole counter block and moves past the blocks the previous sample used, so no counter
/// block is ever used twice within a segment.
struct IvCounter {
    size: u8,
    value: u128,
    entry: [u8; 16],
}

impl IvCounter {
    fn new(size: u8, first: Option<&[u8]>) -> Result<Self> {
        let mut bytes = [0u8; 16];
        let n = usize::from(size);
        match first {
            Some(iv) if iv.len() == n => bytes[16 - n..].copy_from_slice(iv),
            Some(iv) => {
                return Err(Error::InvalidArgument(format!(
                    "the first IV must be {size} bytes (the IV size), got {}",
                    iv.len()
                )))
            }
            None => random(&mut bytes[16 - n..])?,
        }
        let mut counter = Self {
            size,
            value: u128::from_be_bytes(bytes),
            entry: [0; 16],
        };
        counter.refresh();
        Ok(counter)
    }

    fn refresh(&mut self) {
        let all = self.value.to_be_bytes();
        let n = usize::from(self.size);
        self.entry[..n].copy_from_slice(&all[16 - n..]);
    }

    /// The IV as written in senc.
    fn entry(&self) -> &[u8] {
        &self.entry[..usize::from(self.size)]
    }

    fn counter_block(&self) -> [u8; 16] {
        let mut block = [0u8; 16];
        let n = usize::from(self.size);
        block[..n].copy_from_slice(&self.entry[..n]);
        block
    }

    fn advance(&mut self, sample_len: usize) {
        self.value = if self.size == 8 {
            u128::from((self.value as u64).wrapping_add(1))
        } else {
            self.value
                .wrapping_add(sample_len.div_ceil(cipher::BLOCK) as u128)
        };
        self.refresh();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protect::h264::{nal_type, nal_units};

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/protect")
            .join(name);
        std::fs::read(path).unwrap()
    }

    /// Every coded slice of the CABAC fixtures has its header end on cabac_alignment_one_bits, which a slice
    /// header parser that stopped anywhere else would almost never see.
    #[test]
    fn slice_headers_end_where_cabac_alignment_begins() {
        for name in ["encoder", "stress"] {
            let init = fixture(&format!("{name}.init.mp4"));
            let segment = fixture(&format!("{name}.seg.m4s"));
            let track = read_tracks(&init).unwrap().remove(0);
            let avc = track.avc.unwrap();
            let mut params = avc.params.clone();
            let tops: Vec<BoxRef> = boxes(&segment, 0..segment.len())
                .collect::<Result<_>>()
                .unwrap();
            let mut slices = 0;
            for pair in tops.windows(2).filter(|p| &p[0].kind == b"moof") {
                let sizes = |_| Some(track.default_sample_size);
                for fragment in read_fragment(&segment, &pair[0], &pair[1], &sizes).unwrap() {
                    for range in fragment.samples {
                        for nal in nal_units(&segment[range], avc.length_size) {
                            let nal = nal.unwrap();
                            params.add(nal).unwrap();
                            if matches!(nal_type(nal), Some(1 | 5)) {
                                assert_eq!(
                                    params.cabac_aligned(nal).unwrap(),
                                    Some(true),
                                    "{name} slice {slices}"
                                );
                                slices += 1;
                            }
                        }
                    }
                }
            }
            assert!(slices >= 50, "{name}: {slices} slices");
        }
    }

    #[test]
    fn iv_counters() {
        let mut c = IvCounter::new(8, Some(&u64::MAX.to_be_bytes())).unwrap();
        assert_eq!(c.counter_block()[..8], [0xff; 8]);
        assert_eq!(c.counter_block()[8..], [0; 8]);
        c.advance(1000);
        assert_eq!(c.entry(), &[0; 8]);
        let mut c = IvCounter::new(16, Some(&[0; 16])).unwrap();
        c.advance(33);
        assert_eq!(c.counter_block()[15], 3);
        assert_eq!(c.entry().len(), 16);
        assert!(IvCounter::new(16, Some(&[0; 8])).is_err());
    }

    #[test]
    fn protected_ranges_must_cover_the_sample() {
        let subs = [
            Subsample {
                clear: 2,
                protected: 16,
            },
            Subsample {
                clear: 3,
                protected: 0,
            },
        ];
        assert_eq!(protected_ranges(21, Some(&subs)).unwrap(), vec![2..18]);
        assert!(protected_ranges(20, Some(&subs)).is_err());
        assert!(protected_ranges(22, Some(&subs)).is_err());
        assert_eq!(protected_ranges(5, None).unwrap(), vec![0..5]);
    }
}

//! Movie fragments (moof + mdat): where each track's samples are, and the rewritten moof with the sample
//! auxiliary information of Common Encryption (`saiz`, `saio`, `senc` appended to each `traf`), the `trun` data
//! offsets moved by the moof's growth and `saio` pointing at the `senc` sample data, relative to the moof start
//! (the base of a fragment with default-base-is-moof, or of its only traf, as CMAF and browsers expect).

use std::ops::Range;

use crate::error::Result;

use super::mp4::{
    children, copy_box, malformed, unsupported, write_box, write_full_box, BoxRef, Reader,
};

/// Most samples one fragment may hold (a 4 s segment at 120 fps has 480).
pub const MAX_SAMPLES_PER_FRAGMENT: usize = 1 << 17;

const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_CTO: u32 = 0x00_0800;
/// senc flag: every entry has a subsample map.
pub const SENC_SUBSAMPLES: u32 = 0x2;

/// One track's part of a fragment.
#[derive(Debug, Clone)]
pub struct TrackFragment {
    pub track_id: u32,
    /// Byte ranges of its samples in the segment, in decode order.
    pub samples: Vec<Range<usize>>,
    /// Whether the traf already has Common Encryption boxes (senc, saiz or saio).
    pub encrypted: bool,
}

/// The Common Encryption auxiliary information of one track fragment.
#[derive(Debug, Clone, Default)]
pub struct AuxInfo {
    /// senc flags (0, or [`SENC_SUBSAMPLES`]).
    pub flags: u32,
    /// Each sample's entry (IV, then the subsample map when flagged), concatenated.
    pub entries: Vec<u8>,
    /// Each sample's entry size.
    pub sizes: Vec<u8>,
}

fn tfhd_fields(data: &[u8], tfhd: &BoxRef) -> Result<(u32, u32, Option<u32>)> {
    let mut r = Reader::body(data, tfhd);
    let (_, flags) = r.version_flags()?;
    let track_id = r.u32()?;
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        return Err(unsupported(
            "tfhd with an explicit base-data-offset (CMAF fragments use default-base-is-moof)",
        ));
    }
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
        r.skip(4)?;
    }
    if flags & TFHD_DEFAULT_DURATION != 0 {
        r.skip(4)?;
    }
    let default_size = if flags & TFHD_DEFAULT_SIZE != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    Ok((flags, track_id, default_size))
}

/// The trun's data offset (if present) and its samples' sizes.
fn trun_fields(data: &[u8], trun: &BoxRef, default_size: u32) -> Result<(Option<i32>, Vec<u32>)> {
    let mut r = Reader::body(data, trun);
    let (_, flags) = r.version_flags()?;
    let count = r.u32()? as usize;
    let data_offset = if flags & TRUN_DATA_OFFSET != 0 {
        Some(r.i32()?)
    } else {
        None
    };
    if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
        r.skip(4)?;
    }
    let fields = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    if count > MAX_SAMPLES_PER_FRAGMENT || count.saturating_mul(fields) > r.remaining() {
        return Err(malformed(format!(
            "trun declares {count} samples it has no room for"
        )));
    }
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        if flags & TRUN_DURATION != 0 {
            r.skip(4)?;
        }
        sizes.push(if flags & TRUN_SIZE != 0 {
            r.u32()?
        } else {
            default_size
        });
        if flags & TRUN_FLAGS != 0 {
            r.skip(4)?;
        }
        if flags & TRUN_CTO != 0 {
            r.skip(4)?;
        }
    }
    Ok((data_offset, sizes))
}

/// Where each track's samples are in `moof` + `mdat` (the mdat right after the moof); every sample must lie
/// inside that mdat and no two may overlap. `trex_size(track_id)` gives the movie's default sample size.
pub fn read_fragment(
    data: &[u8],
    moof: &BoxRef,
    mdat: &BoxRef,
    trex_size: &dyn Fn(u32) -> Option<u32>,
) -> Result<Vec<TrackFragment>> {
    let mut out: Vec<TrackFragment> = Vec::new();
    let trafs: Vec<BoxRef> = children(data, moof, 0)?
        .filter(|b| b.as_ref().map_or(true, |b| &b.kind == b"traf"))
        .collect::<Result<_>>()?;
    let mut total = 0usize;
    for traf in &trafs {
        let mut tfhd = None;
        let mut truns = Vec::new();
        let mut encrypted = false;
        for child in children(data, traf, 0)? {
            let child = child?;
            match &child.kind {
                b"tfhd" => tfhd = Some(child),
                b"trun" => truns.push(child),
                b"senc" | b"saiz" | b"saio" => encrypted = true,
                _ => {}
            }
        }
        let tfhd = tfhd.ok_or_else(|| malformed("traf without tfhd"))?;
        let (flags, track_id, tfhd_size) = tfhd_fields(data, &tfhd)?;
        if flags & TFHD_DEFAULT_BASE_IS_MOOF == 0 && trafs.len() > 1 {
            return Err(unsupported(
                "several track fragments without default-base-is-moof",
            ));
        }
        let default_size = match (tfhd_size, trex_size(track_id)) {
            (Some(size), _) => size,
            (None, Some(size)) => size,
            (None, None) => {
                return Err(malformed(format!(
                    "the fragment has track {track_id}, which the init segment lacks"
                )))
            }
        };
        let base = moof.start as i64;
        let mut cursor = base;
        let mut samples = Vec::new();
        for trun in &truns {
            let (data_offset, sizes) = trun_fields(data, trun, default_size)?;
            total += sizes.len();
            if total > MAX_SAMPLES_PER_FRAGMENT {
                return Err(malformed("too many samples in one fragment"));
            }
            if let Some(offset) = data_offset {
                cursor = base + i64::from(offset);
            }
            for size in sizes {
                let end = cursor + i64::from(size);
                if cursor < mdat.body_start() as i64 || end > mdat.end as i64 {
                    return Err(malformed(format!(
                        "a sample of track {track_id} at {cursor}..{end} lies outside the mdat at {}..{}",
                        mdat.body_start(),
                        mdat.end
                    )));
                }
                samples.push(cursor as usize..end as usize);
                cursor = end;
            }
        }
        out.push(TrackFragment {
            track_id,
            samples,
            encrypted,
        });
    }
    let mut all: Vec<&Range<usize>> = out.iter().flat_map(|t| &t.samples).collect();
    all.sort_by_key(|r| r.start);
    if all.windows(2).any(|w| w[0].end > w[1].start) {
        return Err(malformed("samples of the fragment overlap"));
    }
    Ok(out)
}

/// Write `moof` with each traf's auxiliary information appended (`aux[i]` for the i-th traf; `None` leaves it
/// clear) and every offset fixed up for the moof's new size. The mdat must follow it unchanged.
pub fn write_moof(
    out: &mut Vec<u8>,
    data: &[u8],
    moof: &BoxRef,
    aux: &[Option<AuxInfo>],
) -> Result<()> {
    let start = out.len();
    let mut data_offsets: Vec<(usize, i32)> = Vec::new();
    let mut saio_fields: Vec<(usize, usize)> = Vec::new();
    let mut traf_index = 0;
    write_box(out, b"moof", |o| {
        for child in children(data, moof, 0)? {
            let child = child?;
            if &child.kind != b"traf" {
                copy_box(o, data, &child)?;
                continue;
            }
            let info = aux.get(traf_index).and_then(Option::as_ref);
            traf_index += 1;
            write_box(o, b"traf", |o| {
                for part in children(data, &child, 0)? {
                    let part = part?;
                    match &part.kind {
                        b"trun" => {
                            let at = o.len();
                            copy_box(o, data, &part)?;
                            let mut r = Reader::body(data, &part);
                            let (_, flags) = r.version_flags()?;
                            r.u32()?;
                            if flags & TRUN_DATA_OFFSET != 0 {
                                data_offsets.push((at + 16 - start, r.i32()?));
                            }
                        }
                        _ => copy_box(o, data, &part)?,
                    }
                }
                if let Some(info) = info {
                    if let Some(field) = write_aux(o, info)? {
                        saio_fields.push(field);
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    let moof_out = &mut out[start..];
    let growth = moof_out.len() as i64 - moof.len() as i64;
    for (at, offset) in data_offsets {
        let moved = i32::try_from(i64::from(offset) + growth)
            .map_err(|_| unsupported("a trun data offset would overflow 32 bits"))?;
        moof_out[at..at + 4].copy_from_slice(&moved.to_be_bytes());
    }
    for (field, senc_data) in saio_fields {
        let (field, senc_data) = (field - start, senc_data - start);
        let offset = u32::try_from(senc_data).map_err(|_| unsupported("a moof over 4 GiB"))?;
        moof_out[field..field + 4].copy_from_slice(&offset.to_be_bytes());
    }
    Ok(())
}

/// Append saiz, saio and senc; returns (saio offset field, senc sample data) positions in `out` when a saio was
/// written (it is left out when every sample's auxiliary information is empty: 'cbcs' audio, constant IV).
fn write_aux(out: &mut Vec<u8>, info: &AuxInfo) -> Result<Option<(usize, usize)>> {
    let count = u32::try_from(info.sizes.len()).map_err(|_| malformed("too many samples"))?;
    let mut saio_field = None;
    if info.sizes.iter().any(|s| *s != 0) {
        write_full_box(out, b"saiz", 0, 0, |o| {
            let first = info.sizes.first().copied().unwrap_or(0);
            if info.sizes.iter().all(|s| *s == first) {
                o.push(first);
                o.extend_from_slice(&count.to_be_bytes());
            } else {
                o.push(0);
                o.extend_from_slice(&count.to_be_bytes());
                o.extend_from_slice(&info.sizes);
            }
            Ok(())
        })?;
        write_full_box(out, b"saio", 0, 0, |o| {
            o.extend_from_slice(&1u32.to_be_bytes());
            saio_field = Some(o.len());
            o.extend_from_slice(&0u32.to_be_bytes()); // patched once the moof is complete
            Ok(())
        })?;
    }
    let senc_data = write_full_box(out, b"senc", 0, info.flags, |o| {
        o.extend_from_slice(&count.to_be_bytes());
        let at = o.len();
        o.extend_from_slice(&info.entries);
        Ok(at)
    })?;
    Ok(saio_field.map(|field| (field, senc_data)))
}

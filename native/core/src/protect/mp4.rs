//! ISO-BMFF (MP4) box reading and writing, bounds-checked: every read of hostile bytes returns
//! [`Error::MalformedMedia`] instead of panicking.

use std::ops::Range;

use crate::error::{Error, Result};

pub type FourCc = [u8; 4];

pub(crate) fn malformed(msg: impl Into<String>) -> Error {
    Error::MalformedMedia(msg.into())
}

pub(crate) fn unsupported(msg: impl Into<String>) -> Error {
    Error::UnsupportedMedia(msg.into())
}

/// A fourcc for messages (`avc1`, or its bytes escaped when they are not printable).
pub fn show(kind: &FourCc) -> String {
    kind.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// Where one box sits in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef {
    pub kind: FourCc,
    /// Offset of the size field.
    pub start: usize,
    /// 8, or 16 with a 64-bit size.
    pub header_len: usize,
    /// One past the last byte.
    pub end: usize,
}

impl BoxRef {
    pub fn body_start(&self) -> usize {
        self.start + self.header_len
    }

    pub fn body(&self) -> Range<usize> {
        self.body_start()..self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The boxes laid end to end in `data[range]`; an error item (then the end) when one does not fit.
pub struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
    /// Whether a size of 0 ("to the end of the file") is allowed: only for top-level boxes.
    top_level: bool,
}

/// The top-level boxes of `data[range]`.
pub fn boxes(data: &[u8], range: Range<usize>) -> Boxes<'_> {
    let end = range.end.min(data.len());
    Boxes {
        data,
        pos: range.start.min(end),
        end,
        failed: false,
        top_level: true,
    }
}

impl Iterator for Boxes<'_> {
    type Item = Result<BoxRef>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let item = self.read_header();
        match &item {
            Ok(b) => self.pos = b.end,
            Err(_) => self.failed = true,
        }
        Some(item)
    }
}

impl Boxes<'_> {
    fn read_header(&self) -> Result<BoxRef> {
        let start = self.pos;
        let mut r = Reader::new(&self.data[start..self.end]);
        let size32 = r
            .u32()
            .map_err(|_| malformed(format!("truncated box header at {start}")))?;
        let kind = r
            .fourcc()
            .map_err(|_| malformed(format!("truncated box header at {start}")))?;
        let (size, header_len) = match size32 {
            1 => {
                let large = r
                    .u64()
                    .map_err(|_| malformed(format!("truncated 64-bit box size at {start}")))?;
                (usize::try_from(large).unwrap_or(usize::MAX), 16)
            }
            0 if self.top_level => (self.end - start, 8),
            n => (n as usize, 8),
        };
        if size < header_len || size > self.end - start {
            return Err(malformed(format!(
                "box '{}' at {start} has size {size}, which does not fit in its {} bytes",
                show(&kind),
                self.end - start
            )));
        }
        Ok(BoxRef {
            kind,
            start,
            header_len,
            end: start + size,
        })
    }
}

/// The children of `parent` (starting `skip` bytes into its body, for full boxes and sample entries).
pub fn children<'a>(data: &'a [u8], parent: &BoxRef, skip: usize) -> Result<Boxes<'a>> {
    let start = parent.body_start() + skip;
    if start > parent.end {
        return Err(malformed(format!(
            "box '{}' is too short",
            show(&parent.kind)
        )));
    }
    let mut inner = boxes(data, start..parent.end);
    inner.top_level = false;
    Ok(inner)
}

/// The first child of `parent` of the given kind.
pub fn find(data: &[u8], parent: &BoxRef, skip: usize, kind: &FourCc) -> Result<Option<BoxRef>> {
    for child in children(data, parent, skip)? {
        let child = child?;
        if &child.kind == kind {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// Like [`find`], but the child must be there.
pub fn require(data: &[u8], parent: &BoxRef, skip: usize, kind: &FourCc) -> Result<BoxRef> {
    find(data, parent, skip, kind)?.ok_or_else(|| {
        malformed(format!(
            "box '{}' has no '{}'",
            show(&parent.kind),
            show(kind)
        ))
    })
}

/// A big-endian cursor over a byte slice; reads past the end are errors.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// A reader over the body of `b` in `data`.
    pub fn body(data: &'a [u8], b: &BoxRef) -> Self {
        Self::new(&data[b.body()])
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(malformed(format!(
                "needed {n} bytes at offset {} of a {}-byte field",
                self.pos,
                self.data.len()
            )));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn fourcc(&mut self) -> Result<FourCc> {
        self.array()
    }

    /// A full box's version and flags.
    pub fn version_flags(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

/// Append a box of `kind` whose body `body` writes; the size is filled in afterwards.
pub fn write_box<T>(
    out: &mut Vec<u8>,
    kind: &FourCc,
    body: impl FnOnce(&mut Vec<u8>) -> Result<T>,
) -> Result<T> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    let value = body(out)?;
    let size = u32::try_from(out.len() - start)
        .map_err(|_| unsupported(format!("box '{}' would exceed 4 GiB", show(kind))))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(value)
}

/// Append a full box (version and flags, then `body`).
pub fn write_full_box<T>(
    out: &mut Vec<u8>,
    kind: &FourCc,
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<T>,
) -> Result<T> {
    write_box(out, kind, |o| {
        o.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(o)
    })
}

/// Append `b` as it is, with its header rewritten to a plain 32-bit size when the body allows (a size of 0,
/// "to the end", is made explicit, so the box can move inside a rebuilt parent).
pub fn copy_box(out: &mut Vec<u8>, data: &[u8], b: &BoxRef) -> Result<()> {
    write_box(out, &b.kind, |o| {
        o.extend_from_slice(&data[b.body()]);
        Ok(())
    })
}

/// Append a box with a new payload and the same header length as `like` (8, or 16 with a 64-bit size), so what
/// follows the header stays where it was relative to the box start (an `mdat` the moof's offsets point into).
pub fn write_box_like(out: &mut Vec<u8>, like: &BoxRef, payload: &[u8]) -> Result<()> {
    if like.header_len == 16 {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&like.kind);
        out.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    } else {
        let size = u32::try_from(payload.len() + 8)
            .map_err(|_| unsupported(format!("box '{}' would exceed 4 GiB", show(&like.kind))))?;
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&like.kind);
    }
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_box(&mut out, kind, |o| {
            o.extend_from_slice(body);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn boxes_end_to_end_and_sizes() {
        let mut data = boxed(b"ftyp", b"isom");
        data.extend(boxed(b"free", b""));
        let found: Vec<_> = boxes(&data, 0..data.len()).collect::<Result<_>>().unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(&found[0].kind, b"ftyp");
        assert_eq!(found[0].body(), 8..12);
        assert_eq!(found[1].start, 12);
        assert!(found[1].body().is_empty());
    }

    #[test]
    fn size_zero_runs_to_the_end_and_is_made_explicit_when_copied() {
        let data = [0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3];
        let b = boxes(&data, 0..data.len()).next().unwrap().unwrap();
        assert_eq!(b.end, 11);
        let mut out = Vec::new();
        copy_box(&mut out, &data, &b).unwrap();
        assert_eq!(&out[..4], &11u32.to_be_bytes());
    }

    #[test]
    fn size_zero_is_only_for_top_level_boxes() {
        let mut data = Vec::new();
        write_box(&mut data, b"moof", |o| {
            o.extend_from_slice(&[0, 0, 0, 0]);
            o.extend_from_slice(b"mfhd");
            o.extend_from_slice(&[0; 8]);
            Ok(())
        })
        .unwrap();
        let moof = boxes(&data, 0..data.len()).next().unwrap().unwrap();
        assert!(children(&data, &moof, 0).unwrap().next().unwrap().is_err());
    }

    #[test]
    fn large_size_header() {
        let mut data = vec![0, 0, 0, 1];
        data.extend_from_slice(b"mdat");
        data.extend_from_slice(&18u64.to_be_bytes());
        data.extend_from_slice(&[7, 7]);
        let b = boxes(&data, 0..data.len()).next().unwrap().unwrap();
        assert_eq!((b.header_len, b.end), (16, 18));
    }

    #[test]
    fn overruns_are_errors_not_panics() {
        for data in [
            &[0u8, 0, 0, 9, b'a', b'b', b'c', b'd'][..],
            &[0, 0, 0, 4, b'a', b'b', b'c', b'd'],
            &[0, 0, 0, 1, b'a', b'b', b'c', b'd', 0, 0],
            &[0, 0, 0],
        ] {
            let results: Vec<_> = boxes(data, 0..data.len()).collect();
            assert!(results.last().unwrap().is_err(), "{data:?}");
        }
        let mut r = Reader::new(&[1, 2]);
        assert!(r.u32().is_err());
        assert_eq!(r.u16().unwrap(), 0x0102);
    }
}

//! Subsample maps for H.264 samples (ISO/IEC 23001-7 9.5 / 10.4, CMAF 8.2.2): every NAL unit's length prefix,
//! its header byte and, for coded slices, the slice header stay clear; the slice data is protected. Parameter
//! sets, SEI and every other non-slice NAL unit stay wholly clear. Clear runs of consecutive NAL units merge into
//! the next subsample's clear count.

use crate::error::Result;

use super::cipher::BLOCK;
use super::h264::{nal_type, nal_units, ParamSets, NAL_IDR_SLICE, NAL_PPS, NAL_SLICE, NAL_SPS};
use super::mp4::unsupported;

/// One (clear, protected) pair of a sample's subsample map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsample {
    pub clear: u16,
    pub protected: u32,
}

/// How protected ranges are cut for a scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// 'cenc' (CMAF): each protected range is a whole number of 16-byte blocks; the misaligned head of the
    /// slice data joins the clear part.
    WholeBlocks,
    /// 'cbcs': the protected range starts right after the slice header (its partial tail block stays clear by
    /// the scheme's own rule).
    SliceData,
}

/// Accumulates clear bytes across NAL units and splits clear counts that exceed 16 bits.
struct Builder {
    out: Vec<Subsample>,
    clear: usize,
}

impl Builder {
    fn push(&mut self, clear: usize, protected: usize) -> Result<()> {
        self.clear += clear;
        if protected == 0 {
            return Ok(());
        }
        let protected =
            u32::try_from(protected).map_err(|_| unsupported("a NAL unit over 4 GiB"))?;
        while self.clear > usize::from(u16::MAX) {
            self.out.push(Subsample {
                clear: u16::MAX,
                protected: 0,
            });
            self.clear -= usize::from(u16::MAX);
        }
        self.out.push(Subsample {
            clear: self.clear as u16,
            protected,
        });
        self.clear = 0;
        Ok(())
    }

    fn finish(mut self) -> Vec<Subsample> {
        while self.clear > 0 {
            let clear = self.clear.min(usize::from(u16::MAX));
            self.out.push(Subsample {
                clear: clear as u16,
                protected: 0,
            });
            self.clear -= clear;
        }
        self.out
    }
}

/// The subsample map of one length-prefixed H.264 sample; in-band SPS and PPS NAL units update `params` for the
/// slices after them.
pub fn h264_subsamples(
    sample: &[u8],
    length_size: usize,
    params: &mut ParamSets,
    alignment: Alignment,
) -> Result<Vec<Subsample>> {
    let mut b = Builder {
        out: Vec::new(),
        clear: 0,
    };
    for nal in nal_units(sample, length_size) {
        let nal = nal?;
        match nal_type(nal) {
            Some(NAL_SLICE | NAL_IDR_SLICE) => {
                let header = params.slice_header_len(nal)?.min(nal.len());
                let mut clear = header;
                let mut protected = nal.len() - header;
                if alignment == Alignment::WholeBlocks {
                    clear += protected % BLOCK;
                    protected -= protected % BLOCK;
                }
                b.push(length_size + clear, protected)?;
            }
            Some(NAL_SPS | NAL_PPS) => {
                params.add(nal)?;
                b.push(length_size + nal.len(), 0)?;
            }
            _ => b.push(length_size + nal.len(), 0)?,
        }
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn clear_runs_merge_and_split_at_16_bits() {
        let mut b = Builder {
            out: Vec::new(),
            clear: 0,
        };
        b.push(10, 0).unwrap();
        b.push(70_000, 32).unwrap();
        b.push(5, 0).unwrap();
        let out = b.finish();
        assert_eq!(
            out,
            vec![
                Subsample {
                    clear: u16::MAX,
                    protected: 0
                },
                Subsample {
                    clear: (70_010 - 65_535) as u16,
                    protected: 32
                },
                Subsample {
                    clear: 5,
                    protected: 0
                },
            ]
        );
    }

    #[test]
    fn non_slice_nal_units_stay_clear() {
        let mut params = ParamSets::default();
        // an access unit delimiter and an SEI, no slices
        let sample = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x06, 0x05, 0x80];
        let subs = h264_subsamples(&sample, 4, &mut params, Alignment::WholeBlocks).unwrap();
        assert_eq!(
            subs,
            vec![Subsample {
                clear: 13,
                protected: 0
            }]
        );
    }
}

//! Just enough H.264 (ITU-T H.264 7.3) to find where each slice's data begins: the sequence and picture
//! parameter set fields the slice header depends on, and the slice header itself. Subsample encryption keeps
//! the NAL header and the slice header clear, as CMAF and ISO/IEC 23001-7 ask for 'cbcs' (and Shaka Packager
//! does for both schemes), so a decoder can parse them without the key.

use crate::error::Result;

use super::mp4::{malformed, unsupported};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR_SLICE: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

const MAX_SPS: usize = 32;
const MAX_PPS: usize = 256;
/// Highest num_ref_idx_lX_active_minus1 (32 references for field pictures).
const MAX_REF_IDX: u32 = 31;
/// Longest ref_pic_list_modification or memory_management_control_operation loop accepted.
const MAX_LOOP: usize = 66;

/// Reads RBSP bits straight from an escaped NAL unit payload, skipping emulation prevention bytes
/// (0x00 0x00 0x03), so the position it reports is an offset in the escaped bytes as stored.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    cur: u8,
    bits_left: u8,
    zeros: u8,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            cur: 0,
            bits_left: 0,
            zeros: 0,
        }
    }

    fn load(&mut self) -> Result<()> {
        loop {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| malformed("H.264 header runs past the end of its NAL unit"))?;
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                self.zeros = 0;
                continue;
            }
            self.zeros = if b == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
            self.cur = b;
            self.bits_left = 8;
            return Ok(());
        }
    }

    fn bit(&mut self) -> Result<bool> {
        if self.bits_left == 0 {
            self.load()?;
        }
        self.bits_left -= 1;
        Ok((self.cur >> self.bits_left) & 1 == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    fn skip(&mut self, n: u32) -> Result<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// Exp-Golomb unsigned (ue(v)); 32 or more leading zeros is malformed.
    fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(malformed("H.264 Exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Exp-Golomb signed (se(v)); only its length matters here.
    fn se(&mut self) -> Result<()> {
        self.ue().map(|_| ())
    }

    /// Escaped bytes consumed, counting a partly read byte.
    fn consumed(&self) -> usize {
        self.pos
    }

    /// Whether the bits left in the current byte are all ones (cabac_alignment_one_bit).
    #[cfg(test)]
    fn rest_of_byte_is_ones(&self) -> bool {
        let mask = (1u16 << self.bits_left) - 1;
        u16::from(self.cur) & mask == mask
    }
}

fn bounded(v: u32, max: u32, what: &str) -> Result<u32> {
    if v > max {
        return Err(malformed(format!(
            "H.264 {what} {v} is out of range (at most {max})"
        )));
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    frame_mbs_only: bool,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pps {
    sps_id: usize,
    cabac: bool,
    bottom_field_pic_order_in_frame_present: bool,
    slice_groups: bool,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

/// The parameter sets seen so far (from the avcC record, then in-band ones in sample order).
#[derive(Debug, Clone)]
pub struct ParamSets {
    sps: Vec<Option<Sps>>,
    pps: Vec<Option<Pps>>,
}

impl Default for ParamSets {
    fn default() -> Self {
        Self {
            sps: vec![None; MAX_SPS],
            pps: vec![None; MAX_PPS],
        }
    }
}

/// nal_unit_type of a NAL unit (its first byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

fn scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let code = bounded(r.ue()?, 255, "delta_scale code")?;
            // se(v) mapping: k -> (-1)^(k+1) * ceil(k / 2)
            let delta = if code % 2 == 1 {
                (code / 2 + 1) as i32
            } else {
                -((code / 2) as i32)
            };
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

const HIGH_PROFILES: [u32; 12] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134];

impl ParamSets {
    /// Take in an SPS or PPS NAL unit; other NAL units are ignored.
    pub fn add(&mut self, nal: &[u8]) -> Result<()> {
        match nal_type(nal) {
            Some(NAL_SPS) => self.add_sps(&nal[1..]),
            Some(NAL_PPS) => self.add_pps(&nal[1..]),
            _ => Ok(()),
        }
    }

    fn add_sps(&mut self, payload: &[u8]) -> Result<()> {
        let mut r = BitReader::new(payload);
        let profile_idc = r.bits(8)?;
        r.skip(16)?; // constraint flags, reserved bits, level_idc
        let id = bounded(r.ue()?, MAX_SPS as u32 - 1, "seq_parameter_set_id")? as usize;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if HIGH_PROFILES.contains(&profile_idc) || profile_idc == 135 {
            chroma_format_idc = bounded(r.ue()?, 3, "chroma_format_idc")?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = bounded(r.ue()?, 12, "log2_max_frame_num_minus4")? + 4;
        let poc_type = bounded(r.ue()?, 2, "pic_order_cnt_type")?;
        let mut log2_max_poc_lsb = 0;
        let mut delta_pic_order_always_zero = false;
        if poc_type == 0 {
            log2_max_poc_lsb = bounded(r.ue()?, 12, "log2_max_pic_order_cnt_lsb_minus4")? + 4;
        } else if poc_type == 1 {
            delta_pic_order_always_zero = r.bit()?;
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = bounded(r.ue()?, 255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..cycle {
                r.se()?;
            }
        }
        r.ue()?; // max_num_ref_frames
        r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
        r.ue()?; // pic_width_in_mbs_minus1
        r.ue()?; // pic_height_in_map_units_minus1
        let frame_mbs_only = r.bit()?;
        self.sps[id] = Some(Sps {
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_frame_num,
            frame_mbs_only,
            poc_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
        });
        Ok(())
    }

    fn add_pps(&mut self, payload: &[u8]) -> Result<()> {
        let mut r = BitReader::new(payload);
        let id = bounded(r.ue()?, MAX_PPS as u32 - 1, "pic_parameter_set_id")? as usize;
        let sps_id = bounded(r.ue()?, MAX_SPS as u32 - 1, "seq_parameter_set_id")? as usize;
        let cabac = r.bit()?;
        let bottom_field_pic_order_in_frame_present = r.bit()?;
        let slice_groups = r.ue()? > 0;
        if slice_groups {
            // Flexible macroblock ordering (Baseline only): record it, and refuse its slices.
            self.pps[id] = Some(Pps {
                sps_id,
                cabac,
                bottom_field_pic_order_in_frame_present,
                slice_groups,
                num_ref_idx_l0_default_minus1: 0,
                num_ref_idx_l1_default_minus1: 0,
                weighted_pred: false,
                weighted_bipred_idc: 0,
                deblocking_filter_control_present: false,
                redundant_pic_cnt_present: false,
            });
            return Ok(());
        }
        let num_ref_idx_l0_default_minus1 =
            bounded(r.ue()?, MAX_REF_IDX, "num_ref_idx_l0_default_active_minus1")?;
        let num_ref_idx_l1_default_minus1 =
            bounded(r.ue()?, MAX_REF_IDX, "num_ref_idx_l1_default_active_minus1")?;
        let weighted_pred = r.bit()?;
        let weighted_bipred_idc = r.bits(2)?;
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        let deblocking_filter_control_present = r.bit()?;
        r.skip(1)?; // constrained_intra_pred_flag
        let redundant_pic_cnt_present = r.bit()?;
        self.pps[id] = Some(Pps {
            sps_id,
            cabac,
            bottom_field_pic_order_in_frame_present,
            slice_groups,
            num_ref_idx_l0_default_minus1,
            num_ref_idx_l1_default_minus1,
            weighted_pred,
            weighted_bipred_idc,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        });
        Ok(())
    }

    /// Bytes from the start of a coded slice NAL unit (type 1 or 5) to the end of its slice header, the NAL
    /// header byte included and a partly used last byte counted whole.
    pub fn slice_header_len(&self, nal: &[u8]) -> Result<usize> {
        self.parse_slice_header(nal).map(|(len, _)| len)
    }

    fn parse_slice_header<'a>(&self, nal: &'a [u8]) -> Result<(usize, BitReader<'a>)> {
        let header = *nal.first().ok_or_else(|| malformed("empty NAL unit"))?;
        let nal_ref_idc = (header >> 5) & 3;
        let idr = header & 0x1f == NAL_IDR_SLICE;
        let mut r = BitReader::new(&nal[1..]);
        r.ue()?; // first_mb_in_slice
        let slice_type = bounded(r.ue()?, 9, "slice_type")? % 5;
        let (p, b, i, sp, si) = (
            slice_type == 0,
            slice_type == 1,
            slice_type == 2,
            slice_type == 3,
            slice_type == 4,
        );
        let pps_id = bounded(r.ue()?, MAX_PPS as u32 - 1, "pic_parameter_set_id")? as usize;
        let pps = self.pps[pps_id].ok_or_else(|| {
            malformed(format!(
                "H.264 slice refers to picture parameter set {pps_id}, not seen"
            ))
        })?;
        if pps.slice_groups {
            return Err(unsupported(
                "H.264 with slice groups (flexible macroblock ordering)",
            ));
        }
        let sps = self.sps[pps.sps_id].ok_or_else(|| {
            malformed(format!("H.264 picture parameter set {pps_id} refers to sequence parameter set {}, not seen", pps.sps_id))
        })?;
        if sps.separate_colour_plane {
            r.skip(2)?; // colour_plane_id
        }
        r.skip(sps.log2_max_frame_num)?; // frame_num
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.bit()?;
            if field_pic {
                r.skip(1)?; // bottom_field_flag
            }
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        if sps.poc_type == 0 {
            r.skip(sps.log2_max_poc_lsb)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?; // delta_pic_order_cnt_bottom
            }
        }
        if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
            r.se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?;
            }
        }
        if pps.redundant_pic_cnt_present {
            r.ue()?;
        }
        if b {
            r.skip(1)?; // direct_spatial_mv_pred_flag
        }
        let (mut l0, mut l1) = (
            pps.num_ref_idx_l0_default_minus1,
            pps.num_ref_idx_l1_default_minus1,
        );
        if (p || sp || b) && r.bit()? {
            l0 = bounded(r.ue()?, MAX_REF_IDX, "num_ref_idx_l0_active_minus1")?;
            if b {
                l1 = bounded(r.ue()?, MAX_REF_IDX, "num_ref_idx_l1_active_minus1")?;
            }
        }
        // ref_pic_list_modification()
        if !i && !si {
            ref_pic_list_modification(&mut r)?;
            if b {
                ref_pic_list_modification(&mut r)?;
            }
        }
        if (pps.weighted_pred && (p || sp)) || (pps.weighted_bipred_idc == 1 && b) {
            pred_weight_table(
                &mut r,
                sps.chroma_array_type,
                l0,
                if b { Some(l1) } else { None },
            )?;
        }
        if nal_ref_idc != 0 {
            dec_ref_pic_marking(&mut r, idr)?;
        }
        if pps.cabac && !i && !si {
            r.ue()?; // cabac_init_idc
        }
        r.se()?; // slice_qp_delta
        if sp || si {
            if sp {
                r.skip(1)?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present && r.ue()? != 1 {
            r.se()?; // slice_alpha_c0_offset_div2
            r.se()?; // slice_beta_offset_div2
        }
        Ok((1 + r.consumed(), r))
    }

    /// Whether the slice is CABAC coded and its header ends with cabac_alignment_one_bits (a self-check of the
    /// parser on real streams: a misparsed header leaves arbitrary bits there).
    #[cfg(test)]
    pub(crate) fn cabac_aligned(&self, nal: &[u8]) -> Result<Option<bool>> {
        let (_, r) = self.parse_slice_header(nal)?;
        let pps_cabac = {
            let mut pr = BitReader::new(&nal[1..]);
            pr.ue()?;
            pr.ue()?;
            let id = pr.ue()? as usize;
            self.pps.get(id).copied().flatten().map(|p| p.cabac)
        };
        Ok(pps_cabac.filter(|c| *c).map(|_| r.rest_of_byte_is_ones()))
    }
}

fn ref_pic_list_modification(r: &mut BitReader<'_>) -> Result<()> {
    if !r.bit()? {
        return Ok(());
    }
    for _ in 0..MAX_LOOP {
        match r.ue()? {
            0..=2 => {
                r.ue()?;
            }
            3 => return Ok(()),
            other => {
                return Err(malformed(format!(
                    "H.264 modification_of_pic_nums_idc {other}"
                )))
            }
        }
    }
    Err(malformed("H.264 ref_pic_list_modification does not end"))
}

fn pred_weight_table(
    r: &mut BitReader<'_>,
    chroma_array_type: u32,
    l0: u32,
    l1: Option<u32>,
) -> Result<()> {
    r.ue()?; // luma_log2_weight_denom
    if chroma_array_type != 0 {
        r.ue()?; // chroma_log2_weight_denom
    }
    for count in std::iter::once(l0).chain(l1) {
        for _ in 0..=count {
            if r.bit()? {
                r.se()?;
                r.se()?;
            }
            if chroma_array_type != 0 && r.bit()? {
                for _ in 0..4 {
                    r.se()?;
                }
            }
        }
    }
    Ok(())
}

fn dec_ref_pic_marking(r: &mut BitReader<'_>, idr: bool) -> Result<()> {
    if idr {
        return r.skip(2); // no_output_of_prior_pics_flag, long_term_reference_flag
    }
    if !r.bit()? {
        return Ok(());
    }
    for _ in 0..MAX_LOOP {
        match r.ue()? {
            0 => return Ok(()),
            1 | 2 | 4 | 6 => {
                r.ue()?;
            }
            3 => {
                r.ue()?;
                r.ue()?;
            }
            5 => {}
            other => {
                return Err(malformed(format!(
                    "H.264 memory_management_control_operation {other}"
                )))
            }
        }
    }
    Err(malformed("H.264 dec_ref_pic_marking does not end"))
}

/// The NAL units of a length-prefixed sample (AVC sample format, `length_size` of 1, 2 or 4 bytes).
pub fn nal_units(sample: &[u8], length_size: usize) -> NalUnits<'_> {
    NalUnits {
        sample,
        pos: 0,
        length_size,
        failed: false,
    }
}

pub struct NalUnits<'a> {
    sample: &'a [u8],
    pos: usize,
    length_size: usize,
    failed: bool,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.sample.len() {
            return None;
        }
        let rest = &self.sample[self.pos..];
        if rest.len() < self.length_size {
            self.failed = true;
            return Some(Err(malformed(
                "a NAL unit length prefix is cut off at the end of its sample",
            )));
        }
        let len = rest[..self.length_size]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let body = &rest[self.length_size..];
        if len == 0 || len > body.len() {
            self.failed = true;
            return Some(Err(malformed(format!(
                "a NAL unit of {len} bytes does not fit in the {} bytes left of its sample",
                body.len()
            ))));
        }
        self.pos += self.length_size + len;
        Some(Ok(&body[..len]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Write bits MSB first, then escape like an encoder would.
    struct BitWriter {
        bytes: Vec<u8>,
        nbits: usize,
    }

    impl BitWriter {
        fn new() -> Self {
            Self {
                bytes: Vec::new(),
                nbits: 0,
            }
        }
        fn bit(&mut self, b: bool) {
            if self.nbits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if b {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.nbits % 8);
            }
            self.nbits += 1;
        }
        fn bits(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = v + 1;
            let len = 32 - x.leading_zeros();
            self.bits(0, len - 1);
            self.bits(x, len);
        }
        fn escaped(&self) -> Vec<u8> {
            let mut out = Vec::new();
            let mut zeros = 0;
            for &b in &self.bytes {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                out.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
            }
            out
        }
    }

    fn sps_nal() -> Vec<u8> {
        // Main profile (no chroma fields), sps 0, log2_max_frame_num 4, poc type 0 with lsb 4 bits.
        let mut w = BitWriter::new();
        w.bits(77, 8);
        w.bits(0, 8);
        w.bits(30, 8);
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(0); // poc type
        w.ue(0); // log2_max_poc_lsb_minus4
        w.ue(1); // max_num_ref_frames
        w.bit(false);
        w.ue(19);
        w.ue(14);
        w.bit(true); // frame_mbs_only
        w.bit(true); // rbsp stop bit (ignored)
        let mut nal = vec![0x67];
        nal.extend(w.escaped());
        nal
    }

    fn pps_nal(deblocking: bool) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(0);
        w.bit(false); // CAVLC
        w.bit(false);
        w.ue(0); // one slice group
        w.ue(0);
        w.ue(0);
        w.bit(false);
        w.bits(0, 2);
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.bit(deblocking);
        w.bit(false);
        w.bit(false);
        w.bit(true);
        let mut nal = vec![0x68];
        nal.extend(w.escaped());
        nal
    }

    #[test]
    fn idr_slice_header_length_counts_the_partial_byte() {
        let mut ps = ParamSets::default();
        ps.add(&sps_nal()).unwrap();
        ps.add(&pps_nal(false)).unwrap();
        let mut w = BitWriter::new();
        w.ue(0); // first_mb (1 bit)
        w.ue(7); // slice_type I (7 bits)
        w.ue(0); // pps (1)
        w.bits(0, 4); // frame_num (4)
        w.ue(0); // idr_pic_id (1)
        w.bits(0, 4); // poc lsb (4)
        w.bits(0, 2); // dec_ref_pic_marking for IDR (2)
        w.ue(0); // slice_qp_delta (1) => 21 bits => 3 bytes
        let header_bits = w.nbits;
        assert_eq!(header_bits, 21);
        w.bits(0xabcdef, 24);
        let mut nal = vec![0x65];
        nal.extend(w.escaped());
        assert_eq!(ps.slice_header_len(&nal).unwrap(), 1 + 3);
    }

    /// Escaped bytes that hold the first `raw` bytes of the RBSP.
    fn escaped_len(escaped: &[u8], raw: usize) -> usize {
        let (mut seen, mut zeros) = (0, 0);
        for (i, &b) in escaped.iter().enumerate() {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            seen += 1;
            if seen == raw {
                return i + 1;
            }
        }
        escaped.len()
    }

    #[test]
    fn emulation_prevention_bytes_inside_the_header_are_counted() {
        let mut ps = ParamSets::default();
        ps.add(&sps_nal()).unwrap();
        ps.add(&pps_nal(true)).unwrap();
        let mut w = BitWriter::new();
        // first_mb_in_slice with 23 leading zeros: the payload starts 0x00 0x00 0x01, escaped to 00 00 03 01.
        w.ue((1 << 23) - 1);
        w.ue(5); // slice_type P
        w.ue(0);
        w.bits(0, 4);
        w.bits(0, 4);
        w.bit(false); // num_ref_idx_active_override
        w.bit(false); // ref_pic_list_modification_flag_l0
        w.bit(false); // adaptive_ref_pic_marking (nal_ref_idc != 0)
        w.ue(0); // slice_qp_delta
        w.ue(1); // disable_deblocking_filter_idc = 1: no offsets
        let bits = w.nbits;
        w.bits(0, 16);
        w.bits(1, 8);
        let escaped = w.escaped();
        assert_eq!(&escaped[..4], &[0, 0, 3, 1]);
        let mut nal = vec![0x41];
        nal.extend(&escaped);
        let expected = 1 + escaped_len(&escaped, bits.div_ceil(8));
        assert!(expected > 1 + bits.div_ceil(8));
        assert_eq!(ps.slice_header_len(&nal).unwrap(), expected);
    }

    #[test]
    fn unknown_parameter_sets_and_truncation_are_errors() {
        let ps = ParamSets::default();
        assert!(ps.slice_header_len(&[0x65, 0x88]).is_err());
        let mut ps = ParamSets::default();
        ps.add(&sps_nal()).unwrap();
        ps.add(&pps_nal(false)).unwrap();
        assert!(ps.slice_header_len(&[0x65, 0x88]).is_err());
        assert!(ps.slice_header_len(&[]).is_err());
        assert!(ps.add(&[0x67]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_parameter_sets_and_slices_never_panic(
            sps in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            pps in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            slice in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let mut ps = ParamSets::default();
            let _ = ps.add(&[&[0x67][..], &sps].concat());
            let _ = ps.add(&[&[0x68][..], &pps].concat());
            let _ = ps.add(&sps_nal());
            let _ = ps.add(&pps_nal(true));
            for header in [0x65u8, 0x41, 0x01, 0x25] {
                if let Ok(len) = ps.slice_header_len(&[&[header][..], &slice].concat()) {
                    proptest::prop_assert!(len <= slice.len() + 1);
                }
            }
            let _ = nal_units(&slice, 2).count();
        }
    }

    #[test]
    fn nal_units_split_and_overruns() {
        let sample = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 1, 0x65];
        let nals: Vec<_> = nal_units(&sample, 4).collect::<Result<_>>().unwrap();
        assert_eq!(nals, vec![&[0x09, 0xf0][..], &[0x65][..]]);
        assert!(nal_units(&[0, 0, 0, 9, 1], 4).any(|n| n.is_err()));
        assert!(nal_units(&[0, 0], 4).any(|n| n.is_err()));
    }
}

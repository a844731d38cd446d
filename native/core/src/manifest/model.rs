//! The title media description, parsed and validated once.

use serde::Deserialize;

use crate::error::{Error, Result};

use super::uri::hls_quoted_ok;

/// Most renditions of one kind in a title, and most segments per rendition (over 22 hours at 4 s).
pub const MAX_RENDITIONS: usize = 32;
pub const MAX_SEGMENTS: usize = 20_000;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Segment {
    /// In the rendition's timescale units.
    pub duration: u64,
    #[serde(default)]
    pub size: Option<u64>,
    /// `[offset, length]` of the moof + first (key) sample, for I-frame playlists.
    #[serde(default)]
    pub keyframe: Option<[u64; 2]>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rendition {
    pub id: String,
    pub codecs: String,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub frame_rate: Option<String>,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub timescale: u32,
    pub init: String,
    pub media: String,
    #[serde(default = "one")]
    pub start_number: u64,
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub channels: Option<u32>,
    #[serde(default)]
    pub sample_rate: Option<u32>,
    /// Derived once at parse time, so rendering is mostly copying.
    #[serde(skip)]
    pub(crate) cache: RenditionCache,
}

/// Per-rendition text and figures computed once when the description is parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RenditionCache {
    /// `#EXTINF:<secs>,\n<segment uri>` for every segment, concatenated; `ends[i]` is where segment i stops.
    pub segment_lines: String,
    pub ends: Vec<usize>,
    pub target_duration: u64,
    pub has_keyframes: bool,
    pub iframe_bandwidth: u64,
}

fn one() -> u64 {
    1
}

impl Rendition {
    /// Seconds of segment `i`.
    pub fn seconds(&self, i: usize) -> f64 {
        self.segments[i].duration as f64 / f64::from(self.timescale)
    }

    pub fn total_seconds(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum::<u64>() as f64 / f64::from(self.timescale)
    }

    pub fn max_segment_seconds(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).max().unwrap_or(0) as f64
            / f64::from(self.timescale)
    }

    /// The media URI of segment number `n` (template `$Number$` substituted).
    pub fn segment_uri(&self, n: u64) -> String {
        self.media.replace("$Number$", &n.to_string())
    }

    pub fn has_keyframes(&self) -> bool {
        self.cache.has_keyframes
    }

    pub fn iframe_bandwidth(&self) -> u64 {
        self.cache.iframe_bandwidth
    }

    fn prepare(&mut self) {
        use std::fmt::Write as _;
        let (prefix, suffix) = self
            .media
            .split_once("$Number$")
            .unwrap_or((&self.media, ""));
        let mut lines = String::with_capacity(self.segments.len() * (24 + self.media.len()));
        let mut ends = Vec::with_capacity(self.segments.len());
        for i in 0..self.segments.len() {
            let _ = write!(
                lines,
                "#EXTINF:{:.6},\n{prefix}{}{suffix}",
                self.seconds(i),
                self.start_number + i as u64
            );
            ends.push(lines.len());
        }
        let target = self
            .segments
            .iter()
            .map(|s| (s.duration as f64 / f64::from(self.timescale)).round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let has_keyframes = self.segments.iter().all(|s| s.keyframe.is_some());
        let iframe_bandwidth = self.compute_iframe_bandwidth();
        self.cache = RenditionCache {
            segment_lines: lines,
            ends,
            target_duration: target,
            has_keyframes,
            iframe_bandwidth,
        };
    }

    /// Peak bits/s of the keyframes alone (the I-frame playlist's BANDWIDTH).
    fn compute_iframe_bandwidth(&self) -> u64 {
        (0..self.segments.len())
            .filter_map(|i| {
                let kf = self.segments[i].keyframe?;
                let secs = self.seconds(i);
                (secs > 0.0).then(|| (kf[1] as f64 * 8.0 / secs).ceil() as u64)
            })
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Trickplay {
    pub vtt: String,
    #[serde(default)]
    pub interval: Option<f64>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// W3C Common PSSH system id (what ClearKey reads from the init segment) and ClearKey's DASH scheme.
pub const COMMON_SYSTEM_URN: &str = "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b";
pub const CLEARKEY_URN: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";

/// The directory, inside each rendition's, of a protected title's HLS AES-128 variant: the clear init segment and
/// every media segment whole-encrypted (RFC 8216 `METHOD=AES-128`), under the same names as the rendition's own.
pub const AES128_DIR: &str = "aes128";

/// How a protected title's media is encrypted (media.json's `protection`; docs/drm.md): the Common Encryption
/// scheme and, per track type (`video`, `audio`), the key id as a UUID and the common `pssh` box in base64; and
/// whether the encoder also packaged the HLS AES-128 variant (in [`AES128_DIR`], with the same keys) for players
/// without EME.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Protection {
    pub scheme: String,
    pub key_ids: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub pssh: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub hls_aes128: bool,
}

impl Protection {
    /// The key id of a track type as 32 lower-case hex digits (HLS `KEYID=0x...`).
    pub fn kid_hex(&self, kind: &str) -> Option<String> {
        self.key_ids.get(kind).map(|u| u.replace('-', ""))
    }

    fn validate(&self, has_audio: bool) -> Result<()> {
        if self.scheme != "cenc" && self.scheme != "cbcs" {
            return Err(bad(format!(
                "protection.scheme {:?} must be \"cenc\" or \"cbcs\"",
                self.scheme
            )));
        }
        let kinds = |m: &std::collections::BTreeMap<String, String>| {
            m.keys().all(|k| k == "video" || k == "audio")
        };
        if !kinds(&self.key_ids) || !kinds(&self.pssh) {
            return Err(bad(
                "protection: key_ids and pssh are keyed by \"video\" and \"audio\" only".into(),
            ));
        }
        if !self.key_ids.contains_key("video") || (has_audio && !self.key_ids.contains_key("audio"))
        {
            return Err(bad(
                "protection.key_ids needs a key id for every track type of the title".into(),
            ));
        }
        for (kind, kid) in &self.key_ids {
            let ok = kid.len() == 36
                && kid.bytes().enumerate().all(|(i, b)| {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        b == b'-'
                    } else {
                        b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
                    }
                });
            if !ok {
                return Err(bad(format!(
                    "protection.key_ids.{kind} must be a lower-case UUID"
                )));
            }
        }
        for (kind, pssh) in &self.pssh {
            if pssh.is_empty()
                || pssh.len() > 8192
                || !pssh
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                return Err(bad(format!(
                    "protection.pssh.{kind} must be base64 of at most 8192 characters"
                )));
            }
        }
        Ok(())
    }
}

/// A title's renditions, ready to render manifests from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Presentation {
    pub version: u32,
    pub title_id: String,
    pub duration: f64,
    pub segment_duration: f64,
    pub video: Vec<Rendition>,
    #[serde(default)]
    pub audio: Vec<Rendition>,
    #[serde(default)]
    pub thumbnail: Option<String>,
    #[serde(default)]
    pub trickplay: Option<Trickplay>,
    /// Present only for protected titles: manifests then announce the encryption.
    #[serde(default)]
    pub protection: Option<Protection>,
    #[serde(skip)]
    pub(crate) cache: PresentationCache,
}

/// Multivariant playlist attributes computed once: everything but pathway, group and URI.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PresentationCache {
    /// Per video rendition: `BANDWIDTH=...,AVERAGE-BANDWIDTH=...,CODECS="...",RESOLUTION=...,FRAME-RATE=...`.
    pub variant_attrs: Vec<String>,
    /// Per video rendition with keyframe ranges: `BANDWIDTH=...,CODECS="...",RESOLUTION=...`.
    pub iframe_attrs: Vec<Option<String>>,
    /// Per audio rendition: `NAME="...",LANGUAGE="...",DEFAULT=...,AUTOSELECT=YES,CHANNELS="..."`.
    pub audio_attrs: Vec<String>,
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A relative path inside the title: no scheme, no leading '/', no '..', only URI-safe characters.
fn valid_relative(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && !path.starts_with('/')
        && !path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'$'))
}

impl Presentation {
    /// Parses and validates a media description; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut p: Presentation = serde_json::from_str(text)
            .map_err(|e| bad(format!("media description is not valid: {e}")))?;
        p.validate()?;
        for r in p.video.iter_mut().chain(p.audio.iter_mut()) {
            r.prepare();
        }
        p.cache = super::hls::multivariant_cache(&p);
        Ok(p)
    }

    fn validate(&self) -> Result<()> {
        if self.version != 1 {
            return Err(bad(format!(
                "version {} is not supported (expected 1)",
                self.version
            )));
        }
        if !valid_id(&self.title_id) {
            return Err(bad(format!(
                "title_id {:?} must match [A-Za-z0-9_-]{{1,64}}",
                self.title_id
            )));
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return Err(bad("duration must be a positive number of seconds".into()));
        }
        if !(self.segment_duration.is_finite() && self.segment_duration > 0.0) {
            return Err(bad(
                "segment_duration must be a positive number of seconds".into()
            ));
        }
        if self.video.is_empty() {
            return Err(bad("video: at least one rendition is required".into()));
        }
        if self.video.len() > MAX_RENDITIONS || self.audio.len() > MAX_RENDITIONS {
            return Err(bad(format!(
                "at most {MAX_RENDITIONS} renditions of each kind"
            )));
        }
        if let Some(protection) = &self.protection {
            protection.validate(!self.audio.is_empty())?;
        }
        let mut seen = std::collections::HashSet::new();
        for (kind, list) in [("video", &self.video), ("audio", &self.audio)] {
            for (i, r) in list.iter().enumerate() {
                let at = format!("{kind}[{i}]");
                if !valid_id(&r.id) {
                    return Err(bad(format!(
                        "{at}.id {:?} must match [A-Za-z0-9_-]{{1,64}}",
                        r.id
                    )));
                }
                if !seen.insert(r.id.as_str()) {
                    return Err(bad(format!("{at}.id {:?} is used twice", r.id)));
                }
                if r.codecs.is_empty() || !hls_quoted_ok(&r.codecs) || r.codecs.len() > 128 {
                    return Err(bad(format!("{at}.codecs is missing or malformed")));
                }
                if r.timescale == 0 {
                    return Err(bad(format!("{at}.timescale must be positive")));
                }
                if r.bandwidth == 0 || r.average_bandwidth == 0 || r.average_bandwidth > r.bandwidth
                {
                    return Err(bad(format!(
                        "{at}: bandwidth and average_bandwidth must be positive, average at most peak"
                    )));
                }
                if !valid_relative(&r.init) {
                    return Err(bad(format!(
                        "{at}.init {:?} is not a relative path",
                        r.init
                    )));
                }
                if !valid_relative(&r.media) || !r.media.contains("$Number$") {
                    return Err(bad(format!(
                        "{at}.media {:?} must be a relative path with $Number$",
                        r.media
                    )));
                }
                if r.segments.is_empty() || r.segments.len() > MAX_SEGMENTS {
                    return Err(bad(format!(
                        "{at}.segments must list 1 to {MAX_SEGMENTS} segments"
                    )));
                }
                if let Some(j) = r.segments.iter().position(|s| s.duration == 0) {
                    return Err(bad(format!("{at}.segments[{j}].duration must be positive")));
                }
                for text in [&r.language, &r.name, &r.frame_rate].into_iter().flatten() {
                    if !hls_quoted_ok(text) || text.len() > 64 {
                        return Err(bad(format!(
                            "{at}: language, name and frame_rate must be short plain text"
                        )));
                    }
                }
                if kind == "video" {
                    if r.width.unwrap_or(0) == 0 || r.height.unwrap_or(0) == 0 {
                        return Err(bad(format!("{at}: width and height are required")));
                    }
                    match r.frame_rate.as_deref().map(str::parse::<f64>) {
                        Some(Ok(f)) if f.is_finite() && f > 0.0 => {}
                        _ => {
                            return Err(bad(format!(
                                "{at}.frame_rate must be a positive decimal string"
                            )))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Indexes of the video renditions allowed under `max_height`, in listed order; never empty (the lowest
    /// rendition stays so the title still plays).
    pub fn video_indexes_under(&self, max_height: Option<u32>) -> Vec<usize> {
        let height = |i: usize| self.video[i].height.unwrap_or(0);
        let allowed: Vec<usize> = (0..self.video.len())
            .filter(|&i| max_height.is_none_or(|h| height(i) <= h))
            .collect();
        if allowed.is_empty() {
            (0..self.video.len())
                .min_by_key(|&i| height(i))
                .into_iter()
                .collect()
        } else {
            allowed
        }
    }

    /// Video renditions allowed under `max_height`; never empty.
    pub fn video_under(&self, max_height: Option<u32>) -> Vec<&Rendition> {
        self.video_indexes_under(max_height)
            .into_iter()
            .map(|i| &self.video[i])
            .collect()
    }

    pub fn rendition(&self, id: &str) -> Result<&Rendition> {
        self.video
            .iter()
            .chain(self.audio.iter())
            .find(|r| r.id == id)
            .ok_or_else(|| bad(format!("no rendition {id:?} in title {}", self.title_id)))
    }
}

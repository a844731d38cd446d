//! HLS (RFC 8216 and its second edition for content steering): multivariant, media and I-frame playlists.

use std::fmt::Write as _;

use super::model::{Presentation, PresentationCache, Protection, Rendition, AES128_DIR};
use super::uri::{base, query};
use super::{Pathway, RenderOptions};
use crate::error::Result;

const VERSION: u32 = 7;

fn frame_rate(r: &Rendition) -> f64 {
    r.frame_rate
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0.0)
}

/// The parts of the multivariant playlist that do not change per request.
pub(crate) fn multivariant_cache(p: &Presentation) -> PresentationCache {
    let audio_peak = p.audio.iter().map(|a| a.bandwidth).max().unwrap_or(0);
    let audio_avg = p
        .audio
        .iter()
        .map(|a| a.average_bandwidth)
        .max()
        .unwrap_or(0);
    let audio_codecs = p.audio.first().map(|a| a.codecs.as_str());
    let variant_attrs = p
        .video
        .iter()
        .map(|v| {
            let codecs = match audio_codecs {
                Some(ac) => format!("{},{ac}", v.codecs),
                None => v.codecs.clone(),
            };
            format!(
                "BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={}x{},FRAME-RATE={:.3}",
                v.bandwidth + audio_peak,
                v.average_bandwidth + audio_avg,
                v.width.unwrap_or(0),
                v.height.unwrap_or(0),
                frame_rate(v),
            )
        })
        .collect();
    let iframe_attrs = p
        .video
        .iter()
        .map(|v| {
            v.has_keyframes().then(|| {
                format!(
                    "BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{}",
                    v.iframe_bandwidth(),
                    v.codecs,
                    v.width.unwrap_or(0),
                    v.height.unwrap_or(0)
                )
            })
        })
        .collect();
    let audio_attrs = p
        .audio
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut out = String::new();
            let name = a.name.as_deref().or(a.language.as_deref()).unwrap_or(&a.id);
            let _ = write!(out, "NAME=\"{name}\"");
            if let Some(lang) = &a.language {
                let _ = write!(out, ",LANGUAGE=\"{lang}\"");
            }
            let _ = write!(
                out,
                ",DEFAULT={},AUTOSELECT=YES",
                if i == 0 { "YES" } else { "NO" }
            );
            if let Some(ch) = a.channels {
                let _ = write!(out, ",CHANNELS=\"{ch}\"");
            }
            out
        })
        .collect();
    PresentationCache {
        variant_attrs,
        iframe_attrs,
        audio_attrs,
    }
}

impl Presentation {
    /// The multivariant (master) playlist; with `opts.aes128`, the AES-128 variant's (its media playlists, no
    /// I-frame playlists: a byte range of a whole-encrypted segment cannot be decrypted alone).
    pub fn hls_multivariant(&self, opts: &RenderOptions) -> Result<String> {
        opts.check()?;
        let media_playlist = if opts.aes128 {
            self.aes128_protection()?;
            format!("/{AES128_DIR}/index.m3u8")
        } else {
            "/index.m3u8".to_owned()
        };
        let q = query(&opts.token);
        let videos = self.video_indexes_under(opts.max_height);
        let relative = [Pathway {
            id: String::new(),
            base_uri: String::new(),
        }];
        let steered = !opts.pathways.is_empty();
        let pathways: &[Pathway] = if steered { &opts.pathways } else { &relative };
        let cache = &self.cache;
        let mut out = String::with_capacity(
            256 + pathways.len() * (videos.len() * 2 + self.audio.len()) * 250,
        );
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        if let Some(s) = &opts.steering {
            out.push_str("#EXT-X-CONTENT-STEERING:SERVER-URI=\"");
            out.push_str(&s.server_uri);
            out.push_str("\",PATHWAY-ID=\"");
            out.push_str(&s.default_pathway);
            out.push_str("\"\n");
        }
        for p in pathways {
            let b = base(&p.base_uri);
            let push_uri = |out: &mut String, id: &str, file: &str| {
                out.push_str(&b);
                out.push_str(id);
                out.push_str(file);
                out.push_str(&q);
            };
            let push_pathway = |out: &mut String| {
                if steered {
                    out.push_str(",PATHWAY-ID=\"");
                    out.push_str(&p.id);
                    out.push('"');
                }
            };
            let push_group = |out: &mut String| {
                out.push_str("audio");
                if steered {
                    out.push('-');
                    out.push_str(&p.id);
                }
            };
            for (a, attrs) in self.audio.iter().zip(&cache.audio_attrs) {
                out.push_str("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"");
                push_group(&mut out);
                out.push_str("\",");
                out.push_str(attrs);
                out.push_str(",URI=\"");
                push_uri(&mut out, &a.id, &media_playlist);
                out.push_str("\"\n");
            }
            for &i in &videos {
                out.push_str("#EXT-X-STREAM-INF:");
                out.push_str(&cache.variant_attrs[i]);
                if !self.audio.is_empty() {
                    out.push_str(",AUDIO=\"");
                    push_group(&mut out);
                    out.push('"');
                }
                push_pathway(&mut out);
                out.push('\n');
                push_uri(&mut out, &self.video[i].id, &media_playlist);
                out.push('\n');
            }
            for &i in videos.iter().filter(|_| !opts.aes128) {
                if let Some(attrs) = &cache.iframe_attrs[i] {
                    out.push_str("#EXT-X-I-FRAME-STREAM-INF:");
                    out.push_str(attrs);
                    push_pathway(&mut out);
                    out.push_str(",URI=\"");
                    push_uri(&mut out, &self.video[i].id, "/iframes.m3u8");
                    out.push_str("\"\n");
                }
            }
        }
        Ok(out)
    }

    /// `EXT-X-KEY` of a protected title's rendition: `SAMPLE-AES-CTR` ('cenc') or `SAMPLE-AES` ('cbcs'), the
    /// W3C common system's `pssh` as a data URI with the track type's KEYID (what EME players, ClearKey among
    /// them, start a licence request from), and, given a `key_uri`, the same method with `KEYFORMAT="identity"`
    /// and the raw key's URI (`{key_uri}/{kid}`, behind the licence checks); none for clear titles.
    fn key_line(&self, r: &Rendition, key_uri: Option<&str>) -> Option<String> {
        let p = self.protection.as_ref()?;
        let kind = self.track_kind(r);
        let pssh = p.pssh.get(kind)?;
        let kid = p.kid_hex(kind)?;
        let method = if p.scheme == "cbcs" {
            "SAMPLE-AES"
        } else {
            "SAMPLE-AES-CTR"
        };
        let mut lines = format!(
            "#EXT-X-KEY:METHOD={method},URI=\"data:text/plain;base64,{pssh}\",KEYID=0x{kid},\
             KEYFORMAT=\"{}\",KEYFORMATVERSIONS=\"1\"\n",
            super::model::COMMON_SYSTEM_URN
        );
        if let Some(base) = key_uri {
            let _ = writeln!(
                lines,
                "#EXT-X-KEY:METHOD={method},URI=\"{base}/{kid}\",KEYFORMAT=\"identity\""
            );
        }
        Some(lines)
    }

    fn track_kind(&self, r: &Rendition) -> &'static str {
        if self.audio.iter().any(|a| a.id == r.id) {
            "audio"
        } else {
            "video"
        }
    }

    /// The title's protection when it was packaged with the AES-128 variant.
    fn aes128_protection(&self) -> Result<&Protection> {
        match &self.protection {
            Some(p) if p.hls_aes128 => Ok(p),
            _ => Err(crate::Error::InvalidArgument(format!(
                "title {} has no HLS AES-128 variant",
                self.title_id
            ))),
        }
    }

    /// `EXT-X-KEY` of a rendition's AES-128 variant: the track type's raw key at `{key_uri}/{kid}` (behind the
    /// licence checks) and no `IV` attribute, so each segment's IV is its media sequence number (RFC 8216 5.2), as
    /// the encoder encrypted it. The line follows `EXT-X-MAP`, which keeps the init segment (codec parameters, no
    /// samples) outside the key's scope.
    fn aes128_key_line(&self, r: &Rendition, key_uri: Option<&str>) -> Result<String> {
        let p = self.aes128_protection()?;
        let kid = p.kid_hex(self.track_kind(r)).ok_or_else(|| {
            crate::Error::InvalidArgument(format!("rendition {:?} has no key id", r.id))
        })?;
        let base = key_uri.ok_or_else(|| {
            crate::Error::InvalidArgument("the AES-128 variant needs a key URI".into())
        })?;
        Ok(format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{base}/{kid}\"\n"))
    }

    /// The key lines of a media playlist: the AES-128 variant's, or the Common Encryption ones (none if clear).
    fn key_lines(&self, r: &Rendition, opts: &RenderOptions) -> Result<Option<String>> {
        if opts.aes128 {
            self.aes128_key_line(r, opts.key_uri.as_deref()).map(Some)
        } else {
            Ok(self.key_line(r, opts.key_uri.as_deref()))
        }
    }

    fn media_header(&self, r: &Rendition, out: &mut String, q: &str, key: Option<String>) {
        let target = r.cache.target_duration;
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            r.start_number
        );
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}{q}\"", r.init);
        if let Some(key) = key {
            out.push_str(&key);
        }
    }

    /// The media playlist of one rendition: every segment with its exact duration (with `opts.aes128`, of its
    /// AES-128 variant: the same names, relative to the variant's directory).
    pub fn hls_media(&self, rendition_id: &str, opts: &RenderOptions) -> Result<String> {
        opts.check()?;
        let r = self.rendition(rendition_id)?;
        let key = self.key_lines(r, opts)?;
        let q = query(&opts.token);
        let lines = &r.cache.segment_lines;
        let mut out = String::with_capacity(256 + lines.len() + r.segments.len() * (q.len() + 1));
        self.media_header(r, &mut out, &q, key);
        let mut start = 0;
        for &end in &r.cache.ends {
            out.push_str(&lines[start..end]);
            out.push_str(&q);
            out.push('\n');
            start = end;
        }
        out.push_str("#EXT-X-ENDLIST\n");
        Ok(out)
    }

    /// The I-frame-only playlist of a video rendition (byte ranges of each segment's keyframe).
    pub fn hls_iframes(&self, rendition_id: &str, opts: &RenderOptions) -> Result<String> {
        opts.check()?;
        let r = self.rendition(rendition_id)?;
        if !r.has_keyframes() {
            return Err(crate::Error::InvalidArgument(format!(
                "rendition {rendition_id:?} has no keyframe byte ranges"
            )));
        }
        if opts.aes128 {
            return Err(crate::Error::InvalidArgument(
                "the AES-128 variant has no I-frame playlists".into(),
            ));
        }
        let q = query(&opts.token);
        let mut out =
            String::with_capacity(256 + r.segments.len() * (64 + r.media.len() + q.len()));
        self.media_header(r, &mut out, &q, self.key_line(r, opts.key_uri.as_deref()));
        out.insert_str(
            out.find("#EXT-X-MAP").unwrap_or(out.len()),
            "#EXT-X-I-FRAMES-ONLY\n",
        );
        for (i, s) in r.segments.iter().enumerate() {
            let [offset, length] = s.keyframe.unwrap_or([0, 0]);
            let _ = write!(
                out,
                "#EXTINF:{:.6},\n#EXT-X-BYTERANGE:{length}@{offset}\n{}{q}\n",
                r.seconds(i),
                r.segment_uri(r.start_number + i as u64)
            );
        }
        out.push_str("#EXT-X-ENDLIST\n");
        Ok(out)
    }
}

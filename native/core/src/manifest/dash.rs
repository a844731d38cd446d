//! Static DASH MPD (ISO/IEC 23009-1, isoff-live profile) with SegmentTimeline and content steering.

use std::fmt::Write as _;

use super::model::{Presentation, Protection, Rendition, CLEARKEY_URN};
use super::uri::{query, xml_escape};
use super::RenderOptions;

/// ISO 8601 duration, e.g. `PT1H2M3.040S`.
pub fn iso_duration(seconds: f64) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rem) = (millis / 3_600_000, millis % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    let mut out = String::from("PT");
    if h > 0 {
        let _ = write!(out, "{h}H");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}M");
    }
    let _ = write!(out, "{s}.{ms:03}S");
    out
}

fn attr(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"");
    xml_escape(value, out);
    out.push('"');
}

fn segment_template(out: &mut String, r: &Rendition, q: &str, indent: &str) {
    let _ = write!(
        out,
        "{indent}<SegmentTemplate timescale=\"{}\"",
        r.timescale
    );
    attr(out, "initialization", &format!("{}/{}{q}", r.id, r.init));
    attr(out, "media", &format!("{}/{}{q}", r.id, r.media));
    let _ = writeln!(out, " startNumber=\"{}\">", r.start_number);
    let _ = writeln!(out, "{indent}  <SegmentTimeline>");
    let mut t = 0u64;
    let mut i = 0;
    let segs = &r.segments;
    while i < segs.len() {
        let d = segs[i].duration;
        let mut repeat = 0;
        while i + repeat + 1 < segs.len() && segs[i + repeat + 1].duration == d {
            repeat += 1;
        }
        if i == 0 {
            let _ = write!(out, "{indent}    <S t=\"{t}\" d=\"{d}\"");
        } else {
            let _ = write!(out, "{indent}    <S d=\"{d}\"");
        }
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>\n");
        t += d * (repeat as u64 + 1);
        i += repeat + 1;
    }
    let _ = writeln!(
        out,
        "{indent}  </SegmentTimeline>\n{indent}</SegmentTemplate>"
    );
}

/// `ContentProtection` of one adaptation set of a protected title: the Common Encryption scheme with the track
/// type's `cenc:default_KID`, then ClearKey (W3C) with the licence URL (`dashif:Laurl`), as DASH-IF IOP 4.3's
/// ClearKey descriptor has it: without a `cenc:pssh`. The W3C common `pssh` is in every init segment, where the CDM
/// finds it; inside ClearKey's descriptor it would pose as ClearKey's own (dash.js then hands it to the CDM as
/// `keyids` init data, which the CDM refuses).
fn content_protection(out: &mut String, p: &Protection, kind: &str, license_url: Option<&str>) {
    let Some(kid) = p.key_ids.get(kind) else {
        return;
    };
    let _ = writeln!(
        out,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"{}\" \
         cenc:default_KID=\"{kid}\"/>",
        p.scheme
    );
    let _ = write!(
        out,
        "      <ContentProtection schemeIdUri=\"{CLEARKEY_URN}\" value=\"ClearKey1.0\""
    );
    let Some(url) = license_url else {
        out.push_str("/>\n");
        return;
    };
    out.push_str(">\n        <dashif:Laurl Lic_type=\"EME-1.0\">");
    xml_escape(url, out);
    out.push_str("</dashif:Laurl>\n      </ContentProtection>\n");
}

impl Presentation {
    /// A static MPD for the title, per request (token, pathways, resolution cap).
    pub fn dash_mpd(&self, opts: &RenderOptions) -> crate::Result<String> {
        opts.check()?;
        let q = query(&opts.token);
        let videos = self.video_under(opts.max_height);
        let segments: usize = videos
            .iter()
            .copied()
            .chain(self.audio.iter())
            .map(|r| r.segments.len())
            .sum();
        let mut out = String::with_capacity(2048 + segments * 8);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let namespaces = if self.protection.is_some() {
            " xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"{namespaces} profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" \
             type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">",
            iso_duration(self.duration),
            iso_duration(self.segment_duration),
        );
        let license_url = opts.license_url.as_deref();
        if let Some(s) = &opts.steering {
            out.push_str("  <ContentSteering");
            attr(&mut out, "defaultServiceLocation", &s.default_pathway);
            out.push_str(" queryBeforeStart=\"true\">");
            xml_escape(&s.server_uri, &mut out);
            out.push_str("</ContentSteering>\n");
        }
        for p in &opts.pathways {
            out.push_str("  <BaseURL");
            attr(&mut out, "serviceLocation", &p.id);
            out.push('>');
            xml_escape(&super::uri::base(&p.base_uri), &mut out);
            out.push_str("</BaseURL>\n");
        }
        out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
        let max_w = videos.iter().filter_map(|v| v.width).max().unwrap_or(0);
        let max_h = videos.iter().filter_map(|v| v.height).max().unwrap_or(0);
        let _ = write!(
            out,
            "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" \
             startWithSAP=\"1\" maxWidth=\"{max_w}\" maxHeight=\"{max_h}\""
        );
        if let Some(fr) = videos.first().and_then(|v| v.frame_rate.as_deref()) {
            attr(&mut out, "frameRate", fr);
        }
        out.push_str(">\n");
        if let Some(p) = &self.protection {
            content_protection(&mut out, p, "video", license_url);
        }
        for v in &videos {
            out.push_str("      <Representation");
            attr(&mut out, "id", &v.id);
            attr(&mut out, "codecs", &v.codecs);
            let _ = write!(
                out,
                " bandwidth=\"{}\" width=\"{}\" height=\"{}\"",
                v.bandwidth,
                v.width.unwrap_or(0),
                v.height.unwrap_or(0)
            );
            if let Some(fr) = &v.frame_rate {
                attr(&mut out, "frameRate", fr);
            }
            out.push_str(" sar=\"1:1\">\n");
            segment_template(&mut out, v, &q, "        ");
            out.push_str("      </Representation>\n");
        }
        out.push_str("    </AdaptationSet>\n");
        for (i, a) in self.audio.iter().enumerate() {
            let _ = write!(
                out,
                "    <AdaptationSet id=\"{}\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" \
                 startWithSAP=\"1\"",
                i + 1
            );
            if let Some(lang) = &a.language {
                attr(&mut out, "lang", lang);
            }
            out.push_str(">\n");
            if let Some(p) = &self.protection {
                content_protection(&mut out, p, "audio", license_url);
            }
            out.push_str("      <Representation");
            attr(&mut out, "id", &a.id);
            attr(&mut out, "codecs", &a.codecs);
            let _ = write!(out, " bandwidth=\"{}\"", a.bandwidth);
            if let Some(sr) = a.sample_rate {
                let _ = write!(out, " audioSamplingRate=\"{sr}\"");
            }
            out.push_str(">\n");
            if let Some(ch) = a.channels {
                let _ = writeln!(
                    out,
                    "        <AudioChannelConfiguration \
                     schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{ch}\"/>"
                );
            }
            segment_template(&mut out, a, &q, "        ");
            out.push_str("      </Representation>\n    </AdaptationSet>\n");
        }
        out.push_str("  </Period>\n</MPD>\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::iso_duration;

    #[test]
    fn durations() {
        assert_eq!(iso_duration(60.04), "PT1M0.040S");
        assert_eq!(iso_duration(4.0), "PT4.000S");
        assert_eq!(iso_duration(7325.5), "PT2H2M5.500S");
    }
}

//! Manifest generation: HLS multivariant and media playlists, and static DASH MPDs, from a title's media
//! description (`docs/media-description.md`).
//!
//! A [`Presentation`] is parsed and validated once per title; rendering happens per playback request, with the
//! session's URL token on every URI, content-steering pathways, and the plan's resolution cap, so it is a hot
//! path: plain string building, no allocation beyond the output.

mod dash;
mod hls;
mod model;
mod uri;

pub use model::{
    Presentation, Protection, Rendition, Segment, AES128_DIR, CLEARKEY_URN, COMMON_SYSTEM_URN,
};

/// A content-steering pathway: an edge (or shield, or origin) and the base URI of the title on it, ending in
/// `/` (e.g. `http://edge-a.example/v/bbb/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pathway {
    pub id: String,
    pub base_uri: String,
}

/// The steering server for a session and the pathway to start on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    pub server_uri: String,
    pub default_pathway: String,
}

/// Per-request rendering options.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// `(query parameter, value)` appended to every URI.
    pub token: Option<(String, String)>,
    /// Absolute base URIs per pathway; empty means relative URIs.
    pub pathways: Vec<Pathway>,
    pub steering: Option<Steering>,
    /// Drop video renditions taller than this (the lowest rendition always stays).
    pub max_height: Option<u32>,
    /// Protected titles: where ClearKey players POST licence requests (DASH `dashif:Laurl`); none: not announced.
    pub license_url: Option<String>,
    /// Protected titles: the base of the session's raw-key URIs, `{key_uri}/{kid}`, announced in HLS media playlists
    /// as a second `EXT-X-KEY` with `KEYFORMAT="identity"` (how Shaka Player takes ClearKey from HLS); none: not
    /// announced.
    pub key_uri: Option<String>,
    /// HLS of a protected title for players without EME: the AES-128 variant (whole segments, `METHOD=AES-128`
    /// with the raw key at `{key_uri}/{kid}`); an error for a title packaged without it.
    pub aes128: bool,
}

impl RenderOptions {
    /// Rejects values that could break out of a manifest attribute (quotes, whitespace, control characters).
    pub fn check(&self) -> crate::Result<()> {
        fn plain(what: &str, text: &str, max: usize) -> crate::Result<()> {
            if text.is_empty()
                || text.len() > max
                || text.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\')
                })
            {
                return Err(crate::Error::InvalidArgument(format!(
                    "{what} must be 1 to {max} characters without quotes, spaces or control characters"
                )));
            }
            Ok(())
        }
        if let Some((param, value)) = &self.token {
            plain("token parameter", param, 64)?;
            plain("token", value, 4096)?;
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.pathways {
            plain("pathway id", &p.id, 64)?;
            plain("pathway base URI", &p.base_uri, 2048)?;
            if !ids.insert(p.id.as_str()) {
                return Err(crate::Error::InvalidArgument(format!(
                    "pathway {:?} is listed twice",
                    p.id
                )));
            }
        }
        if let Some(url) = &self.license_url {
            plain("licence URL", url, 2048)?;
        }
        if let Some(url) = &self.key_uri {
            plain("key URI", url, 2048)?;
        }
        if let Some(s) = &self.steering {
            plain("steering server URI", &s.server_uri, 2048)?;
            plain("default pathway", &s.default_pathway, 64)?;
            if !self.pathways.is_empty() && !ids.contains(s.default_pathway.as_str()) {
                return Err(crate::Error::InvalidArgument(format!(
                    "default pathway {:?} is not one of the pathways",
                    s.default_pathway
                )));
            }
        }
        Ok(())
    }
}

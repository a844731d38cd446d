//! Binding for marquee_core::manifest: `Presentation` renders HLS and DASH manifests per request.

use marquee_core::manifest::{Pathway, Presentation as CorePresentation, RenderOptions, Steering};
use pyo3::prelude::*;

use crate::errors::to_py;

/// A title's media description, parsed and validated once; renders manifests per playback request.
#[pyclass(module = "marquee._native", frozen)]
pub struct Presentation {
    inner: CorePresentation,
}

fn options(
    token: Option<String>,
    token_param: &str,
    pathways: Option<Vec<(String, String)>>,
    steering: Option<(String, String)>,
    max_height: Option<u32>,
    license_url: Option<String>,
    key_uri: Option<String>,
) -> RenderOptions {
    RenderOptions {
        token: token.map(|t| (token_param.to_owned(), t)),
        pathways: pathways
            .unwrap_or_default()
            .into_iter()
            .map(|(id, base_uri)| Pathway { id, base_uri })
            .collect(),
        steering: steering.map(|(server_uri, default_pathway)| Steering {
            server_uri,
            default_pathway,
        }),
        max_height,
        license_url,
        key_uri,
        aes128: false,
    }
}

#[pymethods]
impl Presentation {
    /// Parse and validate a media description (JSON text).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Self> {
        let inner = py
            .detach(|| CorePresentation::from_json(text))
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    #[getter]
    fn title_id(&self) -> &str {
        &self.inner.title_id
    }

    #[getter]
    fn duration(&self) -> f64 {
        self.inner.duration
    }

    /// The Common Encryption scheme of a protected title ("cenc" or "cbcs"), None for a clear one.
    #[getter]
    fn protection_scheme(&self) -> Option<String> {
        self.inner.protection.as_ref().map(|p| p.scheme.clone())
    }

    /// Whether a protected title was packaged with the HLS AES-128 variant (for players without EME).
    #[getter]
    fn hls_aes128(&self) -> bool {
        self.inner.protection.as_ref().is_some_and(|p| p.hls_aes128)
    }

    #[getter]
    fn video_ids(&self) -> Vec<String> {
        self.inner.video.iter().map(|r| r.id.clone()).collect()
    }

    #[getter]
    fn audio_ids(&self) -> Vec<String> {
        self.inner.audio.iter().map(|r| r.id.clone()).collect()
    }

    /// Heights of the video renditions, highest first.
    #[getter]
    fn video_heights(&self) -> Vec<u32> {
        self.inner
            .video
            .iter()
            .map(|r| r.height.unwrap_or(0))
            .collect()
    }

    /// `aes128`: the multivariant playlist of the AES-128 variant (an error if the title has none).
    #[pyo3(signature = (*, token=None, token_param="token", pathways=None, steering=None, max_height=None, aes128=false))]
    #[allow(clippy::too_many_arguments)]
    fn hls_multivariant(
        &self,
        py: Python<'_>,
        token: Option<String>,
        token_param: &str,
        pathways: Option<Vec<(String, String)>>,
        steering: Option<(String, String)>,
        max_height: Option<u32>,
        aes128: bool,
    ) -> PyResult<String> {
        let opts = RenderOptions {
            aes128,
            ..options(
                token,
                token_param,
                pathways,
                steering,
                max_height,
                None,
                None,
            )
        };
        py.detach(|| self.inner.hls_multivariant(&opts))
            .map_err(to_py)
    }

    /// `aes128`: the media playlist of the rendition's AES-128 variant (needs `key_uri`).
    #[pyo3(signature = (rendition_id, *, token=None, token_param="token", key_uri=None, aes128=false))]
    fn hls_media(
        &self,
        py: Python<'_>,
        rendition_id: &str,
        token: Option<String>,
        token_param: &str,
        key_uri: Option<String>,
        aes128: bool,
    ) -> PyResult<String> {
        let opts = RenderOptions {
            aes128,
            ..options(token, token_param, None, None, None, None, key_uri)
        };
        py.detach(|| self.inner.hls_media(rendition_id, &opts))
            .map_err(to_py)
    }

    #[pyo3(signature = (rendition_id, *, token=None, token_param="token", key_uri=None))]
    fn hls_iframes(
        &self,
        py: Python<'_>,
        rendition_id: &str,
        token: Option<String>,
        token_param: &str,
        key_uri: Option<String>,
    ) -> PyResult<String> {
        let opts = options(token, token_param, None, None, None, None, key_uri);
        py.detach(|| self.inner.hls_iframes(rendition_id, &opts))
            .map_err(to_py)
    }

    #[pyo3(signature = (*, token=None, token_param="token", pathways=None, steering=None, max_height=None, license_url=None))]
    #[allow(clippy::too_many_arguments)]
    fn dash_mpd(
        &self,
        py: Python<'_>,
        token: Option<String>,
        token_param: &str,
        pathways: Option<Vec<(String, String)>>,
        steering: Option<(String, String)>,
        max_height: Option<u32>,
        license_url: Option<String>,
    ) -> PyResult<String> {
        let opts = options(
            token,
            token_param,
            pathways,
            steering,
            max_height,
            license_url,
            None,
        );
        py.detach(|| self.inner.dash_mpd(&opts)).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!(
            "Presentation(title_id={:?}, video={:?}, audio={:?})",
            self.inner.title_id,
            self.video_ids(),
            self.audio_ids()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Presentation>()?;
    Ok(())
}

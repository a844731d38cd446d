//! Binding for marquee_core::protect: `CencEncryptor` (Common Encryption of a rendition's init and media
//! segments), `CencTrack`, `pssh_box`, and HLS AES-128 whole-segment encryption.

use std::collections::HashMap;

use marquee_core::protect::{self, hls, ContentKey, Encryptor, Options, Scheme, TrackKind};
use marquee_core::Error;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::to_py;

/// One protected track of a `CencEncryptor`'s init segment (what its `tenc` says).
#[pyclass(module = "marquee._native", frozen)]
pub struct CencTrack {
    #[pyo3(get)]
    track_id: u32,
    /// "video" or "audio".
    #[pyo3(get)]
    kind: &'static str,
    /// The clear sample entry's format ("avc1", "mp4a").
    #[pyo3(get)]
    codec: String,
    key_id: [u8; 16],
    /// Per-sample IV size: 8 or 16 ('cenc'), 0 ('cbcs', constant IV).
    #[pyo3(get)]
    iv_size: u8,
    constant_iv: Option<[u8; 16]>,
    #[pyo3(get)]
    crypt_byte_block: u8,
    #[pyo3(get)]
    skip_byte_block: u8,
}

#[pymethods]
impl CencTrack {
    #[getter]
    fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    #[getter]
    fn constant_iv(&self) -> Option<&[u8]> {
        self.constant_iv.as_ref().map(|iv| &iv[..])
    }

    fn __repr__(&self) -> String {
        format!(
            "CencTrack(track_id={}, kind={:?}, codec={:?}, key_id={:?})",
            self.track_id,
            self.kind,
            self.codec,
            hex(&self.key_id)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encrypts one rendition with Common Encryption: built once from the clear init segment and the keys (the
/// protected init segment is ready then), then `encrypt(segment)` per media segment, without the GIL.
#[pyclass(module = "marquee._native", frozen)]
pub struct CencEncryptor {
    inner: Encryptor,
}

/// {"video": ..., "audio": ...} with each value converted.
fn by_kind<T, U>(
    map: HashMap<String, T>,
    convert: impl Fn(T) -> Result<U, Error>,
) -> Result<Vec<(TrackKind, U)>, Error> {
    map.into_iter()
        .map(|(kind, value)| Ok((TrackKind::parse(&kind)?, convert(value)?)))
        .collect()
}

#[pymethods]
impl CencEncryptor {
    /// `keys`: {"video": (key_id, key), "audio": (key_id, key)} for the track types the init segment has
    /// (16 bytes each). `iv_size` is the 'cenc' per-sample IV size (8 or 16); `constant_ivs` the 'cbcs' IV per
    /// track type (16 bytes; random when absent); `pssh` extra complete pssh boxes after the common one.
    #[new]
    #[pyo3(signature = (init_segment, scheme, keys, *, iv_size=8, constant_ivs=None, pssh=None))]
    fn new(
        py: Python<'_>,
        init_segment: &[u8],
        scheme: &str,
        keys: HashMap<String, (Vec<u8>, Vec<u8>)>,
        iv_size: u8,
        constant_ivs: Option<HashMap<String, Vec<u8>>>,
        pssh: Option<Vec<Vec<u8>>>,
    ) -> PyResult<Self> {
        let options = Options {
            scheme: Scheme::parse(scheme).map_err(to_py)?,
            keys: by_kind(keys, |(kid, key)| ContentKey::new(&kid, &key)).map_err(to_py)?,
            iv_size,
            constant_ivs: by_kind(constant_ivs.unwrap_or_default(), |iv| {
                protect::bytes16(&iv, "a constant IV")
            })
            .map_err(to_py)?,
            pssh: pssh.unwrap_or_default(),
        };
        let inner = py
            .detach(|| Encryptor::new(init_segment, &options))
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    /// "cenc" or "cbcs".
    #[getter]
    fn scheme(&self) -> &'static str {
        self.inner.scheme().as_str()
    }

    /// The protected init segment.
    #[getter]
    fn init_segment<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.init_segment())
    }

    /// Every pssh box of the init segment, the common (ClearKey) one first: a manifest's `cenc:pssh` values.
    #[getter]
    fn pssh<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .pssh()
            .iter()
            .map(|p| PyBytes::new(py, p))
            .collect()
    }

    #[getter]
    fn tracks(&self) -> Vec<CencTrack> {
        self.inner
            .tracks()
            .map(|t| CencTrack {
                track_id: t.track_id,
                kind: t.kind.as_str(),
                codec: String::from_utf8_lossy(&t.format).into_owned(),
                key_id: t.encryption.kid,
                iv_size: t.encryption.iv_size,
                constant_iv: t.encryption.constant_iv,
                crypt_byte_block: t.encryption.crypt_byte_block,
                skip_byte_block: t.encryption.skip_byte_block,
            })
            .collect()
    }

    /// Encrypt one clear media segment. 'cenc': per-sample IVs count up from `iv` (the IV size, for
    /// reproducible output; never reuse one with the same key) or from a random value; 'cbcs' takes no IV.
    #[pyo3(signature = (segment, *, iv=None))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        segment: &[u8],
        iv: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .detach(|| self.inner.encrypt(segment, iv))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }
}

/// A pssh box for `system_id` (16 bytes) with `data`; version 1 listing `key_ids` when there are any.
#[pyfunction]
#[pyo3(signature = (system_id, data=None, key_ids=None))]
fn pssh_box<'py>(
    py: Python<'py>,
    system_id: &[u8],
    data: Option<&[u8]>,
    key_ids: Option<Vec<Vec<u8>>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let system_id = protect::bytes16(system_id, "a system id").map_err(to_py)?;
    let kids = key_ids
        .unwrap_or_default()
        .iter()
        .map(|k| protect::bytes16(k, "a key id"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_py)?;
    let out = protect::pssh_box(&system_id, &kids, data.unwrap_or_default()).map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// The IV an HLS client uses for a segment when the playlist's EXT-X-KEY has none: its media sequence number.
#[pyfunction]
fn hls_sequence_iv(py: Python<'_>, media_sequence: u64) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &hls::sequence_iv(media_sequence))
}

/// HLS METHOD=AES-128: the whole segment in AES-128-CBC with PKCS#7 padding, with `iv` (16 bytes) or else the
/// IV of `media_sequence`.
#[pyfunction]
#[pyo3(signature = (segment, key, *, media_sequence=None, iv=None))]
fn hls_aes128_encrypt<'py>(
    py: Python<'py>,
    segment: &[u8],
    key: &[u8],
    media_sequence: Option<u64>,
    iv: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let iv = match (iv, media_sequence) {
        (Some(iv), _) => iv.to_vec(),
        (None, Some(seq)) => hls::sequence_iv(seq).to_vec(),
        (None, None) => {
            return Err(to_py(Error::InvalidArgument(
                "give the segment's media_sequence or an iv".into(),
            )))
        }
    };
    let out = py
        .detach(|| hls::encrypt(segment, key, &iv))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CencEncryptor>()?;
    m.add_class::<CencTrack>()?;
    m.add_function(wrap_pyfunction!(pssh_box, m)?)?;
    m.add_function(wrap_pyfunction!(hls_sequence_iv, m)?)?;
    m.add_function(wrap_pyfunction!(hls_aes128_encrypt, m)?)?;
    m.add(
        "COMMON_SYSTEM_ID",
        PyBytes::new(m.py(), &protect::COMMON_SYSTEM_ID),
    )?;
    Ok(())
}

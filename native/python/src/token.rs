//! Binding for marquee_core::token: `TokenKeyring`, `TokenClaims`, `acl_matches`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use marquee_core::token::{self, Claims, Keyring};
use pyo3::prelude::*;

use crate::errors::to_py;

/// What a verified token grants.
#[pyclass(module = "marquee._native", frozen, get_all)]
#[derive(Clone)]
pub struct TokenClaims {
    kid: String,
    expires_at: u64,
    acl: Vec<String>,
    session_id: Option<String>,
    regions: Vec<String>,
}

#[pymethods]
impl TokenClaims {
    fn __repr__(&self) -> String {
        let sid = match &self.session_id {
            Some(s) => format!("{s:?}"),
            None => "None".to_owned(),
        };
        format!(
            "TokenClaims(kid={:?}, expires_at={}, acl={:?}, session_id={sid}, regions={:?})",
            self.kid, self.expires_at, self.acl, self.regions
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.expires_at == other.expires_at
            && self.acl == other.acl
            && self.session_id == other.session_id
            && self.regions == other.regions
    }
}

impl From<Claims> for TokenClaims {
    fn from(c: Claims) -> Self {
        Self {
            kid: c.kid,
            expires_at: c.expires_at,
            acl: c.acl,
            session_id: c.session_id,
            regions: c.regions,
        }
    }
}

/// Keys by id for signing and verifying signed URL tokens.
#[pyclass(module = "marquee._native", frozen)]
pub struct TokenKeyring {
    inner: Keyring,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[pymethods]
impl TokenKeyring {
    #[new]
    fn new(keys: HashMap<String, Vec<u8>>, signing_kid: &str) -> PyResult<Self> {
        Ok(Self {
            inner: Keyring::new(keys, signing_kid).map_err(to_py)?,
        })
    }

    #[getter]
    fn signing_kid(&self) -> &str {
        self.inner.signing_kid()
    }

    #[getter]
    fn kids(&self) -> Vec<String> {
        self.inner.kids().map(str::to_owned).collect()
    }

    #[pyo3(signature = (acl, expires_at, session_id=None, regions=None))]
    fn sign(
        &self,
        acl: Vec<String>,
        expires_at: u64,
        session_id: Option<String>,
        regions: Option<Vec<String>>,
    ) -> PyResult<String> {
        let claims = Claims {
            kid: self.inner.signing_kid().to_owned(),
            expires_at,
            acl,
            session_id,
            regions: regions.unwrap_or_default(),
        };
        token::sign(&self.inner, &claims).map_err(to_py)
    }

    #[pyo3(signature = (token, path, *, now=None, session_id=None))]
    fn verify(
        &self,
        token: &str,
        path: &str,
        now: Option<u64>,
        session_id: Option<&str>,
    ) -> PyResult<TokenClaims> {
        let now = now.unwrap_or_else(unix_now);
        token::verify(&self.inner, token, path, now, session_id)
            .map(TokenClaims::from)
            .map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Whether an ACL pattern (`*` matches any run of characters, `/` included) matches the whole path.
#[pyfunction]
fn acl_matches(pattern: &str, path: &str) -> bool {
    token::acl_matches(pattern, path)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TokenClaims>()?;
    m.add_class::<TokenKeyring>()?;
    m.add_function(wrap_pyfunction!(acl_matches, m)?)?;
    Ok(())
}

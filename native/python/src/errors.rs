//! Core errors mapped to typed Python exceptions (all importable from `marquee.native`):
//!
//!   InvalidArgumentError(ValueError)      bad input to a native call
//!     MalformedMediaError                 media bytes that do not parse (a truncated or inconsistent MP4 box)
//!     UnsupportedMediaError               media the packager does not handle (a codec, a layout, already encrypted)
//!   TokenError(Exception)                 base of every token failure
//!     TokenInvalidError                   malformed or bad signature
//!     TokenExpiredError                   well-formed, signed, past its expiry
//!     TokenForbiddenError                 valid, but not for this path or session
//!     UnknownKeyError                     signed with a key id the verifier does not hold
//!   NotFoundError(LookupError)            the object asked for does not exist
//!   OSError                               bind, disk or upstream failures

use marquee_core::Error;
use pyo3::exceptions::{PyException, PyLookupError, PyOSError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(_native, InvalidArgumentError, PyValueError);
pyo3::create_exception!(_native, MalformedMediaError, InvalidArgumentError);
pyo3::create_exception!(_native, UnsupportedMediaError, InvalidArgumentError);
pyo3::create_exception!(_native, TokenError, PyException);
pyo3::create_exception!(_native, TokenInvalidError, TokenError);
pyo3::create_exception!(_native, TokenExpiredError, TokenError);
pyo3::create_exception!(_native, TokenForbiddenError, TokenError);
pyo3::create_exception!(_native, UnknownKeyError, TokenError);
pyo3::create_exception!(_native, NotFoundError, PyLookupError);

/// The one place core errors become Python exceptions.
pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::InvalidArgument(_) => InvalidArgumentError::new_err(msg),
        Error::TokenInvalid(_) => TokenInvalidError::new_err(msg),
        Error::TokenExpired { .. } => TokenExpiredError::new_err(msg),
        Error::TokenForbidden(_) => TokenForbiddenError::new_err(msg),
        Error::UnknownKey(_) => UnknownKeyError::new_err(msg),
        Error::NotFound(_) => NotFoundError::new_err(msg),
        Error::MalformedMedia(_) => MalformedMediaError::new_err(msg),
        Error::UnsupportedMedia(_) => UnsupportedMediaError::new_err(msg),
        Error::Io(_) => PyOSError::new_err(msg),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add(
        "InvalidArgumentError",
        py.get_type::<InvalidArgumentError>(),
    )?;
    m.add("MalformedMediaError", py.get_type::<MalformedMediaError>())?;
    m.add(
        "UnsupportedMediaError",
        py.get_type::<UnsupportedMediaError>(),
    )?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("TokenInvalidError", py.get_type::<TokenInvalidError>())?;
    m.add("TokenExpiredError", py.get_type::<TokenExpiredError>())?;
    m.add("TokenForbiddenError", py.get_type::<TokenForbiddenError>())?;
    m.add("UnknownKeyError", py.get_type::<UnknownKeyError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    Ok(())
}

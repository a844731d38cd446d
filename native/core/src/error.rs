//! The one error type of the core crate. The binding maps each variant to a Python exception class.

use thiserror::Error as ThisError;

#[derive(Debug, ThisError, Clone, PartialEq, Eq)]
pub enum Error {
    /// The caller passed something malformed (a bad key, a path that is not absolute, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A token could not be parsed or its signature does not match.
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    /// A well-formed, correctly signed token whose expiry has passed.
    #[error("token expired at {expires_at}")]
    TokenExpired { expires_at: u64 },
    /// A valid token that does not grant the requested path or session.
    #[error("token does not grant access: {0}")]
    TokenForbidden(String),
    /// A token signed with a key id the verifier does not know.
    #[error("unknown key id: {0}")]
    UnknownKey(String),
    /// The object or thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Media bytes that do not parse: a truncated or inconsistent MP4 box, a NAL unit that overruns its sample.
    #[error("malformed media: {0}")]
    MalformedMedia(String),
    /// Well-formed media the packager does not handle (a codec, a box layout or an already encrypted stream).
    #[error("unsupported media: {0}")]
    UnsupportedMedia(String),
    /// An operating system or upstream I/O failure (bind, disk, an upstream that failed).
    #[error("i/o error: {0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

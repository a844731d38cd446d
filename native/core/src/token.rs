//! Signed URL tokens.

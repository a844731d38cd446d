//! marquee._native: the thin PyO3 binding over marquee-core.
//!
//! Each submodule wraps one concern of the core crate; errors go through `errors::to_py` so every
//! core error surfaces as a typed Python exception, and every blocking call releases the GIL via `detach`.

use pyo3::prelude::*;

mod edge;
mod errors;
mod ingest;
mod manifest;
mod protect;
mod search;
mod similarity;
mod token;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    token::register(m)?;
    manifest::register(m)?;
    protect::register(m)?;
    edge::register(m)?;
    ingest::register(m)?;
    search::register(m)?;
    similarity::register(m)?;
    Ok(())
}

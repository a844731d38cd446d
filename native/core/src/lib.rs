//! marquee-core: the pure Rust core of Marquee.
//!
//! Nothing in this crate knows about Python; the `marquee-native` crate is the thin PyO3 binding over it.
//! Every fallible operation returns [`Error`], which the binding maps onto typed Python exceptions.

pub mod edge;
pub mod error;
pub mod ingest;
pub mod latency;
pub mod listen;
pub mod manifest;
pub mod protect;
pub mod search;
pub mod similarity;
pub mod token;

pub use error::{Error, Result};

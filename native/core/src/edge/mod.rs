//! The edge cache's data plane: HTTP serving of origin objects from a memory and a disk tier, with request
//! coalescing, an upstream that is the origin or another edge (a shield), and signed URL verification.

pub mod cache;
pub mod config;
pub mod fill;
pub mod path;
pub mod policy;
pub mod range;
pub mod server;
pub mod stats;
pub mod tiers;
pub mod upstream;

pub use config::EdgeConfig;
pub use server::EdgeServer;

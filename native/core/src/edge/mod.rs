//! The edge cache's data plane: HTTP serving of origin objects from a memory and a disk tier, with request
//! coalescing, an upstream that is the origin or another edge (a shield), signed URL verification, fill
//! credentials between edges and their shield, and the set of revoked playback sessions.

pub mod cache;
pub mod config;
pub mod fill;
pub mod geo;
pub mod path;
pub mod policy;
pub mod range;
pub mod revoked;
pub mod server;
pub mod stats;
pub mod tiers;
pub mod upstream;

pub use config::EdgeConfig;
pub use server::EdgeServer;

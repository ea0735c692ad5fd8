//! Zone data for mxdns: RRsets in canonical order, the immutable signed snapshot, incremental
//! changes with NSEC maintenance, and lookup (answer, referral, NODATA, NXDOMAIN).
//!
//! This crate does no I/O and reads no clock: signatures come from an [`RrsetSigner`] that the
//! caller builds with its own notion of "now".

pub mod diff;
pub mod lookup;
pub mod memory;
pub mod rrset;
pub mod snapshot;
pub mod wire;
pub mod zone;

pub use lookup::{Lookup, RrsetList};
pub use memory::MemoryUse;
pub use rrset::Rrset;
pub use zone::{Change, Node, RrsetSigner, Zone, ZoneError};

#[cfg(test)]
mod tests;

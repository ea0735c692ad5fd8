//! Provisioning for mxdns: the SQLite store of record and the tenant use cases.

pub mod certs;
pub mod checks;
pub mod dane;
pub mod mxtoken;
pub mod outbound;
pub mod resolver;
pub mod service;
pub mod store;

pub use store::{Batch, BatchOp, KeyRow, Store, StoreError, StoredRrset};

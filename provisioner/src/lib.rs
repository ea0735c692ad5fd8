//! Provisioning for mxdns: the SQLite store of record and (later) the tenant use cases.

pub mod store;

pub use store::{Batch, BatchOp, KeyRow, Store, StoreError, StoredRrset};

//! The set of served zones that readers load with one atomic pointer swap.

use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};
use zones::Zone;

/// All served zones, deepest origin first. Immutable; replaced whole on every change.
#[derive(Debug, Default)]
pub struct Catalog {
    pub zones: Vec<Arc<Zone>>,
}

impl Catalog {
    /// The zone that answers `qname`: the deepest one containing it, except that DS at a zone
    /// apex is answered by the parent (RFC 4035 3.1.4.1).
    pub fn find(&self, qname: &Name, qtype: RecordType) -> Option<&Arc<Zone>> {
        let mut it = self.zones.iter().filter(|z| z.origin.zone_of(qname));
        let first = it.next()?;
        if qtype == RecordType::DS && first.origin == *qname {
            return it.next().or(Some(first));
        }
        Some(first)
    }

    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.iter().find(|z| z.origin == *origin)
    }
}

//! What a zone snapshot holds in memory, by kind: the breakdown the benchmarks report beside the
//! server's resident memory (`mxdns` logs it when a zone is loaded or built).
//!
//! Sizes are what glibc's allocator hands out for each heap block (the request plus its 8-byte
//! header, rounded up to 16 bytes, at least 32), counted from the structures, not measured; the
//! index's B-tree is an estimate (imbl does not expose its nodes): its leaves hold up to 64
//! entries and a tree grown by inserts in key order keeps them about half full.

use std::mem::size_of;
use std::sync::Arc;

use crate::rrset::Rrset;
use crate::zone::{IndexKey, Node, Zone};

/// The heap bytes glibc's malloc uses for a request of `n` bytes.
pub fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Heap use of one zone snapshot, in bytes (see the module documentation).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    /// Names in the index (authoritative names and delegation points).
    pub names: usize,
    /// RRsets (NSEC included).
    pub rrsets: usize,
    /// The index: B-tree entries (key + node pointer) at half-full leaves, keys too long to be
    /// stored inline. An estimate.
    pub index: usize,
    /// The nodes: `Arc<Node>` blocks and their RRset lists.
    pub nodes: usize,
    /// The RRsets' pre-encoded blocks without their RRSIGs: header, ops, owner, records.
    pub rrset_blocks: usize,
    /// The RRSIGs inside those blocks (their ops and bytes).
    pub signatures: usize,
}

impl MemoryUse {
    pub fn total(&self) -> usize {
        self.index + self.nodes + self.rrset_blocks + self.signatures
    }

    /// Adds another zone's figures.
    pub fn add(&mut self, o: &MemoryUse) {
        self.names += o.names;
        self.rrsets += o.rrsets;
        self.index += o.index;
        self.nodes += o.nodes;
        self.rrset_blocks += o.rrset_blocks;
        self.signatures += o.signatures;
    }
}

impl Zone {
    /// The heap this snapshot holds alone (structure shared with other snapshots counted in
    /// full). Walks every node: O(n), for reports, not for the query path.
    pub fn memory(&self) -> MemoryUse {
        let mut m = MemoryUse {
            names: self.index.len(),
            ..Default::default()
        };
        let entry = size_of::<(IndexKey, Arc<Node>)>();
        m.index = self.index.len() * entry * 2;
        for (k, node) in self.index.iter() {
            if let IndexKey::Heap(b) = k {
                m.index += chunk(b.len());
            }
            m.node(node);
        }
        for node in self.glue.values() {
            m.index += entry * 2;
            m.node(node);
        }
        m
    }
}

impl MemoryUse {
    fn node(&mut self, node: &Node) {
        // Arc's two counters beside the node
        self.nodes += chunk(2 * size_of::<usize>() + size_of::<Node>());
        self.nodes += chunk(node.rrsets.len() * size_of::<Rrset>());
        for r in node.rrsets.iter().chain(node.nsec.iter()) {
            self.rrsets += 1;
            let w = r.wire();
            let sigs = w.rrsig_bytes();
            self.signatures += sigs;
            self.rrset_blocks += chunk(w.block_len()) - sigs;
        }
    }
}

//! The difference between two snapshots of a zone, for incremental transfers (IXFR, RFC 1995).
//!
//! Snapshots are persistent maps that share every node a change did not touch, and imbl's
//! `diff` skips shared subtrees by pointer, so comparing a snapshot with a later one costs
//! O(changed names · log n), not O(n). The difference is condensed by construction: whatever
//! happened in between, each name contributes the records of the old snapshot that are not in
//! the new one (deletions) and those of the new one that are not in the old one (additions),
//! RRSIGs and NSEC included.

use std::collections::HashSet;

use hickory_proto::rr::RecordType;
use imbl::ordmap::DiffItem;

use crate::rrset::Rrset;
use crate::zone::{Node, Zone};

impl Zone {
    /// The nodes (authoritative names, delegation points, glue) that differ between `self` and
    /// `newer`, as (node in `self`, node in `newer`); `None` where the name does not exist.
    pub fn changed_nodes<'a>(
        &'a self,
        newer: &'a Zone,
    ) -> impl Iterator<Item = (Option<&'a Node>, Option<&'a Node>)> + 'a {
        fn pair<'a, K>(
            d: DiffItem<'a, 'a, K, std::sync::Arc<Node>>,
        ) -> (Option<&'a Node>, Option<&'a Node>) {
            match d {
                DiffItem::Add(_, v) => (None, Some(&**v)),
                DiffItem::Update {
                    old: (_, o),
                    new: (_, n),
                } => (Some(&**o), Some(&**n)),
                DiffItem::Remove(_, v) => (Some(&**v), None),
            }
        }
        self.index
            .diff(&newer.index)
            .map(pair)
            .chain(self.glue.diff(&newer.glue).map(pair))
    }
}

/// The RRsets of a node, NSEC included.
fn rrsets(node: Option<&Node>) -> impl Iterator<Item = &Rrset> {
    node.into_iter()
        .flat_map(|n| n.rrsets.iter().chain(n.nsec.iter()))
}

/// Calls `f(owner, rr)` for every resource record at `from` that `to` does not have: `owner` is
/// the owner name in uncompressed wire form, `rr` the rest of the record (type, class, TTL,
/// RDLENGTH, RDATA), RRSIGs and NSEC included. SOA records are left out (an IXFR's SOA markers
/// stand for them); their RRSIGs are not.
pub fn records_not_in(from: Option<&Node>, to: Option<&Node>, mut f: impl FnMut(&[u8], &[u8])) {
    for r in rrsets(from) {
        let other = rrsets(to).find(|o| o.rtype == r.rtype);
        if other == Some(r) {
            continue;
        }
        let mut theirs: HashSet<Vec<u8>> = HashSet::new();
        if let Some(o) = other {
            o.wire().each_record(false, |rr| {
                theirs.insert(rr.to_vec());
            });
            o.wire().each_record(true, |rr| {
                theirs.insert(rr.to_vec());
            });
        }
        let owner = r.owner_wire();
        if r.rtype != RecordType::SOA {
            r.wire().each_record(false, |rr| {
                if !theirs.contains(rr) {
                    f(owner, rr);
                }
            });
        }
        r.wire().each_record(true, |rr| {
            if !theirs.contains(rr) {
                f(owner, rr);
            }
        });
    }
}

/// An upper bound of the wire bytes by which two versions of a node differ (the RRsets that
/// are not identical, both versions, with their RRSIGs): what keeping the older version costs
/// beside the newer, and what an IXFR carries for the name at most.
pub fn change_size(old: Option<&Node>, new: Option<&Node>) -> usize {
    let side = |a: Option<&Node>, b: Option<&Node>| -> usize {
        rrsets(a)
            .filter(|r| rrsets(b).find(|o| o.rtype == r.rtype) != Some(*r))
            .map(|r| r.len(true) + r.owner_wire().len() * r.count())
            .sum()
    };
    side(old, new) + side(new, old)
}

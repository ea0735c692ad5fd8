//! Key rollover as a pure state machine (not yet wired into the server; see ARCHITECTURE.md).
//!
//! Time goes in (`now`, unix seconds), a [`Plan`] comes out: the actions to carry out now and
//! the time of the next event. Each key's state is computed from its timestamps (as Knot does),
//! never stored as a flag.
//!
//! ```text
//! ZSK, pre-publication (RFC 6781 4.1.1.1, RFC 7583 3.2):
//!   new:  published ──Ipub──► ready ──(old's lifetime ends)──► active ...
//!   old:  active ────────────────────────────────────────────► retired ──Iret──► removed
//!   Ipub = Dprp + TTLkey + publish_safety        (the new DNSKEY is in every cache)
//!   Iret = Dprp + TTLsig + retire_safety         (no cached signature needs the old key)
//!
//! KSK, double-signature (RFC 6781 4.1.2, RFC 7583 3.3.1):
//!   new:  published+signing DNSKEY ──Ipub──► ready: DS(new) submitted (partition: put in the
//!         parent; apex: CDS/CDNSKEY, wait for the operator or a parent check) ──► ds_seen
//!   old:  retired at ds_seen, removed (and its DS withdrawn) at
//!         ds_seen + DprpP + TTLds + retire_safety (no cached DS points at it any more)
//! ```

/// Timing policy of a zone's keys (seconds). Defaults and why: `docs` on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A ZSK is replaced after this long (30 days: limits what a leaked ZSK can sign).
    pub zsk_lifetime: u64,
    /// A KSK is replaced after this long (365 days: each roll needs the parent).
    pub ksk_lifetime: u64,
    /// Dprp: time for a change to reach every secondary (300 s; one server, secondaries by NOTIFY).
    pub propagation_delay: u64,
    /// TTL of the DNSKEY RRset (3600 s).
    pub dnskey_ttl: u64,
    /// TTLsig: the largest TTL of a signed RRset in the zone (3600 s).
    pub max_zone_ttl: u64,
    /// TTL of the DS RRset in the parent (3600 s; ours for partitions).
    pub parent_ds_ttl: u64,
    /// DprpP: time for the parent's change to reach its servers (300 s for partitions; a
    /// registrar may need a day, set it for the apex).
    pub parent_propagation_delay: u64,
    /// Extra time added before a new key is used (3600 s: clock skew, slow caches).
    pub publish_safety: u64,
    /// Extra time added before an old key is removed (3600 s).
    pub retire_safety: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            zsk_lifetime: 30 * 86400,
            ksk_lifetime: 365 * 86400,
            propagation_delay: 300,
            dnskey_ttl: 3600,
            max_zone_ttl: 3600,
            parent_ds_ttl: 3600,
            parent_propagation_delay: 300,
            publish_safety: 3600,
            retire_safety: 3600,
        }
    }
}

impl Policy {
    /// Ipub (RFC 7583 3.2.1 / 3.3.1): from publishing a DNSKEY until every validator has it.
    pub fn publish_interval(&self) -> u64 {
        self.propagation_delay + self.dnskey_ttl + self.publish_safety
    }
    /// Iret for a ZSK (RFC 7583 3.2.1): from retiring a ZSK until no cached signature needs it.
    pub fn zsk_retire_interval(&self) -> u64 {
        self.propagation_delay + self.max_zone_ttl + self.retire_safety
    }
    /// For a KSK (RFC 7583 3.3.1): from the new DS being seen at the parent until no cached DS
    /// points at the old key.
    pub fn ksk_retire_interval(&self) -> u64 {
        self.parent_propagation_delay + self.parent_ds_ttl + self.retire_safety
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Ksk,
    Zsk,
}

/// A key's timestamps (unix seconds); `None` = not (yet) scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimes {
    pub tag: u16,
    pub role: KeyRole,
    pub published: Option<u64>,
    /// When it signs (ZSK: the zone; KSK: the DNSKEY RRset, from publication).
    pub active: Option<u64>,
    pub retired: Option<u64>,
    pub removed: Option<u64>,
    /// KSK: when its DS was submitted to the parent (partition: written; apex: CDS published).
    pub ds_submitted: Option<u64>,
    /// KSK: when its DS was seen at the parent (partition: when written; apex: confirmation).
    pub ds_seen: Option<u64>,
}

/// The state of a key at a moment, computed from its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyState {
    Generated,
    Published,
    Ready,
    Active,
    Retired,
    Removed,
}

impl KeyTimes {
    pub fn state(&self, now: u64, p: &Policy) -> KeyState {
        let at = |t: Option<u64>| t.is_some_and(|t| t <= now);
        if at(self.removed) {
            KeyState::Removed
        } else if at(self.retired) {
            KeyState::Retired
        } else if at(self.active) {
            // the planner activates a key only once it is ready (except a zone's first keys)
            KeyState::Active
        } else if self
            .published
            .is_some_and(|t| t + p.publish_interval() <= now)
        {
            KeyState::Ready
        } else if at(self.published) {
            KeyState::Published
        } else {
            KeyState::Generated
        }
    }

    /// The DNSKEY is in the zone.
    pub fn in_dnskey_rrset(&self, now: u64) -> bool {
        self.published.is_some_and(|t| t <= now) && self.removed.is_none_or(|t| t > now)
    }

    /// Its DS is (or should be) in the parent: from submission until removal.
    pub fn ds_in_parent(&self, now: u64) -> bool {
        self.role == KeyRole::Ksk
            && self.ds_submitted.is_some_and(|t| t <= now)
            && self.removed.is_none_or(|t| t > now)
    }
}

/// Who owns the parent of the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// We serve the parent (partitions): the DS is written there and seen at once.
    Ours,
    /// Someone else's (the apex): CDS/CDNSKEY, then wait for `ds_seen` (operator or check).
    External,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Generate a key of this role and store it with `published = now` (and `active = now` for
    /// a KSK, which signs the DNSKEY RRset from the start in a double-signature roll).
    Generate(KeyRole),
    /// Set these timestamps on a key (persist before acting on them).
    Update(KeyTimes),
    /// The apex's rollover waits for the parent to show the DS of this key.
    WaitForParentDs(u16),
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to run again (None: nothing is scheduled, e.g. waiting for an operator).
    pub next_event: Option<u64>,
}

/// One step of the rollover of `role` keys of a zone at `now`. Pure; apply the actions, persist
/// them, and call again (at `next_event` at the latest). Running it twice at the same `now`
/// after applying the first plan yields no action (idempotent).
pub fn plan(role: KeyRole, keys: &[KeyTimes], now: u64, p: &Policy, parent: Parent) -> Plan {
    let mut out = Plan::default();
    let next = |t: u64, out: &mut Plan| {
        if t > now {
            out.next_event = Some(out.next_event.map_or(t, |n| n.min(t)));
        }
    };
    let live: Vec<&KeyTimes> = keys
        .iter()
        .filter(|k| k.role == role && k.removed.is_none_or(|t| t > now))
        .collect();
    if live.is_empty() {
        out.actions.push(Action::Generate(role));
        return out;
    }
    let lifetime = if role == KeyRole::Zsk {
        p.zsk_lifetime
    } else {
        p.ksk_lifetime
    };
    // the current key: active and not retired; a ZSK successor is activated only when the
    // current one retires (so the last activated is current), while a new KSK signs from its
    // publication on (so the first activated is current until it is removed)
    let signing = live
        .iter()
        .filter(|k| k.active.is_some_and(|t| t <= now) && k.retired.is_none());
    let current = match role {
        KeyRole::Zsk => signing.max_by_key(|k| k.active),
        KeyRole::Ksk => signing.min_by_key(|k| k.active),
    }
    .copied();
    let successor = live
        .iter()
        .find(|k| current.is_none_or(|c| c.tag != k.tag) && k.retired.is_none())
        .copied();
    match role {
        KeyRole::Zsk => {
            let Some(cur) = current else {
                // a ZSK published but not active yet (first key or after an emergency roll)
                if let Some(s) = successor {
                    let ready = s.published.unwrap_or(now) + p.publish_interval();
                    if live.iter().all(|k| k.retired.is_some() || k.tag == s.tag)
                        && s.active.is_none()
                    {
                        // nothing else signs: use it at once (first key of a zone)
                        out.actions.push(Action::Update(KeyTimes {
                            active: Some(now),
                            ..s.clone()
                        }));
                    } else {
                        next(ready, &mut out);
                    }
                }
                return out;
            };
            let end = cur.active.unwrap_or(now) + lifetime;
            match successor {
                None => {
                    let publish_at = end.saturating_sub(p.publish_interval());
                    if now >= publish_at {
                        out.actions.push(Action::Generate(KeyRole::Zsk));
                    } else {
                        next(publish_at, &mut out);
                    }
                }
                Some(s) => {
                    let ready = s.published.unwrap_or(now) + p.publish_interval();
                    let switch = end.max(ready);
                    if now >= switch && s.active.is_none() {
                        out.actions.push(Action::Update(KeyTimes {
                            active: Some(now),
                            ..s.clone()
                        }));
                        out.actions.push(Action::Update(KeyTimes {
                            retired: Some(now),
                            removed: Some(now + p.zsk_retire_interval()),
                            ..cur.clone()
                        }));
                    } else {
                        next(switch, &mut out);
                    }
                }
            }
        }
        KeyRole::Ksk => {
            let Some(cur) = current else { return out };
            // a KSK with no DS yet (first key): submit at once
            if cur.ds_submitted.is_none() {
                let mut k = cur.clone();
                k.ds_submitted = Some(now);
                if parent == Parent::Ours {
                    k.ds_seen = Some(now);
                }
                out.actions.push(Action::Update(k));
                return out;
            }
            let end = cur.active.unwrap_or(now) + lifetime;
            let Some(s) = live
                .iter()
                .find(|k| k.tag != cur.tag && k.retired.is_none())
                .copied()
            else {
                let publish_at = end.saturating_sub(p.publish_interval());
                if now >= publish_at {
                    out.actions.push(Action::Generate(KeyRole::Ksk));
                } else {
                    next(publish_at, &mut out);
                }
                return out;
            };
            let ready = s.published.unwrap_or(now) + p.publish_interval();
            if s.ds_submitted.is_none() {
                if now >= ready {
                    let mut k = s.clone();
                    k.ds_submitted = Some(now);
                    if parent == Parent::Ours {
                        k.ds_seen = Some(now);
                    }
                    out.actions.push(Action::Update(k));
                } else {
                    next(ready, &mut out);
                }
                return out;
            }
            let Some(seen) = s.ds_seen else {
                out.actions.push(Action::WaitForParentDs(s.tag));
                return out;
            };
            // the old DS may be cached until seen + DprpP + TTLds (+ safety): only then go
            let remove_old = seen + p.ksk_retire_interval();
            if now >= remove_old {
                out.actions.push(Action::Update(KeyTimes {
                    retired: Some(now),
                    removed: Some(now),
                    ..cur.clone()
                }));
            } else {
                next(remove_old, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(keys: &mut Vec<KeyTimes>, plan: &Plan, now: u64, tag: &mut u16) {
        for a in &plan.actions {
            match a {
                Action::Generate(role) => {
                    *tag += 1;
                    keys.push(KeyTimes {
                        tag: *tag,
                        role: *role,
                        published: Some(now),
                        active: if *role == KeyRole::Ksk {
                            Some(now)
                        } else {
                            None
                        },
                        retired: None,
                        removed: None,
                        ds_submitted: None,
                        ds_seen: None,
                    })
                }
                Action::Update(k) => {
                    let i = keys.iter().position(|x| x.tag == k.tag).unwrap();
                    keys[i] = k.clone();
                }
                Action::WaitForParentDs(_) => {}
            }
        }
    }

    /// Runs both roles from an empty zone for `days`, checking the invariants at every event
    /// and at every hour in between.
    fn simulate(p: Policy, parent: Parent, days: u64, confirm_after: u64) -> Vec<KeyTimes> {
        let mut keys = Vec::new();
        let mut tag = 0u16;
        let start = 1_800_000_000u64;
        let mut now = start;
        let end = start + days * 86400;
        let mut steps = 0;
        while now <= end {
            for role in [KeyRole::Ksk, KeyRole::Zsk] {
                for _ in 0..4 {
                    let plan = plan(role, &keys, now, &p, parent);
                    if plan
                        .actions
                        .iter()
                        .all(|a| matches!(a, Action::WaitForParentDs(_)))
                    {
                        // the operator confirms the DS some time after the CDS appeared
                        for a in &plan.actions {
                            if let Action::WaitForParentDs(t) = a {
                                let k = keys.iter_mut().find(|k| k.tag == *t).unwrap();
                                if now >= k.ds_submitted.unwrap() + confirm_after {
                                    k.ds_seen = Some(now);
                                }
                            }
                        }
                        break;
                    }
                    apply(&mut keys, &plan, now, &mut tag);
                }
            }
            check(&keys, now, &p);
            now += 3600;
            steps += 1;
            assert!(steps < 100_000);
        }
        keys
    }

    /// At every moment: a published, active key of each role; every DS in the parent matches a
    /// published DNSKEY; every signature in caches was made by a key still published.
    fn check(keys: &[KeyTimes], now: u64, p: &Policy) {
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            let active: Vec<_> = keys
                .iter()
                .filter(|k| k.role == role && k.state(now, p) == KeyState::Active)
                .collect();
            assert!(
                !active.is_empty() || now == 1_800_000_000,
                "no active {role:?} at {now}: {keys:?}"
            );
        }
        for k in keys.iter().filter(|k| k.ds_in_parent(now)) {
            assert!(
                k.in_dnskey_rrset(now),
                "DS of {} without DNSKEY at {now}",
                k.tag
            );
        }
        // a ZSK is removed only Iret after it stopped signing
        for k in keys
            .iter()
            .filter(|k| k.role == KeyRole::Zsk && k.removed.is_some_and(|t| t <= now))
        {
            assert!(k.removed.unwrap() >= k.retired.unwrap() + p.zsk_retire_interval());
        }
        // a DS that caches may still hold (within DprpP + TTLds of its withdrawal) has a DNSKEY:
        // the old KSK goes only after the new DS has been seen for the retire interval
        for k in keys
            .iter()
            .filter(|k| k.role == KeyRole::Ksk && k.removed.is_some_and(|t| t <= now))
        {
            let successor_seen = keys
                .iter()
                .filter(|s| s.role == KeyRole::Ksk && s.tag != k.tag)
                .filter_map(|s| s.ds_seen)
                .min();
            assert!(
                successor_seen.is_some_and(|s| k.removed.unwrap() >= s + p.ksk_retire_interval()),
                "KSK {} removed too early",
                k.tag
            );
        }
    }

    #[test]
    fn formulas_of_rfc_7583() {
        let p = Policy::default();
        assert_eq!(p.publish_interval(), 300 + 3600 + 3600);
        assert_eq!(p.zsk_retire_interval(), 300 + 3600 + 3600);
        assert_eq!(p.ksk_retire_interval(), 300 + 3600 + 3600);
    }

    #[test]
    fn zsk_prepublication_timing() {
        let p = Policy {
            zsk_lifetime: 10 * 86400,
            ..Policy::default()
        };
        let keys = simulate(p, Parent::Ours, 25, 0);
        let zsks: Vec<_> = keys.iter().filter(|k| k.role == KeyRole::Zsk).collect();
        assert!(zsks.len() >= 3, "two rollovers in 25 days: {zsks:?}");
        for w in zsks.windows(2) {
            let (old, new) = (w[0], w[1]);
            // the successor is published Ipub before the old key's lifetime ends (hour grid)
            let end = old.active.unwrap() + p.zsk_lifetime;
            assert!(new.published.unwrap() <= end - p.publish_interval() + 3600);
            // and used only when ready
            assert!(new.active.unwrap() >= new.published.unwrap() + p.publish_interval());
            assert_eq!(
                old.retired, new.active,
                "the old key stops when the new one starts"
            );
            assert_eq!(
                old.removed.unwrap(),
                old.retired.unwrap() + p.zsk_retire_interval()
            );
        }
    }

    #[test]
    fn partition_ksk_rolls_end_to_end() {
        let p = Policy {
            ksk_lifetime: 5 * 86400,
            ..Policy::default()
        };
        let keys = simulate(p, Parent::Ours, 12, 0);
        let ksks: Vec<_> = keys.iter().filter(|k| k.role == KeyRole::Ksk).collect();
        assert!(ksks.len() >= 3);
        for w in ksks.windows(2) {
            let (old, new) = (w[0], w[1]);
            assert!(new.ds_submitted.unwrap() >= new.published.unwrap() + p.publish_interval());
            assert_eq!(new.ds_seen, new.ds_submitted, "we own the parent");
            assert!(old.removed.unwrap() >= new.ds_seen.unwrap() + p.ksk_retire_interval());
        }
    }

    #[test]
    fn apex_ksk_waits_for_the_parent() {
        let p = Policy {
            ksk_lifetime: 5 * 86400,
            ..Policy::default()
        };
        // the operator confirms two days after the CDS appears
        let keys = simulate(p, Parent::External, 12, 2 * 86400);
        let ksks: Vec<_> = keys.iter().filter(|k| k.role == KeyRole::Ksk).collect();
        assert!(
            ksks.iter().skip(1).any(|k| k.ds_seen.is_some()),
            "a rollover completed: {ksks:?}"
        );
        assert!(
            ksks.iter().any(|k| k.removed.is_some()),
            "an old KSK was removed: {ksks:?}"
        );
        for w in ksks.windows(2) {
            let (old, new) = (w[0], w[1]);
            if let Some(seen) = new.ds_seen {
                assert!(seen >= new.ds_submitted.unwrap() + 2 * 86400);
                assert!(old
                    .removed
                    .is_none_or(|r| r >= seen + p.ksk_retire_interval()));
            } else {
                assert!(
                    old.removed.is_none(),
                    "never remove the old KSK before the new DS is seen"
                );
            }
        }
        // never confirmed: the old key stays forever
        let keys = simulate(p, Parent::External, 12, u64::MAX / 4);
        assert!(keys
            .iter()
            .filter(|k| k.role == KeyRole::Ksk)
            .all(|k| k.removed.is_none()));
    }

    #[test]
    fn idempotent_at_the_same_moment() {
        let p = Policy::default();
        let mut keys = Vec::new();
        let mut tag = 0;
        let now = 1_800_000_000;
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            for _ in 0..4 {
                let pl = plan(role, &keys, now, &p, Parent::Ours);
                apply(&mut keys, &pl, now, &mut tag);
            }
            assert!(plan(role, &keys, now, &p, Parent::Ours).actions.is_empty());
        }
        let next = plan(KeyRole::Zsk, &keys, now, &p, Parent::Ours)
            .next_event
            .unwrap();
        assert_eq!(next, now + p.zsk_lifetime - p.publish_interval());
    }
}

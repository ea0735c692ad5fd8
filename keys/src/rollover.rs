//! Key rollover as a pure state machine: time goes in (`now`, unix seconds), a [`Plan`] comes
//! out: the actions to carry out now and the next scheduled step with its time. Each key's
//! state is computed from its timestamps (as Knot does), never stored as a flag, and every
//! timestamp the planner writes is `now`: what a zone publishes changes only when a step is
//! persisted (see [`key_sets`]), so the store is the whole truth and a restart resumes a roll.
//!
//! ```text
//! ZSK, pre-publication (RFC 6781 4.1.1.1, RFC 7583 3.2):
//!   new:  published ──Ipub──► ready ──(old key's lifetime ends)──► active ...
//!   old:  active ──────────────────────────────────────────────► retired ──Iret──► removed
//!   new published at  end(old) - Ipub                             (RFC 7583 3.2.2, Tpub)
//!   switch at         max(end(old), published(new) + Ipub)
//!   Ipub = Dprp + TTLkey + publish_safety      (the new DNSKEY is in every cache)
//!   Iret = Dprp + TTLsig + retire_safety       (no cached signature needs the old key)
//!
//! KSK, double-signature (RFC 6781 4.1.2, RFC 7583 3.3.1):
//!   new:  published, signs the DNSKEY RRset ──Ipub──► ready: DS submitted (partition: written
//!         in the parent we serve, seen at once; apex: CDS/CDNSKEY published, then wait for the
//!         operator's `keys ds-seen` or the parent check) ──► ds_seen
//!   old:  retired and removed (its DS withdrawn) at ds_seen(new) + IretKSK
//!   IretKSK = DprpP + TTLds + retire_safety   (no cached DS points at the old key only)
//! ```
//! An unscheduled roll ([`request_roll`]) ends the current key's lifetime now; the steps and
//! their waiting times stay the same, so even an emergency roll never breaks validation.
//!
//! With a fleet of secondaries ([`Policy::fleet`]), Dprp is not a guessed constant: each step
//! whose safety relies on it (a new DNSKEY published, a ZSK switch, a DS written in a parent we
//! serve) counts its waiting time from the moment every secondary was first seen serving the
//! serial that carries it (`*_fleet` in [`KeyTimes`], an input: the caller asks the secondaries
//! and stores that moment, [`fleet_seen`]). Until then the roll waits ([`Action::WaitForFleet`]):
//!
//! ```text
//!   step stored at t ─► the primary serves it (serial S) ─► every secondary serves >= S at f
//!   ready        = published_fleet + TTLkey + publish_safety
//!   ZSK removal  = retired_fleet   + TTLsig + retire_safety
//!   KSK removal  = ds_fleet        + TTLds  + retire_safety   (partitions; the apex: ds_seen + IretKSK)
//! ```

/// Timing policy of a zone's keys (seconds). The defaults and the reason for each are in the
/// field docs and in README.md.
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
    /// Secondaries serve the zone: Dprp is measured (the `*_fleet` times of [`KeyTimes`])
    /// instead of `propagation_delay` / `parent_propagation_delay` (partitions).
    pub fleet: bool,
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
            fleet: false,
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
    /// When a published key is in every cache (None: the fleet has not served it yet).
    pub fn ready_at(&self, k: &KeyTimes) -> Option<u64> {
        if self.fleet {
            k.published_fleet
                .map(|f| f + self.dnskey_ttl + self.publish_safety)
        } else {
            k.published.map(|t| t + self.publish_interval())
        }
    }
    /// When a retired ZSK may go (None: the fleet has not served the switch yet).
    fn zsk_remove_at(&self, k: &KeyTimes) -> Option<u64> {
        if self.fleet {
            k.retired_fleet
                .map(|f| f + self.max_zone_ttl + self.retire_safety)
        } else {
            k.retired.map(|t| t + self.zsk_retire_interval())
        }
    }
    /// When the old KSK may go, the new one `s` having its DS seen at the parent (None: the
    /// fleet has not served the parent's new DS yet).
    fn ksk_remove_at(&self, s: &KeyTimes, parent: Parent) -> Option<u64> {
        if self.fleet && parent == Parent::Ours {
            s.ds_fleet
                .map(|f| f + self.parent_ds_ttl + self.retire_safety)
        } else {
            s.ds_seen.map(|t| t + self.ksk_retire_interval())
        }
    }
    fn lifetime(&self, role: KeyRole) -> u64 {
        match role {
            KeyRole::Zsk => self.zsk_lifetime,
            KeyRole::Ksk => self.ksk_lifetime,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyRole {
    Ksk,
    #[default]
    Zsk,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Ksk => "ksk",
            KeyRole::Zsk => "zsk",
        }
    }
}

/// A key's timestamps (unix seconds); `None` = not (yet) reached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyTimes {
    /// Identity of the key in the store (key tags may collide).
    pub id: i64,
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
    /// An unscheduled roll was asked for at this time: the key's lifetime ends then.
    pub roll_requested: Option<u64>,
    /// With a fleet: when every secondary was first seen serving the serial that carries this
    /// key's publication, its retirement (ZSK switch), its DS in the parent we serve.
    pub published_fleet: Option<u64>,
    pub retired_fleet: Option<u64>,
    pub ds_fleet: Option<u64>,
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

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Generated => "generated",
            KeyState::Published => "published",
            KeyState::Ready => "ready",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }
}

fn at(t: Option<u64>, now: u64) -> bool {
    t.is_some_and(|t| t <= now)
}

impl KeyTimes {
    pub fn state(&self, now: u64, p: &Policy) -> KeyState {
        if at(self.removed, now) {
            KeyState::Removed
        } else if at(self.retired, now) {
            KeyState::Retired
        } else if at(self.active, now) {
            // the planner activates a ZSK only once it is ready (except a zone's first keys)
            KeyState::Active
        } else if at(self.published, now) && p.ready_at(self).is_some_and(|t| t <= now) {
            KeyState::Ready
        } else if at(self.published, now) {
            KeyState::Published
        } else {
            KeyState::Generated
        }
    }

    /// The DNSKEY is in the zone.
    pub fn in_dnskey_rrset(&self, now: u64) -> bool {
        at(self.published, now) && !at(self.removed, now)
    }

    /// Its DS is in the parent (partitions: we write it there from submission until removal).
    pub fn ds_in_parent(&self, now: u64) -> bool {
        self.role == KeyRole::Ksk && at(self.ds_submitted, now) && !at(self.removed, now)
    }

    /// The end of its lifetime: scheduled, or earlier when a roll was asked for.
    fn lifetime_end(&self, p: &Policy, now: u64) -> u64 {
        let end = self.active.unwrap_or(now) + p.lifetime(self.role);
        self.roll_requested.map_or(end, |r| r.min(end))
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
    /// Persist these timestamps of a key (before acting on them); `step` says which step.
    Update { key: KeyTimes, step: Step },
    /// The apex's rollover waits for the parent to show the DS of this key.
    WaitForParentDs { id: i64, tag: u16 },
    /// The roll waits for every secondary to serve `step` of this key, stored at `since`
    /// (the caller asks them, then stores the moment with [`fleet_seen`]).
    WaitForFleet {
        id: i64,
        tag: u16,
        step: Step,
        since: u64,
    },
}

impl Action {
    /// A wait on someone else (the parent, the fleet), not a step to carry out.
    pub fn is_wait(&self) -> bool {
        matches!(
            self,
            Action::WaitForParentDs { .. } | Action::WaitForFleet { .. }
        )
    }
}

/// The steps of the two state machines, for logs and `keys list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Publish a successor key (ZSK: pre-publication; KSK: published and signing DNSKEY).
    PublishSuccessor,
    /// ZSK: the successor starts signing the zone, the current key retires.
    SwitchZsk,
    /// A ZSK no longer signs and no cached signature needs it: remove its DNSKEY.
    RemoveZsk,
    /// KSK: the successor is in every cache: submit its DS (partition: write it; apex: CDS).
    SubmitDs,
    /// KSK: the successor's DS is at the parent (apex: operator or check confirms it).
    DsSeen,
    /// KSK: no cached DS needs the old key: remove it and withdraw its DS.
    RemoveKsk,
    /// A zone's first key of a role starts at once.
    ActivateFirst,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::PublishSuccessor => "publish successor",
            Step::SwitchZsk => "switch to the new ZSK",
            Step::RemoveZsk => "remove the old ZSK",
            Step::SubmitDs => "submit the new DS",
            Step::DsSeen => "new DS seen at the parent",
            Step::RemoveKsk => "remove the old KSK and its DS",
            Step::ActivateFirst => "activate the first key",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The next scheduled step and its time (None: nothing scheduled, e.g. waiting for the
    /// parent, which only the operator or the parent check can end).
    pub next: Option<(u64, Step)>,
}

impl Plan {
    pub fn next_event(&self) -> Option<u64> {
        self.next.map(|(t, _)| t)
    }
    fn later(&mut self, t: u64, step: Step, now: u64) {
        if t > now && self.next.is_none_or(|(n, _)| t < n) {
            self.next = Some((t, step));
        }
    }
    fn update(&mut self, key: KeyTimes, step: Step) {
        self.actions.push(Action::Update { key, step });
    }
    fn wait_fleet(&mut self, k: &KeyTimes, step: Step, since: u64) {
        self.actions.push(Action::WaitForFleet {
            id: k.id,
            tag: k.tag,
            step,
            since,
        });
    }
}

/// One step of the rollover of the `role` keys of a zone at `now`. Pure; persist the actions,
/// carry them out, and call again (at the next step's time at the latest). Calling it again at
/// the same `now` after persisting the first plan yields no action (idempotent), so two runs
/// that are serialised by a transaction do every step once.
pub fn plan(role: KeyRole, keys: &[KeyTimes], now: u64, p: &Policy, parent: Parent) -> Plan {
    let mut out = Plan::default();
    let live: Vec<&KeyTimes> = keys
        .iter()
        .filter(|k| k.role == role && !at(k.removed, now))
        .collect();
    if live.is_empty() {
        out.actions.push(Action::Generate(role));
        return out;
    }
    let current = current_key(role, &live, now);
    let successor = live
        .iter()
        .find(|k| current.is_none_or(|c| c.id != k.id) && k.retired.is_none())
        .copied();
    if role == KeyRole::Zsk {
        // retired ZSKs go once no cached signature can need them
        for k in live.iter().filter(|k| at(k.retired, now)) {
            let Some(remove_at) = p.zsk_remove_at(k) else {
                out.wait_fleet(k, Step::SwitchZsk, k.retired.unwrap_or(now));
                continue;
            };
            if now >= remove_at {
                out.update(
                    KeyTimes {
                        removed: Some(now),
                        ..(*k).clone()
                    },
                    Step::RemoveZsk,
                );
            } else {
                out.later(remove_at, Step::RemoveZsk, now);
            }
        }
    }
    let Some(cur) = current else {
        // nothing signs: the zone's first key of the role (or one left by a broken store)
        // starts now
        if let Some(s) = successor {
            out.update(
                KeyTimes {
                    active: Some(now),
                    ..s.clone()
                },
                Step::ActivateFirst,
            );
        }
        return out;
    };
    match role {
        KeyRole::Zsk => {
            let end = cur.lifetime_end(p, now);
            match successor {
                None => {
                    let publish_at = end.saturating_sub(p.publish_interval());
                    if now >= publish_at {
                        out.actions.push(Action::Generate(KeyRole::Zsk));
                    } else {
                        out.later(publish_at, Step::PublishSuccessor, now);
                    }
                }
                Some(s) => {
                    let Some(ready) = p.ready_at(s) else {
                        out.wait_fleet(s, Step::PublishSuccessor, s.published.unwrap_or(now));
                        return out;
                    };
                    let switch = end.max(ready);
                    if now >= switch {
                        out.update(
                            KeyTimes {
                                active: Some(now),
                                ..s.clone()
                            },
                            Step::SwitchZsk,
                        );
                        out.update(
                            KeyTimes {
                                retired: Some(now),
                                ..cur.clone()
                            },
                            Step::SwitchZsk,
                        );
                        if !p.fleet {
                            out.later(now + p.zsk_retire_interval(), Step::RemoveZsk, now);
                        }
                    } else {
                        out.later(switch, Step::SwitchZsk, now);
                    }
                }
            }
        }
        KeyRole::Ksk => {
            // the zone's first KSK: its DS goes to the parent at once (the operator registers
            // the apex's DS when setting the zone up)
            if cur.ds_submitted.is_none() {
                let mut k = cur.clone();
                k.ds_submitted = Some(now);
                k.ds_seen = Some(now);
                out.update(k, Step::SubmitDs);
                return out;
            }
            let end = cur.lifetime_end(p, now);
            let Some(s) = successor else {
                let publish_at = end.saturating_sub(p.publish_interval());
                if now >= publish_at {
                    out.actions.push(Action::Generate(KeyRole::Ksk));
                } else {
                    out.later(publish_at, Step::PublishSuccessor, now);
                }
                return out;
            };
            if s.ds_submitted.is_none() {
                let Some(ready) = p.ready_at(s) else {
                    out.wait_fleet(s, Step::PublishSuccessor, s.published.unwrap_or(now));
                    return out;
                };
                if now >= ready {
                    let mut k = s.clone();
                    k.ds_submitted = Some(now);
                    if parent == Parent::Ours {
                        k.ds_seen = Some(now);
                    }
                    out.update(k, Step::SubmitDs);
                    if parent == Parent::Ours && !p.fleet {
                        out.later(now + p.ksk_retire_interval(), Step::RemoveKsk, now);
                    }
                } else {
                    out.later(ready, Step::SubmitDs, now);
                }
                return out;
            }
            if s.ds_seen.is_none() {
                out.actions.push(Action::WaitForParentDs {
                    id: s.id,
                    tag: s.tag,
                });
                return out;
            }
            // the old DS may be cached until seen + DprpP + TTLds (+ safety): only then go
            let Some(remove_old) = p.ksk_remove_at(s, parent) else {
                out.wait_fleet(s, Step::SubmitDs, s.ds_submitted.unwrap_or(now));
                return out;
            };
            if now >= remove_old {
                out.update(
                    KeyTimes {
                        retired: Some(now),
                        removed: Some(now),
                        ..cur.clone()
                    },
                    Step::RemoveKsk,
                );
            } else {
                out.later(remove_old, Step::RemoveKsk, now);
            }
        }
    }
    out
}

/// The current key of a role among its live keys: active and not retired. A ZSK successor is
/// activated only when the current one retires (so the last activated is current), while a new
/// KSK signs from its publication on (so the first activated is current until it is removed).
fn current_key<'k>(role: KeyRole, live: &[&'k KeyTimes], now: u64) -> Option<&'k KeyTimes> {
    let signing = live
        .iter()
        .filter(|k| at(k.active, now) && k.retired.is_none());
    match role {
        KeyRole::Zsk => signing.max_by_key(|k| (k.active, k.id)),
        KeyRole::Ksk => signing.min_by_key(|k| (k.active, k.id)),
    }
    .copied()
}

/// Why an operator's request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The zone has no active key of that role.
    NoCurrentKey(KeyRole),
    /// A rollover of that role is already under way (its successor key, by tag).
    InProgress(KeyRole, u16),
    /// No KSK of the zone waits for its DS to be seen.
    NothingWaits,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoCurrentKey(r) => write!(f, "the zone has no active {}", r.as_str()),
            Refusal::InProgress(r, tag) => write!(
                f,
                "a {} rollover is already under way (successor key {tag})",
                r.as_str()
            ),
            Refusal::NothingWaits => f.write_str("no KSK of this zone waits for its DS"),
        }
    }
}

/// An unscheduled roll: ends the current key's lifetime now; the next [`plan`] publishes its
/// successor and every following step keeps its safe waiting time.
pub fn request_roll(role: KeyRole, keys: &[KeyTimes], now: u64) -> Result<KeyTimes, Refusal> {
    let live: Vec<&KeyTimes> = keys
        .iter()
        .filter(|k| k.role == role && !at(k.removed, now))
        .collect();
    let cur = current_key(role, &live, now).ok_or(Refusal::NoCurrentKey(role))?;
    if let Some(s) = live.iter().find(|k| k.id != cur.id && k.retired.is_none()) {
        return Err(Refusal::InProgress(role, s.tag));
    }
    Ok(KeyTimes {
        roll_requested: Some(now),
        ..(*cur).clone()
    })
}

/// The operator (or the parent check) saw the DS of the KSK that waits for it.
pub fn confirm_ds_seen(keys: &[KeyTimes], now: u64) -> Result<KeyTimes, Refusal> {
    keys.iter()
        .find(|k| {
            k.role == KeyRole::Ksk
                && at(k.ds_submitted, now)
                && k.ds_seen.is_none()
                && !at(k.removed, now)
        })
        .map(|k| KeyTimes {
            ds_seen: Some(now),
            ..k.clone()
        })
        .ok_or(Refusal::NothingWaits)
}

/// The steps of a zone's keys the fleet has not yet been seen serving (`Policy::fleet`), and
/// since when the oldest of them was stored (None: nothing waits for the fleet). Only the
/// steps whose timing the planner reads: publication, the ZSK switch, the DS in a parent we
/// serve, of keys not removed.
pub fn fleet_pending(keys: &[KeyTimes], now: u64, parent: Parent) -> Option<u64> {
    keys.iter()
        .filter(|k| !at(k.removed, now))
        .flat_map(|k| {
            [
                k.published.filter(|_| k.published_fleet.is_none()),
                k.retired.filter(|_| k.retired_fleet.is_none()),
                k.ds_submitted
                    .filter(|_| parent == Parent::Ours && k.ds_fleet.is_none()),
            ]
        })
        .flatten()
        .filter(|t| *t <= now)
        .min()
}

/// Every secondary serves (at `seen`) a serial carrying every step stored so far: the keys
/// whose fleet times change (missing ones set to `seen`). Persist them; they change nothing
/// that is published, only when the following steps may come.
pub fn fleet_seen(keys: &[KeyTimes], seen: u64, parent: Parent) -> Vec<KeyTimes> {
    let mut out = Vec::new();
    for k in keys.iter().filter(|k| !at(k.removed, seen)) {
        let mut n = k.clone();
        let fill = |step: Option<u64>, f: &mut Option<u64>| {
            if step.is_some_and(|t| t <= seen) && f.is_none() {
                *f = Some(seen);
            }
        };
        fill(k.published, &mut n.published_fleet);
        fill(k.retired, &mut n.retired_fleet);
        if parent == Parent::Ours {
            fill(k.ds_submitted, &mut n.ds_fleet);
        }
        if n != *k {
            out.push(n);
        }
    }
    out
}

/// What a zone and its parent publish at `now`, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySets {
    /// Keys in the DNSKEY RRset.
    pub dnskey: Vec<i64>,
    /// Keys that sign the DNSKEY RRset (and CDS/CDNSKEY).
    pub ksk_signers: Vec<i64>,
    /// The key that signs everything else (one, but a list to catch a broken store).
    pub zsk_signers: Vec<i64>,
    /// Keys whose DS the parent we serve publishes.
    pub parent_ds: Vec<i64>,
    /// Keys published as CDS/CDNSKEY (apex: the incoming KSK while it waits for the parent).
    pub cds: Vec<i64>,
}

pub fn key_sets(keys: &[KeyTimes], now: u64, parent: Parent) -> KeySets {
    let mut s = KeySets::default();
    for k in keys {
        if !k.in_dnskey_rrset(now) {
            continue;
        }
        s.dnskey.push(k.id);
        let active = at(k.active, now) && !at(k.retired, now);
        match k.role {
            KeyRole::Ksk => {
                if active {
                    s.ksk_signers.push(k.id);
                }
                if k.ds_in_parent(now) {
                    s.parent_ds.push(k.id);
                }
                if parent == Parent::External && at(k.ds_submitted, now) && k.ds_seen.is_none() {
                    s.cds.push(k.id);
                }
            }
            KeyRole::Zsk => {
                if active {
                    s.zsk_signers.push(k.id);
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_800_000_000;

    /// A zone's keys driven by the planner as the roll command does, with an operator who
    /// confirms the apex's DS `confirm_after` seconds after the CDS appears (None: never), and
    /// the history of what was published, to check what validators may hold in their caches.
    struct Sim {
        p: Policy,
        parent: Parent,
        confirm_after: Option<u64>,
        keys: Vec<KeyTimes>,
        next_id: i64,
        history: Vec<(u64, KeySets)>,
        /// When every secondary served each entry of `history` (its time without a fleet).
        arrivals: Vec<u64>,
        /// The fleet (`p.fleet`): how long each new version takes to reach every secondary
        /// (cycled); when the latest version arrives.
        lags: Vec<u64>,
        lag_i: usize,
        arrival: u64,
    }

    impl Sim {
        fn new(p: Policy, parent: Parent, confirm_after: Option<u64>) -> Self {
            Self {
                p,
                parent,
                confirm_after,
                keys: Vec::new(),
                next_id: 0,
                history: Vec::new(),
                arrivals: Vec::new(),
                lags: vec![0],
                lag_i: 0,
                arrival: 0,
            }
        }

        /// With a fleet whose secondaries take `lags` (cycled) to serve each new version.
        fn with_fleet(
            mut p: Policy,
            parent: Parent,
            confirm_after: Option<u64>,
            lags: &[u64],
        ) -> Self {
            p.fleet = true;
            let mut sim = Self::new(p, parent, confirm_after);
            sim.lags = if lags.is_empty() {
                vec![0]
            } else {
                lags.to_vec()
            };
            sim
        }

        /// A new version of the keys was stored at `now`: the fleet serves it after a lag, and
        /// never an older version after a newer one.
        fn bump(&mut self, now: u64) {
            let lag = if self.p.fleet {
                self.lags[self.lag_i % self.lags.len()]
            } else {
                0
            };
            self.lag_i += 1;
            self.arrival = self.arrival.max(now + lag);
        }

        fn apply(&mut self, actions: &[Action], now: u64) {
            for a in actions {
                match a {
                    Action::Generate(role) => {
                        self.next_id += 1;
                        self.keys.push(KeyTimes {
                            id: self.next_id,
                            tag: self.next_id as u16,
                            role: *role,
                            published: Some(now),
                            active: (*role == KeyRole::Ksk).then_some(now),
                            ..KeyTimes::default()
                        })
                    }
                    Action::Update { key, .. } => {
                        let i = self.keys.iter().position(|x| x.id == key.id).unwrap();
                        self.keys[i] = key.clone();
                    }
                    Action::WaitForFleet { .. } => {}
                    Action::WaitForParentDs { .. } => {
                        if let Ok(k) = confirm_ds_seen(&self.keys, now) {
                            if self
                                .confirm_after
                                .is_some_and(|d| now >= k.ds_submitted.unwrap() + d)
                            {
                                self.apply(
                                    &[Action::Update {
                                        key: k,
                                        step: Step::DsSeen,
                                    }],
                                    now,
                                );
                            }
                        }
                    }
                }
            }
        }

        /// One run of the roll command at `now`: every due step of both roles.
        fn step(&mut self, now: u64) -> Option<u64> {
            // the runner's fleet check: every secondary serves the latest version
            if self.p.fleet && self.arrival <= now {
                for k in fleet_seen(&self.keys, now, self.parent) {
                    let i = self.keys.iter().position(|x| x.id == k.id).unwrap();
                    self.keys[i] = k;
                }
            }
            let before = self.keys.clone();
            let mut next: Option<u64> = None;
            for role in [KeyRole::Ksk, KeyRole::Zsk] {
                for i in 0.. {
                    assert!(i < 8, "the planner does not settle: {:?}", self.keys);
                    let pl = plan(role, &self.keys, now, &self.p, self.parent);
                    let acts = pl.actions.iter().any(|a| !a.is_wait());
                    self.apply(&pl.actions, now);
                    if !acts {
                        next = match (next, pl.next_event()) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        break;
                    }
                }
            }
            if self.keys != before {
                self.bump(now);
            }
            self.record(now);
            next
        }

        fn record(&mut self, now: u64) {
            let sets = key_sets(&self.keys, now, self.parent);
            if self.history.last().is_none_or(|(_, s)| *s != sets) {
                self.history.push((now, sets));
                self.arrivals
                    .push(if self.p.fleet { self.arrival } else { now });
            }
        }

        /// The sets served by some server at some time in `[from, to]`: an entry is served
        /// from its time (a secondary may transfer it at once) until every secondary serves a
        /// later one (without a fleet: until the next entry).
        fn during(&self, from: u64, to: u64) -> Vec<&KeySets> {
            let n = self.history.len();
            (0..n)
                .filter(|&i| self.history[i].0 <= to && (i + 1 == n || self.arrivals[i + 1] > from))
                .map(|i| &self.history[i].1)
                .collect()
        }

        /// The parent's DS at its smallest: only the newest key whose DS the parent has at
        /// `t`, counting it there from `ds_seen` (`early` = from `ds_submitted`, as a parent
        /// that follows CDS at once may do).
        fn parent_ds(&self, t: u64, early: bool) -> Option<i64> {
            self.keys
                .iter()
                .filter(|k| k.role == KeyRole::Ksk && !at(k.removed, t))
                .filter_map(|k| {
                    let since = if early { k.ds_submitted } else { k.ds_seen };
                    since.filter(|s| *s <= t).map(|s| (s, k.id))
                })
                .max()
                .map(|(_, id)| id)
        }

        /// The invariants at `now`, including what validators may still have cached.
        fn check(&self, now: u64) {
            let p = &self.p;
            let sets = key_sets(&self.keys, now, self.parent);
            for role in [KeyRole::Ksk, KeyRole::Zsk] {
                assert!(
                    self.keys.iter().any(|k| k.role == role
                        && k.in_dnskey_rrset(now)
                        && k.state(now, p) == KeyState::Active),
                    "no published, active {role:?} at {now}: {:?}",
                    self.keys
                );
            }
            assert_eq!(sets.zsk_signers.len(), 1, "one ZSK signs at {now}");
            for id in sets
                .zsk_signers
                .iter()
                .chain(&sets.ksk_signers)
                .chain(&sets.parent_ds)
                .chain(&sets.cds)
            {
                assert!(sets.dnskey.contains(id), "key {id} used but not published");
            }
            // with a fleet the propagation is in the history (what some server serves), not in
            // the TTLs
            let fleet = p.fleet;
            let ds_fleet = fleet && self.parent == Parent::Ours;
            let dprp = if fleet { 0 } else { p.propagation_delay };
            let ttl_key = dprp + p.dnskey_ttl;
            let ttl_sig = dprp + p.max_zone_ttl;
            let ttl_ds = if ds_fleet {
                p.parent_ds_ttl
            } else {
                p.parent_propagation_delay + p.parent_ds_ttl
            };
            let cached_ds: Vec<i64> = if ds_fleet {
                self.during(now.saturating_sub(ttl_ds), now)
                    .iter()
                    .filter_map(|s| s.parent_ds.iter().max().copied())
                    .collect()
            } else {
                self.ds_during(now.saturating_sub(ttl_ds), now)
            };
            // what some server serves now (with a fleet: a secondary may lag)
            for sets in self.during(now, now) {
                // a validator with a DNSKEY RRset cached since t has today's ZSK and a key of
                // the parent's DS among today's KSK signers...
                for old in self.during(now.saturating_sub(ttl_key), now) {
                    for z in &sets.zsk_signers {
                        assert!(
                            old.dnskey.contains(z),
                            "ZSK {z} signs before it is in caches at {now}"
                        );
                    }
                    let ds = self.parent_ds(now, true).expect("a DS in the parent");
                    assert!(
                        old.ksk_signers.contains(&ds),
                        "DS {ds} at the parent before its key is in caches at {now}"
                    );
                }
                // ...and one with a signature cached since t still finds its key
                for old in self.during(now.saturating_sub(ttl_sig), now) {
                    for z in &old.zsk_signers {
                        assert!(
                            sets.dnskey.contains(z),
                            "ZSK {z} removed while its signatures are cached at {now}"
                        );
                    }
                }
                // one with a DS RRset cached since t finds a KSK of it signing today's DNSKEY
                // RRset
                for ds in &cached_ds {
                    assert!(
                        sets.ksk_signers.contains(ds),
                        "cached DS {ds} has no signing KSK at {now}"
                    );
                }
            }
        }

        /// Every value `parent_ds(t, false)` takes for t in `[from, to]` (it changes only at
        /// the keys' timestamps).
        fn ds_during(&self, from: u64, to: u64) -> Vec<i64> {
            let mut times = vec![from];
            for k in &self.keys {
                for t in [k.ds_seen, k.ds_submitted, k.removed].into_iter().flatten() {
                    if t > from && t <= to {
                        times.push(t);
                    }
                }
            }
            times
                .into_iter()
                .filter_map(|t| self.parent_ds(t, false))
                .collect()
        }

        /// Runs the roll command every `every` seconds (and at each scheduled step) for
        /// `secs`, checking the invariants after every run; `rolls` are unscheduled rolls.
        fn run(&mut self, secs: u64, every: u64, rolls: &[(u64, KeyRole)]) {
            let mut now = T0;
            let mut rolls: Vec<_> = rolls.iter().map(|(t, r)| (T0 + t, *r)).collect();
            rolls.sort_by_key(|r| r.0);
            let mut runs = 0;
            while now <= T0 + secs {
                while rolls.first().is_some_and(|r| r.0 <= now) {
                    let (_, role) = rolls.remove(0);
                    if let Ok(k) = request_roll(role, &self.keys, now) {
                        self.apply(
                            &[Action::Update {
                                key: k,
                                step: Step::PublishSuccessor,
                            }],
                            now,
                        );
                        self.bump(now);
                    }
                }
                let next = self.step(now);
                self.check(now);
                // idempotent: a second run at the same moment does nothing
                for role in [KeyRole::Ksk, KeyRole::Zsk] {
                    let again = plan(role, &self.keys, now, &self.p, self.parent);
                    assert!(
                        again.actions.iter().all(Action::is_wait),
                        "second run at {now} acts: {again:?}"
                    );
                }
                let mut t = now + every;
                if let Some(n) = next {
                    t = t.min(n);
                }
                if let Some(r) = rolls.first() {
                    t = t.min(r.0);
                }
                if self.p.fleet && self.arrival > now {
                    t = t.min(self.arrival);
                }
                now = t.max(now + 1);
                runs += 1;
                assert!(runs < 200_000);
            }
        }

        fn of(&self, role: KeyRole) -> Vec<&KeyTimes> {
            self.keys.iter().filter(|k| k.role == role).collect()
        }
    }

    #[test]
    fn formulas_of_rfc_7583() {
        let p = Policy {
            propagation_delay: 1,
            dnskey_ttl: 20,
            max_zone_ttl: 300,
            parent_ds_ttl: 4000,
            parent_propagation_delay: 50_000,
            publish_safety: 7,
            retire_safety: 11,
            ..Policy::default()
        };
        assert_eq!(p.publish_interval(), 1 + 20 + 7);
        assert_eq!(p.zsk_retire_interval(), 1 + 300 + 11);
        assert_eq!(p.ksk_retire_interval(), 50_000 + 4000 + 11);
    }

    #[test]
    fn zsk_prepublication_timing() {
        let p = Policy {
            zsk_lifetime: 10 * 86400,
            ..Policy::default()
        };
        let mut sim = Sim::new(p, Parent::Ours, Some(0));
        sim.run(25 * 86400, 86400, &[]);
        let zsks = sim.of(KeyRole::Zsk);
        assert_eq!(zsks.len(), 3, "two rollovers in 25 days: {zsks:?}");
        for w in zsks.windows(2) {
            let (old, new) = (w[0], w[1]);
            let end = old.active.unwrap() + p.zsk_lifetime;
            // Tpub = end - Ipub, switch at the end of the lifetime, removal Iret later
            assert_eq!(new.published.unwrap(), end - p.publish_interval());
            assert_eq!(new.active.unwrap(), end);
            assert_eq!(old.retired, new.active, "one ZSK signs at a time");
            assert_eq!(old.removed.unwrap(), end + p.zsk_retire_interval());
        }
    }

    #[test]
    fn partition_ksk_double_signature_timing() {
        let p = Policy {
            ksk_lifetime: 5 * 86400,
            ..Policy::default()
        };
        let mut sim = Sim::new(p, Parent::Ours, None);
        sim.run(12 * 86400, 86400, &[]);
        let ksks = sim.of(KeyRole::Ksk);
        assert_eq!(ksks.len(), 3);
        for w in ksks.windows(2) {
            let (old, new) = (w[0], w[1]);
            let end = old.active.unwrap() + p.ksk_lifetime;
            assert_eq!(new.published.unwrap(), end - p.publish_interval());
            assert_eq!(new.active, new.published, "signs the DNSKEY RRset at once");
            assert_eq!(
                new.ds_submitted.unwrap(),
                end,
                "DS once the DNSKEY is in caches"
            );
            assert_eq!(new.ds_seen, new.ds_submitted, "we own the parent");
            assert_eq!(old.removed.unwrap(), end + p.ksk_retire_interval());
        }
    }

    #[test]
    fn apex_ksk_waits_for_the_parent() {
        let p = Policy {
            ksk_lifetime: 5 * 86400,
            ..Policy::default()
        };
        // the operator confirms two days after the CDS appears
        let mut sim = Sim::new(p, Parent::External, Some(2 * 86400));
        sim.run(12 * 86400, 3600, &[]);
        let ksks = sim.of(KeyRole::Ksk);
        let second = ksks[1];
        let submitted = second.ds_submitted.unwrap();
        assert_eq!(second.ds_seen.unwrap(), submitted + 2 * 86400);
        assert_eq!(
            ksks[0].removed.unwrap(),
            second.ds_seen.unwrap() + p.ksk_retire_interval()
        );
        // CDS only while the new key waits for the parent
        let cds: Vec<_> = sim
            .history
            .iter()
            .filter(|(_, s)| !s.cds.is_empty())
            .collect();
        assert!(cds
            .iter()
            .all(|(t, s)| s.cds == vec![second.id] || *t > ksks[0].removed.unwrap()));
        assert_eq!(cds.first().unwrap().0, submitted);

        // never confirmed: the old key stays, the new one waits with its CDS published
        let mut sim = Sim::new(p, Parent::External, None);
        sim.run(12 * 86400, 3600, &[]);
        let ksks = sim.of(KeyRole::Ksk);
        assert_eq!(ksks.len(), 2);
        assert!(ksks.iter().all(|k| k.removed.is_none()));
        let last = &sim.history.last().unwrap().1;
        assert_eq!(last.cds, vec![ksks[1].id]);
        assert_eq!(last.ksk_signers.len(), 2, "both sign the DNSKEY RRset");
    }

    #[test]
    fn unscheduled_roll_keeps_the_waiting_times() {
        let p = Policy::default();
        let mut sim = Sim::new(p, Parent::Ours, None);
        sim.run(
            2 * 86400,
            600,
            &[(3600, KeyRole::Zsk), (7200, KeyRole::Ksk)],
        );
        let zsks = sim.of(KeyRole::Zsk);
        assert_eq!(zsks.len(), 2);
        assert_eq!(zsks[1].published.unwrap(), T0 + 3600);
        assert_eq!(zsks[1].active.unwrap(), T0 + 3600 + p.publish_interval());
        let ksks = sim.of(KeyRole::Ksk);
        assert_eq!(ksks.len(), 2);
        assert_eq!(
            ksks[1].ds_submitted.unwrap(),
            T0 + 7200 + p.publish_interval()
        );
        assert!(ksks[0].removed.is_some());
        // a second request while one is under way is refused
        let mut sim = Sim::new(p, Parent::Ours, None);
        sim.step(T0);
        let k = request_roll(KeyRole::Zsk, &sim.keys, T0 + 10).unwrap();
        sim.apply(
            &[Action::Update {
                key: k,
                step: Step::PublishSuccessor,
            }],
            T0 + 10,
        );
        sim.step(T0 + 10);
        assert!(matches!(
            request_roll(KeyRole::Zsk, &sim.keys, T0 + 20),
            Err(Refusal::InProgress(KeyRole::Zsk, _))
        ));
        assert_eq!(
            confirm_ds_seen(&sim.keys, T0 + 20),
            Err(Refusal::NothingWaits)
        );
    }

    #[test]
    fn next_step_is_announced() {
        let p = Policy::default();
        let mut sim = Sim::new(p, Parent::Ours, None);
        sim.step(T0);
        let pl = plan(KeyRole::Zsk, &sim.keys, T0, &p, Parent::Ours);
        assert!(pl.actions.is_empty());
        assert_eq!(
            pl.next,
            Some((
                T0 + p.zsk_lifetime - p.publish_interval(),
                Step::PublishSuccessor
            ))
        );
        let pl = plan(KeyRole::Ksk, &sim.keys, T0, &p, Parent::Ours);
        assert_eq!(
            pl.next,
            Some((
                T0 + p.ksk_lifetime - p.publish_interval(),
                Step::PublishSuccessor
            ))
        );
    }

    fn policy() -> impl Strategy<Value = Policy> {
        (
            (3600u64..10 * 86400, 3600u64..10 * 86400),
            (0u64..600, 1u64..7200, 1u64..7200),
            (1u64..7200, 0u64..86400),
            (0u64..3600, 0u64..3600),
        )
            .prop_map(|((zl, kl), (dp, kt, mt), (dt, pp), (ps, rs))| Policy {
                zsk_lifetime: zl,
                ksk_lifetime: kl,
                propagation_delay: dp,
                dnskey_ttl: kt,
                max_zone_ttl: mt,
                parent_ds_ttl: dt,
                parent_propagation_delay: pp,
                publish_safety: ps,
                retire_safety: rs,
                fleet: false,
            })
    }

    #[test]
    fn a_lagging_fleet_holds_each_step_and_counts_from_its_arrival() {
        let p = Policy {
            zsk_lifetime: 10 * 86400,
            ksk_lifetime: 10 * 86400,
            ..Policy::default()
        };
        // every version takes 3 days to reach the last secondary (one was down)
        let lag = 3 * 86400;
        let mut sim = Sim::with_fleet(p, Parent::Ours, None, &[lag]);
        sim.run(25 * 86400, 3600, &[]);
        let zsks = sim.of(KeyRole::Zsk);
        assert!(zsks.len() >= 2, "{zsks:?}");
        let (old, new) = (zsks[0], zsks[1]);
        let published = new.published.unwrap();
        let seen = new.published_fleet.unwrap();
        assert!(seen >= published + lag, "seen before it arrived: {new:?}");
        // the switch waited for the fleet, then for the TTL and the safety margin only
        let switch = new.active.unwrap();
        assert!(switch >= seen + p.dnskey_ttl + p.publish_safety);
        assert!(
            switch > old.active.unwrap() + p.zsk_lifetime,
            "held past the lifetime"
        );
        assert!(switch <= seen + p.dnskey_ttl + p.publish_safety + 3600);
        let removed = old.removed.unwrap();
        assert!(removed >= old.retired_fleet.unwrap() + p.max_zone_ttl + p.retire_safety);
        assert!(old.retired_fleet.unwrap() >= switch + lag);
        // the partition's KSK: the old one goes once the parent's new DS reached the fleet
        let ksks = sim.of(KeyRole::Ksk);
        let (ko, kn) = (ksks[0], ksks[1]);
        assert!(kn.ds_submitted.unwrap() >= kn.published_fleet.unwrap() + p.dnskey_ttl);
        assert!(kn.ds_fleet.unwrap() >= kn.ds_submitted.unwrap() + lag);
        assert!(ko.removed.unwrap() >= kn.ds_fleet.unwrap() + p.parent_ds_ttl + p.retire_safety);

        // a fleet that is up to date does not wait Dprp: the measured delay replaces it
        let p = Policy {
            propagation_delay: 86400,
            ..p
        };
        let mut slow = Sim::new(p, Parent::Ours, None);
        slow.run(12 * 86400, 600, &[]);
        let mut fast = Sim::with_fleet(p, Parent::Ours, None, &[0]);
        fast.run(12 * 86400, 600, &[]);
        let ready = |s: &Sim| s.of(KeyRole::Zsk)[1].active.unwrap();
        assert_eq!(
            ready(&slow),
            ready(&fast),
            "the lifetime still ends the key"
        );
        let rm = |s: &Sim| s.of(KeyRole::Zsk)[0].removed.unwrap();
        assert!(
            rm(&fast) + 86400 - 600 <= rm(&slow),
            "{} {}",
            rm(&fast),
            rm(&slow)
        );
    }

    #[test]
    fn waiting_for_the_fleet_is_announced_not_stepped_past() {
        let p = Policy {
            fleet: true,
            ..Policy::default()
        };
        let mut sim = Sim::with_fleet(p, Parent::Ours, None, &[u64::MAX / 4]);
        sim.step(T0);
        // the first keys were never seen on the fleet: an unscheduled roll publishes a
        // successor, which then waits however long it takes
        let k = request_roll(KeyRole::Zsk, &sim.keys, T0 + 10).unwrap();
        sim.apply(
            &[Action::Update {
                key: k,
                step: Step::PublishSuccessor,
            }],
            T0 + 10,
        );
        sim.step(T0 + 10);
        let new = sim.of(KeyRole::Zsk)[1].clone();
        for t in [T0 + 10, T0 + 30 * 86400, T0 + 400 * 86400] {
            let pl = plan(KeyRole::Zsk, &sim.keys, t, &p, Parent::Ours);
            assert_eq!(
                pl.actions,
                vec![Action::WaitForFleet {
                    id: new.id,
                    tag: new.tag,
                    step: Step::PublishSuccessor,
                    since: T0 + 10
                }]
            );
            assert_eq!(pl.next, None);
            assert_eq!(fleet_pending(&sim.keys, t, Parent::Ours), Some(T0));
        }
        assert_eq!(new.state(T0 + 400 * 86400, &p), KeyState::Published);
        // seen: ready TTL + safety later
        let seen = fleet_seen(&sim.keys, T0 + 500, Parent::Ours);
        assert!(seen
            .iter()
            .any(|k| k.id == new.id && k.published_fleet == Some(T0 + 500)));
        let mut keys = sim.keys.clone();
        for k in seen {
            let i = keys.iter().position(|x| x.id == k.id).unwrap();
            keys[i] = k;
        }
        assert_eq!(fleet_pending(&keys, T0 + 500, Parent::Ours), None);
        assert!(
            fleet_seen(&keys, T0 + 600, Parent::Ours).is_empty(),
            "idempotent"
        );
        let pl = plan(KeyRole::Zsk, &keys, T0 + 500, &p, Parent::Ours);
        assert_eq!(
            pl.next,
            Some((T0 + 500 + p.dnskey_ttl + p.publish_safety, Step::SwitchZsk))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// At every moment each zone has a published, active key of each role; every DS and
        /// every signature, published or still in a cache, matches a published DNSKEY.
        #[test]
        fn rollovers_never_break_validation(
            p in policy(),
            external in any::<bool>(),
            confirm in proptest::option::weighted(0.8, 0u64..3 * 86400),
            every in 60u64..7200,
            rolls in proptest::collection::vec((0u64..20 * 86400, any::<bool>()), 0..4),
        ) {
            let parent = if external { Parent::External } else { Parent::Ours };
            let rolls: Vec<_> = rolls
                .into_iter()
                .map(|(t, z)| (t, if z { KeyRole::Zsk } else { KeyRole::Ksk }))
                .collect();
            let mut sim = Sim::new(p, parent, confirm);
            sim.run(20 * 86400, every, &rolls);
            // keys roll: more than one ZSK when the lifetime is shorter than the run
            if p.zsk_lifetime < 15 * 86400 {
                prop_assert!(sim.of(KeyRole::Zsk).len() >= 2);
            }
        }

        /// The same with a fleet of secondaries that serve each new version late (0 to 3
        /// days, a secondary down for a while): whatever a lagging secondary still serves is
        /// valid with what validators have cached.
        #[test]
        fn rollovers_with_a_lagging_fleet_never_break_validation(
            p in policy(),
            external in any::<bool>(),
            confirm in proptest::option::weighted(0.8, 0u64..3 * 86400),
            every in 60u64..7200,
            rolls in proptest::collection::vec((0u64..20 * 86400, any::<bool>()), 0..4),
            lags in proptest::collection::vec(
                prop_oneof![3 => 0u64..600, 1 => 0u64..3 * 86400], 1..6),
        ) {
            let parent = if external { Parent::External } else { Parent::Ours };
            let rolls: Vec<_> = rolls
                .into_iter()
                .map(|(t, z)| (t, if z { KeyRole::Zsk } else { KeyRole::Ksk }))
                .collect();
            let mut sim = Sim::with_fleet(p, parent, confirm, &lags);
            sim.run(20 * 86400, every, &rolls);
            if p.zsk_lifetime < 8 * 86400 {
                prop_assert!(sim.of(KeyRole::Zsk).len() >= 2);
            }
        }
    }
}

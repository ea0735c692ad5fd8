//! Accepted domains and who owns them: claims, proof in DNS, removal, and the state a caller
//! may see.
//!
//! - Adding a domain makes a *claim* of the tenant with its own verification value,
//!   `mxdns-verify=<32 hex>`, to publish as a TXT record at the domain (Exchange Online's
//!   `MS=ms…`). Any number of tenants may claim one name; a claim never blocks another tenant.
//! - `verify` looks the TXT records of the domain up (through the configured resolver) and makes
//!   the tenant whose value is published the *owner* (its `domains` row). Only the admin marks a
//!   domain verified without DNS (migrations).
//! - Once verified, the domain is the owner's until it is removed (by the owner or the admin).
//!   A tenant that publishes its own value for a name someone else owns does not take it over:
//!   its verify answers `DomainVerifiedElsewhere` (it has just proved it controls the name's DNS,
//!   so telling it reveals nothing it could not see), the refusal is in the audit trail and the
//!   log, and nothing moves. To move a domain, the owner (or the admin) removes it and the other
//!   tenant verifies its claim; or the admin removes and adds it.
//! - No oracle: for a tenant, a name owned by someone else is a name nobody owns; every route
//!   answers the same (a claim of its own is all it sees).

use serde_json::json;

use super::{
    audit, normalize, now, random_hex, Actor, ApiError, Caller, ClaimView, DomainState, Op,
    Provisioner, Verification,
};
use crate::checks::LookupError;
use crate::store::claims::{self, ClaimRow};
use crate::store::tenancy::{self, DomainRow};
use crate::store::{write_batch, Batch, Store, StoreError, Transaction};

/// The start of every verification value.
pub const VERIFY_PREFIX: &str = "mxdns-verify=";

fn new_value() -> String {
    format!("{VERIFY_PREFIX}{}", random_hex(16))
}

/// Whether a TXT record (its strings joined) is the value.
fn published(txt: &[String], value: &str) -> bool {
    txt.iter().any(|t| t.trim() == value)
}

impl Provisioner {
    /// The owned domain row if `actor` may act on it. Others' domains do not exist for a
    /// tenant; its own claim is "not verified".
    pub(super) fn owned(
        &self,
        store: &Store,
        actor: &Actor,
        domain: &str,
        op: Op,
    ) -> Result<DomainRow, ApiError> {
        let c = store.conn();
        let row = tenancy::get_domain(c, domain).map_err(super::db_err(op))?;
        let claimed = match &actor.caller {
            Caller::Admin => match row {
                Some(d) => return Ok(d),
                None => !claims::of_domain(c, domain)
                    .map_err(super::db_err(op))?
                    .is_empty(),
            },
            Caller::Tenant(t) => match row {
                Some(d) if d.tenant_id == *t => return Ok(d),
                _ => claims::get(c, domain, t)
                    .map_err(super::db_err(op))?
                    .is_some(),
            },
        };
        Err(if claimed {
            op.not_verified(domain)
        } else {
            op.not_found(domain)
        })
    }

    /// Adds an accepted domain for `tenant`: a claim to prove (its verification value is in
    /// the answer), or with `verified` (admin only) the domain itself. Answers 201 when
    /// something was added, 200 (`false`) when it was there already.
    pub fn add_domain(
        &self,
        actor: &Actor,
        tenant: &str,
        domain: &str,
        verified: bool,
    ) -> Result<(DomainState, bool), ApiError> {
        if let Caller::Tenant(own) = &actor.caller {
            if own != tenant {
                return Err(ApiError::tenant_not_found(tenant));
            }
            if verified {
                return Err(ApiError::new(
                    403,
                    "VerificationRequired",
                    "Only the operator marks a domain verified. Add it without \"verified\", publish the TXT record of the answer's \"verification\" at the domain, then call POST /v1/domains/{domain}/verify.",
                ));
            }
        }
        let domain = normalize(domain)?;
        enum Added {
            NoTenant,
            Taken(String),
            TooMany,
            Done(bool),
        }
        let t = now();
        let added = self
            .lock_store()
            .transaction(|tx| {
                if !tenancy::tenant_exists(tx, tenant)? {
                    return Ok(Added::NoTenant);
                }
                let owner = tenancy::get_domain(tx, &domain)?;
                if owner.as_ref().is_some_and(|o| o.tenant_id == tenant) {
                    return Ok(Added::Done(false));
                }
                if verified {
                    if let Some(o) = owner {
                        return Ok(Added::Taken(o.tenant_id));
                    }
                    tenancy::insert_owner(tx, &domain, tenant, t)?;
                    claims::delete(tx, &domain, tenant)?;
                    audit::record(
                        tx,
                        actor,
                        "domain.add",
                        &domain,
                        json!({"tenantId": tenant, "verified": true}),
                    )?;
                    return Ok(Added::Done(true));
                }
                if claims::get(tx, &domain, tenant)?.is_some() {
                    return Ok(Added::Done(false));
                }
                if !actor.is_admin()
                    && claims::count_of_tenant(tx, tenant)? >= self.settings.max_claims_per_tenant
                {
                    return Ok(Added::TooMany);
                }
                claims::insert(
                    tx,
                    &ClaimRow {
                        domain: domain.clone(),
                        tenant_id: tenant.into(),
                        value: new_value(),
                        added_at: t,
                    },
                )?;
                audit::record(
                    tx,
                    actor,
                    "domain.claim",
                    &domain,
                    json!({"tenantId": tenant}),
                )?;
                Ok(Added::Done(true))
            })
            .map_err(|e| ApiError::storage("DomainOperationFailed", "Adding the domain", e))?;
        let created = match added {
            Added::NoTenant => return Err(ApiError::tenant_not_found(tenant)),
            // only the admin gets here (a tenant never asks for `verified`)
            Added::Taken(owner) => {
                return Err(ApiError::new(
                    409,
                    "DomainAlreadyAccepted",
                    format!("The domain {domain} is a verified domain of tenant {owner}; remove it there first (DELETE /v1/domains/{domain})."),
                ))
            }
            Added::TooMany => {
                return Err(ApiError::new(
                    409,
                    "TooManyClaims",
                    format!(
                        "The organization holds {} unverified domains; verify or remove some first.",
                        self.settings.max_claims_per_tenant
                    ),
                ))
            }
            Added::Done(created) => created,
        };
        let store = self.lock_store();
        let state = self
            .view(&store, &Caller::Tenant(tenant.into()), &domain)
            .map_err(|e| ApiError::storage("DomainOperationFailed", "Reading the domain", e))?
            .ok_or_else(|| Op::Verify.not_found(&domain))?;
        Ok((state, created))
    }

    /// Proves a claim: looks up the TXT records at the domain (`lookup`, no lock held) and makes
    /// the tenant whose value is published the owner. A tenant verifies its own claim; the admin
    /// any claim on the domain (`tenant` to say whose, when several are published).
    pub fn verify_domain(
        &self,
        actor: &Actor,
        domain: &str,
        tenant: Option<&str>,
        lookup: &dyn Fn(&str) -> Result<Vec<String>, LookupError>,
    ) -> Result<DomainState, ApiError> {
        let op = Op::Verify;
        let whose = match (&actor.caller, tenant) {
            (Caller::Tenant(own), None) => Some(own.clone()),
            (Caller::Tenant(own), Some(t)) if t == own => Some(own.clone()),
            (Caller::Tenant(_), Some(_)) => return Err(ApiError::forbidden()),
            (Caller::Admin, t) => t.map(String::from),
        };
        let domain = normalize(domain)?;
        let viewer = actor.caller.clone();
        // 1. what is there (a short read)
        let (owner, candidates) = {
            let store = self.lock_store();
            let c = store.conn();
            let owner = tenancy::get_domain(c, &domain).map_err(super::db_err(op))?;
            let candidates = match &whose {
                Some(t) => claims::get(c, &domain, t)
                    .map_err(super::db_err(op))?
                    .into_iter()
                    .collect(),
                None => claims::of_domain(c, &domain).map_err(super::db_err(op))?,
            };
            (owner, candidates)
        };
        let already = match (&owner, &whose) {
            (Some(o), Some(t)) => o.tenant_id == *t,
            (Some(_), None) => candidates.is_empty(),
            (None, _) => false,
        };
        if already {
            let store = self.lock_store();
            let viewer = match (&viewer, &whose) {
                (Caller::Admin, Some(t)) => Caller::Tenant(t.clone()),
                (v, _) => v.clone(),
            };
            return self
                .view(&store, &viewer, &domain)
                .map_err(super::db_err(op))?
                .ok_or_else(|| op.not_found(&domain));
        }
        if candidates.is_empty() {
            return Err(op.not_found(&domain));
        }
        // 2. the proof, with nothing held
        let txt = lookup(&domain).map_err(|e| {
            tracing::warn!(domain = %domain, error = %e, "verification lookup failed");
            ApiError::new(
                503,
                "DnsLookupFailed",
                format!("The TXT records of {domain} could not be looked up. Retry the operation at a later time."),
            )
        })?;
        let proved: Vec<&ClaimRow> = candidates
            .iter()
            .filter(|c| published(&txt, &c.value))
            .collect();
        let claim = match proved.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let details = match &whose {
                    Some(_) => format!(
                        "The TXT record \"{}\" was not found at {domain}. Publish it and retry; DNS changes can take a while to be seen.",
                        candidates[0].value
                    ),
                    None => format!("No claim's TXT record was found at {domain}."),
                };
                return Err(ApiError::new(409, "DomainVerificationFailed", details));
            }
            several => {
                let ids: Vec<&str> = several.iter().map(|c| c.tenant_id.as_str()).collect();
                return Err(ApiError::new(
                    409,
                    "DomainVerificationFailed",
                    format!("The TXT records of several tenants are published at {domain} ({}); say whose claim to verify (?tenant=ID).", ids.join(", ")),
                ));
            }
        };
        // 3. the change, checked again inside its transaction
        enum Outcome {
            Verified,
            Already,
            Gone,
            Elsewhere(String),
        }
        let t = now();
        let outcome = self
            .lock_store()
            .transaction(|tx| -> Result<Outcome, StoreError> {
                if let Some(o) = tenancy::get_domain(tx, &domain)? {
                    if o.tenant_id == claim.tenant_id {
                        return Ok(Outcome::Already);
                    }
                    // proved, but verified by another tenant: it does not move
                    audit::record(
                        tx,
                        actor,
                        "domain.verify.refused",
                        &domain,
                        json!({"tenantId": claim.tenant_id, "owner": o.tenant_id}),
                    )?;
                    return Ok(Outcome::Elsewhere(o.tenant_id));
                }
                if claims::get(tx, &domain, &claim.tenant_id)?.as_ref() != Some(&claim) {
                    return Ok(Outcome::Gone);
                }
                tenancy::insert_owner(tx, &domain, &claim.tenant_id, t)?;
                claims::delete(tx, &domain, &claim.tenant_id)?;
                audit::record(
                    tx,
                    actor,
                    "domain.verify",
                    &domain,
                    json!({"tenantId": claim.tenant_id, "value": claim.value}),
                )?;
                Ok(Outcome::Verified)
            })
            .map_err(super::db_err(op))?;
        match outcome {
            Outcome::Verified | Outcome::Already => {
                tracing::info!(domain = %domain, tenant = %claim.tenant_id, "domain verified");
                let store = self.lock_store();
                let viewer = match viewer {
                    Caller::Admin => Caller::Tenant(claim.tenant_id.clone()),
                    t => t,
                };
                self.view(&store, &viewer, &domain)
                    .map_err(super::db_err(op))?
                    .ok_or_else(|| op.not_found(&domain))
            }
            Outcome::Gone => Err(op.not_found(&domain)),
            Outcome::Elsewhere(owner) => {
                tracing::warn!(domain = %domain, tenant = %claim.tenant_id, owner = %owner, "verification refused: the domain is verified by another tenant");
                Err(ApiError::new(
                    409,
                    "DomainVerifiedElsewhere",
                    format!("The TXT record proves control of {domain}, but it is a verified domain of another organization and is not moved. Ask the operator to move it."),
                ))
            }
        }
    }

    /// Removes an accepted domain: DANE and DNSSEC are disabled (its host leaves the served
    /// zone) and the domain forgotten, in one transaction. A tenant removes its own domain, or
    /// its claim; the admin the domain and every claim on it.
    pub fn remove_domain(&self, actor: &Actor, domain: &str) -> Result<(), ApiError> {
        let op = Op::Remove;
        let domain = normalize(domain)?;
        let removed = self
            .lock_store()
            .transaction(|tx| -> Result<bool, StoreError> {
                let owner = tenancy::get_domain(tx, &domain)?;
                let (owned, claims_gone) = match &actor.caller {
                    Caller::Tenant(t) => {
                        let owned = owner.filter(|o| o.tenant_id == *t);
                        (owned, claims::delete(tx, &domain, t)? as usize)
                    }
                    Caller::Admin => (owner, claims::delete_all(tx, &domain)?),
                };
                let Some(row) = owned else {
                    if claims_gone > 0 {
                        audit::record(tx, actor, "domain.claim.remove", &domain, json!({"claims": claims_gone}))?;
                    }
                    return Ok(claims_gone > 0);
                };
                self.unpublish(tx, &row)?;
                tenancy::delete_domain(tx, &domain)?;
                audit::record(
                    tx,
                    actor,
                    "domain.remove",
                    &domain,
                    json!({"tenantId": row.tenant_id, "dnssec": row.dnssec, "dane": row.dane, "mx": row.mx_token, "claims": claims_gone}),
                )?;
                Ok(true)
            })
            .map_err(super::db_err(op))?;
        if !removed {
            return Err(op.not_found(&domain));
        }
        tracing::info!(domain = %domain, "domain removed");
        Ok(())
    }

    /// Takes a domain's host out of the served zone (DANE, then DNSSEC, disabled).
    fn unpublish(&self, tx: &Transaction<'_>, row: &DomainRow) -> Result<(), StoreError> {
        let mut off = row.clone();
        off.dane = false;
        off.dnssec = false;
        tenancy::update_domain_state(tx, &off, now())?;
        let ops = self.unpublish_ops(row);
        write_batch(tx, &Batch { ops }, now())?;
        Ok(())
    }

    /// `Get-DnssecStatusForVerifiedDomain` (state part; live DNS checks are added by the caller).
    pub fn state(&self, actor: &Actor, domain: &str) -> Result<DomainState, ApiError> {
        let domain = normalize(domain)?;
        let store = self.lock_store();
        let view = self.view(&store, &actor.caller, &domain).map_err(|e| {
            tracing::warn!(error = %e, "reading a domain failed");
            ApiError::new(
                409,
                "EG001",
                format!("EG001: Cannot retrieve DNSSEC feature status for domain [{domain}]. Retry the operation at a later time."),
            )
        })?;
        view.ok_or_else(|| {
            ApiError::new(
                404,
                "EG001",
                format!("EG001: Cannot retrieve DNSSEC feature status for domain [{domain}]."),
            )
        })
    }

    /// What `viewer` may see of `domain`: its own domain, its own claim; the admin the owner or
    /// every claim. None: nothing (for a tenant, also a name someone else owns).
    fn view(
        &self,
        store: &Store,
        viewer: &Caller,
        domain: &str,
    ) -> Result<Option<DomainState>, StoreError> {
        let c = store.conn();
        let row = tenancy::get_domain(c, domain)?;
        let unverified = |claim: Option<&ClaimRow>, claims: Vec<ClaimView>| DomainState {
            domain: domain.into(),
            tenant_id: None,
            verified: false,
            dnssec_enabled: false,
            smtp_dane_enabled: false,
            dnssec_mx_value: None,
            partition: None,
            tlsa_records: Vec::new(),
            verification: claim.map(|c| Verification {
                name: domain.into(),
                rtype: "TXT",
                value: c.value.clone(),
            }),
            claims,
        };
        let row = match (row, viewer) {
            (Some(d), Caller::Admin) => d,
            (Some(d), Caller::Tenant(t)) if d.tenant_id == *t => d,
            (_, Caller::Tenant(t)) => {
                return Ok(claims::get(c, domain, t)?.map(|cl| unverified(Some(&cl), Vec::new())))
            }
            (None, Caller::Admin) => {
                let all = claims::of_domain(c, domain)?;
                if all.is_empty() {
                    return Ok(None);
                }
                let views = all
                    .into_iter()
                    .map(|cl| ClaimView {
                        tenant_id: cl.tenant_id,
                        value: cl.value,
                        added_at: cl.added_at,
                    })
                    .collect();
                return Ok(Some(unverified(None, views)));
            }
        };
        let mx = match (&row.mx_token, &row.partition) {
            (Some(t), Some(p)) => {
                Some(self.host(t, p).to_ascii().trim_end_matches('.').to_string())
            }
            _ => None,
        };
        let tlsa_records = match (&row.partition, row.dane && row.dnssec) {
            (Some(p), true) => tenancy::partition_certs(c, p)?
                .iter()
                .map(|c| super::tlsa(c).to_string())
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(DomainState {
            domain: row.domain,
            tenant_id: (*viewer == Caller::Admin).then_some(row.tenant_id),
            verified: true,
            dnssec_enabled: row.dnssec,
            smtp_dane_enabled: row.dane && row.dnssec,
            dnssec_mx_value: mx,
            partition: row.partition,
            tlsa_records,
            verification: None,
            claims: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn provisioner(dir: &std::path::Path) -> Provisioner {
        let settings = super::super::Settings {
            zone: hickory_proto::rr::Name::from_ascii("mx.example.").unwrap(),
            partitions: vec!["o-v1".into()],
            seeds: vec![crate::store::tenancy::PartitionRow {
                name: "o-v1".into(),
                addresses: vec!["192.0.2.25".into()],
                host_ttl: 300,
            }],
            initial_domain_suffix: None,
            busy_timeout: Duration::from_secs(5),
            max_claims_per_tenant: 3,
        };
        Provisioner::open(&dir.join("db"), dir, settings).unwrap()
    }

    fn tenant(p: &Provisioner, name: &str) -> (String, Actor) {
        let g = p.create_tenant(&Actor::cli(), name).unwrap();
        let id = g.tenant_id.unwrap();
        (id.clone(), Actor::api(Caller::Tenant(id), &g.token_id))
    }

    #[test]
    fn proof_decides_and_a_verified_domain_stays() {
        let dir = tempfile::tempdir().unwrap();
        let p = provisioner(dir.path());
        let (a, ta) = tenant(&p, "a");
        let (b, tb) = tenant(&p, "b");
        let d = "contoso.com";
        let (va, created) = p.add_domain(&ta, &a, d, false).unwrap();
        assert!(created && !va.verified);
        let va = va.verification.unwrap().value;
        let vb = p
            .add_domain(&tb, &b, d, false)
            .unwrap()
            .0
            .verification
            .unwrap()
            .value;
        let none = |_: &str| Ok(vec!["v=spf1 -all".to_string()]);
        let down = |_: &str| Err(LookupError::NoAnswer("timeout".into()));
        let both = {
            let (va, vb) = (va.clone(), vb.clone());
            move |_: &str| Ok(vec![va.clone(), vb.clone()])
        };
        let e = p.verify_domain(&ta, d, None, &none).unwrap_err();
        assert_eq!((e.status, e.code), (409, "DomainVerificationFailed"));
        let e = p.verify_domain(&ta, d, None, &down).unwrap_err();
        assert_eq!((e.status, e.code), (503, "DnsLookupFailed"));
        assert!(
            !e.details.contains("timeout"),
            "no internal text: {}",
            e.details
        );
        // the admin cannot tell whose claim when both values are published
        let e = p.verify_domain(&Actor::cli(), d, None, &both).unwrap_err();
        assert_eq!(e.code, "DomainVerificationFailed");
        assert!(e.details.contains(&a) && e.details.contains(&b));
        // A proves it
        let s = p.verify_domain(&ta, d, None, &both).unwrap();
        assert!(s.verified && s.verification.is_none());
        // B's value is published too: nothing moves
        let e = p.verify_domain(&tb, d, None, &both).unwrap_err();
        assert_eq!((e.status, e.code), (409, "DomainVerifiedElsewhere"));
        assert!(!e.details.contains(&a), "{}", e.details);
        assert_eq!(
            p.state(&Actor::cli(), d).unwrap().tenant_id.as_deref(),
            Some(a.as_str())
        );
        let e = p.enable_dnssec(&tb, d).unwrap_err();
        assert_eq!(e.code, "DomainNotFound");
        p.enable_dnssec(&ta, d).unwrap();
        // B still sees only its own claim
        let sb = p.state(&tb, d).unwrap();
        assert!(!sb.verified && !sb.dnssec_enabled && sb.tenant_id.is_none());
        assert_eq!(sb.verification.unwrap().value, vb);
        // removal by the owner; then B's proof counts
        p.remove_domain(&ta, d).unwrap();
        assert_eq!(p.state(&ta, d).unwrap_err().status, 404);
        let s = p.verify_domain(&tb, d, None, &both).unwrap();
        assert!(s.verified);
        assert!(p.enable_dnssec(&tb, d).is_ok());
    }

    #[test]
    fn a_tenant_holds_a_bounded_number_of_claims() {
        let dir = tempfile::tempdir().unwrap();
        let p = provisioner(dir.path());
        let (a, ta) = tenant(&p, "a");
        for i in 0..3 {
            p.add_domain(&ta, &a, &format!("d{i}.example"), false)
                .unwrap();
        }
        // the same claim again is no new claim
        assert!(!p.add_domain(&ta, &a, "d0.example", false).unwrap().1);
        let e = p.add_domain(&ta, &a, "d3.example", false).unwrap_err();
        assert_eq!((e.status, e.code), (409, "TooManyClaims"));
        // the operator is not bound by it; a removed claim frees a place
        p.add_domain(&Actor::cli(), &a, "d4.example", false)
            .unwrap();
        p.remove_domain(&ta, "d1.example").unwrap();
        let e = p.add_domain(&ta, &a, "d3.example", false).unwrap_err();
        assert_eq!(
            e.code, "TooManyClaims",
            "the operator's claim counts once made"
        );
        p.remove_domain(&ta, "d4.example").unwrap();
        p.add_domain(&ta, &a, "d3.example", false).unwrap();
    }

    #[test]
    fn a_value_is_published_only_whole() {
        let v = new_value();
        assert!(v.starts_with(VERIFY_PREFIX) && v.len() == VERIFY_PREFIX.len() + 32);
        assert!(published(&["v=spf1 -all".into(), format!(" {v} ")], &v));
        assert!(!published(&[format!("{v}x")], &v));
        assert!(!published(&[v[..v.len() - 1].to_string()], &v));
    }
}

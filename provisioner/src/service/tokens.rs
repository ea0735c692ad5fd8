//! API tokens: the bootstrap admin token file, tokens made, listed and revoked (tenants for
//! themselves, the admin for anyone), and [`Authenticator`], which maps a bearer token to an
//! [`Actor`].
//!
//! A token reads `<id>.<secret>` (`tk3f9a0c1d2e4b5a6f.` and 64 hex digits): the id finds the
//! row, and the SHA-256 of the whole text is compared with the stored one in constant time.
//! Tokens made before migration 4 (and an older admin-token file) have no id in them and are
//! found by their hash. Several live tokens per tenant let a rotation overlap: make the new
//! one, switch the clients, revoke the old one. A revocation counts from the next request on,
//! in every process (authentication reads the store each time; nothing is cached).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::{audit, now, random_hex, sha256, Actor, ApiError, Caller, Provisioner};
use crate::store::tokens::{self, Filter, TokenReader, TokenRow};
use crate::store::{tenancy, Store, StoreError};

/// A token just made: its text is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub token_id: String,
    pub token: String,
    /// None: an admin token.
    pub tenant_id: Option<String>,
}

/// A new token for `tenant` (None: admin): its row and its text.
pub(crate) fn new_token(tenant: Option<&str>, label: &str, now: i64) -> (TokenRow, String) {
    let id = format!("tk{}", random_hex(8));
    let text = format!("{id}.{}", random_hex(32));
    let row = TokenRow {
        id,
        tenant_id: tenant.map(String::from),
        token_sha256: sha256(&text),
        label: label.into(),
        created_at: now,
        revoked_at: None,
    };
    (row, text)
}

/// Reads the bootstrap admin token, creating it (mode 0600) on first use. Remove the file to
/// get a new one (e.g. after revoking it): the next `mxdns` command or start makes and
/// registers it.
pub fn admin_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (_, token) = new_token(None, "", 0);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp)?;
                writeln!(f, "{token}")?;
                f.sync_all()?;
            }
            // another process may have won the race: keep theirs
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    std::fs::remove_file(&tmp)?;
                    Ok(token)
                }
                Err(_) => {
                    std::fs::remove_file(&tmp)?;
                    Ok(std::fs::read_to_string(&path)?.trim().to_string())
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Registers the admin-token file's token unless its hash is known (live or revoked: a revoked
/// bootstrap token stays revoked however often the file is read).
pub(crate) fn register_bootstrap(
    store: &mut Store,
    token: &str,
    now: i64,
) -> Result<(), StoreError> {
    let id = match token.split_once('.') {
        Some((id, _)) => id.to_string(),
        None => format!("tk{}", random_hex(8)),
    };
    let row = TokenRow {
        id,
        tenant_id: None,
        token_sha256: sha256(token),
        label: "bootstrap (admin-token file)".into(),
        created_at: now,
        revoked_at: None,
    };
    store.transaction(|tx| {
        if tokens::insert_if_new(tx, &row)? {
            audit::record(tx, &Actor::system(), "token.bootstrap", &row.id, json!({}))?;
            tracing::info!(token_id = %row.id, "bootstrap admin token registered");
        }
        Ok(())
    })
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown, revoked or malformed.
    Unauthorized,
    /// The store could not be read (logged); try again.
    Unavailable,
}

/// Maps bearer tokens to callers with read-only connections of its own: it never takes the
/// provisioner's store lock, so a long write (a bulk import) never delays authentication.
/// Blocking (SQLite): call it off the async threads.
pub struct Authenticator {
    reader: TokenReader,
}

/// Longest bearer token looked at (ours are 83 characters).
const MAX_TOKEN: usize = 256;

/// Equality of two byte strings in time that depends only on their lengths.
fn same_hash(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Authenticator {
    pub fn new(db: &Path, busy: Duration) -> Self {
        Self {
            reader: TokenReader::new(db, busy),
        }
    }

    pub fn authenticate(&self, bearer: &str) -> Result<Actor, AuthError> {
        if bearer.is_empty()
            || bearer.len() > MAX_TOKEN
            || !bearer.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(AuthError::Unauthorized);
        }
        let hash = sha256(bearer);
        let row = match bearer.split_once('.') {
            Some((id, _)) => self.reader.get(id),
            None => self.reader.by_hash(&hash),
        };
        match row {
            Ok(Some(r)) if r.revoked_at.is_none() && same_hash(&r.token_sha256, &hash) => {
                let caller = match r.tenant_id {
                    Some(t) => Caller::Tenant(t),
                    None => Caller::Admin,
                };
                Ok(Actor::api(caller, &r.id))
            }
            Ok(_) => Err(AuthError::Unauthorized),
            Err(e) => {
                tracing::error!(error = %e, "reading tokens failed");
                Err(AuthError::Unavailable)
            }
        }
    }
}

fn token_not_found(id: &str) -> ApiError {
    ApiError::new(404, "TokenNotFound", format!("Token {id} not found."))
}

impl Provisioner {
    /// Makes a token. A tenant makes one for itself (`tenant` None or its own id); the admin
    /// for a tenant, or with `tenant` None an admin token.
    pub fn create_token(
        &self,
        actor: &Actor,
        tenant: Option<&str>,
        label: Option<&str>,
    ) -> Result<TokenGrant, ApiError> {
        let tenant = match (&actor.caller, tenant) {
            (Caller::Tenant(own), None) => Some(own.clone()),
            (Caller::Tenant(own), Some(t)) if t == own => Some(own.clone()),
            (Caller::Tenant(_), Some(t)) => return Err(ApiError::tenant_not_found(t)),
            (Caller::Admin, t) => t.map(String::from),
        };
        let label = label.unwrap_or("").trim();
        if label.len() > 256 || label.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "InvalidRequest",
                "A token label is at most 256 printable characters.",
            ));
        }
        let t = now();
        let (row, text) = new_token(tenant.as_deref(), label, t);
        let made = self
            .lock_store()
            .transaction(|tx| {
                if let Some(id) = &tenant {
                    if !tenancy::tenant_exists(tx, id)? {
                        return Ok(false);
                    }
                }
                tokens::insert(tx, &row)?;
                audit::record(
                    tx,
                    actor,
                    "token.create",
                    &row.id,
                    json!({"tenantId": tenant, "label": label}),
                )?;
                Ok(true)
            })
            .map_err(|e| ApiError::storage("TokenOperationFailed", "Making the token", e))?;
        if !made {
            return Err(ApiError::tenant_not_found(tenant.as_deref().unwrap_or("")));
        }
        tracing::info!(token_id = %row.id, tenant = ?tenant, "token made");
        Ok(TokenGrant {
            token_id: row.id,
            token: text,
            tenant_id: tenant,
        })
    }

    /// Lists tokens (never their text): a tenant its own; the admin one tenant's
    /// (`tenant`) or every token.
    pub fn list_tokens(
        &self,
        actor: &Actor,
        tenant: Option<&str>,
    ) -> Result<Vec<TokenRow>, ApiError> {
        let filter = match (&actor.caller, tenant) {
            (Caller::Tenant(own), None) => Filter::Tenant(own),
            (Caller::Tenant(own), Some(t)) if t == own => Filter::Tenant(own),
            (Caller::Tenant(_), Some(t)) => return Err(ApiError::tenant_not_found(t)),
            (Caller::Admin, Some("admin")) => Filter::Admin,
            (Caller::Admin, Some(t)) => Filter::Tenant(t),
            (Caller::Admin, None) => Filter::All,
        };
        tokens::list(self.lock_store().conn(), filter)
            .map_err(|e| ApiError::storage("TokenOperationFailed", "Listing the tokens", e))
    }

    /// Revokes a token: from the next request on it is refused, in every process. A tenant
    /// revokes its own tokens (another's answers as one that does not exist); the admin any.
    /// Revoking a revoked token changes nothing and answers its row.
    pub fn revoke_token(&self, actor: &Actor, id: &str) -> Result<TokenRow, ApiError> {
        let t = now();
        let row = self
            .lock_store()
            .transaction(|tx| {
                let Some(mut row) = tokens::get(tx, id)? else {
                    return Ok(None);
                };
                if let Caller::Tenant(own) = &actor.caller {
                    if row.tenant_id.as_deref() != Some(own.as_str()) {
                        return Ok(None);
                    }
                }
                if tokens::revoke(tx, id, t)? {
                    row.revoked_at = Some(t);
                    audit::record(
                        tx,
                        actor,
                        "token.revoke",
                        id,
                        json!({"tenantId": row.tenant_id}),
                    )?;
                }
                Ok(Some(row))
            })
            .map_err(|e| ApiError::storage("TokenOperationFailed", "Revoking the token", e))?;
        let row = row.ok_or_else(|| token_not_found(id))?;
        tracing::info!(token_id = %id, "token revoked");
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_by_value_and_length() {
        assert!(same_hash(b"abc", b"abc"));
        assert!(!same_hash(b"abc", b"abd"));
        assert!(!same_hash(b"abc", b"abcd"));
    }

    fn provisioner(dir: &Path) -> Provisioner {
        let settings = super::super::Settings {
            zone: hickory_proto::rr::Name::from_ascii("mx.example.").unwrap(),
            partitions: vec!["o-v1".into()],
            seeds: vec![],
            initial_domain_suffix: None,
            busy_timeout: Duration::from_secs(5),
            max_claims_per_tenant: 10,
        };
        Provisioner::open(&dir.join("db"), dir, settings).unwrap()
    }

    #[test]
    fn authentication_needs_neither_the_store_lock_nor_a_writer_to_finish() {
        let dir = tempfile::tempdir().unwrap();
        let p = provisioner(dir.path());
        let admin = admin_token(dir.path()).unwrap();
        let grant = p.create_token(&Actor::cli(), None, Some("x")).unwrap();
        let auth = p.authenticator();
        // the provisioner's lock is held and a write transaction is open on its connection
        // (what a bulk import batch does)
        let mut store = p.lock_store();
        store
            .transaction(|tx| {
                tokens::revoke(tx, &grant.token_id, 1)?;
                let (tx_auth, rx) = std::sync::mpsc::channel();
                let (a, g) = (admin.clone(), grant.token.clone());
                let auth = auth.clone();
                std::thread::spawn(move || {
                    let _ = tx_auth.send((auth.authenticate(&a), auth.authenticate(&g)));
                });
                let (boot, new) = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("authentication waited for the lock or the writer");
                assert_eq!(boot.map(|a| a.caller), Ok(Caller::Admin));
                assert!(new.is_ok(), "the uncommitted revocation is not seen yet");
                Ok(())
            })
            .unwrap();
        drop(store);
        // committed: refused from now on
        assert_eq!(
            auth.authenticate(&grant.token),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            auth.authenticate("tkunknown.abc"),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(auth.authenticate(""), Err(AuthError::Unauthorized));
        assert_eq!(
            auth.authenticate(&"x".repeat(300)),
            Err(AuthError::Unauthorized)
        );
    }

    #[test]
    fn a_token_names_its_row() {
        let (row, text) = new_token(Some("t-1"), "x", 5);
        let (id, secret) = text.split_once('.').unwrap();
        assert_eq!(id, row.id);
        assert_eq!(secret.len(), 64);
        assert_eq!(row.token_sha256, sha256(&text));
    }
}

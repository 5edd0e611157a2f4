//! API keys: `avb_<prefix>_<secret>`, shown once. The prefix is stored and indexed (it finds the
//! key and identifies it in listings); of the secret only its SHA-256 is stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq;

use crate::db::{new_id, now_ms};
use crate::{Store, StoreError};

const TOKEN_START: &str = "avb_";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 43; // 43 base62 characters ≈ 256 bits
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const MAX_LABEL_LEN: usize = 200;

/// HUMAN keys are operators' (grant credits, approve, see the tenant's jobs); AGENT keys call
/// tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Human,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Human => "HUMAN",
            Role::Agent => "AGENT",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected HUMAN or AGENT")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    /// `HUMAN` or `AGENT`, in any case.
    fn from_str(s: &str) -> Result<Role, ParseRoleError> {
        match s.to_ascii_uppercase().as_str() {
            "HUMAN" => Ok(Role::Human),
            "AGENT" => Ok(Role::Agent),
            _ => Err(ParseRoleError(s.to_owned())),
        }
    }
}

/// A freshly created key. `token` is the only copy of the secret: show it once. `Debug` does
/// not print it.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewKey {
    pub key_id: String,
    pub prefix: String,
    pub token: String,
    pub role: Role,
    pub tenant_id: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .field("prefix", &self.prefix)
            .field(
                "token",
                &format_args!("{TOKEN_START}{}_<redacted>", self.prefix),
            )
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
    pub key_id: String,
    /// The key's label (empty when it has none): how job views name the key's jobs' owner.
    pub label: String,
}

/// A key as listed: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub tenant_id: String,
    pub prefix: String,
    pub role: Role,
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl Store {
    /// Creates a key for the tenant (`NotFound` if there is none). The token is in the result
    /// and nowhere else.
    pub async fn create_key(
        &self,
        tenant_id: &str,
        role: Role,
        label: &str,
    ) -> Result<NewKey, StoreError> {
        if label.chars().count() > MAX_LABEL_LEN {
            return Err(StoreError::Invalid(format!(
                "key label is longer than {MAX_LABEL_LEN} characters"
            )));
        }
        if self.tenant_by_id(tenant_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("no tenant {tenant_id:?}")));
        }
        let key_id = new_id("key");
        let secret = random_string(SECRET_ALPHABET, SECRET_LEN)?;
        // A prefix collision (1 in 36^8 per existing key) just draws another prefix.
        for _ in 0..3 {
            let prefix = random_string(PREFIX_ALPHABET, PREFIX_LEN)?;
            let mut w = self.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, prefix, secret_sha256, role, label, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (prefix) DO NOTHING",
            )
            .bind(&key_id)
            .bind(tenant_id)
            .bind(&prefix)
            .bind(sha256_hex(&secret))
            .bind(role.as_str())
            .bind(label)
            .bind(now_ms())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                w.commit().await?;
                return Ok(NewKey {
                    token: format!("{TOKEN_START}{prefix}_{secret}"),
                    key_id,
                    prefix,
                    role,
                    tenant_id: tenant_id.to_owned(),
                });
            }
            w.rollback().await?;
        }
        Err(StoreError::Conflict(
            "could not draw an unused key prefix".into(),
        ))
    }

    /// The principal of a valid token; `None` for a malformed token, an unknown prefix, a wrong
    /// secret or a revoked key.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some((prefix, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT k.id, k.tenant_id, t.name, k.role, k.label, k.secret_sha256 \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.prefix = $1 AND k.revoked_at IS NULL",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("secret_sha256")?;
        let presented = sha256_hex(secret);
        if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
            return Ok(None);
        }
        Ok(Some(Principal {
            key_id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            tenant_name: row.try_get("name")?,
            role: role_from_row(&row)?,
            label: row.try_get("label")?,
        }))
    }

    /// The tenant's keys, oldest first, revoked ones included (with `revoked_at_ms`).
    pub async fn list_keys(&self, tenant_id: &str) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, prefix, role, label, created_at, revoked_at FROM api_keys \
             WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyInfo {
                    key_id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    prefix: row.try_get("prefix")?,
                    role: role_from_row(row)?,
                    label: row.try_get("label")?,
                    created_at_ms: row.try_get("created_at")?,
                    revoked_at_ms: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a key: `true` if it was active, `false` if unknown or already revoked.
    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(key_id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        w.commit().await?;
        Ok(revoked == 1)
    }
}

/// `avb_<8 of [a-z0-9]>_<32+ of [A-Za-z0-9]>` → (prefix, secret).
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (prefix, secret) = token.strip_prefix(TOKEN_START)?.split_once('_')?;
    let ok = prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
        && (32..=128).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((prefix, secret))
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn role_from_row(row: &AnyRow) -> Result<Role, StoreError> {
    let role: String = row.try_get("role")?;
    role.parse()
        .map_err(|e: ParseRoleError| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

/// `len` characters drawn uniformly from `alphabet` with the operating system's CSPRNG.
fn random_string(alphabet: &[u8], len: usize) -> Result<String, StoreError> {
    // Rejection sampling: bytes at or above the largest multiple of the alphabet size would
    // bias the draw.
    let n = alphabet.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| StoreError::Random(e.to_string()))?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_strictly() {
        let secret = "a".repeat(43);
        let token = format!("avb_abcd1234_{secret}");
        assert_eq!(parse_token(&token), Some(("abcd1234", secret.as_str())));
        for bad in [
            "",
            "avb_",
            "avb_abcd1234",
            "avb_abcd1234_short",
            "avb_ABCD1234_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "avb_abcd123_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "xyz_abcd1234_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "avb_abcd1234_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_a",
        ] {
            assert_eq!(parse_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn random_strings_use_the_alphabet() -> Result<(), StoreError> {
        let s = random_string(PREFIX_ALPHABET, 1000)?;
        assert_eq!(s.len(), 1000);
        assert!(s.bytes().all(|b| PREFIX_ALPHABET.contains(&b)));
        assert_ne!(
            random_string(SECRET_ALPHABET, 43)?,
            random_string(SECRET_ALPHABET, 43)?
        );
        Ok(())
    }
}

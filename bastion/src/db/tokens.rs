//! API bearer tokens (`api_tokens`) and the Slack replay guard (`slack_replays`).
//!
//! A token is `bst_` followed by 43 characters of URL-safe base64 (32 random bytes). Only its
//! SHA-256 is stored: a copy of the database does not let anyone call the API. A token is
//! looked up by that hash, so no comparison of secrets happens in this process at all.

use std::time::Duration;

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::DbError;
use super::store::{Database, from_millis, millis, on_pool};

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "bst_";
/// The longest life a token may be given.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
/// A token's `last_used_at` is written at most this often, so a busy client does not turn
/// every read into a write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

const TOKEN_COLUMNS: &str =
    "id, name, user_name, created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at";

/// A token as listed: never the secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub user: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiToken {
    /// Whether calls with it are accepted at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A token just created: the secret, shown once, and what is stored about it.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub secret: String,
    pub token: ApiToken,
}

/// What `revoke_token` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRevocation {
    /// This call revoked it.
    Revoked(ApiToken),
    /// It was revoked before (`revoked_by` says by whom); nothing changed.
    AlreadyRevoked(ApiToken),
}

/// Why a presented token is not accepted; each is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
}

/// The SHA-256 (hex) a token is stored and found by.
pub fn token_hash(secret: &str) -> String {
    hex_digest(secret.as_bytes())
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_secret() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    // Base64url without padding: 6 bits per character, 43 characters for 256 bits.
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 43);
    out.push_str(TOKEN_PREFIX);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out
}

fn new_id() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    let tail: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("tok-{tail}")
}

/// Whether `text` has the shape of a token id (`tok-` and 10 characters of its alphabet).
pub fn is_token_id(text: &str) -> bool {
    text.strip_prefix("tok-").is_some_and(|tail| {
        tail.len() == 10
            && tail
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

impl Database {
    /// Creates a token for `user` valid for `lifetime` from the database's now.
    pub async fn create_token(
        &self,
        user: &str,
        name: &str,
        lifetime: Duration,
        by: &str,
    ) -> Result<CreatedToken, DbError> {
        if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
            return Err(DbError::InvalidGrant(format!(
                "token lifetime must be between 1s and {}",
                humantime::format_duration(MAX_TOKEN_LIFETIME)
            )));
        }
        let secret = new_secret();
        let id = new_id();
        let sql = self.sql(&format!(
            "INSERT INTO api_tokens (id, name, user_name, token_hash, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, {{now}}, $5, {{now}} + $6) RETURNING {TOKEN_COLUMNS}"
        ));
        let row: TokenRow = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(&id)
            .bind(name)
            .bind(user)
            .bind(token_hash(&secret))
            .bind(by)
            .bind(millis(lifetime))
            .fetch_one(pool)
            .await?);
        Ok(CreatedToken {
            secret,
            token: row.into_token()?,
        })
    }

    /// Every token, newest first (revoked and expired ones too: they are evidence).
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, DbError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id DESC");
        let rows: Vec<TokenRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    /// The token with this id, or the one live token with this name.
    pub async fn find_token(&self, id_or_name: &str) -> Result<Vec<ApiToken>, DbError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 OR (name = $1 AND revoked_at IS NULL) \
             ORDER BY created_at DESC"
        );
        let rows: Vec<TokenRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id_or_name)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    /// Revokes the token `id`; `None` if there is no such token. Of two revocations racing,
    /// one gets `Revoked`, the other `AlreadyRevoked` (the first revocation stands).
    pub async fn revoke_token(
        &self,
        id: &str,
        by: &str,
    ) -> Result<Option<TokenRevocation>, DbError> {
        let sql = self.sql(&format!(
            "UPDATE api_tokens SET revoked_at = {{now}}, revoked_by = $2 \
             WHERE id = $1 AND revoked_at IS NULL RETURNING {TOKEN_COLUMNS}"
        ));
        let revoked: Option<TokenRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(by)
            .fetch_optional(pool)
            .await?);
        if let Some(row) = revoked {
            return Ok(Some(TokenRevocation::Revoked(row.into_token()?)));
        }
        Ok(self
            .find_token(id)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .map(TokenRevocation::AlreadyRevoked))
    }

    /// The token `secret` stands for, if it is accepted now; records its use.
    pub async fn authenticate_token(
        &self,
        secret: &str,
    ) -> Result<Result<ApiToken, TokenRefusal>, DbError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(Err(TokenRefusal::Unknown));
        }
        let hash = token_hash(secret);
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row: Option<TokenRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(&hash)
            .fetch_optional(pool)
            .await?);
        let Some(row) = row else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let token = row.into_token()?;
        if token.revoked_at.is_some() {
            return Ok(Err(TokenRefusal::Revoked));
        }
        let now = self.now().await?;
        if now >= token.expires_at {
            return Ok(Err(TokenRefusal::Expired));
        }
        let sql = self.sql(
            "UPDATE api_tokens SET last_used_at = {now} \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < {now} - $2)",
        );
        // Bookkeeping only: a busy or read-only database must not fail the call itself.
        let recorded = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(&token.id)
            .bind(LAST_USED_GRANULARITY_MS)
            .execute(pool)
            .await
            .map(|_| ()));
        if let Err(e) = recorded {
            tracing::warn!(token = %token.id, error = %e, "cannot record a token's last use");
        }
        Ok(Ok(token))
    }

    /// Records a Slack interaction's signature; false if it was seen before (a replay).
    /// Entries older than `window` are forgotten: older timestamps are refused anyway.
    pub async fn first_slack_delivery(
        &self,
        signature: &str,
        window: Duration,
    ) -> Result<bool, DbError> {
        let forget = self.sql("DELETE FROM slack_replays WHERE seen_at < {now} - $1");
        let insert = self.sql(
            "INSERT INTO slack_replays (signature_hash, seen_at) VALUES ($1, {now}) \
             ON CONFLICT (signature_hash) DO NOTHING",
        );
        let hash = hex_digest(signature.as_bytes());
        let inserted = on_pool!(self, |pool| {
            sqlx::query(AssertSqlSafe(forget))
                .bind(millis(window) * 2)
                .execute(pool)
                .await?;
            sqlx::query(AssertSqlSafe(insert))
                .bind(&hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }
}

/// A row of `api_tokens` as stored.
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    user_name: String,
    created_at: i64,
    created_by: String,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self) -> Result<ApiToken, DbError> {
        let id = self.id;
        let time = |ms: i64| {
            from_millis(ms).ok_or_else(|| DbError::Corrupt {
                table: "api_tokens",
                id: id.clone(),
                reason: format!("time out of range: {ms}"),
            })
        };
        let optional = |ms: Option<i64>| ms.map(time).transpose();
        Ok(ApiToken {
            name: self.name,
            user: self.user_name,
            created_at: time(self.created_at)?,
            created_by: self.created_by,
            expires_at: time(self.expires_at)?,
            revoked_at: optional(self.revoked_at)?,
            revoked_by: self.revoked_by,
            last_used_at: optional(self.last_used_at)?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_prefixed_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert!(
            a[TOKEN_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn ids_have_their_shape() {
        let id = new_id();
        assert!(is_token_id(&id), "{id}");
        assert!(!is_token_id("tok-"));
        assert!(!is_token_id("tok-ABCDEFGHIJ"));
        assert!(!is_token_id("r-7f3k"));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

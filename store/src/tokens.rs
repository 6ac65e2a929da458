//! API tokens: scopes, workspace binding, expiry, revocation. Only a hash of each value is kept.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::store::Store;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Post events.
    Append,
    /// Read a workspace's models, audit log, checkpoints and proofs; follow it live.
    Read,
    /// Export and build evidence.
    Export,
    /// Manage tokens and webhooks; read the whole log.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Append, Scope::Read, Scope::Export, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Read => "read",
            Scope::Export => "export",
            Scope::Admin => "admin",
        }
    }
}

/// A token as Chronicle keeps it: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// The one workspace it is bound to, or `None` for all.
    pub workspace: Option<String>,
    pub scopes: Vec<Scope>,
    /// The first characters of the value, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token to record.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub workspace: Option<String>,
    pub scopes: Vec<Scope>,
    pub hash: [u8; 32],
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

const COLUMNS: &str = "id, name, workspace, scopes, prefix, created_at, expires_at, revoked_at";

fn decode(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    let scopes: String = row.try_get(3)?;
    Ok(TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        workspace: row.try_get(2)?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|error| StoreError::Unreadable(format!("token scopes: {error}")))?,
        prefix: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}

impl Store {
    /// Records a new token.
    pub async fn create_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let scopes = serde_json::to_string(&token.scopes).expect("scopes serialise");
        sqlx::query(
            "INSERT INTO tokens (id, name, workspace, scopes, hash, prefix, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.workspace)
        .bind(&scopes)
        .bind(token.hash.as_slice())
        .bind(&token.prefix)
        .bind(&token.created_at)
        .bind(&token.expires_at)
        .execute(&self.side_writer)
        .await?;
        Ok(TokenRecord {
            id: token.id,
            name: token.name,
            workspace: token.workspace,
            scopes: token.scopes,
            prefix: token.prefix,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: None,
        })
    }

    /// Returns the token whose value hashes to `hash`, revoked or expired ones included.
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = $1"))
            .bind(hash.as_slice())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Returns every token, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Revokes a token from `at` on (a second revocation keeps the first time); `None` when
    /// there is no such token.
    pub async fn revoke_token(
        &self,
        id: &str,
        at: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.side_writer)
            .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.side_writer)
            .await?;
        row.as_ref().map(decode).transpose()
    }
}

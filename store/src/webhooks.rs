//! Webhooks, their cursors and their delivery log: tables beside the log, written through the
//! side writer.
//!
//! The log is the outbox. A webhook's `cursor` is the position up to which its workspace's
//! events are delivered (or skipped as not matching); the delivery worker reads the workspace's
//! events after it. An attempt that the receiver acknowledged moves the cursor in the same
//! transaction that records it, so a restart resumes exactly after the last acknowledged event.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::Store;

/// A webhook as the API shows it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: Uuid,
    pub workspace: String,
    pub url: String,
    /// Event types and `prefix.*` patterns.
    pub types: Vec<String>,
    pub created_at: String,
    /// The position up to which the workspace's events are delivered or skipped.
    pub cursor: u64,
    /// When delivery was paused after one event kept failing; `None` while active.
    pub paused_at: Option<String>,
}

/// The secret a webhook's deliveries are signed with. Its `Debug` shows nothing of it, so it
/// cannot leak into a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> WebhookSecret {
        WebhookSecret(secret.into())
    }

    /// Returns the secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// A webhook to record.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub workspace: String,
    pub url: String,
    pub secret: WebhookSecret,
    pub types: Vec<String>,
    pub created_at: String,
    /// Delivery starts with the workspace's first event after this position.
    pub cursor: u64,
}

/// What the delivery worker needs to deliver to an active webhook.
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    pub position: u64,
    /// 1 for the first attempt at this event, counting on across restarts.
    pub attempt: u32,
    pub at: String,
    /// The receiver's HTTP status, or `None` when no answer came.
    pub status_code: Option<u16>,
    /// Why no answer came (refused, timed out …).
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt is due; `None` after a success or when delivery was paused.
    pub next_attempt_at: Option<String>,
}

const COLUMNS: &str = "id, workspace, url, types, created_at, cursor, paused_at";

fn decode_webhook(row: &AnyRow) -> Result<Webhook, StoreError> {
    let id: String = row.try_get(0)?;
    let types: String = row.try_get(3)?;
    Ok(Webhook {
        id: Uuid::parse_str(&id)
            .map_err(|error| StoreError::Unreadable(format!("webhook id {id}: {error}")))?,
        workspace: row.try_get(1)?,
        url: row.try_get(2)?,
        types: serde_json::from_str(&types)
            .map_err(|error| StoreError::Unreadable(format!("webhook {id} types: {error}")))?,
        created_at: row.try_get(4)?,
        cursor: row.try_get::<i64, _>(5)? as u64,
        paused_at: row.try_get(6)?,
    })
}

fn decode_attempt(row: &AnyRow) -> Result<DeliveryAttempt, StoreError> {
    Ok(DeliveryAttempt {
        position: row.try_get::<i64, _>(0)? as u64,
        attempt: row.try_get::<i64, _>(1)? as u32,
        at: row.try_get(2)?,
        status_code: row.try_get::<Option<i64>, _>(3)?.map(|code| code as u16),
        error: row.try_get(4)?,
        duration_ms: row.try_get::<i64, _>(5)? as u64,
        next_attempt_at: row.try_get(6)?,
    })
}

fn to_sql(position: u64) -> i64 {
    position.min(i64::MAX as u64) as i64
}

impl Store {
    /// Records a new webhook.
    pub async fn create_webhook(&self, webhook: NewWebhook) -> Result<Webhook, StoreError> {
        let types = serde_json::to_string(&webhook.types).expect("a list of strings serialises");
        sqlx::query(
            "INSERT INTO webhooks (id, workspace, url, secret, types, created_at, cursor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(webhook.id.to_string())
        .bind(&webhook.workspace)
        .bind(&webhook.url)
        .bind(webhook.secret.expose())
        .bind(&types)
        .bind(&webhook.created_at)
        .bind(to_sql(webhook.cursor))
        .execute(&self.side_writer)
        .await?;
        Ok(Webhook {
            id: webhook.id,
            workspace: webhook.workspace,
            url: webhook.url,
            types: webhook.types,
            created_at: webhook.created_at,
            cursor: webhook.cursor,
            paused_at: None,
        })
    }

    /// Returns the webhooks of a workspace that are not deleted, oldest first.
    pub async fn list_webhooks(&self, workspace: &str) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE workspace = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        ))
        .bind(workspace)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(decode_webhook).collect()
    }

    /// Returns a webhook of this workspace unless it is deleted; another workspace's id is as
    /// absent as an unknown one.
    pub async fn webhook(&self, workspace: &str, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND workspace = $2 AND deleted_at IS NULL"
        ))
        .bind(id.to_string())
        .bind(workspace)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(decode_webhook).transpose()
    }

    /// Deletes a webhook of this workspace from `at` on; `false` when there is no such webhook.
    /// Its delivery log is kept.
    pub async fn delete_webhook(
        &self,
        workspace: &str,
        id: Uuid,
        at: &str,
    ) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "UPDATE webhooks SET deleted_at = $1 \
             WHERE id = $2 AND workspace = $3 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(id.to_string())
        .bind(workspace)
        .execute(&self.side_writer)
        .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Resumes delivery to a paused webhook of this workspace (an active one stays as it is);
    /// `None` when there is no such webhook.
    pub async fn resume_webhook(
        &self,
        workspace: &str,
        id: Uuid,
    ) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET paused_at = NULL \
             WHERE id = $1 AND workspace = $2 AND deleted_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(workspace)
        .fetch_optional(&self.side_writer)
        .await?;
        row.as_ref().map(decode_webhook).transpose()
    }

    /// Returns the ids of every webhook that is neither deleted nor paused.
    pub async fn active_webhook_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE deleted_at IS NULL AND paused_at IS NULL",
        )
        .fetch_all(&self.readers)
        .await?;
        ids.iter()
            .map(|id| {
                Uuid::parse_str(id)
                    .map_err(|error| StoreError::Unreadable(format!("webhook id {id}: {error}")))
            })
            .collect()
    }

    /// Returns what delivery to this webhook needs, or `None` once it is deleted or paused.
    pub async fn delivery_target(&self, id: Uuid) -> Result<Option<DeliveryTarget>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, secret FROM webhooks \
             WHERE id = $1 AND deleted_at IS NULL AND paused_at IS NULL"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| {
            Ok(DeliveryTarget {
                webhook: decode_webhook(&row)?,
                secret: WebhookSecret(row.try_get(7)?),
            })
        })
        .transpose()
    }

    /// Returns the number of the last attempt at delivering `position` to this webhook, 0 when
    /// there was none.
    pub async fn last_delivery_attempt(&self, id: Uuid, position: u64) -> Result<u32, StoreError> {
        let attempt: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(attempt), 0) FROM webhook_deliveries \
             WHERE webhook_id = $1 AND position = $2",
        )
        .bind(id.to_string())
        .bind(to_sql(position))
        .fetch_one(&self.readers)
        .await?;
        Ok(attempt as u32)
    }

    /// Records one attempt; when the receiver acknowledged it (`delivered`), moves the cursor to
    /// its position in the same transaction.
    pub async fn record_delivery_attempt(
        &self,
        id: Uuid,
        attempt: &DeliveryAttempt,
        delivered: bool,
    ) -> Result<(), StoreError> {
        let mut transaction = self.side_writer.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries \
             (webhook_id, position, attempt, at, status_code, error, duration_ms, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(to_sql(attempt.position))
        .bind(i64::from(attempt.attempt))
        .bind(&attempt.at)
        .bind(attempt.status_code.map(i64::from))
        .bind(&attempt.error)
        .bind(to_sql(attempt.duration_ms))
        .bind(&attempt.next_attempt_at)
        .execute(&mut *transaction)
        .await?;
        if delivered {
            sqlx::query("UPDATE webhooks SET cursor = CASE WHEN cursor > $1 THEN cursor ELSE $1 END WHERE id = $2")
                .bind(to_sql(attempt.position))
                .bind(id.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Moves a webhook's cursor past events it does not want (it never moves back).
    pub async fn advance_webhook_cursor(&self, id: Uuid, position: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET cursor = CASE WHEN cursor > $1 THEN cursor ELSE $1 END WHERE id = $2")
            .bind(to_sql(position))
            .bind(id.to_string())
            .execute(&self.side_writer)
            .await?;
        Ok(())
    }

    /// Pauses delivery to a webhook from `at` on, until it is resumed.
    pub async fn pause_webhook(&self, id: Uuid, at: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET paused_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.side_writer)
            .await?;
        Ok(())
    }

    /// Returns at most `limit` attempts of a webhook, newest first, older than `before`
    /// (`(position, attempt)`) when given.
    pub async fn delivery_attempts(
        &self,
        id: Uuid,
        before: Option<(u64, u32)>,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let (position, attempt) = before.map_or((i64::MAX, i64::MAX), |(position, attempt)| {
            (to_sql(position), i64::from(attempt))
        });
        let rows = sqlx::query(
            "SELECT position, attempt, at, status_code, error, duration_ms, next_attempt_at \
             FROM webhook_deliveries WHERE webhook_id = $1 AND (position, attempt) < ($2, $3) \
             ORDER BY position DESC, attempt DESC LIMIT $4",
        )
        .bind(id.to_string())
        .bind(position)
        .bind(attempt)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(decode_attempt).collect()
    }
}

//! On PostgreSQL several processes append to one log: each follows the others' commits.
//!
//! Every appender notifies `chronicle_head` with its new head inside the committing
//! transaction, so the notification is delivered exactly when the events become visible. Each
//! store listens and moves its head watch forward, which wakes its projection runners, search
//! indexer, live streams and webhooks as if the events had been appended here. A lost
//! connection is followed by a read of the head, so nothing committed meanwhile is missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::store::Head;

/// The channel appenders notify.
pub(crate) const CHANNEL: &str = "chronicle_head";

/// Moves `head` forward to `new` unless it is already there or past it.
pub(crate) fn advance(head: &watch::Sender<Head>, new: Head) {
    head.send_if_modified(|current| {
        if new.position > current.position {
            *current = new;
            true
        } else {
            false
        }
    });
}

/// Starts listening (before returning, so no commit after `open` is missed).
pub(crate) async fn spawn(
    url: String,
    readers: AnyPool,
    head: Arc<watch::Sender<Head>>,
) -> Result<JoinHandle<()>, StoreError> {
    let mut listener = PgListener::connect(&url).await?;
    listener.listen(CHANNEL).await?;
    // Commits between the appender's load and the listen are read once here.
    advance(&head, read_head(&readers).await?);
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match parse(notification.payload()) {
                    Some(new) => advance(&head, new),
                    None => tracing::warn!(
                        payload = notification.payload(),
                        "unreadable head notification"
                    ),
                },
                Ok(None) => {
                    // Reconnected: notifications sent meanwhile are lost, the database is not.
                    match read_head(&readers).await {
                        Ok(new) => advance(&head, new),
                        Err(error) => tracing::warn!(error = %error, "reading the head failed"),
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "listening for other nodes' commits failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

/// The payload an appender sends: `POSITION RECORDED_AT`.
pub(crate) fn payload(head: &Head) -> String {
    format!(
        "{} {}",
        head.position,
        head.recorded_at.as_deref().unwrap_or("")
    )
}

fn parse(payload: &str) -> Option<Head> {
    let (position, recorded_at) = payload.split_once(' ')?;
    Some(Head {
        position: position.parse().ok()?,
        recorded_at: Some(recorded_at.to_owned()),
    })
}

async fn read_head(readers: &AnyPool) -> Result<Head, StoreError> {
    let row =
        sqlx::query("SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(readers)
            .await?;
    Ok(match row {
        Some(row) => Head {
            position: row.try_get::<i64, _>(0)? as u64,
            recorded_at: Some(row.try_get(1)?),
        },
        None => Head::default(),
    })
}

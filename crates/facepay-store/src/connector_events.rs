//! Webhook events from an acquirer, kept by their event id so that a
//! delivery retried after it was handled is recognised (migration 0014).

use crate::{Connection, Result};

/// Whether `connector`'s event `event_id` was handled already.
pub async fn seen(conn: &mut Connection, connector: &str, event_id: &str) -> Result<bool> {
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT event_id FROM connector_events WHERE connector = $1 AND event_id = $2",
    )
    .bind(connector)
    .bind(event_id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Records a handled event; false when it was recorded before.
pub async fn record(
    conn: &mut Connection,
    connector: &str,
    event_id: &str,
    event_type: &str,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO connector_events (connector, event_id, event_type, received_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (connector, event_id) DO NOTHING",
    )
    .bind(connector)
    .bind(event_id)
    .bind(event_type)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets events received before `before_ms`.
pub async fn purge(conn: &mut Connection, before_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM connector_events WHERE received_at_ms < $1")
        .bind(before_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

//! Clean-ups a start owes the store. A task is marked due in the
//! transaction of the change that calls for it and cleared once it ran, so
//! a process that dies in between leaves it due for the next start.

use crate::{Connection, Result};

/// Rebuild the SQLite file and empty its log ([`crate::Store::scrub`]),
/// after secrets or personal data left it (phone numbers stored in clear).
pub const SCRUB: &str = "scrub";

/// Marks `task` due, if it is not already.
pub async fn mark_due(conn: &mut Connection, task: &str, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO maintenance_due (task, due_since_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(task)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn is_due(conn: &mut Connection, task: &str) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT task FROM maintenance_due WHERE task = $1")
            .bind(task)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Clears `task` once it ran.
pub async fn done(conn: &mut Connection, task: &str) -> Result<()> {
    sqlx::query("DELETE FROM maintenance_due WHERE task = $1")
        .bind(task)
        .execute(conn)
        .await?;
    Ok(())
}

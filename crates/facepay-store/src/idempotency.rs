//! Idempotency keys and terminal nonces.
//!
//! A write request carries an `Idempotency-Key`. The first request with a key
//! claims it (`in_progress`, with a lease); when it finishes, its answer is
//! stored with the key in the same transaction as the change it made, so a
//! retry gets exactly that answer. A claim whose lease ran out (its process
//! died) can be taken over; what the dead request did is then found through
//! the rows it committed, never redone blindly.

use sqlx::Row;

use crate::{Connection, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: go ahead.
    Claimed,
    /// The same request already finished: send this answer again.
    Replay { status_code: u16, response: String },
    /// The key was used with another request body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

pub async fn claim(
    conn: &mut Connection,
    scope: &str,
    key: &str,
    request_hash: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until_ms, \
         created_at_ms) VALUES ($1, $2, $3, 'in_progress', $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(now_ms + lease_ms)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    let row = sqlx::query(
        "SELECT request_hash, state, status_code, response, locked_until_ms \
         FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    let state: String = row.try_get("state")?;
    if state == "completed" {
        let status: i64 = row.try_get::<Option<i64>, _>("status_code")?.unwrap_or(500);
        let response: String = row
            .try_get::<Option<String>, _>("response")?
            .unwrap_or_default();
        let status_code = u16::try_from(status)
            .map_err(|_| StoreError::Corrupt(format!("status code {status}")))?;
        return Ok(Claim::Replay {
            status_code,
            response,
        });
    }
    let locked_until_ms: i64 = row.try_get("locked_until_ms")?;
    if locked_until_ms > now_ms {
        return Ok(Claim::InProgress);
    }
    // Take over only if nobody else did since we read: the lease is the lock.
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET locked_until_ms = $4 WHERE scope = $1 AND key = $2 \
         AND state = 'in_progress' AND locked_until_ms = $3",
    )
    .bind(scope)
    .bind(key)
    .bind(locked_until_ms)
    .bind(now_ms + lease_ms)
    .execute(&mut *conn)
    .await?;
    Ok(if taken.rows_affected() == 1 {
        Claim::Claimed
    } else {
        Claim::InProgress
    })
}

/// Stores the final answer; call inside the transaction that made the change.
pub async fn complete(
    conn: &mut Connection,
    scope: &str,
    key: &str,
    status_code: u16,
    response: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', status_code = $3, response = $4 \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i64::from(status_code))
    .bind(response)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the key back after a request that changed nothing (it was refused
/// before any effect), so the client may fix the request and reuse the key.
pub async fn release(conn: &mut Connection, scope: &str, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress'",
    )
    .bind(scope)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// The scopes starting with `prefix` after `after`, in order, at most
/// `limit`: for a conversion that walks every scope of one kind.
pub async fn scopes_after(
    conn: &mut Connection,
    prefix: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT scope FROM idempotency_keys WHERE scope LIKE $1 AND scope > $2 \
         ORDER BY scope LIMIT $3",
    )
    .bind(format!("{prefix}%"))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Moves every key of scope `from` to scope `to`, as they are (state,
/// lease, answer); a key `to` holds already stays, and its copy under
/// `from` goes. Returns how many keys left `from`.
pub async fn move_scope(conn: &mut Connection, from: &str, to: &str) -> Result<u64> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, state, status_code, response, \
         locked_until_ms, created_at_ms) SELECT $2, key, request_hash, state, status_code, \
         response, locked_until_ms, created_at_ms FROM idempotency_keys WHERE scope = $1 \
         ON CONFLICT DO NOTHING",
    )
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    forget_scope(conn, from).await
}

/// Deletes every key of a scope, whatever its state. Returns how many.
pub async fn forget_scope(conn: &mut Connection, scope: &str) -> Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1")
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records a terminal's request nonce; `false` if it was seen before.
pub async fn use_nonce(
    conn: &mut Connection,
    terminal_id: &str,
    nonce: &str,
    now_ms: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO terminal_nonces (terminal_id, nonce, seen_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(terminal_id)
    .bind(nonce)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Forgets finished keys and nonces older than their retention.
pub async fn purge(
    conn: &mut Connection,
    keys_before_ms: i64,
    nonces_before_ms: i64,
) -> Result<u64> {
    let keys = sqlx::query(
        "DELETE FROM idempotency_keys WHERE state = 'completed' AND created_at_ms < $1",
    )
    .bind(keys_before_ms)
    .execute(&mut *conn)
    .await?;
    let nonces = sqlx::query("DELETE FROM terminal_nonces WHERE seen_at_ms < $1")
        .bind(nonces_before_ms)
        .execute(conn)
        .await?;
    Ok(keys.rows_affected() + nonces.rows_affected())
}

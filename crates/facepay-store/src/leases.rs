//! Leases on payments (migration 0023): which one request may move a
//! payment's money at the issuer now, across every server on the store.
//! A request takes the lease before it reads the payment and gives it
//! back once it has recorded the outcome; the lease of a request that
//! died ends on its own.

use crate::{Connection, Result};

/// Takes the lease on `payment_id` for `holder` until `until_ms`: true
/// when no one holds it or its last holder's lease has ended by `now_ms`.
/// One statement, so two requests cannot both take it.
pub async fn take(
    conn: &mut Connection,
    payment_id: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool> {
    assert!(until_ms > now_ms, "a lease ends after it is taken");
    let taken = sqlx::query(
        "INSERT INTO payment_leases (payment_id, holder, expires_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (payment_id) DO UPDATE SET holder = excluded.holder, \
         expires_at_ms = excluded.expires_at_ms WHERE payment_leases.expires_at_ms <= $4",
    )
    .bind(payment_id)
    .bind(holder)
    .bind(until_ms)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Moves the end of `holder`'s lease on `payment_id` to `until_ms`:
/// false when it is no longer theirs (it ended and another request took
/// it).
pub async fn renew(
    conn: &mut Connection,
    payment_id: &str,
    holder: &str,
    until_ms: i64,
) -> Result<bool> {
    let renewed = sqlx::query(
        "UPDATE payment_leases SET expires_at_ms = $3 WHERE payment_id = $1 AND holder = $2",
    )
    .bind(payment_id)
    .bind(holder)
    .bind(until_ms)
    .execute(conn)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives back `holder`'s lease on `payment_id`. One that ended and was
/// taken by another request stays theirs.
pub async fn give_back(conn: &mut Connection, payment_id: &str, holder: &str) -> Result<()> {
    sqlx::query("DELETE FROM payment_leases WHERE payment_id = $1 AND holder = $2")
        .bind(payment_id)
        .bind(holder)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets leases that ended before `before_ms`, left by requests that
/// died holding them.
pub async fn purge(conn: &mut Connection, before_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM payment_leases WHERE expires_at_ms < $1")
        .bind(before_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

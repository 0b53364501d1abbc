//! The card vault's tables, in the vault's own database ([`Schema::Vault`]):
//! one share of each card number, sealed, by token. The core's database
//! never has these tables, and this module never touches the core's.
//!
//! [`Schema::Vault`]: crate::Schema::Vault

use sqlx::FromRow;

use crate::{Connection, Result};

#[derive(Debug, Clone, FromRow)]
pub struct ShareRow {
    pub token: String,
    /// The share's data key, wrapped by the vault's master key.
    pub key_nonce: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub async fn insert_share(conn: &mut Connection, row: &ShareRow, now_ms: i64) -> Result<()> {
    insert_shares(conn, std::slice::from_ref(row), now_ms).await
}

/// Stores shares, as many rows a statement as it may bind.
pub async fn insert_shares(conn: &mut Connection, rows: &[ShareRow], now_ms: i64) -> Result<()> {
    const INSERT: &str = "INSERT INTO vault_shares (token, key_nonce, wrapped_key, nonce, \
                          ciphertext, created_at_ms) VALUES";
    crate::insert_rows(conn, INSERT, rows, |query, row| {
        (query.bind(&row.token).bind(&row.key_nonce))
            .bind(&row.wrapped_key)
            .bind(&row.nonce)
            .bind(&row.ciphertext)
            .bind(now_ms)
    })
    .await
    .map_err(|e| e.duplicate_as("vault token"))
}

pub async fn share(conn: &mut Connection, token: &str) -> Result<Option<ShareRow>> {
    Ok(sqlx::query_as(
        "SELECT token, key_nonce, wrapped_key, nonce, ciphertext FROM vault_shares WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(conn)
    .await?)
}

/// Deletes a share and with it its data key: the card cannot be joined
/// again, whatever else survives. Returns whether there was one.
pub async fn delete_share(conn: &mut Connection, token: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM vault_shares WHERE token = $1")
        .bind(token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every share, a batch at a time after `after` (for audits and tests).
pub async fn shares_after(conn: &mut Connection, after: &str, limit: i64) -> Result<Vec<ShareRow>> {
    Ok(sqlx::query_as(
        "SELECT token, key_nonce, wrapped_key, nonce, ciphertext FROM vault_shares \
         WHERE token > $1 ORDER BY token LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The master key's check value, if the vault was ever unlocked.
pub async fn key_check(conn: &mut Connection) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT key_check FROM vault_meta WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(check,)| check))
}

/// Records the check value at the first unlock. Two vaults racing to be
/// first both insert; the loser's check is compared by the caller.
pub async fn init_key_check(conn: &mut Connection, check: &str, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO vault_meta (id, key_check, created_at_ms) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(check)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

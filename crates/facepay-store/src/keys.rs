//! Wrapped data keys. Each sealed record (a template, a card) has its own
//! data key, stored here wrapped by a key-encryption key (KEK) that lives
//! outside the database. Rotation re-wraps these rows only; the records
//! themselves never change.

use sqlx::FromRow;

use crate::{Connection, Result};

#[derive(Debug, Clone, FromRow)]
pub struct DataKeyRow {
    pub id: String,
    pub kek_id: String,
    pub nonce: Vec<u8>,
    pub wrapped: Vec<u8>,
}

pub async fn insert(conn: &mut Connection, key: &DataKeyRow, now_ms: i64) -> Result<()> {
    insert_all(conn, &[key], now_ms).await
}

/// Stores `keys`, as many rows a statement as it may bind (a bulk import
/// stores thousands).
pub async fn insert_all(conn: &mut Connection, keys: &[&DataKeyRow], now_ms: i64) -> Result<()> {
    const INSERT: &str = "INSERT INTO data_keys (id, kek_id, nonce, wrapped, created_at_ms) VALUES";
    crate::insert_rows(conn, INSERT, keys, |query, key| {
        (query.bind(&key.id).bind(&key.kek_id))
            .bind(&key.nonce)
            .bind(&key.wrapped)
            .bind(now_ms)
    })
    .await
    .map_err(|e| e.duplicate_as("data key"))
}

/// Stores a data key unless one with its id exists (a key of a fixed name,
/// which two servers starting at once may both make); true when this one
/// was stored. Read the row back to use whichever won.
pub async fn insert_if_absent(
    conn: &mut Connection,
    key: &DataKeyRow,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO data_keys (id, kek_id, nonce, wrapped, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&key.id)
    .bind(&key.kek_id)
    .bind(&key.nonce)
    .bind(&key.wrapped)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the data key of a gallery snapshot file.
pub async fn insert_snapshot_key(
    conn: &mut Connection,
    key: &DataKeyRow,
    now_ms: i64,
) -> Result<()> {
    insert(&mut *conn, key, now_ms).await?;
    sqlx::query("INSERT INTO snapshot_keys (key_id, created_at_ms) VALUES ($1, $2)")
        .bind(&key.id)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// Which snapshot keys to destroy.
#[derive(Debug, Clone, Copy)]
pub enum SnapshotKeys<'a> {
    All,
    One(&'a str),
    CreatedBefore(i64),
}

/// Destroys snapshot keys: the files they sealed can no longer be opened.
/// There are few (one per server), so they go one by one.
pub async fn destroy_snapshot_keys(conn: &mut Connection, which: SnapshotKeys<'_>) -> Result<u64> {
    let ids: Vec<String> = match which {
        SnapshotKeys::All => {
            sqlx::query_scalar("SELECT key_id FROM snapshot_keys")
                .fetch_all(&mut *conn)
                .await?
        }
        SnapshotKeys::One(id) => {
            sqlx::query_scalar("SELECT key_id FROM snapshot_keys WHERE key_id = $1")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
        }
        SnapshotKeys::CreatedBefore(ms) => {
            sqlx::query_scalar("SELECT key_id FROM snapshot_keys WHERE created_at_ms < $1")
                .bind(ms)
                .fetch_all(&mut *conn)
                .await?
        }
    };
    for id in &ids {
        sqlx::query("DELETE FROM data_keys WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM snapshot_keys WHERE key_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(ids.len() as u64)
}

/// The columns of a [`DataKeyRow`], also read with a card
/// (`parties::user_with_card`).
pub(crate) const DATA_KEY_COLUMNS: &str = "id, kek_id, nonce, wrapped";

pub async fn get(conn: &mut Connection, id: &str) -> Result<Option<DataKeyRow>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE id = $1")
    });
    Ok(sqlx::query_as(SQL.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Data keys still wrapped by another KEK than `kek_id`, a batch at a time.
pub async fn not_under(conn: &mut Connection, kek_id: &str, limit: i64) -> Result<Vec<DataKeyRow>> {
    Ok(sqlx::query_as(
        "SELECT id, kek_id, nonce, wrapped FROM data_keys WHERE kek_id <> $1 ORDER BY id LIMIT $2",
    )
    .bind(kek_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a data key's wrapping if it is still wrapped as `before` says;
/// `false` if it changed meanwhile (another rotation got there first).
pub async fn rewrap(
    conn: &mut Connection,
    before: &DataKeyRow,
    after: &DataKeyRow,
) -> Result<bool> {
    assert_eq!(before.id, after.id);
    let done = sqlx::query(
        "UPDATE data_keys SET kek_id = $3, nonce = $4, wrapped = $5 WHERE id = $1 AND kek_id = $2",
    )
    .bind(&before.id)
    .bind(&before.kek_id)
    .bind(&after.kek_id)
    .bind(&after.nonce)
    .bind(&after.wrapped)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many data keys each KEK wraps.
pub async fn count_by_kek(conn: &mut Connection) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT kek_id, CAST(COUNT(*) AS BIGINT) FROM data_keys GROUP BY kek_id ORDER BY kek_id",
    )
    .fetch_all(conn)
    .await?)
}

/// Destroys a data key: whatever it sealed can no longer be opened.
pub async fn delete(conn: &mut Connection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM data_keys WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

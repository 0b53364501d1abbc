//! Merchant and operator keys with their scope, label, expiry, rotation
//! and revocation, and operators with their role (migration 0017). A key
//! is stored as the hash of its secret and a short prefix to tell keys
//! apart in a list; never the secret.

use sqlx::FromRow;

use crate::{Connection, Result, StoreError};

/// Keys one owner holds at most, revoked and expired ones included.
pub const KEYS_PER_OWNER_MAX: i64 = 100;
/// Operators a list answers at most.
pub const OPERATORS_MAX: i64 = 1000;

/// Whose keys: each kind has its table and its owner column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Merchant,
    Operator,
}

impl KeyKind {
    fn table(self) -> &'static str {
        match self {
            KeyKind::Merchant => "api_keys",
            KeyKind::Operator => "operator_keys",
        }
    }

    fn owner(self) -> &'static str {
        match self {
            KeyKind::Merchant => "merchant_id",
            KeyKind::Operator => "operator_name",
        }
    }

    /// The table of the keys' owners, and its key column.
    fn owner_table(self) -> &'static str {
        match self {
            KeyKind::Merchant => "merchants",
            KeyKind::Operator => "operators",
        }
    }

    fn owner_key(self) -> &'static str {
        match self {
            KeyKind::Merchant => "id",
            KeyKind::Operator => "name",
        }
    }

    /// A merchant key's scope; an operator key acts with its operator's
    /// role, which the query reads from `operators`.
    fn columns(self) -> String {
        let scope = match self {
            KeyKind::Merchant => "k.scope",
            KeyKind::Operator => "o.role",
        };
        format!(
            "k.id, k.{owner} AS owner, {scope} AS scope, k.label, k.prefix, k.created_at_ms, \
             k.expires_at_ms, k.revoked_at_ms, k.replaced_by",
            owner = self.owner()
        )
    }

    fn select(self) -> String {
        let join = match self {
            KeyKind::Merchant => "",
            KeyKind::Operator => " JOIN operators o ON o.name = k.operator_name",
        };
        format!("SELECT {} FROM {} k{join}", self.columns(), self.table())
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: String,
    /// The merchant id or the operator's name.
    pub owner: String,
    /// A merchant key's scope, or the operator's role.
    pub scope: String,
    pub label: Option<String>,
    /// The secret's first characters (none for keys made before 0017).
    pub prefix: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// The key that a rotation made to replace this one.
    pub replaced_by: Option<String>,
}

pub struct NewKey<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    /// A merchant key's scope; ignored for an operator's key.
    pub scope: &'a str,
    pub label: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub key_hash: &'a str,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// Adds a key unless its owner holds `KEYS_PER_OWNER_MAX` live keys
/// (neither revoked nor replaced by a rotation) already; false then. The
/// owner's row is held until the caller's transaction ends, so keys made
/// at once on several servers are counted one after another: a count
/// outside the insert's transaction let each of them see room for one
/// more. `NO KEY UPDATE` leaves the row free for the foreign-key checks of
/// the rows that name the owner (payments, stores). SQLite has one writer
/// anyway.
pub async fn insert_key_within_limit(
    conn: &mut Connection,
    kind: KeyKind,
    key: &NewKey<'_>,
) -> Result<bool> {
    if crate::on_postgres(conn) {
        let sql = format!(
            "SELECT {column} FROM {table} WHERE {column} = $1 FOR NO KEY UPDATE",
            column = kind.owner_key(),
            table = kind.owner_table()
        );
        sqlx::query(&sql)
            .bind(key.owner)
            .execute(&mut *conn)
            .await?;
    }
    if key_count(&mut *conn, kind, key.owner).await? >= KEYS_PER_OWNER_MAX {
        return Ok(false);
    }
    insert_key(conn, kind, key).await?;
    Ok(true)
}

pub async fn insert_key(conn: &mut Connection, kind: KeyKind, key: &NewKey<'_>) -> Result<()> {
    let query = match kind {
        KeyKind::Merchant => sqlx::query(
            "INSERT INTO api_keys (id, merchant_id, scope, label, prefix, key_hash, \
             expires_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id)
        .bind(key.owner)
        .bind(key.scope),
        // `name` is unique and was the operator's before 0017: a new key
        // takes its own id there.
        KeyKind::Operator => sqlx::query(
            "INSERT INTO operator_keys (id, operator_name, name, label, prefix, key_hash, \
             expires_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id)
        .bind(key.owner)
        .bind(key.id),
    };
    query
        .bind(key.label)
        .bind(key.prefix)
        .bind(key.key_hash)
        .bind(key.expires_at_ms)
        .bind(key.created_at_ms)
        .execute(conn)
        .await
        .map_err(|e| StoreError::from(e).duplicate_as("key"))?;
    Ok(())
}

pub async fn key_by_hash(
    conn: &mut Connection,
    kind: KeyKind,
    key_hash: &str,
) -> Result<Option<KeyRow>> {
    let sql = format!("{} WHERE k.key_hash = $1", kind.select());
    Ok(sqlx::query_as(&sql)
        .bind(key_hash)
        .fetch_optional(conn)
        .await?)
}

pub async fn key(conn: &mut Connection, kind: KeyKind, id: &str) -> Result<Option<KeyRow>> {
    let sql = format!("{} WHERE k.id = $1", kind.select());
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// A key neither revoked nor replaced: the ones the limit counts and the
/// listing shows first. (Unqualified: `operators`, joined for a listing,
/// has neither column.)
const LIVE: &str = "revoked_at_ms IS NULL AND replaced_by IS NULL";

/// An owner's keys, the live ones first, each part oldest first; every
/// owner's when `owner` is `None`. Past the limit the oldest revoked or
/// replaced keys are left out, never a live one.
pub async fn keys(
    conn: &mut Connection,
    kind: KeyKind,
    owner: Option<&str>,
) -> Result<Vec<KeyRow>> {
    let order = format!("ORDER BY CASE WHEN {LIVE} THEN 0 ELSE 1 END, k.created_at_ms, k.id LIMIT");
    Ok(match owner {
        Some(owner) => {
            let sql = format!("{} WHERE k.{} = $1 {order} $2", kind.select(), kind.owner());
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(KEYS_PER_OWNER_MAX)
                .fetch_all(conn)
                .await?
        }
        None => {
            let sql = format!("{} {order} $1", kind.select());
            sqlx::query_as(&sql)
                .bind(KEYS_PER_OWNER_MAX * 10)
                .fetch_all(conn)
                .await?
        }
    })
}

/// How many live keys an owner holds: a revoked key, or one a rotation
/// replaced, no longer counts, so an owner who rotates keeps rotating.
async fn key_count(conn: &mut Connection, kind: KeyKind, owner: &str) -> Result<i64> {
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM {} WHERE {} = $1 AND {LIVE}",
        kind.table(),
        kind.owner()
    );
    let (n,): (i64,) = sqlx::query_as(&sql).bind(owner).fetch_one(conn).await?;
    Ok(n)
}

/// Revokes a key; false when it was revoked already.
pub async fn revoke_key(
    conn: &mut Connection,
    kind: KeyKind,
    id: &str,
    now_ms: i64,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {} SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        kind.table()
    );
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a rotated key at `ends_at_ms` (or its own expiry, if sooner) and
/// names the key that replaces it; false when it was revoked or replaced
/// meanwhile.
pub async fn end_rotated_key(
    conn: &mut Connection,
    kind: KeyKind,
    id: &str,
    ends_at_ms: i64,
    replaced_by: &str,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {} SET expires_at_ms = CASE WHEN expires_at_ms IS NULL OR expires_at_ms > $2 \
         THEN $2 ELSE expires_at_ms END, replaced_by = $3 \
         WHERE id = $1 AND revoked_at_ms IS NULL AND replaced_by IS NULL",
        kind.table()
    );
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(ends_at_ms)
        .bind(replaced_by)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a key a new secret (a replayed creation shows a secret made then,
/// which replaces the first); false when it is revoked.
pub async fn replace_secret(
    conn: &mut Connection,
    kind: KeyKind,
    id: &str,
    key_hash: &str,
    prefix: &str,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {} SET key_hash = $2, prefix = $3 WHERE id = $1 AND revoked_at_ms IS NULL",
        kind.table()
    );
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(key_hash)
        .bind(prefix)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct OperatorRow {
    pub name: String,
    /// `support`, `risk` or `admin`.
    pub role: String,
    pub created_at_ms: i64,
}

/// Adds an operator; `Duplicate` when the name is taken.
pub async fn insert_operator(
    conn: &mut Connection,
    name: &str,
    role: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO operators (name, role, created_at_ms) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(role)
        .bind(now_ms)
        .execute(conn)
        .await
        .map_err(|e| StoreError::from(e).duplicate_as("operator"))?;
    Ok(())
}

pub async fn operator(conn: &mut Connection, name: &str) -> Result<Option<OperatorRow>> {
    Ok(
        sqlx::query_as("SELECT name, role, created_at_ms FROM operators WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn operators(conn: &mut Connection) -> Result<Vec<OperatorRow>> {
    Ok(
        sqlx::query_as("SELECT name, role, created_at_ms FROM operators ORDER BY name LIMIT $1")
            .bind(OPERATORS_MAX)
            .fetch_all(conn)
            .await?,
    )
}

//! What operators onboard (migration 0017): merchants with their profile
//! and their end, stores with their address, time zone and hours,
//! terminals with their names, pairing and retirement, and the one live
//! pairing code of each terminal, kept as a hash.
//!
//! A closed merchant or a retired terminal keeps status `suspended` and
//! gets a time that nothing clears; the queries here report `closed` and
//! `retired` for them.

use sqlx::FromRow;

use crate::{Connection, Result, StoreError};

/// Rows a list answers at most.
pub const LIST_MAX: i64 = 1000;

/// A merchant's status as the API tells it: `closed` when closed.
const MERCHANT_STATUS: &str = "CASE WHEN closed_at_ms IS NOT NULL THEN 'closed' ELSE status END";
/// A terminal's status as the API tells it: `retired` when retired.
const TERMINAL_STATUS: &str =
    "CASE WHEN t.retired_at_ms IS NOT NULL THEN 'retired' ELSE t.status END";

#[derive(Debug, Clone, FromRow)]
pub struct MerchantProfile {
    pub id: String,
    pub name: String,
    pub legal_name: Option<String>,
    pub fee_bps: i64,
    pub settlement_currency: Option<String>,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

pub async fn insert_merchant(conn: &mut Connection, m: &MerchantProfile) -> Result<()> {
    sqlx::query(
        "INSERT INTO merchants (id, name, legal_name, fee_bps, settlement_currency, status, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
    )
    .bind(&m.id)
    .bind(&m.name)
    .bind(&m.legal_name)
    .bind(m.fee_bps)
    .bind(&m.settlement_currency)
    .bind(m.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("merchant"))?;
    Ok(())
}

fn merchant_select() -> String {
    format!(
        "SELECT id, name, legal_name, fee_bps, settlement_currency, {MERCHANT_STATUS} AS status, \
         created_at_ms, closed_at_ms FROM merchants"
    )
}

pub async fn merchant(conn: &mut Connection, id: &str) -> Result<Option<MerchantProfile>> {
    let sql = format!("{} WHERE id = $1", merchant_select());
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// Merchants in id order after `after_id`, at most `limit` (≤ `LIST_MAX`).
pub async fn merchants(
    conn: &mut Connection,
    after_id: &str,
    limit: i64,
) -> Result<Vec<MerchantProfile>> {
    let sql = format!("{} WHERE id > $1 ORDER BY id LIMIT $2", merchant_select());
    Ok(sqlx::query_as(&sql)
        .bind(after_id)
        .bind(limit.clamp(1, LIST_MAX))
        .fetch_all(conn)
        .await?)
}

/// Suspends or reactivates a merchant that is not closed; false when it
/// is closed or unknown.
pub async fn set_merchant_status(conn: &mut Connection, id: &str, status: &str) -> Result<bool> {
    let done =
        sqlx::query("UPDATE merchants SET status = $2 WHERE id = $1 AND closed_at_ms IS NULL")
            .bind(id)
            .bind(status)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes a merchant for good; false when it was closed already.
pub async fn close_merchant(conn: &mut Connection, id: &str, now_ms: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE merchants SET status = 'suspended', closed_at_ms = $2 \
         WHERE id = $1 AND closed_at_ms IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct StoreDetail {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub address: Option<String>,
    pub country: String,
    pub city: String,
    pub currency: String,
    pub latitude_e6: i64,
    pub longitude_e6: i64,
    pub time_zone: Option<String>,
    /// JSON, as the payments core wrote it.
    pub opening_hours: Option<String>,
    pub created_at_ms: i64,
}

const STORE_COLUMNS: &str = "id, merchant_id, name, address, country, city, currency, \
     latitude_e6, longitude_e6, time_zone, opening_hours, created_at_ms";

pub async fn insert_store(conn: &mut Connection, s: &StoreDetail) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO stores ({STORE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&s.id)
    .bind(&s.merchant_id)
    .bind(&s.name)
    .bind(&s.address)
    .bind(&s.country)
    .bind(&s.city)
    .bind(&s.currency)
    .bind(s.latitude_e6)
    .bind(s.longitude_e6)
    .bind(&s.time_zone)
    .bind(&s.opening_hours)
    .bind(s.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("store"))?;
    Ok(())
}

pub async fn store(conn: &mut Connection, id: &str) -> Result<Option<StoreDetail>> {
    let sql = format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub async fn stores_of(conn: &mut Connection, merchant_id: &str) -> Result<Vec<StoreDetail>> {
    let sql =
        format!("SELECT {STORE_COLUMNS} FROM stores WHERE merchant_id = $1 ORDER BY id LIMIT $2");
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(LIST_MAX)
        .fetch_all(conn)
        .await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct TerminalRow {
    pub id: String,
    pub store_id: String,
    pub merchant_id: String,
    pub name: String,
    /// `active`, `suspended` or `retired`.
    pub status: String,
    pub paired_at_ms: Option<i64>,
    pub retired_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

fn terminal_select() -> String {
    format!(
        "SELECT t.id, t.store_id, s.merchant_id, COALESCE(t.name, t.id) AS name, \
         {TERMINAL_STATUS} AS status, t.paired_at_ms, t.retired_at_ms, t.created_at_ms \
         FROM terminals t JOIN stores s ON s.id = t.store_id"
    )
}

/// A terminal with no key yet: it takes no payment until it pairs. A name
/// the store already has is `Duplicate`.
pub async fn insert_unpaired_terminal(
    conn: &mut Connection,
    id: &str,
    store_id: &str,
    name: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO terminals (id, store_id, name, public_key, status, created_at_ms) \
         VALUES ($1, $2, $3, $4, 'active', $5)",
    )
    .bind(id)
    .bind(store_id)
    .bind(name)
    .bind(Vec::<u8>::new())
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("terminal name in this store"))?;
    Ok(())
}

pub async fn terminal(conn: &mut Connection, id: &str) -> Result<Option<TerminalRow>> {
    let sql = format!("{} WHERE t.id = $1", terminal_select());
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub async fn terminals_of(conn: &mut Connection, merchant_id: &str) -> Result<Vec<TerminalRow>> {
    let sql = format!(
        "{} WHERE s.merchant_id = $1 ORDER BY t.store_id, t.id LIMIT $2",
        terminal_select()
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(LIST_MAX)
        .fetch_all(conn)
        .await?)
}

/// Drops a terminal's key at once (it signs nothing from now on); false
/// when it is retired or unknown.
pub async fn unpair_terminal(conn: &mut Connection, id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE terminals SET public_key = $2, paired_at_ms = NULL \
         WHERE id = $1 AND retired_at_ms IS NULL",
    )
    .bind(id)
    .bind(Vec::<u8>::new())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Registers the key a terminal paired with; false when it is retired.
pub async fn pair_terminal(
    conn: &mut Connection,
    id: &str,
    public_key: &[u8],
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE terminals SET public_key = $2, paired_at_ms = $3 \
         WHERE id = $1 AND retired_at_ms IS NULL",
    )
    .bind(id)
    .bind(public_key)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Retires a terminal for good: its key and pairing code go with it.
/// False when it was retired already.
pub async fn retire_terminal(conn: &mut Connection, id: &str, now_ms: i64) -> Result<bool> {
    delete_pairing_code(&mut *conn, id).await?;
    let done = sqlx::query(
        "UPDATE terminals SET status = 'suspended', retired_at_ms = $2, public_key = $3 \
         WHERE id = $1 AND retired_at_ms IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .bind(Vec::<u8>::new())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct PairingCode {
    pub terminal_id: String,
    /// Argon2id, in the PHC string format.
    pub code_hash: String,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub failed_attempts: i64,
}

/// Gives a terminal a new pairing code, replacing any code it had.
pub async fn put_pairing_code(
    conn: &mut Connection,
    terminal_id: &str,
    code_hash: &str,
    created_by: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    delete_pairing_code(&mut *conn, terminal_id).await?;
    sqlx::query(
        "INSERT INTO pairing_codes (terminal_id, code_hash, created_by, created_at_ms, \
         expires_at_ms, failed_attempts) VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(terminal_id)
    .bind(code_hash)
    .bind(created_by)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn pairing_code(conn: &mut Connection, terminal_id: &str) -> Result<Option<PairingCode>> {
    Ok(sqlx::query_as(
        "SELECT terminal_id, code_hash, expires_at_ms, used_at_ms, failed_attempts \
         FROM pairing_codes WHERE terminal_id = $1",
    )
    .bind(terminal_id)
    .fetch_optional(conn)
    .await?)
}

/// Counts an attempt at a terminal's code as failed, before the code is
/// checked, if the code has fewer than `max` failures; false when it has
/// `max` (the code is dead). One conditional update, so attempts sent at
/// once, to one server or several, never check more than `max` codes. A
/// right code is used by its attempt, after which the count no longer
/// matters.
pub async fn take_pairing_attempt(
    conn: &mut Connection,
    terminal_id: &str,
    max: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pairing_codes SET failed_attempts = failed_attempts + 1 \
         WHERE terminal_id = $1 AND failed_attempts < $2",
    )
    .bind(terminal_id)
    .bind(max)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Uses the code the caller read (`code_hash`) if it is still unused and
/// unexpired; false when another request used it first or it changed.
pub async fn use_pairing_code(
    conn: &mut Connection,
    terminal_id: &str,
    code_hash: &str,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pairing_codes SET used_at_ms = $3 WHERE terminal_id = $1 AND code_hash = $2 \
         AND used_at_ms IS NULL AND expires_at_ms > $3",
    )
    .bind(terminal_id)
    .bind(code_hash)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_pairing_code(conn: &mut Connection, terminal_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM pairing_codes WHERE terminal_id = $1")
        .bind(terminal_id)
        .execute(conn)
        .await?;
    Ok(())
}

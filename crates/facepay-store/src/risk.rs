//! What the risk engine reads from the payments history for one payment:
//! the payer's usual amounts, counts over recent windows, where they last
//! paid, and whether they have paid here before. Every query is an index
//! range scan (migration 0007), and the whole costs three round trips.

use crate::fraud::GuessedFactor;
use sqlx::Row;

use crate::{Connection, Result};

/// Past amounts read at most.
pub const AMOUNTS_MAX: i64 = 100;

/// Who and where a payment is, and the windows to count over.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub user_id: &'a str,
    pub card_fingerprint: Option<&'a str>,
    pub terminal_id: &'a str,
    pub merchant_id: &'a str,
    /// The store's country, ISO 3166 alpha-2.
    pub country: &'a str,
    pub now_ms: i64,
    pub user_since_ms: i64,
    pub card_since_ms: i64,
    pub terminal_since_ms: i64,
    pub merchant_since_ms: i64,
    /// The merchant's payments are counted this far at most: the rules
    /// need no more (`facepay_risk::Rules::count_limit`), and a busy
    /// merchant has many. The other counts are bounded by the pace of one
    /// person, card or terminal.
    pub merchant_count_limit: i64,
    /// Failed PINs are counted from here.
    pub pin_since_ms: i64,
}

/// A store's position and the time of a payment there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub latitude_e6: i64,
    pub longitude_e6: i64,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The payer's captured amounts, newest first.
    pub amounts_minor: Vec<i64>,
    pub user_payments: i64,
    pub card_payments: i64,
    /// Active accounts holding the card.
    pub card_accounts: i64,
    pub terminal_payments: i64,
    pub merchant_payments: i64,
    /// Declined or failed payments at the terminal in its window, and
    /// attempts there that matched no face or were spoofs.
    pub terminal_failures: i64,
    /// The payer's wrong PINs since `pin_since_ms`.
    pub pin_failures: i64,
    /// The run-time blocklist's entry for this payer, card, terminal,
    /// merchant or country, if there is one.
    pub blocked: Option<String>,
    pub last_place: Option<Place>,
    /// Among the payer's last 1,000 captured payments.
    pub paid_at_merchant: bool,
    pub paid_at_terminal: bool,
}

/// Every count the risk engine weighs, in one statement: one round trip
/// instead of eight, each aggregate still an index range scan. The card's
/// payments are counted per account holding it, a range of
/// `payments_method_created` each: written as a join, PostgreSQL may hash
/// it over a scan of every recent payment when its statistics are stale.
const COUNTS_SQL: &str = "SELECT u.n, c.n, a.n, t.n, t.failed, m.n, h.at_merchant, h.at_terminal, \
     att.n, pin.n FROM \
     (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM payments \
      WHERE user_id = $1 AND created_at_ms >= $2) AS u \
     CROSS JOIN (SELECT CAST(COALESCE(SUM((SELECT COUNT(*) FROM payments p \
      WHERE p.payment_method_id = pm.id AND p.created_at_ms >= $4)), 0) AS BIGINT) AS n \
      FROM payment_methods pm WHERE pm.fingerprint = $3) AS c \
     CROSS JOIN (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) AS n FROM payment_methods \
      WHERE fingerprint = $3 AND status = 'active') AS a \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(CASE WHEN state IN \
      ('declined', 'failed') THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed FROM payments \
      WHERE terminal_id = $5 AND created_at_ms >= $6) AS t \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM (SELECT 1 AS one FROM payments \
      WHERE merchant_id = $7 AND created_at_ms >= $8 LIMIT $11) AS window_rows) AS m \
     CROSS JOIN (SELECT CAST(COALESCE(SUM(CASE WHEN merchant_id = $7 THEN 1 ELSE 0 END), 0) \
      AS BIGINT) AS at_merchant, CAST(COALESCE(SUM(CASE WHEN terminal_id = $5 THEN 1 ELSE 0 END), \
      0) AS BIGINT) AS at_terminal FROM (SELECT merchant_id, terminal_id FROM payments \
      WHERE user_id = $1 AND captured_minor > 0 ORDER BY created_at_ms DESC LIMIT 1000) \
      AS recent) AS h \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM terminal_attempts \
      WHERE terminal_id = $5 AND at_ms >= $6) AS att \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM factor_failures \
      WHERE user_id = $1 AND factor = $9 AND at_ms >= $10) AS pin";

struct Counts {
    user_payments: i64,
    card_payments: i64,
    card_accounts: i64,
    terminal_payments: i64,
    terminal_failures: i64,
    merchant_payments: i64,
    paid_at_merchant: i64,
    paid_at_terminal: i64,
    terminal_attempts: i64,
    pin_failures: i64,
}

async fn counts(conn: &mut Connection, ask: &Ask<'_>) -> Result<Counts> {
    let row = sqlx::query(COUNTS_SQL)
        .bind(ask.user_id)
        .bind(ask.user_since_ms)
        // No card: the fingerprint is NULL, which matches nothing.
        .bind(ask.card_fingerprint)
        .bind(ask.card_since_ms)
        .bind(ask.terminal_id)
        .bind(ask.terminal_since_ms)
        .bind(ask.merchant_id)
        .bind(ask.merchant_since_ms)
        .bind(GuessedFactor::Pin.as_str())
        .bind(ask.pin_since_ms)
        .bind(ask.merchant_count_limit)
        .fetch_one(conn)
        .await?;
    Ok(Counts {
        user_payments: row.try_get(0)?,
        card_payments: row.try_get(1)?,
        card_accounts: row.try_get(2)?,
        terminal_payments: row.try_get(3)?,
        terminal_failures: row.try_get(4)?,
        merchant_payments: row.try_get(5)?,
        paid_at_merchant: row.try_get(6)?,
        paid_at_terminal: row.try_get(7)?,
        terminal_attempts: row.try_get(8)?,
        pin_failures: row.try_get(9)?,
    })
}

/// Three round trips: the payer's captured payments (amounts, and where
/// the newest was), the counts, the blocklist.
pub async fn history(conn: &mut Connection, ask: &Ask<'_>) -> Result<History> {
    let recent: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.amount_minor, s.latitude_e6, s.longitude_e6, p.created_at_ms FROM payments p \
         JOIN stores s ON s.id = p.store_id WHERE p.user_id = $1 AND p.captured_minor > 0 \
         ORDER BY p.created_at_ms DESC LIMIT $2",
    )
    .bind(ask.user_id)
    .bind(AMOUNTS_MAX)
    .fetch_all(&mut *conn)
    .await?;
    let n = counts(conn, ask).await?;
    let blocked = crate::fraud::blocked(
        conn,
        [
            ask.user_id,
            ask.card_fingerprint.unwrap_or(""),
            ask.terminal_id,
            ask.merchant_id,
            ask.country,
        ],
        ask.now_ms,
    )
    .await?;
    let last_place = recent
        .first()
        .map(|&(_, latitude_e6, longitude_e6, at_ms)| Place {
            latitude_e6,
            longitude_e6,
            at_ms,
        });
    Ok(History {
        amounts_minor: recent.iter().map(|r| r.0).collect(),
        user_payments: n.user_payments,
        card_payments: n.card_payments,
        card_accounts: n.card_accounts,
        terminal_payments: n.terminal_payments,
        merchant_payments: n.merchant_payments,
        terminal_failures: n.terminal_failures + n.terminal_attempts,
        pin_failures: n.pin_failures,
        blocked,
        last_place,
        paid_at_merchant: n.paid_at_merchant > 0,
        paid_at_terminal: n.paid_at_terminal > 0,
    })
}

//! What the risk engine reads from the payments history for one payment:
//! the payer's usual amounts, counts over recent windows, where they last
//! paid, whether they have paid here before, and whether the blocklist
//! names them. Every part is an index range scan (migration 0007), and the
//! whole is one round trip.

use crate::fraud::GuessedFactor;
use sqlx::Row;

use crate::{Connection, Result};

/// Past amounts read at most.
pub const AMOUNTS_MAX: i64 = 100;

/// Who and where a payment is, and the windows to count over.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The payment being assessed. Its row is written before this read
    /// (so that payments sent at once count each other) and is not
    /// counted itself.
    pub payment_id: &'a str,
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

/// Everything the risk engine weighs, in one statement: the counts side
/// by side (each aggregate an index range scan), the first entry of the
/// blocklist that applies (in the order of `fraud::BLOCK_KINDS`), and the
/// payer's recent captured payments joined to them, one row each (one row
/// of counts alone when there are none). The card's
/// payments are counted per account holding it, a range of
/// `payments_method_created` each: written as a join, PostgreSQL may hash
/// it over a scan of every recent payment when its statistics are stale.
const COUNTS_SQL: &str = "SELECT u.n, c.n, a.n, t.n, t.failed, m.n, h.at_merchant, h.at_terminal, \
     att.n, pin.n, blk.reason, recent.amount_minor, recent.latitude_e6, recent.longitude_e6, \
     recent.created_at_ms FROM \
     (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM payments \
      WHERE user_id = $1 AND created_at_ms >= $2 AND id <> $15) AS u \
     CROSS JOIN (SELECT CAST(COALESCE(SUM((SELECT COUNT(*) FROM payments p \
      WHERE p.payment_method_id = pm.id AND p.created_at_ms >= $4 AND p.id <> $15)), 0) \
      AS BIGINT) AS n \
      FROM payment_methods pm WHERE pm.fingerprint = $3) AS c \
     CROSS JOIN (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) AS n FROM payment_methods \
      WHERE fingerprint = $3 AND status = 'active') AS a \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(CASE WHEN state IN \
      ('declined', 'failed') THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed FROM payments \
      WHERE terminal_id = $5 AND created_at_ms >= $6 AND id <> $15) AS t \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM (SELECT 1 AS one FROM payments \
      WHERE merchant_id = $7 AND created_at_ms >= $8 AND id <> $15 LIMIT $11) AS window_rows) \
      AS m \
     CROSS JOIN (SELECT CAST(COALESCE(SUM(CASE WHEN merchant_id = $7 THEN 1 ELSE 0 END), 0) \
      AS BIGINT) AS at_merchant, CAST(COALESCE(SUM(CASE WHEN terminal_id = $5 THEN 1 ELSE 0 END), \
      0) AS BIGINT) AS at_terminal FROM (SELECT merchant_id, terminal_id FROM payments \
      WHERE user_id = $1 AND captured_minor > 0 ORDER BY created_at_ms DESC LIMIT 1000) \
      AS recent) AS h \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM terminal_attempts \
      WHERE terminal_id = $5 AND at_ms >= $6) AS att \
     CROSS JOIN (SELECT CAST(COUNT(*) AS BIGINT) AS n FROM factor_failures \
      WHERE user_id = $1 AND factor = $9 AND at_ms >= $10) AS pin \
     CROSS JOIN (SELECT (SELECT kind || ':' || value || ' (' || reason || ')' FROM risk_blocks \
      WHERE ((kind = 'user' AND value = $1) OR (kind = 'card' AND value = $3) \
      OR (kind = 'terminal' AND value = $5) OR (kind = 'merchant' AND value = $7) \
      OR (kind = 'country' AND value = $12)) AND (expires_at_ms IS NULL OR expires_at_ms > $13) \
      ORDER BY CASE kind WHEN 'user' THEN 1 WHEN 'card' THEN 2 WHEN 'terminal' THEN 3 \
      WHEN 'merchant' THEN 4 ELSE 5 END LIMIT 1) AS reason) AS blk \
     LEFT JOIN (SELECT p.amount_minor, s.latitude_e6, s.longitude_e6, p.created_at_ms \
      FROM payments p JOIN stores s ON s.id = p.store_id \
      WHERE p.user_id = $1 AND p.captured_minor > 0 \
      ORDER BY p.created_at_ms DESC LIMIT $14) AS recent ON 1 = 1 \
     ORDER BY recent.created_at_ms DESC";

/// The payer's history for one payment, read in one statement.
pub async fn history(conn: &mut Connection, ask: &Ask<'_>) -> Result<History> {
    let rows = sqlx::query(COUNTS_SQL)
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
        .bind(ask.country)
        .bind(ask.now_ms)
        .bind(AMOUNTS_MAX)
        .bind(ask.payment_id)
        .fetch_all(conn)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| crate::StoreError::Corrupt("the risk counts returned no row".into()))?;
    let mut amounts_minor = Vec::with_capacity(rows.len());
    let mut last_place = None;
    for row in &rows {
        let Some(amount_minor) = row.try_get::<Option<i64>, _>(11)? else {
            continue;
        };
        amounts_minor.push(amount_minor);
        if last_place.is_none() {
            last_place = Some(Place {
                latitude_e6: row.try_get(12)?,
                longitude_e6: row.try_get(13)?,
                at_ms: row.try_get(14)?,
            });
        }
    }
    let terminal_failures: i64 = first.try_get(4)?;
    let terminal_attempts: i64 = first.try_get(8)?;
    Ok(History {
        amounts_minor,
        user_payments: first.try_get(0)?,
        card_payments: first.try_get(1)?,
        card_accounts: first.try_get(2)?,
        terminal_payments: first.try_get(3)?,
        merchant_payments: first.try_get(5)?,
        terminal_failures: terminal_failures + terminal_attempts,
        pin_failures: first.try_get(9)?,
        blocked: first.try_get(10)?,
        last_place,
        paid_at_merchant: first.try_get::<i64, _>(6)? > 0,
        paid_at_terminal: first.try_get::<i64, _>(7)? > 0,
    })
}

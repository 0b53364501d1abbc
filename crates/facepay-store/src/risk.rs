//! What the risk engine reads from the payments history for one payment:
//! the payer's usual amounts, counts over recent windows, where they last
//! paid, and whether they have paid here before. Every query is an index
//! range scan (migration 0007), so the whole costs a few round trips.

use crate::fraud::GuessedFactor;
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

async fn count(conn: &mut Connection, sql: &str, key: &str, since_ms: i64) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(key)
        .bind(since_ms)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

pub async fn history(conn: &mut Connection, ask: &Ask<'_>) -> Result<History> {
    let amounts_minor: Vec<i64> = sqlx::query_scalar(
        "SELECT amount_minor FROM payments WHERE user_id = $1 AND captured_minor > 0 \
         ORDER BY created_at_ms DESC LIMIT $2",
    )
    .bind(ask.user_id)
    .bind(AMOUNTS_MAX)
    .fetch_all(&mut *conn)
    .await?;
    let user_payments = count(
        conn,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE user_id = $1 AND created_at_ms >= $2",
        ask.user_id,
        ask.user_since_ms,
    )
    .await?;
    let card_payments = match ask.card_fingerprint {
        Some(fingerprint) => {
            count(
                conn,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM payments p \
                 JOIN payment_methods m ON m.id = p.payment_method_id \
                 WHERE m.fingerprint = $1 AND p.created_at_ms >= $2",
                fingerprint,
                ask.card_since_ms,
            )
            .await?
        }
        None => 0,
    };
    let card_accounts = match ask.card_fingerprint {
        Some(fingerprint) => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM payment_methods \
                 WHERE fingerprint = $1 AND status = 'active'",
            )
            .bind(fingerprint)
            .fetch_one(&mut *conn)
            .await?;
            n
        }
        None => 0,
    };
    // One range scan gives both of the terminal's counts.
    let (terminal_payments, terminal_failures): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN state IN \
         ('declined', 'failed') THEN 1 ELSE 0 END), 0) AS BIGINT) FROM payments \
         WHERE terminal_id = $1 AND created_at_ms >= $2",
    )
    .bind(ask.terminal_id)
    .bind(ask.terminal_since_ms)
    .fetch_one(&mut *conn)
    .await?;
    let merchant_payments = count(
        conn,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE merchant_id = $1 \
         AND created_at_ms >= $2",
        ask.merchant_id,
        ask.merchant_since_ms,
    )
    .await?;
    let last_place: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT s.latitude_e6, s.longitude_e6, p.created_at_ms FROM payments p \
         JOIN stores s ON s.id = p.store_id WHERE p.user_id = $1 AND p.captured_minor > 0 \
         ORDER BY p.created_at_ms DESC LIMIT 1",
    )
    .bind(ask.user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let paid_here: (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN merchant_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN terminal_id = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM (SELECT merchant_id, terminal_id FROM payments WHERE user_id = $1 \
         AND captured_minor > 0 ORDER BY created_at_ms DESC LIMIT 1000) AS recent",
    )
    .bind(ask.user_id)
    .bind(ask.merchant_id)
    .bind(ask.terminal_id)
    .fetch_one(&mut *conn)
    .await?;
    let attempts =
        crate::fraud::attempts_since(conn, ask.terminal_id, ask.terminal_since_ms).await?;
    let (pin_failures, _) =
        crate::fraud::factor_failures(conn, ask.user_id, GuessedFactor::Pin, ask.pin_since_ms)
            .await?;
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
    Ok(History {
        amounts_minor,
        user_payments,
        card_payments,
        card_accounts,
        terminal_payments,
        merchant_payments,
        terminal_failures: terminal_failures + attempts,
        pin_failures,
        blocked,
        last_place: last_place.map(|(latitude_e6, longitude_e6, at_ms)| Place {
            latitude_e6,
            longitude_e6,
            at_ms,
        }),
        paid_at_merchant: paid_here.0 > 0,
        paid_at_terminal: paid_here.1 > 0,
    })
}

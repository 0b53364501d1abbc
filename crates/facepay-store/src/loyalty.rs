//! Loyalty (migration 0009): merchants' points programs, stamp cards and
//! coupons, and the points ledger.
//!
//! Points are a merchant's liability in a unit of their own. A points
//! transfer moves points between the merchant's liability account
//! (`points:<merchant>:liability`) and a user's account there
//! (`points:<merchant>:user:<user>`); its two entries sum to zero, and it
//! never touches the money ledger. Each user's balance is also kept in
//! `points_balances`, updated conditionally so that it never goes below
//! zero however payments race; [`verify`] checks the two agree.
//!
//! A coupon use is taken with conditional updates too: the coupon's total
//! and the user's holding each move only while a use is left, so two
//! payments racing for the last use cannot both have it.

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::{FromRow, Row};

use crate::{Connection, Result, StoreError};

/// Problems listed by [`verify`] at most.
pub const PROBLEMS_MAX: usize = 100;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Program {
    pub id: String,
    pub merchant_id: String,
    /// `points` or `stamps`.
    pub kind: String,
    /// `active` or `paused`.
    pub status: String,
    pub points_bps: Option<i64>,
    pub points_cap: Option<i64>,
    pub stamps_per_reward: Option<i64>,
    pub reward_coupon_id: Option<String>,
    pub created_at_ms: i64,
}

const PROGRAM_COLUMNS: &str = "id, merchant_id, kind, status, points_bps, points_cap, \
     stamps_per_reward, reward_coupon_id, created_at_ms";

pub async fn insert_program(conn: &mut Connection, p: &Program) -> Result<()> {
    sqlx::query(
        "INSERT INTO loyalty_programs (id, merchant_id, kind, status, points_bps, points_cap, \
         stamps_per_reward, reward_coupon_id, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&p.id)
    .bind(&p.merchant_id)
    .bind(&p.kind)
    .bind(&p.status)
    .bind(p.points_bps)
    .bind(p.points_cap)
    .bind(p.stamps_per_reward)
    .bind(&p.reward_coupon_id)
    .bind(p.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("loyalty program"))?;
    Ok(())
}

/// Pauses or resumes a merchant's program; false when it has no such one.
pub async fn set_program_status(
    conn: &mut Connection,
    merchant_id: &str,
    id: &str,
    status: &str,
) -> Result<bool> {
    let done =
        sqlx::query("UPDATE loyalty_programs SET status = $3 WHERE id = $1 AND merchant_id = $2")
            .bind(id)
            .bind(merchant_id)
            .bind(status)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn programs(conn: &mut Connection, merchant_id: &str) -> Result<Vec<Program>> {
    let sql = format!(
        "SELECT {PROGRAM_COLUMNS} FROM loyalty_programs WHERE merchant_id = $1 \
         ORDER BY created_at_ms, id LIMIT 100"
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .fetch_all(conn)
        .await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Coupon {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    /// `fixed` (value in minor units) or `percent` (value in basis points).
    pub kind: String,
    pub value: i64,
    pub min_spend_minor: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub per_user_max: i64,
    pub total_max: Option<i64>,
    pub used_count: i64,
    /// 1 when it may be used with other coupons on one payment.
    pub stackable: i64,
    /// 1 when only users it was granted to may use it.
    pub granted_only: i64,
    pub status: String,
    pub created_at_ms: i64,
}

const COUPON_COLUMNS: &str = "id, merchant_id, name, kind, value, min_spend_minor, \
     valid_from_ms, valid_until_ms, per_user_max, total_max, used_count, stackable, \
     granted_only, status, created_at_ms";

impl Coupon {
    /// What the coupon takes off `amount_minor`: nothing under the minimum
    /// spend, never more than the amount; percentages round down so the
    /// discount never exceeds what was promised.
    pub fn discount_minor(&self, amount_minor: i64) -> i64 {
        if amount_minor < self.min_spend_minor || amount_minor <= 0 {
            return 0;
        }
        let discount = match self.kind.as_str() {
            "fixed" => self.value,
            _ => {
                let product = i128::from(amount_minor) * i128::from(self.value) / 10_000;
                i64::try_from(product).unwrap_or(i64::MAX)
            }
        };
        discount.clamp(0, amount_minor)
    }
}

pub async fn insert_coupon(conn: &mut Connection, c: &Coupon) -> Result<()> {
    sqlx::query(
        "INSERT INTO coupons (id, merchant_id, name, kind, value, min_spend_minor, \
         valid_from_ms, valid_until_ms, per_user_max, total_max, used_count, stackable, \
         granted_only, status, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&c.id)
    .bind(&c.merchant_id)
    .bind(&c.name)
    .bind(&c.kind)
    .bind(c.value)
    .bind(c.min_spend_minor)
    .bind(c.valid_from_ms)
    .bind(c.valid_until_ms)
    .bind(c.per_user_max)
    .bind(c.total_max)
    .bind(c.used_count)
    .bind(c.stackable)
    .bind(c.granted_only)
    .bind(&c.status)
    .bind(c.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("coupon"))?;
    Ok(())
}

pub async fn coupon(conn: &mut Connection, id: &str) -> Result<Option<Coupon>> {
    let sql = format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// Coupons a merchant may have at once: each payment reads the usable ones.
pub const COUPONS_MAX: usize = 100;

/// A merchant's coupons, oldest first.
pub async fn coupons_of(conn: &mut Connection, merchant_id: &str) -> Result<Vec<Coupon>> {
    let sql = format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE merchant_id = $1 \
         ORDER BY created_at_ms, id LIMIT {COUPONS_MAX}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .fetch_all(conn)
        .await?)
}

/// Pauses or resumes a merchant's coupon; false when it has no such one.
pub async fn set_coupon_status(
    conn: &mut Connection,
    merchant_id: &str,
    id: &str,
    status: &str,
) -> Result<bool> {
    let done = sqlx::query("UPDATE coupons SET status = $3 WHERE id = $1 AND merchant_id = $2")
        .bind(id)
        .bind(merchant_id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What a payment plans its discount from: the payer's choice in the
/// app, their points balance at the merchant, and the coupons they could
/// use there (active, within their validity, with uses left overall and
/// for this user, and granted to them if they must be).
#[derive(Debug, Clone)]
pub struct PayerLoyalty {
    pub choice: Option<Choice>,
    pub points_balance: i64,
    /// Ordered by id, at most [`USABLE_MAX`].
    pub usable: Vec<Coupon>,
}

/// Usable coupons read for one payment, at most.
pub const USABLE_MAX: usize = 100;

/// [`payer_loyalty`]'s statement: `$1` the merchant, `$2` the payer, `$3`
/// the time.
fn payer_loyalty_sql() -> String {
    let prefixed = |prefix: &str| {
        COUPON_COLUMNS
            .split(", ")
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (inner, outer) = (prefixed("c"), prefixed("u"));
    // The one-row `o` keeps the choice and the balance in the answer
    // when no coupon is usable.
    format!(
        "SELECT ch.coupon_id AS choice_coupon_id, ch.redeem_points AS choice_redeem_points, \
         ch.updated_at_ms AS choice_updated_at_ms, \
         (SELECT points FROM points_balances WHERE merchant_id = $1 AND user_id = $2) \
         AS points_balance, {outer} \
         FROM (SELECT 1 AS one) AS o \
         LEFT JOIN loyalty_choices ch ON ch.user_id = $2 AND ch.merchant_id = $1 \
         LEFT JOIN (SELECT {inner} FROM coupons c LEFT JOIN coupon_holdings h \
         ON h.coupon_id = c.id AND h.user_id = $2 \
         WHERE c.merchant_id = $1 AND c.status = 'active' \
         AND c.valid_from_ms <= $3 AND $3 < c.valid_until_ms \
         AND (c.total_max IS NULL OR c.used_count < c.total_max) \
         AND ((c.granted_only = 0 AND COALESCE(h.used, 0) < c.per_user_max) \
         OR (c.granted_only = 1 AND COALESCE(h.used, 0) < COALESCE(h.granted, 0))) \
         ORDER BY c.id LIMIT {USABLE_MAX}) AS u ON 1 = 1 \
         ORDER BY u.id"
    )
}

/// [`PayerLoyalty`] at `now_ms`, read in one statement where there were
/// two reads, or three when the payer redeems points: they were round
/// trips on every payment.
pub async fn payer_loyalty(
    conn: &mut Connection,
    merchant_id: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<PayerLoyalty> {
    static SQL: LazyLock<String> = LazyLock::new(payer_loyalty_sql);
    let rows = sqlx::query(SQL.as_str())
        .bind(merchant_id)
        .bind(user_id)
        .bind(now_ms)
        .fetch_all(conn)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("a one-row read answered no row".into()))?;
    let choice = match first.try_get::<Option<i64>, _>("choice_redeem_points")? {
        Some(redeem_points) => Some(Choice {
            user_id: user_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            coupon_id: first.try_get("choice_coupon_id")?,
            redeem_points,
            updated_at_ms: first.try_get("choice_updated_at_ms")?,
        }),
        None => None,
    };
    let points_balance = first
        .try_get::<Option<i64>, _>("points_balance")?
        .unwrap_or(0);
    let mut usable = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>, _>("id")?.is_some() {
            usable.push(Coupon::from_row(row)?);
        }
    }
    assert!(usable.len() <= USABLE_MAX);
    Ok(PayerLoyalty {
        choice,
        points_balance,
        usable,
    })
}

/// Grants `user_id` one more use of a granted-only coupon (a stamp card's
/// reward).
pub async fn grant_coupon(conn: &mut Connection, coupon_id: &str, user_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO coupon_holdings (coupon_id, user_id, granted, used) VALUES ($1, $2, 1, 0) \
         ON CONFLICT (coupon_id, user_id) DO UPDATE SET granted = coupon_holdings.granted + 1",
    )
    .bind(coupon_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes one use of `coupon` at `merchant_id` for a payment, if one is
/// still left overall and for the user at `now_ms` (for a granted-only
/// coupon, the user's grants are their only limit); false when not
/// (another payment took the last one), with no use written. The caller's
/// transaction makes it part of the payment.
///
/// The coupon's count of uses is one row that every payment with the
/// coupon updates, so it is written after the user's holding and the
/// use's record, not before them (on PostgreSQL, payments redeeming a
/// popular coupon queued there for 13.6 ms on average when it came
/// first). The holding, then the count: [`restore_coupons`] takes their
/// locks in the same order, so the two never deadlock.
pub async fn use_coupon(
    conn: &mut Connection,
    merchant_id: &str,
    coupon: &Coupon,
    user_id: &str,
    payment_id: &str,
    discount_minor: i64,
    now_ms: i64,
) -> Result<bool> {
    if discount_minor <= 0 || !take_users_use(conn, coupon, user_id).await? {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO coupon_uses (payment_id, coupon_id, user_id, discount_minor, restored, at_ms) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(payment_id)
    .bind(&coupon.id)
    .bind(user_id)
    .bind(discount_minor)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("coupon use for this payment"))?;
    let overall = sqlx::query(
        "UPDATE coupons SET used_count = used_count + 1 WHERE id = $1 AND merchant_id = $3 \
         AND status = 'active' AND valid_from_ms <= $2 AND $2 < valid_until_ms \
         AND (total_max IS NULL OR used_count < total_max)",
    )
    .bind(&coupon.id)
    .bind(now_ms)
    .bind(merchant_id)
    .execute(&mut *conn)
    .await?;
    if overall.rows_affected() == 1 {
        return Ok(true);
    }
    // None left overall: the user's use and its record are given back.
    sqlx::query("DELETE FROM coupon_uses WHERE payment_id = $1 AND coupon_id = $2")
        .bind(payment_id)
        .bind(&coupon.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE coupon_holdings SET used = used - 1 WHERE coupon_id = $1 AND user_id = $2")
        .bind(&coupon.id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(false)
}

/// One more use of `coupon` by `user_id`, if they have one left: under
/// the coupon's limit per user, or under their grants for a granted-only
/// coupon. One statement for a user who holds the coupon already, two or
/// three for a first use.
async fn take_users_use(conn: &mut Connection, coupon: &Coupon, user_id: &str) -> Result<bool> {
    let held = sqlx::query(
        "UPDATE coupon_holdings SET used = used + 1 WHERE coupon_id = $1 AND user_id = $2 \
         AND (($4 = 0 AND used < $3) OR ($4 = 1 AND used < granted))",
    )
    .bind(&coupon.id)
    .bind(user_id)
    .bind(coupon.per_user_max)
    .bind(coupon.granted_only)
    .execute(&mut *conn)
    .await?;
    if held.rows_affected() == 1 {
        return Ok(true);
    }
    if coupon.granted_only != 0 {
        return Ok(false);
    }
    // A first use. A holding that exists already has no use left, or
    // another payment of the user's wrote it since the update: then the
    // update is tried once more, and finds it.
    let first = sqlx::query(
        "INSERT INTO coupon_holdings (coupon_id, user_id, granted, used) \
         SELECT $1, $2, 0, 1 WHERE $3 > 0 ON CONFLICT (coupon_id, user_id) DO NOTHING",
    )
    .bind(&coupon.id)
    .bind(user_id)
    .bind(coupon.per_user_max)
    .execute(&mut *conn)
    .await?;
    if first.rows_affected() == 1 {
        return Ok(true);
    }
    let again = sqlx::query(
        "UPDATE coupon_holdings SET used = used + 1 WHERE coupon_id = $1 AND user_id = $2 \
         AND used < $3",
    )
    .bind(&coupon.id)
    .bind(user_id)
    .bind(coupon.per_user_max)
    .execute(conn)
    .await?;
    Ok(again.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct CouponUse {
    pub payment_id: String,
    pub coupon_id: String,
    pub user_id: String,
    pub discount_minor: i64,
    pub restored: i64,
    pub at_ms: i64,
}

pub async fn coupon_uses(conn: &mut Connection, payment_id: &str) -> Result<Vec<CouponUse>> {
    Ok(sqlx::query_as(
        "SELECT payment_id, coupon_id, user_id, discount_minor, restored, at_ms FROM coupon_uses \
         WHERE payment_id = $1 ORDER BY coupon_id",
    )
    .bind(payment_id)
    .fetch_all(conn)
    .await?)
}

/// Gives back the coupon uses of a payment refunded in full: the coupon
/// and the user each have that use again. Returns how many were restored.
pub async fn restore_coupons(conn: &mut Connection, payment_id: &str) -> Result<u64> {
    let uses = coupon_uses(conn, payment_id).await?;
    let mut restored = 0;
    for u in uses.iter().filter(|u| u.restored == 0) {
        let marked = sqlx::query(
            "UPDATE coupon_uses SET restored = 1 WHERE payment_id = $1 AND coupon_id = $2 \
             AND restored = 0",
        )
        .bind(payment_id)
        .bind(&u.coupon_id)
        .execute(&mut *conn)
        .await?;
        if marked.rows_affected() != 1 {
            continue;
        }
        // The holding, then the count, as `use_coupon` takes them.
        sqlx::query(
            "UPDATE coupon_holdings SET used = used - 1 WHERE coupon_id = $1 AND user_id = $2",
        )
        .bind(&u.coupon_id)
        .bind(&u.user_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE coupons SET used_count = used_count - 1 WHERE id = $1")
            .bind(&u.coupon_id)
            .execute(&mut *conn)
            .await?;
        restored += 1;
    }
    Ok(restored)
}

/// Adds a payment's stamp to the user's card of a stamps program; returns
/// the stamps now on it. `rewarded` says later whether this stamp
/// completed the card ([`mark_rewarded`]).
pub async fn add_stamp(
    conn: &mut Connection,
    program_id: &str,
    user_id: &str,
    payment_id: &str,
) -> Result<i64> {
    const STAMP: &str = "INSERT INTO payment_stamps (payment_id, program_id, rewarded, taken_back) \
         VALUES ($1, $2, 0, 0)";
    // `$1` of a statement alone, `$2` after the stamp in one statement.
    let card = |first: usize| {
        format!(
            "INSERT INTO stamp_cards (program_id, user_id, stamps) VALUES (${first}, ${}, 1) \
             ON CONFLICT (program_id, user_id) DO UPDATE SET stamps = stamp_cards.stamps + 1 \
             RETURNING stamps",
            first + 1
        )
    };
    let duplicate = |e: sqlx::Error| StoreError::from(e).duplicate_as("stamp for this payment");
    if crate::on_postgres(conn) {
        // One round trip: the stamp as a data-modifying `WITH` part.
        let sql = format!("WITH stamp AS ({STAMP}) {}", card(2));
        let (stamps,): (i64,) = sqlx::query_as(&sql)
            .bind(payment_id)
            .bind(program_id)
            .bind(user_id)
            .fetch_one(conn)
            .await
            .map_err(duplicate)?;
        return Ok(stamps);
    }
    sqlx::query(STAMP)
        .bind(payment_id)
        .bind(program_id)
        .execute(&mut *conn)
        .await
        .map_err(duplicate)?;
    let (stamps,): (i64,) = sqlx::query_as(&card(1))
        .bind(program_id)
        .bind(user_id)
        .fetch_one(conn)
        .await?;
    Ok(stamps)
}

/// Records that a payment's stamp completed the card and granted its
/// reward.
pub async fn mark_rewarded(
    conn: &mut Connection,
    payment_id: &str,
    program_id: &str,
) -> Result<()> {
    sqlx::query("UPDATE payment_stamps SET rewarded = 1 WHERE payment_id = $1 AND program_id = $2")
        .bind(payment_id)
        .bind(program_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes back the stamps a fully refunded payment gave, and the reward
/// each completed if its holder has not used it; returns the stamps taken.
pub async fn take_back_stamps(
    conn: &mut Connection,
    payment_id: &str,
    user_id: &str,
) -> Result<i64> {
    let given: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT s.program_id, s.rewarded, p.reward_coupon_id FROM payment_stamps s \
         JOIN loyalty_programs p ON p.id = s.program_id \
         WHERE s.payment_id = $1 AND s.taken_back = 0",
    )
    .bind(payment_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut taken = 0;
    for (program_id, rewarded, reward) in given {
        sqlx::query(
            "UPDATE payment_stamps SET taken_back = 1 WHERE payment_id = $1 AND program_id = $2",
        )
        .bind(payment_id)
        .bind(&program_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE stamp_cards SET stamps = stamps - 1 WHERE program_id = $1 AND user_id = $2 \
             AND stamps > 0",
        )
        .bind(&program_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
        if let (1, Some(coupon_id)) = (rewarded, reward) {
            sqlx::query(
                "UPDATE coupon_holdings SET granted = granted - 1 WHERE coupon_id = $1 \
                 AND user_id = $2 AND granted > used",
            )
            .bind(&coupon_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        }
        taken += 1;
    }
    Ok(taken)
}

/// Why points move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsKind {
    /// Credited for a payment.
    Earn,
    /// Spent as part of a payment.
    Redeem,
    /// Taken back by a refund.
    Clawback,
    /// Given back by a refund of a payment they paid for.
    Restore,
}

impl PointsKind {
    fn as_str(self) -> &'static str {
        match self {
            PointsKind::Earn => "earn",
            PointsKind::Redeem => "redeem",
            PointsKind::Clawback => "clawback",
            PointsKind::Restore => "restore",
        }
    }

    /// The sign of the move for the user.
    fn user_sign(self) -> i64 {
        match self {
            PointsKind::Earn | PointsKind::Restore => 1,
            PointsKind::Redeem | PointsKind::Clawback => -1,
        }
    }
}

/// One move of points between a merchant and a user.
#[derive(Debug, Clone, Copy)]
pub struct PointsMove<'a> {
    /// Unique per move: derived from the payment (or refund) and the kind,
    /// so a move posted twice is refused by the primary key.
    pub transfer_id: &'a str,
    pub merchant_id: &'a str,
    pub user_id: &'a str,
    pub payment_id: Option<&'a str>,
    pub kind: PointsKind,
    pub points: i64,
    pub now_ms: i64,
}

fn liability_account(merchant_id: &str) -> String {
    format!("points:{merchant_id}:liability")
}

fn user_account(merchant_id: &str, user_id: &str) -> String {
    format!("points:{merchant_id}:user:{user_id}")
}

/// Posts a move and returns the user's balance after it; `None` (and
/// nothing written) when it would take the balance below zero. Call it in
/// the transaction of the payment or refund it belongs to: a move posted
/// twice is an error after the balance moved, and only the rollback undoes
/// that.
pub async fn post_points(conn: &mut Connection, m: PointsMove<'_>) -> Result<Option<i64>> {
    if m.points <= 0 {
        return Err(StoreError::Refused(format!(
            "a points move of {}",
            m.points
        )));
    }
    let delta = m.kind.user_sign() * m.points;
    // Points in open the balance if need be; points out need one holding
    // enough. One statement either way, which answers the new balance (the
    // payment's receipt shows it).
    let balance_sql = if delta > 0 {
        "INSERT INTO points_balances (merchant_id, user_id, points) VALUES ($1, $2, $3) \
         ON CONFLICT (merchant_id, user_id) \
         DO UPDATE SET points = points_balances.points + excluded.points RETURNING points"
    } else {
        "UPDATE points_balances SET points = points + $3 WHERE merchant_id = $1 \
         AND user_id = $2 AND points + $3 >= 0 RETURNING points"
    };
    if crate::on_postgres(conn) {
        return post_points_at_once(conn, &m, balance_sql, delta).await;
    }
    let balance: Option<i64> = sqlx::query_scalar(balance_sql)
        .bind(m.merchant_id)
        .bind(m.user_id)
        .bind(delta)
        .fetch_optional(&mut *conn)
        .await?;
    if balance.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO points_transfers (id, merchant_id, user_id, payment_id, kind, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(m.transfer_id)
    .bind(m.merchant_id)
    .bind(m.user_id)
    .bind(m.payment_id)
    .bind(m.kind.as_str())
    .bind(m.now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("points transfer"))?;
    sqlx::query(
        "INSERT INTO points_entries (transfer_id, account_id, points) \
         VALUES ($1, $2, $3), ($1, $4, $5)",
    )
    .bind(m.transfer_id)
    .bind(user_account(m.merchant_id, m.user_id))
    .bind(delta)
    .bind(liability_account(m.merchant_id))
    .bind(-delta)
    .execute(&mut *conn)
    .await?;
    Ok(balance)
}

/// [`post_points`] in one statement, for PostgreSQL (one round trip
/// instead of three): the transfer and its entries are written only when
/// the balance's statement returns a row.
async fn post_points_at_once(
    conn: &mut Connection,
    m: &PointsMove<'_>,
    balance_sql: &str,
    delta: i64,
) -> Result<Option<i64>> {
    let sql = format!(
        "WITH balance AS ({balance_sql}), \
         transfer AS (INSERT INTO points_transfers \
         (id, merchant_id, user_id, payment_id, kind, created_at_ms) \
         SELECT $4, $1, $2, CAST($5 AS TEXT), $6, $7 FROM balance), \
         entries AS (INSERT INTO points_entries (transfer_id, account_id, points) \
         SELECT $4, e.account_id, e.points FROM balance, \
         (VALUES (CAST($8 AS TEXT), CAST($3 AS BIGINT)), (CAST($9 AS TEXT), -CAST($3 AS BIGINT))) \
         AS e (account_id, points)) \
         SELECT points FROM balance"
    );
    sqlx::query_scalar(&sql)
        .bind(m.merchant_id)
        .bind(m.user_id)
        .bind(delta)
        .bind(m.transfer_id)
        .bind(m.payment_id)
        .bind(m.kind.as_str())
        .bind(m.now_ms)
        .bind(user_account(m.merchant_id, m.user_id))
        .bind(liability_account(m.merchant_id))
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).duplicate_as("points transfer"))
}

/// Who redeemed points for a payment, if anyone did.
pub async fn redeemer(conn: &mut Connection, payment_id: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM points_transfers WHERE payment_id = $1 AND kind = 'redeem'",
    )
    .bind(payment_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(u,)| u))
}

pub async fn points_balance(
    conn: &mut Connection,
    merchant_id: &str,
    user_id: &str,
) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT points FROM points_balances WHERE merchant_id = $1 AND user_id = $2",
    )
    .bind(merchant_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(0, |(p,)| p))
}

/// Points a payment moved, by kind, for the user: earned, redeemed,
/// clawed back, restored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PaymentPoints {
    pub earned: i64,
    pub redeemed: i64,
    pub clawed_back: i64,
    pub restored: i64,
}

pub async fn payment_points(conn: &mut Connection, payment_id: &str) -> Result<PaymentPoints> {
    moved(conn, Over::Payment, payment_id).await
}

/// Which transfers [`moved`] adds up.
#[derive(Clone, Copy)]
enum Over {
    Payment,
    Merchant,
}

/// The points moved for users by the transfers of one payment or one
/// merchant, by kind. Each transfer's user entry gives its size, so no
/// two legs are halved.
async fn moved(conn: &mut Connection, over: Over, id: &str) -> Result<PaymentPoints> {
    let column = match over {
        Over::Payment => "payment_id",
        Over::Merchant => "merchant_id",
    };
    let sql = format!(
        "SELECT t.kind, CAST(SUM(ABS(e.points)) AS BIGINT) FROM points_transfers t \
         JOIN points_entries e ON e.transfer_id = t.id \
         AND e.account_id = 'points:' || t.merchant_id || ':user:' || t.user_id \
         WHERE t.{column} = $1 GROUP BY t.kind"
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql).bind(id).fetch_all(conn).await?;
    let mut p = PaymentPoints::default();
    for (kind, points) in rows {
        match kind.as_str() {
            "earn" => p.earned = points,
            "redeem" => p.redeemed = points,
            "clawback" => p.clawed_back = points,
            "restore" => p.restored = points,
            other => return Err(StoreError::Corrupt(format!("points transfer kind {other}"))),
        }
    }
    Ok(p)
}

/// A merchant's points: issued, redeemed and outstanding (their liability).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PointsReport {
    pub issued: i64,
    pub redeemed: i64,
    pub clawed_back: i64,
    pub restored: i64,
    pub outstanding: i64,
}

pub async fn points_report(conn: &mut Connection, merchant_id: &str) -> Result<PointsReport> {
    let m = moved(conn, Over::Merchant, merchant_id).await?;
    let mut r = PointsReport {
        issued: m.earned,
        redeemed: m.redeemed,
        clawed_back: m.clawed_back,
        restored: m.restored,
        outstanding: 0,
    };
    let (liability,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM points_entries WHERE account_id = $1",
    )
    .bind(liability_account(merchant_id))
    .fetch_one(conn)
    .await?;
    r.outstanding = -liability;
    Ok(r)
}

/// What the points ledger's verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PointsVerification {
    pub transfers: i64,
    pub balances: i64,
    pub problems: Vec<String>,
    pub problem_count: i64,
}

impl PointsVerification {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(text);
        }
    }

    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
}

/// A payment whose discount does not add up, as `verify` finds it.
#[derive(FromRow)]
struct DiscountRow {
    id: String,
    state: String,
    amount_minor: i64,
    authorised_minor: i64,
    coupons: i64,
    unrestored: i64,
    redeemed: i64,
    restored: i64,
}

/// Proves the points ledger: every transfer has two entries that sum to
/// zero, within one merchant's unit; every user's balance row equals the
/// sum of their entries and is not negative; every merchant's liability
/// equals minus the sum of their users' balances; no payment has more
/// points clawed back than it earned, or restored than it redeemed; and
/// each payment's coupons and points account for what its card was not
/// charged, and were given back when it ended without a capture or was
/// refunded in full.
pub async fn verify(conn: &mut Connection) -> Result<PointsVerification> {
    let mut v = PointsVerification::default();
    let (transfers,): (i64,) =
        sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM points_transfers")
            .fetch_one(&mut *conn)
            .await?;
    v.transfers = transfers;
    let unbalanced: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT t.id, CAST(COALESCE(SUM(e.points), 0) AS BIGINT), CAST(COUNT(e.id) AS BIGINT) \
         FROM points_transfers t LEFT JOIN points_entries e ON e.transfer_id = t.id \
         GROUP BY t.id HAVING COALESCE(SUM(e.points), 0) <> 0 OR COUNT(e.id) <> 2 LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, sum, legs) in unbalanced {
        v.problem(format!("points transfer {id}: sum {sum}, {legs} entries"));
    }
    let foreign: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.id, e.account_id FROM points_transfers t JOIN points_entries e \
         ON e.transfer_id = t.id WHERE e.account_id <> 'points:' || t.merchant_id || ':liability' \
         AND e.account_id <> 'points:' || t.merchant_id || ':user:' || t.user_id LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, account) in foreign {
        v.problem(format!(
            "points transfer {id}: entry on {account}, outside its merchant and user"
        ));
    }
    let (balances,): (i64,) =
        sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM points_balances")
            .fetch_one(&mut *conn)
            .await?;
    v.balances = balances;
    let wrong: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT merchant_id, user_id, points, summed FROM (SELECT b.merchant_id, b.user_id, \
         b.points, CAST(COALESCE((SELECT SUM(e.points) FROM points_entries e \
         WHERE e.account_id = 'points:' || b.merchant_id || ':user:' || b.user_id), 0) \
         AS BIGINT) AS summed FROM points_balances b) AS checked \
         WHERE points <> summed OR points < 0 LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (merchant, user, kept, summed) in &wrong {
        v.problem(format!(
            "points of {user} at {merchant}: balance {kept}, entries say {summed}"
        ));
    }
    let liabilities: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT b.merchant_id, CAST(SUM(b.points) AS BIGINT), CAST(COALESCE(( \
         SELECT SUM(e.points) FROM points_entries e \
         WHERE e.account_id = 'points:' || b.merchant_id || ':liability'), 0) AS BIGINT) \
         FROM points_balances b GROUP BY b.merchant_id LIMIT 10000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (merchant, held, liability) in liabilities {
        if held != -liability {
            v.problem(format!(
                "points at {merchant}: users hold {held}, the liability is {}",
                -liability
            ));
        }
    }
    let payments: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT t.payment_id, \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'earn' THEN e.points ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'clawback' THEN -e.points ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'redeem' THEN -e.points ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'restore' THEN e.points ELSE 0 END), 0) AS BIGINT) \
         FROM points_transfers t JOIN points_entries e ON e.transfer_id = t.id \
         AND e.account_id = 'points:' || t.merchant_id || ':user:' || t.user_id \
         WHERE t.payment_id IS NOT NULL GROUP BY t.payment_id \
         HAVING SUM(CASE WHEN t.kind = 'clawback' THEN -e.points ELSE 0 END) > \
         SUM(CASE WHEN t.kind = 'earn' THEN e.points ELSE 0 END) \
         OR SUM(CASE WHEN t.kind = 'restore' THEN e.points ELSE 0 END) > \
         SUM(CASE WHEN t.kind = 'redeem' THEN -e.points ELSE 0 END) LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (payment, earned, clawed, redeemed, restored) in payments {
        v.problem(format!(
            "payment {payment}: {clawed} of {earned} points clawed back, {restored} of \
             {redeemed} restored"
        ));
    }
    // A payment's coupons and points took off its amount what its card
    // was not asked for; a payment that ended without a capture, or was
    // refunded in full, gave them all back.
    let discounts: Vec<DiscountRow> = sqlx::query_as(
        "SELECT id, state, amount_minor, authorised_minor, coupons, unrestored, redeemed, \
         restored FROM (SELECT p.id, p.state, p.amount_minor, p.authorised_minor, \
         CAST(COALESCE((SELECT SUM(u.discount_minor) FROM coupon_uses u \
         WHERE u.payment_id = p.id), 0) AS BIGINT) AS coupons, \
         CAST((SELECT COUNT(*) FROM coupon_uses u WHERE u.payment_id = p.id \
         AND u.restored = 0) AS BIGINT) AS unrestored, \
         CAST(COALESCE((SELECT SUM(-e.points) FROM points_transfers t JOIN points_entries e \
         ON e.transfer_id = t.id AND e.account_id = 'points:' || t.merchant_id || ':user:' \
         || t.user_id WHERE t.payment_id = p.id AND t.kind = 'redeem'), 0) AS BIGINT) \
         AS redeemed, \
         CAST(COALESCE((SELECT SUM(e.points) FROM points_transfers t JOIN points_entries e \
         ON e.transfer_id = t.id AND e.account_id = 'points:' || t.merchant_id || ':user:' \
         || t.user_id WHERE t.payment_id = p.id AND t.kind = 'restore'), 0) AS BIGINT) \
         AS restored \
         FROM payments p WHERE p.id IN (SELECT payment_id FROM coupon_uses) \
         OR p.id IN (SELECT payment_id FROM points_transfers WHERE kind = 'redeem')) AS d \
         WHERE (state IN ('authorised', 'captured', 'partially_refunded', 'refunded', \
         'voided') AND authorised_minor + coupons + redeemed <> amount_minor) \
         OR (state IN ('voided', 'declined', 'failed', 'refunded') \
         AND (unrestored <> 0 OR restored <> redeemed)) LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for d in discounts {
        v.problem(format!(
            "payment {} ({}): {} less coupons {} and points {} is not the {} authorised, \
             or {} coupon uses and {} points were not given back",
            d.id,
            d.state,
            d.amount_minor,
            d.coupons,
            d.redeemed,
            d.authorised_minor,
            d.unrestored,
            d.redeemed - d.restored
        ));
    }
    Ok(v)
}

/// Active programs of a merchant, both kinds, in one read: every capture
/// asks.
pub async fn active_programs(conn: &mut Connection, merchant_id: &str) -> Result<Vec<Program>> {
    let sql = format!(
        "SELECT {PROGRAM_COLUMNS} FROM loyalty_programs WHERE merchant_id = $1 \
         AND status = 'active' ORDER BY id LIMIT 20"
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .fetch_all(conn)
        .await?)
}

/// What a user chose in the app for their payments at one merchant: a
/// coupon to use first (when it applies), and whether their points there
/// pay part of each payment.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct Choice {
    pub user_id: String,
    pub merchant_id: String,
    pub coupon_id: Option<String>,
    /// 1 when the user's points pay what they can of each payment.
    pub redeem_points: i64,
    pub updated_at_ms: i64,
}

pub async fn set_choice(conn: &mut Connection, c: &Choice) -> Result<()> {
    if !matches!(c.redeem_points, 0 | 1) {
        return Err(StoreError::Refused(format!(
            "redeem_points {}",
            c.redeem_points
        )));
    }
    sqlx::query(
        "INSERT INTO loyalty_choices (user_id, merchant_id, coupon_id, redeem_points, \
         updated_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, merchant_id) \
         DO UPDATE SET coupon_id = $3, redeem_points = $4, updated_at_ms = $5",
    )
    .bind(&c.user_id)
    .bind(&c.merchant_id)
    .bind(&c.coupon_id)
    .bind(c.redeem_points)
    .bind(c.updated_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn user_choices(conn: &mut Connection, user_id: &str) -> Result<Vec<Choice>> {
    Ok(sqlx::query_as(
        "SELECT user_id, merchant_id, coupon_id, redeem_points, updated_at_ms \
         FROM loyalty_choices WHERE user_id = $1 ORDER BY merchant_id LIMIT $2",
    )
    .bind(user_id)
    .bind(WALLET_MAX)
    .fetch_all(conn)
    .await?)
}

/// A user's points at one merchant.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PointsHeld {
    pub merchant_id: String,
    pub merchant: String,
    pub points: i64,
}

/// What a user holds at every merchant: points, stamps and granted coupons
/// with uses left. Bounded: a user's wallet page shows at most this many
/// of each.
pub const WALLET_MAX: i64 = 100;

pub async fn user_points(conn: &mut Connection, user_id: &str) -> Result<Vec<PointsHeld>> {
    Ok(sqlx::query_as(
        "SELECT b.merchant_id, m.name AS merchant, b.points FROM points_balances b \
         JOIN merchants m ON m.id = b.merchant_id WHERE b.user_id = $1 AND b.points > 0 \
         ORDER BY m.name LIMIT $2",
    )
    .bind(user_id)
    .bind(WALLET_MAX)
    .fetch_all(conn)
    .await?)
}

/// A stamp card as its holder sees it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StampsHeld {
    pub program_id: String,
    pub merchant_id: String,
    pub stamps: i64,
    /// A reward every this many stamps.
    pub stamps_per_reward: i64,
}

pub async fn user_stamps(conn: &mut Connection, user_id: &str) -> Result<Vec<StampsHeld>> {
    Ok(sqlx::query_as(
        "SELECT s.program_id, p.merchant_id, s.stamps, p.stamps_per_reward FROM stamp_cards s \
         JOIN loyalty_programs p ON p.id = s.program_id WHERE s.user_id = $1 \
         ORDER BY p.merchant_id LIMIT $2",
    )
    .bind(user_id)
    .bind(WALLET_MAX)
    .fetch_all(conn)
    .await?)
}

/// A coupon granted to a user, with the uses they have left.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct CouponHeld {
    pub coupon_id: String,
    pub merchant_id: String,
    pub name: String,
    pub kind: String,
    pub value: i64,
    pub valid_until_ms: i64,
    pub uses_left: i64,
}

pub async fn user_coupons(
    conn: &mut Connection,
    user_id: &str,
    now_ms: i64,
) -> Result<Vec<CouponHeld>> {
    Ok(sqlx::query_as(
        "SELECT c.id AS coupon_id, c.merchant_id, c.name, c.kind, c.value, c.valid_until_ms, \
         h.granted - h.used AS uses_left FROM coupon_holdings h \
         JOIN coupons c ON c.id = h.coupon_id WHERE h.user_id = $1 AND h.granted > h.used \
         AND c.granted_only = 1 AND c.status = 'active' AND c.valid_from_ms <= $2 \
         AND c.valid_until_ms > $2 ORDER BY c.valid_until_ms LIMIT $3",
    )
    .bind(user_id)
    .bind(now_ms)
    .bind(WALLET_MAX)
    .fetch_all(conn)
    .await?)
}

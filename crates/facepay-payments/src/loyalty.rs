//! Loyalty after a payment: points and stamps earned with the capture, in
//! the capture's own transaction, and points taken back in proportion by
//! refunds, in theirs. The merchant's programs and coupons are kept by the
//! store (`facepay_store::loyalty`), with the merchant API here.

use facepay_store::loyalty::{self, Coupon, PointsKind, PointsMove, Program};
use facepay_store::now_ms;
use facepay_store::parties::Merchant;
use facepay_store::payments::Payment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::pay::commit;
use crate::{Failure, Payments, Reply, derived_id, parse_json};

/// Longest coupon name: it is printed on receipts.
const NAME_LEN_MAX: usize = 100;
/// Programs a merchant may have, paused ones included: each payment reads
/// the active ones.
const PROGRAMS_MAX: usize = 20;
/// A claw back racing another refund's retries this often at most.
const CLAW_BACK_TRIES: usize = 3;

/// What a capture earned, for the receipt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Earned {
    pub points_earned: i64,
    /// The payer's points at this merchant after this payment.
    pub points_balance: i64,
    /// Stamps on the payer's card, if the merchant has a stamp card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamps: Option<i64>,
    /// Coupons this visit earned (a full stamp card), by name.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rewards: Vec<String>,
}

/// Points for `amount_minor` under a program: its basis points, rounded
/// down, at most its cap.
fn points_for(program: &Program, amount_minor: i64) -> i64 {
    let bps = program.points_bps.unwrap_or(0);
    let points = i128::from(amount_minor) * i128::from(bps) / 10_000;
    let points = i64::try_from(points).unwrap_or(i64::MAX);
    program.points_cap.map_or(points, |cap| points.min(cap))
}

/// Credits the points and stamps a captured payment earns, in the
/// capture's transaction.
pub(crate) async fn earn(
    tx: &mut facepay_store::Connection,
    payment: &Payment,
    now: i64,
) -> Result<Option<Earned>, Failure> {
    let Some(user_id) = payment.user_id.as_deref() else {
        return Ok(None);
    };
    let merchant_id = &payment.merchant_id;
    let programs = loyalty::active_programs(tx, merchant_id).await?;
    if programs.is_empty() {
        return Ok(None);
    }
    let (points_programs, stamp_programs): (Vec<&Program>, Vec<&Program>) =
        programs.iter().partition(|p| p.kind == "points");
    let mut earned = Earned::default();
    for program in &points_programs {
        let points = points_for(program, payment.captured_minor);
        if points == 0 {
            continue;
        }
        let transfer_id = format!("{}:earn:{}", payment.id, program.id);
        let moved = loyalty::post_points(
            tx,
            PointsMove {
                transfer_id: &transfer_id,
                merchant_id,
                user_id,
                payment_id: Some(&payment.id),
                kind: PointsKind::Earn,
                points,
                now_ms: now,
            },
        )
        .await?;
        if !moved {
            tracing::error!(payment = %payment.id, "points not earned: a credit was refused");
            return Err(Failure::internal());
        }
        earned.points_earned += points;
    }
    for program in &stamp_programs {
        let stamps = loyalty::add_stamp(tx, &program.id, user_id, &payment.id).await?;
        let every = program.stamps_per_reward.unwrap_or(i64::MAX).max(1);
        // The stamps on the card now: a full card starts again.
        let on_card = match stamps % every {
            0 => every,
            n => n,
        };
        earned.stamps = Some(earned.stamps.unwrap_or(0).max(on_card));
        let Some(reward_id) = program.reward_coupon_id.as_deref() else {
            continue;
        };
        let reward = loyalty::coupon(tx, reward_id).await?;
        let usable = reward.as_ref().is_some_and(|c| {
            c.status == "active" && c.valid_from_ms <= now && now < c.valid_until_ms
        });
        if stamps % every == 0 && usable {
            loyalty::grant_coupon(tx, reward_id, user_id).await?;
            loyalty::mark_rewarded(tx, &payment.id, &program.id).await?;
            earned.rewards.extend(reward.map(|c| c.name));
        }
    }
    earned.points_balance = loyalty::points_balance(tx, merchant_id, user_id).await?;
    Ok(Some(earned))
}

/// Takes back the points a payment earned in the proportion it is now
/// refunded, in the refund's transaction, and on a full refund its stamps
/// (with the reward they completed, if unused). Points already spent
/// cannot be taken back: the payer's balance is taken down to zero at most.
pub(crate) async fn claw_back(
    tx: &mut facepay_store::Connection,
    after: &Payment,
    refund_id: &str,
    now: i64,
) -> Result<i64, Failure> {
    let Some(user_id) = after.user_id.as_deref() else {
        return Ok(0);
    };
    if after.captured_minor <= 0 {
        return Ok(0);
    }
    if after.refunded_minor >= after.captured_minor {
        loyalty::take_back_stamps(tx, &after.id, user_id).await?;
    }
    let moved = loyalty::payment_points(tx, &after.id).await?;
    if moved.earned == 0 {
        return Ok(0);
    }
    let due = i128::from(moved.earned) * i128::from(after.refunded_minor)
        / i128::from(after.captured_minor);
    let due = i64::try_from(due).unwrap_or(i64::MAX) - moved.clawed_back;
    let transfer_id = format!("{refund_id}:clawback");
    // Another refund of this payer's may spend the balance between the
    // read and the move: read again and take what is there.
    for _ in 0..CLAW_BACK_TRIES {
        let balance = loyalty::points_balance(tx, &after.merchant_id, user_id).await?;
        let points = due.min(balance);
        if points <= 0 {
            return Ok(0);
        }
        let taken = loyalty::post_points(
            tx,
            PointsMove {
                transfer_id: &transfer_id,
                merchant_id: &after.merchant_id,
                user_id,
                payment_id: Some(&after.id),
                kind: PointsKind::Clawback,
                points,
                now_ms: now,
            },
        )
        .await?;
        if taken {
            return Ok(points);
        }
    }
    tracing::warn!(payment = %after.id, "points not taken back: the balance kept moving");
    Ok(0)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramRequest {
    /// `points` or `stamps`.
    pub kind: String,
    /// Points: basis points of the amount paid (100 = 1%).
    pub points_bps: Option<i64>,
    /// Points: at most this many a payment.
    pub points_cap: Option<i64>,
    /// Stamps: every this many visits earns the reward.
    pub stamps_per_reward: Option<i64>,
    /// Stamps: the coupon granted as the reward (one of this merchant's).
    pub reward_coupon_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    pub name: String,
    /// `fixed` (value in minor units) or `percent` (value in basis points).
    pub kind: String,
    pub value: i64,
    #[serde(default)]
    pub min_spend_minor: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// Uses per user; 1 if absent.
    #[serde(default)]
    pub per_user_max: Option<i64>,
    /// Uses in all; unlimited if absent.
    #[serde(default)]
    pub total_max: Option<i64>,
    /// May be used with other coupons on one payment.
    #[serde(default)]
    pub stackable: bool,
    /// Only for users it is granted to (a stamp card's reward).
    #[serde(default)]
    pub granted_only: bool,
}

/// A merchant's programs, coupons and points.
#[derive(Serialize, ToSchema)]
pub struct LoyaltyView {
    #[schema(value_type = Vec<Object>)]
    pub programs: Vec<Program>,
    #[schema(value_type = Vec<Object>)]
    pub coupons: Vec<Coupon>,
    /// Points issued, redeemed and outstanding (the merchant's liability).
    #[schema(value_type = Object)]
    pub points: loyalty::PointsReport,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::unprocessable("loyalty_invalid", message)
}

fn merchant_scope(m: &Merchant) -> String {
    format!("merchant:{}", m.id)
}

impl Payments {
    /// `GET /v1/merchant/loyalty`.
    pub async fn loyalty(&self, m: &Merchant) -> Result<Reply, Failure> {
        let mut conn = self.conn().await?;
        let view = LoyaltyView {
            programs: loyalty::programs(&mut conn, &m.id).await?,
            coupons: loyalty::coupons_of(&mut conn, &m.id).await?,
            points: loyalty::points_report(&mut conn, &m.id).await?,
        };
        Reply::json(200, &view)
    }

    /// `POST /v1/merchant/loyalty/programs`.
    pub async fn create_program(
        &self,
        m: &Merchant,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let r: ProgramRequest = parse_json(body)?;
        let scope = merchant_scope(m);
        let id = derived_id("lp", &scope, key);
        let program = match r.kind.as_str() {
            "points" => {
                let bps = r.points_bps.unwrap_or(0);
                if !(1..=10_000).contains(&bps) || r.points_cap.is_some_and(|c| c <= 0) {
                    return Err(invalid("points_bps is 1 to 10000, points_cap positive"));
                }
                Program {
                    id,
                    merchant_id: m.id.clone(),
                    kind: r.kind,
                    status: "active".into(),
                    points_bps: Some(bps),
                    points_cap: r.points_cap,
                    stamps_per_reward: None,
                    reward_coupon_id: None,
                    created_at_ms: now_ms(),
                }
            }
            "stamps" => {
                let every = r.stamps_per_reward.unwrap_or(0);
                if !(2..=100).contains(&every) {
                    return Err(invalid("stamps_per_reward is 2 to 100"));
                }
                let reward = r
                    .reward_coupon_id
                    .ok_or_else(|| invalid("a stamp card needs reward_coupon_id"))?;
                let mut conn = self.conn().await?;
                let owned = loyalty::coupon(&mut conn, &reward)
                    .await?
                    .is_some_and(|c| c.merchant_id == m.id && c.granted_only == 1);
                if !owned {
                    return Err(invalid(
                        "reward_coupon_id must be one of this merchant's granted-only coupons",
                    ));
                }
                Program {
                    id,
                    merchant_id: m.id.clone(),
                    kind: r.kind,
                    status: "active".into(),
                    points_bps: None,
                    points_cap: None,
                    stamps_per_reward: Some(every),
                    reward_coupon_id: Some(reward),
                    created_at_ms: now_ms(),
                }
            }
            _ => return Err(invalid("kind is points or stamps")),
        };
        self.idempotent(scope, key, body, |claimed| async move {
            let mut tx = self.store.begin().await?;
            if loyalty::programs(&mut tx, &m.id).await?.len() >= PROGRAMS_MAX {
                return Err(invalid(format!("at most {PROGRAMS_MAX} programs")));
            }
            loyalty::insert_program(&mut tx, &program).await?;
            let reply = Reply::json(201, &program)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            Ok(reply)
        })
        .await
    }

    /// `POST /v1/merchant/loyalty/coupons`.
    pub async fn create_coupon(
        &self,
        m: &Merchant,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let r: CouponRequest = parse_json(body)?;
        let name = r.name.trim();
        if name.is_empty() || name.len() > NAME_LEN_MAX {
            return Err(invalid(format!("name is 1 to {NAME_LEN_MAX} bytes")));
        }
        let value_ok = match r.kind.as_str() {
            "fixed" => r.value > 0,
            "percent" => (1..=10_000).contains(&r.value),
            _ => return Err(invalid("kind is fixed or percent")),
        };
        if !value_ok
            || r.min_spend_minor < 0
            || r.valid_from_ms >= r.valid_until_ms
            || r.per_user_max.is_some_and(|n| n <= 0)
            || r.total_max.is_some_and(|n| n <= 0)
        {
            return Err(invalid(
                "value positive (percent: at most 10000 basis points), min_spend_minor not \
                 negative, valid_from_ms before valid_until_ms, limits positive",
            ));
        }
        let scope = merchant_scope(m);
        let coupon = Coupon {
            id: derived_id("cpn", &scope, key),
            merchant_id: m.id.clone(),
            name: name.to_owned(),
            kind: r.kind,
            value: r.value,
            min_spend_minor: r.min_spend_minor,
            valid_from_ms: r.valid_from_ms,
            valid_until_ms: r.valid_until_ms,
            per_user_max: r.per_user_max.unwrap_or(1),
            total_max: r.total_max,
            used_count: 0,
            stackable: i64::from(r.stackable),
            granted_only: i64::from(r.granted_only),
            status: "active".into(),
            created_at_ms: now_ms(),
        };
        self.idempotent(scope, key, body, |claimed| async move {
            let mut tx = self.store.begin().await?;
            if loyalty::coupons_of(&mut tx, &m.id).await?.len() >= loyalty::COUPONS_MAX {
                return Err(invalid(format!("at most {} coupons", loyalty::COUPONS_MAX)));
            }
            loyalty::insert_coupon(&mut tx, &coupon).await?;
            let reply = Reply::json(201, &coupon)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            Ok(reply)
        })
        .await
    }

    /// `POST /v1/merchant/loyalty/{programs|coupons}/{id}/{pause|resume}`.
    pub async fn set_loyalty_status(
        &self,
        m: &Merchant,
        what: &str,
        id: &str,
        action: &str,
    ) -> Result<Reply, Failure> {
        let status = match action {
            "pause" => "paused",
            "resume" => "active",
            _ => return Err(Failure::not_found("action")),
        };
        let mut conn = self.conn().await?;
        let found = match what {
            "programs" => loyalty::set_program_status(&mut conn, &m.id, id, status).await?,
            "coupons" => loyalty::set_coupon_status(&mut conn, &m.id, id, status).await?,
            _ => return Err(Failure::not_found("loyalty item")),
        };
        if !found {
            return Err(Failure::not_found("loyalty item"));
        }
        Reply::json(200, &serde_json::json!({ "id": id, "status": status }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_down_and_stop_at_the_cap() {
        let program = Program {
            id: "lp".into(),
            merchant_id: "m".into(),
            kind: "points".into(),
            status: "active".into(),
            points_bps: Some(150),
            points_cap: Some(100),
            stamps_per_reward: None,
            reward_coupon_id: None,
            created_at_ms: 0,
        };
        assert_eq!(points_for(&program, 4_500), 67, "1.5% of 4,500 is 67.5");
        assert_eq!(points_for(&program, 1_000_000), 100, "capped");
        assert_eq!(points_for(&program, 50), 0);
    }
}

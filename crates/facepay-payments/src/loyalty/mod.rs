//! Loyalty: the merchant's programs and coupons (points earned at a rate,
//! stamp cards that grant a coupon), and each user's choice of how they pay
//! at a merchant. What loyalty does with a payment is in [`payment`]: the
//! pay path and the merchant's operations call it there.

mod payment;

use std::sync::Arc;

use facepay_store::loyalty::{self, Choice, Coupon, Program};
use facepay_store::parties::Merchant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::{Core, Reply, commit, derived_id, parse_json};
use crate::error::Failure;
use crate::identity::Identity;

pub use crate::api::LoyaltyReceipt;
pub(crate) use payment::{Discount, earn, give_back, reserve_discount, undo_discount};

/// Longest coupon name: it is printed on receipts.
const NAME_LEN_MAX: usize = 100;
/// Programs a merchant may have, paused ones included: each payment reads
/// the active ones.
const PROGRAMS_MAX: usize = 20;

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

/// What the app sends to choose how the user pays at a merchant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceRequest {
    /// A coupon of this merchant's to use first when it applies; none to
    /// let the best apply.
    #[serde(default)]
    pub coupon_id: Option<String>,
    /// Let the user's points at this merchant pay what they can.
    #[serde(default)]
    pub redeem_points: bool,
}

pub struct Loyalty {
    core: Arc<Core>,
    /// Who a user's token belongs to.
    identity: Arc<Identity>,
}

impl Loyalty {
    pub fn new(core: Arc<Core>, identity: Arc<Identity>) -> Self {
        Self { core, identity }
    }

    /// `PUT /v1/users/me/loyalty/{merchant_id}`: how the user pays at a
    /// merchant from now on.
    pub async fn choose_loyalty(
        &self,
        token: &str,
        merchant_id: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let user = self.identity.user_by_token(token).await?;
        let r: ChoiceRequest = parse_json(body)?;
        let mut conn = self.core.conn().await?;
        if facepay_store::parties::merchant(&mut conn, merchant_id)
            .await?
            .is_none()
        {
            return Err(Failure::not_found("merchant"));
        }
        if let Some(id) = &r.coupon_id {
            let theirs = loyalty::coupon(&mut conn, id)
                .await?
                .is_some_and(|c| c.merchant_id == merchant_id);
            if !theirs {
                return Err(Failure::unprocessable(
                    "coupon_unknown",
                    "coupon_id must be one of this merchant's coupons",
                ));
            }
        }
        let choice = Choice {
            user_id: user.id,
            merchant_id: merchant_id.to_owned(),
            coupon_id: r.coupon_id,
            redeem_points: i64::from(r.redeem_points),
            updated_at_ms: self.core.now_ms(),
        };
        loyalty::set_choice(&mut conn, &choice).await?;
        Reply::json(200, &choice)
    }

    /// `GET /v1/merchant/loyalty`.
    pub async fn loyalty(&self, m: &Merchant) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
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
        let program = self.program_of(m, r, derived_id("lp", &scope, key)).await?;
        self.core
            .idempotent(scope, key, body, |claimed| async move {
                let mut tx = self.core.begin().await?;
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

    /// The program a request describes, checked: points with their rate
    /// and cap, or a stamp card whose reward is one of the merchant's
    /// granted-only coupons.
    async fn program_of(
        &self,
        m: &Merchant,
        r: ProgramRequest,
        id: String,
    ) -> Result<Program, Failure> {
        let (points, stamps) = match r.kind.as_str() {
            "points" => {
                let bps = r.points_bps.unwrap_or(0);
                if !(1..=10_000).contains(&bps) || r.points_cap.is_some_and(|c| c <= 0) {
                    return Err(invalid("points_bps is 1 to 10000, points_cap positive"));
                }
                ((Some(bps), r.points_cap), (None, None))
            }
            "stamps" => {
                let every = r.stamps_per_reward.unwrap_or(0);
                if !(2..=100).contains(&every) {
                    return Err(invalid("stamps_per_reward is 2 to 100"));
                }
                let reward = r
                    .reward_coupon_id
                    .ok_or_else(|| invalid("a stamp card needs reward_coupon_id"))?;
                let owned = loyalty::coupon(&mut *self.core.conn().await?, &reward)
                    .await?
                    .is_some_and(|c| c.merchant_id == m.id && c.granted_only == 1);
                if !owned {
                    return Err(invalid(
                        "reward_coupon_id must be one of this merchant's granted-only coupons",
                    ));
                }
                ((None, None), (Some(every), Some(reward)))
            }
            _ => return Err(invalid("kind is points or stamps")),
        };
        Ok(Program {
            id,
            merchant_id: m.id.clone(),
            kind: r.kind,
            status: "active".into(),
            points_bps: points.0,
            points_cap: points.1,
            stamps_per_reward: stamps.0,
            reward_coupon_id: stamps.1,
            created_at_ms: self.core.now_ms(),
        })
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
            created_at_ms: self.core.now_ms(),
        };
        self.core
            .idempotent(scope, key, body, |claimed| async move {
                let mut tx = self.core.begin().await?;
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
        let mut conn = self.core.conn().await?;
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

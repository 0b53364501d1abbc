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
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};

use crate::api::{
    ChoiceView, CouponKind, CouponView, LoyaltyState, LoyaltyStatusView, PointsReportView,
    ProgramView,
};
use crate::core::{Core, Reply, Request, commit, derived_id, parse_json};
use crate::error::Failure;
use crate::identity::Identity;

pub use crate::api::LoyaltyReceipt;
pub(crate) use payment::{Discount, earn, give_back, reserve_discount, undo_discount};

/// Longest coupon name: it is printed on receipts.
const NAME_LEN_MAX: usize = 100;
/// Programs a merchant may have, paused ones included: each payment reads
/// the active ones.
const PROGRAMS_MAX: usize = 20;

/// A points program or a stamp card, by `kind`; each takes its own fields
/// and no other.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProgramRequest {
    /// A share of each captured amount, in points.
    Points {
        points_bps: i64,
        #[serde(default)]
        points_cap: Option<i64>,
    },
    /// A stamp a visit; every `stamps_per_reward` stamps earn the reward.
    Stamps {
        stamps_per_reward: i64,
        reward_coupon_id: String,
    },
}

/// Written by hand: utoipa's derive does not carry `deny_unknown_fields`
/// into an enum's variants, and each variant refuses the other's fields.
/// `program_request_schema_follows_serde` holds the two together.
impl utoipa::PartialSchema for ProgramRequest {
    fn schema() -> RefOr<Schema> {
        let integer = |description: &str, minimum: i64, maximum: Option<i64>| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(minimum))
                .maximum(maximum)
                .description(Some(description))
        };
        let variant = |kind: &str, description: &str| {
            ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([kind])),
                )
                .required("kind")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let points = variant("points", "A share of each captured amount, in points.")
            .property(
                "points_bps",
                integer(
                    "Basis points of the amount paid (100 = 1%).",
                    1,
                    Some(10_000),
                ),
            )
            .required("points_bps")
            .property(
                "points_cap",
                integer("At most this many a payment; no cap when absent.", 1, None),
            );
        let stamps = variant(
            "stamps",
            "A stamp a visit; every `stamps_per_reward` stamps earn the reward.",
        )
        .property(
            "stamps_per_reward",
            integer("Visits that earn the reward.", 2, Some(100)),
        )
        .required("stamps_per_reward")
        .property(
            "reward_coupon_id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[A-Za-z0-9_.:-]{1,128}$"))
                .description(Some(
                    "The coupon granted as the reward: one of this merchant's granted-only \
                     coupons.",
                )),
        )
        .required("reward_coupon_id");
        OneOfBuilder::new()
            .description(Some("A points program or a stamp card, by `kind`."))
            .item(points)
            .item(stamps)
            .into()
    }
}

impl ToSchema for ProgramRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    /// Printed on receipts: 1 to 100 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 100
    )]
    pub name: String,
    pub kind: CouponKind,
    /// Fixed: minor units. Percent: basis points, at most 10,000.
    #[schema(minimum = 1)]
    pub value: i64,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub min_spend_minor: i64,
    /// Unix ms; before `valid_until_ms`.
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// Uses per user; 1 if absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub per_user_max: Option<i64>,
    /// Uses in all; unlimited if absent.
    #[serde(default)]
    #[schema(minimum = 1)]
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
    pub programs: Vec<ProgramView>,
    pub coupons: Vec<CouponView>,
    /// Points issued, redeemed and outstanding (the merchant's liability).
    pub points: PointsReportView,
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
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
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
        Reply::json(200, &ChoiceView::of(&choice)?)
    }

    /// `GET /v1/merchant/loyalty`.
    pub async fn loyalty(&self, m: &Merchant) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let programs = loyalty::programs(&mut conn, &m.id).await?;
        let coupons = loyalty::coupons_of(&mut conn, &m.id).await?;
        let view = LoyaltyView {
            programs: programs
                .iter()
                .map(ProgramView::of)
                .collect::<Result<_, _>>()?,
            coupons: coupons
                .iter()
                .map(CouponView::of)
                .collect::<Result<_, _>>()?,
            points: PointsReportView::from(&loyalty::points_report(&mut conn, &m.id).await?),
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
            .idempotent(
                scope,
                key,
                Request::new("create_program", "", body),
                |claimed| async move {
                    let mut tx = self.core.begin().await?;
                    if loyalty::programs(&mut tx, &m.id).await?.len() >= PROGRAMS_MAX {
                        return Err(invalid(format!("at most {PROGRAMS_MAX} programs")));
                    }
                    loyalty::insert_program(&mut tx, &program).await?;
                    let reply = Reply::json(201, &ProgramView::of(&program)?)?;
                    claimed.complete(&mut tx, &reply).await?;
                    commit(tx).await?;
                    Ok(reply)
                },
            )
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
        let (kind, points, stamps) = match r {
            ProgramRequest::Points {
                points_bps: bps,
                points_cap,
            } => {
                if !(1..=10_000).contains(&bps) || points_cap.is_some_and(|c| c <= 0) {
                    return Err(invalid("points_bps is 1 to 10000, points_cap positive"));
                }
                ("points", (Some(bps), points_cap), (None, None))
            }
            ProgramRequest::Stamps {
                stamps_per_reward: every,
                reward_coupon_id: reward,
            } => {
                if !(2..=100).contains(&every) {
                    return Err(invalid("stamps_per_reward is 2 to 100"));
                }
                let owned = loyalty::coupon(&mut *self.core.conn().await?, &reward)
                    .await?
                    .is_some_and(|c| c.merchant_id == m.id && c.granted_only == 1);
                if !owned {
                    return Err(invalid(
                        "reward_coupon_id must be one of this merchant's granted-only coupons",
                    ));
                }
                ("stamps", (None, None), (Some(every), Some(reward)))
            }
        };
        Ok(Program {
            id,
            merchant_id: m.id.clone(),
            kind: kind.into(),
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
        if name.is_empty() || r.name.chars().count() > NAME_LEN_MAX {
            return Err(invalid(format!(
                "name is 1 to {NAME_LEN_MAX} characters, not all blank"
            )));
        }
        let value_ok = match r.kind {
            CouponKind::Fixed => r.value > 0,
            CouponKind::Percent => (1..=10_000).contains(&r.value),
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
            kind: r.kind.as_str().to_owned(),
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
            .idempotent(
                scope,
                key,
                Request::new("create_coupon", "", body),
                |claimed| async move {
                    let mut tx = self.core.begin().await?;
                    if loyalty::coupons_of(&mut tx, &m.id).await?.len() >= loyalty::COUPONS_MAX {
                        return Err(invalid(format!("at most {} coupons", loyalty::COUPONS_MAX)));
                    }
                    loyalty::insert_coupon(&mut tx, &coupon).await?;
                    let reply = Reply::json(201, &CouponView::of(&coupon)?)?;
                    claimed.complete(&mut tx, &reply).await?;
                    commit(tx).await?;
                    Ok(reply)
                },
            )
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
        let (status, state) = match action {
            "pause" => ("paused", LoyaltyState::Paused),
            "resume" => ("active", LoyaltyState::Active),
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
        Reply::json(
            200,
            &LoyaltyStatusView {
                id: id.to_owned(),
                status: state,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_request_schema_follows_serde() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ProgramRequest::schema()).unwrap();
        let variants = schema["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 2);
        for (variant, kind, fields) in [
            (&variants[0], "points", ["points_bps", "points_cap"]),
            (
                &variants[1],
                "stamps",
                ["stamps_per_reward", "reward_coupon_id"],
            ),
        ] {
            assert_eq!(
                variant["properties"]["kind"]["enum"],
                serde_json::json!([kind])
            );
            assert_eq!(variant["additionalProperties"], serde_json::json!(false));
            let mut named: Vec<&str> = variant["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            named.sort_unstable();
            let mut expected = vec!["kind", fields[0], fields[1]];
            expected.sort_unstable();
            assert_eq!(named, expected);
        }
        let parse = |text: &str| serde_json::from_str::<ProgramRequest>(text).is_ok();
        assert!(parse(r#"{"kind":"points","points_bps":100}"#));
        assert!(parse(
            r#"{"kind":"points","points_bps":100,"points_cap":5}"#
        ));
        assert!(parse(
            r#"{"kind":"stamps","stamps_per_reward":5,"reward_coupon_id":"cpn_1"}"#
        ));
        assert!(!parse(r#"{"kind":"points"}"#), "points_bps is required");
        assert!(!parse(
            r#"{"kind":"points","points_bps":1,"stamps_per_reward":5}"#
        ));
        assert!(!parse(r#"{"kind":"stamps","stamps_per_reward":5}"#));
        assert!(!parse(r#"{"kind":"cashback"}"#));
    }
}

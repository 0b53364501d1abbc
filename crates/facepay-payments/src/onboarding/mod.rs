//! Operators onboard merchants, stores and terminals: a merchant with its
//! legal name, fee plan and settlement currency (suspended, reactivated
//! or closed for good), its stores with address, coordinates, IANA time
//! zone, currency and hours, and terminals that pair with a one-time code
//! (`terminals`). Every change is audited with the operator who made it,
//! in its own transaction.

mod terminals;
pub mod views;

pub use terminals::{FAILURE_WINDOW_MS, FAILURES_GLOBAL_MAX, FAILURES_PER_CODE_MAX};

use std::sync::Arc;

use facepay_store::audit;
use facepay_store::onboarding::{self, MerchantProfile, StoreDetail};

use crate::access::Operator;
use crate::core::{Core, Reply, Request, commit, derived_id, parse_json};
use crate::error::Failure;
use views::{
    MerchantAction, MerchantDetail, MerchantList, MerchantRequest, MerchantView, OnboardedTerminal,
    StoreDetailView, StoreRequest,
};

/// Merchants a page of the list holds by default, and at most.
const MERCHANT_PAGE_DEFAULT: i64 = 50;
pub const MERCHANT_PAGE_MAX: i64 = 200;

pub struct Onboarding {
    core: Arc<Core>,
}

impl Onboarding {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// `POST /v1/operator/merchants`.
    pub async fn create_merchant(
        &self,
        op: &Operator,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: MerchantRequest = parse_json(body)?;
        let name = views::name_text("name", &request.name)?;
        let legal_name = views::name_text("legal_name", &request.legal_name)?;
        if !(0..=10_000).contains(&request.fee_bps) {
            return Err(Failure::unprocessable(
                "fee_invalid",
                "the fee is 0 to 10,000 basis points",
            ));
        }
        let settlement_currency = views::currency(&request.settlement_currency)?;
        let scope = op.scope("merchants", "");
        let id = derived_id("mer", &scope, key);
        let work = |claimed: crate::core::Claimed| async move {
            let now = self.core.now_ms();
            let profile = MerchantProfile {
                id,
                name,
                legal_name: Some(legal_name),
                fee_bps: request.fee_bps,
                settlement_currency: Some(settlement_currency.to_owned()),
                status: "active".into(),
                created_at_ms: now,
                closed_at_ms: None,
            };
            let mut tx = self.core.begin().await?;
            onboarding::insert_merchant(&mut tx, &profile).await?;
            audit::append(&mut tx, now, &op.actor(), "merchant_created", &profile.id).await?;
            let reply = Reply::json(201, &MerchantView::of(profile)?)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            Ok(reply)
        };
        let request = Request::new("create_merchant", "", body);
        self.core
            .idempotent(scope.clone(), key, request, work)
            .await
    }

    /// `GET /v1/operator/merchants`: in id order, a page at a time.
    pub async fn list_merchants(
        &self,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Reply, Failure> {
        let well_formed = |a: &str| {
            a.len() <= 128
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
        };
        if after.is_some_and(|a| !well_formed(a)) {
            return Err(Failure::unprocessable(
                "cursor_invalid",
                "use the next_after of the previous page",
            ));
        }
        let limit = limit.unwrap_or(MERCHANT_PAGE_DEFAULT);
        if !(1..=MERCHANT_PAGE_MAX).contains(&limit) {
            return Err(Failure::unprocessable(
                "limit_invalid",
                format!("limit must be 1 to {MERCHANT_PAGE_MAX}"),
            ));
        }
        let mut conn = self.core.conn().await?;
        let rows = onboarding::merchants(&mut conn, after.unwrap_or(""), limit).await?;
        let next_after = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|m| m.id.clone()))
            .flatten();
        let merchants = rows
            .into_iter()
            .map(MerchantView::of)
            .collect::<Result<_, _>>()?;
        Reply::json(
            200,
            &MerchantList {
                merchants,
                next_after,
            },
        )
    }

    async fn profile(&self, id: &str) -> Result<MerchantProfile, Failure> {
        let mut conn = self.core.conn().await?;
        onboarding::merchant(&mut conn, id)
            .await?
            .ok_or_else(|| Failure::new(404, "unknown_merchant", "no such merchant"))
    }

    /// `GET /v1/operator/merchants/{id}`: with its stores and terminals.
    pub async fn merchant_detail(&self, id: &str) -> Result<Reply, Failure> {
        let merchant = MerchantView::of(self.profile(id).await?)?;
        let mut conn = self.core.conn().await?;
        let stores = onboarding::stores_of(&mut conn, id)
            .await?
            .into_iter()
            .map(StoreDetailView::of)
            .collect::<Result<_, _>>()?;
        let terminals = onboarding::terminals_of(&mut conn, id)
            .await?
            .into_iter()
            .map(OnboardedTerminal::of)
            .collect::<Result<_, _>>()?;
        Reply::json(
            200,
            &MerchantDetail {
                merchant,
                stores,
                terminals,
            },
        )
    }

    /// Suspends, reactivates or closes a merchant. Asking for the state it
    /// is in changes nothing and answers it; a closed merchant stays
    /// closed (409 `merchant_closed`).
    pub async fn merchant_action(
        &self,
        op: &Operator,
        id: &str,
        action: MerchantAction,
    ) -> Result<Reply, Failure> {
        let before = self.profile(id).await?;
        let now = self.core.now_ms();
        let (changes, audited) = match (action, before.status.as_str()) {
            (MerchantAction::Close, "closed") => (false, "merchant_closed"),
            (_, "closed") => {
                return Err(Failure::conflict(
                    "merchant_closed",
                    "a closed merchant cannot be suspended or reopened",
                ));
            }
            (MerchantAction::Suspend, status) => (status != "suspended", "merchant_suspended"),
            (MerchantAction::Reactivate, status) => (status != "active", "merchant_reactivated"),
            (MerchantAction::Close, _) => (true, "merchant_closed"),
        };
        if changes {
            let mut tx = self.core.begin().await?;
            let done = match action {
                MerchantAction::Close => onboarding::close_merchant(&mut tx, id, now).await?,
                MerchantAction::Suspend => {
                    onboarding::set_merchant_status(&mut tx, id, "suspended").await?
                }
                MerchantAction::Reactivate => {
                    onboarding::set_merchant_status(&mut tx, id, "active").await?
                }
            };
            if !done {
                return Err(Failure::conflict(
                    "merchant_closed",
                    "the merchant was closed meanwhile",
                ));
            }
            audit::append(&mut tx, now, &op.actor(), audited, id).await?;
            commit(tx).await?;
        }
        Reply::json(200, &MerchantView::of(self.profile(id).await?)?)
    }

    /// `POST /v1/operator/stores`.
    pub async fn create_store(
        &self,
        op: &Operator,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: StoreRequest = parse_json(body)?;
        let detail = self.checked_store(&request)?;
        let scope = op.scope("stores", "");
        let id = derived_id("sto", &scope, key);
        let work = |claimed: crate::core::Claimed| async move {
            let merchant = self.profile(&request.merchant_id).await?;
            if merchant.status == "closed" {
                return Err(Failure::conflict(
                    "merchant_closed",
                    "a closed merchant gets no new store",
                ));
            }
            let now = self.core.now_ms();
            let store = StoreDetail {
                id,
                created_at_ms: now,
                ..detail
            };
            let mut tx = self.core.begin().await?;
            onboarding::insert_store(&mut tx, &store).await?;
            let subject = format!("{}:{}", store.merchant_id, store.id);
            audit::append(&mut tx, now, &op.actor(), "store_created", &subject).await?;
            let reply = Reply::json(201, &StoreDetailView::of(store)?)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            Ok(reply)
        };
        let request = Request::new("create_store", "", body);
        self.core
            .idempotent(scope.clone(), key, request, work)
            .await
    }

    /// Every field of a new store checked; its id and time come later.
    fn checked_store(&self, r: &StoreRequest) -> Result<StoreDetail, Failure> {
        let (latitude_e6, longitude_e6) = views::coordinates(r.latitude, r.longitude)?;
        views::country(&r.country)?;
        Ok(StoreDetail {
            id: String::new(),
            merchant_id: r.merchant_id.clone(),
            name: views::name_text("name", &r.name)?,
            address: Some(views::address_text(&r.address)?),
            country: r.country.clone(),
            city: views::name_text("city", &r.city)?,
            currency: views::currency(&r.currency)?.to_owned(),
            latitude_e6,
            longitude_e6,
            time_zone: Some(views::time_zone(&r.time_zone)?),
            opening_hours: Some(views::opening_hours(&r.opening_hours)?),
            created_at_ms: 0,
        })
    }
}

//! The merchant side: API-key authentication, list and look up payments,
//! capture, void, refund, the daily report, the terminals, and the sweeps
//! that void expired authorisations, close abandoned payments and purge
//! old idempotency keys.

use std::sync::Arc;

use facepay_connector::hyperswitch::webhook::{WebhookEvent, WebhookObject};
use facepay_connector::hyperswitch::{self, PaymentStatus};
use facepay_money::Currency;
use facepay_store::parties::{self, Merchant};
use facepay_store::payments::{self, ListFilter, Payment, PaymentState};
use facepay_store::{audit, idempotency};
use facepay_store::{connector_events, leases, ledger};

use crate::api::{
    AmountRequest, DailyReport, DailyReportRowView, EventReceipt, PaymentDetail, PaymentPage,
    PaymentStateView, PaymentView, StoreView, TerminalList, TerminalView,
};
use crate::core::{
    Claimed, Core, HELD_FOR_REVIEW, IDEMPOTENCY_RETENTION_MS, PAYMENT_BUSY, Reply, Request, Wait,
    commit, derived_id, fee, money_of, parse_json,
};
use crate::error::Failure;
use crate::identity::Identity;
use crate::{loyalty, signing};

pub const PAGE_LIMIT_MAX: i64 = 100;
/// Handled webhook events are remembered this long: past the 24 hours
/// Hyperswitch retries a delivery, with room to spare.
pub const CONNECTOR_EVENT_RETENTION_MS: i64 = 48 * 3_600_000;
const PAGE_LIMIT_DEFAULT: i64 = 20;

/// Query of `GET /v1/merchant/payments`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this store's payments.
    #[param(pattern = r"^[^\x00]*$")]
    pub store_id: Option<String>,
    /// Only payments in this state.
    #[param(value_type = Option<PaymentStateView>, inline)]
    pub state: Option<String>,
    /// Created at or after this Unix time in milliseconds.
    pub from_ms: Option<i64>,
    /// Created before this Unix time in milliseconds.
    pub to_ms: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}\.[^\x00]*$")]
    pub cursor: Option<String>,
    /// Payments per page, 1 to 100; 20 if absent.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

fn merchant_scope(m: &Merchant) -> String {
    format!("merchant:{}", m.id)
}

pub struct MerchantOps {
    core: Arc<Core>,
    /// Whose step-up probes an abandoned payment leaves behind.
    identity: Arc<Identity>,
}

impl MerchantOps {
    pub fn new(core: Arc<Core>, identity: Arc<Identity>) -> Self {
        Self { core, identity }
    }

    pub async fn list_payments(&self, m: &Merchant, q: &ListQuery) -> Result<Reply, Failure> {
        let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
        if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
            return Err(Failure::unprocessable(
                "limit_invalid",
                format!("limit must be 1 to {PAGE_LIMIT_MAX}"),
            ));
        }
        let state = match &q.state {
            Some(s) => Some(PaymentState::parse(s).ok_or_else(|| {
                Failure::unprocessable("state_invalid", format!("no payment state {s:?}"))
            })?),
            None => None,
        };
        let after = match &q.cursor {
            Some(c) => Some(
                c.split_once('.')
                    .filter(|(ms, _)| ms.len() <= 18 && ms.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
                    .ok_or_else(|| {
                        Failure::unprocessable(
                            "cursor_invalid",
                            "use the next_cursor of the previous page",
                        )
                    })?,
            ),
            None => None,
        };
        let filter = ListFilter {
            store_id: q.store_id.clone(),
            state,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            after,
            limit,
        };
        let mut conn = self.core.conn().await?;
        let rows = payments::list(&mut conn, &m.id, &filter).await?;
        let next_cursor = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|p| format!("{}.{}", p.created_at_ms, p.id)))
            .flatten();
        Reply::json(
            200,
            &PaymentPage {
                payments: rows.iter().map(PaymentView::of).collect::<Result<_, _>>()?,
                next_cursor,
            },
        )
    }

    pub async fn get_payment(&self, m: &Merchant, id: &str) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let payment = payments::get(&mut conn, id)
            .await?
            .filter(|p| p.merchant_id == m.id)
            .ok_or_else(|| Failure::not_found("payment"))?;
        let events = payments::events(&mut conn, id).await?;
        Reply::json(200, &PaymentDetail::of(&payment, &events)?)
    }

    async fn merchant_payment(&self, m: &Merchant, id: &str) -> Result<Payment, Failure> {
        let mut conn = self.core.conn().await?;
        payments::get(&mut conn, id)
            .await?
            .filter(|p| p.merchant_id == m.id)
            .ok_or_else(|| Failure::not_found("payment"))
    }

    fn amount_or(&self, p: &Payment, request: &AmountRequest, rest: i64) -> Result<i64, Failure> {
        match &request.amount {
            None => Ok(rest),
            Some(text) => Ok(Currency::from_code(&p.currency)?.parse_amount(text)?),
        }
    }

    /// `POST /v1/merchant/payments/{id}/capture`: all or part of a manual
    /// authorisation; the rest of the hold is released.
    pub async fn capture(
        &self,
        m: &Merchant,
        id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        self.capture_in(merchant_scope(m), m, id, key, body, None)
            .await
    }

    /// A capture under the caller's idempotency scope. A payment the risk
    /// engine held for review is captured only when an operator releases
    /// it (`operator` names them for the audit log), never by the merchant
    /// it would pay.
    pub(crate) async fn capture_in(
        &self,
        scope: String,
        m: &Merchant,
        id: &str,
        key: &str,
        body: &[u8],
        operator: Option<&str>,
    ) -> Result<Reply, Failure> {
        let request: AmountRequest = if body.is_empty() {
            AmountRequest::default()
        } else {
            // `null` asks for all of it, as an empty body does.
            parse_json::<Option<AmountRequest>>(body)?.unwrap_or_default()
        };
        self.core
            .idempotent(
                scope,
                key,
                Request::new("capture", id, body),
                |claimed| async move {
                    let work = self.capture_leased(m, id, &request, operator, &claimed);
                    self.core.leased(id, Wait::ForHolder, work).await
                },
            )
            .await
    }

    /// A capture, under the payment's lease.
    async fn capture_leased(
        &self,
        m: &Merchant,
        id: &str,
        request: &AmountRequest,
        operator: Option<&str>,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let before = self.merchant_payment(m, id).await?;
        if before.state()? != PaymentState::Authorised {
            return Err(Failure::conflict(
                "payment_not_authorised",
                format!("this payment is {}", before.state),
            ));
        }
        if before.reason == HELD_FOR_REVIEW && operator.is_none() {
            return Err(Failure::conflict(
                "payment_held_for_review",
                "the fraud checks hold this payment until an operator releases it",
            ));
        }
        let amount = self.amount_or(&before, request, before.authorised_minor)?;
        if amount > before.authorised_minor {
            return Err(Failure::unprocessable(
                "capture_exceeds_authorised",
                "cannot capture more than was authorised",
            ));
        }
        let issuer_ref = before.issuer_ref.clone().ok_or_else(Failure::internal)?;
        self.core
            .connector
            .capture(&issuer_ref, amount, &format!("{}:capture", before.id))
            .await
            .map_err(|e| Failure::new(502, e.code(), e.to_string()))?;
        let captured = (amount, fee(m.fee_bps, amount));
        self.record_capture(claimed, &before, captured, operator)
            .await
    }

    /// A capture the issuer made, in one transaction: the ledger's
    /// capture (and the release of what was not captured), the loyalty it
    /// earns, an operator's release in the audit log, and the answer.
    async fn record_capture(
        &self,
        claimed: &Claimed,
        before: &Payment,
        (amount, fee_minor): (i64, i64),
        operator: Option<&str>,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut after = before.clone();
        after.captured_minor = amount;
        after.fee_minor = fee_minor;
        after.state = PaymentState::Captured.as_str().to_owned();
        after.reason = if amount < before.authorised_minor {
            "partially_captured"
        } else {
            "captured"
        }
        .into();
        after.expires_at_ms = None;
        after.updated_at_ms = now;
        let money = money_of(before);
        let mut tx = self.core.begin().await?;
        ledger::capture(&mut tx, money, amount, fee_minor, now).await?;
        if let Some(actor) = operator {
            audit::append(&mut tx, now, actor, "review_released", &before.id).await?;
        }
        loyalty::earn(&mut tx, &after, now).await?;
        if amount < before.authorised_minor {
            ledger::release(&mut tx, money, before.authorised_minor - amount, now).await?;
        }
        crate::core::transition(&mut tx, before, &after).await?;
        finish(tx, claimed, &after).await
    }

    /// `POST /v1/merchant/payments/{id}/void`: releases a manual authorisation.
    pub async fn void(
        &self,
        m: &Merchant,
        id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        self.void_in(merchant_scope(m), m, id, key, body, None)
            .await
    }

    /// A void under the caller's idempotency scope; `operator` names the
    /// operator cancelling a payment held for review, for the audit log.
    pub(crate) async fn void_in(
        &self,
        scope: String,
        m: &Merchant,
        id: &str,
        key: &str,
        body: &[u8],
        operator: Option<&str>,
    ) -> Result<Reply, Failure> {
        self.core
            .idempotent(
                scope,
                key,
                Request::new("void", id, body),
                |claimed| async move {
                    self.core
                        .leased(id, Wait::ForHolder, async {
                            let before = self.merchant_payment(m, id).await?;
                            if before.state()? != PaymentState::Authorised {
                                return Err(Failure::conflict(
                                    "payment_not_authorised",
                                    format!("this payment is {}", before.state),
                                ));
                            }
                            self.void_authorised(before, "voided", Some(&claimed), operator)
                                .await
                        })
                        .await
                },
            )
            .await
    }

    async fn void_authorised(
        &self,
        before: Payment,
        reason: &str,
        claimed: Option<&Claimed>,
        operator: Option<&str>,
    ) -> Result<Reply, Failure> {
        let issuer_ref = before.issuer_ref.clone().ok_or_else(Failure::internal)?;
        self.core
            .connector
            .void(&issuer_ref)
            .await
            .map_err(|e| Failure::new(502, e.code(), e.to_string()))?;
        let now = self.core.now_ms();
        let mut after = before.clone();
        after.state = PaymentState::Voided.as_str().to_owned();
        after.reason = reason.to_owned();
        after.expires_at_ms = None;
        after.updated_at_ms = now;
        let mut tx = self.core.begin().await?;
        ledger::release(&mut tx, money_of(&before), before.authorised_minor, now).await?;
        crate::core::transition(&mut tx, &before, &after).await?;
        loyalty::undo_discount(&mut tx, &after, now).await?;
        if let Some(actor) = operator {
            audit::append(&mut tx, now, actor, "review_cancelled", &before.id).await?;
        }
        match claimed {
            Some(claimed) => finish(tx, claimed, &after).await,
            None => {
                commit(tx).await?;
                Reply::json(200, &PaymentView::of(&after)?)
            }
        }
    }

    /// `POST /v1/merchant/payments/{id}/refunds`: part or all of what is left.
    pub async fn refund(
        &self,
        m: &Merchant,
        id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: AmountRequest = if body.is_empty() {
            AmountRequest::default()
        } else {
            // `null` asks for all of it, as an empty body does.
            parse_json::<Option<AmountRequest>>(body)?.unwrap_or_default()
        };
        let scope = merchant_scope(m);
        let refund_id = derived_id("ref", &scope, key);
        self.core
            .idempotent(
                scope,
                key,
                Request::new("refund", id, body),
                |claimed| async move {
                    let work = self.refund_leased(m, id, &request, &refund_id, &claimed);
                    self.core.leased(id, Wait::ForHolder, work).await
                },
            )
            .await
    }

    /// A refund, under the payment's lease.
    async fn refund_leased(
        &self,
        m: &Merchant,
        id: &str,
        request: &AmountRequest,
        refund_id: &str,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let before = self.merchant_payment(m, id).await?;
        let state = before.state()?;
        if !matches!(
            state,
            PaymentState::Captured | PaymentState::PartiallyRefunded
        ) {
            return Err(Failure::conflict(
                "payment_not_refundable",
                format!("this payment is {}", before.state),
            ));
        }
        let left = before.captured_minor - before.refunded_minor;
        let amount = self.amount_or(&before, request, left)?;
        if amount > left {
            return Err(Failure::unprocessable(
                "refund_exceeds_captured",
                format!(
                    "at most {} can still be refunded",
                    Currency::from_code(&before.currency)?.format(left)
                ),
            ));
        }
        let issuer_ref = before.issuer_ref.clone().ok_or_else(Failure::internal)?;
        self.core
            .connector
            .refund(&issuer_ref, amount, refund_id)
            .await
            .map_err(|e| Failure::new(502, e.code(), e.to_string()))?;
        let now = self.core.now_ms();
        let mut after = before.clone();
        after.refunded_minor += amount;
        after.state = if after.refunded_minor == after.captured_minor {
            PaymentState::Refunded
        } else {
            PaymentState::PartiallyRefunded
        }
        .as_str()
        .to_owned();
        after.reason = format!("refund:{refund_id}");
        after.updated_at_ms = now;
        let mut tx = self.core.begin().await?;
        payments::insert_refund(&mut tx, refund_id, &before.id, amount, now).await?;
        ledger::refund(&mut tx, money_of(&before), refund_id, amount, now).await?;
        crate::core::transition(&mut tx, &before, &after).await?;
        loyalty::give_back(&mut tx, &after, refund_id, now).await?;
        finish(tx, claimed, &after).await
    }

    /// `GET /v1/merchant/terminals`: each terminal, its store, status and
    /// last payment.
    pub async fn terminals(&self, m: &Merchant) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let terminals = parties::terminals_of(&mut conn, &m.id).await?;
        let terminals = terminals
            .iter()
            .map(TerminalView::of)
            .collect::<Result<_, _>>()?;
        Reply::json(200, &TerminalList { terminals })
    }

    /// `GET /v1/merchant/reports/daily?date=YYYY-MM-DD` (UTC day).
    pub async fn daily_report(&self, m: &Merchant, date: &str) -> Result<Reply, Failure> {
        let day_start_ms = parse_date(date)?;
        let mut conn = self.core.conn().await?;
        let stores = parties::stores_of(&mut conn, &m.id).await?;
        let rows = payments::daily_report(&mut conn, &m.id, day_start_ms).await?;
        Reply::json(
            200,
            &DailyReport {
                merchant_id: m.id.clone(),
                date: date.to_owned(),
                stores: stores.iter().map(StoreView::from).collect(),
                rows: rows.iter().map(DailyReportRowView::from).collect(),
            },
        )
    }

    /// Voids authorisations whose hold ran out. Returns how many.
    pub async fn expire_authorisations(&self, batch: i64) -> Result<usize, Failure> {
        let mut conn = self.core.conn().await?;
        let due = payments::expired_authorisations(&mut conn, self.core.now_ms(), batch).await?;
        drop(conn);
        let mut voided = 0;
        for listed in due {
            let expiring = self.expire_one(&listed);
            match self.core.leased(&listed.id, Wait::No, expiring).await {
                Ok(true) => voided += 1,
                Ok(false) => {}
                // Another request, maybe another server's sweep, is on it;
                // still expired after that, it is the next sweep's.
                Err(e) if e.code == PAYMENT_BUSY => {
                    tracing::debug!(
                        payment_id = listed.id,
                        "expired authorisation busy; left to the next sweep"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expired authorisation not voided; retried on the next sweep")
                }
            }
        }
        Ok(voided)
    }

    /// Voids the expired authorisation `listed`, under its lease: false
    /// when it was captured or voided since it was listed.
    async fn expire_one(&self, listed: &Payment) -> Result<bool, Failure> {
        let Some(payment) = self.as_listed(listed).await? else {
            return Ok(false);
        };
        self.void_authorised(payment, "authorisation_expired", None, None)
            .await?;
        Ok(true)
    }

    /// `listed` read again under its lease, if it has not moved since a
    /// sweep listed it; `None` when another request moved it meanwhile.
    async fn as_listed(&self, listed: &Payment) -> Result<Option<Payment>, Failure> {
        let current = payments::get(&mut *self.core.conn().await?, &listed.id).await?;
        Ok(current.filter(|p| p.state == listed.state && p.updated_at_ms == listed.updated_at_ms))
    }

    /// Ends the payments requests abandoned (`payments::abandoned`,
    /// untouched for `Config::abandoned_after_ms`) and gives back the
    /// coupons and points they held. One that names its connector may
    /// have an authorisation out (its request stopped between sending it
    /// and recording the answer, or its reversal was not answered): that
    /// is reversed with the issuer first, by the payment's id, and the
    /// payment stays for the next sweep while the issuer does not answer.
    /// Returns how many were ended.
    pub async fn close_abandoned(&self, batch: i64) -> Result<usize, Failure> {
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        let due = payments::abandoned(&mut conn, now - self.core.config.abandoned_after_ms, batch)
            .await?;
        drop(conn);
        let mut closed = 0;
        for stale in due {
            let closing = self.close_one(&stale, now);
            match self.core.leased(&stale.id, Wait::No, closing).await {
                Ok(true) => closed += 1,
                Ok(false) => {}
                Err(e) if e.code == PAYMENT_BUSY => {
                    tracing::debug!(
                        payment_id = stale.id,
                        "abandoned payment busy; left to the next sweep"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "abandoned payment not closed; retried on the next sweep")
                }
            }
        }
        Ok(closed)
    }

    /// Ends the abandoned payment `stale`, under its lease: false when it
    /// moved on since it was listed (a late step-up, say), so it is not
    /// abandoned after all and not this sweep's to reverse.
    async fn close_one(&self, stale: &Payment, now: i64) -> Result<bool, Failure> {
        let Some(before) = self.as_listed(stale).await? else {
            return Ok(false);
        };
        let sent = before.connector.is_some();
        let reason = match sent {
            true => match self.core.reverse_unfinished(&before).await {
                Ok(reason) => reason,
                Err(e) => {
                    self.retry_later(&before).await?;
                    return Err(e);
                }
            },
            false => "interrupted".to_owned(),
        };
        let (state, reason) = match (before.state()?, sent) {
            (PaymentState::Created, _) | (_, true) => (PaymentState::Failed, reason),
            _ => (PaymentState::Declined, "step_up_abandoned".to_owned()),
        };
        let mut after = before.clone();
        after.state = state.as_str().to_owned();
        after.reason = reason;
        after.updated_at_ms = now;
        let mut tx = self.core.begin().await?;
        crate::core::transition(&mut tx, &before, &after).await?;
        loyalty::undo_discount(&mut tx, &after, now).await?;
        commit(tx).await?;
        self.identity.forget_probe(&after.id);
        Ok(true)
    }

    /// Puts an abandoned payment whose reversal failed at the back of the
    /// sweep's queue, so that it neither blocks the others nor is retried
    /// sooner than `abandoned_after_ms`.
    async fn retry_later(&self, stale: &Payment) -> Result<(), Failure> {
        let mut after = stale.clone();
        after.updated_at_ms = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        payments::transition(&mut tx, stale, &after).await?;
        commit(tx).await
    }

    /// Forgets idempotency keys, nonces and handled webhook events past
    /// their retention, and payment leases their holders left to end.
    pub async fn purge(&self) -> Result<u64, Failure> {
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        let requests = idempotency::purge(
            &mut conn,
            now - IDEMPOTENCY_RETENTION_MS,
            now - 2 * signing::WINDOW_MS,
        )
        .await?;
        let events = connector_events::purge(&mut conn, now - CONNECTOR_EVENT_RETENTION_MS).await?;
        let leases = leases::purge(&mut conn, now).await?;
        Ok(requests + events + leases)
    }

    /// An event Hyperswitch sent, its signature already checked. One
    /// handled before is acknowledged as it is. A payment Hyperswitch
    /// cancelled (its hold released) while facepay holds it authorised is
    /// voided through the connector, which reads the payment back before
    /// anything moves; every other event only informs, as facepay makes its
    /// captures and refunds itself. The event is recorded after its effect
    /// is committed, so a failure leaves Hyperswitch to deliver it again.
    pub async fn hyperswitch_event(&self, event: &WebhookEvent) -> Result<Reply, Failure> {
        let connector = hyperswitch::CONNECTOR_NAME;
        let mut conn = self.core.conn().await?;
        let seen = connector_events::seen(&mut conn, connector, &event.id).await?;
        drop(conn);
        if seen {
            return event_receipt(event, "duplicate");
        }
        let outcome = match &event.object {
            WebhookObject::Payment {
                payment_id,
                status: PaymentStatus::Cancelled,
            } => self.cancelled_by_acquirer(payment_id).await?,
            _ => "noted",
        };
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        connector_events::record(&mut conn, connector, &event.id, &event.event_type, now).await?;
        tracing::info!(
            event_id = event.id,
            event_type = event.event_type,
            outcome,
            "hyperswitch event"
        );
        event_receipt(event, outcome)
    }

    async fn cancelled_by_acquirer(&self, payment_id: &str) -> Result<&'static str, Failure> {
        self.core
            .leased(payment_id, Wait::ForHolder, async {
                let found = payments::get(&mut *self.core.conn().await?, payment_id).await?;
                let Some(payment) = found.filter(|p| {
                    p.connector.as_deref() == Some(hyperswitch::CONNECTOR_NAME)
                        && p.issuer_ref.as_deref() == Some(payment_id)
                }) else {
                    return Ok("unknown_payment");
                };
                if payment.state()? != PaymentState::Authorised {
                    return Ok("noted");
                }
                self.void_authorised(payment, "cancelled_by_acquirer", None, None)
                    .await?;
                Ok("voided")
            })
            .await
    }
}

fn event_receipt(event: &WebhookEvent, outcome: &'static str) -> Result<Reply, Failure> {
    Reply::json(
        200,
        &EventReceipt {
            event_id: event.id.clone(),
            outcome,
        },
    )
}

async fn finish(
    mut tx: facepay_store::Transaction,
    claimed: &Claimed,
    after: &Payment,
) -> Result<Reply, Failure> {
    let reply = Reply::json(200, &PaymentView::of(after)?)?;
    claimed.complete(&mut tx, &reply).await?;
    commit(tx).await?;
    Ok(reply)
}

/// Milliseconds at the start of a UTC date written `YYYY-MM-DD`; a date
/// the calendar does not have (`2026-02-31`) is refused, not rolled over.
pub fn parse_date(date: &str) -> Result<i64, Failure> {
    let format = time::macros::format_description!("[year repr:full sign:automatic]-[month]-[day]");
    let invalid = || {
        Failure::unprocessable(
            "date_invalid",
            "the date must be YYYY-MM-DD, a day the calendar has",
        )
    };
    if date.len() != "YYYY-MM-DD".len() {
        return Err(invalid());
    }
    let day = time::Date::parse(date, format).map_err(|_| invalid())?;
    Ok(day.midnight().assume_utc().unix_timestamp() * 1_000)
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn dates_are_utc_midnights() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2026-11-22"), Ok(1_795_305_600_000));
        assert_eq!(parse_date("2000-03-01"), Ok(951_868_800_000));
        assert_eq!(parse_date("2024-02-29"), Ok(1_709_164_800_000));
    }

    #[test]
    fn impossible_or_malformed_dates_are_refused_with_a_code() {
        for bad in [
            "2026-02-31",
            "2025-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "26-1-1",
            "2026-1-01",
            "+2026-01-01",
            "2026-01-01T00:00",
            "",
        ] {
            let refused = parse_date(bad).unwrap_err();
            assert_eq!(
                (refused.status, refused.code),
                (422, "date_invalid"),
                "{bad}"
            );
        }
    }
}

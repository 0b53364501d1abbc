//! Settling an approved payment: the payer's coupons and points reserved,
//! the card authorised (and for automatic capture, captured) for the rest
//! through the vault and the issuer, then the payment, its ledger
//! transfers, its loyalty and the answer committed in one transaction.

use std::time::Instant;

use facepay_connector::{Authorisation, CardTap, ConnectorError, Reversal};
use facepay_store::parties::TerminalContext;
use facepay_store::payments::{self, Payment, PaymentState};
use facepay_store::{audit, fraud, ledger};
use facepay_vault::VaultAuthorise;

use super::{Attempt, Payer, Payments, Settlement, elapsed_us};
use crate::api::{CaptureMode, ErrorBody, PayTimings, PaymentFailure, PaymentView};
use crate::core::{
    HELD_FOR_REVIEW, REVERSAL_PENDING, Reply, commit, created, fee, money_of, stored_credential,
};
use crate::error::Failure;
use crate::loyalty::{self, Discount, LoyaltyReceipt, reserve_discount, undo_discount};

/// What the vault and the issuer answered for one charge, and the time
/// they took.
struct Issued {
    /// What the card was asked for: the amount less the discount.
    charge_minor: i64,
    /// A card tap signed the whole amount.
    tapped: bool,
    /// Authorised only, the capture held for an operator.
    held_for_review: bool,
    authorised: Result<Authorisation, ConnectorError>,
    /// The capture, when the payment captures at once.
    captured: Option<Result<(), ConnectorError>>,
    /// The reversal sent when the issuer did not answer the authorisation.
    reversal: Option<Result<Reversal, ConnectorError>>,
    vault_us: u64,
    connector_us: u64,
}

/// Stage latencies of one payment for Prometheus, in seconds.
fn record_stages(t: &PayTimings) {
    for (stage, us) in t.stages() {
        metrics::histogram!("facepay_pay_stage_seconds", "stage" => stage).record(us as f64 / 1e6);
    }
}

impl Payments {
    /// Takes the payer's coupons and points (`reserve_discount`), then
    /// charges the card the rest. A charge that fails with its payment
    /// reserved ends the payment as failed and gives them back, so a retry
    /// of the request finds it over, not half done.
    pub(super) async fn settle(
        &self,
        mut attempt: Attempt<'_>,
        mut payment: Payment,
        payer: &Payer,
        with: Settlement,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        self.name_for_issuer(&mut payment, payer);
        // A tapped card signed the whole amount, so it is charged that.
        let (reserved, discount) = match with.tap {
            None => {
                let tried_before = !attempt.stored_here;
                reserve_discount(&self.core, attempt.stored, tried_before, &payment).await?
            }
            Some(_) => (attempt.stored.cloned(), Discount::default()),
        };
        let sent = self.sending(reserved.as_ref(), &payment).await?;
        attempt.timings.ledger_us += elapsed_us(start);
        let attempt = Attempt {
            stored: Some(&sent),
            stored_here: false,
            ..attempt
        };
        let id = payment.id.clone();
        let charged = self.charge(attempt, payment, payer, with, &discount).await;
        if charged.is_err() {
            self.abandon(&id).await;
        }
        charged
    }

    /// `payment` as it goes to the issuer: its payer, card and connector.
    pub(super) fn name_for_issuer(&self, payment: &mut Payment, payer: &Payer) {
        payment.user_id = Some(payer.user.id.clone());
        payment.payment_method_id = Some(payer.method.id.clone());
        payment.connector = Some(self.core.connector.name().to_owned());
    }

    /// The payment's row, written before the issuer hears of it, with the
    /// connector it goes to: whatever happens after, a row says an
    /// authorisation may be out under its id, so a retry or the sweep of
    /// abandoned payments reverses it rather than leave a hold on the
    /// payer's card that no record explains.
    pub(super) async fn sending(
        &self,
        stored: Option<&Payment>,
        payment: &Payment,
    ) -> Result<Payment, Failure> {
        if let Some(stored) = stored
            && stored.connector == payment.connector
        {
            return Ok(stored.clone());
        }
        let sent = match stored {
            None => {
                let created = created(payment);
                payments::insert_committed(&self.core.store, &created).await?;
                created
            }
            Some(before) => {
                let mut after = before.clone();
                after.user_id.clone_from(&payment.user_id);
                after
                    .payment_method_id
                    .clone_from(&payment.payment_method_id);
                after.connector.clone_from(&payment.connector);
                after.updated_at_ms = self.core.now_ms();
                crate::core::transition_committed(&self.core.store, before, &after).await?;
                after
            }
        };
        assert!(
            sent.connector.is_some(),
            "a payment names its connector before it is sent"
        );
        Ok(sent)
    }

    /// Ends a payment whose charge failed midway: its authorisation
    /// reversed if one may be out, then failed, with its coupons and
    /// points given back. An issuer or a store that fails here too leaves
    /// it to the sweep of abandoned payments.
    pub(super) async fn abandon(&self, payment_id: &str) {
        let ended = async {
            let Some(before) = payments::get(&mut *self.core.conn().await?, payment_id).await?
            else {
                return Ok(());
            };
            if !matches!(
                before.state()?,
                PaymentState::Created | PaymentState::RequiresStepUp
            ) {
                return Ok(());
            }
            let reason = self.core.reverse_unfinished(&before).await?;
            let now = self.core.now_ms();
            let mut after = before.clone();
            after.state = PaymentState::Failed.as_str().to_owned();
            after.reason = reason;
            after.updated_at_ms = now;
            let mut tx = self.core.begin().await?;
            crate::core::transition(&mut tx, &before, &after).await?;
            undo_discount(&mut tx, &after, now).await?;
            commit(tx).await
        };
        if let Err(e) = ended.await {
            tracing::warn!(payment = payment_id, error = %e, "a failed charge is not ended; the sweep ends it");
        }
    }

    /// Authorises (and for automatic capture, captures) `payment`'s amount
    /// less `discount` with the issuer, then records the outcome.
    async fn charge(
        &self,
        mut attempt: Attempt<'_>,
        payment: Payment,
        payer: &Payer,
        with: Settlement,
        discount: &Discount,
    ) -> Result<Reply, Failure> {
        let charge_minor = payment.amount_minor - discount.total_minor();
        assert!(
            charge_minor > 0,
            "a discount leaves the card something to pay"
        );
        let issued = self
            .authorise(
                &payment,
                payer,
                charge_minor,
                with.tap,
                with.hold_for_review,
            )
            .await?;
        attempt.timings.vault_us = issued.vault_us;
        attempt.timings.connector_us = issued.connector_us;
        self.record_charge(attempt, payment, payer, with.record, discount, issued)
            .await
    }

    /// The card's share opened and joined by the vault, the issuer asked
    /// to authorise, and to capture at once unless the payment captures by
    /// hand or is held for review.
    async fn authorise(
        &self,
        payment: &Payment,
        payer: &Payer,
        charge_minor: i64,
        tap: Option<CardTap>,
        held_for_review: bool,
    ) -> Result<Issued, Failure> {
        let tapped = tap.is_some();
        let start = Instant::now();
        let method = &payer.method;
        let (token, core_share) = self
            .core
            .card_share(method, payer.method_key.as_ref())
            .await?;
        let authorised = self
            .core
            .vault
            .authorise(VaultAuthorise {
                token,
                core_share,
                expiry_month: u8::try_from(method.expiry_month).unwrap_or(0),
                expiry_year: u16::try_from(method.expiry_year).unwrap_or(0),
                reference: payment.id.clone(),
                amount_minor: charge_minor,
                currency: payment.currency.clone(),
                tap,
                stored_credential: stored_credential(method),
            })
            .await?;
        let vault_and_issuer_us = elapsed_us(start);
        let start = Instant::now();
        // Unanswered, the authorisation may have placed a hold: reversed at
        // once, by its reference, as card schemes require of an acquirer
        // whose request timed out.
        let reversal = match &authorised.outcome {
            Err(ConnectorError::Timeout) => Some(self.core.connector.reverse(&payment.id).await),
            _ => None,
        };
        let mut captured = None;
        if let Ok(auth) = &authorised.outcome
            && payment.capture_mode == CaptureMode::Automatic.as_str()
            && !held_for_review
        {
            let reference = format!("{}:capture", payment.id);
            captured = Some(
                self.core
                    .connector
                    .capture(&auth.issuer_ref, charge_minor, &reference)
                    .await,
            );
        }
        Ok(Issued {
            charge_minor,
            tapped,
            held_for_review,
            vault_us: vault_and_issuer_us.saturating_sub(authorised.connector_us),
            connector_us: authorised.connector_us + elapsed_us(start),
            authorised: authorised.outcome,
            captured,
            reversal,
        })
    }

    /// The charge's one transaction: the payment's move, its
    /// assessment, the issuer's answer in the ledger, the loyalty it earns,
    /// and the answer. After it commits, a payer paying here for the first
    /// time is made a regular here.
    async fn record_charge(
        &self,
        mut attempt: Attempt<'_>,
        payment: Payment,
        payer: &Payer,
        record: Option<fraud::Assessment>,
        discount: &Discount,
        issued: Issued,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        let (ctx, user_id) = (attempt.ctx, payer.user.id.as_str());
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        // First: this waits for an audit chain only when every chain is
        // held, and then it holds no row that a chain's holder could be
        // waiting for.
        let actor = format!("terminal:{}", ctx.terminal_id);
        audit::append(&mut tx, now, &actor, "card_used", &payer.method.id).await?;
        // `settle` wrote the row before the issuer was asked; none here
        // would mean a charge that no row explains.
        let before = attempt.stored.cloned().ok_or_else(|| {
            tracing::error!(payment = %payment.id, "a charge reached its record without its row");
            Failure::internal()
        })?;
        if issued.tapped {
            // Charged whole: whatever an earlier try reserved goes back.
            undo_discount(&mut tx, &payment, now).await?;
        }
        if let Some(record) = &record {
            fraud::insert_assessment(&mut tx, record).await?;
        }
        let mut reply = match &issued.authorised {
            Ok(auth) => {
                let paid = (before, payment);
                let (payment, earned) = self
                    .approved(&mut tx, ctx, paid, auth, &issued, now)
                    .await?;
                let phone_last4 = payer.user.phone_last4.as_deref();
                let mut view =
                    PaymentView::of(&payment)?.with_receipt(ctx, Some(&payer.method), phone_last4);
                if let Some(receipt) = view.receipt.as_mut() {
                    receipt.loyalty =
                        LoyaltyReceipt::of(&mut tx, &payment, discount, earned).await?;
                }
                Reply::json(201, &view)?
            }
            Err(e) => {
                let reversal = issued.reversal.as_ref();
                refused_by_issuer(&mut tx, (before, payment), (e, reversal), now).await?
            }
        };
        attempt.claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        // A regular here from now on: searched first at this merchant, on
        // every server.
        if reply.status == 201 && !self.identity.is_regular(user_id, &ctx.merchant.id) {
            self.identity.join_regulars(user_id, &ctx.merchant.id);
            self.identity.announce_regular(user_id, &ctx.merchant.id);
        }
        attempt.timings.ledger_us += elapsed_us(start);
        record_stages(&attempt.timings);
        reply.timings = Some(attempt.timings);
        Ok(reply)
    }

    /// The issuer approved: the hold in the ledger, then the capture if it
    /// was made (with the loyalty it earns), or a hold the merchant can
    /// capture or void if the capture failed. A capture made at once is
    /// written with its hold (both transfers, both moves and their events
    /// in the statements of one). Returns the payment as it now is and
    /// what loyalty it earned.
    async fn approved(
        &self,
        tx: &mut facepay_store::Connection,
        ctx: &TerminalContext,
        (mut before, mut payment): (Payment, Payment),
        auth: &Authorisation,
        issued: &Issued,
        now: i64,
    ) -> Result<(Payment, Option<LoyaltyReceipt>), Failure> {
        let hold_ms = self.core.config.authorisation_hold_ms;
        payment.issuer_ref = Some(auth.issuer_ref.clone());
        payment.authorised_minor = issued.charge_minor;
        payment.state = PaymentState::Authorised.as_str().to_owned();
        payment.reason = format!("approved:{}", auth.approval_code);
        payment.updated_at_ms = now;
        if payment.capture_mode == CaptureMode::Manual.as_str() || issued.held_for_review {
            payment.expires_at_ms = Some(now + hold_ms);
        }
        if issued.held_for_review {
            payment.reason = HELD_FOR_REVIEW.into();
        }
        let money = money_of(&payment);
        match &issued.captured {
            Some(Ok(())) => {
                let mut captured = payment.clone();
                captured.captured_minor = issued.charge_minor;
                captured.fee_minor = fee(ctx.merchant.fee_bps, issued.charge_minor);
                captured.state = PaymentState::Captured.as_str().to_owned();
                captured.reason = "captured".into();
                let (amount, fee_minor) = (captured.captured_minor, captured.fee_minor);
                ledger::authorise_and_capture(tx, money, amount, fee_minor, now).await?;
                crate::core::transition_via(tx, &before, &payment, &captured).await?;
                let earned = loyalty::earn(tx, &captured, now).await?;
                Ok((captured, earned))
            }
            Some(Err(e)) => {
                ledger::authorise(tx, money, issued.charge_minor, now).await?;
                crate::core::transition(tx, &before, &payment).await?;
                before = payment.clone();
                // The hold stands; the merchant can capture or void it.
                tracing::warn!(payment = %payment.id, error = %e, "capture failed after authorisation");
                payment.expires_at_ms = Some(now + hold_ms);
                payment.reason = format!("capture_failed:{}", e.code());
                crate::core::transition(tx, &before, &payment).await?;
                Ok((payment, None))
            }
            None => {
                ledger::authorise(tx, money, issued.charge_minor, now).await?;
                crate::core::transition(tx, &before, &payment).await?;
                Ok((payment, None))
            }
        }
    }
}

/// The issuer declined or failed: the payment ends so, its discount given
/// back, and the answer says why. One whose issuer did not answer ends
/// only once its reversal was answered; until then it stays unfinished,
/// its discount held, for a retry or the sweep to reverse and end.
async fn refused_by_issuer(
    tx: &mut facepay_store::Connection,
    (before, mut payment): (Payment, Payment),
    (e, reversal): (&ConnectorError, Option<&Result<Reversal, ConnectorError>>),
    now: i64,
) -> Result<Reply, Failure> {
    if let Some(reversal) = reversal {
        return timed_out(tx, (before, payment), reversal, now).await;
    }
    let (state, status) = match e {
        // Nothing was sent: the card on file was never verified, and its
        // holder must add it again; declined like a card the issuer refuses.
        ConnectorError::Declined(_) | ConnectorError::NeedsVerification => {
            (PaymentState::Declined, 402)
        }
        ConnectorError::Timeout => (PaymentState::Failed, 504),
        ConnectorError::Rejected(_) => (PaymentState::Failed, 502),
    };
    payment.state = state.as_str().to_owned();
    payment.reason = e.code().to_owned();
    payment.updated_at_ms = now;
    crate::core::transition(tx, &before, &payment).await?;
    undo_discount(tx, &payment, now).await?;
    let message = e.to_string();
    Reply::json(
        status,
        &PaymentFailure {
            error: ErrorBody {
                code: e.code(),
                message: &message,
            },
            payment: PaymentView::of(&payment)?,
        },
    )
}

/// The issuer did not answer the authorisation: the payment failed if its
/// reversal was answered, still unfinished if not.
async fn timed_out(
    tx: &mut facepay_store::Connection,
    (before, mut payment): (Payment, Payment),
    reversal: &Result<Reversal, ConnectorError>,
    now: i64,
) -> Result<Reply, Failure> {
    let timeout = ConnectorError::Timeout;
    let message = match reversal {
        Ok(reversed) => {
            payment.state = PaymentState::Failed.as_str().to_owned();
            payment.reason = format!("{}:{}", timeout.code(), reversed.as_str());
            "the card issuer did not answer in time; the authorisation was reversed and nothing was charged"
        }
        Err(e) => {
            tracing::warn!(payment = %payment.id, error = %e, "reversal after an issuer timeout failed; the sweep retries it");
            payment.state.clone_from(&before.state);
            payment.reason = REVERSAL_PENDING.into();
            "the card issuer did not answer in time; the authorisation is being reversed and nothing will be charged"
        }
    };
    payment.updated_at_ms = now;
    crate::core::transition(tx, &before, &payment).await?;
    if payment.state()? == PaymentState::Failed {
        undo_discount(tx, &payment, now).await?;
    }
    Reply::json(
        504,
        &PaymentFailure {
            error: ErrorBody {
                code: timeout.code(),
                message,
            },
            payment: PaymentView::of(&payment)?,
        },
    )
}

//! Acting on the risk engine's decision for an identified payer: approve
//! or hold for review (the card is charged), step up (the payer is asked
//! for a factor, a card tap with a challenge of the server's choosing), or
//! decline. Every decision is recorded with the payment.

use std::time::Instant;

use facepay_risk::{Assessment, Decision as Risk, Factor};
use facepay_store::fraud;
use facepay_store::payments::{Payment, PaymentState};

use super::{Attempt, Payer, Payments, Settlement, accepted, elapsed_us, step_up_view};
use crate::api::{ErrorBody, PaymentFailure, PaymentView};
use crate::core::{Reply, commit, stored_or_created};
use crate::error::Failure;
use crate::loyalty::undo_discount;
use crate::tap;

fn decision_name(d: Risk) -> &'static str {
    match d {
        Risk::Approve => "approve",
        Risk::StepUp(_) => "step_up",
        Risk::Review => "review",
        Risk::Decline => "decline",
    }
}

/// The assessment as it is stored with the payment: the decision acted
/// on, its score and every rule that fired, with its weight and reason.
fn assessment_record(
    payment_id: &str,
    decision: Risk,
    assessment: &Assessment,
    now: i64,
) -> Result<fraud::Assessment, Failure> {
    let fired = serde_json::to_string(
        &assessment
            .fired
            .iter()
            .map(|f| serde_json::json!({"rule": f.rule, "weight": f.weight, "reason": f.reason}))
            .collect::<Vec<_>>(),
    )
    .map_err(|_| Failure::internal())?;
    tracing::info!(
        payment = %payment_id,
        decision = ?decision,
        score = assessment.score,
        fired = %fired,
        "risk assessed"
    );
    Ok(fraud::Assessment {
        payment_id: payment_id.to_owned(),
        decision: decision_name(decision).to_owned(),
        factor: None,
        score: i64::from(assessment.score),
        fired,
        challenge: None,
        at_ms: now,
    })
}

/// A declined payment's answer.
fn declined(payment: &mut Payment) -> Result<Reply, Failure> {
    payment.state = PaymentState::Declined.as_str().to_owned();
    payment.reason = "risk_declined".into();
    let body = PaymentFailure {
        error: ErrorBody {
            code: "risk_declined",
            message: "the payment was refused by fraud checks; pay another way",
        },
        payment: PaymentView::of(payment)?,
    };
    Reply::json(402, &body)
}

impl Payments {
    /// Acts on the risk engine's decision for an identified payer. `given`
    /// is the factor the payer has already confirmed, if any: a step-up to
    /// it or to a weaker one is not asked again.
    pub(super) async fn act(
        &self,
        attempt: Attempt<'_>,
        payment: Payment,
        payer: &Payer,
        assessment: Assessment,
        given: Option<Factor>,
    ) -> Result<Reply, Failure> {
        let decision = match assessment.decision {
            Risk::StepUp(f) if given.is_some_and(|g| g >= f) => Risk::Approve,
            d => d,
        };
        let now = self.core.now_ms();
        let record = assessment_record(&payment.id, decision, &assessment, now)?;
        let hold_for_review = match decision {
            Risk::Approve => false,
            Risk::Review => true,
            Risk::StepUp(factor) => {
                return self
                    .refuse(attempt, payment, payer, record, Some(factor))
                    .await;
            }
            Risk::Decline => return self.refuse(attempt, payment, payer, record, None).await,
        };
        let with = Settlement {
            record: Some(record),
            hold_for_review,
            tap: None,
        };
        self.settle(attempt, payment, payer, with).await
    }

    /// A payment declined, or held for the factor the risk engine asks
    /// for: kept with the payer and card so that their velocities count
    /// refused payments too (card testing is refusals), with its
    /// assessment and the answer, in one transaction.
    async fn refuse(
        &self,
        mut attempt: Attempt<'_>,
        mut payment: Payment,
        payer: &Payer,
        mut record: fraud::Assessment,
        factor: Option<Factor>,
    ) -> Result<Reply, Failure> {
        let now = record.at_ms;
        payment.user_id = Some(payer.user.id.clone());
        payment.payment_method_id = Some(payer.method.id.clone());
        // Nothing goes to the issuer: the connector the row named before
        // the risk read (`Payments::counted`) is taken back, so neither a
        // sweep nor a step-up takes it for a charge cut short.
        payment.connector = None;
        payment.updated_at_ms = now;
        let mut reply = match factor {
            Some(factor) => self.ask_for(attempt.ctx, &mut payment, &mut record, factor)?,
            None => declined(&mut payment)?,
        };
        let start = Instant::now();
        let mut tx = self.core.begin().await?;
        let before = stored_or_created(&mut tx, attempt.stored, &payment).await?;
        crate::core::transition(&mut tx, &before, &payment).await?;
        // Anything an interrupted earlier try reserved goes back.
        undo_discount(&mut tx, &payment, now).await?;
        fraud::insert_assessment(&mut tx, &record).await?;
        attempt.claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        attempt.timings.ledger_us = elapsed_us(start);
        reply.timings = Some(attempt.timings);
        Ok(reply)
    }

    /// A payment waiting for `factor`: the challenge a tapped card must
    /// sign is chosen now and recorded with the assessment.
    fn ask_for(
        &self,
        ctx: &facepay_store::parties::TerminalContext,
        payment: &mut Payment,
        record: &mut fraud::Assessment,
        factor: Factor,
    ) -> Result<Reply, Failure> {
        let challenge = tap::challenge(
            payment.amount_minor,
            &payment.currency,
            &ctx.store.country,
            record.at_ms,
        )?;
        record.factor = Some(factor.as_str().to_owned());
        record.challenge =
            Some(serde_json::to_string(&challenge).map_err(|_| Failure::internal())?);
        payment.state = PaymentState::RequiresStepUp.as_str().to_owned();
        payment.reason = "risk_step_up".into();
        payment.step_up_attempts = 0;
        let payer_id = payment.user_id.as_deref().ok_or_else(Failure::internal)?;
        payment.candidates =
            Some(serde_json::to_string(&[payer_id]).map_err(|_| Failure::internal())?);
        let mut view = PaymentView::of(payment)?;
        view.step_up = Some(step_up_view(
            &accepted(Some(factor)),
            self.core.config.step_up_attempts_max,
            Some(challenge),
        ));
        Reply::json(202, &view)
    }
}

//! Refunds: one Hyperswitch refund per facepay reference.

use super::api::{self, Refund, RefundStatus};
use super::client::{self, Decoded, Method};
use super::payments::status_name;
use super::{
    Budget, HyperswitchConnector, Lookup, Step, check_amount, checked_id, json_body, pause,
    rejected,
};
use crate::ConnectorError;

impl HyperswitchConnector {
    /// `pending` and `review` count as done: Hyperswitch has taken the
    /// refund and the processor finishes it; a later failure arrives as a
    /// `refund_failed` webhook.
    pub(super) async fn refund_now(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> Result<(), ConnectorError> {
        let payment_id = checked_id(issuer_ref)?;
        check_amount(amount_minor)?;
        if reference.is_empty() {
            return Err(rejected("the refund reference is empty".into()));
        }
        let refund_id = api::object_id(reference);
        let body = json_body(&api::RefundCreate {
            payment_id,
            refund_id: &refund_id,
            amount: amount_minor,
            refund_type: api::REFUND_TYPE_INSTANT,
        })?;
        let mut budget = Budget::new();
        let refund = loop {
            let reply = self
                .send(
                    &mut budget,
                    Method::Post,
                    "/refunds".into(),
                    Some(body.clone()),
                )
                .await;
            let step = match client::decode::<Refund>(reply) {
                Decoded::Answer(refund) => Step::Done(refund),
                // A retry of a refund that landed: its refund is the answer.
                Decoded::Refused { code, .. } if code == api::CODE_DUPLICATE => {
                    self.refunded(&mut budget, &refund_id, "its id is taken")
                        .await
                }
                Decoded::Refused { code, message, .. } => Step::Fail(rejected(format!(
                    "hyperswitch refused the refund: {code}: {message}"
                ))),
                Decoded::Unknown(reason) => self.refunded(&mut budget, &refund_id, &reason).await,
            };
            match step {
                Step::Done(refund) => break refund,
                Step::Again => pause().await,
                Step::Fail(error) => return Err(error),
            }
        };
        refund_outcome(&refund, payment_id, amount_minor)
    }

    /// Whether a refund whose answer we lack was made.
    async fn refunded(&self, budget: &mut Budget, refund_id: &str, reason: &str) -> Step<Refund> {
        tracing::warn!(
            refund_id,
            reason,
            "hyperswitch: no answer to a refund; retrieving it"
        );
        match self
            .lookup::<Refund>(budget, &format!("/refunds/{refund_id}"))
            .await
        {
            Lookup::Found(refund) => Step::Done(refund),
            Lookup::NotFound if budget.left() > 0 => Step::Again,
            Lookup::NotFound => Step::Fail(ConnectorError::Timeout),
            Lookup::Unanswered(reason) => {
                tracing::warn!(
                    refund_id,
                    reason,
                    "hyperswitch: the refund could not be retrieved"
                );
                Step::Fail(ConnectorError::Timeout)
            }
        }
    }
}

fn refund_outcome(
    refund: &Refund,
    payment_id: &str,
    amount_minor: i64,
) -> Result<(), ConnectorError> {
    if refund.payment_id != payment_id || refund.amount != amount_minor {
        return Err(rejected(format!(
            "refund {} is {} of payment {}, not {amount_minor} of {payment_id}: the reference was used for another refund",
            refund.refund_id, refund.amount, refund.payment_id
        )));
    }
    match refund.status {
        RefundStatus::Succeeded | RefundStatus::Pending | RefundStatus::Review => Ok(()),
        status => Err(rejected(format!(
            "hyperswitch refund {} is {}: {} {}",
            refund.refund_id,
            status_name(status),
            refund.error_code.as_deref().unwrap_or_default(),
            refund.error_message.as_deref().unwrap_or("no reason given")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(status: RefundStatus) -> Refund {
        Refund {
            refund_id: "ref_1".into(),
            payment_id: "pay_1".into(),
            amount: 654,
            status,
            error_code: None,
            error_message: None,
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        for status in [
            RefundStatus::Succeeded,
            RefundStatus::Pending,
            RefundStatus::Review,
        ] {
            assert!(
                refund_outcome(&refund(status), "pay_1", 654).is_ok(),
                "{status:?}"
            );
        }
        for status in [RefundStatus::Failed, RefundStatus::Unrecognised] {
            let outcome = refund_outcome(&refund(status), "pay_1", 654);
            assert!(
                matches!(outcome, Err(ConnectorError::Rejected(_))),
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_reference_reused_for_another_refund_is_refused() {
        let outcome = refund_outcome(&refund(RefundStatus::Succeeded), "pay_1", 655);
        assert!(matches!(outcome, Err(ConnectorError::Rejected(_))));
        let outcome = refund_outcome(&refund(RefundStatus::Succeeded), "pay_2", 654);
        assert!(matches!(outcome, Err(ConnectorError::Rejected(_))));
    }
}

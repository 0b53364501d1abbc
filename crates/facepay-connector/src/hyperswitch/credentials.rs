//! Cards on file: the zero-amount verification that puts a card on file
//! with its holder's consent, and the merchant-initiated payment on it.
//!
//! The verification is Hyperswitch's zero amount authorisation: `amount: 0`,
//! `payment_type: setup_mandate`, `setup_future_usage: off_session`, the
//! card with its security code, a `customer_id` and the
//! `customer_acceptance`. Hyperswitch answers `succeeded` and, from
//! processors that give one, the card network's `network_transaction_id`:
//! the stored credential. A later payment names it in `recurring_details`
//! (`network_transaction_id_and_card_details`) with the card's number and
//! expiry and no security code, `off_session: true`. Sources: see `api.rs`.

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::api::{self, Payment, PaymentStatus};
use super::payments::{
    capture_method, card_data, check_reference_and_currency, decline_of, status_name, write_body,
};
use super::{Budget, CONNECTOR_NAME, HyperswitchConnector, rejected};
use crate::{
    AuthoriseRequest, ConnectorError, Decline, STORED_CREDENTIAL_ID_BYTES_MAX, StoredCredential,
    VerifyRequest, card,
};

const MILLISECONDS_PER_SECOND: i64 = 1_000;

impl HyperswitchConnector {
    pub(super) async fn verify_now(
        &self,
        request: VerifyRequest,
    ) -> Result<StoredCredential, ConnectorError> {
        let security_code = check_verify(&request)?;
        let payment_id = api::object_id(&request.reference);
        let body = self.verify_body(&request, &payment_id, security_code)?;
        let mut budget = Budget::new();
        let payment = self.create(&mut budget, body, &payment_id).await?;
        let payment = self.settle(&mut budget, payment).await?;
        credential_of(payment, &request)
    }

    fn verify_body(
        &self,
        request: &VerifyRequest,
        payment_id: &str,
        security_code: &str,
    ) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
        let customer_id = api::object_id(&request.customer);
        write_body(&api::PaymentCreate {
            amount: 0,
            currency: &request.currency,
            payment_id,
            confirm: true,
            capture_method: None,
            authentication_type: api::AUTHENTICATION_NO_THREE_DS,
            payment_method: Some(api::PAYMENT_METHOD_CARD),
            payment_method_data: Some(api::PaymentMethodData {
                card: card_data(&request.card, security_code),
            }),
            payment_type: Some(api::PAYMENT_TYPE_SETUP_MANDATE),
            setup_future_usage: Some(api::FUTURE_USAGE_OFF_SESSION),
            customer_id: Some(&customer_id),
            customer_acceptance: Some(api::CustomerAcceptance {
                acceptance_type: api::ACCEPTANCE_OFFLINE,
                accepted_at: iso_8601_utc(request.agreed_at_ms),
            }),
            off_session: None,
            recurring_details: None,
            profile_id: self.profile_id.as_deref(),
            merchant_order_reference_id: &request.reference,
        })
    }

    /// A merchant-initiated payment on a card on file: its number and
    /// expiry from the vault, the network's id of its verification, no
    /// security code.
    pub(super) fn on_file_body(
        &self,
        request: &AuthoriseRequest,
        payment_id: &str,
        network_transaction_id: &str,
    ) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
        let card = &request.card;
        write_body(&api::PaymentCreate {
            amount: request.amount_minor,
            currency: &request.currency,
            payment_id,
            confirm: true,
            capture_method: Some(capture_method(request.capture)),
            authentication_type: api::AUTHENTICATION_NO_THREE_DS,
            payment_method: None,
            payment_method_data: None,
            payment_type: None,
            setup_future_usage: None,
            customer_id: None,
            customer_acceptance: None,
            off_session: Some(true),
            recurring_details: Some(api::RecurringDetails::NetworkTransactionIdAndCardDetails(
                api::CardOnFile {
                    card_number: &card.pan,
                    card_exp_month: format!("{:02}", card.expiry_month),
                    card_exp_year: format!("{:04}", card.expiry_year),
                    network_transaction_id,
                },
            )),
            profile_id: self.profile_id.as_deref(),
            merchant_order_reference_id: &request.reference,
        })
    }
}

/// What Hyperswitch would refuse, refused here; the security code back.
fn check_verify(request: &VerifyRequest) -> Result<&str, ConnectorError> {
    check_reference_and_currency(&request.reference, &request.currency)?;
    if request.customer.is_empty() {
        return Err(rejected("a card on file needs its customer".into()));
    }
    if !(1..=12).contains(&request.card.expiry_month) {
        return Err(ConnectorError::Declined(Decline::InvalidCard));
    }
    let security_code = request
        .card
        .security_code
        .as_deref()
        .ok_or_else(|| rejected("a card verification needs the card security code".into()))?;
    card::check_security_code(security_code)
        .map_err(|_| ConnectorError::Declined(Decline::InvalidCard))?;
    Ok(security_code)
}

/// What a verification Hyperswitch made means: `succeeded` with the
/// network's transaction id is a card on file; without one, no payment
/// could refer to it later, so the card is not kept.
fn credential_of(
    payment: Payment,
    request: &VerifyRequest,
) -> Result<StoredCredential, ConnectorError> {
    if payment.amount != 0 || payment.currency != request.currency {
        return Err(rejected(format!(
            "hyperswitch payment {} is for {} {}, not a verification: the reference was used for another payment",
            payment.payment_id, payment.amount, payment.currency
        )));
    }
    match payment.status {
        PaymentStatus::Succeeded => network_credential(payment),
        PaymentStatus::Failed => {
            let decline = decline_of(&payment);
            tracing::info!(
                payment_id = payment.payment_id,
                error_code = payment.error_code,
                unified_code = payment.unified_code,
                decline = decline.code(),
                "hyperswitch: verification declined"
            );
            Err(ConnectorError::Declined(decline))
        }
        PaymentStatus::RequiresCustomerAction => {
            tracing::info!(
                payment_id = payment.payment_id,
                "hyperswitch: the processor demanded 3-D Secure for a verification"
            );
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        }
        status => Err(rejected(format!(
            "hyperswitch left verification {} {}",
            payment.payment_id,
            status_name(status)
        ))),
    }
}

fn network_credential(payment: Payment) -> Result<StoredCredential, ConnectorError> {
    let id = payment.network_transaction_id.unwrap_or_default();
    let usable = !id.is_empty()
        && id.len() <= STORED_CREDENTIAL_ID_BYTES_MAX
        && id.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(rejected(format!(
            "hyperswitch verified the card in payment {} but its processor gave no network \
             transaction id, which payments on file need: choose a processor that returns one",
            payment.payment_id
        )));
    }
    Ok(StoredCredential {
        connector: CONNECTOR_NAME.to_owned(),
        id,
    })
}

/// `accepted_at`'s form, `2022-09-10T10:11:12Z`. Times before 1970 read as
/// 1970; times past the calendar's end as its last second.
fn iso_8601_utc(unix_ms: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp(unix_ms.max(0) / MILLISECONDS_PER_SECOND).unwrap_or(
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT),
        );
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CardDetails;

    fn verification() -> VerifyRequest {
        VerifyRequest {
            reference: "pm_1".into(),
            customer: "usr_1".into(),
            card: CardDetails {
                pan: "4242424242424242".into(),
                expiry_month: 12,
                expiry_year: 2099,
                security_code: Some("123".into()),
            },
            currency: "USD".into(),
            agreed_at_ms: 1_767_225_600_000,
        }
    }

    fn verified(status: PaymentStatus, network_transaction_id: Option<&str>) -> Payment {
        Payment {
            payment_id: "pm_1".into(),
            status,
            amount: 0,
            currency: "USD".into(),
            amount_capturable: Some(0),
            amount_received: None,
            connector_transaction_id: None,
            error_code: None,
            error_message: None,
            unified_code: None,
            network_transaction_id: network_transaction_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_verification_is_kept_by_its_network_transaction_id() {
        let kept = credential_of(
            verified(PaymentStatus::Succeeded, Some("483297487231504")),
            &verification(),
        );
        let Ok(credential) = kept else {
            panic!("{kept:?}");
        };
        assert_eq!(
            credential,
            StoredCredential {
                connector: "hyperswitch".into(),
                id: "483297487231504".into(),
            }
        );
        for missing in [None, Some(""), Some("has space")] {
            let refused =
                credential_of(verified(PaymentStatus::Succeeded, missing), &verification());
            assert!(
                matches!(&refused, Err(ConnectorError::Rejected(reason)) if reason.contains("network transaction id")),
                "{missing:?}: {refused:?}"
            );
        }
        let charged = Payment {
            amount: 100,
            ..verified(PaymentStatus::Succeeded, Some("483297487231504"))
        };
        assert!(credential_of(charged, &verification()).is_err());
        let declined = credential_of(verified(PaymentStatus::Failed, None), &verification());
        assert!(matches!(
            declined,
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        ));
    }

    #[test]
    fn a_verification_needs_a_well_formed_code_and_a_customer() {
        assert_eq!(check_verify(&verification()).ok(), Some("123"));
        let mut no_code = verification();
        no_code.card.security_code = None;
        assert!(matches!(
            check_verify(&no_code),
            Err(ConnectorError::Rejected(_))
        ));
        let mut bad_code = verification();
        bad_code.card.security_code = Some("12".into());
        assert!(matches!(
            check_verify(&bad_code),
            Err(ConnectorError::Declined(Decline::InvalidCard))
        ));
        let nobody = VerifyRequest {
            customer: String::new(),
            ..verification()
        };
        assert!(check_verify(&nobody).is_err());
    }

    #[test]
    fn consent_times_are_iso_8601_in_utc() {
        assert_eq!(iso_8601_utc(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(iso_8601_utc(1_662_804_672_999), "2022-09-10T10:11:12Z");
        assert_eq!(iso_8601_utc(-5), "1970-01-01T00:00:00Z");
    }
}

//! Authorise, capture and void: one Hyperswitch payment each.

use zeroize::Zeroizing;

use super::api::{self, Payment, PaymentStatus};
use super::client::{self, Decoded, Method};
use super::{
    Budget, CONNECTOR_NAME, HyperswitchConnector, Lookup, Step, check_amount, checked_id,
    json_body, pause, rejected,
};
use crate::{
    Authorisation, AuthoriseRequest, CaptureMethod, CardDetails, ConnectorError, Decline, Reversal,
    StoredCredential, card,
};

/// ISO 4217 alphabetic codes are three letters.
const CURRENCY_CODE_LENGTH: usize = 3;
/// Hyperswitch's limit on `merchant_order_reference_id`.
const REFERENCE_BYTES_MAX: usize = 255;
/// Room for a create body, reserved up front so that writing it never
/// reallocates and leaves an unwiped copy of the card number behind.
const CREATE_BODY_BYTES_MAX: usize = 2_048;

impl HyperswitchConnector {
    /// A card with its security code is paid as it is; a card on file, on
    /// the stored credential its verification left. One without either is
    /// refused before anything is sent.
    pub(super) async fn authorise_now(
        &self,
        request: AuthoriseRequest,
    ) -> Result<Authorisation, ConnectorError> {
        check_authorise(&request)?;
        let payment_id = api::object_id(&request.reference);
        let credential =
            StoredCredential::for_connector(request.stored_credential.as_ref(), CONNECTOR_NAME);
        let body = match (&request.card.security_code, credential) {
            (Some(security_code), _) => self.card_body(&request, &payment_id, security_code)?,
            (None, Some(network_transaction_id)) => {
                self.on_file_body(&request, &payment_id, network_transaction_id)?
            }
            (None, None) => return Err(ConnectorError::NeedsVerification),
        };
        let mut budget = Budget::new();
        let payment = self.create(&mut budget, body, &payment_id).await?;
        let payment = self.settle(&mut budget, payment).await?;
        authorisation_of(payment, &request)
    }

    /// `POST /payments` until Hyperswitch has the payment: a retry of a
    /// create that landed finds it by its id, one that did not is sent
    /// again with the same id.
    pub(super) async fn create(
        &self,
        budget: &mut Budget,
        body: Zeroizing<Vec<u8>>,
        payment_id: &str,
    ) -> Result<Payment, ConnectorError> {
        loop {
            let reply = self
                .send(budget, Method::Post, "/payments".into(), Some(body.clone()))
                .await;
            let step = match client::decode::<Payment>(reply) {
                Decoded::Answer(payment) => Step::Done(payment),
                // A retry of a create that landed: its payment is the answer.
                Decoded::Refused { code, .. } if code == api::CODE_DUPLICATE => {
                    self.created(budget, payment_id, "its id is taken").await
                }
                Decoded::Refused { code, message, .. } => {
                    Step::Fail(refusal_of_create(&code, &message))
                }
                Decoded::Unknown(reason) => self.created(budget, payment_id, &reason).await,
            };
            match step {
                Step::Done(payment) => return Ok(payment),
                Step::Again => pause().await,
                Step::Fail(error) => return Err(error),
            }
        }
    }

    /// Whether a create whose answer we lack made the payment.
    async fn created(&self, budget: &mut Budget, payment_id: &str, reason: &str) -> Step<Payment> {
        tracing::warn!(
            payment_id,
            reason,
            "hyperswitch: no answer to a create; retrieving the payment"
        );
        match self
            .lookup::<Payment>(budget, &payment_path(payment_id))
            .await
        {
            Lookup::Found(payment) => Step::Done(payment),
            Lookup::NotFound if budget.left() > 0 => Step::Again,
            Lookup::NotFound => Step::Fail(ConnectorError::Timeout),
            Lookup::Unanswered(reason) => {
                tracing::warn!(
                    payment_id,
                    reason,
                    "hyperswitch: the payment could not be retrieved"
                );
                Step::Fail(ConnectorError::Timeout)
            }
        }
    }

    /// Waits out `processing`, which means the processor has not answered
    /// Hyperswitch yet.
    pub(super) async fn settle(
        &self,
        budget: &mut Budget,
        mut payment: Payment,
    ) -> Result<Payment, ConnectorError> {
        while payment.status == PaymentStatus::Processing {
            pause().await;
            match self
                .lookup::<Payment>(budget, &payment_path(&payment.payment_id))
                .await
            {
                Lookup::Found(next) => payment = next,
                Lookup::NotFound | Lookup::Unanswered(_) => return Err(ConnectorError::Timeout),
            }
        }
        Ok(payment)
    }

    /// A payment with the card and its security code.
    fn card_body(
        &self,
        request: &AuthoriseRequest,
        payment_id: &str,
        security_code: &str,
    ) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
        write_body(&api::PaymentCreate {
            amount: request.amount_minor,
            currency: &request.currency,
            payment_id,
            confirm: true,
            capture_method: Some(capture_method(request.capture)),
            authentication_type: api::AUTHENTICATION_NO_THREE_DS,
            payment_method: Some(api::PAYMENT_METHOD_CARD),
            payment_method_data: Some(api::PaymentMethodData {
                card: card_data(&request.card, security_code),
            }),
            payment_type: None,
            setup_future_usage: None,
            customer_id: None,
            customer_acceptance: None,
            off_session: None,
            recurring_details: None,
            profile_id: self.profile_id.as_deref(),
            merchant_order_reference_id: &request.reference,
        })
    }

    pub(super) async fn capture_now(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
    ) -> Result<(), ConnectorError> {
        let payment_id = checked_id(issuer_ref)?;
        check_amount(amount_minor)?;
        let body = json_body(&api::PaymentCapture {
            amount_to_capture: amount_minor,
        })?;
        let path = format!("/payments/{payment_id}/capture");
        let captured = |payment: &Payment| {
            matches!(
                payment.status,
                PaymentStatus::Succeeded
                    | PaymentStatus::PartiallyCaptured
                    | PaymentStatus::PartiallyCapturedAndCapturable
            ) && payment.amount_received == Some(amount_minor)
        };
        self.move_money(
            &mut Budget::new(),
            payment_id,
            "capture",
            path,
            body,
            captured,
        )
        .await
    }

    /// Reads the payment first: Hyperswitch marks any payment it cancels
    /// `cancelled`, also one already partly captured, and then refuses to
    /// refund it, so a cancel is sent only while the whole hold is there.
    pub(super) async fn void_now(&self, issuer_ref: &str) -> Result<(), ConnectorError> {
        let payment_id = checked_id(issuer_ref)?;
        let mut budget = Budget::new();
        let payment = match self
            .lookup::<Payment>(&mut budget, &payment_path(payment_id))
            .await
        {
            Lookup::Found(payment) => self.settle(&mut budget, payment).await?,
            Lookup::NotFound => {
                return Err(rejected(format!("hyperswitch has no payment {payment_id}")));
            }
            Lookup::Unanswered(_) => return Err(ConnectorError::Timeout),
        };
        if released(&payment) {
            return Ok(());
        }
        if payment.status != PaymentStatus::RequiresCapture {
            return Err(rejected(format!(
                "hyperswitch payment {payment_id} is {}: nothing is held to void",
                status_name(payment.status)
            )));
        }
        let body = json_body(&api::PaymentCancel {
            cancellation_reason: api::CANCELLATION_REASON,
        })?;
        let path = format!("/payments/{payment_id}/cancel");
        self.move_money(&mut budget, payment_id, "void", path, body, released)
            .await
    }

    /// Finds the payment our reference made, by the id derived from it,
    /// and undoes it: a hold cancelled, an automatic capture refunded
    /// whole. Hyperswitch cannot bar an id it has not seen, so a create
    /// still in flight when it answers "not found" could land later; our
    /// creates are retried only within the authorise call that timed out,
    /// which is over by the time anyone reverses.
    pub(super) async fn reverse_now(&self, reference: &str) -> Result<Reversal, ConnectorError> {
        if reference.is_empty() || reference.len() > REFERENCE_BYTES_MAX {
            return Err(rejected(format!(
                "the reference must be 1 to {REFERENCE_BYTES_MAX} bytes long"
            )));
        }
        let payment_id = api::object_id(reference);
        let mut budget = Budget::new();
        let payment = match self
            .lookup::<Payment>(&mut budget, &payment_path(&payment_id))
            .await
        {
            Lookup::Found(payment) => self.settle(&mut budget, payment).await?,
            Lookup::NotFound => return Ok(Reversal::NothingHeld),
            Lookup::Unanswered(_) => return Err(ConnectorError::Timeout),
        };
        match payment.status {
            PaymentStatus::RequiresCapture => {
                self.void_now(&payment_id).await?;
                Ok(Reversal::Released)
            }
            PaymentStatus::Succeeded => {
                let captured_minor = payment.amount_received.unwrap_or(payment.amount);
                let refund_reference = format!("{reference}:reversal");
                self.refund_now(&payment_id, captured_minor, &refund_reference)
                    .await?;
                Ok(Reversal::Released)
            }
            PaymentStatus::Failed | PaymentStatus::Cancelled | PaymentStatus::Expired => {
                Ok(Reversal::NothingHeld)
            }
            other => Err(rejected(format!(
                "hyperswitch payment {payment_id} is {}: it cannot be reversed as it stands",
                status_name(other)
            ))),
        }
    }

    /// A capture or a void: done when the payment reads as `done`. A refusal
    /// may be the retry of a request that landed, and a lost answer may
    /// hide one, so both are settled by retrieving the payment.
    async fn move_money(
        &self,
        budget: &mut Budget,
        payment_id: &str,
        verb: &str,
        path: String,
        body: Zeroizing<Vec<u8>>,
        done: impl Fn(&Payment) -> bool,
    ) -> Result<(), ConnectorError> {
        loop {
            let reply = self
                .send(budget, Method::Post, path.clone(), Some(body.clone()))
                .await;
            let payment = match client::decode::<Payment>(reply) {
                Decoded::Answer(payment) => payment,
                Decoded::Refused { code, message, .. } => {
                    let refusal = format!("hyperswitch refused the {verb}: {code}: {message}");
                    return match self
                        .lookup::<Payment>(budget, &payment_path(payment_id))
                        .await
                    {
                        Lookup::Found(payment) if done(&payment) => Ok(()),
                        _ => Err(rejected(refusal)),
                    };
                }
                Decoded::Unknown(reason) => {
                    match self.still_held(budget, payment_id, &reason).await {
                        Step::Done(payment) => payment,
                        Step::Again => continue,
                        Step::Fail(error) => return Err(error),
                    }
                }
            };
            let payment = self.settle(budget, payment).await?;
            if done(&payment) {
                return Ok(());
            }
            return Err(rejected(format!(
                "the {verb} left hyperswitch payment {payment_id} {}: {}",
                status_name(payment.status),
                payment
                    .error_message
                    .as_deref()
                    .unwrap_or("no reason given")
            )));
        }
    }

    /// After a capture or void whose answer was lost: a payment still
    /// waiting for its capture means the request did not land.
    async fn still_held(
        &self,
        budget: &mut Budget,
        payment_id: &str,
        reason: &str,
    ) -> Step<Payment> {
        tracing::warn!(
            payment_id,
            reason,
            "hyperswitch: no answer; retrieving the payment"
        );
        match self
            .lookup::<Payment>(budget, &payment_path(payment_id))
            .await
        {
            Lookup::Found(payment) if payment.status == PaymentStatus::RequiresCapture => {
                if budget.left() == 0 {
                    return Step::Fail(ConnectorError::Timeout);
                }
                pause().await;
                Step::Again
            }
            Lookup::Found(payment) => Step::Done(payment),
            Lookup::NotFound => {
                Step::Fail(rejected(format!("hyperswitch has no payment {payment_id}")))
            }
            Lookup::Unanswered(reason) => {
                tracing::warn!(
                    payment_id,
                    reason,
                    "hyperswitch: the payment could not be retrieved"
                );
                Step::Fail(ConnectorError::Timeout)
            }
        }
    }
}

/// Nothing is held: cancelled, or partly captured with the rest released
/// (Hyperswitch's `manual` capture is single, so the remainder goes).
fn released(payment: &Payment) -> bool {
    payment.status == PaymentStatus::Cancelled
        || (payment.status == PaymentStatus::PartiallyCaptured
            && payment.amount_capturable.unwrap_or(0) == 0)
}

pub(super) fn payment_path(payment_id: &str) -> String {
    format!("/payments/{payment_id}?force_sync=true")
}

/// The card as `Card` takes it, with its security code.
pub(super) fn card_data<'a>(card: &'a CardDetails, security_code: &'a str) -> api::Card<'a> {
    api::Card {
        card_number: &card.pan,
        card_exp_month: format!("{:02}", card.expiry_month),
        card_exp_year: format!("{:04}", card.expiry_year),
        card_cvc: security_code,
    }
}

pub(super) fn capture_method(capture: CaptureMethod) -> api::CaptureMethodWire {
    match capture {
        CaptureMethod::Manual => api::CaptureMethodWire::Manual,
        CaptureMethod::Automatic => api::CaptureMethodWire::Automatic,
    }
}

/// Writes a create body into room reserved for it (see
/// [`CREATE_BODY_BYTES_MAX`]).
pub(super) fn write_body(
    create: &api::PaymentCreate<'_>,
) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
    let mut body = Zeroizing::new(Vec::with_capacity(CREATE_BODY_BYTES_MAX));
    serde_json::to_writer(&mut *body, create)
        .map_err(|e| rejected(format!("the request could not be written: {e}")))?;
    Ok(body)
}

/// The reference and the currency, as Hyperswitch takes them.
pub(super) fn check_reference_and_currency(
    reference: &str,
    currency: &str,
) -> Result<(), ConnectorError> {
    if reference.is_empty() || reference.len() > REFERENCE_BYTES_MAX {
        return Err(rejected(format!(
            "the reference must be 1 to {REFERENCE_BYTES_MAX} bytes long"
        )));
    }
    if currency.len() != CURRENCY_CODE_LENGTH || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(rejected(format!(
            "{currency:?} is not an ISO 4217 alphabetic code"
        )));
    }
    Ok(())
}

/// Refusals Hyperswitch would give, made here before a card number leaves
/// the process.
fn check_authorise(request: &AuthoriseRequest) -> Result<(), ConnectorError> {
    check_reference_and_currency(&request.reference, &request.currency)?;
    check_amount(request.amount_minor)?;
    if request.tap.is_some() {
        return Err(rejected(
            "hyperswitch has no field for a card tap's cryptogram, so the tap could not be verified"
                .into(),
        ));
    }
    if !(1..=12).contains(&request.card.expiry_month) {
        return Err(ConnectorError::Declined(Decline::InvalidCard));
    }
    if let Some(code) = &request.card.security_code {
        card::check_security_code(code)
            .map_err(|_| ConnectorError::Declined(Decline::InvalidCard))?;
    }
    Ok(())
}

/// What a payment Hyperswitch created means for the authorisation asked for.
fn authorisation_of(
    payment: Payment,
    request: &AuthoriseRequest,
) -> Result<Authorisation, ConnectorError> {
    if payment.amount != request.amount_minor || payment.currency != request.currency {
        return Err(rejected(format!(
            "hyperswitch payment {} is for {} {}, not {} {}: the reference was used for another payment",
            payment.payment_id,
            payment.amount,
            payment.currency,
            request.amount_minor,
            request.currency
        )));
    }
    match (payment.status, request.capture) {
        (PaymentStatus::RequiresCapture, CaptureMethod::Manual) | (PaymentStatus::Succeeded, _) => {
            Ok(Authorisation {
                approval_code: payment.connector_transaction_id.unwrap_or_default(),
                issuer_ref: payment.payment_id,
            })
        }
        (PaymentStatus::Failed, _) => {
            let decline = decline_of(&payment);
            tracing::info!(
                payment_id = payment.payment_id,
                error_code = payment.error_code,
                unified_code = payment.unified_code,
                decline = decline.code(),
                "hyperswitch: declined"
            );
            Err(ConnectorError::Declined(decline))
        }
        // Only a shopper at a browser could answer a 3-D Secure challenge.
        (PaymentStatus::RequiresCustomerAction, _) => {
            tracing::info!(
                payment_id = payment.payment_id,
                "hyperswitch: the processor demanded 3-D Secure"
            );
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        }
        (status, _) => Err(rejected(format!(
            "hyperswitch left payment {} {} ({} capture asked)",
            payment.payment_id,
            status_name(status),
            match request.capture {
                CaptureMethod::Manual => "manual",
                CaptureMethod::Automatic => "automatic",
            }
        ))),
    }
}

/// The processor's own words, read for the few reasons facepay names;
/// anything else is the issuer's plain refusal.
pub(super) fn decline_of(payment: &Payment) -> Decline {
    let said = format!(
        "{} {}",
        payment.error_code.as_deref().unwrap_or_default(),
        payment.error_message.as_deref().unwrap_or_default()
    )
    .to_ascii_lowercase();
    if said.contains("insufficient") {
        Decline::InsufficientFunds
    } else if said.contains("expired") {
        Decline::ExpiredCard
    } else if ["invalid_number", "incorrect_number", "invalid card number"]
        .iter()
        .any(|words| said.contains(words))
    {
        Decline::InvalidCard
    } else if ["incorrect_cvc", "invalid_cvc", "security code is incorrect"]
        .iter()
        .any(|words| said.contains(words))
    {
        Decline::IncorrectSecurityCode
    } else {
        Decline::DoNotHonour
    }
}

/// A create Hyperswitch refused. `CE_04` and `CE_05` are the processor's
/// verdict on the card; everything else is about the request.
fn refusal_of_create(code: &str, message: &str) -> ConnectorError {
    match code {
        api::CODE_CARD_INVALID => ConnectorError::Declined(Decline::InvalidCard),
        api::CODE_CARD_EXPIRED => ConnectorError::Declined(Decline::ExpiredCard),
        _ if message.eq_ignore_ascii_case("card expired") => {
            ConnectorError::Declined(Decline::ExpiredCard)
        }
        _ => rejected(format!(
            "hyperswitch refused the payment: {code}: {message}"
        )),
    }
}

/// The status as Hyperswitch writes it.
pub(super) fn status_name<S: serde::Serialize>(status: S) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CardDetails;

    fn request() -> AuthoriseRequest {
        AuthoriseRequest {
            reference: "pay_1".into(),
            card: CardDetails {
                pan: "4242424242424242".into(),
                expiry_month: 12,
                expiry_year: 2099,
                security_code: Some("123".into()),
            },
            amount_minor: 6_540,
            currency: "USD".into(),
            tap: None,
            capture: CaptureMethod::Manual,
            stored_credential: None,
        }
    }

    fn payment(status: PaymentStatus) -> Payment {
        Payment {
            payment_id: "pay_1".into(),
            status,
            amount: 6_540,
            currency: "USD".into(),
            amount_capturable: Some(6_540),
            amount_received: None,
            connector_transaction_id: Some("993672945374576J".into()),
            error_code: None,
            error_message: None,
            unified_code: None,
            network_transaction_id: None,
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let held = authorisation_of(payment(PaymentStatus::RequiresCapture), &request());
        let Ok(held) = held else {
            panic!("requires_capture authorises: {held:?}");
        };
        assert_eq!(held.issuer_ref, "pay_1");
        assert_eq!(held.approval_code, "993672945374576J");
        let automatic = AuthoriseRequest {
            capture: CaptureMethod::Automatic,
            ..request()
        };
        assert!(authorisation_of(payment(PaymentStatus::Succeeded), &automatic).is_ok());
        // Asked to capture at once but left waiting for a capture.
        let waiting = authorisation_of(payment(PaymentStatus::RequiresCapture), &automatic);
        assert!(
            matches!(waiting, Err(ConnectorError::Rejected(_))),
            "{waiting:?}"
        );
        let challenged =
            authorisation_of(payment(PaymentStatus::RequiresCustomerAction), &request());
        assert!(matches!(
            challenged,
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        ));
        let cancelled = authorisation_of(payment(PaymentStatus::Cancelled), &request());
        assert!(matches!(cancelled, Err(ConnectorError::Rejected(_))));
    }

    #[test]
    fn a_reference_reused_for_another_amount_is_refused() {
        let other = Payment {
            amount: 1,
            ..payment(PaymentStatus::RequiresCapture)
        };
        let result = authorisation_of(other, &request());
        assert!(
            matches!(result, Err(ConnectorError::Rejected(_))),
            "{result:?}"
        );
    }

    #[test]
    fn declines_are_read_from_the_processor_words() {
        let failed = |code: &str, message: &str| Payment {
            error_code: Some(code.into()),
            error_message: Some(message.into()),
            ..payment(PaymentStatus::Failed)
        };
        let cases = [
            (
                "card_declined",
                "decline_code - insufficient_funds",
                Decline::InsufficientFunds,
            ),
            (
                "expired_card",
                "Your card has expired.",
                Decline::ExpiredCard,
            ),
            (
                "incorrect_number",
                "Your card number is incorrect.",
                Decline::InvalidCard,
            ),
            (
                "incorrect_cvc",
                "Your card's security code is incorrect.",
                Decline::IncorrectSecurityCode,
            ),
            (
                "card_declined",
                "message - Your card was declined., decline_code - generic_decline",
                Decline::DoNotHonour,
            ),
        ];
        for (code, message, expected) in cases {
            assert_eq!(decline_of(&failed(code, message)), expected, "{code}");
        }
        assert_eq!(
            refusal_of_create("CE_05", "The card has expired").code(),
            "expired_card"
        );
        assert_eq!(
            refusal_of_create("IR_16", "Card Expired").code(),
            "expired_card"
        );
        assert_eq!(
            refusal_of_create("IR_04", "Missing required param: currency").code(),
            "issuer_rejected"
        );
    }

    #[test]
    fn requests_hyperswitch_cannot_take_are_refused_here() {
        let mut long_code = request();
        long_code.card.security_code = Some("12345".into());
        assert!(matches!(
            check_authorise(&long_code),
            Err(ConnectorError::Declined(Decline::InvalidCard))
        ));
        let lower_currency = AuthoriseRequest {
            currency: "usd".into(),
            ..request()
        };
        assert!(check_authorise(&lower_currency).is_err());
        let nothing = AuthoriseRequest {
            amount_minor: 0,
            ..request()
        };
        assert!(check_authorise(&nothing).is_err());
        assert!(check_authorise(&request()).is_ok());
    }

    #[test]
    fn status_names_are_hyperswitch_words() {
        assert_eq!(
            status_name(PaymentStatus::RequiresCapture),
            "requires_capture"
        );
        assert_eq!(status_name(api::RefundStatus::Pending), "pending");
    }
}

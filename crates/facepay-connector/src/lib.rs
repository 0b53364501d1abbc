//! The card-issuer side of a payment.
//!
//! A [`Connector`] authorises an amount on a card, then captures, voids or
//! refunds it, against one issuer or acquirer. The rest of facepay codes
//! against the trait only, so a real acquirer can replace the simulator
//! without touching the payment flow. [`card`] holds the checks that need no
//! issuer: digits, length, Luhn check digit, brand and expiry.
//!
//! # The simulator
//!
//! [`SimulatedIssuer`] is an in-process stand-in for an issuer, for
//! development, demos and tests. It moves no money and talks to no network.
//! It keeps its holds in memory, enforces the same rules a real issuer would
//! (no capture beyond the hold, no refund beyond the capture, idempotent
//! references) and answers these test cards ([`TEST_CARDS`]):
//!
//! | Card number        | Outcome                                                    |
//! |--------------------|------------------------------------------------------------|
//! | `4242424242424242` | approves (Visa)                                            |
//! | `5555555555554444` | approves (Mastercard)                                      |
//! | `378282246310005`  | approves (Amex)                                            |
//! | `4000000000009995` | declines `insufficient_funds`                              |
//! | `4000000000000069` | declines `expired_card`, whatever the expiry says          |
//! | `4000000000000002` | declines `do_not_honour`                                   |
//! | `4000000000000119` | never answers: times out after `timeout_ms`                |
//! | `4000000000000127` | approves, but the answer is lost: a hold and a timeout     |
//!
//! Any other Luhn-valid number approves; a number that fails the card checks
//! declines `invalid_card`; an expiry before the current UTC month declines
//! `expired_card`. Every simulated card's security code is `737` (`7373` on
//! Amex, [`simulator::printed_security_code`]); another code declines
//! `incorrect_security_code`.
//!
//! # Cards on file
//!
//! A card's security code may not be kept after it was used (PCI DSS), so a
//! card is verified once, when the cardholder adds it and types its code
//! ([`Connector::verify_card`]): a customer-initiated verification that
//! charges nothing and records the cardholder's consent to keep the card on
//! file. The issuer's reference to it, a [`StoredCredential`], is what every
//! later merchant-initiated payment on the card names instead of the code
//! ([`AuthoriseRequest::stored_credential`]). A card that has none is
//! refused with [`ConnectorError::NeedsVerification`] before anything is
//! sent. The simulator's credential is a MAC of the card's number under its
//! public key, so it survives the simulator's restart and pays for that
//! card only.
//!
//! # Real acquirers
//!
//! [`hyperswitch::HyperswitchConnector`] reaches a Hyperswitch deployment, the
//! open-source payment switch, and through it the processors configured there.

pub mod card;
pub mod hyperswitch;
pub mod simulator;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use simulator::{SimulatedIssuer, SimulatorConfig, TEST_CARDS};

/// What every [`Connector`] call returns: a boxed future, so the trait stays
/// usable as `dyn Connector`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Card data handed to the connector for one call.
#[derive(Clone)]
pub struct CardDetails {
    pub pan: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    /// The card security code (CVC2/CVV2) when the cardholder has just typed
    /// it. PCI DSS forbids keeping it after an authorisation, so a card on
    /// file never has one.
    pub security_code: Option<String>,
}

/// The number and the security code are wiped from memory when the last
/// copy goes.
impl Drop for CardDetails {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pan);
        if let Some(code) = &mut self.security_code {
            zeroize::Zeroize::zeroize(code);
        }
    }
}

/// Requests get logged; the full card number must never reach a log, so
/// Debug shows the last four digits only, and of the security code only
/// whether there is one.
impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardDetails")
            .field("pan", &format_args!("****{}", card::last4(&self.pan)))
            .field("expiry_month", &self.expiry_month)
            .field("expiry_year", &self.expiry_year)
            .field("security_code", &self.security_code.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Longest stored credential id a connector hands out or takes; network
/// transaction ids are 15 to 20 characters.
pub const STORED_CREDENTIAL_ID_BYTES_MAX: usize = 255;

#[derive(Debug, Clone)]
pub struct AuthoriseRequest {
    /// Our payment id; the issuer deduplicates on it (a retried authorise
    /// with the same reference returns the first answer, never a second hold).
    pub reference: String,
    pub card: CardDetails,
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code, e.g. "KRW".
    pub currency: String,
    /// The chip's cryptogram when the card was tapped, as an authorisation
    /// carries it (ISO 8583 field 55).
    pub tap: Option<CardTap>,
    /// Whether the issuer captures with the authorisation.
    pub capture: CaptureMethod,
    /// The card's stored credential, when it was verified on this
    /// connector: the payment is merchant-initiated on it, without the
    /// security code.
    pub stored_credential: Option<StoredCredential>,
}

/// A card the cardholder has just added, security code and all, to verify
/// once with the issuer and keep on file. Nothing is charged.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Our reference for the verification (the card's id); the issuer
    /// deduplicates on it, so a retry gives the first answer.
    pub reference: String,
    /// Whom the card belongs to, as the issuer should know them (our user
    /// id); issuers keep stored credentials per customer.
    pub customer: String,
    /// [`CardDetails::security_code`] must be there.
    pub card: CardDetails,
    /// ISO 4217 alphabetic code the zero-amount verification names.
    pub currency: String,
    /// When the cardholder agreed to keep the card on file, Unix ms.
    pub agreed_at_ms: i64,
}

/// The issuer's reference to a card kept on file with its holder's
/// consent: what [`Connector::verify_card`] returned, named by each later
/// payment on the card instead of the security code. It is no card data
/// (PCI DSS lets it be stored) and means something only to the connector
/// that made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    /// The [`Connector::name`] of the connector that made it.
    pub connector: String,
    /// The connector's reference: for Hyperswitch, the card network's
    /// transaction id of the verification.
    pub id: String,
}

impl StoredCredential {
    /// The credential when `connector` made it and it is well formed; a
    /// credential of another connector is no credential here.
    pub fn for_connector<'a>(
        credential: Option<&'a StoredCredential>,
        connector: &str,
    ) -> Option<&'a str> {
        let credential = credential?;
        let well_formed = !credential.id.is_empty()
            && credential.id.len() <= STORED_CREDENTIAL_ID_BYTES_MAX
            && credential.id.bytes().all(|b| b.is_ascii_graphic());
        (credential.connector == connector && well_formed).then_some(credential.id.as_str())
    }
}

/// When the money moves. `Manual`, the default, places a hold that a later
/// [`Connector::capture`] (or [`Connector::void`]) settles; `Automatic`
/// captures the whole amount with the authorisation in one call to the
/// issuer, so the caller must not capture it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaptureMethod {
    #[default]
    Manual,
    Automatic,
}

/// A tap of the physical card: what the chip signed and its ARQC. The
/// issuer checks the cryptogram over the authorisation's own amount and
/// currency, so a tap for another amount does not verify.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardTap {
    pub data: facepay_emv::TransactionData,
    pub arqc: [u8; 8],
}

/// An approved hold on the card.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Authorisation {
    /// The issuer's id for the hold; every later call names it.
    pub issuer_ref: String,
    /// The code the issuer gives for the approval, printed on receipts.
    pub approval_code: String,
}

/// What a [`Connector::reverse`] found under our reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversal {
    /// A hold (or an automatic capture) was made under it and is now undone.
    Released,
    /// The issuer has nothing under it: the authorisation never arrived,
    /// was declined, or was already released.
    NothingHeld,
}

impl Reversal {
    /// The same stable name serde writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Reversal::Released => "released",
            Reversal::NothingHeld => "nothing_held",
        }
    }
}

/// Why an issuer said no to an authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decline {
    InsufficientFunds,
    ExpiredCard,
    DoNotHonour,
    InvalidCard,
    /// A card tap whose cryptogram did not verify, or was seen before.
    CardTapInvalid,
    /// The security code typed is not the card's.
    IncorrectSecurityCode,
}

impl Decline {
    /// A stable machine code for APIs, the same name serde writes.
    pub fn code(self) -> &'static str {
        match self {
            Decline::InsufficientFunds => "insufficient_funds",
            Decline::ExpiredCard => "expired_card",
            Decline::DoNotHonour => "do_not_honour",
            Decline::InvalidCard => "invalid_card",
            Decline::CardTapInvalid => "card_tap_invalid",
            Decline::IncorrectSecurityCode => "incorrect_security_code",
        }
    }

    /// A sentence that can be shown to the shopper.
    pub fn message(self) -> &'static str {
        match self {
            Decline::InsufficientFunds => "the card has insufficient funds",
            Decline::ExpiredCard => "the card has expired",
            Decline::DoNotHonour => "the card issuer declined the payment",
            Decline::InvalidCard => "the card number is not valid",
            Decline::CardTapInvalid => "the card tap could not be verified; tap the card again",
            Decline::IncorrectSecurityCode => {
                "the card security code is not the card's; check the three or four digits on the card"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("declined: {}", .0.message())]
    Declined(Decline),
    /// The outcome is unknown: the issuer may or may not have acted, so the
    /// caller retries with the same reference rather than a new one.
    #[error("the issuer did not answer in time")]
    Timeout,
    /// The request broke the issuer's rules, such as capturing more than was
    /// authorised; retrying it unchanged will not help.
    #[error("the issuer refused the request: {0}")]
    Rejected(String),
    /// The card on file has no stored credential this connector can pay
    /// on (added before cards were verified, or verified with another
    /// acquirer): nothing was sent. Adding the card again verifies it.
    #[error("this card must be verified before it can pay: remove it and add it again in the app")]
    NeedsVerification,
}

impl ConnectorError {
    /// A stable machine code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::Declined(decline) => decline.code(),
            ConnectorError::Timeout => "issuer_timeout",
            ConnectorError::Rejected(_) => "issuer_rejected",
            ConnectorError::NeedsVerification => "card_needs_verification",
        }
    }
}

/// One card issuer or acquirer.
pub trait Connector: Send + Sync {
    /// Stable name recorded with each payment ("simulated_issuer" for the simulator).
    fn name(&self) -> &'static str;

    /// Verifies a card its holder has just added, with its security code,
    /// without charging it, and returns the stored credential later
    /// payments on the card name. Retrying with the same reference gives
    /// the same credential.
    fn verify_card(
        &self,
        request: VerifyRequest,
    ) -> BoxFuture<'_, Result<StoredCredential, ConnectorError>>;

    /// Places a hold of `amount_minor` on the card.
    fn authorise(
        &self,
        request: AuthoriseRequest,
    ) -> BoxFuture<'_, Result<Authorisation, ConnectorError>>;

    /// Full or partial capture; `reference` is an idempotency reference for this capture.
    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// Releases the remaining hold.
    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// Undoes whatever an authorisation sent under our `reference` did,
    /// when its answer never came (a timeout, or our process died before
    /// recording it): an ISO 8583 reversal, found by the reference alone.
    /// Whatever the authorisation did is undone, a hold voided or an
    /// automatic capture given back, and an authorisation under the
    /// reference that arrives after the reversal holds nothing. A retried
    /// reversal undoes nothing twice (it may answer `NothingHeld` where
    /// the first, whose answer was lost, released the hold).
    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>>;

    /// Partial or full refund of a captured amount; `reference` deduplicates retries of the same refund.
    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_debug_hides_the_number() {
        let card = CardDetails {
            pan: "4242424242421234".into(),
            expiry_month: 7,
            expiry_year: 2031,
            security_code: Some("987".into()),
        };
        let request = AuthoriseRequest {
            reference: "pay_1".into(),
            card: card.clone(),
            amount_minor: 1_000,
            currency: "KRW".into(),
            tap: None,
            capture: CaptureMethod::Manual,
            stored_credential: None,
        };
        for printed in [
            format!("{card:?}"),
            format!("{request:?}"),
            format!("{request:#?}"),
        ] {
            assert!(!printed.contains(&card.pan), "{printed}");
            assert!(!printed.contains("424242"), "{printed}");
            assert!(!printed.contains("987"), "{printed}");
            assert!(printed.contains("****1234"), "{printed}");
            assert!(printed.contains("2031"), "{printed}");
        }
    }

    #[test]
    fn a_credential_counts_only_for_its_connector() {
        let credential = StoredCredential {
            connector: "hyperswitch".into(),
            id: "483297487231504".into(),
        };
        let held = Some(&credential);
        assert_eq!(
            StoredCredential::for_connector(held, "hyperswitch"),
            Some("483297487231504")
        );
        assert_eq!(StoredCredential::for_connector(held, "other"), None);
        assert_eq!(StoredCredential::for_connector(None, "hyperswitch"), None);
        for bad in [
            String::new(),
            "a b".into(),
            "x".repeat(STORED_CREDENTIAL_ID_BYTES_MAX + 1),
        ] {
            let broken = StoredCredential {
                id: bad,
                ..credential.clone()
            };
            assert_eq!(
                StoredCredential::for_connector(Some(&broken), "hyperswitch"),
                None
            );
        }
    }

    #[test]
    fn error_codes_are_stable() {
        let declines = [
            (Decline::InsufficientFunds, "insufficient_funds"),
            (Decline::ExpiredCard, "expired_card"),
            (Decline::DoNotHonour, "do_not_honour"),
            (Decline::InvalidCard, "invalid_card"),
            (Decline::CardTapInvalid, "card_tap_invalid"),
            (Decline::IncorrectSecurityCode, "incorrect_security_code"),
        ];
        for (decline, code) in declines {
            assert_eq!(decline.code(), code);
            assert_eq!(ConnectorError::Declined(decline).code(), code);
            assert_eq!(serde_json::to_value(decline).ok(), Some(code.into()));
        }
        assert_eq!(ConnectorError::Timeout.code(), "issuer_timeout");
        assert_eq!(
            ConnectorError::NeedsVerification.code(),
            "card_needs_verification"
        );
        assert_eq!(
            ConnectorError::Rejected("no".into()).code(),
            "issuer_rejected"
        );
        assert_eq!(
            ConnectorError::Declined(Decline::InsufficientFunds).to_string(),
            "declined: the card has insufficient funds"
        );
    }
}

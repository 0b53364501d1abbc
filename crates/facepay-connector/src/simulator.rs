//! An in-process issuer for development, demos and tests. It moves no money
//! and talks to no network; it keeps holds in memory and applies the rules a
//! real issuer would, so the payment flow meets the same refusals it will
//! meet in production.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::card::{self, CardError};
use crate::{
    Authorisation, AuthoriseRequest, BoxFuture, CaptureMethod, CardDetails, CardTap, Connector,
    ConnectorError, Decline, Reversal, StoredCredential, VerifyRequest,
};

const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
const CARD_EXPIRED: &str = "4000000000000069";
const CARD_DO_NOT_HONOUR: &str = "4000000000000002";
const CARD_NO_ANSWER: &str = "4000000000000119";
const CARD_ANSWER_LOST: &str = "4000000000000127";

/// The card numbers with a documented outcome, as (number, outcome).
pub const TEST_CARDS: &[(&str, &str)] = &[
    ("4242424242424242", "approves (Visa)"),
    ("5555555555554444", "approves (Mastercard)"),
    ("378282246310005", "approves (Amex)"),
    (CARD_INSUFFICIENT_FUNDS, "declines insufficient_funds"),
    (
        CARD_EXPIRED,
        "declines expired_card, whatever the expiry says",
    ),
    (CARD_DO_NOT_HONOUR, "declines do_not_honour"),
    (CARD_NO_ANSWER, "never answers: times out after timeout_ms"),
    (
        CARD_ANSWER_LOST,
        "approves, but the answer is lost: a hold and a timeout",
    ),
];

/// Every capture and refund reference of a hold is remembered so retries are
/// recognised; this bounds how many one hold can collect.
const OPERATIONS_PER_AUTHORISATION_MAX: usize = 1_000;

/// ISO 4217 alphabetic codes are three letters.
const CURRENCY_CODE_LENGTH: usize = 3;

/// The simulator's name, which its stored credentials carry.
const NAME: &str = "simulated_issuer";
/// Stored credentials the simulator hands out start so, never to be taken
/// for a card network's.
pub const SIMULATED_CREDENTIAL_PREFIX: &str = "sim-cit-";
/// The security code printed on every simulated card, as sandbox issuers
/// publish one for their test cards; Amex cards carry four digits.
pub const SIMULATED_SECURITY_CODE: &str = "737";
pub const SIMULATED_SECURITY_CODE_AMEX: &str = "7373";
/// The simulator's key for its stored credentials. Public like its test
/// cards: the credential only has to be bound to its card, so that one
/// card's credential does not pay with another, and to survive a restart
/// of the simulator, which keeps nothing on disk.
const SIMULATED_CREDENTIAL_KEY: &[u8] = b"facepay-simulated-issuer-credential";
/// Hex digits of the credential's MAC kept in its id.
const CREDENTIAL_MAC_HEX_DIGITS: usize = 32;

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Added before every answer, to exercise the caller's waiting paths.
    pub latency_ms: u64,
    /// How long a call may take, latency included, before it answers
    /// `Timeout`. A latency at or above it makes every call time out.
    pub timeout_ms: u64,
    /// Holds kept in memory at most; further approvals are refused.
    pub authorisations_max: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            latency_ms: 0,
            timeout_ms: 2_000,
            authorisations_max: 1_000_000,
        }
    }
}

/// The simulated issuer's EMV master key. Public like its test cards: a
/// test or a demo issues [`facepay_emv::SimulatedCard`]s under it, with
/// [`SIMULATED_CARD_PSN`] as the card sequence number.
pub const SIMULATED_EMV_MASTER_KEY: [u8; 16] = *b"facepay-sim-imk!";
pub const SIMULATED_CARD_PSN: &str = "00";

/// A simulated card issuer behind the [`Connector`] trait. See the crate
/// documentation for its test cards.
pub struct SimulatedIssuer {
    config: SimulatorConfig,
    holds: Mutex<Holds>,
    /// Checks card taps and keeps each card's last counter (in memory,
    /// like the holds: the simulator's own database).
    emv: facepay_emv::Issuer,
}

#[derive(Default)]
struct Holds {
    by_issuer_ref: HashMap<String, Hold>,
    /// Our payment reference to the hold it produced, so a retried
    /// authorise finds its first answer instead of placing a second hold.
    issuer_ref_by_reference: HashMap<String, String>,
    /// References reversed before any authorisation arrived under them: a
    /// late one is refused rather than held. Counted with the holds
    /// against `authorisations_max`.
    reversed_references: HashSet<String>,
    /// Source of unique issuer references and approval codes; the simulator
    /// needs them distinct, not unpredictable.
    approvals_count: u64,
}

/// One approved authorisation. Invariant:
/// 0 ≤ refunded_minor ≤ captured_minor ≤ amount_minor.
struct Hold {
    amount_minor: i64,
    currency: String,
    approval_code: String,
    captured_minor: i64,
    refunded_minor: i64,
    voided: bool,
    /// Undone whole by a reversal, so a retried reversal answers as the
    /// first did.
    reversed: bool,
    /// Reference to amount, so a retry is a no-op and a reference reused for
    /// a different amount is refused rather than taken for a retry.
    captures: HashMap<String, i64>,
    refunds: HashMap<String, i64>,
}

/// What the simulated issuer does with an authorisation.
enum Answer {
    Approve,
    Decline(Decline),
    Silence,
    /// Approved, the hold placed, and the answer lost on its way back.
    ApproveSilently,
}

/// The outcome of the synchronous part of a call.
enum Outcome<T> {
    Answered(Result<T, ConnectorError>),
    Silence,
}

impl SimulatedIssuer {
    pub fn new(config: SimulatorConfig) -> Self {
        SimulatedIssuer {
            config,
            holds: Mutex::new(Holds::default()),
            emv: facepay_emv::Issuer::new(facepay_emv::DesKey::new(SIMULATED_EMV_MASTER_KEY)),
        }
    }

    /// Every operation leaves the holds consistent before it can fail, so the
    /// state behind a poisoned lock is still sound.
    fn holds(&self) -> MutexGuard<'_, Holds> {
        self.holds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies the latency and the deadline shared by every call. The
    /// deadline covers the latency, as a caller's timer would.
    async fn answer<T>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let latency_ms = self.config.latency_ms;
        let answered = async {
            if latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(latency_ms)).await;
            }
            call.await
        };
        tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), answered)
            .await
            .unwrap_or(Err(ConnectorError::Timeout))
    }

    /// The issuer's side of a tap: the cryptogram must cover this
    /// authorisation's amount and currency, under the card's keys, with a
    /// counter the card has not used before.
    fn check_tap(&self, request: &AuthoriseRequest, tap: &CardTap) -> Result<(), ConnectorError> {
        let currency = facepay_money::Currency::from_code(&request.currency)
            .map_err(|e| rejected(e.to_string()))?;
        let expected = facepay_emv::TransactionData {
            amount_minor: u64::try_from(request.amount_minor).unwrap_or(u64::MAX),
            currency: currency.numeric(),
            ..tap.data.clone()
        };
        self.emv
            .verify(&request.card.pan, SIMULATED_CARD_PSN, &expected, &tap.arqc)
            .map(|_arpc| ())
            .map_err(|_| ConnectorError::Declined(Decline::CardTapInvalid))
    }

    /// The decision and the new hold happen under one lock, so two
    /// concurrent calls with the same reference cannot both place a hold.
    fn authorise_now(
        &self,
        request: &AuthoriseRequest,
        today: (u16, u8),
    ) -> Outcome<Authorisation> {
        let mut holds = self.holds();
        if let Some(first) = holds.replay(&request.reference) {
            return Outcome::Answered(Ok(first));
        }
        if holds.reversed(&request.reference) {
            return Outcome::Answered(Err(rejected(format!(
                "the authorisation {:?} was reversed before it arrived",
                request.reference
            ))));
        }
        if let Err(refusal) = check_request(request) {
            return Outcome::Answered(Err(refusal));
        }
        if let Some(tap) = &request.tap
            && let Err(e) = self.check_tap(request, tap)
        {
            return Outcome::Answered(Err(e));
        }
        match answer_for(&request.card, today) {
            Answer::Silence => Outcome::Silence,
            Answer::Decline(decline) => Outcome::Answered(Err(ConnectorError::Declined(decline))),
            Answer::Approve => {
                Outcome::Answered(holds.place(request, self.config.authorisations_max))
            }
            Answer::ApproveSilently => match holds.place(request, self.config.authorisations_max) {
                Ok(_) => Outcome::Silence,
                Err(e) => Outcome::Answered(Err(e)),
            },
        }
    }

    /// A zero-amount verification: the card's checks and its security
    /// code, then the card's credential. The credential is derived from
    /// the card, so a retried verification gives the first one.
    fn verify_now(&self, request: &VerifyRequest, today: (u16, u8)) -> Outcome<StoredCredential> {
        if let Err(refusal) = check_verify(request) {
            return Outcome::Answered(Err(refusal));
        }
        match verification_answer(&request.card, today) {
            Answer::Silence | Answer::ApproveSilently => Outcome::Silence,
            Answer::Decline(decline) => Outcome::Answered(Err(ConnectorError::Declined(decline))),
            Answer::Approve => {
                Outcome::Answered(credential_id(&request.card.pan).map(|id| StoredCredential {
                    connector: NAME.to_owned(),
                    id,
                }))
            }
        }
    }
}

/// The security code printed on a simulated card.
pub fn printed_security_code(pan: &str) -> &'static str {
    match card::brand(pan) {
        card::CardBrand::Amex => SIMULATED_SECURITY_CODE_AMEX,
        _ => SIMULATED_SECURITY_CODE,
    }
}

/// The simulator's stored credential for a card: a MAC of its number under
/// the simulator's key, so it pays for that card only.
fn credential_id(pan: &str) -> Result<String, ConnectorError> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIMULATED_CREDENTIAL_KEY)
        .map_err(|e| rejected(format!("the credential key is not usable: {e}")))?;
    mac.update(pan.as_bytes());
    let digest = hex::encode(mac.finalize().into_bytes());
    Ok(format!(
        "{SIMULATED_CREDENTIAL_PREFIX}{}",
        &digest[..CREDENTIAL_MAC_HEX_DIGITS]
    ))
}

/// How the cardholder is vouched for: the code they typed, or, for a
/// merchant-initiated payment on file, the credential of the card's
/// verification. Without either, nothing proves the card was verified.
fn check_card_holder(request: &AuthoriseRequest) -> Result<(), ConnectorError> {
    if let Some(code) = &request.card.security_code {
        return check_security_code(&request.card.pan, code);
    }
    let Some(id) = StoredCredential::for_connector(request.stored_credential.as_ref(), NAME) else {
        return Err(ConnectorError::NeedsVerification);
    };
    if id != credential_id(&request.card.pan)? {
        return Err(ConnectorError::Declined(Decline::DoNotHonour));
    }
    Ok(())
}

/// The code's form first, then whether it is the one printed on the card.
fn check_security_code(pan: &str, code: &str) -> Result<(), ConnectorError> {
    card::check_security_code(code).map_err(|_| ConnectorError::Declined(Decline::InvalidCard))?;
    if code != printed_security_code(pan) {
        return Err(ConnectorError::Declined(Decline::IncorrectSecurityCode));
    }
    Ok(())
}

impl Connector for SimulatedIssuer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify_card(
        &self,
        request: VerifyRequest,
    ) -> BoxFuture<'_, Result<StoredCredential, ConnectorError>> {
        Box::pin(self.answer(async move {
            match self.verify_now(&request, card::today_utc()) {
                Outcome::Answered(result) => result,
                // The deadline in `answer` turns this into `Timeout`.
                Outcome::Silence => std::future::pending().await,
            }
        }))
    }

    fn authorise(
        &self,
        request: AuthoriseRequest,
    ) -> BoxFuture<'_, Result<Authorisation, ConnectorError>> {
        Box::pin(self.answer(async move {
            match self.authorise_now(&request, card::today_utc()) {
                Outcome::Answered(result) => result,
                // The deadline in `answer` turns this into `Timeout`.
                Outcome::Silence => std::future::pending().await,
            }
        }))
    }

    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        let reference = reference.to_owned();
        Box::pin(self.answer(async move {
            self.holds()
                .get_mut(&issuer_ref)?
                .capture(amount_minor, &reference)
        }))
    }

    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        Box::pin(self.answer(async move { self.holds().get_mut(&issuer_ref)?.void() }))
    }

    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        let reference = reference.to_owned();
        Box::pin(self.answer(async move {
            self.holds()
                .get_mut(&issuer_ref)?
                .refund(amount_minor, &reference)
        }))
    }

    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>> {
        let reference = reference.to_owned();
        Box::pin(self.answer(async move {
            self.holds()
                .reverse(&reference, self.config.authorisations_max)
        }))
    }
}

fn rejected(reason: String) -> ConnectorError {
    ConnectorError::Rejected(reason)
}

/// Refusals a real issuer gives before it looks at the card.
fn check_request(request: &AuthoriseRequest) -> Result<(), ConnectorError> {
    if request.amount_minor <= 0 {
        return Err(rejected(format!(
            "the amount must be positive, not {}",
            request.amount_minor
        )));
    }
    check_reference_and_currency(&request.reference, &request.currency)?;
    check_card_holder(request)
}

/// A verification without a well-formed security code proves nothing.
fn check_verify(request: &VerifyRequest) -> Result<(), ConnectorError> {
    check_reference_and_currency(&request.reference, &request.currency)?;
    let code = request
        .card
        .security_code
        .as_deref()
        .ok_or_else(|| rejected("a card verification needs the card security code".into()))?;
    check_security_code(&request.card.pan, code)
}

fn check_reference_and_currency(reference: &str, currency: &str) -> Result<(), ConnectorError> {
    if reference.is_empty() {
        return Err(rejected("the reference is empty".into()));
    }
    if currency.len() != CURRENCY_CODE_LENGTH || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(rejected(format!(
            "{currency:?} is not an ISO 4217 alphabetic code"
        )));
    }
    Ok(())
}

/// The scripted test cards first, so their outcome does not depend on the
/// expiry they are sent with; then the checks any issuer makes.
fn answer_for(card_details: &CardDetails, today: (u16, u8)) -> Answer {
    match card_details.pan.as_str() {
        CARD_INSUFFICIENT_FUNDS => Answer::Decline(Decline::InsufficientFunds),
        CARD_EXPIRED => Answer::Decline(Decline::ExpiredCard),
        CARD_DO_NOT_HONOUR => Answer::Decline(Decline::DoNotHonour),
        CARD_NO_ANSWER => Answer::Silence,
        CARD_ANSWER_LOST => Answer::ApproveSilently,
        _ => checked(card_details, today),
    }
}

/// As an authorisation, except that a zero amount needs no funds: the card
/// without funds verifies, and declines only when it is charged. The card
/// whose answers are lost verifies too, so that it can be paid with.
fn verification_answer(card_details: &CardDetails, today: (u16, u8)) -> Answer {
    match card_details.pan.as_str() {
        CARD_INSUFFICIENT_FUNDS | CARD_ANSWER_LOST => checked(card_details, today),
        _ => answer_for(card_details, today),
    }
}

fn checked(card_details: &CardDetails, (today_year, today_month): (u16, u8)) -> Answer {
    let checked = card::validate(
        &card_details.pan,
        card_details.expiry_month,
        card_details.expiry_year,
        today_year,
        today_month,
    );
    match checked {
        Ok(_brand) => Answer::Approve,
        Err(CardError::Expired) => Answer::Decline(Decline::ExpiredCard),
        Err(
            CardError::NotDigits
            | CardError::Length
            | CardError::Luhn
            | CardError::ExpiryMonth
            | CardError::ExpiryYear
            | CardError::SecurityCode,
        ) => Answer::Decline(Decline::InvalidCard),
    }
}

impl Holds {
    /// The first answer under `reference`, unless a reversal undid it.
    fn replay(&self, reference: &str) -> Option<Authorisation> {
        let issuer_ref = self.issuer_ref_by_reference.get(reference)?;
        let hold = self.by_issuer_ref.get(issuer_ref)?;
        if hold.reversed {
            return None;
        }
        Some(Authorisation {
            issuer_ref: issuer_ref.clone(),
            approval_code: hold.approval_code.clone(),
        })
    }

    fn reversed(&self, reference: &str) -> bool {
        self.reversed_references.contains(reference)
            || self
                .issuer_ref_by_reference
                .get(reference)
                .and_then(|issuer_ref| self.by_issuer_ref.get(issuer_ref))
                .is_some_and(|hold| hold.reversed)
    }

    /// The hold made under `reference` undone, or the reference barred
    /// when none was.
    fn reverse(
        &mut self,
        reference: &str,
        authorisations_max: usize,
    ) -> Result<Reversal, ConnectorError> {
        if reference.is_empty() {
            return Err(rejected("the reference is empty".into()));
        }
        let Some(issuer_ref) = self.issuer_ref_by_reference.get(reference).cloned() else {
            if !self.reversed_references.contains(reference) {
                if self.by_issuer_ref.len() + self.reversed_references.len() >= authorisations_max {
                    return Err(rejected(format!(
                        "the simulator already keeps its maximum of {authorisations_max} authorisations"
                    )));
                }
                self.reversed_references.insert(reference.to_owned());
            }
            return Ok(Reversal::NothingHeld);
        };
        self.get_mut(&issuer_ref)?.reverse(reference)
    }

    fn get_mut(&mut self, issuer_ref: &str) -> Result<&mut Hold, ConnectorError> {
        self.by_issuer_ref
            .get_mut(issuer_ref)
            .ok_or_else(|| rejected(format!("there is no authorisation {issuer_ref:?}")))
    }

    fn place(
        &mut self,
        request: &AuthoriseRequest,
        authorisations_max: usize,
    ) -> Result<Authorisation, ConnectorError> {
        if self.by_issuer_ref.len() >= authorisations_max {
            return Err(rejected(format!(
                "the simulator already keeps its maximum of {authorisations_max} authorisations"
            )));
        }
        self.approvals_count += 1;
        let mut hasher = DefaultHasher::new();
        request.reference.hash(&mut hasher);
        let reference_hash = hasher.finish();
        // The reference hash makes references from different runs distinct
        // in logs; the counter alone makes them unique within one run.
        let issuer_ref = format!("sim-{}-{reference_hash:016x}", self.approvals_count);
        let approval_code = format!(
            "{:06}",
            (reference_hash ^ self.approvals_count.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 1_000_000
        );
        // An automatic capture takes the whole amount with the approval,
        // leaving nothing held to capture or void later.
        let captured_minor = match request.capture {
            CaptureMethod::Manual => 0,
            CaptureMethod::Automatic => request.amount_minor,
        };
        let hold = Hold {
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            approval_code: approval_code.clone(),
            captured_minor,
            refunded_minor: 0,
            voided: false,
            reversed: false,
            captures: HashMap::new(),
            refunds: HashMap::new(),
        };
        self.by_issuer_ref.insert(issuer_ref.clone(), hold);
        self.issuer_ref_by_reference
            .insert(request.reference.clone(), issuer_ref.clone());
        Ok(Authorisation {
            issuer_ref,
            approval_code,
        })
    }
}

impl Hold {
    fn capture(&mut self, amount_minor: i64, reference: &str) -> Result<(), ConnectorError> {
        if let Some(&first_minor) = self.captures.get(reference) {
            return self.replayed("capture", reference, first_minor, amount_minor);
        }
        self.check_new_operation(amount_minor)?;
        if self.voided {
            return Err(rejected("the authorisation was voided".into()));
        }
        let held_minor = self.amount_minor - self.captured_minor;
        if amount_minor > held_minor {
            return Err(rejected(format!(
                "capturing {amount_minor} {currency} exceeds the {held_minor} {currency} still held",
                currency = self.currency
            )));
        }
        self.captured_minor += amount_minor;
        self.captures.insert(reference.to_owned(), amount_minor);
        debug_assert!(self.captured_minor <= self.amount_minor);
        Ok(())
    }

    /// Releases what is still held. After a partial capture that is the
    /// remainder; the captured part stays captured and refundable.
    fn void(&mut self) -> Result<(), ConnectorError> {
        if self.voided {
            return Ok(());
        }
        if self.captured_minor == self.amount_minor {
            return Err(rejected(
                "the authorisation is fully captured; nothing is left to void".into(),
            ));
        }
        self.voided = true;
        Ok(())
    }

    /// Everything the authorisation still does undone: the hold voided and
    /// what was captured of it given back, as one reversal.
    fn reverse(&mut self, reference: &str) -> Result<Reversal, ConnectorError> {
        if self.reversed {
            return Ok(Reversal::Released);
        }
        let refundable_minor = self.captured_minor - self.refunded_minor;
        let held = !self.voided && self.captured_minor < self.amount_minor;
        if !held && refundable_minor == 0 {
            return Ok(Reversal::NothingHeld);
        }
        if refundable_minor > 0 {
            self.refund(refundable_minor, &format!("{reference}:reversal"))?;
        }
        self.voided = true;
        self.reversed = true;
        Ok(Reversal::Released)
    }

    fn refund(&mut self, amount_minor: i64, reference: &str) -> Result<(), ConnectorError> {
        if let Some(&first_minor) = self.refunds.get(reference) {
            return self.replayed("refund", reference, first_minor, amount_minor);
        }
        self.check_new_operation(amount_minor)?;
        let refundable_minor = self.captured_minor - self.refunded_minor;
        if amount_minor > refundable_minor {
            return Err(rejected(format!(
                "refunding {amount_minor} {currency} exceeds the {refundable_minor} {currency} captured and not yet refunded",
                currency = self.currency
            )));
        }
        self.refunded_minor += amount_minor;
        self.refunds.insert(reference.to_owned(), amount_minor);
        debug_assert!(self.refunded_minor <= self.captured_minor);
        Ok(())
    }

    /// A retry succeeds without acting again; the same reference with another
    /// amount is a caller bug, not a retry.
    fn replayed(
        &self,
        operation: &str,
        reference: &str,
        first_minor: i64,
        amount_minor: i64,
    ) -> Result<(), ConnectorError> {
        if first_minor == amount_minor {
            return Ok(());
        }
        Err(rejected(format!(
            "{operation} reference {reference:?} was already used for {first_minor} {currency}, not {amount_minor}",
            currency = self.currency
        )))
    }

    fn check_new_operation(&self, amount_minor: i64) -> Result<(), ConnectorError> {
        if amount_minor <= 0 {
            return Err(rejected(format!(
                "the amount must be positive, not {amount_minor}"
            )));
        }
        if self.captures.len() + self.refunds.len() >= OPERATIONS_PER_AUTHORISATION_MAX {
            return Err(rejected(format!(
                "the authorisation already has {OPERATIONS_PER_AUTHORISATION_MAX} captures and refunds"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    /// Far enough ahead that the tests do not expire with the calendar.
    const EXPIRY_YEAR_FUTURE: u16 = 2099;

    fn issuer() -> SimulatedIssuer {
        SimulatedIssuer::new(SimulatorConfig::default())
    }

    fn request(reference: &str, pan: &str, amount_minor: i64) -> AuthoriseRequest {
        AuthoriseRequest {
            reference: reference.into(),
            card: CardDetails {
                pan: pan.into(),
                expiry_month: 12,
                expiry_year: EXPIRY_YEAR_FUTURE,
                // The cardholder at hand; payments on file have their own tests.
                security_code: Some(printed_security_code(pan).to_owned()),
            },
            amount_minor,
            currency: "KRW".into(),
            tap: None,
            capture: CaptureMethod::Manual,
            stored_credential: None,
        }
    }

    fn verification(reference: &str, pan: &str, security_code: Option<&str>) -> VerifyRequest {
        VerifyRequest {
            reference: reference.into(),
            customer: "usr_1".into(),
            card: CardDetails {
                pan: pan.into(),
                expiry_month: 12,
                expiry_year: EXPIRY_YEAR_FUTURE,
                security_code: security_code.map(str::to_owned),
            },
            currency: "KRW".into(),
            agreed_at_ms: 1_767_225_600_000,
        }
    }

    fn decline_of(result: Result<Authorisation, ConnectorError>) -> Option<Decline> {
        match result {
            Err(ConnectorError::Declined(decline)) => Some(decline),
            _ => None,
        }
    }

    fn is_rejected<T>(result: &Result<T, ConnectorError>) -> bool {
        matches!(result, Err(ConnectorError::Rejected(_)))
    }

    async fn approved(issuer: &SimulatedIssuer, reference: &str, amount_minor: i64) -> String {
        match issuer
            .authorise(request(reference, "4242424242424242", amount_minor))
            .await
        {
            Ok(authorisation) => authorisation.issuer_ref,
            Err(error) => panic!("expected an approval, got {error}"),
        }
    }

    #[test]
    fn test_cards_are_valid_numbers() {
        assert_eq!(TEST_CARDS.len(), 8);
        for (pan, _outcome) in TEST_CARDS {
            assert!(card::luhn_valid(pan), "{pan}");
        }
    }

    #[tokio::test]
    async fn approving_test_cards_approve() {
        let issuer = issuer();
        for (index, pan) in ["4242424242424242", "5555555555554444", "378282246310005"]
            .into_iter()
            .enumerate()
        {
            let reference = format!("pay_{index}");
            let authorisation = issuer.authorise(request(&reference, pan, 5_000)).await;
            let Ok(authorisation) = authorisation else {
                panic!("{pan} should approve: {authorisation:?}");
            };
            assert!(authorisation.issuer_ref.starts_with("sim-"));
            assert_eq!(authorisation.approval_code.len(), 6);
            assert!(
                authorisation
                    .approval_code
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            );
        }
    }

    #[tokio::test]
    async fn a_card_tap_verifies_once_for_its_own_amount() {
        use facepay_emv::{DesKey, SimulatedCard, TransactionData};

        let issuer = issuer();
        let pan = "4242424242424242";
        let mut card = SimulatedCard::issue(
            &DesKey::new(SIMULATED_EMV_MASTER_KEY),
            pan,
            SIMULATED_CARD_PSN,
        )
        .unwrap();
        let asked = |amount_minor: u64, unpredictable_number: u32| TransactionData {
            amount_minor,
            other_amount_minor: 0,
            terminal_country: 410,
            tvr: [0; 5],
            currency: 410,
            date: (26, 11, 22),
            transaction_type: 0,
            unpredictable_number,
            aip: [0; 2],
            atc: 0,
        };
        let tapped = |reference: &str, amount_minor: i64, tap: CardTap| AuthoriseRequest {
            tap: Some(tap),
            ..request(reference, pan, amount_minor)
        };
        let (data, arqc) = card.tap(&asked(5_000, 0xA1B2_C3D4)).unwrap();
        let first = CardTap { data, arqc };
        assert!(
            issuer
                .authorise(tapped("pay_1", 5_000, first.clone()))
                .await
                .is_ok()
        );

        let invalid = Err(ConnectorError::Declined(Decline::CardTapInvalid));
        let code = |r: Result<Authorisation, ConnectorError>| r.map_err(|e| e.code().to_owned());
        let invalid = code(invalid);
        // The same cryptogram again, for a new payment: a replay.
        let replay = issuer
            .authorise(tapped("pay_2", 5_000, first.clone()))
            .await;
        assert_eq!(code(replay), invalid);
        // A fresh tap signed for 5,000 presented for 50,000.
        let (data, arqc) = card.tap(&asked(5_000, 7)).unwrap();
        let other_amount = issuer
            .authorise(tapped("pay_3", 50_000, CardTap { data, arqc }))
            .await;
        assert_eq!(code(other_amount), invalid);
        // A forged cryptogram moves no counter: the next honest tap works.
        let (data, mut arqc) = card.tap(&asked(5_000, 8)).unwrap();
        arqc[0] ^= 1;
        let forged = issuer
            .authorise(tapped("pay_4", 5_000, CardTap { data, arqc }))
            .await;
        assert_eq!(code(forged), invalid);
        let (data, arqc) = card.tap(&asked(5_000, 9)).unwrap();
        let honest = CardTap { data, arqc };
        assert!(
            issuer
                .authorise(tapped("pay_5", 5_000, honest.clone()))
                .await
                .is_ok()
        );
        // A counter that goes back: an older, unused tap after a newer one.
        let mut older = SimulatedCard::issue(
            &DesKey::new(SIMULATED_EMV_MASTER_KEY),
            pan,
            SIMULATED_CARD_PSN,
        )
        .unwrap();
        let (data, arqc) = older.tap(&asked(5_000, 10)).unwrap();
        let back = issuer
            .authorise(tapped("pay_6", 5_000, CardTap { data, arqc }))
            .await;
        assert_eq!(code(back), invalid);
        // A retry of an approved authorisation answers as the first time.
        assert!(
            issuer
                .authorise(tapped("pay_5", 5_000, honest))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn declining_test_cards_decline() {
        let issuer = issuer();
        let cases = [
            (CARD_INSUFFICIENT_FUNDS, Decline::InsufficientFunds),
            (CARD_EXPIRED, Decline::ExpiredCard),
            (CARD_DO_NOT_HONOUR, Decline::DoNotHonour),
        ];
        for (pan, expected) in cases {
            let result = issuer.authorise(request("pay", pan, 5_000)).await;
            assert_eq!(decline_of(result), Some(expected), "{pan}");
        }
    }

    #[tokio::test]
    async fn any_other_valid_number_approves() {
        let result = issuer()
            .authorise(request("pay", "6011111111111117", 5_000))
            .await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn invalid_numbers_decline_invalid_card() {
        let issuer = issuer();
        for pan in ["4242424242424241", "4242-4242-4242-4242", "4242", ""] {
            let result = issuer.authorise(request("pay", pan, 5_000)).await;
            assert_eq!(decline_of(result), Some(Decline::InvalidCard), "{pan:?}");
        }
        let mut bad_month = request("pay", "4242424242424242", 5_000);
        bad_month.card.expiry_month = 13;
        let result = issuer.authorise(bad_month).await;
        assert_eq!(decline_of(result), Some(Decline::InvalidCard));
    }

    #[tokio::test]
    async fn past_expiry_declines_expired_card() {
        let mut expired = request("pay", "4242424242424242", 5_000);
        expired.card.expiry_month = 1;
        expired.card.expiry_year = 2020;
        let result = issuer().authorise(expired).await;
        assert_eq!(decline_of(result), Some(Decline::ExpiredCard));
    }

    #[tokio::test]
    async fn malformed_requests_are_rejected() {
        let issuer = issuer();
        let mut no_currency = request("pay", "4242424242424242", 5_000);
        no_currency.currency = "krw".into();
        assert!(is_rejected(&issuer.authorise(no_currency).await));
        assert!(is_rejected(
            &issuer
                .authorise(request("pay", "4242424242424242", 0))
                .await
        ));
        assert!(is_rejected(
            &issuer.authorise(request("", "4242424242424242", 5)).await
        ));
    }

    #[tokio::test]
    async fn authorise_is_deduplicated_by_reference() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            authorisations_max: 2,
            ..SimulatorConfig::default()
        });
        let first = issuer
            .authorise(request("pay_1", "4242424242424242", 5_000))
            .await;
        let retry = issuer
            .authorise(request("pay_1", "4242424242424242", 5_000))
            .await;
        let other = issuer
            .authorise(request("pay_2", "4242424242424242", 5_000))
            .await;
        let (Ok(first), Ok(retry), Ok(other)) = (first, retry, other) else {
            panic!("all three should approve");
        };
        assert_eq!(first, retry);
        assert_ne!(first.issuer_ref, other.issuer_ref);
        // The retry placed no hold: only the two distinct references count.
        let third = issuer
            .authorise(request("pay_3", "4242424242424242", 5_000))
            .await;
        assert!(is_rejected(&third), "{third:?}");
    }

    #[tokio::test]
    async fn concurrent_retries_place_one_hold() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            latency_ms: 5,
            ..SimulatorConfig::default()
        });
        let (first, second) = tokio::join!(
            issuer.authorise(request("pay", "4242424242424242", 5_000)),
            issuer.authorise(request("pay", "4242424242424242", 5_000)),
        );
        let (Ok(first), Ok(second)) = (first, second) else {
            panic!("both should approve");
        };
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn partial_capture_then_refunds_stay_within_the_capture() {
        let issuer = issuer();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;

        assert!(
            issuer
                .capture(&issuer_ref, 4_000, "capture_1")
                .await
                .is_ok()
        );
        // 6_000 is still held, so 7_000 is too much.
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 7_000, "capture_2").await
        ));

        assert!(is_rejected(
            &issuer.refund(&issuer_ref, 4_001, "refund_1").await
        ));
        assert!(issuer.refund(&issuer_ref, 1_500, "refund_1").await.is_ok());
        // A retry of refund_1 is not a second refund: 2_500 is still refundable.
        assert!(issuer.refund(&issuer_ref, 1_500, "refund_1").await.is_ok());
        assert!(is_rejected(
            &issuer.refund(&issuer_ref, 2_501, "refund_2").await
        ));
        assert!(issuer.refund(&issuer_ref, 2_500, "refund_2").await.is_ok());
        assert!(is_rejected(
            &issuer.refund(&issuer_ref, 1, "refund_3").await
        ));
    }

    #[tokio::test]
    async fn refund_more_than_captured_is_rejected() {
        let issuer = issuer();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;
        let before_capture = issuer.refund(&issuer_ref, 1, "refund_0").await;
        assert!(is_rejected(&before_capture));
        assert!(
            issuer
                .capture(&issuer_ref, 3_000, "capture_1")
                .await
                .is_ok()
        );
        let result = issuer.refund(&issuer_ref, 3_001, "refund_1").await;
        assert!(is_rejected(&result));
        assert_eq!(
            result.err().map(|error| error.code()),
            Some("issuer_rejected")
        );
        assert!(issuer.refund(&issuer_ref, 3_000, "refund_1").await.is_ok());
    }

    #[tokio::test]
    async fn automatic_capture_takes_the_whole_amount_at_once() {
        let issuer = issuer();
        let automatic = AuthoriseRequest {
            capture: CaptureMethod::Automatic,
            ..request("pay_auto", "4242424242424242", 10_000)
        };
        let Ok(authorisation) = issuer.authorise(automatic).await else {
            panic!("should approve");
        };
        let issuer_ref = authorisation.issuer_ref;
        // Nothing is left held: no capture, no void, but all of it refunds.
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 1, "capture_1").await
        ));
        assert!(is_rejected(&issuer.void(&issuer_ref).await));
        assert!(issuer.refund(&issuer_ref, 10_000, "refund_1").await.is_ok());
    }

    #[tokio::test]
    async fn capture_more_than_authorised_is_rejected() {
        let issuer = issuer();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 10_001, "capture_1").await
        ));
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 0, "capture_1").await
        ));
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, -5, "capture_1").await
        ));
        assert!(
            issuer
                .capture(&issuer_ref, 10_000, "capture_1")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn capture_retries_are_idempotent() {
        let issuer = issuer();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;
        assert!(
            issuer
                .capture(&issuer_ref, 6_000, "capture_1")
                .await
                .is_ok()
        );
        assert!(
            issuer
                .capture(&issuer_ref, 6_000, "capture_1")
                .await
                .is_ok()
        );
        // A reused reference with another amount is refused, not replayed.
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 1_000, "capture_1").await
        ));
        // The retry captured nothing: exactly 4_000 remains.
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 4_001, "capture_2").await
        ));
        assert!(
            issuer
                .capture(&issuer_ref, 4_000, "capture_2")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn void_releases_the_remainder() {
        let issuer = issuer();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;
        assert!(
            issuer
                .capture(&issuer_ref, 4_000, "capture_1")
                .await
                .is_ok()
        );
        assert!(issuer.void(&issuer_ref).await.is_ok());
        assert!(issuer.void(&issuer_ref).await.is_ok(), "void is idempotent");
        assert!(is_rejected(
            &issuer.capture(&issuer_ref, 1_000, "capture_2").await
        ));
        // A retry of a capture made before the void still answers success.
        assert!(
            issuer
                .capture(&issuer_ref, 4_000, "capture_1")
                .await
                .is_ok()
        );
        // The captured part stays refundable.
        assert!(issuer.refund(&issuer_ref, 4_000, "refund_1").await.is_ok());

        let captured_ref = approved(&issuer, "pay_full", 10_000).await;
        assert!(
            issuer
                .capture(&captured_ref, 10_000, "capture_1")
                .await
                .is_ok()
        );
        assert!(is_rejected(&issuer.void(&captured_ref).await));
    }

    #[tokio::test]
    async fn a_reversal_undoes_a_hold_whose_answer_was_lost() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            timeout_ms: 20,
            ..SimulatorConfig::default()
        });
        let lost = issuer
            .authorise(request("pay_lost", CARD_ANSWER_LOST, 5_000))
            .await;
        assert!(matches!(lost, Err(ConnectorError::Timeout)), "{lost:?}");
        let issuer_ref = issuer.holds().issuer_ref_by_reference["pay_lost"].clone();
        assert!(!issuer.holds().by_issuer_ref[&issuer_ref].voided);

        assert_eq!(
            issuer.reverse("pay_lost").await.ok(),
            Some(Reversal::Released)
        );
        assert!(issuer.holds().by_issuer_ref[&issuer_ref].voided);
        // Retried, it answers as the first did and undoes nothing more.
        assert_eq!(
            issuer.reverse("pay_lost").await.ok(),
            Some(Reversal::Released)
        );
        // The payment's retry finds the reversal, not its old approval.
        let retried = issuer
            .authorise(request("pay_lost", CARD_ANSWER_LOST, 5_000))
            .await;
        assert!(is_rejected(&retried), "{retried:?}");
        assert!(is_rejected(&issuer.capture(&issuer_ref, 5_000, "c1").await));
    }

    #[tokio::test]
    async fn a_reversal_gives_back_an_automatic_capture() {
        let issuer = issuer();
        let mut automatic = request("pay_auto", "4242424242424242", 7_000);
        automatic.capture = CaptureMethod::Automatic;
        let issuer_ref = issuer.authorise(automatic).await.unwrap().issuer_ref;
        assert_eq!(
            issuer.reverse("pay_auto").await.ok(),
            Some(Reversal::Released)
        );
        let holds = issuer.holds();
        let hold = &holds.by_issuer_ref[&issuer_ref];
        assert_eq!((hold.captured_minor, hold.refunded_minor), (7_000, 7_000));
    }

    #[tokio::test]
    async fn a_reversal_before_the_authorisation_bars_it() {
        let issuer = issuer();
        assert_eq!(
            issuer.reverse("pay_late").await.ok(),
            Some(Reversal::NothingHeld)
        );
        let late = issuer
            .authorise(request("pay_late", "4242424242424242", 1_000))
            .await;
        assert!(is_rejected(&late), "{late:?}");
        assert!(issuer.holds().by_issuer_ref.is_empty());
        // A declined authorisation held nothing either.
        let declined = issuer
            .authorise(request("pay_declined", CARD_DO_NOT_HONOUR, 1_000))
            .await;
        assert!(decline_of(declined).is_some());
        assert_eq!(
            issuer.reverse("pay_declined").await.ok(),
            Some(Reversal::NothingHeld)
        );
        assert!(is_rejected(&issuer.reverse("").await));
    }

    #[tokio::test]
    async fn unknown_issuer_ref_is_rejected() {
        let issuer = issuer();
        assert!(is_rejected(
            &issuer.capture("sim-0-none", 1, "capture").await
        ));
        assert!(is_rejected(&issuer.void("sim-0-none").await));
        assert!(is_rejected(&issuer.refund("sim-0-none", 1, "refund").await));
    }

    #[tokio::test]
    async fn silent_card_times_out_after_timeout_ms() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            timeout_ms: 20,
            ..SimulatorConfig::default()
        });
        let started = Instant::now();
        let result = issuer
            .authorise(request("pay", CARD_NO_ANSWER, 5_000))
            .await;
        let elapsed = started.elapsed();
        assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
        assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
        // Generous, because the test machine may be busy; the point is that
        // the default two-second timeout was not used.
        assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
    }

    #[tokio::test]
    async fn latency_is_applied_to_every_call() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            latency_ms: 30,
            ..SimulatorConfig::default()
        });
        let started = Instant::now();
        let issuer_ref = approved(&issuer, "pay", 10_000).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        let started = Instant::now();
        assert!(issuer.capture(&issuer_ref, 10, "capture_1").await.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn latency_beyond_the_deadline_times_out_without_acting() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            latency_ms: 50,
            timeout_ms: 10,
            authorisations_max: 1,
        });
        for reference in ["pay_1", "pay_2"] {
            let result = issuer
                .authorise(request(reference, "4242424242424242", 5_000))
                .await;
            // Had the first call placed a hold, the second would hit the
            // bound of one and answer Rejected instead.
            assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
        }
    }

    #[tokio::test]
    async fn authorisations_are_bounded() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            authorisations_max: 2,
            ..SimulatorConfig::default()
        });
        let first = approved(&issuer, "pay_1", 100).await;
        approved(&issuer, "pay_2", 100).await;
        let over = issuer
            .authorise(request("pay_3", "4242424242424242", 100))
            .await;
        assert!(is_rejected(&over), "{over:?}");
        // Declines keep no state, so they still answer as declines.
        let declined = issuer
            .authorise(request("pay_4", CARD_DO_NOT_HONOUR, 100))
            .await;
        assert_eq!(decline_of(declined), Some(Decline::DoNotHonour));
        // Existing holds keep working at the bound.
        assert!(issuer.capture(&first, 100, "capture_1").await.is_ok());
        let replay = issuer
            .authorise(request("pay_1", "4242424242424242", 100))
            .await;
        assert_eq!(
            replay.map(|authorisation| authorisation.issuer_ref).ok(),
            Some(first)
        );
    }

    #[tokio::test]
    async fn works_as_a_trait_object() {
        let connector: Arc<dyn Connector> = Arc::new(issuer());
        assert_eq!(connector.name(), "simulated_issuer");
        let task = tokio::spawn({
            let connector = Arc::clone(&connector);
            async move {
                connector
                    .authorise(request("pay", "5555555555554444", 1_000))
                    .await
            }
        });
        let result = task.await;
        assert!(matches!(result, Ok(Ok(_))), "{result:?}");
    }
    #[tokio::test]
    async fn a_verification_checks_the_code_and_gives_the_card_its_credential() {
        let issuer = issuer();
        let verified = issuer
            .verify_card(verification("pm_1", "4242424242424242", Some("737")))
            .await;
        let Ok(credential) = verified else {
            panic!("a good card with its code verifies: {verified:?}");
        };
        assert_eq!(credential.connector, "simulated_issuer");
        assert!(
            credential.id.starts_with(SIMULATED_CREDENTIAL_PREFIX),
            "{credential:?}"
        );
        let again = issuer
            .verify_card(verification("pm_1", "4242424242424242", Some("737")))
            .await;
        assert_eq!(again.ok(), Some(credential.clone()), "a retry");
        // A new simulator, as after a restart, keeps nothing yet agrees.
        let restarted = SimulatedIssuer::new(SimulatorConfig::default())
            .verify_card(verification("pm_1", "4242424242424242", Some("737")))
            .await;
        assert_eq!(restarted.ok(), Some(credential.clone()), "after a restart");
        let amex = issuer
            .verify_card(verification("pm_2", "378282246310005", Some("7373")))
            .await;
        assert!(amex.is_ok_and(|c| c != credential));
        let no_code = issuer
            .verify_card(verification("pm_3", "4242424242424242", None))
            .await;
        assert!(is_rejected(&no_code), "{no_code:?}");
        for bad in ["12", "12345", "12a"] {
            let refused = issuer
                .verify_card(verification("pm_4", "4242424242424242", Some(bad)))
                .await;
            assert!(
                matches!(refused, Err(ConnectorError::Declined(Decline::InvalidCard))),
                "{bad}: {refused:?}"
            );
        }
        for wrong in ["123", "7373", "738"] {
            let refused = issuer
                .verify_card(verification("pm_5", "4242424242424242", Some(wrong)))
                .await;
            assert!(
                matches!(
                    refused,
                    Err(ConnectorError::Declined(Decline::IncorrectSecurityCode))
                ),
                "{wrong}: {refused:?}"
            );
        }
        let euro = VerifyRequest {
            currency: "eur".into(),
            ..verification("pm_6", "4242424242424242", Some("737"))
        };
        assert!(is_rejected(&issuer.verify_card(euro).await));
    }

    #[tokio::test]
    async fn a_zero_amount_verification_needs_no_funds() {
        let issuer = issuer();
        let poor = issuer
            .verify_card(verification("pm_1", CARD_INSUFFICIENT_FUNDS, Some("737")))
            .await;
        assert!(poor.is_ok(), "{poor:?}");
        let declined = issuer
            .verify_card(verification("pm_2", CARD_DO_NOT_HONOUR, Some("737")))
            .await;
        assert!(matches!(
            declined,
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        ));
        let expired = issuer
            .verify_card(verification("pm_3", CARD_EXPIRED, Some("737")))
            .await;
        assert!(matches!(
            expired,
            Err(ConnectorError::Declined(Decline::ExpiredCard))
        ));
        let luhn = issuer
            .verify_card(verification("pm_4", "4242424242424241", Some("737")))
            .await;
        assert!(matches!(
            luhn,
            Err(ConnectorError::Declined(Decline::InvalidCard))
        ));
        // Charged later, the card without funds declines as ever.
        let charged = issuer
            .authorise(request("pay_1", CARD_INSUFFICIENT_FUNDS, 100))
            .await;
        assert_eq!(decline_of(charged), Some(Decline::InsufficientFunds));
    }

    fn on_file(
        reference: &str,
        pan: &str,
        stored_credential: Option<StoredCredential>,
    ) -> AuthoriseRequest {
        let mut request = request(reference, pan, 100);
        request.card.security_code = None;
        request.stored_credential = stored_credential;
        request
    }

    #[tokio::test]
    async fn a_payment_on_file_pays_on_its_cards_credential_only() {
        let issuer = issuer();
        let credential = issuer
            .verify_card(verification("pm_1", "4242424242424242", Some("737")))
            .await
            .ok();
        assert!(credential.is_some());
        let paid = issuer
            .authorise(on_file("pay_1", "4242424242424242", credential.clone()))
            .await;
        assert!(paid.is_ok(), "{paid:?}");
        let unverified = issuer
            .authorise(on_file("pay_2", "4242424242424242", None))
            .await;
        assert!(
            matches!(unverified, Err(ConnectorError::NeedsVerification)),
            "{unverified:?}"
        );
        let foreign = StoredCredential {
            connector: "hyperswitch".into(),
            id: "483297487231504".into(),
        };
        let elsewhere = issuer
            .authorise(on_file("pay_3", "4242424242424242", Some(foreign)))
            .await;
        assert!(
            matches!(elsewhere, Err(ConnectorError::NeedsVerification)),
            "{elsewhere:?}"
        );
        let other_card = issuer
            .authorise(on_file("pay_4", "5555555555554444", credential))
            .await;
        assert_eq!(decline_of(other_card), Some(Decline::DoNotHonour));
        let mut wrong_code = request("pay_5", "4242424242424242", 100);
        wrong_code.card.security_code = Some("123".into());
        assert_eq!(
            decline_of(issuer.authorise(wrong_code).await),
            Some(Decline::IncorrectSecurityCode)
        );
    }

    #[tokio::test]
    async fn a_silent_card_times_out_its_verification() {
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            timeout_ms: 50,
            ..SimulatorConfig::default()
        });
        let silent = issuer
            .verify_card(verification("pm_1", CARD_NO_ANSWER, Some("737")))
            .await;
        assert!(matches!(silent, Err(ConnectorError::Timeout)), "{silent:?}");
    }
}

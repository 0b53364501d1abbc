//! The pay path: a terminal's signed request, the payer identified, the
//! risk engine's decision acted on (approve, step up, review, decline), a
//! step-up checked, the card authorised and captured through the vault and
//! the issuer, and payment, ledger, loyalty and answer committed together.
//!
//! One way through named stages, each a function with a typed input and
//! output, the time each took kept in one [`PayTimings`]:
//!
//! ```text
//! request ─parse─▶ PayInput ─face─▶ BurstOutcome ─identify─▶ Identified
//!   ─payer─▶ Payer ─counted (the row, committed)─▶ Payment
//!   ─risk─▶ Assessment ─act─▶ approve | review | step up | decline
//!   ─reserve loyalty─▶ Discount ─authorise (vault, issuer)─▶ Issued
//!   ─record (one transaction)─▶ Reply
//! ```
//!
//! A step-up (`step_up.rs`) confirms the payer and joins at `act`, or at
//! the reservation when the risk engine's factor was given.

mod charge;
mod decide;
mod request;
mod risk;
mod step_up;

use std::sync::Arc;
use std::time::Instant;

use facepay_connector::CardTap;
use facepay_risk::{Factor, RiskEngine};
use facepay_store::fraud::{self, AttemptKind};
use facepay_store::idempotency;
use facepay_store::keys::DataKeyRow;
use facepay_store::parties::{self, PaymentMethod, TerminalContext, User};
use facepay_store::payments::Payment;

use crate::api::{CardChallenge, PayTimings, StepUp, StepUpMethod};
use crate::core::{Claimed, Core};
use crate::error::Failure;
use crate::identity::Identity;
use crate::signing;

pub use risk::Matched;
use risk::TERMINAL_ATTEMPTS_WINDOW_MS;

/// What confirms an ambiguous match: something only the payer knows.
const AMBIGUOUS_FACTORS: [Factor; 3] = [Factor::PhoneLast4, Factor::PhoneFull, Factor::Pin];
const ALL_FACTORS: [Factor; 4] = [
    Factor::PhoneLast4,
    Factor::PhoneFull,
    Factor::Pin,
    Factor::CardTap,
];

pub struct Payments {
    core: Arc<Core>,
    /// Face analysis, the gallery search and the probes kept for step-ups.
    identity: Arc<Identity>,
    risk: RiskEngine,
}

/// One terminal request on its way through the stages: who sent it, the
/// idempotency key it claimed, the payment as an earlier request stored it
/// (if one did), and the time each stage took so far.
struct Attempt<'a> {
    ctx: &'a TerminalContext,
    claimed: &'a Claimed,
    stored: Option<&'a Payment>,
    /// `stored` was written by this request (`Payments::counted`), so no
    /// earlier try reserved coupons or points under it.
    stored_here: bool,
    timings: PayTimings,
}

/// The identified payer and the card they pay with.
struct Payer {
    user: User,
    method: PaymentMethod,
    /// The wrapped data key of the card's share, read with the card.
    method_key: Option<DataKeyRow>,
}

/// How `settle` finishes a payment beyond the issuer's answer.
#[derive(Default)]
struct Settlement {
    /// The assessment to record with the payment, when it is new.
    record: Option<fraud::Assessment>,
    /// Authorise only; the capture waits for an operator or the merchant.
    hold_for_review: bool,
    tap: Option<CardTap>,
}

fn terminal_scope(ctx: &TerminalContext) -> String {
    format!("terminal:{}", ctx.terminal_id)
}

/// Microseconds since `start`: one stage's entry in [`PayTimings`].
fn elapsed_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The step-up request's field for each factor.
fn method_name(f: Factor) -> StepUpMethod {
    match f {
        Factor::PhoneLast4 => StepUpMethod::PhoneLast4,
        Factor::PhoneFull => StepUpMethod::Phone,
        Factor::Pin => StepUpMethod::Pin,
        Factor::CardTap => StepUpMethod::CardTap,
    }
}

/// The factors a step-up accepts: those at least as strong as the one the
/// risk engine asked for, or for an ambiguous match the knowledge factors.
fn accepted(required: Option<Factor>) -> Vec<Factor> {
    match required {
        Some(f) => ALL_FACTORS.into_iter().filter(|g| *g >= f).collect(),
        None => AMBIGUOUS_FACTORS.to_vec(),
    }
}

fn step_up_view(
    methods: &[Factor],
    attempts_left: i64,
    card_challenge: Option<CardChallenge>,
) -> StepUp {
    StepUp {
        methods: methods.iter().map(|f| method_name(*f)).collect(),
        attempts_left,
        card_challenge: card_challenge.filter(|_| methods.contains(&Factor::CardTap)),
    }
}

impl Payments {
    /// The pay path with the configured risk rules (facepay-risk's defaults
    /// when none are).
    pub fn new(core: Arc<Core>, identity: Arc<Identity>) -> Result<Self, Failure> {
        let rules = core
            .config
            .risk_rules
            .as_deref()
            .unwrap_or(facepay_risk::DEFAULT_RULES);
        let risk = RiskEngine::from_toml(rules).map_err(|e| {
            tracing::error!(error = %e, "risk rules");
            Failure::internal()
        })?;
        Ok(Self {
            core,
            identity,
            risk,
        })
    }

    /// Replaces the risk rules; on an error the old ones stay in force.
    pub fn reload_risk_rules(&self, text: &str) -> Result<(), facepay_risk::RiskError> {
        self.risk.reload(text)
    }

    /// Authenticates a signed terminal request and returns its terminal.
    pub async fn authenticate_terminal(
        &self,
        headers: &signing::SignedHeaders,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<TerminalContext, Failure> {
        let ctx = self.terminal_before_body(headers).await?;
        self.verify_terminal(ctx, headers, method, path, body).await
    }

    /// What can be checked of a signed request before its body is read:
    /// a well-formed nonce, a registered terminal, a timestamp inside the
    /// window. A request that fails here is refused without reading a
    /// byte of its body.
    pub async fn terminal_before_body(
        &self,
        headers: &signing::SignedHeaders,
    ) -> Result<TerminalContext, Failure> {
        let sig_failure =
            |e: signing::SignatureError| Failure::unauthorised(e.code(), e.to_string());
        signing::check_nonce(&headers.nonce).map_err(sig_failure)?;
        let mut conn = self.core.conn().await?;
        let Some(ctx) = parties::terminal_context(&mut conn, &headers.terminal_id).await? else {
            return Err(Failure::unauthorised(
                "unknown_terminal",
                "this terminal is not registered",
            ));
        };
        // A retired terminal has no key, so no request of its can verify:
        // it is told so before its body is read.
        if ctx.terminal_status == "retired" {
            return Err(Failure::forbidden(
                "terminal_retired",
                "this terminal is retired",
            ));
        }
        if ctx.public_key.is_empty() {
            return Err(Failure::unauthorised(
                "terminal_not_paired",
                "this terminal has no key yet: pair it with its code (POST /v1/terminals/pair)",
            ));
        }
        if self.core.now_ms().abs_diff(headers.timestamp_ms) > signing::WINDOW_MS.unsigned_abs() {
            return Err(sig_failure(signing::SignatureError::Expired));
        }
        Ok(ctx)
    }

    /// The rest, once the body is read: the signature over the request,
    /// the nonce used for the first time, the terminal and its merchant
    /// active.
    pub async fn verify_terminal(
        &self,
        ctx: TerminalContext,
        headers: &signing::SignedHeaders,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<TerminalContext, Failure> {
        let sig_failure =
            |e: signing::SignatureError| Failure::unauthorised(e.code(), e.to_string());
        let now = self.core.now_ms();
        signing::verify(&ctx.public_key, headers, method, path, body, now).map_err(sig_failure)?;
        let mut conn = self.core.conn().await?;
        if !idempotency::use_nonce(&mut conn, &ctx.terminal_id, &headers.nonce, now).await? {
            return Err(Failure::unauthorised(
                "nonce_reused",
                "this request was already received (its nonce was used); sign every request anew",
            ));
        }
        if ctx.terminal_status != "active" {
            return Err(Failure::forbidden(
                "terminal_suspended",
                "this terminal is suspended",
            ));
        }
        crate::access::check_merchant_active(&ctx.merchant.status)?;
        Ok(ctx)
    }

    /// The identified user, if they may pay, and the card they pay with.
    async fn payer(&self, user_id: &str) -> Result<Payer, Failure> {
        let mut conn = self.core.conn().await?;
        let (user, card, method_key) = parties::user_with_card(&mut conn, user_id)
            .await?
            .ok_or_else(|| {
                Failure::unprocessable("face_not_recognised", "no enrolled face matches")
            })?;
        match user.status.as_str() {
            "active" => {}
            "suspended" => {
                return Err(Failure::forbidden(
                    "user_suspended",
                    "this account is suspended",
                ));
            }
            _ => {
                return Err(Failure::unprocessable(
                    "face_not_recognised",
                    "no enrolled face matches",
                ));
            }
        }
        let method = card.ok_or_else(|| {
            Failure::unprocessable(
                "no_payment_method",
                "the payer has no card on file; add a card in the facepay app to pay by face",
            )
        })?;
        Ok(Payer {
            user,
            method,
            method_key,
        })
    }

    /// Refuses a payment at a terminal that has had too many refused
    /// attempts lately (`attempts`; an attack in progress looks like
    /// this), and flags the terminal for an operator.
    async fn check_throttle(&self, ctx: &TerminalContext, attempts: i64) -> Result<(), Failure> {
        if attempts < self.core.config.terminal_attempts_max {
            return Ok(());
        }
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        let reason = format!("{attempts} refused attempts in 10 minutes");
        fraud::flag_terminal(&mut conn, &ctx.terminal_id, &reason, now).await?;
        tracing::warn!(terminal = %ctx.terminal_id, attempts, "terminal throttled");
        Err(Failure::new(
            429,
            "terminal_throttled",
            "too many refused attempts at this terminal; it is paused for a few minutes",
        ))
    }

    /// Counts an attempt that leaves no payment. Losing the count must not
    /// change the answer, so a store error is only logged.
    async fn record_attempt(&self, ctx: &TerminalContext, kind: AttemptKind) {
        let recorded = async {
            let mut conn = self.core.conn().await?;
            fraud::record_attempt(&mut conn, &ctx.terminal_id, kind, self.core.now_ms()).await?;
            Ok::<(), Failure>(())
        };
        if let Err(e) = recorded.await {
            tracing::warn!(error = %e, "a refused attempt was not counted");
        }
    }
}

//! The pay path: a terminal's signed request, the payer identified, the
//! risk engine's decision acted on (approve, step up, review, decline), a
//! step-up checked, the card authorised and captured through the vault and
//! the issuer, and payment, ledger, loyalty and answer committed together.

mod risk;

use std::sync::Arc;
use std::time::Instant;

use facepay_connector::{CardTap, ConnectorError};
use facepay_face::QualityPolicy;
use facepay_face::liveness::LivenessDecision;
use facepay_gallery::Decision;
use facepay_money::Currency;
use facepay_risk::{Assessment, Decision as Risk, Factor, RiskEngine};
use facepay_store::changes::Kind;
use facepay_store::fraud::{self, AttemptKind, GuessedFactor};
use facepay_store::ledger::{self, PaymentRef};
use facepay_store::parties::{self, PaymentMethod, TerminalContext, User};
use facepay_store::payments::{self, Payment, PaymentState};
use facepay_store::{audit, idempotency};
use facepay_vault::VaultAuthorise;
use zeroize::Zeroizing;

use crate::api::{
    CaptureMode, CardChallenge, CardTapRequest, ErrorBody, PayRequest, PayTimings, PaymentFailure,
    PaymentView, StepUp, StepUpRequest,
};
use crate::core::{
    Claimed, Core, HELD_FOR_REVIEW, Reply, commit, decode_frames, derived_id, fee, normalise_phone,
    parse_json, stored_or_created,
};
use crate::error::Failure;
use crate::identity::Identity;
use crate::loyalty::{self, Discount, LoyaltyReceipt, reserve_discount, undo_discount};
use crate::{keys, signing, tap};

pub use risk::Matched;
use risk::TERMINAL_ATTEMPTS_WINDOW_MS;

/// Wrong answers of a factor are counted over this window; enough of them
/// lock it (`Config::factor_failures_max`, `Config::factor_lock_ms`).
const FACTOR_FAILURES_WINDOW_MS: i64 = 86_400_000;

/// What confirms an ambiguous match: something only the payer knows.
const AMBIGUOUS_FACTORS: [Factor; 3] = [Factor::PhoneLast4, Factor::PhoneFull, Factor::Pin];
const ALL_FACTORS: [Factor; 4] = [
    Factor::PhoneLast4,
    Factor::PhoneFull,
    Factor::Pin,
    Factor::CardTap,
];

/// The step-up request's field for each factor.
fn method_name(f: Factor) -> &'static str {
    match f {
        Factor::PhoneLast4 => "phone_last4",
        Factor::PhoneFull => "phone",
        Factor::Pin => "pin",
        Factor::CardTap => "card_tap",
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
        methods: methods.iter().map(|f| method_name(*f).to_owned()).collect(),
        attempts_left,
        card_challenge: card_challenge.filter(|_| methods.contains(&Factor::CardTap)),
    }
}

fn decision_name(d: Risk) -> &'static str {
    match d {
        Risk::Approve => "approve",
        Risk::StepUp(_) => "step_up",
        Risk::Review => "review",
        Risk::Decline => "decline",
    }
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

pub struct Payments {
    core: Arc<Core>,
    /// Face analysis, the gallery search and the probes kept for step-ups.
    identity: Arc<Identity>,
    risk: RiskEngine,
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
        let now = self.core.now_ms();
        signing::verify(&ctx.public_key, headers, method, path, body, now).map_err(sig_failure)?;
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
        if ctx.merchant.status != "active" {
            return Err(Failure::forbidden(
                "merchant_suspended",
                "this merchant is suspended",
            ));
        }
        Ok(ctx)
    }
}

impl Payments {
    /// `POST /v1/terminal/payments`, already authenticated.
    pub async fn pay(
        &self,
        ctx: &TerminalContext,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: PayRequest = parse_json(body)?;
        let currency = Currency::from_code(&request.currency)?;
        if currency.code() != ctx.store.currency {
            return Err(Failure::unprocessable(
                "currency_mismatch",
                format!("this store takes {}", ctx.store.currency),
            ));
        }
        let amount_minor = currency.parse_amount(&request.amount)?;
        if let Some(digits) = &request.phone_last4
            && !(digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Failure::unprocessable(
                "phone_last4_invalid",
                "phone_last4 must be the last 4 digits of the payer's phone",
            ));
        }
        let phone_last4 = request.phone_last4.clone();
        let frames = decode_frames(&request.frames)?;
        let scope = terminal_scope(ctx);
        let payment_id = derived_id("pay", &scope, key);
        self.core
            .idempotent(scope, key, body, |claimed| async move {
                let _lock = self.core.payment_lock(&payment_id).lock().await;
                let mut conn = self.core.conn().await?;
                if let Some(mut existing) = payments::get(&mut conn, &payment_id).await? {
                    // A request with this key died after committing: answer with
                    // what it committed. One that died between reserving the
                    // payer's coupons or points and charging is ended first.
                    drop(conn);
                    if existing.state()? == PaymentState::Created {
                        self.abandon(&existing.id).await;
                        let mut conn = self.core.conn().await?;
                        existing = payments::get(&mut conn, &payment_id)
                            .await?
                            .ok_or_else(Failure::internal)?;
                    }
                    let reply = Reply::json(200, &PaymentView::of(&existing))?;
                    let mut tx = self.core.begin().await?;
                    claimed.complete(&mut tx, &reply).await?;
                    tx.commit().await.map_err(facepay_store::StoreError::from)?;
                    return Ok(reply);
                }
                self.check_throttle(&mut conn, ctx).await?;
                drop(conn);

                let outcome = self
                    .identity
                    .analyse(frames, QualityPolicy::payment())
                    .await;
                let outcome = match outcome {
                    Err(f) if f.code == "liveness_failed" => {
                        self.record_attempt(ctx, AttemptKind::Spoof).await;
                        return Err(f);
                    }
                    other => other?,
                };
                let mut timings = PayTimings::with_face(outcome.timings);
                let start = Instant::now();
                let probe = self.identity.protect(&outcome.template.vector)?;
                let identified =
                    self.identity
                        .identify(&probe, phone_last4.as_deref(), &ctx.merchant.id)?;
                timings.identify_us = start.elapsed().as_micros() as u64;

                let now = self.core.now_ms();
                let mut payment = Payment {
                    id: payment_id.clone(),
                    terminal_id: ctx.terminal_id.clone(),
                    store_id: ctx.store.id.clone(),
                    merchant_id: ctx.merchant.id.clone(),
                    idempotency_key: key.to_owned(),
                    user_id: None,
                    payment_method_id: None,
                    amount_minor,
                    currency: currency.code().to_owned(),
                    capture_mode: request.capture.as_str().to_owned(),
                    authorised_minor: 0,
                    captured_minor: 0,
                    refunded_minor: 0,
                    fee_minor: 0,
                    state: PaymentState::Created.as_str().to_owned(),
                    reason: "received".into(),
                    connector: None,
                    issuer_ref: None,
                    match_score: None,
                    candidates: None,
                    step_up_attempts: 0,
                    liveness: Some(format!("{:?}", outcome.liveness).to_lowercase()),
                    expires_at_ms: None,
                    created_at_ms: now,
                    updated_at_ms: now,
                };
                match identified.decision {
                    Decision::NoMatch => {
                        self.record_attempt(ctx, AttemptKind::NoMatch).await;
                        Err(Failure::unprocessable(
                            "face_not_recognised",
                            "no enrolled face matches; enrol in the app or pay another way",
                        ))
                    }
                    Decision::Match(best) => {
                        payment.match_score = Some(f64::from(best.score));
                        let (user, method) = self.payer(&best.user_id).await?;
                        let start = Instant::now();
                        let matched = Matched {
                            user: &user,
                            method: &method,
                            score: best.score,
                            lead: identified.lead,
                            liveness: outcome.liveness,
                            amount_minor,
                        };
                        // A payment the engine cannot assess does not go through.
                        let assessment =
                            self.assess_risk(ctx, &matched, self.core.now_ms()).await?;
                        timings.risk_us = start.elapsed().as_micros() as u64;
                        let payer = (&user, &method);
                        self.act(
                            ctx, None, payment, payer, assessment, None, &claimed, timings,
                        )
                        .await
                    }
                    Decision::Ambiguous(candidates) => {
                        let before = payment.clone();
                        payment.match_score = candidates.first().map(|c| f64::from(c.score));
                        let ids: Vec<&str> =
                            candidates.iter().map(|c| c.user_id.as_str()).collect();
                        payment.candidates =
                            Some(serde_json::to_string(&ids).map_err(|_| Failure::internal())?);
                        payment.state = PaymentState::RequiresStepUp.as_str().to_owned();
                        payment.reason = if candidates.len() > 1 {
                            "candidates_close"
                        } else {
                            "match_weak"
                        }
                        .into();
                        let mut view = PaymentView::of(&payment);
                        view.step_up = Some(step_up_view(
                            &accepted(None),
                            self.core.config.step_up_attempts_max,
                            None,
                        ));
                        let mut reply = Reply::json(202, &view)?;
                        let start = Instant::now();
                        let mut tx = self.core.begin().await?;
                        payments::insert(&mut tx, &before).await?;
                        payments::transition(&mut tx, &before, &payment).await?;
                        claimed.complete(&mut tx, &reply).await?;
                        tx.commit().await.map_err(facepay_store::StoreError::from)?;
                        self.identity.keep_probe(&payment.id, probe);
                        timings.ledger_us = start.elapsed().as_micros() as u64;
                        reply.timings = Some(timings);
                        Ok(reply)
                    }
                }
            })
            .await
    }

    /// The identified user and the card they pay with.
    async fn payer(&self, user_id: &str) -> Result<(User, PaymentMethod), Failure> {
        let mut conn = self.core.conn().await?;
        let user = parties::user(&mut conn, user_id).await?.ok_or_else(|| {
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
        let method = parties::payment_methods(&mut conn, user_id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Failure::unprocessable("no_payment_method", "the payer has no card on file")
            })?;
        Ok((user, method))
    }

    /// Refuses a payment at a terminal that has had too many refused
    /// attempts lately (an attack in progress looks like this), and flags
    /// the terminal for an operator.
    async fn check_throttle(
        &self,
        conn: &mut facepay_store::Connection,
        ctx: &TerminalContext,
    ) -> Result<(), Failure> {
        let now = self.core.now_ms();
        let since = now - TERMINAL_ATTEMPTS_WINDOW_MS;
        let attempts = fraud::attempts_since(conn, &ctx.terminal_id, since).await?;
        if attempts < self.core.config.terminal_attempts_max {
            return Ok(());
        }
        let reason = format!("{attempts} refused attempts in 10 minutes");
        fraud::flag_terminal(conn, &ctx.terminal_id, &reason, now).await?;
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

    /// Acts on the risk engine's decision for an identified payer. `given`
    /// is the factor the payer has already confirmed, if any: a step-up to
    /// it or to a weaker one is not asked again.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        ctx: &TerminalContext,
        stored: Option<&Payment>,
        mut payment: Payment,
        (user, method): (&User, &PaymentMethod),
        assessment: Assessment,
        given: Option<Factor>,
        claimed: &Claimed,
        timings: PayTimings,
    ) -> Result<Reply, Failure> {
        let decision = match assessment.decision {
            Risk::StepUp(f) if given.is_some_and(|g| g >= f) => Risk::Approve,
            d => d,
        };
        let now = self.core.now_ms();
        let fired = serde_json::to_string(
            &assessment
                .fired
                .iter()
                .map(
                    |f| serde_json::json!({"rule": f.rule, "weight": f.weight, "reason": f.reason}),
                )
                .collect::<Vec<_>>(),
        )
        .map_err(|_| Failure::internal())?;
        tracing::info!(
            payment = %payment.id,
            decision = ?decision,
            score = assessment.score,
            fired = %fired,
            "risk assessed"
        );
        let mut record = fraud::Assessment {
            payment_id: payment.id.clone(),
            decision: decision_name(decision).to_owned(),
            factor: None,
            score: i64::from(assessment.score),
            fired,
            challenge: None,
            at_ms: now,
        };
        let hold_for_review = match decision {
            Risk::Approve => false,
            Risk::Review => true,
            Risk::Decline | Risk::StepUp(_) => {
                // Kept with the payer and card so that their velocities
                // count refused payments too (card testing is refusals).
                payment.user_id = Some(user.id.clone());
                payment.payment_method_id = Some(method.id.clone());
                payment.updated_at_ms = now;
                let mut reply = if let Risk::StepUp(factor) = decision {
                    let challenge = tap::challenge(
                        payment.amount_minor,
                        &payment.currency,
                        &ctx.store.country,
                        now,
                    )?;
                    record.factor = Some(factor.as_str().to_owned());
                    record.challenge =
                        Some(serde_json::to_string(&challenge).map_err(|_| Failure::internal())?);
                    payment.state = PaymentState::RequiresStepUp.as_str().to_owned();
                    payment.reason = "risk_step_up".into();
                    payment.step_up_attempts = 0;
                    payment.candidates =
                        Some(serde_json::to_string(&[&user.id]).map_err(|_| Failure::internal())?);
                    let mut view = PaymentView::of(&payment);
                    view.step_up = Some(step_up_view(
                        &accepted(Some(factor)),
                        self.core.config.step_up_attempts_max,
                        Some(challenge),
                    ));
                    Reply::json(202, &view)?
                } else {
                    payment.state = PaymentState::Declined.as_str().to_owned();
                    payment.reason = "risk_declined".into();
                    let view = PaymentView::of(&payment);
                    let body = PaymentFailure {
                        error: ErrorBody {
                            code: "risk_declined",
                            message: "the payment was refused by fraud checks; pay another way",
                        },
                        payment: view,
                    };
                    Reply::json(402, &body)?
                };
                let start = Instant::now();
                let mut tx = self.core.begin().await?;
                let before = stored_or_created(&mut tx, stored, &payment).await?;
                payments::transition(&mut tx, &before, &payment).await?;
                // Anything an interrupted earlier try reserved goes back.
                undo_discount(&mut tx, &payment, now).await?;
                fraud::insert_assessment(&mut tx, &record).await?;
                claimed.complete(&mut tx, &reply).await?;
                commit(tx).await?;
                let mut timings = timings;
                timings.ledger_us = start.elapsed().as_micros() as u64;
                reply.timings = Some(timings);
                return Ok(reply);
            }
        };
        let with = Settlement {
            record: Some(record),
            hold_for_review,
            tap: None,
        };
        self.settle(ctx, stored, payment, user, method, claimed, timings, with)
            .await
    }

    /// `POST /v1/terminal/payments/{id}/step-up`: the payer confirms who
    /// they are with one of the factors the payment asks for.
    pub async fn step_up(
        &self,
        ctx: &TerminalContext,
        payment_id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: StepUpRequest = parse_json(body)?;
        let given = Given::of(request)?;
        let payment_id = payment_id.to_owned();
        self.core
            .idempotent(terminal_scope(ctx), key, body, |claimed| async move {
                let _lock = self.core.payment_lock(&payment_id).lock().await;
                let mut conn = self.core.conn().await?;
                let payment = payments::get(&mut conn, &payment_id)
                    .await?
                    .filter(|p| p.terminal_id == ctx.terminal_id)
                    .ok_or_else(|| Failure::not_found("payment"))?;
                if payment.state()? != PaymentState::RequiresStepUp {
                    return Err(Failure::conflict(
                        "payment_not_awaiting_step_up",
                        format!("this payment is {}", payment.state),
                    ));
                }
                let assessment = fraud::assessment(&mut conn, &payment.id).await?;
                let required = assessment
                    .as_ref()
                    .and_then(|a| a.factor.as_deref())
                    .map(|f| {
                        ALL_FACTORS
                            .into_iter()
                            .find(|g| g.as_str() == f)
                            .ok_or_else(Failure::internal)
                    })
                    .transpose()?;
                let challenge: Option<CardChallenge> = assessment
                    .as_ref()
                    .and_then(|a| a.challenge.as_deref())
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|_| Failure::internal())?;
                let methods = accepted(required);
                if !methods.contains(&given.factor()) {
                    let names: Vec<&str> = methods.iter().map(|f| method_name(*f)).collect();
                    return Err(Failure::unprocessable(
                        "step_up_method_not_accepted",
                        format!("this payment asks for one of: {}", names.join(", ")),
                    ));
                }
                let candidates: Vec<String> = payment
                    .candidates
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|_| Failure::internal())?
                    .unwrap_or_default();
                let mut asked = Vec::with_capacity(candidates.len());
                for id in &candidates {
                    if let Some(user) = parties::user(&mut conn, id).await? {
                        asked.push(user);
                    }
                }
                // Phone digits search that phone's partition with the payment's
                // probe while it is kept; otherwise the first search's candidates.
                let mut users = match &given {
                    Given::PhoneLast4(digits) => {
                        match self.identity.phone_candidates(&payment.id, digits)? {
                            Some(found) => {
                                let mut users = Vec::with_capacity(found.len());
                                for c in found {
                                    if let Some(user) = parties::user(&mut conn, &c.user_id).await?
                                    {
                                        users.push(user);
                                    }
                                }
                                users
                            }
                            None => asked.clone(),
                        }
                    }
                    _ => asked.clone(),
                };
                // A factor guessed wrong too often is locked for each payer it
                // was guessed against, until a while after the last wrong
                // answer; a locked payer cannot be confirmed by it.
                if let Some(guessed) = given.guessed() {
                    let now = self.core.now_ms();
                    let since = now - FACTOR_FAILURES_WINDOW_MS;
                    let mut open = Vec::with_capacity(users.len());
                    let tried = users.len();
                    for user in users.drain(..) {
                        let (failures, last_ms) =
                            fraud::factor_failures(&mut conn, &user.id, guessed, since).await?;
                        let locked = failures >= self.core.config.factor_failures_max
                            && last_ms.is_some_and(|t| now < t + self.core.config.factor_lock_ms);
                        if !locked {
                            open.push(user);
                        }
                    }
                    if open.is_empty() && tried > 0 {
                        let minutes = self.core.config.factor_lock_ms / 60_000;
                        return Err(Failure::new(
                            423,
                            "factor_locked",
                            format!(
                                "too many wrong answers: {} is locked for {minutes} minutes; \
                             use another factor",
                                method_name(given.factor())
                            ),
                        ));
                    }
                    users = open;
                }
                drop(conn);

                let factor = given.factor();
                let matching: Vec<User> = match given {
                    Given::CardTap(answer) => {
                        let (Some(challenge), [user]) = (challenge.as_ref(), users.as_slice())
                        else {
                            return Err(Failure::unprocessable(
                                "step_up_method_not_accepted",
                                "a card tap confirms a payer the risk engine asked about",
                            ));
                        };
                        let tap = tap::card_tap(challenge, &answer)?;
                        self.identity.forget_probe(&payment.id);
                        let (user, method) = self.payer(&user.id).await?;
                        let with = Settlement {
                            tap: Some(tap),
                            ..Settlement::default()
                        };
                        let stored = Some(&payment);
                        return self
                            .settle(
                                ctx,
                                stored,
                                payment.clone(),
                                &user,
                                &method,
                                &claimed,
                                PayTimings::default(),
                                with,
                            )
                            .await;
                    }
                    Given::PhoneLast4(digits) => users
                        .iter()
                        .filter(|u| u.phone_last4.as_deref() == Some(digits.as_str()))
                        .cloned()
                        .collect(),
                    Given::Phone(phone) => users
                        .iter()
                        .filter(|u| u.phone.as_deref() == Some(phone.as_str()))
                        .cloned()
                        .collect(),
                    Given::Pin(pin) => {
                        let tried = users.clone();
                        let matching = tokio::task::spawn_blocking(move || {
                            tried
                                .into_iter()
                                .filter(|u| {
                                    u.pin_hash
                                        .as_deref()
                                        .is_some_and(|h| keys::pin_matches(&pin, h))
                                })
                                .collect::<Vec<User>>()
                        })
                        .await
                        .map_err(|_| Failure::internal())?;
                        if matching.is_empty() {
                            self.record_failures(&users, GuessedFactor::Pin).await?;
                        }
                        matching
                    }
                };
                if let [user] = matching.as_slice() {
                    self.identity.forget_probe(&payment.id);
                    let (user, method) = self.payer(&user.id).await?;
                    if assessment.is_some() {
                        return self
                            .settle(
                                ctx,
                                Some(&payment),
                                payment.clone(),
                                &user,
                                &method,
                                &claimed,
                                PayTimings::default(),
                                Settlement::default(),
                            )
                            .await;
                    }
                    // The payer of an ambiguous match is known now: assess them,
                    // with what they just confirmed counted.
                    let matched = Matched {
                        user: &user,
                        method: &method,
                        score: payment.match_score.unwrap_or(0.0) as f32,
                        lead: 0.0,
                        liveness: match payment.liveness.as_deref() {
                            Some("live") => LivenessDecision::Live,
                            _ => LivenessDecision::Inconclusive,
                        },
                        amount_minor: payment.amount_minor,
                    };
                    let assessed = self.assess_risk(ctx, &matched, self.core.now_ms()).await?;
                    let payer = (&user, &method);
                    let stored = Some(&payment);
                    return self
                        .act(
                            ctx,
                            stored,
                            payment.clone(),
                            payer,
                            assessed,
                            Some(factor),
                            &claimed,
                            PayTimings::default(),
                        )
                        .await;
                }
                // Wrong digits count against the payers the face pointed at (not
                // whoever shares the guessed digits); digits shared by several
                // of them are not wrong.
                if matching.is_empty() && matches!(factor, Factor::PhoneLast4 | Factor::PhoneFull) {
                    self.record_failures(&asked, GuessedFactor::Phone).await?;
                }
                let mut after = payment.clone();
                after.step_up_attempts += 1;
                after.updated_at_ms = self.core.now_ms();
                let attempts_left = self.core.config.step_up_attempts_max - after.step_up_attempts;
                let (status, code, message) = if attempts_left <= 0 {
                    after.state = PaymentState::Declined.as_str().to_owned();
                    after.reason = "step_up_failed".into();
                    (
                        402,
                        "step_up_failed",
                        "the payer could not be confirmed; the payment is declined".to_owned(),
                    )
                } else {
                    after.reason = "step_up_mismatch".into();
                    (
                        422,
                        "step_up_mismatch",
                        format!("that does not confirm the payer; {attempts_left} attempts left"),
                    )
                };
                let mut view = PaymentView::of(&after);
                if attempts_left > 0 {
                    view.step_up = Some(step_up_view(&methods, attempts_left, challenge));
                }
                let reply = Reply::json(
                    status,
                    &PaymentFailure {
                        error: ErrorBody {
                            code,
                            message: &message,
                        },
                        payment: view,
                    },
                )?;
                let mut tx = self.core.begin().await?;
                payments::transition(&mut tx, &payment, &after).await?;
                if attempts_left <= 0 {
                    undo_discount(&mut tx, &after, after.updated_at_ms).await?;
                }
                claimed.complete(&mut tx, &reply).await?;
                tx.commit().await.map_err(facepay_store::StoreError::from)?;
                Ok(reply)
            })
            .await
    }

    /// Counts a wrong answer against every payer it was tried for, at once
    /// and whatever happens to the request: a lockout must not be undone
    /// by a retry.
    async fn record_failures(&self, users: &[User], factor: GuessedFactor) -> Result<(), Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        for user in users {
            fraud::record_factor_failure(&mut tx, &user.id, factor, now).await?;
        }
        commit(tx).await
    }

    /// Takes the payer's coupons and points (`reserve_discount`), then
    /// charges the card the rest (`charge`). A charge that fails with its
    /// payment reserved ends the payment as failed and gives them back, so
    /// a retry of the request finds it over, not half done.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        ctx: &TerminalContext,
        stored: Option<&Payment>,
        mut payment: Payment,
        user: &User,
        method: &PaymentMethod,
        claimed: &Claimed,
        timings: PayTimings,
        with: Settlement,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        payment.user_id = Some(user.id.clone());
        payment.payment_method_id = Some(method.id.clone());
        payment.connector = Some(self.core.connector.name().to_owned());
        // A tapped card signed the whole amount, so it is charged that.
        let (reserved, discount) = match with.tap {
            None => reserve_discount(&self.core, stored, &payment).await?,
            Some(_) => (stored.cloned(), Discount::default()),
        };
        let reserve_us = start.elapsed().as_micros() as u64;
        let id = payment.id.clone();
        let charged = self
            .charge(
                ctx,
                reserved.as_ref(),
                payment,
                (user, method),
                claimed,
                (timings, reserve_us),
                with,
                &discount,
            )
            .await;
        if charged.is_err() && !discount.is_empty() {
            self.abandon(&id).await;
        }
        charged
    }

    /// Ends a payment whose charge failed after its discount was reserved:
    /// failed, with its coupons and points given back. A store that fails
    /// here too leaves it to the sweep of abandoned payments.
    async fn abandon(&self, payment_id: &str) {
        let ended = async {
            let now = self.core.now_ms();
            let mut tx = self.core.begin().await?;
            let Some(before) = payments::get(&mut tx, payment_id).await? else {
                return Ok(());
            };
            if !matches!(
                before.state()?,
                PaymentState::Created | PaymentState::RequiresStepUp
            ) {
                return Ok(());
            }
            let mut after = before.clone();
            after.state = PaymentState::Failed.as_str().to_owned();
            after.reason = "interrupted".into();
            after.updated_at_ms = now;
            payments::transition(&mut tx, &before, &after).await?;
            undo_discount(&mut tx, &after, now).await?;
            commit(tx).await
        };
        if let Err(e) = ended.await {
            tracing::warn!(payment = payment_id, error = %e, "a failed charge kept its discount; the sweep gives it back");
        }
    }

    /// Authorises (and for automatic capture, captures) `payment`'s amount
    /// less `discount` with the issuer, then commits the payment, its
    /// ledger transfers, its loyalty and the answer at once. `stored` is
    /// the payment as it is in the database, if it is there.
    #[allow(clippy::too_many_arguments)]
    async fn charge(
        &self,
        ctx: &TerminalContext,
        stored: Option<&Payment>,
        mut payment: Payment,
        (user, method): (&User, &PaymentMethod),
        claimed: &Claimed,
        (mut timings, reserve_us): (PayTimings, u64),
        with: Settlement,
        discount: &Discount,
    ) -> Result<Reply, Failure> {
        let charge_minor = payment.amount_minor - discount.total_minor();
        assert!(
            charge_minor > 0,
            "a discount leaves the card something to pay"
        );
        let tapped = with.tap.is_some();
        let start = Instant::now();
        let (token, core_share) = self.core.card_share(method).await?;
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
                tap: with.tap,
            })
            .await?;
        let vault_and_issuer_us = start.elapsed().as_micros() as u64;
        timings.vault_us = vault_and_issuer_us.saturating_sub(authorised.connector_us);
        let authorised_connector_us = authorised.connector_us;
        let authorised = authorised.outcome;
        let start = Instant::now();
        let mut captured = None;
        if let Ok(auth) = &authorised
            && payment.capture_mode == CaptureMode::Automatic.as_str()
            && !with.hold_for_review
        {
            let reference = format!("{}:capture", payment.id);
            captured = Some(
                self.core
                    .connector
                    .capture(&auth.issuer_ref, charge_minor, &reference)
                    .await,
            );
        }
        timings.connector_us = authorised_connector_us + start.elapsed().as_micros() as u64;

        let start = Instant::now();
        let now = self.core.now_ms();
        let money = PaymentRef {
            payment_id: &payment.id,
            merchant_id: &payment.merchant_id,
            currency: &payment.currency,
        };
        let mut tx = self.core.begin().await?;
        let actor = format!("terminal:{}", ctx.terminal_id);
        audit::append(&mut tx, now, &actor, "card_used", &method.id).await?;
        let mut before = stored_or_created(&mut tx, stored, &payment).await?;
        if tapped {
            // Charged whole: whatever an earlier try reserved goes back.
            undo_discount(&mut tx, &payment, now).await?;
        }
        if let Some(record) = &with.record {
            fraud::insert_assessment(&mut tx, record).await?;
        }
        let mut reply = match authorised {
            Ok(auth) => {
                payment.issuer_ref = Some(auth.issuer_ref.clone());
                payment.authorised_minor = charge_minor;
                payment.state = PaymentState::Authorised.as_str().to_owned();
                payment.reason = format!("approved:{}", auth.approval_code);
                payment.updated_at_ms = now;
                if payment.capture_mode == CaptureMode::Manual.as_str() || with.hold_for_review {
                    payment.expires_at_ms = Some(now + self.core.config.authorisation_hold_ms);
                }
                if with.hold_for_review {
                    payment.reason = HELD_FOR_REVIEW.into();
                }
                ledger::authorise(&mut tx, money, charge_minor, now).await?;
                payments::transition(&mut tx, &before, &payment).await?;
                before = payment.clone();
                let mut earned = None;
                match captured {
                    Some(Ok(())) => {
                        payment.captured_minor = charge_minor;
                        payment.fee_minor = fee(ctx.merchant.fee_bps, charge_minor);
                        payment.state = PaymentState::Captured.as_str().to_owned();
                        payment.reason = "captured".into();
                        ledger::capture(
                            &mut tx,
                            money,
                            payment.captured_minor,
                            payment.fee_minor,
                            now,
                        )
                        .await?;
                        payments::transition(&mut tx, &before, &payment).await?;
                        earned = loyalty::earn(&mut tx, &payment, now).await?;
                    }
                    Some(Err(e)) => {
                        // The hold stands; the merchant can capture or void it.
                        tracing::warn!(payment = %payment.id, error = %e, "capture failed after authorisation");
                        payment.expires_at_ms = Some(now + self.core.config.authorisation_hold_ms);
                        payment.reason = format!("capture_failed:{}", e.code());
                        payments::transition(&mut tx, &before, &payment).await?;
                    }
                    None => {}
                }
                let phone_last4 = user.phone_last4.as_deref();
                let mut view =
                    PaymentView::of(&payment).with_receipt(ctx, Some(method), phone_last4);
                if let Some(receipt) = view.receipt.as_mut() {
                    receipt.loyalty =
                        LoyaltyReceipt::of(&mut tx, &payment, discount, earned).await?;
                }
                Reply::json(201, &view)?
            }
            Err(e) => {
                let (state, status) = match &e {
                    ConnectorError::Declined(_) => (PaymentState::Declined, 402),
                    ConnectorError::Timeout => (PaymentState::Failed, 504),
                    ConnectorError::Rejected(_) => (PaymentState::Failed, 502),
                };
                payment.state = state.as_str().to_owned();
                payment.reason = e.code().to_owned();
                payment.updated_at_ms = now;
                payments::transition(&mut tx, &before, &payment).await?;
                undo_discount(&mut tx, &payment, now).await?;
                let message = e.to_string();
                let view = PaymentView::of(&payment);
                Reply::json(
                    status,
                    &PaymentFailure {
                        error: ErrorBody {
                            code: e.code(),
                            message: &message,
                        },
                        payment: view,
                    },
                )?
            }
        };
        // A regular here from now on: searched first at this merchant, on
        // every server.
        let new_regular =
            reply.status == 201 && !self.identity.is_regular(&user.id, &ctx.merchant.id);
        if new_regular {
            self.identity
                .record_change(&mut tx, &user.id, Kind::Regular, Some(&ctx.merchant.id))
                .await?;
        }
        claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        if new_regular {
            self.identity.join_regulars(&user.id, &ctx.merchant.id);
        }
        timings.ledger_us = reserve_us + start.elapsed().as_micros() as u64;
        record_stages(&timings);
        reply.timings = Some(timings);
        Ok(reply)
    }
}

/// Stage latencies of one payment for Prometheus, in seconds.
fn record_stages(t: &PayTimings) {
    for (stage, us) in t.stages() {
        metrics::histogram!("facepay_pay_stage_seconds", "stage" => stage).record(us as f64 / 1e6);
    }
}

/// The factor a step-up request gives, checked for shape.
enum Given {
    PhoneLast4(String),
    Phone(String),
    Pin(Zeroizing<String>),
    CardTap(CardTapRequest),
}

impl Given {
    fn of(r: StepUpRequest) -> Result<Self, Failure> {
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        match (r.phone_last4, r.phone, r.pin, r.card_tap) {
            (Some(d), None, None, None) if d.len() == 4 && digits(&d) => Ok(Given::PhoneLast4(d)),
            (None, Some(p), None, None) => Ok(Given::Phone(normalise_phone(&p)?)),
            (None, None, Some(p), None) if (4..=12).contains(&p.len()) && digits(&p) => {
                Ok(Given::Pin(Zeroizing::new(p)))
            }
            (None, None, None, Some(tap)) => Ok(Given::CardTap(tap)),
            _ => Err(Failure::unprocessable(
                "step_up_invalid",
                "send exactly one of phone_last4 (4 digits), phone, pin (4 to 12 digits) \
                 or card_tap",
            )),
        }
    }

    fn factor(&self) -> Factor {
        match self {
            Given::PhoneLast4(_) => Factor::PhoneLast4,
            Given::Phone(_) => Factor::PhoneFull,
            Given::Pin(_) => Factor::Pin,
            Given::CardTap(_) => Factor::CardTap,
        }
    }

    /// The lockout group of a factor that can be guessed at.
    fn guessed(&self) -> Option<GuessedFactor> {
        match self {
            Given::PhoneLast4(_) | Given::Phone(_) => Some(GuessedFactor::Phone),
            Given::Pin(_) => Some(GuessedFactor::Pin),
            Given::CardTap(_) => None,
        }
    }
}

//! `POST /v1/terminal/payments`: the request checked, the burst analysed,
//! the payer searched for, and the match acted on, or the candidates of an
//! ambiguous one asked to confirm.

use std::time::Instant;

use facepay_face::QualityPolicy;
use facepay_face::liveness::LivenessDecision;
use facepay_gallery::{Candidate, Decision};
use facepay_money::Currency;
use facepay_store::fraud::AttemptKind;
use facepay_store::parties::TerminalContext;
use facepay_store::payments::{self, Payment, PaymentState};

use super::{
    Attempt, Matched, Payments, TERMINAL_ATTEMPTS_WINDOW_MS, accepted, elapsed_us, step_up_view,
    terminal_scope,
};
use crate::api::{CaptureMode, Liveness, PayRequest, PayTimings, PaymentView};
use crate::core::{Claimed, Reply, Request, commit, decode_frames, derived_id, parse_json};
use crate::error::Failure;
use crate::face::BurstOutcome;
use crate::identity::Lane;

/// What a payment request finds of an earlier try of its key.
enum Earlier {
    /// One committed a payment; this is its answer.
    Answered(Reply),
    /// None did. The terminal's refused attempts lately, for its throttle.
    Nothing { refused_attempts: i64 },
}

/// A payment request that passed its checks, before any work is done.
struct PayInput {
    amount_minor: i64,
    currency: Currency,
    capture: CaptureMode,
    phone_last4: Option<String>,
    frames: Vec<Vec<u8>>,
}

impl PayInput {
    /// The request's amount in the store's currency, the till's phone
    /// digits if it sent any, and the frames decoded.
    fn parse(ctx: &TerminalContext, body: &[u8]) -> Result<Self, Failure> {
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
        Ok(Self {
            amount_minor,
            currency,
            capture: request.capture,
            frames: decode_frames(&request.frames)?,
            phone_last4: request.phone_last4,
        })
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
        let mut input = PayInput::parse(ctx, body)?;
        let scope = terminal_scope(ctx);
        let payment_id = derived_id("pay", &scope, key);
        self.core
            .idempotent(
                scope,
                key,
                Request::new("pay", "", body),
                |claimed| async move {
                    let _lock = self.core.payment_lock(&payment_id).lock().await;
                    if let Some(reply) = self.before_the_face(ctx, &payment_id, &claimed).await? {
                        return Ok(reply);
                    }
                    let face = self.face(ctx, std::mem::take(&mut input.frames)).await?;
                    let mut timings = PayTimings::with_face(face.timings);
                    let start = Instant::now();
                    let probe = self.identity.protect(&face.template.vector)?;
                    let phone_last4 = input.phone_last4.as_deref();
                    let identified =
                        self.identity
                            .identify(&probe, phone_last4, &ctx.merchant.id)?;
                    timings.identify_us = elapsed_us(start);
                    let payment = self.received(ctx, (&payment_id, key), &input, face.liveness);
                    let attempt = Attempt {
                        ctx,
                        claimed: &claimed,
                        stored: None,
                        stored_here: false,
                        timings,
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
                            let lead = identified.lead;
                            self.matched(attempt, payment, best, lead, face.liveness)
                                .await
                        }
                        Decision::Ambiguous(candidates) => {
                            self.ask_who(attempt, payment, &candidates, probe).await
                        }
                    }
                },
            )
            .await
    }

    /// The pay path after the face stage, for a payer already identified
    /// with full confidence: the idempotency claim, the risk engine on the
    /// payer's history, the loyalty reservation, the payment's row, the
    /// vault and the issuer, and the recording transaction, all as `pay`
    /// runs them. What `facepay bench ledger` measures of the store. No
    /// route calls it: every request the server answers is identified by
    /// a face.
    pub async fn pay_identified(
        &self,
        ctx: &TerminalContext,
        key: &str,
        amount_minor: i64,
        user_id: &str,
    ) -> Result<Reply, Failure> {
        let input = PayInput {
            amount_minor,
            currency: Currency::from_code(&ctx.store.currency)?,
            capture: CaptureMode::Automatic,
            phone_last4: None,
            frames: Vec::new(),
        };
        let scope = terminal_scope(ctx);
        let payment_id = derived_id("pay", &scope, key);
        let body = format!("identified:{user_id}:{amount_minor}");
        let request = Request::new("pay", "", body.as_bytes());
        self.core
            .idempotent(scope, key, request, |claimed| async move {
                let _lock = self.core.payment_lock(&payment_id).lock().await;
                if let Some(reply) = self.before_the_face(ctx, &payment_id, &claimed).await? {
                    return Ok(reply);
                }
                let live = LivenessDecision::Live;
                let payment = self.received(ctx, (&payment_id, key), &input, live);
                let attempt = Attempt {
                    ctx,
                    claimed: &claimed,
                    stored: None,
                    stored_here: false,
                    timings: PayTimings::default(),
                };
                let best = Candidate {
                    user_id: user_id.to_owned(),
                    score: 1.0,
                };
                self.matched(attempt, payment, best, 1.0, live).await
            })
            .await
    }

    /// What a payment request does before its face is analysed: the
    /// answer an earlier try of its key committed, if there is one, else
    /// the terminal's throttle checked.
    async fn before_the_face(
        &self,
        ctx: &TerminalContext,
        payment_id: &str,
        claimed: &Claimed,
    ) -> Result<Option<Reply>, Failure> {
        match self.committed_earlier(ctx, payment_id, claimed).await? {
            Earlier::Answered(reply) => Ok(Some(reply)),
            Earlier::Nothing { refused_attempts } => {
                self.check_throttle(ctx, refused_attempts).await?;
                Ok(None)
            }
        }
    }

    /// The answer for a payment a request with this key committed and
    /// then died before answering: what it committed. One it left
    /// unfinished (`created`) is ended first, any authorisation that may
    /// be out reversed. When there is no such payment, the terminal's
    /// refused attempts, read in the same statement.
    async fn committed_earlier(
        &self,
        ctx: &TerminalContext,
        payment_id: &str,
        claimed: &Claimed,
    ) -> Result<Earlier, Failure> {
        let since = self.core.now_ms() - TERMINAL_ATTEMPTS_WINDOW_MS;
        let mut conn = self.core.conn().await?;
        let (earlier, refused_attempts) =
            payments::earlier_and_attempts(&mut conn, payment_id, &ctx.terminal_id, since).await?;
        drop(conn);
        let Some(mut existing) = earlier else {
            return Ok(Earlier::Nothing { refused_attempts });
        };
        if existing.state()? == PaymentState::Created {
            self.abandon(&existing.id).await;
            existing = payments::get(&mut *self.core.conn().await?, payment_id)
                .await?
                .ok_or_else(Failure::internal)?;
        }
        if existing.state()? == PaymentState::Created {
            // Not ended (its reversal unanswered): an answer stored now
            // would say `created` for good.
            return Err(Failure::new(
                503,
                "payment_unfinished",
                "an earlier try of this payment is not ended yet (the card issuer did not answer its reversal); retry with the same key",
            ));
        }
        let reply = Reply::json(200, &PaymentView::of(&existing)?)?;
        let mut tx = self.core.begin().await?;
        claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        Ok(Earlier::Answered(reply))
    }

    /// The burst through the face engine and liveness; a spoof is counted
    /// against the terminal.
    async fn face(
        &self,
        ctx: &TerminalContext,
        frames: Vec<Vec<u8>>,
    ) -> Result<BurstOutcome, Failure> {
        match self
            .identity
            .analyse(frames, QualityPolicy::payment(), Lane::Payment)
            .await
        {
            Err(f) if f.code == "liveness_failed" => {
                self.record_attempt(ctx, AttemptKind::Spoof).await;
                Err(f)
            }
            other => other,
        }
    }

    /// The payment as just received, before anyone is identified.
    fn received(
        &self,
        ctx: &TerminalContext,
        (payment_id, key): (&str, &str),
        input: &PayInput,
        liveness: LivenessDecision,
    ) -> Payment {
        let now = self.core.now_ms();
        Payment {
            id: payment_id.to_owned(),
            terminal_id: ctx.terminal_id.clone(),
            store_id: ctx.store.id.clone(),
            merchant_id: ctx.merchant.id.clone(),
            idempotency_key: key.to_owned(),
            user_id: None,
            payment_method_id: None,
            amount_minor: input.amount_minor,
            currency: input.currency.code().to_owned(),
            capture_mode: input.capture.as_str().to_owned(),
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
            liveness: Some(Liveness::from(liveness).as_str().to_owned()),
            expires_at_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }

    /// One payer found: their card and history through the risk engine,
    /// and the decision acted on. A payment the engine cannot assess does
    /// not go through.
    async fn matched(
        &self,
        attempt: Attempt<'_>,
        mut payment: Payment,
        best: Candidate,
        lead: f32,
        liveness: LivenessDecision,
    ) -> Result<Reply, Failure> {
        payment.match_score = Some(f64::from(best.score));
        let payer = self.payer(&best.user_id).await?;
        let start = Instant::now();
        let stored_here = attempt.stored.is_none();
        let counted = self.counted(attempt.stored, &payment, &payer).await?;
        let mut attempt = Attempt {
            stored: Some(&counted),
            stored_here,
            ..attempt
        };
        let matched = Matched {
            user: &payer.user,
            method: &payer.method,
            score: best.score,
            lead,
            liveness,
            amount_minor: payment.amount_minor,
        };
        let assessment = self.assess_risk(attempt.ctx, &matched, &payment.id).await?;
        attempt.timings.risk_us = elapsed_us(start);
        self.act(attempt, payment, &payer, assessment, None).await
    }

    /// The payment's row, naming its payer, card and connector, committed
    /// before the risk engine reads the payer's history: of payments sent
    /// at once, here or on other servers, each read sees the rows written
    /// before it, so the last sees them all and a velocity limit holds for
    /// a burst as it does for payments made one after another. It is
    /// `sending`'s row, written earlier (the later `sending` finds it and
    /// writes nothing), so it costs no write more: a request that dies
    /// before the issuer is asked leaves a reversal of nothing for the
    /// retry or the sweep to send, and a refusal takes the connector back
    /// in its own write.
    pub(super) async fn counted(
        &self,
        stored: Option<&Payment>,
        payment: &Payment,
        payer: &super::Payer,
    ) -> Result<Payment, Failure> {
        let mut named = payment.clone();
        self.name_for_issuer(&mut named, payer);
        self.sending(stored, &named).await
    }

    /// A weak match, or several close ones: the payment waits for the
    /// payer to confirm who they are, its probe kept for a search by their
    /// phone digits.
    async fn ask_who(
        &self,
        mut attempt: Attempt<'_>,
        mut payment: Payment,
        candidates: &[Candidate],
        probe: Vec<f32>,
    ) -> Result<Reply, Failure> {
        let before = payment.clone();
        payment.match_score = candidates.first().map(|c| f64::from(c.score));
        let ids: Vec<&str> = candidates.iter().map(|c| c.user_id.as_str()).collect();
        payment.candidates = Some(serde_json::to_string(&ids).map_err(|_| Failure::internal())?);
        payment.state = PaymentState::RequiresStepUp.as_str().to_owned();
        payment.reason = if candidates.len() > 1 {
            "candidates_close"
        } else {
            "match_weak"
        }
        .into();
        let mut view = PaymentView::of(&payment)?;
        let attempts_max = self.core.config.step_up_attempts_max;
        view.step_up = Some(step_up_view(&accepted(None), attempts_max, None));
        let mut reply = Reply::json(202, &view)?;
        let start = Instant::now();
        let mut tx = self.core.begin().await?;
        payments::insert(&mut tx, &before).await?;
        crate::core::transition(&mut tx, &before, &payment).await?;
        attempt.claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        self.identity.keep_probe(&payment.id, probe);
        attempt.timings.ledger_us = elapsed_us(start);
        reply.timings = Some(attempt.timings);
        Ok(reply)
    }
}

//! The terminal side: identify the payer, step up when unsure, authorise and
//! capture with the issuer, and commit payment, ledger and answer together.

use std::time::Instant;

use facepay_connector::ConnectorError;
use facepay_face::QualityPolicy;
use facepay_money::{Currency, basis_points_of};
use facepay_store::changes::Kind;
use facepay_store::ledger::{self, PaymentRef};
use facepay_store::parties::{self, PaymentMethod, TerminalContext, User};
use facepay_store::payments::{self, Payment, PaymentState};
use facepay_store::{audit, now_ms};
use facepay_vault::VaultAuthorise;
use zeroize::Zeroizing;

use crate::api::{
    CaptureMode, ErrorBody, PayRequest, PayTimings, PaymentFailure, PaymentView, StepUp,
    StepUpRequest,
};
use crate::face::analyse_burst;
use crate::risk::Matched;
use crate::{Claimed, Failure, Payments, Reply, decode_frames, derived_id, keys, parse_json};
use facepay_gallery::Decision;

const STEP_UP_METHODS: [&str; 2] = ["phone_last4", "pin"];

fn terminal_scope(ctx: &TerminalContext) -> String {
    format!("terminal:{}", ctx.terminal_id)
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
        self.idempotent(scope, key, body, |claimed| async move {
            let _lock = self.payment_lock(&payment_id).lock().await;
            let mut conn = self.conn().await?;
            if let Some(existing) = payments::get(&mut conn, &payment_id).await? {
                // A request with this key died after committing: answer with
                // what it committed.
                drop(conn);
                let reply = Reply::json(200, &PaymentView::of(&existing))?;
                let mut tx = self.store.begin().await?;
                claimed.complete(&mut tx, &reply).await?;
                tx.commit().await.map_err(facepay_store::StoreError::from)?;
                return Ok(reply);
            }
            drop(conn);

            let mode = self.config.liveness;
            let outcome = self
                .on_inference_thread(move |engine, checker| {
                    analyse_burst(engine, checker, mode, &QualityPolicy::payment(), &frames)
                })
                .await?;
            let mut timings = PayTimings::with_face(outcome.timings);
            let start = Instant::now();
            let probe = self.protect(&outcome.template.vector)?;
            let identified = self.identify(&probe, phone_last4.as_deref(), &ctx.merchant.id)?;
            timings.identify_us = start.elapsed().as_micros() as u64;

            let now = now_ms();
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
                Decision::NoMatch => Err(Failure::unprocessable(
                    "face_not_recognised",
                    "no enrolled face matches; enrol in the app or pay another way",
                )),
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
                    // Shadow mode: assessed and logged, not acted on yet; a
                    // failure to assess does not stop the payment.
                    match self.assess_risk(ctx, &matched).await {
                        Ok(a) => tracing::info!(
                            payment = %payment.id,
                            decision = ?a.decision,
                            score = a.score,
                            fired = ?a.fired.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>(),
                            "risk assessed (shadow mode)"
                        ),
                        Err(e) => tracing::warn!(error = %e, "risk not assessed"),
                    }
                    timings.risk_us = start.elapsed().as_micros() as u64;
                    self.settle(ctx, None, payment, &user, &method, &claimed, timings)
                        .await
                }
                Decision::Ambiguous(candidates) => {
                    let before = payment.clone();
                    payment.match_score = candidates.first().map(|c| f64::from(c.score));
                    let ids: Vec<&str> = candidates.iter().map(|c| c.user_id.as_str()).collect();
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
                    view.step_up = Some(StepUp {
                        methods: STEP_UP_METHODS.iter().map(|m| m.to_string()).collect(),
                        attempts_left: self.config.step_up_attempts_max,
                    });
                    let mut reply = Reply::json(202, &view)?;
                    let start = Instant::now();
                    let mut tx = self.store.begin().await?;
                    payments::insert(&mut tx, &before).await?;
                    payments::transition(&mut tx, &before, &payment).await?;
                    claimed.complete(&mut tx, &reply).await?;
                    tx.commit().await.map_err(facepay_store::StoreError::from)?;
                    self.probes.keep(&payment.id, probe);
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
        let mut conn = self.conn().await?;
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

    /// `POST /v1/terminal/payments/{id}/step-up`: the payer's phone digits or
    /// PIN narrow the candidates to one.
    pub async fn step_up(
        &self,
        ctx: &TerminalContext,
        payment_id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: StepUpRequest = parse_json(body)?;
        let factor = match (&request.phone_last4, &request.pin) {
            (Some(d), None) if d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()) => {
                Factor::PhoneLast4(d.clone())
            }
            (None, Some(p))
                if (4..=12).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Factor::Pin(Zeroizing::new(p.clone()))
            }
            _ => {
                return Err(Failure::unprocessable(
                    "step_up_invalid",
                    "send either phone_last4 (4 digits) or pin (4 to 12 digits)",
                ));
            }
        };
        let payment_id = payment_id.to_owned();
        self.idempotent(terminal_scope(ctx), key, body, |claimed| async move {
            let _lock = self.payment_lock(&payment_id).lock().await;
            let mut conn = self.conn().await?;
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
            let candidates: Vec<String> = payment
                .candidates
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| Failure::internal())?
                .unwrap_or_default();
            // Phone digits search that phone's partition with the payment's
            // probe while it is kept; otherwise the first search's candidates.
            let candidates = match &factor {
                Factor::PhoneLast4(digits) => match self.phone_candidates(&payment.id, digits)? {
                    Some(found) => found.into_iter().map(|c| c.user_id).collect(),
                    None => candidates,
                },
                Factor::Pin(_) => candidates,
            };
            let mut users = Vec::with_capacity(candidates.len());
            for id in &candidates {
                if let Some(user) = parties::user(&mut conn, id).await? {
                    users.push(user);
                }
            }
            drop(conn);
            let matching: Vec<User> = match factor {
                Factor::PhoneLast4(digits) => users
                    .into_iter()
                    .filter(|u| u.phone_last4.as_deref() == Some(digits.as_str()))
                    .collect(),
                Factor::Pin(pin) => tokio::task::spawn_blocking(move || {
                    users
                        .into_iter()
                        .filter(|u| {
                            u.pin_hash
                                .as_deref()
                                .is_some_and(|h| keys::pin_matches(&pin, h))
                        })
                        .collect()
                })
                .await
                .map_err(|_| Failure::internal())?,
            };
            if let [user] = matching.as_slice() {
                self.probes.forget(&payment.id);
                let (user, method) = self.payer(&user.id).await?;
                return self
                    .settle(
                        ctx,
                        Some(&payment),
                        payment.clone(),
                        &user,
                        &method,
                        &claimed,
                        PayTimings::default(),
                    )
                    .await;
            }
            let mut after = payment.clone();
            after.step_up_attempts += 1;
            after.updated_at_ms = now_ms();
            let attempts_left = self.config.step_up_attempts_max - after.step_up_attempts;
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
                view.step_up = Some(StepUp {
                    methods: STEP_UP_METHODS.iter().map(|m| m.to_string()).collect(),
                    attempts_left,
                });
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
            let mut tx = self.store.begin().await?;
            payments::transition(&mut tx, &payment, &after).await?;
            claimed.complete(&mut tx, &reply).await?;
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            Ok(reply)
        })
        .await
    }

    /// Authorises (and for automatic capture, captures) with the issuer, then
    /// commits the payment, its ledger transfers and the answer at once.
    /// `stored` is the payment as it is in the database, if it is there.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        ctx: &TerminalContext,
        stored: Option<&Payment>,
        mut payment: Payment,
        user: &User,
        method: &PaymentMethod,
        claimed: &Claimed,
        mut timings: PayTimings,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        let (token, core_share) = self.card_share(method).await?;
        payment.user_id = Some(user.id.clone());
        payment.payment_method_id = Some(method.id.clone());
        payment.connector = Some(self.connector.name().to_owned());
        let authorised = self
            .vault
            .authorise(VaultAuthorise {
                token,
                core_share,
                expiry_month: u8::try_from(method.expiry_month).unwrap_or(0),
                expiry_year: u16::try_from(method.expiry_year).unwrap_or(0),
                reference: payment.id.clone(),
                amount_minor: payment.amount_minor,
                currency: payment.currency.clone(),
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
        {
            let reference = format!("{}:capture", payment.id);
            captured = Some(
                self.connector
                    .capture(&auth.issuer_ref, payment.amount_minor, &reference)
                    .await,
            );
        }
        timings.connector_us = authorised_connector_us + start.elapsed().as_micros() as u64;

        let start = Instant::now();
        let now = now_ms();
        let money = PaymentRef {
            payment_id: &payment.id,
            merchant_id: &payment.merchant_id,
            currency: &payment.currency,
        };
        let mut tx = self.store.begin().await?;
        let actor = format!("terminal:{}", ctx.terminal_id);
        audit::append(&mut tx, now, &actor, "card_used", &method.id).await?;
        let mut before = match stored {
            Some(p) => p.clone(),
            None => {
                let mut created = payment.clone();
                created.state = PaymentState::Created.as_str().to_owned();
                created.reason = "received".into();
                payments::insert(&mut tx, &created).await?;
                created
            }
        };
        let mut reply = match authorised {
            Ok(auth) => {
                payment.issuer_ref = Some(auth.issuer_ref.clone());
                payment.authorised_minor = payment.amount_minor;
                payment.state = PaymentState::Authorised.as_str().to_owned();
                payment.reason = format!("approved:{}", auth.approval_code);
                payment.updated_at_ms = now;
                if payment.capture_mode == CaptureMode::Manual.as_str() {
                    payment.expires_at_ms = Some(now + self.config.authorisation_hold_ms);
                }
                ledger::authorise(&mut tx, money, payment.amount_minor, now).await?;
                payments::transition(&mut tx, &before, &payment).await?;
                before = payment.clone();
                match captured {
                    Some(Ok(())) => {
                        payment.captured_minor = payment.amount_minor;
                        payment.fee_minor = fee(ctx.merchant.fee_bps, payment.amount_minor);
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
                    }
                    Some(Err(e)) => {
                        // The hold stands; the merchant can capture or void it.
                        tracing::warn!(payment = %payment.id, error = %e, "capture failed after authorisation");
                        payment.expires_at_ms = Some(now + self.config.authorisation_hold_ms);
                        payment.reason = format!("capture_failed:{}", e.code());
                        payments::transition(&mut tx, &before, &payment).await?;
                    }
                    None => {}
                }
                let phone_last4 = user.phone_last4.as_deref();
                let view = PaymentView::of(&payment).with_receipt(ctx, Some(method), phone_last4);
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
        let regulars = crate::identify::merchant_partition(&ctx.merchant.id);
        let new_regular = reply.status == 201 && !self.gallery.in_partition(&user.id, &regulars);
        if new_regular {
            self.record_change(&mut tx, &user.id, Kind::Regular, Some(&ctx.merchant.id))
                .await?;
        }
        claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        if new_regular {
            let _ = self.gallery.join_partition(&user.id, &regulars);
        }
        timings.ledger_us = start.elapsed().as_micros() as u64;
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

enum Factor {
    PhoneLast4(String),
    Pin(Zeroizing<String>),
}

pub(crate) fn fee(fee_bps: i64, amount_minor: i64) -> i64 {
    basis_points_of(
        amount_minor,
        u32::try_from(fee_bps).unwrap_or(0).min(10_000),
    )
}

pub(crate) async fn commit(tx: facepay_store::Transaction) -> Result<(), Failure> {
    tx.commit()
        .await
        .map_err(|e| Failure::from(facepay_store::StoreError::from(e)))
}

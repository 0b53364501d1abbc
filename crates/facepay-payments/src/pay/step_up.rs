//! `POST /v1/terminal/payments/{id}/step-up`: the payer of a payment that
//! waits confirms who they are with one of the factors it asks for. The
//! stages: the waiting payment and what it asks; who may be confirmed (the
//! face's candidates, or the phone's partition searched again); factors
//! locked by too many wrong answers; the factor checked; then the one payer
//! confirmed goes on to the risk engine or the charge, and anything else
//! counts as an attempt.

use facepay_face::liveness::LivenessDecision;
use facepay_risk::Factor;
use facepay_store::fraud::{self, Guess, GuessedFactor};
use facepay_store::parties::{self, TerminalContext, User};
use facepay_store::payments::{self, Payment, PaymentState};
use zeroize::Zeroizing;

use super::{
    ALL_FACTORS, Attempt, Matched, Payments, Settlement, accepted, method_name, step_up_view,
    terminal_scope,
};
use crate::api::{
    CardChallenge, CardTapRequest, ErrorBody, PayTimings, PaymentFailure, PaymentView,
    StepUpRequest,
};
use crate::core::{Claimed, Reply, Request, Wait, commit, normalise_phone, parse_json};
use crate::error::Failure;
use crate::loyalty::undo_discount;
use crate::{keys, tap};

/// Wrong answers of a factor are counted over this window; enough of them
/// lock it (`Config::factor_failures_max`, `Config::factor_lock_ms`).
const FACTOR_FAILURES_WINDOW_MS: i64 = 86_400_000;

/// The factor a step-up request gives, checked for shape.
enum Given {
    Knows(Knowledge),
    CardTap(CardTapRequest),
}

/// Something only the payer knows.
enum Knowledge {
    PhoneLast4(String),
    Phone(String),
    Pin(Zeroizing<String>),
}

impl Given {
    fn of(r: StepUpRequest) -> Result<Self, Failure> {
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let knows = |k| Ok(Given::Knows(k));
        match (r.phone_last4, r.phone, r.pin, r.card_tap) {
            (Some(d), None, None, None) if d.len() == 4 && digits(&d) => {
                knows(Knowledge::PhoneLast4(d))
            }
            (None, Some(p), None, None) => match normalise_phone(&p) {
                Ok(phone) => knows(Knowledge::Phone(phone)),
                Err(_) => Err(Failure::bad_request(
                    "step_up_invalid",
                    "the phone number must be 8 to 15 digits, with an optional leading '+'",
                )),
            },
            (None, None, Some(p), None) if (4..=12).contains(&p.len()) && digits(&p) => {
                knows(Knowledge::Pin(Zeroizing::new(p)))
            }
            (None, None, None, Some(tap)) => Ok(Given::CardTap(tap)),
            _ => Err(Failure::bad_request(
                "step_up_invalid",
                "send exactly one of phone_last4 (4 digits), phone, pin (4 to 12 digits) \
                 or card_tap",
            )),
        }
    }

    fn factor(&self) -> Factor {
        match self {
            Given::Knows(Knowledge::PhoneLast4(_)) => Factor::PhoneLast4,
            Given::Knows(Knowledge::Phone(_)) => Factor::PhoneFull,
            Given::Knows(Knowledge::Pin(_)) => Factor::Pin,
            Given::CardTap(_) => Factor::CardTap,
        }
    }

    /// The lockout group of a factor that can be guessed at.
    fn guessed(&self) -> Option<GuessedFactor> {
        match self {
            Given::Knows(Knowledge::PhoneLast4(_) | Knowledge::Phone(_)) => {
                Some(GuessedFactor::Phone)
            }
            Given::Knows(Knowledge::Pin(_)) => Some(GuessedFactor::Pin),
            Given::CardTap(_) => None,
        }
    }
}

/// A payment waiting for a step-up, and what its assessment asks for.
struct Awaiting {
    payment: Payment,
    /// Whether the risk engine assessed the payment already (it asked for
    /// a factor); an ambiguous match has no assessment yet.
    assessed: bool,
    required: Option<Factor>,
    challenge: Option<CardChallenge>,
}

impl Payments {
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
        let request = Request::new("step_up", payment_id, body);
        let payment_id = payment_id.to_owned();
        self.core
            .idempotent(terminal_scope(ctx), key, request, |claimed| async move {
                let work = self.step_up_leased(ctx, &payment_id, given, &claimed);
                self.core.leased(&payment_id, Wait::ForHolder, work).await
            })
            .await
    }

    /// A step-up, under the payment's lease.
    async fn step_up_leased(
        &self,
        ctx: &TerminalContext,
        payment_id: &str,
        given: Given,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let awaiting = self.awaiting(ctx, payment_id).await?;
        let methods = accepted(awaiting.required);
        if !methods.contains(&given.factor()) {
            let names: Vec<&str> = methods.iter().map(|f| method_name(*f).as_str()).collect();
            return Err(Failure::conflict(
                "step_up_method_not_accepted",
                format!("this payment asks for one of: {}", names.join(", ")),
            ));
        }
        let asked = self.candidates(&awaiting.payment).await?;
        let tried = self.tried(&given, &awaiting.payment, &asked).await?;
        let (open, guesses) = self.unlocked(&given, tried).await?;
        let attempt = Attempt {
            ctx,
            claimed,
            stored: Some(&awaiting.payment),
            stored_here: false,
            timings: PayTimings::default(),
        };
        let (factor, guessed) = (given.factor(), given.guessed());
        let matching = match given {
            Given::CardTap(answer) => {
                return self.tapped(attempt, &awaiting, &open, &answer).await;
            }
            Given::Knows(knows) => match self.matching(knows, open.clone()).await {
                Ok(matching) => matching,
                Err(e) => {
                    // Not checked: counted against no one.
                    self.forget_guesses(&guesses).await?;
                    return Err(e);
                }
            },
        };
        match guessed {
            Some(guessed) if matching.is_empty() => {
                // A wrong PIN counts against every payer it was
                // tried for; wrong digits against the payers the
                // face pointed at (not whoever shares the digits).
                let wrong_for = if factor == Factor::Pin { &open } else { &asked };
                self.keep_failures(guessed, guesses, wrong_for).await?;
            }
            // Right for someone; digits shared by several of them
            // are not wrong either.
            _ => self.forget_guesses(&guesses).await?,
        }
        if let [user] = matching.as_slice() {
            return self.confirmed(attempt, &awaiting, &user.id, factor).await;
        }
        self.mismatch(attempt, &awaiting, &methods).await
    }

    /// The terminal's payment `payment_id`, if it waits for a step-up, with
    /// the factor and card challenge its assessment asks for.
    async fn awaiting(&self, ctx: &TerminalContext, payment_id: &str) -> Result<Awaiting, Failure> {
        let mut conn = self.core.conn().await?;
        let payment = payments::get(&mut conn, payment_id)
            .await?
            .filter(|p| p.terminal_id == ctx.terminal_id)
            .ok_or_else(|| Failure::not_found("payment"))?;
        if payment.state()? != PaymentState::RequiresStepUp {
            return Err(Failure::conflict(
                "payment_not_awaiting_step_up",
                format!("this payment is {}", payment.state),
            ));
        }
        if payment.connector.is_some() {
            // Its charge started and was cut short: an authorisation may be
            // out, so it ends (reversed) rather than charge a second time.
            drop(conn);
            self.abandon(&payment.id).await;
            return Err(Failure::conflict(
                "payment_interrupted",
                "this payment's charge was interrupted: it is ended and any authorisation reversed, so nothing is charged; start a new payment",
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
        Ok(Awaiting {
            payment,
            assessed: assessment.is_some(),
            required,
            challenge,
        })
    }

    /// The users the payment's first search pointed at.
    async fn candidates(&self, payment: &Payment) -> Result<Vec<User>, Failure> {
        let ids: Vec<String> = payment
            .candidates
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| Failure::internal())?
            .unwrap_or_default();
        self.users(&ids).await
    }

    /// The users of `ids` that still exist.
    async fn users(&self, ids: &[String]) -> Result<Vec<User>, Failure> {
        let mut conn = self.core.conn().await?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = parties::user(&mut conn, id).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Whom the factor is tried against: phone digits search that phone's
    /// partition with the payment's probe while it is kept; otherwise the
    /// first search's candidates.
    async fn tried(
        &self,
        given: &Given,
        payment: &Payment,
        asked: &[User],
    ) -> Result<Vec<User>, Failure> {
        if let Given::Knows(Knowledge::PhoneLast4(digits)) = given
            && let Some(found) = self.identity.phone_candidates(&payment.id, digits)?
        {
            let ids: Vec<String> = found.into_iter().map(|c| c.user_id).collect();
            return self.users(&ids).await;
        }
        Ok(asked.to_vec())
    }

    /// A factor guessed wrong too often is locked for each payer it was
    /// guessed against, until a while after the last wrong answer; a locked
    /// payer cannot be confirmed by it. The guess is counted as wrong for
    /// each payer before it is checked (`fraud::count_guess`), so guesses
    /// sent at once cannot pass the limit together. Returns the payers
    /// still open and the guesses counted against them.
    async fn unlocked(
        &self,
        given: &Given,
        users: Vec<User>,
    ) -> Result<(Vec<User>, Vec<Guess>), Failure> {
        let Some(guessed) = given.guessed() else {
            return Ok((users, Vec::new()));
        };
        let mut conn = self.core.conn().await?;
        let tried = users.len();
        let mut open = Vec::with_capacity(tried);
        let mut guesses = Vec::with_capacity(tried);
        for user in users {
            match self.count_guess(&mut conn, &user.id, guessed).await {
                Ok(Some(guess)) => {
                    guesses.push(guess);
                    open.push(user);
                }
                Ok(None) => {}
                Err(e) => {
                    drop(conn);
                    // Checked against no one: none of them counts.
                    self.forget_guesses(&guesses).await?;
                    return Err(e);
                }
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
                    method_name(given.factor()).as_str()
                ),
            ));
        }
        Ok((open, guesses))
    }

    /// The guess counted against one payer, or `None` (and not counted)
    /// when the factor is locked for them.
    async fn count_guess(
        &self,
        conn: &mut facepay_store::PooledConnection,
        user_id: &str,
        guessed: GuessedFactor,
    ) -> Result<Option<Guess>, Failure> {
        let config = &self.core.config;
        let now = self.core.now_ms();
        let since = now - FACTOR_FAILURES_WINDOW_MS;
        let guess = fraud::count_guess(conn, user_id, guessed, now, since).await?;
        let locked = guess.failures_before >= config.factor_failures_max
            && guess
                .last_failure_ms
                .is_some_and(|t| now < t + config.factor_lock_ms);
        if !locked {
            return Ok(Some(guess));
        }
        fraud::forget_guess(conn, &guess).await?;
        Ok(None)
    }

    /// A card tap: the card signed the challenge for the one payer the risk
    /// engine asked about, and the issuer checks the cryptogram when the
    /// payment is authorised.
    async fn tapped(
        &self,
        attempt: Attempt<'_>,
        awaiting: &Awaiting,
        open: &[User],
        answer: &CardTapRequest,
    ) -> Result<Reply, Failure> {
        let (Some(challenge), [user]) = (awaiting.challenge.as_ref(), open) else {
            return Err(Failure::conflict(
                "step_up_method_not_accepted",
                "a card tap confirms a payer the risk engine asked about",
            ));
        };
        let tap = tap::card_tap(challenge, answer)?;
        self.identity.forget_probe(&awaiting.payment.id);
        let payer = self.payer(&user.id).await?;
        let with = Settlement {
            tap: Some(tap),
            ..Settlement::default()
        };
        self.settle(attempt, awaiting.payment.clone(), &payer, with)
            .await
    }

    /// The payers the factor confirms.
    async fn matching(&self, knows: Knowledge, users: Vec<User>) -> Result<Vec<User>, Failure> {
        Ok(match knows {
            Knowledge::PhoneLast4(digits) => users
                .into_iter()
                .filter(|u| u.phone_last4.as_deref() == Some(digits.as_str()))
                .collect(),
            Knowledge::Phone(phone) => {
                // Numbers are stored as keyed hashes only; every candidate's
                // is compared in full, in constant time.
                let given = self.core.phone_hash(&phone).await?;
                users
                    .into_iter()
                    .filter(|u| {
                        u.phone_hash
                            .as_deref()
                            .is_some_and(|h| keys::hashes_equal(h, &given))
                    })
                    .collect()
            }
            Knowledge::Pin(pin) => tokio::task::spawn_blocking(move || {
                users
                    .into_iter()
                    .filter(|u| {
                        u.pin_hash
                            .as_deref()
                            .is_some_and(|h| keys::pin_matches(&pin, h))
                    })
                    .collect::<Vec<User>>()
            })
            .await
            .map_err(|_| Failure::internal())?,
        })
    }

    /// One payer confirmed. A payment the risk engine asked about goes to
    /// the charge; the payer of an ambiguous match is assessed now, with
    /// what they just confirmed counted.
    async fn confirmed(
        &self,
        attempt: Attempt<'_>,
        awaiting: &Awaiting,
        user_id: &str,
        factor: Factor,
    ) -> Result<Reply, Failure> {
        let payment = &awaiting.payment;
        self.identity.forget_probe(&payment.id);
        let payer = self.payer(user_id).await?;
        if awaiting.assessed {
            return self
                .settle(attempt, payment.clone(), &payer, Settlement::default())
                .await;
        }
        let matched = Matched {
            user: &payer.user,
            method: &payer.method,
            score: payment.match_score.unwrap_or(0.0) as f32,
            lead: 0.0,
            liveness: match payment.liveness.as_deref() {
                Some("live") => LivenessDecision::Live,
                _ => LivenessDecision::Inconclusive,
            },
            amount_minor: payment.amount_minor,
        };
        let counted = self.counted(attempt.stored, payment, &payer).await?;
        let attempt = Attempt {
            stored: Some(&counted),
            ..attempt
        };
        let assessed = self.assess_risk(attempt.ctx, &matched, &payment.id).await?;
        self.act(attempt, payment.clone(), &payer, assessed, Some(factor))
            .await
    }

    /// The factor confirmed no one, or several: one attempt used; with
    /// none left the payment is declined and its discount given back.
    async fn mismatch(
        &self,
        attempt: Attempt<'_>,
        awaiting: &Awaiting,
        methods: &[Factor],
    ) -> Result<Reply, Failure> {
        let payment = &awaiting.payment;
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
        let mut view = PaymentView::of(&after)?;
        if attempts_left > 0 {
            let challenge = awaiting.challenge.clone();
            view.step_up = Some(step_up_view(methods, attempts_left, challenge));
        }
        let error = ErrorBody {
            code,
            message: &message,
        };
        let reply = Reply::json(
            status,
            &PaymentFailure {
                error,
                payment: view,
            },
        )?;
        let mut tx = self.core.begin().await?;
        crate::core::transition(&mut tx, payment, &after).await?;
        if attempts_left <= 0 {
            undo_discount(&mut tx, &after, after.updated_at_ms).await?;
        }
        attempt.claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        Ok(reply)
    }

    /// A wrong answer: the guesses counted against the payers in
    /// `wrong_for` stay as their failures, the others are taken back, and
    /// a payer in `wrong_for` no guess was counted against (locked, or not
    /// among those tried) gets a failure too. Committed at once, whatever
    /// happens to the request: a lockout must not be undone by a retry.
    async fn keep_failures(
        &self,
        factor: GuessedFactor,
        guesses: Vec<Guess>,
        wrong_for: &[User],
    ) -> Result<(), Failure> {
        let (kept, others): (Vec<_>, Vec<_>) = guesses
            .into_iter()
            .partition(|g| wrong_for.iter().any(|u| u.id == g.user_id));
        self.forget_guesses(&others).await?;
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        for user in wrong_for {
            if !kept.iter().any(|g| g.user_id == user.id) {
                fraud::record_factor_failure(&mut tx, &user.id, factor, now).await?;
            }
        }
        commit(tx).await
    }

    /// Takes back guesses that count against no one: the answer was right,
    /// or it was not theirs to count.
    async fn forget_guesses(&self, guesses: &[Guess]) -> Result<(), Failure> {
        if guesses.is_empty() {
            return Ok(());
        }
        let mut conn = self.core.conn().await?;
        for guess in guesses {
            fraud::forget_guess(&mut conn, guess).await?;
        }
        Ok(())
    }
}

//! Fraud claims and the operator's side of the risk engine.
//!
//! A user disputes a payment ("that was not me"); an operator moves the
//! claim from opened to under review to accepted or rejected. Accepting
//! pays the user back at once from the platform's compensation account
//! (or releases the hold if nothing was captured), suspends the face by
//! crypto-shredding its template until the user enrols it again, and feeds
//! the blocklist. The recovery from the merchant is a later, separate step.
//!
//! Operators also see the review queue (payments authorised with their
//! capture held), release or cancel them, see flagged terminals and keep
//! the run-time blocklist.

use std::sync::Arc;

use facepay_store::fraud::{self, Block, Claim, ClaimState};
use facepay_store::ledger;
use facepay_store::payments::{self, Payment, PaymentState};
use facepay_store::{audit, parties};
use facepay_webhooks::EventType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{
    BlockKind, BlockList, BlockRemoved, BlockView, ClaimStateView, FlaggedTerminalView,
    FlaggedTerminals, HeldView, ReviewQueue, TerminalFlagCleared,
};
use crate::core::{
    Claimed, Core, Reply, Request, Wait, claim_event, commit, derived_id, money_of, parse_json,
};
use crate::error::Failure;
use crate::identity::Identity;
use crate::loyalty;
use crate::merchant::MerchantOps;

/// A terminal whose payments draw this many accepted claims in
/// [`TERMINAL_CLAIMS_WINDOW_MS`] is blocked for [`TERMINAL_BLOCK_MS`].
const TERMINAL_CLAIMS_MAX: i64 = 2;
const TERMINAL_CLAIMS_WINDOW_MS: i64 = 30 * 86_400_000;
const TERMINAL_BLOCK_MS: i64 = 7 * 86_400_000;
/// Longest claim reason or operator note kept.
const TEXT_LEN_MAX: usize = 1_000;

pub use crate::access::Operator;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub payment_id: String,
    /// In the user's words: 1 to 1,000 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 1000
    )]
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimDecision {
    pub action: ClaimAction,
    /// 1 to 1,000 characters, not all blank.
    #[serde(default)]
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 1000
    )]
    pub note: Option<String>,
}

/// What an operator does with a claim.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimAction {
    /// Take it under review.
    Review,
    Accept,
    Reject,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub kind: BlockKind,
    /// The id, card fingerprint or country code: 1 to 1,000 characters,
    /// not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 1000
    )]
    pub value: String,
    /// 1 to 1,000 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 1000
    )]
    pub reason: String,
    /// Unix ms; absent for a block that stays until removed.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimList {
    pub claims: Vec<ClaimView>,
}

/// A claim as its user and the operators see it.
#[derive(Serialize, ToSchema)]
pub struct ClaimView {
    pub id: String,
    pub payment_id: String,
    pub state: ClaimStateView,
    pub reason: String,
    pub note: Option<String>,
    /// Paid back to the user by the platform.
    pub compensated_minor: i64,
    /// Recovered from the merchant so far.
    pub recovered_minor: i64,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
}

impl ClaimView {
    pub fn of(c: Claim) -> Result<Self, Failure> {
        Ok(Self {
            state: ClaimStateView::of(&c.state)?,
            id: c.id,
            payment_id: c.payment_id,
            reason: c.reason,
            note: c.note,
            compensated_minor: c.compensated_minor,
            recovered_minor: c.recovered_minor,
            opened_at_ms: c.opened_at_ms,
            updated_at_ms: c.updated_at_ms,
        })
    }
}

/// At most `TEXT_LEN_MAX` characters as sent, and not all blank; kept
/// trimmed.
fn text(field: &'static str, value: &str) -> Result<String, Failure> {
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > TEXT_LEN_MAX {
        return Err(Failure::unprocessable(
            "text_invalid",
            format!("{field} must be 1 to {TEXT_LEN_MAX} characters, not all blank"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub struct Claims {
    core: Arc<Core>,
    /// Users' tokens, and the faces an accepted claim suspends.
    identity: Arc<Identity>,
    /// The capture or void that settles a payment held for review.
    merchant: Arc<MerchantOps>,
}

impl Claims {
    pub fn new(core: Arc<Core>, identity: Arc<Identity>, merchant: Arc<MerchantOps>) -> Self {
        Self {
            core,
            identity,
            merchant,
        }
    }

    /// `POST /v1/users/me/claims`: "that payment was not me".
    pub async fn open_claim(&self, token: &str, key: &str, body: &[u8]) -> Result<Reply, Failure> {
        let request: ClaimRequest = parse_json(body)?;
        let reason = text("reason", &request.reason)?;
        let user = self.identity.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        let claim_id = derived_id("clm", &scope, key);
        self.core
            .idempotent(
                scope,
                key,
                Request::new("open_claim", "", body),
                |claimed| async move {
                    let mut conn = self.core.conn().await?;
                    let payment = payments::get(&mut conn, &request.payment_id)
                        .await?
                        .filter(|p| p.user_id.as_deref() == Some(user.id.as_str()))
                        .ok_or_else(|| Failure::not_found("payment"))?;
                    drop(conn);
                    if !matches!(
                        payment.state()?,
                        PaymentState::Authorised
                            | PaymentState::Captured
                            | PaymentState::PartiallyRefunded
                    ) {
                        return Err(Failure::conflict(
                            "payment_not_claimable",
                            format!("this payment is {}; nothing was taken", payment.state),
                        ));
                    }
                    let now = self.core.now_ms();
                    let claim = Claim {
                        id: claim_id.clone(),
                        payment_id: payment.id.clone(),
                        user_id: user.id.clone(),
                        state: ClaimState::Opened.as_str().to_owned(),
                        reason,
                        note: None,
                        compensated_minor: 0,
                        recovered_minor: 0,
                        opened_at_ms: now,
                        updated_at_ms: now,
                    };
                    let reply = Reply::json(201, &ClaimView::of(claim.clone())?)?;
                    let mut tx = self.core.begin().await?;
                    fraud::insert_claim(&mut tx, &claim)
                        .await
                        .map_err(|e| match e {
                            facepay_store::StoreError::Duplicate(_) => Failure::conflict(
                                "claim_exists",
                                "this payment already has a claim",
                            ),
                            other => other.into(),
                        })?;
                    let merchant_id = &payment.merchant_id;
                    claim_event(&mut tx, EventType::ClaimOpened, merchant_id, &claim).await?;
                    audit::append(
                        &mut tx,
                        now,
                        &format!("user:{}", user.id),
                        "claim_opened",
                        &claim.id,
                    )
                    .await?;
                    claimed.complete(&mut tx, &reply).await?;
                    commit(tx).await?;
                    Ok(reply)
                },
            )
            .await
    }

    /// `GET /v1/users/me/claims`.
    pub async fn my_claims(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.identity.user_by_token(token).await?;
        let mut conn = self.core.conn().await?;
        let claims = fraud::claims(&mut conn, None, Some(&user.id), fraud::CLAIMS_PAGE_MAX).await?;
        Reply::json(
            200,
            &ClaimList {
                claims: claims
                    .into_iter()
                    .map(ClaimView::of)
                    .collect::<Result<_, _>>()?,
            },
        )
    }

    /// `GET /v1/operator/claims?state=`.
    pub async fn list_claims(&self, _op: &Operator, state: Option<&str>) -> Result<Reply, Failure> {
        let state = state
            .map(|s| {
                ClaimState::parse(s).ok_or_else(|| {
                    Failure::bad_request(
                        "state_invalid",
                        "state is opened, under_review, accepted or rejected",
                    )
                })
            })
            .transpose()?;
        let mut conn = self.core.conn().await?;
        let claims = fraud::claims(&mut conn, state, None, fraud::CLAIMS_PAGE_MAX).await?;
        Reply::json(
            200,
            &ClaimList {
                claims: claims
                    .into_iter()
                    .map(ClaimView::of)
                    .collect::<Result<_, _>>()?,
            },
        )
    }

    /// `POST /v1/operator/claims/{id}`: review, accept or reject.
    pub async fn decide_claim(
        &self,
        op: &Operator,
        id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: ClaimDecision = parse_json(body)?;
        let next = match request.action {
            ClaimAction::Review => ClaimState::UnderReview,
            ClaimAction::Accept => ClaimState::Accepted,
            ClaimAction::Reject => ClaimState::Rejected,
        };
        let note = request
            .note
            .as_deref()
            .map(|n| text("note", n))
            .transpose()?;
        let scope = op.scope("claim", id);
        self.core
            .idempotent(
                scope,
                key,
                Request::new("decide_claim", id, body),
                |claimed| async move {
                    let payment_id = fraud::claim(&mut *self.core.conn().await?, id)
                        .await?
                        .ok_or_else(|| Failure::not_found("claim"))?
                        .payment_id;
                    // Read again under the payment's lease: a decision taken
                    // meanwhile must stop this one before it moves any money.
                    let work = self.decide_leased(op, id, next, note, &claimed);
                    self.core.leased(&payment_id, Wait::ForHolder, work).await
                },
            )
            .await
    }

    /// A claim's decision, under its payment's lease.
    async fn decide_leased(
        &self,
        op: &Operator,
        id: &str,
        next: ClaimState,
        note: Option<String>,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let before = self.claim_to_move(id, next).await?;
        let now = self.core.now_ms();
        let mut after = before.clone();
        after.state = next.as_str().to_owned();
        after.note = note.or(before.note.clone());
        after.updated_at_ms = now;
        let (mut tx, suspended) = if next == ClaimState::Accepted {
            self.accept(&before, &mut after, now).await?
        } else {
            (self.core.begin().await?, false)
        };
        fraud::update_claim(&mut tx, &before, &after).await?;
        if matches!(next, ClaimState::Accepted | ClaimState::Rejected) {
            let paid = payments::get(&mut tx, &before.payment_id).await?;
            let merchant_id = paid.ok_or_else(Failure::internal)?.merchant_id;
            claim_event(&mut tx, EventType::ClaimDecided, &merchant_id, &after).await?;
        }
        let action = format!("claim_{}", next.as_str());
        audit::append(&mut tx, now, &op.actor(), &action, &before.id).await?;
        let reply = Reply::json(200, &ClaimView::of(after)?)?;
        claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        if suspended {
            // Committed: the change log takes the face out of every
            // gallery even if this removal fails.
            if let Err(e) = self.identity.remove_face(&before.user_id) {
                tracing::warn!(error = %e, "a suspended face stays until the log applies");
            }
            self.identity.apply_own_changes().await;
        }
        Ok(reply)
    }

    /// The claim `id` as stored, if its state machine lets it become `next`.
    async fn claim_to_move(&self, id: &str, next: ClaimState) -> Result<Claim, Failure> {
        let before = fraud::claim(&mut *self.core.conn().await?, id)
            .await?
            .ok_or_else(Failure::internal)?;
        let state = ClaimState::parse(&before.state).ok_or_else(Failure::internal)?;
        if !state.can_become(next) {
            return Err(Failure::conflict(
                "claim_state",
                format!(
                    "this claim is {}; it cannot become {}",
                    before.state,
                    next.as_str()
                ),
            ));
        }
        Ok(before)
    }

    /// Accepting a claim: the user is paid back through the issuer, and a
    /// transaction is opened with the pay-back, the face suspended and the
    /// blocklist fed in it, for the caller to finish. Returns it, and
    /// whether a face was suspended.
    async fn accept(
        &self,
        before: &Claim,
        after: &mut Claim,
        now: i64,
    ) -> Result<(facepay_store::Transaction, bool), Failure> {
        let payment = payments::get(&mut *self.core.conn().await?, &before.payment_id)
            .await?
            .ok_or_else(Failure::internal)?;
        let (moved, compensated) = self.pay_back(&payment, &before.id).await?;
        after.compensated_minor = compensated;
        let mut tx = self.core.begin().await?;
        if let Some(moved) = moved {
            self.record_pay_back(&mut tx, &payment, &moved, &before.id, compensated, now)
                .await?;
        }
        let suspended = parties::delete_template(&mut tx, &before.user_id).await?;
        if suspended {
            self.identity
                .record_deletion(&mut tx, &before.user_id)
                .await?;
        }
        self.feed_blocklist(&mut tx, before, &payment, now).await?;
        Ok((tx, suspended))
    }

    /// Gives the user their money back through the issuer: a hold is
    /// released, a capture refunded in full of what is left. Returns the
    /// payment as it becomes and what was refunded.
    async fn pay_back(
        &self,
        payment: &Payment,
        claim_id: &str,
    ) -> Result<(Option<Payment>, i64), Failure> {
        let issuer_ref = || payment.issuer_ref.clone().ok_or_else(Failure::internal);
        let mut after = payment.clone();
        after.reason = format!("claim:{claim_id}");
        after.updated_at_ms = self.core.now_ms();
        match payment.state()? {
            PaymentState::Authorised => {
                self.core
                    .connector
                    .void(&issuer_ref()?)
                    .await
                    .map_err(|e| Failure::new(502, e.code(), e.to_string()))?;
                after.state = PaymentState::Voided.as_str().to_owned();
                after.expires_at_ms = None;
                Ok((Some(after), 0))
            }
            PaymentState::Captured | PaymentState::PartiallyRefunded => {
                let left = payment.captured_minor - payment.refunded_minor;
                self.core
                    .connector
                    .refund(&issuer_ref()?, left, &format!("{claim_id}:refund"))
                    .await
                    .map_err(|e| Failure::new(502, e.code(), e.to_string()))?;
                after.refunded_minor = payment.captured_minor;
                after.state = PaymentState::Refunded.as_str().to_owned();
                Ok((Some(after), left))
            }
            // Refunded or voided meanwhile: nothing left to give back.
            _ => Ok((None, 0)),
        }
    }

    async fn record_pay_back(
        &self,
        tx: &mut facepay_store::Connection,
        before: &Payment,
        after: &Payment,
        claim_id: &str,
        compensated: i64,
        now: i64,
    ) -> Result<(), Failure> {
        if compensated > 0 {
            let refund_id = format!("{claim_id}:refund");
            payments::insert_refund(tx, &refund_id, &before.id, compensated, now).await?;
            let transfer_id = format!("{claim_id}:compensation");
            ledger::compensate(tx, money_of(before), &transfer_id, compensated, now).await?;
        } else {
            ledger::release(tx, money_of(before), before.authorised_minor, now).await?;
        }
        crate::core::transition(tx, before, after).await?;
        loyalty::give_back(tx, after, &format!("{claim_id}:refund"), now).await?;
        Ok(())
    }

    /// The payer's account is blocked until they enrol their face again;
    /// a terminal with repeated accepted claims is blocked for a week.
    async fn feed_blocklist(
        &self,
        tx: &mut facepay_store::Connection,
        claim: &Claim,
        payment: &Payment,
        now: i64,
    ) -> Result<(), Failure> {
        fraud::add_block(
            tx,
            &Block {
                kind: "user".into(),
                value: claim.user_id.clone(),
                reason: format!(
                    "fraud claim {} accepted; lifted when the face is enrolled again",
                    claim.id
                ),
                source: "claim".into(),
                created_at_ms: now,
                expires_at_ms: None,
            },
        )
        .await?;
        let earlier = fraud::accepted_claims_at_terminal(
            tx,
            &payment.terminal_id,
            now - TERMINAL_CLAIMS_WINDOW_MS,
        )
        .await?;
        if earlier + 1 >= TERMINAL_CLAIMS_MAX {
            fraud::add_block(
                tx,
                &Block {
                    kind: "terminal".into(),
                    value: payment.terminal_id.clone(),
                    reason: format!("{} accepted fraud claims in 30 days", earlier + 1),
                    source: "claim".into(),
                    created_at_ms: now,
                    expires_at_ms: Some(now + TERMINAL_BLOCK_MS),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// `POST /v1/operator/claims/{id}/recover`: the merchant pays back what
    /// the platform compensated.
    pub async fn recover_claim(
        &self,
        op: &Operator,
        id: &str,
        key: &str,
    ) -> Result<Reply, Failure> {
        self.core
            .idempotent(
                op.scope("recover", id),
                key,
                Request::new("recover_claim", id, b""),
                |claimed| async move {
                    let mut conn = self.core.conn().await?;
                    let before = fraud::claim(&mut conn, id)
                        .await?
                        .ok_or_else(|| Failure::not_found("claim"))?;
                    let outstanding = before.compensated_minor - before.recovered_minor;
                    if before.state != ClaimState::Accepted.as_str() || outstanding <= 0 {
                        return Err(Failure::conflict(
                            "nothing_to_recover",
                            "only an accepted claim with compensation outstanding can be recovered",
                        ));
                    }
                    let payment = payments::get(&mut conn, &before.payment_id)
                        .await?
                        .ok_or_else(Failure::internal)?;
                    drop(conn);
                    let now = self.core.now_ms();
                    let mut after = before.clone();
                    after.recovered_minor = before.compensated_minor;
                    after.updated_at_ms = now;
                    let mut tx = self.core.begin().await?;
                    let transfer_id = format!("{}:recovery", before.id);
                    ledger::recover(&mut tx, money_of(&payment), &transfer_id, outstanding, now)
                        .await?;
                    fraud::update_claim(&mut tx, &before, &after).await?;
                    audit::append(&mut tx, now, &op.actor(), "claim_recovered", id).await?;
                    let reply = Reply::json(200, &ClaimView::of(after)?)?;
                    claimed.complete(&mut tx, &reply).await?;
                    commit(tx).await?;
                    Ok(reply)
                },
            )
            .await
    }

    /// `GET /v1/operator/reviews`: payments held for review, oldest first.
    pub async fn review_queue(&self, _op: &Operator) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let held = fraud::review_queue(&mut conn, fraud::CLAIMS_PAGE_MAX).await?;
        let payments = held.iter().map(HeldView::of).collect::<Result<_, _>>()?;
        Reply::json(200, &ReviewQueue { payments })
    }

    /// `POST /v1/operator/reviews/{payment_id}/release|cancel`: capture
    /// the held payment, or void it.
    pub async fn settle_review(
        &self,
        op: &Operator,
        payment_id: &str,
        release: bool,
        key: &str,
    ) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let held = fraud::assessment(&mut conn, payment_id)
            .await?
            .filter(|a| a.decision == "review")
            .ok_or_else(|| Failure::not_found("payment held for review"))?;
        let payment = payments::get(&mut conn, &held.payment_id)
            .await?
            .ok_or_else(Failure::internal)?;
        let merchant = parties::merchant(&mut conn, &payment.merchant_id)
            .await?
            .ok_or_else(Failure::internal)?;
        drop(conn);
        let scope = op.scope("review", payment_id);
        let actor = op.actor();
        if release {
            self.merchant
                .capture_in(scope, &merchant, payment_id, key, b"", Some(&actor))
                .await
        } else {
            self.merchant
                .void_in(scope, &merchant, payment_id, key, b"", Some(&actor))
                .await
        }
    }

    /// `POST /v1/operator/terminals/{id}/clear-flag`: looked at; a new
    /// burst of refused attempts will flag it again.
    pub async fn clear_terminal_flag(
        &self,
        op: &Operator,
        terminal_id: &str,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        if !fraud::clear_terminal_flag(&mut tx, terminal_id).await? {
            // A terminal that exists but is not flagged is a state, not a
            // missing resource: the operator learns which.
            return Err(
                match facepay_store::onboarding::terminal(&mut tx, terminal_id).await? {
                    Some(_) => Failure::conflict(
                        "terminal_not_flagged",
                        "the terminal is not flagged; nothing to clear",
                    ),
                    None => Failure::not_found("terminal"),
                },
            );
        }
        audit::append(
            &mut tx,
            now,
            &op.actor(),
            "terminal_flag_cleared",
            terminal_id,
        )
        .await?;
        commit(tx).await?;
        Reply::json(
            200,
            &TerminalFlagCleared {
                terminal_id: terminal_id.to_owned(),
                flagged: false,
            },
        )
    }

    /// `GET /v1/operator/terminals/flagged`.
    pub async fn flagged_terminals(&self, _op: &Operator) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let terminals = fraud::flagged_terminals(&mut conn).await?;
        let terminals = terminals.iter().map(FlaggedTerminalView::from).collect();
        Reply::json(200, &FlaggedTerminals { terminals })
    }

    /// `GET /v1/operator/blocks`.
    pub async fn list_blocks(&self, _op: &Operator) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let blocks = fraud::blocks(&mut conn, self.core.now_ms()).await?;
        let blocks = blocks.iter().map(BlockView::of).collect::<Result<_, _>>()?;
        Reply::json(200, &BlockList { blocks })
    }

    /// `POST /v1/operator/blocks`: adds or renews an entry.
    pub async fn add_block(&self, op: &Operator, body: &[u8]) -> Result<Reply, Failure> {
        let request: BlockRequest = parse_json(body)?;
        let now = self.core.now_ms();
        let block = Block {
            kind: request.kind.as_str().to_owned(),
            value: text("value", &request.value)?,
            reason: text("reason", &request.reason)?,
            source: "operator".into(),
            created_at_ms: now,
            expires_at_ms: request.expires_at_ms,
        };
        let mut tx = self.core.begin().await?;
        fraud::add_block(&mut tx, &block).await?;
        let subject = format!("{}:{}", block.kind, block.value);
        audit::append(&mut tx, now, &op.actor(), "block_added", &subject).await?;
        commit(tx).await?;
        Reply::json(201, &BlockView::of(&block)?)
    }

    /// `DELETE /v1/operator/blocks/{kind}/{value}`.
    pub async fn remove_block(
        &self,
        op: &Operator,
        kind: BlockKind,
        value: &str,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        if !fraud::remove_block(&mut tx, kind.as_str(), value, None).await? {
            return Err(Failure::not_found("block"));
        }
        let subject = format!("{}:{value}", kind.as_str());
        audit::append(&mut tx, now, &op.actor(), "block_removed", &subject).await?;
        commit(tx).await?;
        Reply::json(
            200,
            &BlockRemoved {
                kind,
                value: value.to_owned(),
                removed: true,
            },
        )
    }
}

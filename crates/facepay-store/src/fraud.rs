//! What follows from the risk engine's decisions: each payment's recorded
//! assessment, refused attempts and flags per terminal, failed step-up
//! factors per user (the lockouts), fraud claims, the run-time blocklist
//! and the operators' keys (migration 0008).

use serde::Serialize;
use sqlx::FromRow;

use crate::{Connection, PooledConnection, Result, StoreError};

/// Claims listed per page at most.
pub const CLAIMS_PAGE_MAX: i64 = 200;
/// Block entries listed at most.
pub const BLOCKS_MAX: i64 = 10_000;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Assessment {
    pub payment_id: String,
    pub decision: String,
    pub factor: Option<String>,
    pub score: i64,
    /// JSON list of `{rule, weight, reason}`.
    pub fired: String,
    pub challenge: Option<String>,
    pub at_ms: i64,
}

pub async fn insert_assessment(conn: &mut Connection, a: &Assessment) -> Result<()> {
    sqlx::query(
        "INSERT INTO risk_assessments (payment_id, decision, factor, score, fired, challenge, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.payment_id)
    .bind(&a.decision)
    .bind(&a.factor)
    .bind(a.score)
    .bind(&a.fired)
    .bind(&a.challenge)
    .bind(a.at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("risk assessment"))?;
    Ok(())
}

pub async fn assessment(conn: &mut Connection, payment_id: &str) -> Result<Option<Assessment>> {
    Ok(sqlx::query_as(
        "SELECT payment_id, decision, factor, score, fired, challenge, at_ms \
         FROM risk_assessments WHERE payment_id = $1",
    )
    .bind(payment_id)
    .fetch_optional(conn)
    .await?)
}

/// Why an attempt at a terminal left no payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    NoMatch,
    Spoof,
}

impl AttemptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::NoMatch => "no_match",
            AttemptKind::Spoof => "spoof",
        }
    }
}

pub async fn record_attempt(
    conn: &mut Connection,
    terminal_id: &str,
    kind: AttemptKind,
    at_ms: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO terminal_attempts (terminal_id, kind, at_ms) VALUES ($1, $2, $3)")
        .bind(terminal_id)
        .bind(kind.as_str())
        .bind(at_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// Flags a terminal for an operator to look at; a flag already there stays
/// as it was (its first time and reason are what matter).
pub async fn flag_terminal(
    conn: &mut Connection,
    terminal_id: &str,
    reason: &str,
    at_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE terminals SET flagged_at_ms = $2, flag_reason = $3 \
         WHERE id = $1 AND flagged_at_ms IS NULL",
    )
    .bind(terminal_id)
    .bind(at_ms)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets refused attempts and factor failures older than `before_ms`:
/// the windows that read them are a day at most.
pub async fn prune(conn: &mut Connection, before_ms: i64) -> Result<u64> {
    let attempts = sqlx::query("DELETE FROM terminal_attempts WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let failures = sqlx::query("DELETE FROM factor_failures WHERE at_ms < $1")
        .bind(before_ms)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(attempts + failures)
}

/// Clears a terminal's flag; false when it had none.
pub async fn clear_terminal_flag(conn: &mut Connection, terminal_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE terminals SET flagged_at_ms = NULL, flag_reason = NULL \
         WHERE id = $1 AND flagged_at_ms IS NOT NULL",
    )
    .bind(terminal_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct FlaggedTerminal {
    pub terminal_id: String,
    pub store_id: String,
    pub flagged_at_ms: i64,
    pub flag_reason: String,
}

pub async fn flagged_terminals(conn: &mut Connection) -> Result<Vec<FlaggedTerminal>> {
    Ok(sqlx::query_as(
        "SELECT id AS terminal_id, store_id, flagged_at_ms, flag_reason FROM terminals \
         WHERE flagged_at_ms IS NOT NULL ORDER BY flagged_at_ms LIMIT 1000",
    )
    .fetch_all(conn)
    .await?)
}

/// A step-up factor that can be guessed at, and so locked. A card tap
/// cannot be guessed: its issuer refuses a bad cryptogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuessedFactor {
    Phone,
    Pin,
}

impl GuessedFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            GuessedFactor::Phone => "phone",
            GuessedFactor::Pin => "pin",
        }
    }
}

pub async fn record_factor_failure(
    conn: &mut Connection,
    user_id: &str,
    factor: GuessedFactor,
    at_ms: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO factor_failures (user_id, factor, at_ms) VALUES ($1, $2, $3)")
        .bind(user_id)
        .bind(factor.as_str())
        .bind(at_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// A guess at a user's factor, counted as a failure before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    /// Its failure row, to forget if the guess is right (`forget_guess`).
    pub id: i64,
    /// Whose factor it guessed at.
    pub user_id: String,
    /// The user's other failures of the factor since the window's start,
    /// guesses still being checked included.
    pub failures_before: i64,
    /// The newest of those, for the end of a lockout.
    pub last_failure_ms: Option<i64>,
}

/// Counts a guess at `user_id`'s `factor` as a failure, then reads the
/// user's other failures since `since_ms`. Counting before checking is
/// what makes a lockout hold against guesses sent at once, to one server
/// or several: each guess's count sees every guess committed before it,
/// so of k guesses the i-th to commit sees at least i - 1 others, and no
/// more guesses are checked than the limit leaves. A guess whose check
/// never ends (its request was cut off, its process died) stays counted,
/// which errs on the safe side. It takes a pooled connection, to which no
/// transaction derefs: the insert must be committed before the count, and
/// the count must see what others committed.
pub async fn count_guess(
    conn: &mut PooledConnection,
    user_id: &str,
    factor: GuessedFactor,
    at_ms: i64,
    since_ms: i64,
) -> Result<Guess> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO factor_failures (user_id, factor, at_ms) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(user_id)
    .bind(factor.as_str())
    .bind(at_ms)
    .fetch_one(&mut **conn)
    .await?;
    let (failures_before, last_failure_ms) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), MAX(at_ms) FROM factor_failures \
         WHERE user_id = $1 AND factor = $2 AND at_ms >= $3 AND id <> $4",
    )
    .bind(user_id)
    .bind(factor.as_str())
    .bind(since_ms)
    .bind(id)
    .fetch_one(&mut **conn)
    .await?;
    Ok(Guess {
        id,
        user_id: user_id.to_owned(),
        failures_before,
        last_failure_ms,
    })
}

/// Takes back a guess counted by `count_guess`: it was right, or it was
/// not checked (locked, or its check failed).
pub async fn forget_guess(conn: &mut Connection, guess: &Guess) -> Result<()> {
    sqlx::query("DELETE FROM factor_failures WHERE id = $1")
        .bind(guess.id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    Opened,
    UnderReview,
    Accepted,
    Rejected,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Opened => "opened",
            ClaimState::UnderReview => "under_review",
            ClaimState::Accepted => "accepted",
            ClaimState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ClaimState::Opened,
            ClaimState::UnderReview,
            ClaimState::Accepted,
            ClaimState::Rejected,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The claim state machine: opened, then under review, then accepted or
    /// rejected, each final. An operator may decide straight from opened.
    pub fn can_become(self, next: ClaimState) -> bool {
        use ClaimState::*;
        matches!(
            (self, next),
            (Opened, UnderReview)
                | (Opened, Accepted)
                | (Opened, Rejected)
                | (UnderReview, Accepted)
                | (UnderReview, Rejected)
        )
    }
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Claim {
    pub id: String,
    pub payment_id: String,
    pub user_id: String,
    pub state: String,
    pub reason: String,
    pub note: Option<String>,
    pub compensated_minor: i64,
    pub recovered_minor: i64,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
}

const CLAIM_COLUMNS: &str = "id, payment_id, user_id, state, reason, note, compensated_minor, \
     recovered_minor, opened_at_ms, updated_at_ms";

pub async fn insert_claim(conn: &mut Connection, c: &Claim) -> Result<()> {
    if c.state != ClaimState::Opened.as_str() {
        return Err(StoreError::Refused(format!(
            "a new claim is opened, not {}",
            c.state
        )));
    }
    sqlx::query(
        "INSERT INTO claims (id, payment_id, user_id, state, reason, note, compensated_minor, \
         recovered_minor, opened_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&c.id)
    .bind(&c.payment_id)
    .bind(&c.user_id)
    .bind(&c.state)
    .bind(&c.reason)
    .bind(&c.note)
    .bind(c.compensated_minor)
    .bind(c.recovered_minor)
    .bind(c.opened_at_ms)
    .bind(c.updated_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("claim for this payment"))?;
    Ok(())
}

pub async fn claim(conn: &mut Connection, id: &str) -> Result<Option<Claim>> {
    let sql = format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// Claims, oldest first, optionally in one state or of one user.
pub async fn claims(
    conn: &mut Connection,
    state: Option<ClaimState>,
    user_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Claim>> {
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE ($1 = '' OR state = $1) \
         AND ($2 = '' OR user_id = $2) ORDER BY opened_at_ms, id LIMIT $3"
    );
    Ok(sqlx::query_as(&sql)
        .bind(state.map_or("", |s| s.as_str()))
        .bind(user_id.unwrap_or(""))
        .bind(limit.clamp(1, CLAIMS_PAGE_MAX))
        .fetch_all(conn)
        .await?)
}

/// Writes `after` over `before`, if the claim is still as `before` says and
/// the move is one the state machine allows (or a recovery on an accepted
/// claim).
pub async fn update_claim(conn: &mut Connection, before: &Claim, after: &Claim) -> Result<()> {
    let from = ClaimState::parse(&before.state).ok_or(StoreError::NotFound("claim state"))?;
    let to = ClaimState::parse(&after.state).ok_or(StoreError::NotFound("claim state"))?;
    if !(from.can_become(to) || (from == to && to == ClaimState::Accepted)) {
        return Err(StoreError::Refused(format!(
            "claim {} cannot go from {from:?} to {to:?}",
            before.id
        )));
    }
    let done = sqlx::query(
        "UPDATE claims SET state = $3, note = $4, compensated_minor = $5, recovered_minor = $6, \
         updated_at_ms = $7 WHERE id = $1 AND state = $2 AND recovered_minor = $8",
    )
    .bind(&before.id)
    .bind(&before.state)
    .bind(&after.state)
    .bind(&after.note)
    .bind(after.compensated_minor)
    .bind(after.recovered_minor)
    .bind(after.updated_at_ms)
    .bind(before.recovered_minor)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Duplicate("concurrent change to this claim"));
    }
    Ok(())
}

/// Accepted claims opened since `since_ms` on payments made at a terminal.
pub async fn accepted_claims_at_terminal(
    conn: &mut Connection,
    terminal_id: &str,
    since_ms: i64,
) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM claims c JOIN payments p ON p.id = c.payment_id \
         WHERE p.terminal_id = $1 AND c.state = 'accepted' AND c.opened_at_ms >= $2",
    )
    .bind(terminal_id)
    .bind(since_ms)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Block {
    pub kind: String,
    pub value: String,
    pub reason: String,
    /// `claim` or `operator`.
    pub source: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// The kinds of entry, in the order a payment matching several reports
/// them (`risk::history` orders them so).
pub const BLOCK_KINDS: [&str; 5] = ["user", "card", "terminal", "merchant", "country"];

/// Adds an entry. An operator's entry replaces what was there (an operator
/// may shorten or lift a block); a claim's never replaces an operator's
/// and keeps the later expiry of the two.
pub async fn add_block(conn: &mut Connection, b: &Block) -> Result<()> {
    if !BLOCK_KINDS.contains(&b.kind.as_str()) {
        return Err(StoreError::Refused(format!("no block kind {}", b.kind)));
    }
    let sql = if b.source == "operator" {
        "INSERT INTO risk_blocks (kind, value, reason, source, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, value) DO UPDATE SET \
         reason = excluded.reason, source = excluded.source, \
         created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms"
    } else {
        "INSERT INTO risk_blocks (kind, value, reason, source, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, value) DO UPDATE SET \
         reason = excluded.reason, created_at_ms = excluded.created_at_ms, \
         expires_at_ms = CASE WHEN risk_blocks.expires_at_ms IS NULL \
         OR excluded.expires_at_ms IS NULL THEN NULL \
         WHEN excluded.expires_at_ms > risk_blocks.expires_at_ms THEN excluded.expires_at_ms \
         ELSE risk_blocks.expires_at_ms END \
         WHERE risk_blocks.source = 'claim'"
    };
    sqlx::query(sql)
        .bind(&b.kind)
        .bind(&b.value)
        .bind(&b.reason)
        .bind(&b.source)
        .bind(b.created_at_ms)
        .bind(b.expires_at_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes an entry, of one source only if `source` is given; false when
/// there was none.
pub async fn remove_block(
    conn: &mut Connection,
    kind: &str,
    value: &str,
    source: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM risk_blocks WHERE kind = $1 AND value = $2 AND ($3 = '' OR source = $3)",
    )
    .bind(kind)
    .bind(value)
    .bind(source.unwrap_or(""))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn blocks(conn: &mut Connection, now_ms: i64) -> Result<Vec<Block>> {
    Ok(sqlx::query_as(
        "SELECT kind, value, reason, source, created_at_ms, expires_at_ms FROM risk_blocks \
         WHERE expires_at_ms IS NULL OR expires_at_ms > $1 ORDER BY created_at_ms LIMIT $2",
    )
    .bind(now_ms)
    .bind(BLOCKS_MAX)
    .fetch_all(conn)
    .await?)
}

/// An admin operator `name` (added unless there) with one key: how a
/// deployment gets its first operator.
pub async fn insert_operator_key(
    conn: &mut Connection,
    id: &str,
    name: &str,
    key_hash: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO operators (name, role, created_at_ms) VALUES ($1, 'admin', $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let key = crate::access::NewKey {
        id,
        owner: name,
        scope: "admin",
        label: None,
        prefix: None,
        key_hash,
        expires_at_ms: None,
        created_at_ms: now_ms,
    };
    crate::access::insert_key(conn, crate::access::KeyKind::Operator, &key).await
}

/// A payment held for review: authorised, capture waiting for a decision.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Held {
    pub payment_id: String,
    pub merchant_id: String,
    pub terminal_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub score: i64,
    pub fired: String,
    pub at_ms: i64,
}

/// The review queue, oldest first.
pub async fn review_queue(conn: &mut Connection, limit: i64) -> Result<Vec<Held>> {
    Ok(sqlx::query_as(
        "SELECT p.id AS payment_id, p.merchant_id, p.terminal_id, p.amount_minor, p.currency, \
         a.score, a.fired, a.at_ms FROM risk_assessments a JOIN payments p ON p.id = a.payment_id \
         WHERE a.decision = 'review' AND p.state = 'authorised' ORDER BY a.at_ms LIMIT $1",
    )
    .bind(limit.clamp(1, CLAIMS_PAGE_MAX))
    .fetch_all(conn)
    .await?)
}

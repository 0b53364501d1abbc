//! Payments, their state transitions, refunds and the merchant's views.
//!
//! A payment's row changes only through [`transition`], which checks that the
//! row is still in the state the caller read (so two racing requests cannot
//! both move it) and records the transition with its reason and time.

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::{FromRow, Row};

use crate::webhooks::{self, NewEvent};
use crate::{Connection, Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Created,
    RequiresStepUp,
    Authorised,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
    Declined,
    Failed,
}

impl PaymentState {
    pub const ALL: [PaymentState; 9] = [
        PaymentState::Created,
        PaymentState::RequiresStepUp,
        PaymentState::Authorised,
        PaymentState::Captured,
        PaymentState::PartiallyRefunded,
        PaymentState::Refunded,
        PaymentState::Voided,
        PaymentState::Declined,
        PaymentState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Created => "created",
            PaymentState::RequiresStepUp => "requires_step_up",
            PaymentState::Authorised => "authorised",
            PaymentState::Captured => "captured",
            PaymentState::PartiallyRefunded => "partially_refunded",
            PaymentState::Refunded => "refunded",
            PaymentState::Voided => "voided",
            PaymentState::Declined => "declined",
            PaymentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// The state machine: which moves are allowed at all.
    pub fn can_move_to(self, to: PaymentState) -> bool {
        use PaymentState::*;
        matches!(
            (self, to),
            (Created, RequiresStepUp | Authorised | Declined | Failed)
                | (RequiresStepUp, Authorised | Declined | Failed)
                | (Authorised, Captured | Voided)
                | (Captured | PartiallyRefunded, PartiallyRefunded | Refunded)
        )
    }
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Payment {
    pub id: String,
    pub terminal_id: String,
    pub store_id: String,
    pub merchant_id: String,
    #[serde(skip)]
    pub idempotency_key: String,
    #[serde(skip)]
    pub user_id: Option<String>,
    #[serde(skip)]
    pub payment_method_id: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub capture_mode: String,
    pub authorised_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub fee_minor: i64,
    pub state: String,
    pub reason: String,
    pub connector: Option<String>,
    #[serde(skip)]
    pub issuer_ref: Option<String>,
    pub match_score: Option<f64>,
    #[serde(skip)]
    pub candidates: Option<String>,
    #[serde(skip)]
    pub step_up_attempts: i64,
    pub liveness: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Payment {
    pub fn state(&self) -> Result<PaymentState> {
        PaymentState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("payment state {:?}", self.state)))
    }
}

const PAYMENT_COLUMNS: &str = "id, terminal_id, store_id, merchant_id, idempotency_key, user_id, \
     payment_method_id, amount_minor, currency, capture_mode, authorised_minor, captured_minor, \
     refunded_minor, fee_minor, state, reason, connector, issuer_ref, match_score, candidates, \
     step_up_attempts, liveness, expires_at_ms, created_at_ms, updated_at_ms";

/// Binds the nullable `match_score` so that the statement may be cached
/// (prepared once per connection). sqlx 0.8's `Any` driver sends a NULL
/// `f64` typed as a 4-byte float, and PostgreSQL's cache of a statement
/// prepared with that type then refuses the 8 bytes of a later score
/// ("incorrect binary data format"). On PostgreSQL the score therefore
/// goes as text, which the statement casts (Rust prints the shortest text
/// that reads back as the same `f64`); SQLite takes the float as it is.
fn bind_score<'q>(
    query: crate::AnyQuery<'q>,
    postgres: bool,
    score: Option<f64>,
) -> crate::AnyQuery<'q> {
    if postgres {
        query.bind(score.map(|s| s.to_string()))
    } else {
        query.bind(score)
    }
}

/// Inserts a new payment and its first event. A second payment with the same
/// terminal and idempotency key is `Duplicate`: the key names one payment.
/// On PostgreSQL both go in one statement (the event inserted from the
/// payment's `RETURNING`), one round trip instead of two.
pub async fn insert(conn: &mut Connection, p: &Payment) -> Result<()> {
    let postgres = crate::on_postgres(conn);
    let values = "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, CAST($19 AS DOUBLE PRECISION), $20, $21, $22, $23, $24, $25)";
    let sql = if postgres {
        format!(
            "WITH created AS (INSERT INTO payments ({PAYMENT_COLUMNS}) {values} \
             RETURNING id, state, reason, created_at_ms) \
             INSERT INTO payment_events (payment_id, from_state, to_state, reason, at_ms) \
             SELECT id, NULL, state, reason, created_at_ms FROM created"
        )
    } else {
        format!("INSERT INTO payments ({PAYMENT_COLUMNS}) {values}")
    };
    let query = sqlx::query(&sql)
        .bind(&p.id)
        .bind(&p.terminal_id)
        .bind(&p.store_id)
        .bind(&p.merchant_id)
        .bind(&p.idempotency_key)
        .bind(&p.user_id)
        .bind(&p.payment_method_id)
        .bind(p.amount_minor)
        .bind(&p.currency)
        .bind(&p.capture_mode)
        .bind(p.authorised_minor)
        .bind(p.captured_minor)
        .bind(p.refunded_minor)
        .bind(p.fee_minor)
        .bind(&p.state)
        .bind(&p.reason)
        .bind(&p.connector)
        .bind(&p.issuer_ref);
    bind_score(query, postgres, p.match_score)
        .bind(&p.candidates)
        .bind(p.step_up_attempts)
        .bind(&p.liveness)
        .bind(p.expires_at_ms)
        .bind(p.created_at_ms)
        .bind(p.updated_at_ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).duplicate_as("payment for this idempotency key"))?;
    if postgres {
        return Ok(());
    }
    let created = (None, p.state.as_str(), p.reason.as_str(), p.created_at_ms);
    record_events(conn, &p.id, &[created]).await
}

/// [`insert`] committed on its own: on PostgreSQL its one statement, with
/// no `BEGIN` and `COMMIT` round trips around it; on SQLite a transaction.
pub async fn insert_committed(store: &crate::Store, p: &Payment) -> Result<()> {
    if store.backend() == crate::Backend::Postgres {
        return insert(&mut *store.acquire().await?, p).await;
    }
    let mut tx = store.begin().await?;
    insert(&mut tx, p).await?;
    tx.commit().await?;
    Ok(())
}

/// [`transition`] committed on its own, like [`insert_committed`].
pub async fn transition_committed(
    store: &crate::Store,
    before: &Payment,
    p: &Payment,
) -> Result<()> {
    if store.backend() == crate::Backend::Postgres {
        return transition(&mut *store.acquire().await?, before, p).await;
    }
    let mut tx = store.begin().await?;
    transition(&mut tx, before, p).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the payment's new fields if the row is still as `before` (same
/// state and amounts), and records the transition. `Duplicate` means another
/// request changed it first.
pub async fn transition(conn: &mut Connection, before: &Payment, p: &Payment) -> Result<()> {
    transition_announced(conn, before, p, &[]).await
}

/// [`transition`] with the webhook events it announces, written with it
/// (`webhooks::append_events`): on PostgreSQL in the move's own statement.
pub async fn transition_announced(
    conn: &mut Connection,
    before: &Payment,
    p: &Payment,
    announced: &[NewEvent<'_>],
) -> Result<()> {
    let from = before.state()?;
    let to = p.state()?;
    assert!(
        from == to || from.can_move_to(to),
        "illegal payment transition {from:?} -> {to:?}"
    );
    update_and_record(conn, before, p, &[move_to(from, p)], announced).await
}

/// Two moves in one write, `before` to `via` to `after`, each recorded as
/// an event (an approval captured at once), with the webhook events they
/// announce: one statement for the row, one for the events and one for
/// the webhook events (on PostgreSQL, one for all three), then one for
/// the deliveries when an event is kept.
pub async fn transition_via(
    conn: &mut Connection,
    before: &Payment,
    via: &Payment,
    after: &Payment,
    announced: &[NewEvent<'_>],
) -> Result<()> {
    let (from, middle, to) = (before.state()?, via.state()?, after.state()?);
    assert!(
        from.can_move_to(middle) && middle.can_move_to(to),
        "illegal payment transitions {from:?} -> {middle:?} -> {to:?}"
    );
    assert!(before.id == via.id && via.id == after.id);
    let moves = [move_to(from, via), move_to(middle, after)];
    update_and_record(conn, before, after, &moves, announced).await
}

const UPDATE_IF_UNCHANGED: &str = "UPDATE payments SET user_id = $3, payment_method_id = $4, \
     authorised_minor = $5, captured_minor = $6, refunded_minor = $7, fee_minor = $8, \
     state = $9, reason = $10, connector = $11, issuer_ref = $12, \
     match_score = CAST($13 AS DOUBLE PRECISION), candidates = $14, step_up_attempts = $15, \
     liveness = $16, expires_at_ms = $17, updated_at_ms = $18 \
     WHERE id = $1 AND state = $2 AND captured_minor = $19 AND refunded_minor = $20 \
     AND step_up_attempts = $21 AND connector IS NOT DISTINCT FROM $22";
/// The binds of [`UPDATE_IF_UNCHANGED`]: a statement that adds to it
/// numbers its own after them.
const UPDATE_BINDS: usize = 22;

/// Webhook events announced with one move, at most.
const ANNOUNCED_MAX: usize = 2;

/// Writes `p` over `before` ([`update_if_unchanged`]), records `moves` and
/// the webhook events `announced`. On PostgreSQL that is one statement,
/// each insert made only for the row the update returns: none when the
/// row had changed. The webhook deliveries of kept events follow, as
/// `webhooks::append_events` writes them.
async fn update_and_record(
    conn: &mut Connection,
    before: &Payment,
    p: &Payment,
    moves: &[Move<'_>],
    announced: &[NewEvent<'_>],
) -> Result<()> {
    assert!((1..=2).contains(&moves.len()), "one or two moves at once");
    assert!(announced.len() <= ANNOUNCED_MAX);
    if !crate::on_postgres(conn) {
        update_if_unchanged(conn, before, p).await?;
        record_events(conn, &p.id, moves).await?;
        if !announced.is_empty() {
            webhooks::append_events(conn, announced).await?;
        }
        return Ok(());
    }
    // Written once for each shape: the pay path runs one for every payment.
    static SQL: LazyLock<[[String; ANNOUNCED_MAX + 1]; 2]> =
        LazyLock::new(|| [1, 2].map(|moves| std::array::from_fn(|n| move_sql(moves, n))));
    let sql = &SQL[moves.len() - 1][announced.len()];
    let mut query = bind_update(sqlx::query(sql), before, p, true);
    for &(from, to, reason, at_ms) in moves {
        query = query.bind(from).bind(to).bind(reason).bind(at_ms);
    }
    let row = webhooks::bind_events(query, announced)
        .fetch_one(&mut *conn)
        .await?;
    let (recorded, kept): (i64, i64) = (row.try_get("recorded")?, row.try_get("kept")?);
    if recorded != moves.len() as i64 {
        return Err(StoreError::Duplicate("concurrent change to this payment"));
    }
    if kept > 0 {
        webhooks::queue_deliveries(conn, announced).await?;
    }
    Ok(())
}

/// [`update_and_record`]'s one statement on PostgreSQL, for `moves` moves
/// and `announced` webhook events. A data-modifying `WITH` runs whether
/// or not the final `SELECT` reads it; the counts it answers say what
/// was written.
fn move_sql(moves: usize, announced: usize) -> String {
    let events = (0..moves)
        .map(|i| {
            let n = UPDATE_BINDS + i * 4;
            format!(
                "({i}, CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT))",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let kept = match announced {
        0 => "SELECT 1 AS one WHERE 1 = 0".to_owned(),
        n => format!(
            "INSERT INTO webhook_events ({}) {} RETURNING 1 AS one",
            webhooks::EVENT_COLUMNS,
            webhooks::kept_events(
                UPDATE_BINDS + moves * 4,
                n,
                Some("EXISTS (SELECT 1 FROM moved)")
            )
        ),
    };
    format!(
        "WITH moved AS ({UPDATE_IF_UNCHANGED} RETURNING id), \
         recorded AS (INSERT INTO payment_events (payment_id, from_state, to_state, reason, at_ms) \
         SELECT moved.id, e.from_state, e.to_state, e.reason, e.at_ms FROM moved, \
         (VALUES {events}) AS e (n, from_state, to_state, reason, at_ms) ORDER BY e.n \
         RETURNING 1 AS one), kept AS ({kept}) \
         SELECT (SELECT COUNT(*) FROM recorded) AS recorded, (SELECT COUNT(*) FROM kept) AS kept"
    )
}

async fn update_if_unchanged(conn: &mut Connection, before: &Payment, p: &Payment) -> Result<()> {
    let postgres = crate::on_postgres(conn);
    let done = bind_update(sqlx::query(UPDATE_IF_UNCHANGED), before, p, postgres)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Duplicate("concurrent change to this payment"));
    }
    Ok(())
}

/// The [`UPDATE_BINDS`] binds of [`UPDATE_IF_UNCHANGED`]. Its check covers what a
/// writer from a stale copy could undo: the state, the money, the step-up
/// attempts, and the connector, which says an authorisation may be out
/// (written alone, before the issuer hears of the payment; a stale write
/// that took it back would leave a charge no sweep reverses).
fn bind_update<'q>(
    query: crate::AnyQuery<'q>,
    before: &'q Payment,
    p: &'q Payment,
    postgres: bool,
) -> crate::AnyQuery<'q> {
    let query = query
        .bind(&p.id)
        .bind(&before.state)
        .bind(&p.user_id)
        .bind(&p.payment_method_id)
        .bind(p.authorised_minor)
        .bind(p.captured_minor)
        .bind(p.refunded_minor)
        .bind(p.fee_minor)
        .bind(&p.state)
        .bind(&p.reason)
        .bind(&p.connector)
        .bind(&p.issuer_ref);
    bind_score(query, postgres, p.match_score)
        .bind(&p.candidates)
        .bind(p.step_up_attempts)
        .bind(&p.liveness)
        .bind(p.expires_at_ms)
        .bind(p.updated_at_ms)
        .bind(before.captured_minor)
        .bind(before.refunded_minor)
        .bind(before.step_up_attempts)
        .bind(&before.connector)
}

/// A move of a payment: from a state (none for its creation) to a state,
/// with its reason and time.
type Move<'a> = (Option<&'a str>, &'a str, &'a str, i64);

/// The move from `from` to `p` as it now is.
fn move_to(from: PaymentState, p: &Payment) -> Move<'_> {
    (Some(from.as_str()), &p.state, &p.reason, p.updated_at_ms)
}

async fn record_events(conn: &mut Connection, payment_id: &str, moves: &[Move<'_>]) -> Result<()> {
    let sql = format!(
        "INSERT INTO payment_events (payment_id, from_state, to_state, reason, at_ms) VALUES {}",
        crate::values_placeholders(moves.len(), 5)
    );
    let mut inserted = sqlx::query(&sql);
    for &(from, to, reason, at_ms) in moves {
        inserted = inserted
            .bind(payment_id)
            .bind(from)
            .bind(to)
            .bind(reason)
            .bind(at_ms);
    }
    inserted.execute(conn).await?;
    Ok(())
}

pub async fn get(conn: &mut Connection, id: &str) -> Result<Option<Payment>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// What a payment request reads before its face is analysed, in one
/// statement: the payment an earlier try of its key committed (`None` for
/// none), and the refused attempts at `terminal_id` since `since_ms`,
/// which the terminal's throttle counts. The count is taken whether or
/// not there is a payment: one round trip either way, where a payment
/// found first and the count read only without one would cost two for
/// nearly every request.
pub async fn earlier_and_attempts(
    conn: &mut Connection,
    id: &str,
    terminal_id: &str,
    since_ms: i64,
) -> Result<(Option<Payment>, i64)> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let columns = PAYMENT_COLUMNS
            .split(',')
            .map(|c| format!("p.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM terminal_attempts \
             WHERE terminal_id = $2 AND at_ms >= $3) AS refused_attempts, {columns} \
             FROM (SELECT 1 AS one) AS o LEFT JOIN payments p ON p.id = $1"
        )
    });
    let row = sqlx::query(SQL.as_str())
        .bind(id)
        .bind(terminal_id)
        .bind(since_ms)
        .fetch_one(conn)
        .await?;
    let attempts: i64 = row.try_get("refused_attempts")?;
    let earlier = match row.try_get::<Option<String>, _>("id")? {
        Some(_) => Some(Payment::from_row(&row)?),
        None => None,
    };
    Ok((earlier, attempts))
}

pub async fn by_idempotency_key(
    conn: &mut Connection,
    terminal_id: &str,
    key: &str,
) -> Result<Option<Payment>> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE terminal_id = $1 AND idempotency_key = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(terminal_id)
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Event {
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
    pub at_ms: i64,
}

pub async fn events(conn: &mut Connection, payment_id: &str) -> Result<Vec<Event>> {
    Ok(sqlx::query_as(
        "SELECT from_state, to_state, reason, at_ms FROM payment_events \
         WHERE payment_id = $1 ORDER BY id",
    )
    .bind(payment_id)
    .fetch_all(conn)
    .await?)
}

pub async fn insert_refund(
    conn: &mut Connection,
    id: &str,
    payment_id: &str,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, amount_minor, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(payment_id)
    .bind(amount_minor)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Payments of one user, newest first (the app's "my payments").
pub async fn of_user(conn: &mut Connection, user_id: &str, limit: i64) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = $1 \
         ORDER BY created_at_ms DESC, id DESC LIMIT $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user_id)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub store_id: Option<String>,
    pub state: Option<PaymentState>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Resume after this (created_at_ms, id), exclusive.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// A merchant's payments, newest first, with keyset pagination so pages stay
/// stable while new payments arrive.
pub async fn list(
    conn: &mut Connection,
    merchant_id: &str,
    f: &ListFilter,
) -> Result<Vec<Payment>> {
    assert!(f.limit > 0);
    let (after_ms, after_id) = f
        .after
        .clone()
        .unwrap_or((i64::MAX, String::from("\u{10FFFF}")));
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE merchant_id = $1 \
         AND ($2 = '' OR store_id = $2) AND ($3 = '' OR state = $3) \
         AND created_at_ms >= $4 AND created_at_ms < $5 \
         AND (created_at_ms < $6 OR (created_at_ms = $6 AND id < $7)) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $8"
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(f.store_id.clone().unwrap_or_default())
        .bind(f.state.map(PaymentState::as_str).unwrap_or_default())
        .bind(f.from_ms.unwrap_or(0))
        .bind(f.to_ms.unwrap_or(i64::MAX))
        .bind(after_ms)
        .bind(after_id)
        .bind(f.limit)
        .fetch_all(conn)
        .await?)
}

/// Authorisations whose hold has run out, oldest first.
pub async fn expired_authorisations(
    conn: &mut Connection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE state = 'authorised' \
         AND expires_at_ms IS NOT NULL AND expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Payments a request left unfinished before `before_ms`: created (the
/// request stopped between writing the payment's row and answering) or
/// still awaiting a step-up nobody gave. Oldest first.
pub async fn abandoned(conn: &mut Connection, before_ms: i64, limit: i64) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE state IN ('created', 'requires_step_up') \
         AND updated_at_ms <= $1 ORDER BY updated_at_ms LIMIT $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(before_ms)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DailyReportRow {
    pub store_id: String,
    pub currency: String,
    /// Payments captured that day.
    pub count: i64,
    pub gross_minor: i64,
    pub refunds_minor: i64,
    pub fees_minor: i64,
    pub net_minor: i64,
}

/// Per store, for the UTC day starting at `day_start_ms`: payments captured
/// that day (gross, fees) and refunds made that day, from the ledger's own
/// transfers so the report and the ledger cannot disagree.
pub async fn daily_report(
    conn: &mut Connection,
    merchant_id: &str,
    day_start_ms: i64,
) -> Result<Vec<DailyReportRow>> {
    let day_end_ms = day_start_ms + 86_400_000;
    let rows = sqlx::query(
        "SELECT p.store_id, p.currency, \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'capture' AND e.account_id LIKE 'merchant:%:payable:%' \
              AND e.amount_minor < 0 THEN -e.amount_minor ELSE 0 END), 0) AS BIGINT) AS gross, \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'refund' AND e.account_id LIKE 'merchant:%:payable:%' \
              THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS refunds, \
         CAST(COALESCE(SUM(CASE WHEN t.kind = 'capture' AND e.account_id LIKE 'merchant:%:payable:%' \
              AND e.amount_minor > 0 THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS fees \
         FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id \
         JOIN payments p ON p.id = t.payment_id \
         WHERE p.merchant_id = $1 AND t.created_at_ms >= $2 AND t.created_at_ms < $3 \
         AND t.kind IN ('capture', 'refund') \
         GROUP BY p.store_id, p.currency ORDER BY p.store_id, p.currency",
    )
    .bind(merchant_id)
    .bind(day_start_ms)
    .bind(day_end_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut report = Vec::with_capacity(rows.len());
    for row in rows {
        let gross_minor: i64 = row.try_get("gross")?;
        let refunds_minor: i64 = row.try_get("refunds")?;
        let fees_minor: i64 = row.try_get("fees")?;
        report.push(DailyReportRow {
            store_id: row.try_get("store_id")?,
            currency: row.try_get("currency")?,
            count: 0,
            gross_minor,
            refunds_minor,
            fees_minor,
            net_minor: gross_minor - refunds_minor - fees_minor,
        });
    }
    // Captures counted per transfer, not per entry: the join above repeats a
    // transfer once per leg, so count them separately.
    for r in &mut report {
        r.count = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger_transfers t \
             JOIN payments p ON p.id = t.payment_id WHERE p.merchant_id = $1 AND p.store_id = $2 \
             AND t.currency = $3 AND t.kind = 'capture' AND t.created_at_ms >= $4 \
             AND t.created_at_ms < $5",
        )
        .bind(merchant_id)
        .bind(&r.store_id)
        .bind(&r.currency)
        .bind(day_start_ms)
        .bind(day_end_ms)
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
    }
    Ok(report)
}

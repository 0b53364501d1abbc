//! Merchants' webhooks (migration 0016): endpoints and the event types
//! each subscribes to, the outbox of events with one delivery per
//! subscribed endpoint, the lease a worker takes on a due delivery, and
//! the log of attempts.
//!
//! [`append_event`] runs in the caller's transaction, the one that makes
//! the change the event reports: the event and its deliveries commit with
//! the change or not at all. [`claim_due`] leases deliveries so that no
//! two workers (on one server or several) hold the same one: on
//! PostgreSQL the due rows are locked with `FOR UPDATE SKIP LOCKED` while
//! the lease is written; SQLite has one writer.

use sqlx::FromRow;

use crate::{Connection, Result};

pub const ENABLED: &str = "enabled";
pub const DISABLED: &str = "disabled";

#[derive(Debug, Clone, FromRow)]
pub struct Endpoint {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub secret_key_id: String,
    pub secret_nonce: Vec<u8>,
    pub secret_ciphertext: Vec<u8>,
    pub failing_since_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, status, disabled_reason, secret_key_id, \
     secret_nonce, secret_ciphertext, failing_since_ms, created_at_ms, updated_at_ms";

/// Inserts an endpoint and its subscriptions unless its merchant has
/// `per_merchant_max` endpoints already; `false` then.
pub async fn insert_endpoint(
    conn: &mut Connection,
    e: &Endpoint,
    event_types: &[&str],
    per_merchant_max: i64,
) -> Result<bool> {
    let sql = format!(
        "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
         WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE merchant_id = $2) < $12"
    );
    let done = sqlx::query(&sql)
        .bind(&e.id)
        .bind(&e.merchant_id)
        .bind(&e.url)
        .bind(&e.status)
        .bind(&e.disabled_reason)
        .bind(&e.secret_key_id)
        .bind(&e.secret_nonce)
        .bind(&e.secret_ciphertext)
        .bind(e.failing_since_ms)
        .bind(e.created_at_ms)
        .bind(e.updated_at_ms)
        .bind(per_merchant_max)
        .execute(&mut *conn)
        .await
        .map_err(|err| crate::StoreError::from(err).duplicate_as("webhook endpoint"))?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    set_event_types(conn, &e.id, event_types).await?;
    Ok(true)
}

/// Replaces the event types an endpoint subscribes to.
pub async fn set_event_types(
    conn: &mut Connection,
    endpoint_id: &str,
    event_types: &[&str],
) -> Result<()> {
    sqlx::query("DELETE FROM webhook_subscriptions WHERE endpoint_id = $1")
        .bind(endpoint_id)
        .execute(&mut *conn)
        .await?;
    for event_type in event_types {
        sqlx::query("INSERT INTO webhook_subscriptions (endpoint_id, event_type) VALUES ($1, $2)")
            .bind(endpoint_id)
            .bind(*event_type)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The event types an endpoint subscribes to, by name.
pub async fn event_types(conn: &mut Connection, endpoint_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT event_type FROM webhook_subscriptions WHERE endpoint_id = $1 ORDER BY event_type",
    )
    .bind(endpoint_id)
    .fetch_all(conn)
    .await?)
}

/// A merchant's endpoints, oldest first.
pub async fn endpoints(conn: &mut Connection, merchant_id: &str) -> Result<Vec<Endpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 \
         ORDER BY created_at_ms, id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(merchant_id)
        .fetch_all(conn)
        .await?)
}

/// The merchant's endpoint `id`; `None` for another merchant's.
pub async fn endpoint(
    conn: &mut Connection,
    merchant_id: &str,
    id: &str,
) -> Result<Option<Endpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(merchant_id)
        .fetch_optional(conn)
        .await?)
}

/// Enables a disabled endpoint: its failures are forgotten and what waits
/// for it is due at once, with a new retry window.
pub async fn enable(conn: &mut Connection, id: &str, now_ms: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, \
         failing_since_ms = NULL, updated_at_ms = $2 WHERE id = $1 AND status = 'disabled'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at_ms = $2, retry_from_ms = $2, \
             updated_at_ms = $2 WHERE endpoint_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(now_ms)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Disables an endpoint with `reason`; `false` if it was disabled already.
pub async fn disable(conn: &mut Connection, id: &str, reason: &str, now_ms: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, \
         updated_at_ms = $3 WHERE id = $1 AND status = 'enabled'",
    )
    .bind(id)
    .bind(reason)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an endpoint with its subscriptions, deliveries and log. The
/// caller destroys its secret's data key in the same transaction.
pub async fn delete_endpoint(conn: &mut Connection, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
        "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
        "DELETE FROM webhook_subscriptions WHERE endpoint_id = $1",
        "DELETE FROM webhook_endpoints WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// An event for the outbox.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub event_type: &'a str,
    pub resource_id: &'a str,
    pub payload: &'a str,
    pub created_at_ms: i64,
}

/// Writes an event and one due delivery for each of its merchant's
/// enabled endpoints that subscribes to its type, in the caller's
/// transaction. An event nobody subscribes to is not kept. Returns how
/// many deliveries were queued.
pub async fn append_event(conn: &mut Connection, e: &NewEvent<'_>) -> Result<u64> {
    append_events(conn, std::slice::from_ref(e)).await
}

/// Events written at once (a payment approved and captured in one
/// transaction): one statement for the events whatever their number, and
/// one for the deliveries of those kept.
pub async fn append_events(conn: &mut Connection, events: &[NewEvent<'_>]) -> Result<u64> {
    assert!(!events.is_empty());
    let sql = format!(
        "INSERT INTO webhook_events ({EVENT_COLUMNS}) {}",
        kept_events(0, events.len(), None)
    );
    let inserted = bind_events(sqlx::query(&sql), events);
    if inserted.execute(&mut *conn).await?.rows_affected() == 0 {
        return Ok(0);
    }
    queue_deliveries(conn, events).await
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, merchant_id, event_type, resource_id, payload, created_at_ms";

/// The `SELECT` of `count` events bound after `first` binds, keeping only
/// those a merchant's enabled endpoint subscribes to (an event nobody
/// subscribes to is not kept) and, when `only_if` is given, only if that
/// condition holds too.
pub(crate) fn kept_events(first: usize, count: usize, only_if: Option<&str>) -> String {
    let also = only_if.map_or(String::new(), |c| format!(" AND ({c})"));
    // VALUES names its columns column1, column2, ... on both stores.
    format!(
        "SELECT column1, column2, column3, column4, column5, column6 \
         FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 \
         FROM webhook_endpoints e JOIN webhook_subscriptions s ON s.endpoint_id = e.id \
         WHERE e.merchant_id = v.column2 AND e.status = 'enabled' AND s.event_type = v.column3)\
         {also}",
        crate::values_placeholders_after(first, count, 6)
    )
}

/// The binds of [`kept_events`], in its order.
pub(crate) fn bind_events<'q>(
    mut query: crate::AnyQuery<'q>,
    events: &[NewEvent<'q>],
) -> crate::AnyQuery<'q> {
    for e in events {
        query = query
            .bind(e.id)
            .bind(e.merchant_id)
            .bind(e.event_type)
            .bind(e.resource_id)
            .bind(e.payload)
            .bind(e.created_at_ms);
    }
    query
}

/// One due delivery for each kept event of `events` and each enabled
/// endpoint that subscribes to it. Returns how many were queued.
pub(crate) async fn queue_deliveries(
    conn: &mut Connection,
    events: &[NewEvent<'_>],
) -> Result<u64> {
    // From the events as stored: an event dropped for want of a
    // subscriber gets no delivery, even if one was added meanwhile.
    let sql = format!(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, attempts, \
         next_attempt_at_ms, retry_from_ms, lease_until_ms, created_at_ms, updated_at_ms) \
         SELECT ev.id, e.id, 'pending', 0, ev.created_at_ms, ev.created_at_ms, 0, \
         ev.created_at_ms, ev.created_at_ms FROM webhook_events ev \
         JOIN webhook_endpoints e ON e.merchant_id = ev.merchant_id \
         JOIN webhook_subscriptions s ON s.endpoint_id = e.id AND s.event_type = ev.event_type \
         WHERE e.status = 'enabled' AND ev.id IN {}",
        crate::values_placeholders(1, events.len())
    );
    let mut queued = sqlx::query(&sql);
    for e in events {
        queued = queued.bind(e.id);
    }
    Ok(queued.execute(conn).await?.rows_affected())
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EventRow {
    pub id: String,
    pub merchant_id: String,
    pub event_type: String,
    pub resource_id: String,
    pub payload: String,
    pub created_at_ms: i64,
}

/// The events kept about a payment or claim, oldest first.
pub async fn events_about(conn: &mut Connection, resource_id: &str) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, merchant_id, event_type, resource_id, payload, created_at_ms \
         FROM webhook_events WHERE resource_id = $1 ORDER BY created_at_ms, id",
    )
    .bind(resource_id)
    .fetch_all(conn)
    .await?)
}

/// A delivery a worker holds: what to send, where, and how many times it
/// was tried.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    pub event_id: String,
    pub endpoint_id: String,
    pub attempts: i64,
    pub retry_from_ms: i64,
    pub event_type: String,
    pub payload: String,
    pub url: String,
    pub secret_key_id: String,
    pub secret_nonce: Vec<u8>,
    pub secret_ciphertext: Vec<u8>,
}

/// Due deliveries leased to one worker: `owner` names this lease alone,
/// and moves each delivery on through [`record_attempt`].
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub due: Vec<Due>,
}

/// Leases up to `limit` due deliveries of enabled endpoints until
/// `now_ms + lease_ms`, earliest due first, under a new owner name. A
/// delivery leased before is not due until that lease ends.
pub async fn claim_due(
    conn: &mut Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Lease> {
    assert!(lease_ms > 0 && limit > 0);
    let lock = if crate::on_postgres(conn) {
        "FOR UPDATE OF d SKIP LOCKED"
    } else {
        ""
    };
    let owner = crate::ids::new("lease")?;
    let claim = format!(
        "UPDATE webhook_deliveries SET lease_until_ms = $1, lease_owner = $2 \
         WHERE (event_id, endpoint_id) IN (SELECT d.event_id, d.endpoint_id \
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.state = 'pending' AND d.next_attempt_at_ms <= $3 AND d.lease_until_ms < $3 \
         AND e.status = 'enabled' ORDER BY d.next_attempt_at_ms LIMIT $4 {lock})"
    );
    let taken = sqlx::query(&claim)
        .bind(now_ms + lease_ms)
        .bind(&owner)
        .bind(now_ms)
        .bind(limit)
        .execute(&mut *conn)
        .await?;
    if taken.rows_affected() == 0 {
        return Ok(Lease {
            owner,
            due: Vec::new(),
        });
    }
    let due = sqlx::query_as(
        "SELECT d.event_id, d.endpoint_id, d.attempts, d.retry_from_ms, ev.event_type, \
         ev.payload, e.url, e.secret_key_id, e.secret_nonce, e.secret_ciphertext \
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.lease_owner = $1 ORDER BY d.next_attempt_at_ms",
    )
    .bind(&owner)
    .fetch_all(conn)
    .await?;
    Ok(Lease { owner, due })
}

/// One attempt, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AttemptRow {
    pub event_id: String,
    pub endpoint_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    RetryAt(i64),
    /// Its retry window is over.
    GaveUp,
}

/// Logs an attempt and moves its delivery on, if `owner` still holds the
/// lease; `false` when it does not (it ran out and another worker took
/// the delivery, whose own attempt decides).
pub async fn record_attempt(
    conn: &mut Connection,
    owner: &str,
    a: &AttemptRow,
    outcome: Outcome,
) -> Result<bool> {
    sqlx::query(
        "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, status_code, latency_ms, \
         error, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.event_id)
    .bind(&a.endpoint_id)
    .bind(a.attempt)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(&a.error)
    .bind(a.at_ms)
    .execute(&mut *conn)
    .await?;
    let (state, next_ms, delivered_ms) = match outcome {
        Outcome::Delivered => ("delivered", a.at_ms, Some(a.at_ms)),
        Outcome::RetryAt(at_ms) => ("pending", at_ms, None),
        Outcome::GaveUp => ("failed", a.at_ms, None),
    };
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = $4, attempts = attempts + 1, \
         next_attempt_at_ms = $5, delivered_at_ms = $6, lease_until_ms = 0, lease_owner = NULL, \
         updated_at_ms = $7 WHERE event_id = $1 AND endpoint_id = $2 AND lease_owner = $3",
    )
    .bind(&a.event_id)
    .bind(&a.endpoint_id)
    .bind(owner)
    .bind(state)
    .bind(next_ms)
    .bind(delivered_ms)
    .bind(a.at_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notes a failed attempt against its endpoint: the run of failures
/// starts now unless it started before. Returns when it started.
pub async fn endpoint_failed(conn: &mut Connection, id: &str, now_ms: i64) -> Result<i64> {
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since_ms = $2 \
         WHERE id = $1 AND failing_since_ms IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let since: Option<Option<i64>> =
        sqlx::query_scalar("SELECT failing_since_ms FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(since.flatten().unwrap_or(now_ms))
}

/// A delivery succeeded: the endpoint's run of failures is over.
pub async fn endpoint_succeeded(conn: &mut Connection, id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since_ms = NULL \
         WHERE id = $1 AND failing_since_ms IS NOT NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeliveryRow {
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub lease_until_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(
    conn: &mut Connection,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    Ok(sqlx::query_as(
        "SELECT d.event_id, ev.event_type, d.state, d.attempts, d.next_attempt_at_ms, \
         d.lease_until_ms, d.delivered_at_ms, d.created_at_ms, d.updated_at_ms \
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
         WHERE d.endpoint_id = $1 ORDER BY d.created_at_ms DESC, d.event_id DESC LIMIT $2",
    )
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// One event's delivery to one endpoint.
pub async fn delivery(
    conn: &mut Connection,
    endpoint_id: &str,
    event_id: &str,
) -> Result<Option<DeliveryRow>> {
    Ok(sqlx::query_as(
        "SELECT d.event_id, ev.event_type, d.state, d.attempts, d.next_attempt_at_ms, \
         d.lease_until_ms, d.delivered_at_ms, d.created_at_ms, d.updated_at_ms \
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
         WHERE d.endpoint_id = $1 AND d.event_id = $2",
    )
    .bind(endpoint_id)
    .bind(event_id)
    .fetch_optional(conn)
    .await?)
}

/// The latest `limit` attempts of one delivery, newest first.
pub async fn attempts(
    conn: &mut Connection,
    endpoint_id: &str,
    event_id: &str,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT event_id, endpoint_id, attempt, status_code, latency_ms, error, at_ms \
         FROM webhook_attempts WHERE endpoint_id = $1 AND event_id = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(endpoint_id)
    .bind(event_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Due now, with a new retry window.
    Queued,
    /// An attempt is under way; it decides.
    InFlight,
    NotFound,
}

/// Makes a delivery due again at once, whatever became of it.
pub async fn redeliver(
    conn: &mut Connection,
    endpoint_id: &str,
    event_id: &str,
    now_ms: i64,
) -> Result<Redelivery> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at_ms = $3, \
         retry_from_ms = $3, updated_at_ms = $3 \
         WHERE endpoint_id = $1 AND event_id = $2 AND lease_until_ms < $3",
    )
    .bind(endpoint_id)
    .bind(event_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Redelivery::Queued);
    }
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT lease_until_ms FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2",
    )
    .bind(endpoint_id)
    .bind(event_id)
    .fetch_optional(conn)
    .await?;
    Ok(match exists {
        Some(_) => Redelivery::InFlight,
        None => Redelivery::NotFound,
    })
}

/// Forgets, `batch` rows at a time each, attempts logged before
/// `before_ms`, deliveries made before it (pending ones too: their
/// endpoint was disabled for longer than anyone waits) unless an attempt
/// holds them at `now_ms`, and events left without deliveries. Returns
/// how many rows went.
pub async fn purge(conn: &mut Connection, before_ms: i64, now_ms: i64, batch: i64) -> Result<u64> {
    let attempts = sqlx::query(
        "DELETE FROM webhook_attempts WHERE id IN \
         (SELECT id FROM webhook_attempts WHERE at_ms < $1 LIMIT $2)",
    )
    .bind(before_ms)
    .bind(batch)
    .execute(&mut *conn)
    .await?;
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE (event_id, endpoint_id) IN \
         (SELECT event_id, endpoint_id FROM webhook_deliveries \
         WHERE created_at_ms < $1 AND lease_until_ms < $2 LIMIT $3)",
    )
    .bind(before_ms)
    .bind(now_ms)
    .bind(batch)
    .execute(&mut *conn)
    .await?;
    let events = sqlx::query(
        "DELETE FROM webhook_events WHERE id IN (SELECT ev.id FROM webhook_events ev \
         WHERE ev.created_at_ms < $1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id) LIMIT $2)",
    )
    .bind(before_ms)
    .bind(batch)
    .execute(conn)
    .await?;
    Ok(attempts.rows_affected() + deliveries.rows_affected() + events.rows_affected())
}

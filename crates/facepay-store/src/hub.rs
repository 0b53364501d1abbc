//! The cross-border hub's records: quotes a payer accepts once before they
//! expire, transfers with their idempotency keys and states, one-time cash
//! codes, and settlement windows. A transfer's money is posted to the
//! ledger only when its payee is paid ([`commit`]), in the transaction that
//! counts it into the open window, so a window's positions are exactly the
//! ledger's entries for the transfers it holds.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::ledger::{self, Account};
use crate::{Connection, Result, StoreError, ids};

/// A quote as stored. Rates are decimal text of 10^9-scaled integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub id: String,
    pub kind: Kind,
    pub provider: String,
    pub payer_network: String,
    pub payer_account: String,
    pub payee_network: String,
    pub payee_account: String,
    pub payee_name: String,
    pub source_currency: String,
    pub source_minor: i64,
    pub fee_minor: i64,
    pub destination_currency: String,
    pub destination_minor: i64,
    pub mid_rate: String,
    pub customer_rate: String,
    pub reference: Option<String>,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A merchant-presented QR payment, either way.
    Qr,
    /// A cardless cash withdrawal.
    Atm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Qr => "qr",
            Kind::Atm => "atm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Written before any network is called.
    Pending,
    /// Screening matched a party: no network is called until an operator
    /// releases or refuses it.
    Held,
    /// Both legs reserved, waiting for a confirmation (a cash dispense).
    Reserved,
    /// The ATM dispensed: the withdrawal can only commit now.
    Dispensed,
    Committed,
    Reversed,
    /// The payee was paid; the payer's network has not confirmed its
    /// commit yet (the money stays held there).
    PayerCommitPending,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Held => "held",
            State::Reserved => "reserved",
            State::Dispensed => "dispensed",
            State::Committed => "committed",
            State::Reversed => "reversed",
            State::PayerCommitPending => "payer_commit_pending",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => State::Pending,
            "held" => State::Held,
            "dispensed" => State::Dispensed,
            "reserved" => State::Reserved,
            "committed" => State::Committed,
            "reversed" => State::Reversed,
            "payer_commit_pending" => State::PayerCommitPending,
            other => return Err(StoreError::Corrupt(format!("hub transfer state {other:?}"))),
        })
    }

    /// The payee was paid: the transfer's money is in the ledger.
    pub fn paid(self) -> bool {
        matches!(self, State::Committed | State::PayerCommitPending)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    pub kind: Kind,
    pub requester: String,
    pub idempotency_key: String,
    pub quote: Quote,
    pub state: State,
    pub reason: Option<String>,
    pub window_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Why a quote cannot be taken up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownQuote,
    Expired,
    Used,
    /// The idempotency key was used for another quote.
    KeyReused,
}

pub async fn insert_quote(conn: &mut Connection, q: &Quote) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_quotes (id, provider, payer_network, payer_account, payee_network, \
         payee_account, payee_name, source_currency, source_minor, fee_minor, \
         destination_currency, destination_minor, mid_rate, customer_rate, reference, \
         expires_at_ms, created_at_ms, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&q.id)
    .bind(&q.provider)
    .bind(&q.payer_network)
    .bind(&q.payer_account)
    .bind(&q.payee_network)
    .bind(&q.payee_account)
    .bind(&q.payee_name)
    .bind(&q.source_currency)
    .bind(q.source_minor)
    .bind(q.fee_minor)
    .bind(&q.destination_currency)
    .bind(q.destination_minor)
    .bind(&q.mid_rate)
    .bind(&q.customer_rate)
    .bind(&q.reference)
    .bind(q.expires_at_ms)
    .bind(q.created_at_ms)
    .bind(q.kind.as_str())
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("hub quote"))?;
    Ok(())
}

const QUOTE_COLUMNS: &str = "q.id AS q_id, q.kind AS q_kind, q.provider, q.payer_network, q.payer_account, \
    q.payee_network, q.payee_account, q.payee_name, q.source_currency, q.source_minor, \
    q.fee_minor, q.destination_currency, q.destination_minor, q.mid_rate, q.customer_rate, \
    q.reference, q.expires_at_ms, q.created_at_ms AS q_created_at_ms";

fn kind(text: &str) -> Result<Kind> {
    match text {
        "qr" => Ok(Kind::Qr),
        "atm" => Ok(Kind::Atm),
        other => Err(StoreError::Corrupt(format!("hub kind {other:?}"))),
    }
}

fn quote_from(row: &AnyRow) -> Result<Quote> {
    Ok(Quote {
        id: row.try_get("q_id")?,
        kind: kind(&row.try_get::<String, _>("q_kind")?)?,
        provider: row.try_get("provider")?,
        payer_network: row.try_get("payer_network")?,
        payer_account: row.try_get("payer_account")?,
        payee_network: row.try_get("payee_network")?,
        payee_account: row.try_get("payee_account")?,
        payee_name: row.try_get("payee_name")?,
        source_currency: row.try_get("source_currency")?,
        source_minor: row.try_get("source_minor")?,
        fee_minor: row.try_get("fee_minor")?,
        destination_currency: row.try_get("destination_currency")?,
        destination_minor: row.try_get("destination_minor")?,
        mid_rate: row.try_get("mid_rate")?,
        customer_rate: row.try_get("customer_rate")?,
        reference: row.try_get("reference")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        created_at_ms: row.try_get("q_created_at_ms")?,
    })
}

fn transfer_from(row: &AnyRow) -> Result<Transfer> {
    Ok(Transfer {
        id: row.try_get("id")?,
        kind: kind(&row.try_get::<String, _>("kind")?)?,
        requester: row.try_get("requester")?,
        idempotency_key: row.try_get("idempotency_key")?,
        quote: quote_from(row)?,
        state: State::parse(&row.try_get::<String, _>("state")?)?,
        reason: row.try_get("reason")?,
        window_id: row.try_get("window_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub async fn quote(conn: &mut Connection, id: &str) -> Result<Option<Quote>> {
    let sql = format!("SELECT {QUOTE_COLUMNS} FROM hub_quotes q WHERE q.id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(quote_from)
        .transpose()
}

fn transfer_sql(filter: &str) -> String {
    format!(
        "SELECT h.id, h.kind, h.requester, h.idempotency_key, h.state, h.reason, h.window_id, \
         h.created_at_ms, h.updated_at_ms, {QUOTE_COLUMNS} \
         FROM hub_transfers h JOIN hub_quotes q ON q.id = h.quote_id WHERE {filter}"
    )
}

pub async fn transfer(conn: &mut Connection, id: &str) -> Result<Option<Transfer>> {
    sqlx::query(&transfer_sql("h.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(transfer_from)
        .transpose()
}

/// Takes up `quote_id` for a new transfer, in the caller's transaction:
/// the quote must exist, be unexpired at `now_ms` and unused. The same
/// requester and key again is the same transfer, returned as it stands
/// with `false` (a new one comes with `true`); the key with another quote
/// is refused.
pub async fn begin(
    conn: &mut Connection,
    kind: Kind,
    requester: &str,
    idempotency_key: &str,
    quote_id: &str,
    now_ms: i64,
) -> Result<Result<(Transfer, bool), Refusal>> {
    let earlier = sqlx::query(&transfer_sql("h.requester = $1 AND h.idempotency_key = $2"))
        .bind(requester)
        .bind(idempotency_key)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = earlier {
        let earlier = transfer_from(&row)?;
        return Ok(if earlier.quote.id == quote_id {
            Ok((earlier, false))
        } else {
            Err(Refusal::KeyReused)
        });
    }
    let id = ids::new("hxf")?;
    let taken = sqlx::query(
        "UPDATE hub_quotes SET used_by = $1 \
         WHERE id = $2 AND kind = $3 AND used_by IS NULL AND expires_at_ms > $4",
    )
    .bind(&id)
    .bind(quote_id)
    .bind(kind.as_str())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken != 1 {
        let row = sqlx::query("SELECT used_by, kind FROM hub_quotes WHERE id = $1")
            .bind(quote_id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(Err(match row {
            None => Refusal::UnknownQuote,
            // A cash quote is not a QR payment's, nor the other way.
            Some(r) if r.try_get::<String, _>("kind")? != kind.as_str() => Refusal::UnknownQuote,
            Some(r) if r.try_get::<Option<String>, _>("used_by")?.is_some() => Refusal::Used,
            Some(_) => Refusal::Expired,
        }));
    }
    sqlx::query(
        "INSERT INTO hub_transfers (id, kind, requester, idempotency_key, quote_id, state, \
         created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(requester)
    .bind(idempotency_key)
    .bind(quote_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("hub transfer"))?;
    transfer(conn, &id)
        .await?
        .map(|t| Ok((t, true)))
        .ok_or(StoreError::NotFound("hub transfer"))
}

/// The transfer a requester made under `idempotency_key`, if any.
pub async fn transfer_by_key(
    conn: &mut Connection,
    requester: &str,
    idempotency_key: &str,
) -> Result<Option<Transfer>> {
    sqlx::query(&transfer_sql("h.requester = $1 AND h.idempotency_key = $2"))
        .bind(requester)
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(transfer_from)
        .transpose()
}

/// Takes a transfer for the sweep: only if it is still in `state` as last
/// seen at `seen_ms`, so two sweepers never work on one; its time moves
/// to `now_ms`, so a failure is tried again later, after the others.
pub async fn claim(
    conn: &mut Connection,
    id: &str,
    state: State,
    seen_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE hub_transfers SET updated_at_ms = $1 \
         WHERE id = $2 AND state = $3 AND updated_at_ms = $4",
    )
    .bind(now_ms)
    .bind(id)
    .bind(state.as_str())
    .bind(seen_ms)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Removes quotes and cash codes that expired unused before `before_ms`.
pub async fn purge(conn: &mut Connection, before_ms: i64) -> Result<u64> {
    let codes =
        sqlx::query("DELETE FROM hub_atm_codes WHERE used_at_ms IS NULL AND expires_at_ms < $1")
            .bind(before_ms)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let quotes = sqlx::query(
        "DELETE FROM hub_quotes WHERE used_by IS NULL AND expires_at_ms < $1 \
         AND id NOT IN (SELECT quote_id FROM hub_atm_codes)",
    )
    .bind(before_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(codes + quotes)
}

/// Moves a transfer from one of `from` to `to`; false when it was not in
/// any of them (another request moved it first).
pub async fn set_state(
    conn: &mut Connection,
    id: &str,
    from: &[State],
    to: State,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<bool> {
    assert!(!to.paid(), "a paid transfer is moved by commit");
    assert!(!from.is_empty() && from.len() <= 4);
    let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 5)).collect();
    let sql = format!(
        "UPDATE hub_transfers SET state = $1, reason = $2, updated_at_ms = $3 \
         WHERE id = $4 AND state IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(reason)
        .bind(now_ms)
        .bind(id);
    for state in from {
        query = query.bind(state.as_str());
    }
    Ok(query.execute(conn).await?.rows_affected() == 1)
}

/// Records that the payee was paid, in the caller's transaction: counts the
/// transfer into the open window (opening one if there is none) and posts
/// both currencies' sides to the ledger. The payer's network owes the
/// source amount; the FX provider is owed the principal and owes the
/// destination amount; the payee's network is owed that; the hub keeps its
/// fee. False when the transfer was not `pending`, `reserved` or
/// `dispensed`; the caller then drops the transaction.
pub async fn commit(
    conn: &mut Connection,
    t: &Transfer,
    payer_confirmed: bool,
    now_ms: i64,
) -> Result<bool> {
    let window_id = open_window(conn, now_ms).await?;
    let to = if payer_confirmed {
        State::Committed
    } else {
        State::PayerCommitPending
    };
    let moved = sqlx::query(
        "UPDATE hub_transfers SET state = $1, window_id = $2, reason = NULL, updated_at_ms = $3 \
         WHERE id = $4 AND state IN ('pending', 'reserved', 'dispensed')",
    )
    .bind(to.as_str())
    .bind(&window_id)
    .bind(now_ms)
    .bind(&t.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    let q = &t.quote;
    let provider = format!("fx:{}", q.provider);
    let principal = q.source_minor - q.fee_minor;
    let mut source = vec![
        (Account::HubPosition(&q.payer_network), q.source_minor),
        (Account::HubPosition(&provider), -principal),
    ];
    if q.fee_minor > 0 {
        source.push((Account::HubFees, -q.fee_minor));
    }
    ledger::post_hub(
        conn,
        &format!("{}:source", t.id),
        &q.source_currency,
        &source,
        now_ms,
    )
    .await?;
    let destination = [
        (Account::HubPosition(&provider), q.destination_minor),
        (Account::HubPosition(&q.payee_network), -q.destination_minor),
    ];
    ledger::post_hub(
        conn,
        &format!("{}:destination", t.id),
        &q.destination_currency,
        &destination,
        now_ms,
    )
    .await?;
    Ok(true)
}

/// The open window's id, opening one if there is none, and holds it open
/// for the caller's transaction: a close waits for the transfer being
/// counted (on PostgreSQL the count's row lock; SQLite has one writer).
async fn open_window(conn: &mut Connection, now_ms: i64) -> Result<String> {
    for _ in 0..3 {
        let open = sqlx::query("SELECT id FROM hub_windows WHERE state = 'open'")
            .fetch_optional(&mut *conn)
            .await?;
        let id: String = match open {
            Some(row) => row.try_get("id")?,
            None => {
                let id = ids::new("win")?;
                let inserted = sqlx::query(
                    "INSERT INTO hub_windows (id, state, opened_at_ms) VALUES ($1, 'open', $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if inserted != 1 {
                    continue;
                }
                id
            }
        };
        let counted = sqlx::query(
            "UPDATE hub_windows SET transfer_count = transfer_count + 1 \
             WHERE id = $1 AND state = 'open'",
        )
        .bind(&id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if counted == 1 {
            return Ok(id);
        }
    }
    Err(StoreError::Refused(
        "the settlement window kept closing; try again".into(),
    ))
}

/// The payer's network confirmed a commit that was pending.
pub async fn payer_confirmed(conn: &mut Connection, id: &str, now_ms: i64) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE hub_transfers SET state = 'committed', updated_at_ms = $1 \
         WHERE id = $2 AND state = 'payer_commit_pending'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Transfers in `state` not moved since `before_ms`, oldest first, at most
/// `limit`: what the sweep finishes.
pub async fn stale(
    conn: &mut Connection,
    state: State,
    before_ms: i64,
    limit: i64,
) -> Result<Vec<Transfer>> {
    let sql =
        transfer_sql("h.state = $1 AND h.updated_at_ms < $2 ORDER BY h.updated_at_ms LIMIT $3");
    let rows = sqlx::query(&sql)
        .bind(state.as_str())
        .bind(before_ms)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(transfer_from).collect()
}

pub async fn insert_atm_code(
    conn: &mut Connection,
    code_hash: &str,
    quote_id: &str,
    expires_at_ms: i64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_atm_codes (code_hash, quote_id, expires_at_ms, created_at_ms) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(code_hash)
    .bind(quote_id)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("cash code"))?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    Unknown,
    Used,
    Expired,
}

/// Uses a cash code once, in the caller's transaction: the quote it was
/// issued with, or why not.
pub async fn use_atm_code(
    conn: &mut Connection,
    code_hash: &str,
    now_ms: i64,
) -> Result<Result<Quote, CodeRefusal>> {
    let used = sqlx::query(
        "UPDATE hub_atm_codes SET used_at_ms = $1 \
         WHERE code_hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $1",
    )
    .bind(now_ms)
    .bind(code_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let sql = format!(
        "SELECT c.used_at_ms AS used_at_ms, {QUOTE_COLUMNS} FROM hub_atm_codes c \
         JOIN hub_quotes q ON q.id = c.quote_id WHERE c.code_hash = $1"
    );
    let Some(row) = sqlx::query(&sql)
        .bind(code_hash)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(Err(CodeRefusal::Unknown));
    };
    if used == 1 {
        return Ok(Ok(quote_from(&row)?));
    }
    let used_at: Option<i64> = row.try_get("used_at_ms")?;
    Ok(Err(if used_at.is_some() {
        CodeRefusal::Used
    } else {
        CodeRefusal::Expired
    }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub id: String,
    pub state: String,
    pub transfer_count: i64,
    pub opened_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub settled_at_ms: Option<i64>,
}

/// A participant's net position in one currency for one window: positive
/// when it pays the hub at settlement, negative when the hub pays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub participant: String,
    pub currency: String,
    pub net_minor: i64,
}

fn window_from(row: &AnyRow) -> Result<Window> {
    Ok(Window {
        id: row.try_get("id")?,
        state: row.try_get("state")?,
        transfer_count: row.try_get("transfer_count")?,
        opened_at_ms: row.try_get("opened_at_ms")?,
        closed_at_ms: row.try_get("closed_at_ms")?,
        settled_at_ms: row.try_get("settled_at_ms")?,
    })
}

pub async fn window(conn: &mut Connection, id: &str) -> Result<Option<Window>> {
    sqlx::query(
        "SELECT id, state, transfer_count, opened_at_ms, closed_at_ms, settled_at_ms \
         FROM hub_windows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(window_from)
    .transpose()
}

/// Closes the open window, in the caller's transaction, records each
/// participant's net position per currency from the ledger entries of the
/// transfers it holds, and the settlement instructions that pay them.
/// None when no window is open.
pub async fn close_window(conn: &mut Connection, now_ms: i64) -> Result<Option<Window>> {
    let Some(row) = sqlx::query("SELECT id FROM hub_windows WHERE state = 'open'")
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let closed = sqlx::query(
        "UPDATE hub_windows SET state = 'closed', closed_at_ms = $1 \
         WHERE id = $2 AND state = 'open'",
    )
    .bind(now_ms)
    .bind(&id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if closed != 1 {
        return Err(StoreError::Refused(
            "the window was closed by another request".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO hub_positions (window_id, participant, currency, net_minor) \
         SELECT h.window_id, a.id, a.currency, CAST(SUM(e.amount_minor) AS BIGINT) \
         FROM hub_transfers h \
         JOIN ledger_transfers t ON t.id = h.id || ':source' OR t.id = h.id || ':destination' \
         JOIN ledger_entries e ON e.transfer_id = t.id \
         JOIN ledger_accounts a ON a.id = e.account_id \
         WHERE h.window_id = $1 GROUP BY h.window_id, a.id, a.currency",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    crate::hub_settlement::create(conn, &id, now_ms).await?;
    window(conn, &id).await
}

/// A closed window's net positions, by currency then participant. The
/// participant is the ledger account's name: `hub:position:<who>:<cur>`
/// or `hub:fees:<cur>`.
pub async fn positions(conn: &mut Connection, window_id: &str) -> Result<Vec<Position>> {
    let rows = sqlx::query(
        "SELECT participant, currency, net_minor FROM hub_positions WHERE window_id = $1 \
         ORDER BY currency, participant",
    )
    .bind(window_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Position {
                participant: r.try_get("participant")?,
                currency: r.try_get("currency")?,
                net_minor: r.try_get("net_minor")?,
            })
        })
        .collect()
}

/// The transfers a window holds with ids after `after_id`, in id order, at
/// most `limit`: a page to read a large window through.
pub async fn window_transfers(
    conn: &mut Connection,
    window_id: &str,
    after_id: &str,
    limit: i64,
) -> Result<Vec<Transfer>> {
    let sql = transfer_sql("h.window_id = $1 AND h.id > $2 ORDER BY h.id LIMIT $3");
    let rows = sqlx::query(&sql)
        .bind(window_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(transfer_from).collect()
}

/// A key for member network `network_id` to call the hub's API.
pub async fn insert_member_key(
    conn: &mut Connection,
    network_id: &str,
    key_hash: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_member_keys (key_hash, network_id, created_at_ms) VALUES ($1, $2, $3)",
    )
    .bind(key_hash)
    .bind(network_id)
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("hub member key"))?;
    Ok(())
}

/// The member network a key belongs to.
pub async fn member_by_key_hash(conn: &mut Connection, key_hash: &str) -> Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT network_id FROM hub_member_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// A leg facepay holds as a member network.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberLeg {
    pub transfer_id: String,
    /// A user's id (a debit) or a merchant's (a credit).
    pub account: String,
    /// `debit` or `credit`.
    pub direction: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `reserved`, `committed` or `reversed`.
    pub state: String,
    /// The issuer's authorisation, for a debit.
    pub issuer_ref: Option<String>,
}

pub async fn member_leg(conn: &mut Connection, transfer_id: &str) -> Result<Option<MemberLeg>> {
    Ok(sqlx::query_as(
        "SELECT transfer_id, account, direction, amount_minor, currency, state, issuer_ref \
         FROM hub_member_legs WHERE transfer_id = $1",
    )
    .bind(transfer_id)
    .fetch_optional(conn)
    .await?)
}

/// Records a reserved leg; a second leg under the id is a `Duplicate`.
pub async fn insert_member_leg(conn: &mut Connection, leg: &MemberLeg, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_member_legs (transfer_id, account, direction, amount_minor, currency, \
         state, issuer_ref, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $7, $7)",
    )
    .bind(&leg.transfer_id)
    .bind(&leg.account)
    .bind(&leg.direction)
    .bind(leg.amount_minor)
    .bind(&leg.currency)
    .bind(&leg.issuer_ref)
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("hub member leg"))?;
    Ok(())
}

/// Moves a reserved leg to `committed` or `reversed`; false when it was
/// not reserved.
pub async fn settle_member_leg(
    conn: &mut Connection,
    transfer_id: &str,
    to: &str,
    now_ms: i64,
) -> Result<bool> {
    assert!(matches!(to, "committed" | "reversed"));
    Ok(sqlx::query(
        "UPDATE hub_member_legs SET state = $1, updated_at_ms = $2 \
         WHERE transfer_id = $3 AND state = 'reserved'",
    )
    .bind(to)
    .bind(now_ms)
    .bind(transfer_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

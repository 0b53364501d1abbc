//! The hub's members as its operator onboarded them: a currency, a
//! settlement account, a net debit cap and a request rate; the funds each
//! put in at the settlement bank, posted to the ledger; and each member's
//! exposure, what it may owe the hub (its net position over the windows
//! not yet settled, plus what its transfers under way would add).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::ledger::{self, Account, TransferKind};
use crate::{Connection, Result, StoreError, ids};

/// Members listed at most: the hub has a handful of networks.
pub const MEMBERS_MAX: i64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub network_id: String,
    pub currency: String,
    pub settlement_account: String,
    pub net_debit_cap_minor: i64,
    pub requests_per_minute: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const MEMBER_COLUMNS: &str = "network_id, currency, settlement_account, net_debit_cap_minor, \
    requests_per_minute, created_at_ms, updated_at_ms";

fn member_from(row: &AnyRow) -> Result<Member> {
    Ok(Member {
        network_id: row.try_get("network_id")?,
        currency: row.try_get("currency")?,
        settlement_account: row.try_get("settlement_account")?,
        net_debit_cap_minor: row.try_get("net_debit_cap_minor")?,
        requests_per_minute: row.try_get("requests_per_minute")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// Onboards a member, or changes its terms (its currency stays).
pub async fn upsert(conn: &mut Connection, m: &Member) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_members (network_id, currency, settlement_account, net_debit_cap_minor, \
         requests_per_minute, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (network_id) DO UPDATE SET settlement_account = excluded.settlement_account, \
         net_debit_cap_minor = excluded.net_debit_cap_minor, \
         requests_per_minute = excluded.requests_per_minute, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(&m.network_id)
    .bind(&m.currency)
    .bind(&m.settlement_account)
    .bind(m.net_debit_cap_minor)
    .bind(m.requests_per_minute)
    .bind(m.updated_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn member(conn: &mut Connection, network_id: &str) -> Result<Option<Member>> {
    let sql = format!("SELECT {MEMBER_COLUMNS} FROM hub_members WHERE network_id = $1");
    sqlx::query(&sql)
        .bind(network_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(member_from)
        .transpose()
}

pub async fn members(conn: &mut Connection) -> Result<Vec<Member>> {
    let sql = format!("SELECT {MEMBER_COLUMNS} FROM hub_members ORDER BY network_id LIMIT $1");
    let rows = sqlx::query(&sql).bind(MEMBERS_MAX).fetch_all(conn).await?;
    rows.iter().map(member_from).collect()
}

/// The member, its row locked for the caller's transaction, so that two
/// transfers of one member are checked against its cap one after the other
/// (PostgreSQL's row lock; SQLite has one writer).
pub async fn lock(conn: &mut Connection, network_id: &str) -> Result<Option<Member>> {
    let touched =
        sqlx::query("UPDATE hub_members SET updated_at_ms = updated_at_ms WHERE network_id = $1")
            .bind(network_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if touched != 1 {
        return Ok(None);
    }
    member(conn, network_id).await
}

/// What a member may owe the hub in `currency`: its net position over the
/// windows not yet settled, plus the payments it makes that are under way
/// or held (counted in full, as the hub cannot know yet which will pay).
/// One statement, so one snapshot: a transfer committing meanwhile is
/// counted once, either under way or posted, never neither.
pub async fn exposure_minor(
    conn: &mut Connection,
    network_id: &str,
    currency: &str,
) -> Result<i64> {
    let position = Account::HubPosition(network_id).id(currency);
    Ok(sqlx::query(
        "SELECT CAST((SELECT COALESCE(SUM(e.amount_minor), 0) FROM hub_transfers h \
           JOIN hub_windows w ON w.id = h.window_id AND w.state <> 'settled' \
           JOIN ledger_entries e ON e.transfer_id = h.id || ':source' \
             OR e.transfer_id = h.id || ':destination' \
           WHERE e.account_id = $1) \
         + (SELECT COALESCE(SUM(q.source_minor), 0) FROM hub_transfers h \
           JOIN hub_quotes q ON q.id = h.quote_id \
           WHERE q.payer_network = $2 AND q.source_currency = $3 \
           AND h.state IN ('pending', 'held', 'reserved', 'dispensed')) AS BIGINT) AS n",
    )
    .bind(&position)
    .bind(network_id)
    .bind(currency)
    .fetch_one(conn)
    .await?
    .try_get("n")?)
}

/// The member's funds at the settlement bank in `currency`.
pub async fn funds_minor(conn: &mut Connection, network_id: &str, currency: &str) -> Result<i64> {
    let account = Account::HubFunds(network_id).id(currency);
    let balance: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS n FROM ledger_entries \
         WHERE account_id = $1",
    )
    .bind(&account)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    // The hub owes the member its funds: a credit balance.
    Ok(-balance)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FundsDirection {
    In,
    Out,
}

impl FundsDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            FundsDirection::In => "in",
            FundsDirection::Out => "out",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "in" => Ok(FundsDirection::In),
            "out" => Ok(FundsDirection::Out),
            other => Err(StoreError::Corrupt(format!("funds direction {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundsMovement {
    pub id: String,
    pub network_id: String,
    pub idempotency_key: String,
    pub direction: FundsDirection,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at_ms: i64,
}

/// The movement a member's idempotency key already made, if any.
pub async fn funds_by_key(
    conn: &mut Connection,
    network_id: &str,
    idempotency_key: &str,
) -> Result<Option<FundsMovement>> {
    let row = sqlx::query(
        "SELECT id, network_id, idempotency_key, direction, amount_minor, currency, created_at_ms \
         FROM hub_member_funds WHERE network_id = $1 AND idempotency_key = $2",
    )
    .bind(network_id)
    .bind(idempotency_key)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(FundsMovement {
        id: row.try_get("id")?,
        network_id: row.try_get("network_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        direction: FundsDirection::parse(&row.try_get::<String, _>("direction")?)?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        created_at_ms: row.try_get("created_at_ms")?,
    }))
}

/// Records a movement of a member's funds and posts it, in the caller's
/// transaction: in, the settlement bank holds more for the hub and the hub
/// owes the member as much; out, the other way.
pub async fn move_funds(
    conn: &mut Connection,
    network_id: &str,
    idempotency_key: &str,
    direction: FundsDirection,
    (amount_minor, currency): (i64, &str),
    now_ms: i64,
) -> Result<FundsMovement> {
    assert!(amount_minor > 0);
    let movement = FundsMovement {
        id: ids::new("hmf")?,
        network_id: network_id.to_owned(),
        idempotency_key: idempotency_key.to_owned(),
        direction,
        amount_minor,
        currency: currency.to_owned(),
        created_at_ms: now_ms,
    };
    sqlx::query(
        "INSERT INTO hub_member_funds (id, network_id, idempotency_key, direction, amount_minor, \
         currency, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&movement.id)
    .bind(network_id)
    .bind(idempotency_key)
    .bind(direction.as_str())
    .bind(amount_minor)
    .bind(currency)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("hub funds movement"))?;
    let signed_minor = match direction {
        FundsDirection::In => amount_minor,
        FundsDirection::Out => -amount_minor,
    };
    let legs = [
        (Account::HubSettlementBank, signed_minor),
        (Account::HubFunds(network_id), -signed_minor),
    ];
    ledger::post_hub_bank(
        conn,
        &movement.id,
        TransferKind::HubFunds,
        currency,
        &legs,
        now_ms,
    )
    .await?;
    Ok(movement)
}

/// 6. Each member's funds are never below zero, and what it may owe the
///    hub is within its net debit cap and its funds.
pub(crate) async fn check(conn: &mut Connection, v: &mut ledger::Verification) -> Result<()> {
    for m in members(conn).await? {
        let funds = funds_minor(conn, &m.network_id, &m.currency).await?;
        let exposure = exposure_minor(conn, &m.network_id, &m.currency).await?;
        if funds < 0 {
            v.problem(format!(
                "hub member {}: funds {funds} {} below zero",
                m.network_id, m.currency
            ));
        }
        if exposure > m.net_debit_cap_minor.min(funds) {
            v.problem(format!(
                "hub member {}: may owe {exposure} {}, past its cap {} or funds {funds}",
                m.network_id, m.currency, m.net_debit_cap_minor
            ));
        }
    }
    Ok(())
}

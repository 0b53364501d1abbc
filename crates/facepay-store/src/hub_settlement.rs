//! Settlement instructions: closing a window writes one per non-zero net
//! position, addressed to the settlement bank; each is confirmed (and its
//! position posted against the settlement bank's account) or, after its
//! attempts run out, failed. A window is settled only when every one of
//! its instructions is confirmed.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::hub_members;
use crate::ledger::{self, Account, TransferKind};
use crate::{Connection, Result, StoreError, ids};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionState {
    Pending,
    Confirmed,
    /// Its attempts ran out: an operator must see to it.
    Failed,
}

impl InstructionState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstructionState::Pending => "pending",
            InstructionState::Confirmed => "confirmed",
            InstructionState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "pending" => Ok(InstructionState::Pending),
            "confirmed" => Ok(InstructionState::Confirmed),
            "failed" => Ok(InstructionState::Failed),
            other => Err(StoreError::Corrupt(format!("instruction state {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub id: String,
    pub window_id: String,
    /// The position's ledger account (`hub:position:<who>:<cur>` or
    /// `hub:fees:<cur>`).
    pub participant: String,
    pub currency: String,
    /// What the participant pays (positive) or is paid (negative).
    pub net_minor: i64,
    pub settlement_account: String,
    pub state: InstructionState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub bank_reference: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

fn instruction_from(row: &AnyRow) -> Result<Instruction> {
    Ok(Instruction {
        id: row.try_get("id")?,
        window_id: row.try_get("window_id")?,
        participant: row.try_get("participant")?,
        currency: row.try_get("currency")?,
        net_minor: row.try_get("net_minor")?,
        settlement_account: row.try_get("settlement_account")?,
        state: InstructionState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        bank_reference: row.try_get("bank_reference")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// The ledger account a position is kept in, from its id and currency.
fn position_account<'a>(participant: &'a str, currency: &str) -> Option<Account<'a>> {
    if participant == Account::HubFees.id(currency) {
        return Some(Account::HubFees);
    }
    let who = participant
        .strip_prefix("hub:position:")?
        .strip_suffix(currency)?
        .strip_suffix(':')?;
    Some(Account::HubPosition(who))
}

/// The member network a position account belongs to, if it is a member's.
fn network_of<'a>(participant: &'a str, currency: &str) -> Option<&'a str> {
    match position_account(participant, currency)? {
        Account::HubPosition(who) => Some(who),
        _ => None,
    }
}

/// Writes the instructions of a window just closed, in the caller's
/// transaction: one per non-zero position, paid to or from the member's
/// settlement account (a participant that is not a member, an FX provider
/// or the hub's fees, by its position's name).
pub async fn create(conn: &mut Connection, window_id: &str, now_ms: i64) -> Result<usize> {
    let positions = crate::hub::positions(conn, window_id).await?;
    let mut created = 0;
    for p in positions.iter().filter(|p| p.net_minor != 0) {
        let member = match network_of(&p.participant, &p.currency) {
            Some(network) => hub_members::member(conn, network).await?,
            None => None,
        };
        let account = member.map_or_else(|| p.participant.clone(), |m| m.settlement_account);
        sqlx::query(
            "INSERT INTO hub_settlement_instructions (id, window_id, participant, currency, \
             net_minor, settlement_account, state, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
        )
        .bind(ids::new("hsi")?)
        .bind(window_id)
        .bind(&p.participant)
        .bind(&p.currency)
        .bind(p.net_minor)
        .bind(&account)
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).duplicate_as("settlement instruction"))?;
        created += 1;
    }
    Ok(created)
}

/// A window's instructions, by currency then participant.
pub async fn instructions(conn: &mut Connection, window_id: &str) -> Result<Vec<Instruction>> {
    let rows = sqlx::query(
        "SELECT id, window_id, participant, currency, net_minor, settlement_account, state, \
         attempts, last_error, bank_reference, created_at_ms, updated_at_ms \
         FROM hub_settlement_instructions WHERE window_id = $1 ORDER BY currency, participant",
    )
    .bind(window_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(instruction_from).collect()
}

/// The bank confirmed the instruction, in the caller's transaction: it is
/// confirmed once, and its position posted against the settlement bank's
/// account under the instruction's id. False when it was not pending.
pub async fn confirm(
    conn: &mut Connection,
    i: &Instruction,
    bank_reference: &str,
    now_ms: i64,
) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE hub_settlement_instructions SET state = 'confirmed', bank_reference = $1, \
         attempts = attempts + 1, last_error = NULL, updated_at_ms = $2 \
         WHERE id = $3 AND state = 'pending'",
    )
    .bind(bank_reference)
    .bind(now_ms)
    .bind(&i.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    let position = position_account(&i.participant, &i.currency).ok_or_else(|| {
        StoreError::Corrupt(format!("settlement participant {:?}", i.participant))
    })?;
    let legs = [
        (position, -i.net_minor),
        (Account::HubSettlementBank, i.net_minor),
    ];
    ledger::post_hub_bank(
        conn,
        &i.id,
        TransferKind::HubSettlement,
        &i.currency,
        &legs,
        now_ms,
    )
    .await?;
    Ok(true)
}

/// An attempt the bank did not confirm: counted, with its error; the
/// instruction fails when this was its last. The state it is left in.
pub async fn attempt_failed(
    conn: &mut Connection,
    id: &str,
    error: &str,
    attempts_max: i64,
    now_ms: i64,
) -> Result<InstructionState> {
    sqlx::query(
        "UPDATE hub_settlement_instructions SET attempts = attempts + 1, last_error = $1, \
         state = CASE WHEN attempts + 1 >= $2 THEN 'failed' ELSE 'pending' END, \
         updated_at_ms = $3 WHERE id = $4 AND state = 'pending'",
    )
    .bind(error)
    .bind(attempts_max)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let state: String = sqlx::query("SELECT state FROM hub_settlement_instructions WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?
        .try_get("state")?;
    InstructionState::parse(&state)
}

/// Puts a window's failed instructions back to pending with their attempts
/// counted afresh, once an operator has seen to the cause: how many.
pub async fn retry_failed(conn: &mut Connection, window_id: &str, now_ms: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE hub_settlement_instructions SET state = 'pending', attempts = 0, \
         updated_at_ms = $1 WHERE window_id = $2 AND state = 'failed'",
    )
    .bind(now_ms)
    .bind(window_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Marks a closed window settled if every instruction it has is confirmed.
/// False when it was not closed or one is not confirmed.
pub async fn settle_if_confirmed(
    conn: &mut Connection,
    window_id: &str,
    now_ms: i64,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE hub_windows SET state = 'settled', settled_at_ms = $1 \
         WHERE id = $2 AND state = 'closed' AND NOT EXISTS (SELECT 1 FROM \
         hub_settlement_instructions i WHERE i.window_id = $2 AND i.state <> 'confirmed')",
    )
    .bind(now_ms)
    .bind(window_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// 7. A settled window's instructions are all confirmed, and an
///    instruction is posted to the ledger exactly when it is confirmed.
pub(crate) async fn check(conn: &mut Connection, v: &mut ledger::Verification) -> Result<()> {
    let unconfirmed = sqlx::query(
        "SELECT i.id, i.window_id, i.state FROM hub_settlement_instructions i \
         JOIN hub_windows w ON w.id = i.window_id \
         WHERE w.state = 'settled' AND i.state <> 'confirmed'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in unconfirmed {
        let id: String = row.try_get("id")?;
        let window: String = row.try_get("window_id")?;
        let state: String = row.try_get("state")?;
        v.problem(format!(
            "hub window {window} settled with instruction {id} {state}"
        ));
    }
    let wrong = sqlx::query(
        "SELECT i.id, i.state FROM hub_settlement_instructions i \
         LEFT JOIN ledger_transfers t ON t.id = i.id \
         WHERE (i.state = 'confirmed') <> (t.id IS NOT NULL)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in wrong {
        let id: String = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        v.problem(format!(
            "settlement instruction {id} ({state}) posted wrongly"
        ));
    }
    Ok(())
}

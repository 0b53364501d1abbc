//! Settlement that moves money. Closing a window writes an instruction per
//! non-zero net position; settling sends each to the settlement bank as a
//! pacs.009 (FinancialInstitutionCreditTransfer) and records the bank's
//! confirmation, posting the position against the settlement bank's
//! account. An instruction the bank does not confirm is tried again, a
//! few times per settle and [`ATTEMPTS_MAX`] times in all, then failed and
//! reported, until an operator retries it; the window is settled only once
//! every instruction is confirmed.
//!
//! [`SimulatedSettlementBank`] is the only bank here: an honest simulator
//! behind the interface a real connector would implement.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use facepay_store::hub::Window;
use facepay_store::hub_settlement::{self as records, Instruction, InstructionState};
use facepay_store::{StoreError, audit};
use quick_xml::escape::escape;
use thiserror::Error;

use crate::BoxFuture;
use crate::iso20022::{amount, timestamp};
use crate::service::{Hub, HubError};

pub const PACS_009: &str = "pacs.009.001.08";
/// The longest the bank gets to answer one instruction.
pub const BANK_CALL_MS: u64 = 10_000;
/// Tries per instruction in one settle.
pub const TRIES_PER_SETTLE: i64 = 2;
/// Tries per instruction in all: past them it fails and an operator must
/// see to it.
pub const ATTEMPTS_MAX: i64 = 6;
/// The hub's own account at the settlement bank: debtors pay into it,
/// creditors are paid from it.
pub const HUB_SETTLEMENT_ACCOUNT: &str = "hub";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BankError {
    #[error("the settlement bank refused: {0}")]
    Refused(String),
    #[error("the settlement bank did not answer in time")]
    Timeout,
}

/// The bank that holds the members' settlement accounts.
pub trait SettlementBank: Send + Sync {
    fn id(&self) -> &str;
    /// Sends an instruction (its id, and `message`, its pacs.009): the
    /// bank's reference once it moved the money. The same id again is the
    /// same instruction, never a second movement.
    fn submit<'a>(
        &'a self,
        instruction_id: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<String, BankError>>;
}

/// A window after a settle: settled or not, and each instruction.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub window: Window,
    pub instructions: Vec<Instruction>,
}

/// The instruction as a pacs.009: the debtor's settlement account pays the
/// creditor's, one of them the hub's own.
pub fn pacs009(i: &Instruction, bank: &str) -> String {
    let (debtor, creditor) = if i.net_minor > 0 {
        (i.settlement_account.as_str(), HUB_SETTLEMENT_ACCOUNT)
    } else {
        (HUB_SETTLEMENT_ACCOUNT, i.settlement_account.as_str())
    };
    let party = |id: &str| {
        format!(
            "<FinInstnId><Othr><Id>{}</Id></Othr></FinInstnId>",
            escape(id)
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{PACS_009}\"><FICdtTrf>\
         <GrpHdr><MsgId>{id}</MsgId><CreDtTm>{created}</CreDtTm><NbOfTxs>1</NbOfTxs>\
         <SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>\
         <CdtTrfTxInf><PmtId><InstrId>{id}</InstrId><EndToEndId>{window}</EndToEndId></PmtId>\
         <IntrBkSttlmAmt Ccy=\"{ccy}\">{amt}</IntrBkSttlmAmt>\
         <InstgAgt>{instructing}</InstgAgt><InstdAgt>{instructed}</InstdAgt>\
         <Dbtr>{dbtr}</Dbtr><Cdtr>{cdtr}</Cdtr></CdtTrfTxInf></FICdtTrf></Document>",
        id = escape(&i.id),
        created = timestamp(i.created_at_ms),
        window = escape(&i.window_id),
        ccy = escape(&i.currency),
        amt = amount(&i.currency, i.net_minor.abs()),
        instructing = party(HUB_SETTLEMENT_ACCOUNT),
        instructed = party(bank),
        dbtr = party(debtor),
        cdtr = party(creditor),
    )
}

/// How the simulated bank misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankFailure {
    None,
    /// Refuses the first `n` submissions of every instruction.
    RefuseFirst(u32),
    /// Refuses every submission.
    RefuseAll,
}

/// A simulated settlement bank: confirms an instruction by giving it a
/// reference, the same one on a retry; moves no money anywhere.
pub struct SimulatedSettlementBank {
    failure: BankFailure,
    /// Submissions seen per instruction, and the reference once confirmed.
    seen: Mutex<HashMap<String, (u32, Option<String>)>>,
}

/// Instructions the simulator remembers: far past a window's positions.
const SIMULATED_INSTRUCTIONS_MAX: usize = 100_000;

impl SimulatedSettlementBank {
    pub const ID: &'static str = "settlement-bank.sim";

    pub fn new(failure: BankFailure) -> Self {
        Self {
            failure,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn answer(&self, instruction_id: &str) -> Result<String, BankError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= SIMULATED_INSTRUCTIONS_MAX && !seen.contains_key(instruction_id) {
            return Err(BankError::Refused("the simulator is full".into()));
        }
        let entry = seen.entry(instruction_id.to_owned()).or_insert((0, None));
        entry.0 += 1;
        if let Some(reference) = &entry.1 {
            return Ok(reference.clone());
        }
        let refused = match self.failure {
            BankFailure::None => false,
            BankFailure::RefuseFirst(n) => entry.0 <= n,
            BankFailure::RefuseAll => true,
        };
        if refused {
            return Err(BankError::Refused("account temporarily unavailable".into()));
        }
        let reference = format!("sim-{instruction_id}");
        entry.1 = Some(reference.clone());
        Ok(reference)
    }

    /// How many times the instruction was submitted.
    pub fn submissions(&self, instruction_id: &str) -> u32 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(instruction_id).map_or(0, |(n, _)| *n)
    }
}

impl SettlementBank for SimulatedSettlementBank {
    fn id(&self) -> &str {
        Self::ID
    }

    fn submit<'a>(
        &'a self,
        instruction_id: &'a str,
        _message: &'a str,
    ) -> BoxFuture<'a, Result<String, BankError>> {
        Box::pin(async move { self.answer(instruction_id) })
    }
}

async fn submit_once(bank: &dyn SettlementBank, i: &Instruction) -> Result<String, BankError> {
    let message = pacs009(i, bank.id());
    tokio::time::timeout(
        Duration::from_millis(BANK_CALL_MS),
        bank.submit(&i.id, &message),
    )
    .await
    .unwrap_or(Err(BankError::Timeout))
}

impl Hub {
    /// Sends a closed window's pending instructions to the settlement bank
    /// and records what it confirmed; the window is settled when every
    /// instruction is. Settling a window still closed retries what is
    /// pending; a settled one is refused as not closed.
    pub async fn settle_window(&self, id: &str, now_ms: i64) -> Result<Settlement, HubError> {
        let mut conn = self.store().acquire().await?;
        let window = facepay_store::hub::window(&mut conn, id)
            .await?
            .ok_or(HubError::UnknownWindow)?;
        if window.state != "closed" {
            return Err(HubError::WindowNotClosed);
        }
        let instructions = records::instructions(&mut conn, id).await?;
        drop(conn);
        let pending: Vec<_> = instructions
            .into_iter()
            .filter(|i| i.state == InstructionState::Pending)
            .collect();
        if !pending.is_empty() {
            let bank = self.settlement_bank().ok_or(HubError::NoSettlementBank)?;
            for i in &pending {
                self.settle_instruction(bank, i, now_ms).await?;
            }
        }
        let mut conn = self.store().acquire().await?;
        records::settle_if_confirmed(&mut conn, id, now_ms).await?;
        let window = facepay_store::hub::window(&mut conn, id)
            .await?
            .ok_or(HubError::UnknownWindow)?;
        let instructions = records::instructions(&mut conn, id).await?;
        Ok(Settlement {
            window,
            instructions,
        })
    }

    /// An operator (`actor`, written to the audit log) who has seen to why
    /// the bank refused gives a closed window's failed instructions their
    /// attempts again, then settles it.
    pub async fn retry_settlement(
        &self,
        actor: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Settlement, HubError> {
        let mut tx = self.store().begin().await?;
        let window = facepay_store::hub::window(&mut tx, id)
            .await?
            .ok_or(HubError::UnknownWindow)?;
        if window.state != "closed" {
            return Err(HubError::WindowNotClosed);
        }
        records::retry_failed(&mut tx, id, now_ms).await?;
        audit::append(&mut tx, now_ms, actor, "hub_settlement_retried", id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.settle_window(id, now_ms).await
    }

    /// Tries one instruction up to [`TRIES_PER_SETTLE`] times; each
    /// refusal is counted, and the last allowed one fails it.
    async fn settle_instruction(
        &self,
        bank: &dyn SettlementBank,
        i: &Instruction,
        now_ms: i64,
    ) -> Result<(), HubError> {
        for _ in 0..TRIES_PER_SETTLE {
            match submit_once(bank, i).await {
                Ok(reference) => {
                    let mut tx = self.store().begin().await?;
                    records::confirm(&mut tx, i, &reference, now_ms).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(());
                }
                Err(e) => {
                    let mut conn = self.store().acquire().await?;
                    let state = records::attempt_failed(
                        &mut conn,
                        &i.id,
                        &e.to_string(),
                        ATTEMPTS_MAX,
                        now_ms,
                    )
                    .await?;
                    if state == InstructionState::Failed {
                        tracing::error!(instruction = %i.id, window = %i.window_id, error = %e, "a settlement instruction failed for good; an operator must see to it");
                        return Ok(());
                    }
                    tracing::warn!(instruction = %i.id, error = %e, "the settlement bank did not confirm; trying again");
                }
            }
        }
        Ok(())
    }
}

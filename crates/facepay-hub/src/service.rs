//! The hub's flows over its member networks, its FX desk and the store:
//! a QR payment either way (quote, then pay with an idempotency key), a
//! cardless cash withdrawal (a one-time code, a dispense, a confirmation),
//! the sweep that finishes what an interrupted request left, and the
//! settlement windows.
//!
//! Every transfer is written (`pending`) before any network is called, so a
//! crash leaves a row for the sweep to finish: it asks the payee's network
//! whether it paid, and commits or reverses both sides accordingly.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::members;
use crate::screening::Screening;
use crate::settlement::SettlementBank;

use facepay_fx::{Desk, FxError, Posted};
use facepay_money::Currency;
use facepay_qr::QrError;
pub use facepay_qr::{ScannedQr, Warning as QrWarning};
use facepay_store::hub::{self as records, CodeRefusal, Kind, Quote, Refusal, State, Transfer};
use facepay_store::{Store, StoreError, ids};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::transfer::{self, Outcome, Side};
use crate::{AliasKind, LegState, Network, NetworkError, Party};

/// Each network pays its ATM operators through this account.
pub const ATM_ACCOUNT: &str = "atm";
/// A cash code's digits: short enough to key in at an ATM.
pub const CASH_CODE_DIGITS: u32 = 8;
/// A withdrawal reserved for this long without the ATM's confirmation is
/// reversed by the sweep: the ATM did not dispense, or cannot say so.
pub const CASH_CONFIRM_MS: i64 = 2 * 60_000;
/// A transfer left `pending` (or `dispensed`) this long was interrupted:
/// the sweep finishes it. Well over the longest a request can hold one.
pub const PENDING_STALE_MS: i64 = 5 * 60_000;
const _: () = assert!(
    PENDING_STALE_MS as u64 > 2 * transfer::CALLS_MAX * transfer::NETWORK_CALL_MS,
    "the sweep must not take a transfer a request may still be working on"
);
/// Quotes and cash codes that expired unused are kept this long, then purged.
const PURGE_AFTER_MS: i64 = 24 * 3_600_000;
/// Transfers the sweep finishes per state per run.
const SWEEP_BATCH: i64 = 100;
/// Transfers a window report lists at most (its costs cover them all).
pub const REPORT_TRANSFERS_MAX: usize = 10_000;
/// Transfers read per query for a report.
const REPORT_PAGE: i64 = 1_000;
/// Longest QR payload taken: as much as a QR code symbol holds.
pub const PAYLOAD_BYTES_MAX: usize = facepay_qr::PAYLOAD_CHARS_MAX;
/// Longest idempotency key and account reference taken.
pub const KEY_BYTES_MAX: usize = 128;

#[derive(Debug, Error)]
pub enum HubError {
    #[error("no member network {0:?}")]
    UnknownNetwork(String),
    #[error("the QR code is not valid: {0}")]
    Qr(#[from] QrError),
    #[error("the QR code names no member network with a merchant id")]
    NoMemberNetwork,
    #[error("the QR code's currency is not its network's")]
    CurrencyMismatch,
    #[error("the amount: {0}")]
    BadAmount(String),
    #[error("{0}")]
    Network(#[from] NetworkError),
    #[error("{0}")]
    Fx(#[from] FxError),
    #[error("no such quote")]
    UnknownQuote,
    #[error("the quote expired; ask for a new one")]
    QuoteExpired,
    #[error("the quote was used already")]
    QuoteUsed,
    #[error("this idempotency key was used for another quote")]
    KeyReused,
    #[error("no such transfer")]
    UnknownTransfer,
    #[error("no such cash code")]
    CodeUnknown,
    #[error("this cash code was used already")]
    CodeUsed,
    #[error("this cash code expired")]
    CodeExpired,
    #[error("this cash code is for another network or amount")]
    CodeMismatch,
    #[error("the withdrawal is {0}, not waiting for a dispense")]
    NotReserved(&'static str),
    #[error("no settlement window is open")]
    NoOpenWindow,
    #[error("the window is not closed")]
    WindowNotClosed,
    #[error("no such window")]
    UnknownWindow,
    #[error("{0} is too long")]
    TooLong(&'static str),
    #[error("this key is not a member network's")]
    KeyInvalid,
    #[error("{0} is not a member of the hub")]
    UnknownMember(String),
    #[error("the member's terms: {0}")]
    BadMember(String),
    #[error(
        "{network} may owe {exposure_minor} {currency} (minor units) with this payment, past its limit of {limit_minor} (its net debit cap or funds)"
    )]
    MemberCap {
        network: String,
        currency: String,
        exposure_minor: i64,
        limit_minor: i64,
    },
    #[error(
        "only {free_minor} {currency} (minor units) of the member's funds are free of what it may owe"
    )]
    MemberFunds { currency: String, free_minor: i64 },
    #[error("too many requests from this member; try again in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: i64 },
    #[error("the transfer is {0}, not held")]
    NotHeld(&'static str),
    #[error("no settlement bank is configured")]
    NoSettlementBank,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HubError {
    /// A stable machine code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            HubError::UnknownNetwork(_) => "hub_unknown_network",
            HubError::Qr(e) => e.code(),
            HubError::NoMemberNetwork => "hub_no_member_network",
            HubError::CurrencyMismatch => "hub_currency_mismatch",
            HubError::BadAmount(_) => "hub_bad_amount",
            HubError::Network(e) => e.code(),
            HubError::Fx(e) => e.code(),
            HubError::UnknownQuote => "hub_unknown_quote",
            HubError::QuoteExpired => "hub_quote_expired",
            HubError::QuoteUsed => "hub_quote_used",
            HubError::KeyReused => "idempotency_key_reused",
            HubError::UnknownTransfer => "hub_unknown_transfer",
            HubError::CodeUnknown => "atm_code_unknown",
            HubError::CodeUsed => "atm_code_used",
            HubError::CodeExpired => "atm_code_expired",
            HubError::CodeMismatch => "atm_code_mismatch",
            HubError::NotReserved(_) => "hub_transfer_not_reserved",
            HubError::NoOpenWindow => "hub_no_open_window",
            HubError::WindowNotClosed => "hub_window_not_closed",
            HubError::UnknownWindow => "hub_unknown_window",
            HubError::TooLong(_) => "hub_input_too_long",
            HubError::KeyInvalid => "hub_key_invalid",
            HubError::UnknownMember(_) => "hub_unknown_member",
            HubError::BadMember(_) => "hub_bad_member",
            HubError::MemberCap { .. } => "hub_member_cap",
            HubError::MemberFunds { .. } => "hub_member_funds",
            HubError::RateLimited { .. } => "hub_rate_limited",
            HubError::NotHeld(_) => "hub_transfer_not_held",
            HubError::NoSettlementBank => "hub_no_settlement_bank",
            HubError::Store(_) => "store_error",
        }
    }
}

impl From<Refusal> for HubError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::UnknownQuote => HubError::UnknownQuote,
            Refusal::Expired => HubError::QuoteExpired,
            Refusal::Used => HubError::QuoteUsed,
            Refusal::KeyReused => HubError::KeyReused,
        }
    }
}

/// A cash code as the user receives it: the code is shown once and the
/// hub keeps only its hash.
#[derive(Debug, Clone)]
pub struct CashCode {
    pub code: String,
    pub quote: Quote,
}

/// What the sweep finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub committed: usize,
    pub reversed: usize,
}

pub struct Hub {
    store: Store,
    networks: HashMap<String, Arc<dyn Network>>,
    desk: RwLock<Desk>,
    screening: Option<Arc<dyn Screening>>,
    settlement_bank: Option<Arc<dyn SettlementBank>>,
}

/// The amount to quote, in the code's currency: the one the code fixes, or
/// the payer's for a static code.
fn amount_text<'a>(fixed: Option<&'a str>, given: Option<&'a str>) -> Result<&'a str, HubError> {
    match (fixed, given) {
        (Some(fixed), Some(given)) if fixed != given => Err(HubError::BadAmount(
            "the code fixes the amount; send none or the same".into(),
        )),
        (Some(fixed), _) => Ok(fixed),
        (None, Some(given)) => Ok(given),
        (None, None) => Err(HubError::BadAmount(
            "a static code needs the amount from the payer".into(),
        )),
    }
}

fn bounded(text: &str, max: usize, what: &'static str) -> Result<(), HubError> {
    if text.len() > max {
        return Err(HubError::TooLong(what));
    }
    Ok(())
}

impl Hub {
    /// A hub charging `fee_bps` on each principal, with no members yet.
    pub fn new(store: Store, fee_bps: u32) -> Self {
        Self {
            store,
            networks: HashMap::new(),
            desk: RwLock::new(Desk::new(fee_bps)),
            screening: None,
            settlement_bank: None,
        }
    }

    /// Screens every QR payment before anything is reserved.
    pub fn set_screening(&mut self, screening: Arc<dyn Screening>) {
        self.screening = Some(screening);
    }

    /// The bank closed windows are settled through.
    pub fn set_settlement_bank(&mut self, bank: Arc<dyn SettlementBank>) {
        self.settlement_bank = Some(bank);
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn screening(&self) -> Option<&dyn Screening> {
        self.screening.as_deref()
    }

    pub(crate) fn settlement_bank(&self) -> Option<&dyn SettlementBank> {
        self.settlement_bank.as_deref()
    }

    pub fn add_network(&mut self, network: Arc<dyn Network>) {
        self.networks.insert(network.id().to_owned(), network);
    }

    pub fn network(&self, id: &str) -> Result<&dyn Network, HubError> {
        self.networks
            .get(id)
            .map(|n| n.as_ref())
            .ok_or_else(|| HubError::UnknownNetwork(id.to_owned()))
    }

    /// The member network whose API key this is.
    pub async fn authenticate(&self, key: &str) -> Result<String, HubError> {
        bounded(key, KEY_BYTES_MAX, "the key")?;
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        let mut conn = self.store.acquire().await?;
        records::member_by_key_hash(&mut conn, &hash)
            .await?
            .filter(|network| self.networks.contains_key(network))
            .ok_or(HubError::KeyInvalid)
    }

    pub async fn quote_by_id(&self, id: &str) -> Result<Quote, HubError> {
        let mut conn = self.store.acquire().await?;
        records::quote(&mut conn, id)
            .await?
            .ok_or(HubError::UnknownQuote)
    }

    /// An FX provider's rate for a corridor.
    pub fn post_rate(&self, rate: Posted) -> Result<(), HubError> {
        // A poisoned lock only means a panic elsewhere; the book itself is
        // changed whole or not at all.
        let mut desk = self.desk.write().unwrap_or_else(|e| e.into_inner());
        Ok(desk.post(rate)?)
    }

    /// A quote for paying the merchant a QR code names, from
    /// `payer_account` in `payer_network`. A static code takes the amount
    /// from the payer (`amount`, in the code's currency, such as "55000").
    pub async fn quote_qr(
        &self,
        payer_network: &str,
        payer_account: &str,
        payload: &str,
        amount: Option<&str>,
        now_ms: i64,
    ) -> Result<Quote, HubError> {
        let (quote, _) = self
            .quote_scanned(payer_network, payer_account, payload, amount, now_ms)
            .await?;
        Ok(quote)
    }

    /// `quote_qr`, with the code as read: its scheme, the name to show the
    /// payer and what its scheme allowed that EMVCo's base rules do not.
    pub async fn quote_scanned(
        &self,
        payer_network: &str,
        payer_account: &str,
        payload: &str,
        amount: Option<&str>,
        now_ms: i64,
    ) -> Result<(Quote, ScannedQr), HubError> {
        bounded(payload, PAYLOAD_BYTES_MAX, "the QR payload")?;
        let scanned = facepay_qr::parse(payload)?;
        let qr = &scanned.qr;
        let (payee_network, merchant) = self.payee_of(&scanned)?;
        let currency = self.network(&payee_network)?.currency();
        if qr.currency_numeric != format!("{:03}", currency.numeric()) {
            return Err(HubError::CurrencyMismatch);
        }
        let text = amount_text(qr.amount.as_deref(), amount)?;
        let destination_minor = currency
            .parse_amount(text)
            .map_err(|e| HubError::BadAmount(e.to_string()))?;
        let reference = qr
            .additional
            .as_ref()
            .and_then(|a| a.bill_number.clone().or_else(|| a.reference_label.clone()));
        let quote = self
            .quote(
                Kind::Qr,
                (payer_network, payer_account),
                (&payee_network, &merchant),
                destination_minor,
                reference,
                now_ms,
            )
            .await?;
        Ok((quote, scanned))
    }

    /// The payee `alias` names in `payee_network`, asked of that network on
    /// behalf of `payer_network`: its account, and the name the payer sees
    /// to confirm before asking for a quote ([`Hub::quote_account`]).
    pub async fn lookup_alias(
        &self,
        payer_network: &str,
        (payee_network, kind, alias): (&str, AliasKind, &str),
        now_ms: i64,
    ) -> Result<Party, HubError> {
        bounded(alias, KEY_BYTES_MAX, "the alias")?;
        self.network(payer_network)?;
        let payee_net = self.network(payee_network)?;
        self.admit_request(payer_network, now_ms).await?;
        let looked_up = tokio::time::timeout(
            Duration::from_millis(transfer::NETWORK_CALL_MS),
            payee_net.lookup_alias(kind, alias),
        )
        .await
        .unwrap_or(Err(NetworkError::Timeout))?;
        Ok(looked_up)
    }

    /// A quote for paying `payee_account` in `payee_network` (as an alias
    /// named it) `amount` in the payee's currency, such as "350.00".
    pub async fn quote_account(
        &self,
        payer: (&str, &str),
        (payee_network, payee_account): (&str, &str),
        amount: &str,
        now_ms: i64,
    ) -> Result<Quote, HubError> {
        bounded(payee_account, KEY_BYTES_MAX, "the payee's account")?;
        let currency = self.network(payee_network)?.currency();
        let destination_minor = currency
            .parse_amount(amount)
            .map_err(|e| HubError::BadAmount(e.to_string()))?;
        self.quote(
            Kind::Qr,
            payer,
            (payee_network, payee_account),
            destination_minor,
            None,
            now_ms,
        )
        .await
    }

    /// The member network that pays the code's merchant, and the merchant's
    /// id there: the account the code's scheme names if its network is a
    /// member, else the first member network's template that names a
    /// merchant (01).
    fn payee_of(&self, scanned: &ScannedQr) -> Result<(String, String), HubError> {
        if let Some(a) = scanned
            .merchant_account
            .as_ref()
            .filter(|a| self.networks.contains_key(&a.network))
        {
            return Ok((a.network.clone(), a.id.clone()));
        }
        scanned
            .qr
            .accounts
            .iter()
            .find_map(|a| match a {
                facepay_qr::Account::Template { network, .. }
                    if self.networks.contains_key(network) =>
                {
                    a.sub(1)
                        .map(|merchant| (network.clone(), merchant.to_owned()))
                }
                _ => None,
            })
            .ok_or(HubError::NoMemberNetwork)
    }

    /// A quote for `kind`. The payer's account is its own network's to
    /// check (at reserve): the hub shows payers to no one.
    async fn quote(
        &self,
        kind: Kind,
        (payer_network, payer_account): (&str, &str),
        (payee_network, payee_account): (&str, &str),
        destination_minor: i64,
        reference: Option<String>,
        now_ms: i64,
    ) -> Result<Quote, HubError> {
        bounded(payer_account, KEY_BYTES_MAX, "the payer's account")?;
        bounded(payee_network, KEY_BYTES_MAX, "the network id")?;
        let payer_net = self.network(payer_network)?;
        let payee_net = self.network(payee_network)?;
        self.admit_request(payer_network, now_ms).await?;
        let payee = payee_net.resolve(payee_account).await?;
        payee_net.quote(destination_minor, now_ms).await?;
        let mut fx = {
            let desk = self.desk.read().unwrap_or_else(|e| e.into_inner());
            desk.quote(
                payer_net.currency(),
                payee_net.currency(),
                destination_minor,
                now_ms,
            )?
        };
        // The payer's network may take whole units only: the payer pays up
        // to the next one, and the difference is the hub's, shown as fee.
        let unit = payer_net.unit_minor();
        assert!(unit > 0);
        let rounding = (unit - fx.source_minor % unit) % unit;
        fx.source_minor += rounding;
        fx.fee_minor += rounding;
        payer_net.quote(fx.source_minor, now_ms).await?;
        let quote = Quote {
            id: ids::new("hq")?,
            kind,
            provider: fx.provider,
            payer_network: payer_network.to_owned(),
            payer_account: payer_account.to_owned(),
            payee_network: payee_network.to_owned(),
            payee_account: payee_account.to_owned(),
            payee_name: payee.name,
            source_currency: fx.source.code().to_owned(),
            source_minor: fx.source_minor,
            fee_minor: fx.fee_minor,
            destination_currency: fx.destination.code().to_owned(),
            destination_minor: fx.destination_minor,
            mid_rate: fx.mid_rate.to_string(),
            customer_rate: fx.customer_rate.to_string(),
            reference,
            expires_at_ms: fx.expires_at_ms,
            created_at_ms: now_ms,
        };
        let mut conn = self.store.acquire().await?;
        records::insert_quote(&mut conn, &quote).await?;
        Ok(quote)
    }

    /// Pays a quote: once per quote, and once per (requester, key). A retry
    /// answers the transfer as it stands.
    pub async fn pay(
        &self,
        requester: &str,
        idempotency_key: &str,
        quote_id: &str,
        now_ms: i64,
    ) -> Result<Transfer, HubError> {
        bounded(idempotency_key, KEY_BYTES_MAX, "the idempotency key")?;
        let (t, fresh) = match self
            .begin(Kind::Qr, requester, idempotency_key, quote_id, now_ms)
            .await?
        {
            Some(begun) => begun,
            None => return Err(HubError::QuoteUsed),
        };
        if !fresh {
            return Ok(t);
        }
        if self.hold_on_hit(&t, now_ms).await? {
            return self.transfer(&t.id).await;
        }
        let (payer_net, payer, payee_net, payee) = self.route(&t)?;
        let outcome =
            transfer::transfer(&t.id, (payer_net, &payer), (payee_net, &payee), now_ms).await;
        self.record(&t, outcome, &[State::Pending], now_ms).await
    }

    /// Takes up a quote for a transfer in its own transaction. A request
    /// that lost a race to its own retry (same requester, key and quote)
    /// gets the retry's transfer; None when the quote went to another.
    async fn begin(
        &self,
        kind: Kind,
        requester: &str,
        key: &str,
        quote_id: &str,
        now_ms: i64,
    ) -> Result<Option<(Transfer, bool)>, HubError> {
        let mut tx = self.store.begin().await?;
        let begun = match records::begin(&mut tx, kind, requester, key, quote_id, now_ms).await {
            Ok(begun) => begun,
            Err(StoreError::Duplicate(_)) => Err(Refusal::Used),
            Err(e) => return Err(e.into()),
        };
        match begun {
            Ok(begun) => {
                if begun.1 {
                    // Refused here, the transaction is dropped: no transfer
                    // is left and the quote stays unused.
                    members::admit_transfer(&mut tx, &begun.0.quote).await?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(Some(begun))
            }
            Err(Refusal::Used) => {
                drop(tx);
                let mut conn = self.store.acquire().await?;
                match records::transfer_by_key(&mut conn, requester, key).await? {
                    Some(t) if t.quote.id == quote_id => Ok(Some((t, false))),
                    Some(_) => Err(HubError::KeyReused),
                    None => Ok(None),
                }
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    pub(crate) fn route(
        &self,
        t: &Transfer,
    ) -> Result<(&dyn Network, Side, &dyn Network, Side), HubError> {
        let q = &t.quote;
        Ok((
            self.network(&q.payer_network)?,
            Side {
                account: q.payer_account.clone(),
                amount_minor: q.source_minor,
            },
            self.network(&q.payee_network)?,
            Side {
                account: q.payee_account.clone(),
                amount_minor: q.destination_minor,
            },
        ))
    }

    /// Writes what the networks did, and answers the transfer as stored.
    pub(crate) async fn record(
        &self,
        t: &Transfer,
        outcome: Outcome,
        from: &[State],
        now_ms: i64,
    ) -> Result<Transfer, HubError> {
        let mut tx = self.store.begin().await?;
        match &outcome {
            Outcome::Committed | Outcome::PayerCommitPending(_) => {
                let confirmed = outcome == Outcome::Committed;
                if !records::commit(&mut tx, t, confirmed, now_ms).await? {
                    // Claims keep two workers off one transfer, so this is
                    // a bug: the money moved in the networks; say so loudly
                    // and write nothing.
                    tracing::error!(transfer = %t.id, "a paid transfer was moved by another worker");
                    drop(tx);
                    return self.transfer(&t.id).await;
                }
            }
            Outcome::Unknown(e) => {
                tracing::warn!(transfer = %t.id, error = %e, "the payee's network did not say whether it paid; the sweep asks again");
            }
            Outcome::Reversed(e) => {
                records::set_state(
                    &mut tx,
                    &t.id,
                    from,
                    State::Reversed,
                    Some(e.code()),
                    now_ms,
                )
                .await?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.transfer(&t.id).await
    }

    pub async fn transfer(&self, id: &str) -> Result<Transfer, HubError> {
        let mut conn = self.store.acquire().await?;
        records::transfer(&mut conn, id)
            .await?
            .ok_or(HubError::UnknownTransfer)
    }

    /// A one-time code for `amount_minor` of cash at any ATM of
    /// `atm_network`, paid from `payer_account`; good until its quote
    /// expires.
    pub async fn issue_cash_code(
        &self,
        (payer_network, payer_account): (&str, &str),
        atm_network: &str,
        amount_minor: i64,
        now_ms: i64,
    ) -> Result<CashCode, HubError> {
        let quote = self
            .quote(
                Kind::Atm,
                (payer_network, payer_account),
                (atm_network, ATM_ACCOUNT),
                amount_minor,
                None,
                now_ms,
            )
            .await?;
        let mut conn = self.store.acquire().await?;
        // A fresh code colliding with a live one is refused by the key; a
        // few draws make that vanishingly rare.
        for _ in 0..3 {
            let code = cash_code()?;
            match records::insert_atm_code(
                &mut conn,
                &code_hash(&code),
                &quote.id,
                quote.expires_at_ms,
                now_ms,
            )
            .await
            {
                Ok(()) => return Ok(CashCode { code, quote }),
                Err(StoreError::Duplicate(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Refused("no free cash code; try again".into()).into())
    }

    /// An ATM of `atm_network` presents a code for `amount_minor`: the code
    /// is used up and both sides reserved. The ATM dispenses only on an
    /// answer in state `reserved`, then confirms.
    pub async fn withdraw_cash(
        &self,
        atm_network: &str,
        code: &str,
        amount_minor: i64,
        now_ms: i64,
    ) -> Result<Transfer, HubError> {
        bounded(code, KEY_BYTES_MAX, "the cash code")?;
        self.admit_request(atm_network, now_ms).await?;
        let hash = code_hash(code);
        let mut tx = self.store.begin().await?;
        let quote = match records::use_atm_code(&mut tx, &hash, now_ms).await? {
            Ok(quote) => quote,
            Err(CodeRefusal::Used) => {
                drop(tx);
                // The same ATM asking again while its withdrawal is open
                // gets it back; anything else is a reused code.
                let mut conn = self.store.acquire().await?;
                return match records::transfer_by_key(&mut conn, atm_network, &hash).await? {
                    Some(t) if matches!(t.state, State::Pending | State::Reserved) => Ok(t),
                    _ => Err(HubError::CodeUsed),
                };
            }
            Err(CodeRefusal::Unknown) => return Err(HubError::CodeUnknown),
            Err(CodeRefusal::Expired) => return Err(HubError::CodeExpired),
        };
        if quote.payee_network != atm_network || quote.destination_minor != amount_minor {
            // The code is spent all the same: a member may not learn which
            // codes are live by trying amounts and networks.
            tx.commit().await.map_err(StoreError::from)?;
            return Err(HubError::CodeMismatch);
        }
        let (t, _) =
            records::begin(&mut tx, Kind::Atm, atm_network, &hash, &quote.id, now_ms).await??;
        // Past its payer's cap, the code stays unused for a later try.
        members::admit_transfer(&mut tx, &t.quote).await?;
        tx.commit().await.map_err(StoreError::from)?;
        let (payer_net, payer, payee_net, payee) = self.route(&t)?;
        let prepared =
            transfer::prepare(&t.id, (payer_net, &payer), (payee_net, &payee), now_ms).await;
        let mut conn = self.store.acquire().await?;
        match prepared {
            Ok(()) => {
                records::set_state(
                    &mut conn,
                    &t.id,
                    &[State::Pending],
                    State::Reserved,
                    None,
                    now_ms,
                )
                .await?
            }
            Err(e) => {
                records::set_state(
                    &mut conn,
                    &t.id,
                    &[State::Pending],
                    State::Reversed,
                    Some(e.code()),
                    now_ms,
                )
                .await?
            }
        };
        drop(conn);
        self.transfer(&t.id).await
    }

    /// The ATM says whether it dispensed: the transfer commits on both
    /// sides, or reverses on both.
    pub async fn confirm_cash(
        &self,
        atm_network: &str,
        transfer_id: &str,
        dispensed: bool,
        now_ms: i64,
    ) -> Result<Transfer, HubError> {
        let t = self.transfer(transfer_id).await?;
        if t.kind != Kind::Atm || t.quote.payee_network != atm_network {
            return Err(HubError::UnknownTransfer);
        }
        // Taking the transfer out of `reserved` first means the sweep and a
        // second confirmation cannot act on it at the same time; a
        // dispense is written down before any network hears of it, so
        // nothing can reverse it afterwards.
        let next = if dispensed {
            State::Dispensed
        } else {
            State::Pending
        };
        let mut conn = self.store.acquire().await?;
        let claimed =
            records::set_state(&mut conn, &t.id, &[State::Reserved], next, None, now_ms).await?;
        drop(conn);
        if !claimed {
            return Err(HubError::NotReserved(t.state.as_str()));
        }
        let (payer_net, _, payee_net, _) = self.route(&t)?;
        let outcome = if dispensed {
            transfer::finish(&t.id, payer_net, payee_net, false).await
        } else {
            transfer::cancel(&t.id, payer_net, payee_net).await;
            Outcome::Reversed(NetworkError::Refused("not dispensed".into()))
        };
        self.record(&t, outcome, &[next], now_ms).await
    }

    /// Finishes what interrupted requests and silent ATMs left: a pending
    /// transfer commits if its payee was paid and reverses if not (and
    /// waits while its network cannot say); a dispensed withdrawal
    /// commits; a withdrawal never confirmed reverses; a payer's commit
    /// still owed is tried again. Each transfer is claimed first and a
    /// failure on one is logged, never stopping the others.
    pub async fn sweep(&self, now_ms: i64) -> Result<Swept, HubError> {
        let mut swept = Swept::default();
        let stale_before = now_ms - PENDING_STALE_MS;
        let batches = [
            (State::Pending, stale_before),
            (State::Dispensed, stale_before),
            (State::Reserved, now_ms - CASH_CONFIRM_MS),
            (State::PayerCommitPending, stale_before),
        ];
        for (state, before_ms) in batches {
            let mut conn = self.store.acquire().await?;
            let stale = records::stale(&mut conn, state, before_ms, SWEEP_BATCH).await?;
            drop(conn);
            for t in stale {
                if let Err(e) = self.finish_stale(&t, now_ms, &mut swept).await {
                    tracing::warn!(transfer = %t.id, error = %e, "the sweep could not finish a transfer; it tries again later");
                }
            }
        }
        let mut conn = self.store.acquire().await?;
        records::purge(&mut conn, now_ms - PURGE_AFTER_MS).await?;
        Ok(swept)
    }

    async fn finish_stale(
        &self,
        t: &Transfer,
        now_ms: i64,
        swept: &mut Swept,
    ) -> Result<(), HubError> {
        let mut conn = self.store.acquire().await?;
        // An unconfirmed withdrawal leaves `reserved` the way a
        // confirmation would, so the ATM's late answer finds it taken.
        let claimed = if t.state == State::Reserved {
            records::set_state(
                &mut conn,
                &t.id,
                &[State::Reserved],
                State::Pending,
                None,
                now_ms,
            )
            .await?
        } else {
            records::claim(&mut conn, &t.id, t.state, t.updated_at_ms, now_ms).await?
        };
        drop(conn);
        if !claimed {
            return Ok(());
        }
        let (payer_net, _, payee_net, _) = self.route(t)?;
        let (outcome, from) = match t.state {
            State::PayerCommitPending => {
                payer_net.commit(&t.id).await?;
                let mut conn = self.store.acquire().await?;
                records::payer_confirmed(&mut conn, &t.id, now_ms).await?;
                swept.committed += 1;
                return Ok(());
            }
            State::Dispensed => (
                transfer::finish(&t.id, payer_net, payee_net, false).await,
                State::Dispensed,
            ),
            State::Reserved => {
                transfer::cancel(&t.id, payer_net, payee_net).await;
                let reason = NetworkError::Refused("dispense not confirmed in time".into());
                (Outcome::Reversed(reason), State::Pending)
            }
            _ => match payee_net.status(&t.id).await {
                // The payee was paid before the interruption: the payer owes it.
                Ok(LegState::Committed) => (
                    transfer::finish(&t.id, payer_net, payee_net, true).await,
                    State::Pending,
                ),
                Ok(LegState::Reserved | LegState::Reversed)
                | Err(NetworkError::UnknownTransfer) => {
                    transfer::cancel(&t.id, payer_net, payee_net).await;
                    let reason = NetworkError::Refused("interrupted".into());
                    (Outcome::Reversed(reason), State::Pending)
                }
                Err(e) => (Outcome::Unknown(e), State::Pending),
            },
        };
        match outcome {
            Outcome::Reversed(_) => swept.reversed += 1,
            Outcome::Committed | Outcome::PayerCommitPending(_) => swept.committed += 1,
            Outcome::Unknown(_) => {}
        }
        self.record(t, outcome, &[from], now_ms).await?;
        Ok(())
    }

    /// Closes the open window and records each participant's net position.
    pub async fn close_window(&self, now_ms: i64) -> Result<records::Window, HubError> {
        let mut tx = self.store.begin().await?;
        let window = records::close_window(&mut tx, now_ms)
            .await?
            .ok_or(HubError::NoOpenWindow)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(window)
    }

    /// A closed or settled window's report: every participant's, or with
    /// `member`, that network's own positions and transfers.
    pub async fn report(
        &self,
        window_id: &str,
        member: Option<&str>,
    ) -> Result<crate::report::Report, HubError> {
        let mut conn = self.store.acquire().await?;
        let window = records::window(&mut conn, window_id)
            .await?
            .ok_or(HubError::UnknownWindow)?;
        if window.state == "open" {
            return Err(HubError::WindowNotClosed);
        }
        let positions = records::positions(&mut conn, window_id).await?;
        let mut report = crate::report::Report::new(window, &positions);
        if let Some(m) = member {
            report.positions.retain(|p| p.participant == m);
        }
        let concerns = |t: &Transfer| {
            member.is_none_or(|m| t.quote.payer_network == m || t.quote.payee_network == m)
        };
        // Costs cover every transfer, read a page at a time; the listing
        // stops at its bound.
        let mut after = String::new();
        loop {
            let page = records::window_transfers(&mut conn, window_id, &after, REPORT_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let page = page.into_iter().filter(|t| concerns(t)).collect();
            report.add(page, REPORT_TRANSFERS_MAX);
        }
        Ok(report)
    }
}

/// Eight random digits, drawn without bias.
fn cash_code() -> Result<String, HubError> {
    let modulus = 10u32.pow(CASH_CODE_DIGITS);
    let limit = u32::MAX - u32::MAX % modulus;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
        let n = u32::from_le_bytes(bytes);
        if n < limit {
            return Ok(format!(
                "{:0width$}",
                n % modulus,
                width = CASH_CODE_DIGITS as usize
            ));
        }
    }
}

/// Codes are kept hashed so that no query or log shows one. Eight digits
/// fall to a search, so a code's strength is its single use and its few
/// minutes of life, not the hash.
fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// The stored quote's currencies, for arithmetic.
pub(crate) fn currencies(q: &Quote) -> Option<(Currency, Currency)> {
    Some((
        Currency::from_code(&q.source_currency).ok()?,
        Currency::from_code(&q.destination_currency).ok()?,
    ))
}

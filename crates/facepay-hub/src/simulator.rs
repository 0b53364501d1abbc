//! Simulated payment networks, for tests and the demo: they keep accounts
//! and legs in memory and enforce rules like the real networks they stand
//! for, so the hub meets limits, closed hours and failures as it would in
//! the field. They are simulators; no real network is reached.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use facepay_money::{Currency, basis_points_of};

use crate::{
    AliasKind, BoxFuture, Direction, Leg, LegState, Network, NetworkError, NetworkQuote, Party,
};

/// Legs one simulator remembers at most.
pub const LEGS_MAX: usize = 100_000;

/// How a simulator misbehaves, to test the hub's reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    None,
    /// Reserves, then refuses every commit: the failure after reserve.
    OnCommit,
    /// Never answers a reserve in time.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub id: &'static str,
    pub currency: Currency,
    pub min_minor: i64,
    pub max_minor: i64,
    /// Amounts must be a multiple of this (100 for whole rupiah).
    pub unit_minor: i64,
    /// Local time is UTC plus this many minutes.
    pub utc_offset_min: i64,
    /// Closed from this minute of the local day to `closed_until_min`
    /// (a nightly cut-off); equal values mean always open.
    pub closed_from_min: i64,
    pub closed_until_min: i64,
    pub fee_bps: u32,
}

impl Rules {
    /// Korea: another Korean wallet network, won, open all day.
    pub fn korea() -> Self {
        Self {
            id: "kr.wallet.sim",
            currency: Currency::KRW,
            min_minor: 100,
            max_minor: 2_000_000,
            unit_minor: 1,
            utc_offset_min: 9 * 60,
            closed_from_min: 0,
            closed_until_min: 0,
            fee_bps: 0,
        }
    }

    /// Indonesia: a QRIS-like network in whole rupiah, at most 10 million.
    pub fn indonesia() -> Self {
        Self {
            id: "id.co.qris.sim",
            currency: Currency::IDR,
            min_minor: 1_000 * 100,
            max_minor: 10_000_000 * 100,
            unit_minor: 100,
            utc_offset_min: 7 * 60,
            closed_from_min: 0,
            closed_until_min: 0,
            fee_bps: 30,
        }
    }

    /// Vietnam: dong, closed for the nightly cut-off 23:00 to 00:30.
    pub fn vietnam() -> Self {
        Self {
            id: "vn.napas.sim",
            currency: Currency::VND,
            min_minor: 10_000,
            max_minor: 500_000_000,
            unit_minor: 1,
            utc_offset_min: 7 * 60,
            closed_from_min: 23 * 60,
            closed_until_min: 30,
            fee_bps: 20,
        }
    }

    /// Thailand: a PromptPay-like network in baht and satang.
    pub fn thailand() -> Self {
        Self {
            id: "th.promptpay.sim",
            currency: Currency::THB,
            min_minor: 100,
            max_minor: 50_000 * 100,
            unit_minor: 1,
            utc_offset_min: 7 * 60,
            closed_from_min: 0,
            closed_until_min: 0,
            fee_bps: 0,
        }
    }

    fn open_at(&self, now_ms: i64) -> bool {
        if self.closed_from_min == self.closed_until_min {
            return true;
        }
        let minute = (now_ms / 60_000 + self.utc_offset_min).rem_euclid(24 * 60);
        let closed = if self.closed_from_min < self.closed_until_min {
            (self.closed_from_min..self.closed_until_min).contains(&minute)
        } else {
            minute >= self.closed_from_min || minute < self.closed_until_min
        };
        !closed
    }

    fn check(&self, amount_minor: i64, now_ms: i64) -> Result<(), NetworkError> {
        if !(self.min_minor..=self.max_minor).contains(&amount_minor) {
            return Err(NetworkError::Limit);
        }
        if amount_minor % self.unit_minor != 0 {
            return Err(NetworkError::Decimals);
        }
        if !self.open_at(now_ms) {
            return Err(NetworkError::Closed);
        }
        Ok(())
    }
}

struct Account {
    name: String,
    balance_minor: i64,
}

struct State {
    accounts: HashMap<String, Account>,
    legs: HashMap<String, (Leg, LegState)>,
    aliases: HashMap<(AliasKind, String), String>,
}

/// A simulated network: accounts with balances, legs that reserve, commit
/// and reverse, and its rules.
pub struct SimulatedNetwork {
    rules: Rules,
    failure: Failure,
    state: Mutex<State>,
}

impl SimulatedNetwork {
    pub fn new(rules: Rules, failure: Failure) -> Self {
        Self {
            rules,
            failure,
            state: Mutex::new(State {
                accounts: HashMap::new(),
                legs: HashMap::new(),
                aliases: HashMap::new(),
            }),
        }
    }

    /// Opens an account (a wallet or a merchant) with a balance.
    pub fn open_account(&self, account: &str, name: &str, balance_minor: i64) {
        self.lock().accounts.insert(
            account.to_owned(),
            Account {
                name: name.to_owned(),
                balance_minor,
            },
        );
    }

    /// Registers `alias` for an account, as the network's proxy service
    /// would.
    pub fn add_alias(&self, kind: AliasKind, alias: &str, account: &str) {
        self.lock()
            .aliases
            .insert((kind, alias.to_owned()), account.to_owned());
    }

    pub fn balance(&self, account: &str) -> Option<i64> {
        self.lock().accounts.get(account).map(|a| a.balance_minor)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave a half-applied leg: each change is
        // made whole under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve_now(&self, leg: Leg, now_ms: i64) -> Result<(), NetworkError> {
        if self.failure == Failure::Timeout {
            return Err(NetworkError::Timeout);
        }
        if leg.currency != self.rules.currency {
            return Err(NetworkError::Refused(format!(
                "this network settles in {}",
                self.rules.currency.code()
            )));
        }
        let mut state = self.lock();
        if let Some((known, _)) = state.legs.get(&leg.transfer_id) {
            // The same leg again is the same leg; another under its id is not.
            return if *known == leg {
                Ok(())
            } else {
                Err(NetworkError::Refused("another leg has this id".into()))
            };
        }
        self.rules.check(leg.amount_minor, now_ms)?;
        if state.legs.len() >= LEGS_MAX {
            return Err(NetworkError::Refused("too many legs open".into()));
        }
        let account = state
            .accounts
            .get_mut(&leg.account)
            .ok_or(NetworkError::UnknownAccount)?;
        if leg.direction == Direction::Debit {
            if account.balance_minor < leg.amount_minor {
                return Err(NetworkError::Funds);
            }
            account.balance_minor -= leg.amount_minor;
        }
        state
            .legs
            .insert(leg.transfer_id.clone(), (leg, LegState::Reserved));
        Ok(())
    }

    fn settle(&self, transfer_id: &str, to: LegState) -> Result<(), NetworkError> {
        if to == LegState::Committed && self.failure == Failure::OnCommit {
            return Err(NetworkError::Refused(
                "the payee's bank is unavailable".into(),
            ));
        }
        let mut state = self.lock();
        let (leg, current) = state
            .legs
            .get(transfer_id)
            .cloned()
            .ok_or(NetworkError::UnknownTransfer)?;
        match (current, to) {
            (same, wanted) if same == wanted => return Ok(()),
            (LegState::Reserved, _) => {}
            (LegState::Committed, _) => return Err(NetworkError::Settled("committed")),
            (LegState::Reversed, _) => return Err(NetworkError::Settled("reversed")),
        }
        let account = state
            .accounts
            .get_mut(&leg.account)
            .ok_or(NetworkError::UnknownAccount)?;
        match (leg.direction, to) {
            (Direction::Debit, LegState::Reversed) => account.balance_minor += leg.amount_minor,
            (Direction::Credit, LegState::Committed) => account.balance_minor += leg.amount_minor,
            _ => {}
        }
        if let Some(entry) = state.legs.get_mut(transfer_id) {
            entry.1 = to;
        }
        Ok(())
    }
}

impl Network for SimulatedNetwork {
    fn id(&self) -> &str {
        self.rules.id
    }

    fn currency(&self) -> Currency {
        self.rules.currency
    }

    fn unit_minor(&self) -> i64 {
        self.rules.unit_minor
    }

    fn resolve(&self, account: &str) -> BoxFuture<'_, Result<Party, NetworkError>> {
        let found = self.lock().accounts.get(account).map(|a| Party {
            account: account.to_owned(),
            name: a.name.clone(),
            currency: self.rules.currency,
        });
        Box::pin(async move { found.ok_or(NetworkError::UnknownAccount) })
    }

    fn lookup_alias<'a>(
        &'a self,
        kind: AliasKind,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<Party, NetworkError>> {
        let state = self.lock();
        let found = state
            .aliases
            .get(&(kind, alias.to_owned()))
            .and_then(|account| {
                state.accounts.get(account).map(|a| Party {
                    account: account.clone(),
                    name: a.name.clone(),
                    currency: self.rules.currency,
                })
            });
        drop(state);
        Box::pin(async move { found.ok_or(NetworkError::UnknownAccount) })
    }

    fn quote(
        &self,
        amount_minor: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<NetworkQuote, NetworkError>> {
        let quoted = self
            .rules
            .check(amount_minor, now_ms)
            .map(|()| NetworkQuote {
                fee_minor: basis_points_of(amount_minor, self.rules.fee_bps),
            });
        Box::pin(async move { quoted })
    }

    fn reserve(&self, leg: Leg, now_ms: i64) -> BoxFuture<'_, Result<(), NetworkError>> {
        let done = self.reserve_now(leg, now_ms);
        Box::pin(async move { done })
    }

    fn commit(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>> {
        let done = self.settle(transfer_id, LegState::Committed);
        Box::pin(async move { done })
    }

    fn reverse(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>> {
        let done = self.settle(transfer_id, LegState::Reversed);
        Box::pin(async move { done })
    }

    fn status(&self, transfer_id: &str) -> BoxFuture<'_, Result<LegState, NetworkError>> {
        let state = self
            .lock()
            .legs
            .get(transfer_id)
            .map(|(_, s)| *s)
            .ok_or(NetworkError::UnknownTransfer);
        Box::pin(async move { state })
    }
}

#[cfg(test)]
mod tests;

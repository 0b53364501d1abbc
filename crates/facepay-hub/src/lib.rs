//! The cross-border hub's view of a payment network. Each member country's
//! network is a participant behind [`Network`]: the hub resolves an
//! account or merchant, asks what a transfer would cost, reserves money on
//! one side, then commits or reverses it, and can ask a leg's status. The
//! two-phase shape lets a transfer across two networks commit on both or
//! on neither.
//!
//! `transfer` runs one transfer across two networks in two phases.
//! `simulator` holds honest simulators of a few networks, each with rules
//! of its own (limits, decimals, operating hours, failure modes), named as
//! simulators wherever they appear. `service` is the hub itself: quotes,
//! QR payments both ways, cardless cash, the sweep and settlement windows,
//! kept in the store with the ledger underneath; `report` and `iso20022`
//! render what it did.

pub mod demo;
pub mod iso20022;
pub mod members;
pub mod report;
pub mod screening;
pub mod service;
pub mod settlement;
pub mod simulator;
pub mod transfer;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod member_tests;

use std::future::Future;
use std::pin::Pin;

use facepay_money::Currency;
use thiserror::Error;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetworkError {
    #[error("no such account or merchant in this network")]
    UnknownAccount,
    #[error("the amount is outside this network's limits")]
    Limit,
    #[error("this network does not take fractions of its currency's unit")]
    Decimals,
    #[error("the network is closed at this hour")]
    Closed,
    #[error("the payer's balance does not cover it")]
    Funds,
    #[error("no such transfer leg")]
    UnknownTransfer,
    #[error("the leg was {0} already")]
    Settled(&'static str),
    #[error("the network did not answer in time")]
    Timeout,
    #[error("the network refused: {0}")]
    Refused(String),
}

impl NetworkError {
    pub fn code(&self) -> &'static str {
        match self {
            NetworkError::UnknownAccount => "network_unknown_account",
            NetworkError::Limit => "network_limit",
            NetworkError::Decimals => "network_decimals",
            NetworkError::Closed => "network_closed",
            NetworkError::Funds => "network_insufficient_funds",
            NetworkError::UnknownTransfer => "network_unknown_transfer",
            NetworkError::Settled(_) => "network_leg_settled",
            NetworkError::Timeout => "network_timeout",
            NetworkError::Refused(_) => "network_refused",
        }
    }
}

/// An account or merchant as its network knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub account: String,
    pub name: String,
    pub currency: Currency,
}

/// How a payer names a payee without its account: an alias the payee's
/// network keeps (a proxy, in Project Nexus's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AliasKind {
    /// A mobile number in international form, `+66812345678`.
    Phone,
    /// A national QR id: PromptPay's e-wallet or tax id, VietQR's account.
    QrId,
}

impl AliasKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AliasKind::Phone => "phone",
            AliasKind::QrId => "qr_id",
        }
    }
}

/// Which way a leg moves money for the network's own account holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The holder pays: reserve holds it, commit takes it.
    Debit,
    /// The holder is paid: reserve prepares it, commit credits it.
    Credit,
}

/// One side of a hub transfer in one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// The hub's id for the transfer: a retry with the same id is the same
    /// leg, never a second one.
    pub transfer_id: String,
    pub account: String,
    pub direction: Direction,
    pub amount_minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    Reserved,
    Committed,
    Reversed,
}

/// What a network charges for a leg, and whether it would take it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkQuote {
    pub fee_minor: i64,
}

/// A member country's payment network, as the hub drives it.
pub trait Network: Send + Sync {
    /// Its globally unique id, as merchant QR templates name it.
    fn id(&self) -> &str;
    fn currency(&self) -> Currency;
    /// The smallest amount it moves, in minor units (100 for a network that
    /// takes whole rupiah only).
    fn unit_minor(&self) -> i64;
    /// A payee (a merchant, or an ATM operator) by its account: its name.
    /// Payers are never resolved for others; their network checks them at
    /// reserve.
    fn resolve(&self, account: &str) -> BoxFuture<'_, Result<Party, NetworkError>>;
    /// The payee an alias names: its account and the name to show the
    /// payer for confirmation. A network that keeps no aliases knows none.
    fn lookup_alias<'a>(
        &'a self,
        _kind: AliasKind,
        _alias: &'a str,
    ) -> BoxFuture<'a, Result<Party, NetworkError>> {
        Box::pin(async { Err(NetworkError::UnknownAccount) })
    }
    /// The network's fee for a leg, or why it would refuse it at `now_ms`.
    fn quote(
        &self,
        amount_minor: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<NetworkQuote, NetworkError>>;
    fn reserve(&self, leg: Leg, now_ms: i64) -> BoxFuture<'_, Result<(), NetworkError>>;
    fn commit(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>>;
    fn reverse(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>>;
    fn status(&self, transfer_id: &str) -> BoxFuture<'_, Result<LegState, NetworkError>>;
}

//! A transfer across two networks in two phases: hold the payer's money in
//! their network, prepare the credit in the payee's, then commit the payee
//! (the merchant is paid) and the payer. Anything that fails before the
//! payee's commit reverses both sides, so no one is left paid or charged
//! alone. Every call to a network is bounded by `NETWORK_CALL_MS`, so a
//! request's whole run is bounded too (the sweep relies on it); a commit
//! whose answer is lost is asked about again, never taken for a failure.

use std::future::Future;
use std::time::Duration;

use crate::{Direction, Leg, LegState, Network, NetworkError};

/// The longest a network gets to answer one call.
pub const NETWORK_CALL_MS: u64 = 10_000;
/// A committed payee leaves the payer's commit owed: it is tried this
/// often here, then by the sweep.
const PAYER_COMMIT_TRIES: usize = 3;
/// The most calls one transfer makes in `prepare` and `finish` together
/// (two reserves, a payee commit and its status, the payer's tries, and
/// the statuses and reversals of a cancel): with `NETWORK_CALL_MS`, the
/// longest a request can hold a transfer.
pub const CALLS_MAX: u64 = 2 + 2 + PAYER_COMMIT_TRIES as u64 + 4;

/// One side of a transfer: the account and what moves there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub account: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides committed.
    Committed,
    /// Nothing moved: both sides reversed (or never reserved), and why.
    Reversed(NetworkError),
    /// The payee was paid but the payer's network did not confirm its
    /// commit: the payer's leg stays reserved (the money held) and the
    /// sweep commits it later. Nothing is lost; nothing is returned.
    PayerCommitPending(NetworkError),
    /// The payee's network did not say whether it paid: nothing may be
    /// reversed or recorded until it does. The sweep asks again.
    Unknown(NetworkError),
}

/// A network call with its time limit: no answer in time is a `Timeout`.
async fn call<T>(fut: impl Future<Output = Result<T, NetworkError>>) -> Result<T, NetworkError> {
    tokio::time::timeout(Duration::from_millis(NETWORK_CALL_MS), fut)
        .await
        .unwrap_or(Err(NetworkError::Timeout))
}

/// Runs the transfer `transfer_id` from `payer` in `payer_net` to `payee`
/// in `payee_net`: [`prepare`], then [`finish`].
pub async fn transfer(
    transfer_id: &str,
    (payer_net, payer): (&dyn Network, &Side),
    (payee_net, payee): (&dyn Network, &Side),
    now_ms: i64,
) -> Outcome {
    match prepare(transfer_id, (payer_net, payer), (payee_net, payee), now_ms).await {
        Ok(()) => finish(transfer_id, payer_net, payee_net, true).await,
        Err(e) => Outcome::Reversed(e),
    }
}

/// Phase one: holds the payer's money and prepares the payee's credit.
/// A failure on either side reverses both before it returns.
pub async fn prepare(
    transfer_id: &str,
    (payer_net, payer): (&dyn Network, &Side),
    (payee_net, payee): (&dyn Network, &Side),
    now_ms: i64,
) -> Result<(), NetworkError> {
    let debit = Leg {
        transfer_id: transfer_id.to_owned(),
        account: payer.account.clone(),
        direction: Direction::Debit,
        amount_minor: payer.amount_minor,
        currency: payer_net.currency(),
    };
    if let Err(e) = call(payer_net.reserve(debit, now_ms)).await {
        undo(payer_net, transfer_id).await;
        return Err(e);
    }
    let credit = Leg {
        transfer_id: transfer_id.to_owned(),
        account: payee.account.clone(),
        direction: Direction::Credit,
        amount_minor: payee.amount_minor,
        currency: payee_net.currency(),
    };
    if let Err(e) = call(payee_net.reserve(credit, now_ms)).await {
        cancel(transfer_id, payer_net, payee_net).await;
        return Err(e);
    }
    Ok(())
}

/// Phase two: pays the payee, then takes the payer's held money. A payee
/// that refuses to be paid reverses both sides when `reversible` (a cash
/// withdrawal already dispensed is not: it stays for the sweep).
pub async fn finish(
    transfer_id: &str,
    payer_net: &dyn Network,
    payee_net: &dyn Network,
    reversible: bool,
) -> Outcome {
    if let Err(e) = call(payee_net.commit(transfer_id)).await {
        // A lost answer may hide a payment: ask before undoing anything.
        match call(payee_net.status(transfer_id)).await {
            Ok(LegState::Committed) => {}
            Ok(LegState::Reserved | LegState::Reversed) | Err(NetworkError::UnknownTransfer)
                if reversible =>
            {
                cancel(transfer_id, payer_net, payee_net).await;
                return Outcome::Reversed(e);
            }
            _ => return Outcome::Unknown(e),
        }
    }
    let mut last = NetworkError::Timeout;
    for _ in 0..PAYER_COMMIT_TRIES {
        match call(payer_net.commit(transfer_id)).await {
            Ok(()) => return Outcome::Committed,
            Err(e) => last = e,
        }
    }
    Outcome::PayerCommitPending(last)
}

/// Reverses whatever either network holds reserved for the transfer.
pub async fn cancel(transfer_id: &str, payer_net: &dyn Network, payee_net: &dyn Network) {
    undo(payee_net, transfer_id).await;
    undo(payer_net, transfer_id).await;
}

/// Reverses a leg if the network has it reserved. A leg it never got
/// (a timeout before it arrived) has nothing to reverse.
async fn undo(network: &dyn Network, transfer_id: &str) {
    if call(network.status(transfer_id)).await == Ok(LegState::Reserved) {
        // A reversal that fails leaves the leg reserved, visible to status;
        // nothing was paid out.
        let _ = call(network.reverse(transfer_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{Failure, Rules, SimulatedNetwork};

    const NOON_UTC_MS: i64 = 5 * 3_600_000;

    fn networks(payee_failure: Failure) -> (SimulatedNetwork, SimulatedNetwork) {
        let korea = SimulatedNetwork::new(Rules::korea(), Failure::None);
        korea.open_account("w1", "Kim", 100_000);
        let indonesia = SimulatedNetwork::new(Rules::indonesia(), payee_failure);
        indonesia.open_account("m1", "Warung", 0);
        (korea, indonesia)
    }

    fn sides() -> (Side, Side) {
        (
            Side {
                account: "w1".into(),
                amount_minor: 4_817,
            },
            Side {
                account: "m1".into(),
                amount_minor: 5_500_000,
            },
        )
    }

    #[tokio::test]
    async fn a_transfer_commits_on_both_sides() {
        let (korea, indonesia) = networks(Failure::None);
        let (payer, payee) = sides();
        let outcome = transfer("t1", (&korea, &payer), (&indonesia, &payee), NOON_UTC_MS).await;
        assert_eq!(outcome, Outcome::Committed);
        assert_eq!(korea.balance("w1"), Some(100_000 - 4_817));
        assert_eq!(indonesia.balance("m1"), Some(5_500_000));
        assert_eq!(korea.status("t1").await, Ok(LegState::Committed));
    }

    #[tokio::test]
    async fn a_payee_network_failing_after_reserve_is_reversed_on_both_sides() {
        let (korea, indonesia) = networks(Failure::OnCommit);
        let (payer, payee) = sides();
        let outcome = transfer("t1", (&korea, &payer), (&indonesia, &payee), NOON_UTC_MS).await;
        assert!(
            matches!(outcome, Outcome::Reversed(NetworkError::Refused(_))),
            "{outcome:?}"
        );
        assert_eq!(
            korea.balance("w1"),
            Some(100_000),
            "the payer's hold given back"
        );
        assert_eq!(indonesia.balance("m1"), Some(0));
        assert_eq!(korea.status("t1").await, Ok(LegState::Reversed));
        assert_eq!(indonesia.status("t1").await, Ok(LegState::Reversed));
    }

    #[tokio::test]
    async fn a_silent_payee_network_or_a_refused_amount_moves_nothing() {
        let (korea, indonesia) = networks(Failure::Timeout);
        let (payer, payee) = sides();
        let outcome = transfer("t1", (&korea, &payer), (&indonesia, &payee), NOON_UTC_MS).await;
        assert_eq!(outcome, Outcome::Reversed(NetworkError::Timeout));
        assert_eq!(korea.balance("w1"), Some(100_000));
        assert_eq!(
            indonesia.status("t1").await,
            Err(NetworkError::UnknownTransfer)
        );

        let (korea, indonesia) = networks(Failure::None);
        let broke = Side {
            account: "w1".into(),
            amount_minor: 200_000,
        };
        let outcome = transfer("t2", (&korea, &broke), (&indonesia, &payee), NOON_UTC_MS).await;
        assert_eq!(outcome, Outcome::Reversed(NetworkError::Funds));
        let cents = Side {
            account: "m1".into(),
            amount_minor: 5_500_050,
        };
        let outcome = transfer("t3", (&korea, &payer), (&indonesia, &cents), NOON_UTC_MS).await;
        assert_eq!(outcome, Outcome::Reversed(NetworkError::Decimals));
        assert_eq!(korea.balance("w1"), Some(100_000));
        assert_eq!(korea.status("t3").await, Ok(LegState::Reversed));
    }
}

//! facepay itself as a member network of the cross-border hub, so that a
//! facepay user pays a merchant abroad with the card on file and a foreign
//! wallet pays a facepay merchant.
//!
//! A debit leg (a user pays abroad) is a card-not-present authorisation
//! through the vault at reserve, a capture at commit and a void at
//! reverse; the ledger moves the hold against `member:hub_pending`, then
//! the capture leaves what the issuer owes facepay against what facepay
//! owes the hub. A credit leg (a merchant is paid from abroad) moves no
//! money at reserve; at commit the hub owes facepay what facepay owes the
//! merchant. Legs are kept in `hub_member_legs`, keyed by the hub's
//! transfer id, so a retried call is the same leg.

use std::sync::Arc;

use facepay_connector::{ConnectorError, Decline};
use facepay_hub::{
    BoxFuture, Direction, Leg, LegState, Network, NetworkError, NetworkQuote, Party,
};
use facepay_money::Currency;
use facepay_store::hub::{self as records, MemberLeg};
use facepay_store::ledger::{self, Account};
use facepay_store::{StoreError, audit, parties};
use facepay_vault::VaultAuthorise;

use crate::core::{Core, stored_credential};

/// This deployment's id among the hub's members, as merchant QR codes
/// name it.
pub const FACEPAY_MEMBER_ID: &str = "kr.facepay";

/// The smallest and largest amount facepay takes through the hub, in
/// minor units of its currency.
pub const MEMBER_MIN_MINOR: i64 = 100;
pub const MEMBER_MAX_MINOR: i64 = 5_000_000;

pub struct HubMember {
    core: Arc<Core>,
    id: String,
    currency: Currency,
}

/// The ledger entries that settle a leg: a debit's hold taken (commit:
/// the issuer owes facepay what facepay owes the hub) or given back; a
/// credit's merchant paid from what the hub owes facepay, or nothing.
fn settlement_entries(leg: &MemberLeg, to: LegState) -> Vec<(Account<'_>, i64)> {
    let amount = leg.amount_minor;
    match (leg.direction == "debit", to) {
        (true, LegState::Committed) => vec![
            (Account::IssuerHolds, -amount),
            (Account::MemberPending, amount),
            (Account::IssuerReceivable, amount),
            (Account::MemberPayable, -amount),
        ],
        (true, _) => vec![
            (Account::IssuerHolds, -amount),
            (Account::MemberPending, amount),
        ],
        (false, LegState::Committed) => vec![
            (Account::MemberReceivable, amount),
            (Account::MerchantPayable(&leg.account), -amount),
        ],
        (false, _) => Vec::new(),
    }
}

fn store_failed(e: StoreError) -> NetworkError {
    tracing::error!(error = %e, "facepay's hub member could not reach its store");
    NetworkError::Refused("facepay's store failed; try again".into())
}

impl HubMember {
    /// facepay as the member `id`, settling in `currency`.
    pub fn new(core: Arc<Core>, id: &str, currency: Currency) -> Self {
        Self {
            core,
            id: id.to_owned(),
            currency,
        }
    }

    /// A merchant of facepay's, by id. Users are never shown to other
    /// members: a debit checks its user at reserve.
    async fn resolve_now(&self, account: &str) -> Result<Party, NetworkError> {
        // SQLite has one pooled connection: each is given back before the
        // next call that needs one.
        let mut conn = self.conn().await?;
        match parties::merchant(&mut conn, account)
            .await
            .map_err(store_failed)?
        {
            Some(m) if m.status == "active" => Ok(Party {
                account: account.to_owned(),
                name: m.name,
                currency: self.currency,
            }),
            _ => Err(NetworkError::UnknownAccount),
        }
    }

    /// A store connection; none free in time is the network not answering.
    async fn conn(&self) -> Result<facepay_store::PooledConnection, NetworkError> {
        self.core.conn().await.map_err(|_| NetworkError::Timeout)
    }

    fn check(&self, amount_minor: i64) -> Result<(), NetworkError> {
        if !(MEMBER_MIN_MINOR..=MEMBER_MAX_MINOR).contains(&amount_minor) {
            return Err(NetworkError::Limit);
        }
        Ok(())
    }

    async fn reserve_now(&self, leg: Leg) -> Result<(), NetworkError> {
        if leg.currency != self.currency {
            return Err(NetworkError::Refused(format!(
                "facepay settles in {}",
                self.currency.code()
            )));
        }
        self.check(leg.amount_minor)?;
        let direction = match leg.direction {
            Direction::Debit => "debit",
            Direction::Credit => "credit",
        };
        let mut conn = self.conn().await?;
        if let Some(known) = records::member_leg(&mut conn, &leg.transfer_id)
            .await
            .map_err(store_failed)?
        {
            // The same leg again is the same leg; another under its id is not.
            let same = known.account == leg.account
                && known.direction == direction
                && known.amount_minor == leg.amount_minor;
            return if same {
                Ok(())
            } else {
                Err(NetworkError::Refused("another leg has this id".into()))
            };
        }
        drop(conn);
        let mut row = MemberLeg {
            transfer_id: leg.transfer_id.clone(),
            account: leg.account.clone(),
            direction: direction.to_owned(),
            amount_minor: leg.amount_minor,
            currency: self.currency.code().to_owned(),
            state: "reserved".to_owned(),
            issuer_ref: None,
        };
        if leg.direction == Direction::Credit {
            self.resolve_now(&leg.account).await?;
            let mut conn = self.conn().await?;
            return records::insert_member_leg(&mut conn, &row, self.core.now_ms())
                .await
                .map_err(store_failed);
        }
        row.issuer_ref = Some(self.authorise(&leg).await?);
        self.record_debit(&leg, &row).await
    }

    /// A debit leg's hold in the ledger and the leg's row, in one
    /// transaction; if they cannot be written, the hold goes back to the
    /// issuer at once, since nothing records it.
    async fn record_debit(&self, leg: &Leg, row: &MemberLeg) -> Result<(), NetworkError> {
        let now = self.core.now_ms();
        let written = async {
            let mut tx = self.core.store().begin().await?;
            audit::append(&mut tx, now, "hub", "card_used", &leg.account).await?;
            records::insert_member_leg(&mut tx, row, now).await?;
            ledger::post_member(
                &mut tx,
                &format!("{}:member:authorise", leg.transfer_id),
                self.currency.code(),
                &[
                    (Account::IssuerHolds, leg.amount_minor),
                    (Account::MemberPending, -leg.amount_minor),
                ],
                now,
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)
        }
        .await;
        if let Err(e) = written {
            if let Some(issuer_ref) = &row.issuer_ref {
                // Nothing records the hold: give it back now.
                let _ = self.core.connector.void(issuer_ref).await;
            }
            return Err(store_failed(e));
        }
        Ok(())
    }

    /// Authorises the user's card on file for the leg: the issuer's
    /// reference, or why not.
    async fn authorise(&self, leg: &Leg) -> Result<String, NetworkError> {
        let mut conn = self.conn().await?;
        let user = parties::user(&mut conn, &leg.account)
            .await
            .map_err(store_failed)?
            .filter(|u| u.status == "active")
            .ok_or(NetworkError::UnknownAccount)?;
        let method = parties::payment_methods(&mut conn, &user.id)
            .await
            .map_err(store_failed)?
            .into_iter()
            .next()
            .ok_or_else(|| NetworkError::Refused("the payer has no card on file".into()))?;
        drop(conn);
        let (token, core_share) = self
            .core
            .card_share(&method, None)
            .await
            .map_err(|f| NetworkError::Refused(f.message))?;
        let authorised = self
            .core
            .vault
            .authorise(VaultAuthorise {
                token,
                core_share,
                expiry_month: u8::try_from(method.expiry_month).unwrap_or(0),
                expiry_year: u16::try_from(method.expiry_year).unwrap_or(0),
                reference: leg.transfer_id.clone(),
                amount_minor: leg.amount_minor,
                currency: self.currency.code().to_owned(),
                tap: None,
                stored_credential: stored_credential(&method),
            })
            .await
            .map_err(|e| NetworkError::Refused(e.to_string()))?;
        match authorised.outcome {
            Ok(auth) => Ok(auth.issuer_ref),
            Err(ConnectorError::Declined(Decline::InsufficientFunds)) => Err(NetworkError::Funds),
            Err(ConnectorError::Timeout) => Err(NetworkError::Timeout),
            Err(e) => Err(NetworkError::Refused(e.code().to_owned())),
        }
    }

    async fn settle_now(&self, transfer_id: &str, to: LegState) -> Result<(), NetworkError> {
        let mut conn = self.conn().await?;
        let leg = records::member_leg(&mut conn, transfer_id)
            .await
            .map_err(store_failed)?
            .ok_or(NetworkError::UnknownTransfer)?;
        drop(conn);
        let wanted = match to {
            LegState::Committed => "committed",
            LegState::Reversed => "reversed",
            LegState::Reserved => return Err(NetworkError::Refused("not a settlement".into())),
        };
        match leg.state.as_str() {
            "reserved" => {}
            same if same == wanted => return Ok(()),
            "committed" => return Err(NetworkError::Settled("committed")),
            _ => return Err(NetworkError::Settled("reversed")),
        }
        let amount = leg.amount_minor;
        let debit = leg.direction == "debit";
        if debit {
            let issuer_ref = leg.issuer_ref.as_deref().unwrap_or_default();
            let connector = &self.core.connector;
            let called = if to == LegState::Committed {
                let reference = format!("{transfer_id}:capture");
                connector.capture(issuer_ref, amount, &reference).await
            } else {
                connector.void(issuer_ref).await
            };
            called.map_err(|e| match e {
                ConnectorError::Timeout => NetworkError::Timeout,
                other => NetworkError::Refused(other.code().to_owned()),
            })?;
        }
        let entries = settlement_entries(&leg, to);
        let now = self.core.now_ms();
        let written = async {
            let mut tx = self.core.store().begin().await?;
            if !records::settle_member_leg(&mut tx, transfer_id, wanted, now).await? {
                return Ok(false);
            }
            if !entries.is_empty() {
                let step = format!("{transfer_id}:member:{wanted}");
                ledger::post_member(&mut tx, &step, &leg.currency, &entries, now).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok(true)
        }
        .await;
        if !written.map_err(store_failed)? {
            // Another call settled it first: say what it did.
            return match self.status_now(transfer_id).await? {
                state if state == to => Ok(()),
                LegState::Committed => Err(NetworkError::Settled("committed")),
                _ => Err(NetworkError::Settled("reversed")),
            };
        }
        Ok(())
    }

    async fn status_now(&self, transfer_id: &str) -> Result<LegState, NetworkError> {
        let mut conn = self.conn().await?;
        let leg = records::member_leg(&mut conn, transfer_id)
            .await
            .map_err(store_failed)?
            .ok_or(NetworkError::UnknownTransfer)?;
        Ok(match leg.state.as_str() {
            "reserved" => LegState::Reserved,
            "committed" => LegState::Committed,
            _ => LegState::Reversed,
        })
    }
}

impl Network for HubMember {
    fn id(&self) -> &str {
        &self.id
    }

    fn currency(&self) -> Currency {
        self.currency
    }

    fn unit_minor(&self) -> i64 {
        1
    }

    fn resolve(&self, account: &str) -> BoxFuture<'_, Result<Party, NetworkError>> {
        let account = account.to_owned();
        Box::pin(async move { self.resolve_now(&account).await })
    }

    fn quote(
        &self,
        amount_minor: i64,
        _now_ms: i64,
    ) -> BoxFuture<'_, Result<NetworkQuote, NetworkError>> {
        let quoted = self
            .check(amount_minor)
            .map(|()| NetworkQuote { fee_minor: 0 });
        Box::pin(async move { quoted })
    }

    fn reserve(&self, leg: Leg, _now_ms: i64) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.reserve_now(leg))
    }

    fn commit(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>> {
        let id = transfer_id.to_owned();
        Box::pin(async move { self.settle_now(&id, LegState::Committed).await })
    }

    fn reverse(&self, transfer_id: &str) -> BoxFuture<'_, Result<(), NetworkError>> {
        let id = transfer_id.to_owned();
        Box::pin(async move { self.settle_now(&id, LegState::Reversed).await })
    }

    fn status(&self, transfer_id: &str) -> BoxFuture<'_, Result<LegState, NetworkError>> {
        let id = transfer_id.to_owned();
        Box::pin(async move { self.status_now(&id).await })
    }
}

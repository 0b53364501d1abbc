//! The hub's members as its operator onboards them: each network's
//! currency, settlement account, net debit cap and request rate, and the
//! funds it keeps at the settlement bank. A payment that would take its
//! payer's network past its cap or its funds is refused while the transfer
//! is being written, before any network is called; a member asking faster
//! than its rate is refused before anything is done.
//!
//! A network the operator has not onboarded trades without a cap or a
//! rate limit, as it did before members existed.

use facepay_money::Currency;
use facepay_store::hub::Quote;
use facepay_store::hub_members::{self as records, FundsDirection, FundsMovement, Member};
use facepay_store::{Connection, StoreError, audit, rate_windows};

use crate::service::{Hub, HubError, KEY_BYTES_MAX};

/// A member's requests are counted over windows of this length.
pub const RATE_WINDOW_MS: i64 = 60_000;
/// The most a member may be allowed a minute: a typing mistake past it.
pub const REQUESTS_PER_MINUTE_MAX: i64 = 1_000_000;
/// The largest cap or funds movement taken, in minor units: far past any
/// real one, and far from overflowing a sum of many.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000_000;

/// Onboarding terms, as the operator gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub currency: String,
    pub settlement_account: String,
    pub net_debit_cap_minor: i64,
    pub requests_per_minute: i64,
}

/// Where a member stands: its terms, funds and what it may owe now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub member: Member,
    pub funds_minor: i64,
    pub exposure_minor: i64,
}

fn check_terms(terms: &Terms, network_currency: Currency) -> Result<(), HubError> {
    let bad = |text: &str| Err(HubError::BadMember(text.to_owned()));
    if terms.currency != network_currency.code() {
        return bad("the currency is not the network's");
    }
    if terms.settlement_account.is_empty() || terms.settlement_account.len() > KEY_BYTES_MAX {
        return bad("the settlement account is empty or too long");
    }
    if !(0..=AMOUNT_MINOR_MAX).contains(&terms.net_debit_cap_minor) {
        return bad("the net debit cap is negative or too large");
    }
    if !(1..=REQUESTS_PER_MINUTE_MAX).contains(&terms.requests_per_minute) {
        return bad("requests per minute must be 1 to 1,000,000");
    }
    Ok(())
}

impl Hub {
    /// Onboards `network` as a member, or changes its terms, as `actor`
    /// (written to the audit log). A cap below what the member may owe now
    /// is refused: it would be past it at once.
    pub async fn onboard(
        &self,
        actor: &str,
        network: &str,
        terms: Terms,
        now_ms: i64,
    ) -> Result<Standing, HubError> {
        check_terms(&terms, self.network(network)?.currency())?;
        let mut tx = self.store().begin().await?;
        let created_at_ms = match records::lock(&mut tx, network).await? {
            Some(m) => m.created_at_ms,
            None => now_ms,
        };
        let exposure = records::exposure_minor(&mut tx, network, &terms.currency).await?;
        if terms.net_debit_cap_minor < exposure {
            return Err(HubError::BadMember(format!(
                "the cap is below the {exposure} it may owe now"
            )));
        }
        let member = Member {
            network_id: network.to_owned(),
            currency: terms.currency,
            settlement_account: terms.settlement_account,
            net_debit_cap_minor: terms.net_debit_cap_minor,
            requests_per_minute: terms.requests_per_minute,
            created_at_ms,
            updated_at_ms: now_ms,
        };
        records::upsert(&mut tx, &member).await?;
        audit::append(&mut tx, now_ms, actor, "hub_member_terms_set", network).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.standing(network).await
    }

    pub async fn standing(&self, network: &str) -> Result<Standing, HubError> {
        let mut conn = self.store().acquire().await?;
        let member = records::member(&mut conn, network)
            .await?
            .ok_or_else(|| HubError::UnknownMember(network.to_owned()))?;
        standing_of(&mut conn, member).await
    }

    pub async fn members(&self) -> Result<Vec<Standing>, HubError> {
        let mut conn = self.store().acquire().await?;
        let mut all = Vec::new();
        for member in records::members(&mut conn).await? {
            all.push(standing_of(&mut conn, member).await?);
        }
        Ok(all)
    }

    /// Records funds a member put in at the settlement bank, or took out,
    /// as `actor` (written to the audit log): once per idempotency key (the
    /// same key again answers the first movement). Taking out more than
    /// leaves what it may owe covered is refused.
    pub async fn move_funds(
        &self,
        actor: &str,
        network: &str,
        idempotency_key: &str,
        direction: FundsDirection,
        amount_minor: i64,
        now_ms: i64,
    ) -> Result<FundsMovement, HubError> {
        if idempotency_key.len() > KEY_BYTES_MAX {
            return Err(HubError::TooLong("the idempotency key"));
        }
        if !(1..=AMOUNT_MINOR_MAX).contains(&amount_minor) {
            return Err(HubError::BadAmount("funds move in positive amounts".into()));
        }
        let mut tx = self.store().begin().await?;
        let member = records::lock(&mut tx, network)
            .await?
            .ok_or_else(|| HubError::UnknownMember(network.to_owned()))?;
        if let Some(earlier) = records::funds_by_key(&mut tx, network, idempotency_key).await? {
            if earlier.direction != direction || earlier.amount_minor != amount_minor {
                return Err(HubError::KeyReused);
            }
            return Ok(earlier);
        }
        if direction == FundsDirection::Out {
            let funds = records::funds_minor(&mut tx, network, &member.currency).await?;
            let exposure = records::exposure_minor(&mut tx, network, &member.currency).await?;
            if funds - amount_minor < exposure.max(0) {
                return Err(HubError::MemberFunds {
                    currency: member.currency,
                    free_minor: funds - exposure.max(0),
                });
            }
        }
        let movement = records::move_funds(
            &mut tx,
            network,
            idempotency_key,
            direction,
            (amount_minor, &member.currency),
            now_ms,
        )
        .await?;
        let action = match direction {
            FundsDirection::In => "hub_funds_in",
            FundsDirection::Out => "hub_funds_out",
        };
        audit::append(&mut tx, now_ms, actor, action, &movement.id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(movement)
    }

    /// Counts a request of member network `network`; refused past its rate.
    /// Counted in the store, so the rate holds for all servers together.
    pub(crate) async fn admit_request(&self, network: &str, now_ms: i64) -> Result<(), HubError> {
        let mut conn = self.store().acquire().await?;
        let Some(member) = records::member(&mut conn, network).await? else {
            return Ok(());
        };
        let window_start_ms = rate_windows::window_start_ms(now_ms, RATE_WINDOW_MS);
        let name = format!("hub_member:{network}");
        let per_minute = member.requests_per_minute;
        let taken = rate_windows::take(&mut conn, &name, window_start_ms, per_minute).await?;
        if taken.is_none() {
            let retry_after_ms = window_start_ms + RATE_WINDOW_MS - now_ms;
            return Err(HubError::RateLimited { retry_after_ms });
        }
        Ok(())
    }
}

async fn standing_of(conn: &mut Connection, member: Member) -> Result<Standing, HubError> {
    let funds_minor = records::funds_minor(conn, &member.network_id, &member.currency).await?;
    let exposure_minor =
        records::exposure_minor(conn, &member.network_id, &member.currency).await?;
    Ok(Standing {
        member,
        funds_minor,
        exposure_minor,
    })
}

/// Checks a transfer just written in `tx` against its payer network's cap
/// and funds, with the member's row locked so that its transfers are
/// checked one at a time. The caller drops the transaction on a refusal,
/// so nothing of the transfer is left.
pub(crate) async fn admit_transfer(tx: &mut Connection, quote: &Quote) -> Result<(), HubError> {
    let Some(member) = records::lock(tx, &quote.payer_network).await? else {
        return Ok(());
    };
    // The exposure counts the transfer just written.
    let exposure = records::exposure_minor(tx, &member.network_id, &quote.source_currency).await?;
    let funds = records::funds_minor(tx, &member.network_id, &quote.source_currency).await?;
    let limit_minor = member.net_debit_cap_minor.min(funds);
    if exposure > limit_minor {
        return Err(HubError::MemberCap {
            network: member.network_id,
            currency: quote.source_currency.clone(),
            exposure_minor: exposure,
            limit_minor,
        });
    }
    Ok(())
}

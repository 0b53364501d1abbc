//! FX for the cross-border hub. Providers post a mid rate and a spread
//! per corridor (a pair of currencies); the hub quotes the best of them:
//! what the payer's side pays, in its own currency, for an amount the
//! payee's side must receive (a merchant's QR fixes that amount), with the
//! hub's fee shown apart, and the time it is good for. Keeping quotes and
//! honouring each once is the hub's job (it stores them with its
//! transfers).
//!
//! Rates are integers: destination major units per source major unit,
//! scaled by `RATE_SCALE`. Amounts are minor units of each currency; the
//! rounding always leaves the hub whole (the payer pays up to one minor
//! unit more, never less).

use std::collections::HashMap;

use facepay_money::{AMOUNT_MINOR_MAX, Currency, basis_points_of};
use thiserror::Error;

/// Rates carry nine decimal places: 1 KRW is 0.000720000 USD.
pub const RATE_SCALE: i128 = 1_000_000_000;
/// A quote holds this long once given.
pub const QUOTE_TTL_MS: i64 = 5 * 60_000;
/// Spreads above this are refused: a provider's typo, not a price.
pub const SPREAD_BPS_MAX: u32 = 1_000;
/// What a card brand charges on a foreign payment, for comparison: a
/// scheme's cross-border fee (about 1%) and the issuer's FX markup.
pub const CARD_SCHEME_BPS: u32 = 100;
pub const CARD_FX_MARKUP_BPS: u32 = 200;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FxError {
    #[error("no rate is posted for {0}")]
    NoRate(String),
    #[error("the rate must be positive and the spread at most {SPREAD_BPS_MAX} basis points")]
    BadRate,
    #[error("the amount must be positive and within bounds")]
    BadAmount,
}

impl FxError {
    pub fn code(&self) -> &'static str {
        match self {
            FxError::NoRate(_) => "fx_no_rate",
            FxError::BadRate => "fx_bad_rate",
            FxError::BadAmount => "fx_bad_amount",
        }
    }
}

/// A rate as a provider posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub provider: String,
    pub source: Currency,
    pub destination: Currency,
    /// Destination major units per source major unit, times `RATE_SCALE`.
    pub mid_rate: i128,
    /// Taken off the mid rate for the payer.
    pub spread_bps: u32,
    pub valid_until_ms: i64,
}

impl Posted {
    /// The rate the payer gets: the mid rate less the spread.
    pub fn customer_rate(&self) -> i128 {
        self.mid_rate * i128::from(10_000 - self.spread_bps) / 10_000
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub provider: String,
    pub source: Currency,
    pub destination: Currency,
    /// What the payer pays in all: the principal and the hub's fee.
    pub source_minor: i64,
    pub fee_minor: i64,
    /// What the payee receives.
    pub destination_minor: i64,
    pub mid_rate: i128,
    pub customer_rate: i128,
    pub expires_at_ms: i64,
}

/// What a payment costs the payer over the mid rate, here and by card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// The destination amount at the mid rate, in source minor units.
    pub at_mid_minor: i64,
    /// Through the hub: spread and fee.
    pub hub_minor: i64,
    /// By card: the scheme's fee and the issuer's markup.
    pub card_minor: i64,
}

/// The minor units of `from` that buy at least `minor` of `to` at `rate`.
fn source_for(minor: i64, from: Currency, to: Currency, rate: i128) -> Option<i64> {
    if rate <= 0 {
        return None;
    }
    // The inverse of `convert`: minor_to * 10^e_from * SCALE / (rate * 10^e_to).
    let numerator = i128::from(minor) * RATE_SCALE * 10i128.pow(u32::from(from.exponent()));
    let denominator = rate * 10i128.pow(u32::from(to.exponent()));
    let q = numerator / denominator + i128::from(numerator % denominator != 0);
    i64::try_from(q).ok()
}

/// The hub's FX desk: posted rates, priced into quotes.
pub struct Desk {
    /// The hub's own fee on the principal.
    fee_bps: u32,
    rates: HashMap<(Currency, Currency), Vec<Posted>>,
}

impl Desk {
    pub fn new(fee_bps: u32) -> Self {
        assert!(fee_bps <= 10_000);
        Self {
            fee_bps,
            rates: HashMap::new(),
        }
    }

    /// A provider's rate for a corridor replaces its last one there.
    pub fn post(&mut self, rate: Posted) -> Result<(), FxError> {
        if rate.mid_rate <= 0 || rate.spread_bps > SPREAD_BPS_MAX || rate.source == rate.destination
        {
            return Err(FxError::BadRate);
        }
        let book = self
            .rates
            .entry((rate.source, rate.destination))
            .or_default();
        book.retain(|r| r.provider != rate.provider);
        book.push(rate);
        Ok(())
    }

    /// The best rate for the payer among those still valid at `now_ms`.
    pub fn best(&self, source: Currency, destination: Currency, now_ms: i64) -> Option<&Posted> {
        self.rates
            .get(&(source, destination))?
            .iter()
            .filter(|r| now_ms < r.valid_until_ms)
            .max_by_key(|r| r.customer_rate())
    }

    /// A quote for the payee to receive `destination_minor`.
    pub fn quote(
        &self,
        source: Currency,
        destination: Currency,
        destination_minor: i64,
        now_ms: i64,
    ) -> Result<Quote, FxError> {
        let destination_minor = destination
            .check_minor(destination_minor)
            .map_err(|_| FxError::BadAmount)?;
        if destination_minor <= 0 {
            return Err(FxError::BadAmount);
        }
        let rate = self
            .best(source, destination, now_ms)
            .ok_or_else(|| FxError::NoRate(format!("{}->{}", source.code(), destination.code())))?
            .clone();
        let principal = source_for(destination_minor, source, destination, rate.customer_rate())
            .and_then(|m| source.check_minor(m).ok())
            .ok_or(FxError::BadAmount)?;
        let fee_minor = basis_points_of(principal, self.fee_bps);
        Ok(Quote {
            provider: rate.provider.clone(),
            source,
            destination,
            source_minor: principal + fee_minor,
            fee_minor,
            destination_minor,
            mid_rate: rate.mid_rate,
            customer_rate: rate.customer_rate(),
            // Never past the rate it was priced on.
            expires_at_ms: (now_ms + QUOTE_TTL_MS).min(rate.valid_until_ms),
        })
    }
}

impl Quote {
    /// The payment's cost over the mid rate through the hub, and what a
    /// card would have cost for the same destination amount. `None` for a
    /// quote no desk prices (a mid rate not above zero, an amount at mid
    /// past the largest amount, a difference past an i64), as a stored one
    /// could be if corrupted.
    pub fn cost(&self) -> Option<Cost> {
        let at_mid = source_for(
            self.destination_minor,
            self.source,
            self.destination,
            self.mid_rate,
        )
        .filter(|minor| (0..=AMOUNT_MINOR_MAX).contains(minor))?;
        let card = basis_points_of(at_mid, CARD_SCHEME_BPS + CARD_FX_MARKUP_BPS);
        Some(Cost {
            at_mid_minor: at_mid,
            hub_minor: self.source_minor.checked_sub(at_mid)?,
            card_minor: card,
        })
    }
}

/// `minor` of `from` in minor units of `to` at `rate` (major per major,
/// scaled), rounded down: what a payee receives for a principal.
pub fn converted(minor: i64, from: Currency, to: Currency, rate: i128) -> Option<i64> {
    let numerator = i128::from(minor) * rate * 10i128.pow(u32::from(to.exponent()));
    let denominator = RATE_SCALE * 10i128.pow(u32::from(from.exponent()));
    i64::try_from(numerator / denominator).ok()
}

#[cfg(test)]
mod tests;

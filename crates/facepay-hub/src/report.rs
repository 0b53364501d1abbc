//! A settlement window's report: each participant's net position per
//! currency (what it pays the hub, or is paid, when the window settles),
//! the hub's fees, and what the same payments would have cost by card.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use facepay_fx::Quote as FxQuote;
use facepay_money::Currency;
use facepay_store::hub::{Position, Transfer, Window};

use crate::service::currencies;

/// One participant's net position: positive pays the hub, negative is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    /// A network's id, `fx:<provider>`, or `hub fees`.
    pub participant: String,
    pub currency: String,
    pub net_minor: i64,
}

/// What the window's payments cost their payers over the mid rate, per
/// source currency, through the hub and by card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Costs {
    pub principal_at_mid_minor: i64,
    pub hub_minor: i64,
    pub card_minor: i64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub window: Window,
    pub positions: Vec<Net>,
    /// The window's transfers in id order, up to the listing's bound.
    pub transfers: Vec<Transfer>,
    pub costs: BTreeMap<String, Costs>,
}

/// An amount in minor units for people: "55000.00 IDR".
pub fn money(currency: &str, minor: i64) -> String {
    match Currency::from_code(currency) {
        Ok(c) => format!("{} {}", c.format(minor), c.code()),
        Err(_) => format!("{minor} (minor units) {currency}"),
    }
}

/// `hub:position:<who>:<cur>` is `<who>`; `hub:fees:<cur>` is the hub.
fn participant(account: &str, currency: &str) -> String {
    let inner = account
        .strip_suffix(currency)
        .and_then(|a| a.strip_suffix(':'))
        .unwrap_or(account);
    match inner.strip_prefix("hub:position:") {
        Some(who) => who.to_owned(),
        None if inner == "hub:fees" => "hub fees".to_owned(),
        None => inner.to_owned(),
    }
}

/// The cost of one transfer over the mid rate, as its FX quote computes it.
fn cost(t: &Transfer) -> Option<facepay_fx::Cost> {
    let q = &t.quote;
    let (source, destination) = currencies(q)?;
    FxQuote {
        provider: q.provider.clone(),
        source,
        destination,
        source_minor: q.source_minor,
        fee_minor: q.fee_minor,
        destination_minor: q.destination_minor,
        mid_rate: q.mid_rate.parse().ok()?,
        customer_rate: q.customer_rate.parse().ok()?,
        expires_at_ms: q.expires_at_ms,
    }
    .cost()
}

impl Report {
    /// A report of `window` with its positions, before its transfers are
    /// added.
    pub fn new(window: Window, positions: &[Position]) -> Self {
        let positions = positions
            .iter()
            .map(|p| Net {
                participant: participant(&p.participant, &p.currency),
                currency: p.currency.clone(),
                net_minor: p.net_minor,
            })
            .collect();
        Self {
            window,
            positions,
            transfers: Vec::new(),
            costs: BTreeMap::new(),
        }
    }

    /// Adds a page of the window's transfers: each counts in the costs,
    /// and the listing keeps up to `listed_max`.
    pub fn add(&mut self, page: Vec<Transfer>, listed_max: usize) {
        for t in page {
            if let Some(c) = cost(&t) {
                let sum = self
                    .costs
                    .entry(t.quote.source_currency.clone())
                    .or_default();
                sum.principal_at_mid_minor =
                    sum.principal_at_mid_minor.saturating_add(c.at_mid_minor);
                sum.hub_minor = sum.hub_minor.saturating_add(c.hub_minor);
                sum.card_minor = sum.card_minor.saturating_add(c.card_minor);
            }
            if self.transfers.len() < listed_max {
                self.transfers.push(t);
            }
        }
    }

    /// The net positions of each currency summed: zero in a sound window.
    pub fn totals(&self) -> BTreeMap<String, i64> {
        let mut totals = BTreeMap::new();
        for p in &self.positions {
            *totals.entry(p.currency.clone()).or_insert(0) += p.net_minor;
        }
        totals
    }

    /// The report as a text table.
    pub fn render(&self) -> String {
        let amount = money;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "window {} ({}), {} transfers",
            self.window.id, self.window.state, self.window.transfer_count
        );
        let _ = writeln!(out, "{:<28} {:>22}", "participant", "net position");
        for p in &self.positions {
            let side = if p.net_minor > 0 {
                "pays the hub"
            } else {
                "is paid"
            };
            let _ = writeln!(
                out,
                "{:<28} {:>22}  {side}",
                p.participant,
                amount(&p.currency, p.net_minor)
            );
        }
        for (currency, total) in self.totals() {
            let _ = writeln!(out, "{:<28} {:>22}", format!("sum in {currency}"), total);
        }
        for (currency, c) in &self.costs {
            let _ = writeln!(
                out,
                "cost over mid rate, paid in {currency}: hub {} vs card {} (on {} at mid)",
                amount(currency, c.hub_minor),
                amount(currency, c.card_minor),
                amount(currency, c.principal_at_mid_minor),
            );
        }
        out
    }
}

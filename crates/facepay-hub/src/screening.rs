//! Sanctions screening before any money is reserved. A [`Screening`] looks
//! at a transfer's parties; a hit holds the transfer (`held`) for an
//! operator, who asks the member networks for what they know (the request
//! for information happens between people) and then releases it, which
//! runs it as if nothing had stopped it, or refuses it, which reverses it
//! with `hub_screening_refused`. A hit is never a silent refusal.
//!
//! [`ListScreening`] reads a list in this format (UTF-8 text):
//!
//! ```text
//! # comment lines and blank lines are skipped
//! <entry id>|<name>[|<alias>;<alias>...]
//! ```
//!
//! Names match after folding: letters and digits lowercased, every run of
//! anything else one space, the ends trimmed. So `ACME  Trading, Ltd.`
//! matches `acme trading ltd`. A name matches an entry's name or any of
//! its aliases exactly; no fuzzy matching.

use std::collections::HashMap;

use facepay_store::hub::{Quote, State};
use facepay_store::{StoreError, audit, hub as records};
use thiserror::Error;

use crate::service::{Hub, HubError};
use crate::transfer;

/// Largest list file read.
pub const LIST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most entries (names and aliases together) a list holds.
pub const LIST_NAMES_MAX: usize = 500_000;
/// Longest line of a list.
pub const LINE_BYTES_MAX: usize = 4_096;

/// The party of a transfer a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Payer,
    Payee,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Payer => "payer",
            Role::Payee => "payee",
        }
    }
}

/// What a screening matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub role: Role,
    /// The list entry's id.
    pub entry_id: String,
}

/// Looks at a transfer's parties before anything is reserved.
pub trait Screening: Send + Sync {
    /// The first party of `quote` the screening matches, if any.
    fn screen(&self, quote: &Quote) -> Option<Hit>;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ListError {
    #[error("the list is larger than {LIST_BYTES_MAX} bytes")]
    TooLarge,
    #[error("line {0}: longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong(usize),
    #[error("line {0}: expected <id>|<name>[|<aliases>]")]
    BadLine(usize),
    #[error("the list holds more than {LIST_NAMES_MAX} names")]
    TooManyNames,
}

/// A sanctions list in memory: folded names to their entry's id.
#[derive(Debug, Clone, Default)]
pub struct ListScreening {
    names: HashMap<String, String>,
}

/// Letters and digits lowercased, any other run one space, ends trimmed.
pub fn fold(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() {
            folded.extend(c.to_lowercase());
        } else if !folded.ends_with(' ') && !folded.is_empty() {
            folded.push(' ');
        }
    }
    folded.trim_end().to_owned()
}

impl ListScreening {
    /// Reads a list in the format the module describes.
    pub fn parse(text: &str) -> Result<Self, ListError> {
        if text.len() > LIST_BYTES_MAX {
            return Err(ListError::TooLarge);
        }
        let mut names = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.len() > LINE_BYTES_MAX {
                return Err(ListError::LineTooLong(number));
            }
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('|');
            let (Some(id), Some(name)) = (fields.next(), fields.next()) else {
                return Err(ListError::BadLine(number));
            };
            let aliases = fields.next().unwrap_or("");
            if id.trim().is_empty() || fold(name).is_empty() || fields.next().is_some() {
                return Err(ListError::BadLine(number));
            }
            for n in std::iter::once(name).chain(aliases.split(';')) {
                let folded = fold(n);
                if !folded.is_empty() {
                    names.insert(folded, id.trim().to_owned());
                }
            }
            if names.len() > LIST_NAMES_MAX {
                return Err(ListError::TooManyNames);
            }
        }
        Ok(Self { names })
    }

    fn matches(&self, name: &str) -> Option<&String> {
        self.names.get(&fold(name))
    }
}

impl Screening for ListScreening {
    /// The payee's name as its network gave it, and the payer's account
    /// reference (the hub is shown no payer's name).
    fn screen(&self, quote: &Quote) -> Option<Hit> {
        let parties = [
            (Role::Payee, quote.payee_name.as_str()),
            (Role::Payee, quote.payee_account.as_str()),
            (Role::Payer, quote.payer_account.as_str()),
        ];
        parties.iter().find_map(|(role, name)| {
            self.matches(name).map(|entry_id| Hit {
                role: *role,
                entry_id: entry_id.clone(),
            })
        })
    }
}

/// The reason a held transfer carries.
fn held_reason(hit: &Hit) -> String {
    format!(
        "screening: {} matched list entry {}",
        hit.role.as_str(),
        hit.entry_id
    )
}

impl Hub {
    /// Holds the transfer `t` (just written, `pending`) when screening
    /// matches one of its parties: true when it was held.
    pub(crate) async fn hold_on_hit(
        &self,
        t: &records::Transfer,
        now_ms: i64,
    ) -> Result<bool, HubError> {
        let Some(hit) = self.screening().and_then(|s| s.screen(&t.quote)) else {
            return Ok(false);
        };
        tracing::warn!(transfer = %t.id, entry = %hit.entry_id, "screening matched; held for an operator");
        let mut conn = self.store().acquire().await?;
        let reason = held_reason(&hit);
        records::set_state(
            &mut conn,
            &t.id,
            &[State::Pending],
            State::Held,
            Some(&reason),
            now_ms,
        )
        .await?;
        Ok(true)
    }

    /// An operator (`actor`, written to the audit log) releases a held
    /// transfer: it runs now, as it would have.
    pub async fn release(
        &self,
        actor: &str,
        transfer_id: &str,
        now_ms: i64,
    ) -> Result<records::Transfer, HubError> {
        let t = self.held(transfer_id).await?;
        self.decide(actor, &t, State::Pending, now_ms).await?;
        let (payer_net, payer, payee_net, payee) = self.route(&t)?;
        let outcome =
            transfer::transfer(&t.id, (payer_net, &payer), (payee_net, &payee), now_ms).await;
        self.record(&t, outcome, &[State::Pending], now_ms).await
    }

    /// An operator (`actor`, written to the audit log) refuses a held
    /// transfer: it is reversed, and no network ever heard of it.
    pub async fn refuse(
        &self,
        actor: &str,
        transfer_id: &str,
        now_ms: i64,
    ) -> Result<records::Transfer, HubError> {
        let t = self.held(transfer_id).await?;
        self.decide(actor, &t, State::Reversed, now_ms).await?;
        self.transfer(&t.id).await
    }

    /// Takes a held transfer out of `held` to `to` with the decision in the
    /// audit log, in one transaction; refused if another decided first.
    async fn decide(
        &self,
        actor: &str,
        t: &records::Transfer,
        to: State,
        now_ms: i64,
    ) -> Result<(), HubError> {
        let (reason, action) = match to {
            State::Reversed => (Some("hub_screening_refused"), "hub_transfer_refused"),
            _ => (None, "hub_transfer_released"),
        };
        let mut tx = self.store().begin().await?;
        if !records::set_state(&mut tx, &t.id, &[State::Held], to, reason, now_ms).await? {
            drop(tx);
            let now = self.transfer(&t.id).await?;
            return Err(HubError::NotHeld(now.state.as_str()));
        }
        audit::append(&mut tx, now_ms, actor, action, &t.id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn held(&self, transfer_id: &str) -> Result<records::Transfer, HubError> {
        let t = self.transfer(transfer_id).await?;
        if t.state != State::Held {
            return Err(HubError::NotHeld(t.state.as_str()));
        }
        Ok(t)
    }
}

//! The payments core: enrol a face and a card, identify the payer at a
//! terminal, authorise and capture with the card connector, refund, report.
//!
//! Every write is idempotent. A request claims its `Idempotency-Key` first,
//! does its work, and commits its effect (payment rows, ledger transfers)
//! and its answer in one database transaction; a retry gets that answer.
//! Requests refused before any effect give the key back.
//!
//! This crate knows nothing of HTTP beyond status numbers: bodies come in as
//! bytes and answers go out as JSON text, so the stored answer of an
//! idempotent request is byte-for-byte what the first caller saw.
//!
//! Services, each with one job, over one shared [`Core`] (store, data keys,
//! clock, configuration, card vault) and built together by
//! [`Services::start`]:
//!
//! - [`Identity`]: enrolment, the user's account, the gallery, the search
//!   a payment runs, face analysis, the change log and its snapshot;
//! - [`Loyalty`]: the merchant's programs and coupons and the user's
//!   choice; `loyalty::payment` is what loyalty does with a payment;
//! - [`Payments`]: the pay path, from a signed terminal request through
//!   the risk decision and step-ups to the charge;
//! - [`MerchantOps`]: the merchant's API and the sweeps;
//! - [`Access`]: merchant and operator keys, their scopes and roles;
//! - [`Claims`]: fraud claims and the operator's side;
//! - [`Onboarding`]: merchants, stores and terminals, and pairing;
//! - [`KeyManagement`]: re-wrapping data keys, re-issuing templates,
//!   moving cards into the vault;
//! - [`Webhooks`]: merchants' webhook endpoints and the worker that
//!   delivers what the outbox holds (`core::transition` and
//!   `core::claim_event` write it, in the transaction of each change);
//! - [`hub_member::HubMember`]: facepay as a member of the hub.
//!
//! Modules depend one way only, each on those before it:
//!
//! ```text
//! error, api, keys, signing, face, tap, templates   (leaves)
//!   ← core ← access ← key_management ← identity ← loyalty ← pay
//!   ← merchant ← claims ← onboarding ← hub_member ← webhooks ← services
//! ```
//!
//! so nothing calls back up: `pay` and `merchant` call `loyalty`'s
//! payment functions, `claims` calls `merchant` to settle a held payment,
//! and no module imports one later in the order.

pub mod access;
pub mod api;
pub mod claims;
pub mod core;
pub mod error;
pub mod face;
pub mod hub_member;
pub mod identity;
pub mod key_management;
pub mod keys;
pub mod loyalty;
pub mod merchant;
pub mod onboarding;
pub mod pay;
mod services;
pub mod signing;
mod tap;
mod templates;
pub mod webhooks;

pub use crate::access::Access;
pub use crate::claims::Claims;
pub use crate::core::{
    ClaimEventView, Config, Core, EventData, IDEMPOTENCY_KEY_LEN_MAX, IDEMPOTENCY_RETENTION_MS,
    Reply, WebhookConfig, WebhookEvent, check_idempotency_key, json_value, parse_json,
};
pub use crate::identity::{Identity, snapshot};
pub use crate::key_management::{KeyManagement, PhonesSealed, reissue_templates, rewrap_data_keys};
pub use crate::loyalty::Loyalty;
pub use crate::merchant::MerchantOps;
pub use crate::onboarding::Onboarding;
pub use crate::pay::{Matched, Payments};
pub use crate::services::{Parts, Services};
pub use crate::webhooks::Webhooks;
pub use error::{Failure, RANDOM_UNAVAILABLE, RANDOM_UNAVAILABLE_MESSAGE};
pub use face::LivenessMode;
pub use facepay_gallery::{DecisionPolicy, IndexKind};
pub use keys::{Envelope, FileKeyProvider, KeyProvider};

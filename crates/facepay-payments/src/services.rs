//! The services bundle: every service built over one core, in dependency
//! order, and the gallery loaded, as a server starts them.

use std::sync::Arc;

use facepay_face::FaceEngine;
use facepay_face::liveness::LivenessChecker;
use facepay_store::{Clock, Store};
use facepay_template_transform::TransformKeys;
use facepay_vault::Vault;

use crate::access::Access;
use crate::claims::Claims;
use crate::core::{Config, Core};
use crate::error::Failure;
use crate::identity::Identity;
use crate::key_management::KeyManagement;
use crate::keys::{Envelope, KeyProvider};
use crate::loyalty::Loyalty;
use crate::merchant::MerchantOps;
use crate::onboarding::Onboarding;
use crate::pay::Payments;
use crate::webhooks::Webhooks;

/// What the services are built from: the outside parts they run on.
pub struct Parts {
    pub store: Store,
    /// The engine payments run on.
    pub engine: Arc<FaceEngine>,
    /// The engine the enrolment lane runs on (enrolments, the public photo
    /// analysis), with model sessions of its own: each session is used by
    /// one analysis at a time, so sharing one would make a payment wait
    /// for an enrolment's frames. The payments' engine when absent.
    pub enrolment_engine: Option<Arc<FaceEngine>>,
    pub liveness: Arc<LivenessChecker>,
    /// Holds the other share of every card and is the only way to the
    /// issuer.
    pub vault: Arc<dyn Vault>,
    /// The key-encryption keys that wrap every data key.
    pub keys: Arc<dyn KeyProvider>,
    pub transforms: Arc<TransformKeys>,
    /// Where every service reads the time.
    pub clock: Arc<dyn Clock>,
}

/// Every service of one running facepay, sharing one core.
pub struct Services {
    pub core: Arc<Core>,
    pub identity: Arc<Identity>,
    pub payments: Arc<Payments>,
    pub merchant: Arc<MerchantOps>,
    pub loyalty: Arc<Loyalty>,
    pub claims: Arc<Claims>,
    pub keys: Arc<KeyManagement>,
    pub webhooks: Arc<Webhooks>,
    pub access: Arc<Access>,
    pub onboarding: Arc<Onboarding>,
}

impl Services {
    /// Builds the services on `parts`, loads the gallery (from its
    /// snapshot or the store) and moves cards stored whole into the vault.
    pub async fn start(parts: Parts, config: Config) -> Result<Self, Failure> {
        let Parts {
            store,
            engine,
            enrolment_engine,
            liveness,
            vault,
            keys,
            transforms,
            clock,
        } = parts;
        let core = Arc::new(Core::new(store, clock, Envelope::new(keys), vault, config));
        let enrolment_engine = enrolment_engine.unwrap_or_else(|| Arc::clone(&engine));
        let identity = Arc::new(Identity::new(
            Arc::clone(&core),
            [engine, enrolment_engine],
            liveness,
            transforms,
        )?);
        let payments = Arc::new(Payments::new(Arc::clone(&core), Arc::clone(&identity))?);
        let merchant = Arc::new(MerchantOps::new(Arc::clone(&core), Arc::clone(&identity)));
        let loyalty = Arc::new(Loyalty::new(Arc::clone(&core), Arc::clone(&identity)));
        let claims = Arc::new(Claims::new(
            Arc::clone(&core),
            Arc::clone(&identity),
            Arc::clone(&merchant),
        ));
        let keys = Arc::new(KeyManagement::new(Arc::clone(&core)));
        let webhooks = Arc::new(Webhooks::new(Arc::clone(&core)));
        let access = Arc::new(Access::new(Arc::clone(&core)));
        let onboarding = Arc::new(Onboarding::new(Arc::clone(&core)));
        identity
            .load_gallery()
            .await
            .map_err(|f| not_started("the gallery could not be loaded from the store", f))?;
        keys.move_cards_to_vault()
            .await
            .map_err(|f| not_started("the cards stored whole could not move to the vault", f))?;
        Ok(Self {
            core,
            identity,
            payments,
            merchant,
            loyalty,
            claims,
            keys,
            webhooks,
            access,
            onboarding,
        })
    }

    pub fn store(&self) -> &Store {
        self.core.store()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.core.clock()
    }

    pub fn envelope(&self) -> &Envelope {
        self.core.envelope()
    }
}

/// A failure at start-up, said as one: a request's "retry with the same
/// idempotency key" means nothing here. What went wrong inside was logged
/// where it happened.
fn not_started(what: &str, f: Failure) -> Failure {
    if f.status < 500 {
        return f;
    }
    let hint = match f.code {
        "internal" => {
            "see the error logged just before; records sealed under other keys (another \
             deployment's data directory) cannot be opened"
        }
        _ => f.message.as_str(),
    };
    Failure::new(f.status, f.code, format!("{what}: {hint}"))
}

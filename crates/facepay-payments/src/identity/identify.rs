//! Who is paying: the gallery search a payment or a step-up runs, narrowed
//! by what the till knows, and the probes kept for a step-up.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use facepay_gallery::{CANDIDATES_MAX, Candidate, Decision, GalleryError, Scope};

use super::Identity;
use crate::error::Failure;

/// Probes kept for step-ups at most, and for how long: a step-up comes
/// within seconds of its payment, from the same till.
const PROBES_MAX: usize = 10_000;
const PROBE_TTL_MS: i64 = 10 * 60_000;

impl From<GalleryError> for Failure {
    fn from(e: GalleryError) -> Self {
        tracing::error!(error = %e, "gallery failure");
        Failure::internal()
    }
}

pub(crate) fn phone_partition(last4: &str) -> String {
    format!("phone:{last4}")
}

pub(crate) fn merchant_partition(merchant_id: &str) -> String {
    format!("merchant:{merchant_id}")
}

/// The protected probes of payments awaiting a step-up, in memory only,
/// so that a step-up by phone digits can search that phone's partition
/// instead of the few candidates of the first search.
#[derive(Default)]
pub(crate) struct Probes {
    inner: Mutex<KeptProbes>,
}

/// Probe and time kept, by payment id, and the ids oldest first.
type KeptProbes = (HashMap<String, (Vec<f32>, i64)>, VecDeque<String>);

impl Probes {
    pub(crate) fn keep(&self, payment_id: &str, probe: Vec<f32>, now: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *inner;
        while order.len() >= PROBES_MAX
            || order
                .front()
                .and_then(|id| map.get(id))
                .is_some_and(|(_, at)| now - at > PROBE_TTL_MS)
        {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            map.remove(&oldest);
        }
        if map.insert(payment_id.to_owned(), (probe, now)).is_none() {
            order.push_back(payment_id.to_owned());
        }
    }

    pub(crate) fn get(&self, payment_id: &str, now: i64) -> Option<Vec<f32>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .0
            .get(payment_id)
            .filter(|(_, at)| now - at <= PROBE_TTL_MS)
            .map(|(probe, _)| probe.clone())
    }

    pub(crate) fn forget(&self, payment_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.remove(payment_id);
    }
}

/// The decision for a probe, and the best candidate's lead over the
/// second among those searched (1 when it was alone).
pub(crate) struct Identified {
    pub decision: Decision,
    pub lead: f32,
}

impl Identity {
    /// The decision for a payment's probe. With the payer's phone digits
    /// from the till, only that phone's partition is searched. Otherwise the
    /// merchant's regulars are searched first, and one of them is taken
    /// without a full search only when their score clears the strong
    /// threshold by the margin too; anything less searches everyone.
    pub(crate) fn identify(
        &self,
        probe: &[f32],
        phone_last4: Option<&str>,
        merchant_id: &str,
    ) -> Result<Identified, Failure> {
        let policy = &self.core.config.decision;
        let floor = policy.match_threshold;
        let decided = |found: Vec<Candidate>| Identified {
            lead: match found.as_slice() {
                [best, second, ..] => best.score - second.score,
                _ => 1.0,
            },
            decision: policy.decide(found),
        };
        if let Some(digits) = phone_last4 {
            let key = phone_partition(digits);
            let found =
                self.gallery
                    .search(probe, Scope::Partition(&key), floor, CANDIDATES_MAX)?;
            return Ok(decided(found));
        }
        let regulars = merchant_partition(merchant_id);
        let found =
            self.gallery
                .search(probe, Scope::Partition(&regulars), floor, CANDIDATES_MAX)?;
        let among_regulars = decided(found);
        if let Decision::Match(best) = &among_regulars.decision
            && best.score >= policy.strong_threshold + policy.margin_min
        {
            return Ok(among_regulars);
        }
        let found = self
            .gallery
            .search(probe, Scope::All, floor, CANDIDATES_MAX)?;
        Ok(decided(found))
    }

    /// The candidates of a step-up by phone digits: the phone's partition
    /// searched with the payment's probe, when it is still kept.
    pub(crate) fn phone_candidates(
        &self,
        payment_id: &str,
        digits: &str,
    ) -> Result<Option<Vec<Candidate>>, Failure> {
        let Some(probe) = self.probes.get(payment_id, self.core.now_ms()) else {
            return Ok(None);
        };
        let key = phone_partition(digits);
        Ok(Some(self.gallery.search(
            &probe,
            Scope::Partition(&key),
            self.core.config.decision.match_threshold,
            CANDIDATES_MAX,
        )?))
    }

    /// Keeps a payment's probe for its step-up.
    pub(crate) fn keep_probe(&self, payment_id: &str, probe: Vec<f32>) {
        self.probes.keep(payment_id, probe, self.core.now_ms());
    }

    /// Forgets a payment's probe: its step-up is over.
    pub(crate) fn forget_probe(&self, payment_id: &str) {
        self.probes.forget(payment_id);
    }

    /// Whether the user is among the merchant's regulars on this server.
    pub(crate) fn is_regular(&self, user_id: &str, merchant_id: &str) -> bool {
        self.gallery
            .in_partition(user_id, &merchant_partition(merchant_id))
    }

    /// Adds the user to the merchant's regulars on this server, after the
    /// change that made them one is committed. A user past the partition
    /// limit is still found by a full search.
    pub(crate) fn join_regulars(&self, user_id: &str, merchant_id: &str) {
        let _ = self
            .gallery
            .join_partition(user_id, &merchant_partition(merchant_id));
    }
}

//! Who people are: enrolment of a face and a card, the user's own account,
//! the in-memory gallery and the search a payment runs on it, the probes
//! kept for step-ups, face analysis on the inference slots (two lanes:
//! payments, and enrolment with any other face work), and the change
//! log that keeps every server's gallery in step (with the snapshot that
//! spares a restart from opening every template).

mod account;
mod enrol;
mod follow;
mod gallery;
mod identify;
pub mod import;
mod lanes;
pub mod snapshot;
mod wallet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use facepay_face::liveness::LivenessChecker;
use facepay_face::{FaceEngine, QualityPolicy};
use facepay_gallery::{Gallery, GalleryConfig};
use facepay_store::parties::StoredTemplate;
use facepay_template_transform::TransformKeys;
use tokio::sync::Mutex;

use crate::core::Core;
use crate::error::Failure;
use crate::face::{BurstOutcome, analyse_burst};
use crate::templates::convert;
pub(crate) use lanes::Lane;
use lanes::Lanes;

pub struct Identity {
    core: Arc<Core>,
    /// The engine payments run on.
    engine: Arc<FaceEngine>,
    /// The engine of the enrolment lane: the same model, in sessions of
    /// its own.
    enrolment_engine: Arc<FaceEngine>,
    liveness: Arc<LivenessChecker>,
    gallery: Gallery,
    /// The last change-log entry applied to the gallery.
    changes_seen: Mutex<i64>,
    /// Whether start-up read the gallery from its snapshot file.
    gallery_restored: AtomicBool,
    /// This server's last snapshot file (written or read at start); held
    /// while one is written.
    snapshot: Mutex<Option<snapshot::Written>>,
    /// Probes of payments awaiting a step-up.
    probes: identify::Probes,
    transforms: Arc<TransformKeys>,
    /// The transform of the gallery's space: current when this started.
    transform_id: String,
    /// The inference slots: payments', and apart from them those of face
    /// work that needs no credential.
    lanes: Lanes,
    enrol_lock: Mutex<()>,
    /// New regulars queued for the change log.
    announcements: Arc<std::sync::Mutex<follow::Announcements>>,
}

impl Identity {
    /// An empty gallery in the space of the current transform;
    /// [`Services::start`](crate::Services::start) loads it.
    pub fn new(
        core: Arc<Core>,
        [engine, enrolment_engine]: [Arc<FaceEngine>; 2],
        liveness: Arc<LivenessChecker>,
        transforms: Arc<TransformKeys>,
    ) -> Result<Self, Failure> {
        // An enrolment's template is compared with the payments' gallery:
        // both lanes must embed with one model.
        if enrolment_engine.model_id() != engine.model_id() {
            return Err(Failure::new(
                500,
                "engines_differ",
                format!(
                    "the enrolment lane's model {} is not the payments' {}",
                    enrolment_engine.model_id(),
                    engine.model_id()
                ),
            ));
        }
        let config = &core.config;
        let gallery = Gallery::new(GalleryConfig {
            kind: config.gallery_kind,
            threads: config.gallery_threads,
            keep_floats: config.gallery_keep_floats,
            ..GalleryConfig::new(facepay_face::embed::EMBEDDING_DIMENSIONS)
        })?;
        Ok(Self {
            lanes: Lanes::new(
                config.inference_concurrency,
                config.enrolment_inference_concurrency,
                config.enrolment_waiting_max,
            ),
            transform_id: transforms.current_id()?,
            transforms,
            engine,
            enrolment_engine,
            liveness,
            gallery,
            changes_seen: Mutex::new(0),
            gallery_restored: AtomicBool::new(false),
            snapshot: Mutex::new(None),
            probes: identify::Probes::default(),
            enrol_lock: Mutex::new(()),
            announcements: Arc::default(),
            core,
        })
    }

    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// Whether start-up read the gallery from its snapshot file rather
    /// than from the store.
    pub fn gallery_restored(&self) -> bool {
        self.gallery_restored.load(Ordering::Relaxed)
    }

    /// A burst through the face engine and the liveness checker under the
    /// configured liveness mode, on one of `lane`'s inference slots: more
    /// analyses than slots wait their turn.
    pub(crate) async fn analyse(
        &self,
        frames: Vec<Vec<u8>>,
        policy: QualityPolicy,
        lane: Lane,
    ) -> Result<BurstOutcome, Failure> {
        let mode = self.core.config.liveness;
        let engine = Arc::clone(match lane {
            Lane::Payment => &self.engine,
            Lane::Enrolment => &self.enrolment_engine,
        });
        let liveness = Arc::clone(&self.liveness);
        self.lanes
            .run(lane, move || {
                analyse_burst(&engine, &liveness, mode, &policy, &frames)
            })
            .await?
    }

    /// Face work for a caller who is not a terminal (the engine's demo
    /// analysis), on the enrolment lane's slots and engine.
    pub async fn on_enrolment_lane<T: Send + 'static>(
        &self,
        work: impl FnOnce(&FaceEngine) -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let engine = Arc::clone(&self.enrolment_engine);
        self.lanes.run(Lane::Enrolment, move || work(&engine)).await
    }

    /// A fresh template moved into the gallery's space.
    pub(crate) fn protect(&self, raw: &[f32]) -> Result<Vec<f32>, Failure> {
        Ok(self
            .transforms
            .by_id(&self.transform_id, raw.len())?
            .apply(raw)?)
    }

    /// A stored template, opened, in the gallery's space.
    fn stored_in_gallery_space(
        &self,
        stored: &StoredTemplate,
        vector: Vec<f32>,
    ) -> Result<Vec<f32>, Failure> {
        convert(
            &self.transforms,
            stored.transform_id.as_deref(),
            &self.transform_id,
            vector,
        )
    }
}

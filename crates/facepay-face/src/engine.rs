//! The engine: models loaded once, stages wired, timings recorded.

use std::time::Instant;

use facepay_models::{FetchError, ModelStore, catalogue};
use image::RgbImage;
use serde::Serialize;

use crate::decode::{DecodeError, decode};
use crate::detect::{self, Detection, DetectorConfig};
use crate::embed::{self, ModelId, Template};
use crate::quality::{self, QualityPolicy, QualityReason, QualityReport};
use crate::runtime::{Backend, Model, RuntimeError, RuntimeOptions, load_model};
use crate::{align, align::ALIGNED_SIZE_PX};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Models(#[from] FetchError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the landmarks are degenerate; the face cannot be aligned")]
    Degenerate,
}

impl EngineError {
    /// A stable machine code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Decode(e) => e.code(),
            EngineError::Models(_) => "models_unavailable",
            EngineError::Runtime(_) => "inference_failed",
            EngineError::Degenerate => "face_degenerate",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub backend: Backend,
    pub threads_intra: usize,
    /// Analyses the caller runs at once (see `RuntimeOptions::sessions`).
    pub sessions: usize,
    pub detector: DetectorConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Ort,
            threads_intra: 1,
            sessions: 1,
            detector: DetectorConfig::default(),
        }
    }
}

/// Microseconds spent in each stage of one analysis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimings {
    pub decode_us: u64,
    pub detect_us: u64,
    pub align_us: u64,
    pub quality_us: u64,
    pub embed_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChosenFace {
    pub detection: Detection,
    pub quality: QualityReport,
    /// Present only when the quality gate passed.
    pub template: Option<Template>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaceAnalysis {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<Detection>,
    /// The largest face, which is the one that enrols or pays.
    pub chosen: Option<ChosenFace>,
    /// Named reasons the frame cannot be used; empty when it can.
    pub rejections: Vec<QualityReason>,
    pub timings: StageTimings,
}

pub struct FaceEngine {
    detector: Box<dyn Model>,
    embedder: Box<dyn Model>,
    model_id: ModelId,
    config: EngineConfig,
}

fn elapsed_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

impl FaceEngine {
    /// Loads YuNet and SFace from the model cache on the chosen runtime.
    pub fn load(store: &ModelStore, config: EngineConfig) -> Result<Self, EngineError> {
        let detector_path = store.require(catalogue::YUNET)?;
        let embedder_path = store.require(catalogue::SFACE)?;
        let library = match config.backend {
            Backend::Ort => Some(store.require(catalogue::ONNXRUNTIME_LIBRARY)?),
            Backend::Tract => None,
        };
        let options = RuntimeOptions {
            backend: config.backend,
            threads_intra: config.threads_intra,
            sessions: config.sessions,
            onnxruntime_library: library.as_deref(),
        };
        let detector = load_model(&detector_path, &options)?;
        let embedder = load_model(&embedder_path, &options)?;
        let sface_sha256 = catalogue::artifact(catalogue::SFACE)
            .map(|a| a.sha256)
            .unwrap_or_default();
        Ok(Self {
            detector,
            embedder,
            model_id: ModelId::sface(sface_sha256),
            config,
        })
    }

    pub fn backend(&self) -> Backend {
        self.config.backend
    }

    pub fn model_id(&self) -> &ModelId {
        &self.model_id
    }

    /// Every face in the image, strongest first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, EngineError> {
        Ok(detect::detect(
            self.detector.as_ref(),
            image,
            &self.config.detector,
        )?)
    }

    /// The 112x112 crop of one face.
    pub fn align(&self, image: &RgbImage, face: &Detection) -> Result<RgbImage, EngineError> {
        align::align(image, &face.landmarks).ok_or(EngineError::Degenerate)
    }

    /// Templates of aligned crops, in one batch where the runtime allows it.
    pub fn embed(&self, aligned: &[RgbImage]) -> Result<Vec<Template>, EngineError> {
        if aligned
            .iter()
            .any(|a| a.dimensions() != (ALIGNED_SIZE_PX, ALIGNED_SIZE_PX))
        {
            return Err(EngineError::Degenerate);
        }
        Ok(embed::embed(
            self.embedder.as_ref(),
            &self.model_id,
            aligned,
        )?)
    }

    /// The whole pipeline on one encoded image: decode, detect, choose the
    /// largest face, align, check quality, and embed if the quality passed.
    pub fn analyze(
        &self,
        bytes: &[u8],
        policy: &QualityPolicy,
    ) -> Result<FaceAnalysis, EngineError> {
        let mut timings = StageTimings::default();
        let start = Instant::now();
        let image = decode(bytes)?;
        timings.decode_us = elapsed_us(start);
        let mut analysis = self.analyze_image(&image, policy)?;
        analysis.timings.decode_us = timings.decode_us;
        Ok(analysis)
    }

    pub fn analyze_image(
        &self,
        image: &RgbImage,
        policy: &QualityPolicy,
    ) -> Result<FaceAnalysis, EngineError> {
        let mut timings = StageTimings::default();
        let start = Instant::now();
        let faces = self.detect(image)?;
        timings.detect_us = elapsed_us(start);

        let largest = detect::largest(&faces);
        let Some(face) = largest else {
            return Ok(FaceAnalysis {
                width: image.width(),
                height: image.height(),
                faces,
                chosen: None,
                rejections: vec![QualityReason::NoFace],
                timings,
            });
        };

        let start = Instant::now();
        let aligned = self.align(image, &face)?;
        timings.align_us = elapsed_us(start);

        let start = Instant::now();
        let quality = quality::assess(&face, &aligned, faces.len(), policy);
        timings.quality_us = elapsed_us(start);

        let template = if quality.passed {
            let start = Instant::now();
            let template = self.embed(std::slice::from_ref(&aligned))?.pop();
            timings.embed_us = elapsed_us(start);
            template
        } else {
            None
        };
        Ok(FaceAnalysis {
            width: image.width(),
            height: image.height(),
            rejections: quality.reasons.clone(),
            faces,
            chosen: Some(ChosenFace {
                detection: face,
                quality,
                template,
            }),
            timings,
        })
    }
}

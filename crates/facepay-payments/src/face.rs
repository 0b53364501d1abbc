//! A burst of frames through the face engine: one template for identity and
//! one liveness verdict. Blocking and CPU-bound; callers run it on a
//! blocking thread.

use std::time::Instant;

use facepay_face::liveness::{LivenessChecker, LivenessDecision, LivenessFrame};
use facepay_face::{EngineError, FaceEngine, QualityPolicy, QualityReason, Template, decode};
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// Frames in one request: the liveness checker's bound.
pub const FRAMES_MAX: usize = facepay_face::liveness::FRAMES_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessMode {
    /// Only a burst judged live may enrol or pay.
    Strict,
    /// A burst judged a spoof is refused; one without enough evidence either
    /// way (a single still photo) passes, with the verdict recorded. For
    /// demonstrations with still photos only.
    Lenient,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaceTimings {
    pub decode_us: u64,
    pub face_us: u64,
    pub liveness_us: u64,
}

pub struct BurstOutcome {
    pub template: Template,
    pub liveness: LivenessDecision,
    pub timings: FaceTimings,
}

fn engine_failure(e: EngineError) -> Failure {
    match e {
        EngineError::Decode(d) => {
            Failure::unprocessable(d.code(), format!("a frame could not be read: {d}"))
        }
        EngineError::Degenerate => Failure::unprocessable("face_degenerate", e.to_string()),
        other => {
            tracing::error!(error = %other, "face engine failure");
            Failure::internal()
        }
    }
}

fn quality_failure(reasons: &[QualityReason]) -> Failure {
    let code = if reasons.contains(&QualityReason::NoFace) {
        "no_face"
    } else {
        "face_quality_too_low"
    };
    let words: Vec<&str> = reasons.iter().map(|r| r.guidance()).collect();
    Failure::unprocessable(code, format!("no usable face: {}", words.join("; ")))
}

pub fn analyse_burst(
    engine: &FaceEngine,
    checker: &LivenessChecker,
    mode: LivenessMode,
    policy: &QualityPolicy,
    frames: &[Vec<u8>],
) -> Result<BurstOutcome, Failure> {
    if frames.is_empty() || frames.len() > FRAMES_MAX {
        return Err(Failure::unprocessable(
            "frames_count",
            format!("send 1 to {FRAMES_MAX} frames"),
        ));
    }
    let mut timings = FaceTimings::default();
    let mut images = Vec::with_capacity(frames.len());
    for bytes in frames {
        let start = Instant::now();
        images.push(decode(bytes).map_err(|e| engine_failure(e.into()))?);
        timings.decode_us += start.elapsed().as_micros() as u64;
    }

    let start = Instant::now();
    let mut template = None;
    let mut first_rejections = Vec::new();
    let mut faces = Vec::with_capacity(images.len());
    for (index, image) in images.iter().enumerate() {
        let analysis = engine
            .analyze_image(image, policy)
            .map_err(engine_failure)?;
        if index == 0 {
            first_rejections = analysis.rejections.clone();
        }
        if let Some(chosen) = analysis.chosen {
            faces.push(LivenessFrame {
                image,
                face: chosen.detection,
            });
            if template.is_none() {
                template = chosen.template;
            }
        }
    }
    timings.face_us = start.elapsed().as_micros() as u64;
    let Some(template) = template else {
        return Err(quality_failure(&first_rejections));
    };

    let start = Instant::now();
    let report = checker.check(&faces, None).map_err(|e| {
        Failure::unprocessable("liveness_input", format!("the burst cannot be judged: {e}"))
    })?;
    timings.liveness_us = start.elapsed().as_micros() as u64;
    let refused = match (report.decision, mode) {
        (LivenessDecision::Live, _) => false,
        (LivenessDecision::Spoof, _) => true,
        (LivenessDecision::Inconclusive, LivenessMode::Strict) => true,
        (LivenessDecision::Inconclusive, LivenessMode::Lenient) => false,
    };
    if refused {
        let reasons: Vec<&str> = report.reasons.iter().map(|r| r.code()).collect();
        return Err(Failure::unprocessable(
            "liveness_failed",
            format!(
                "the camera did not see a live face ({}); look at the camera and turn your head slightly",
                reasons.join(", ")
            ),
        ));
    }
    Ok(BurstOutcome {
        template,
        liveness: report.decision,
        timings,
    })
}

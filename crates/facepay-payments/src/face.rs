//! A burst of frames through the face engine: one template for identity and
//! one liveness verdict. Blocking and CPU-bound; callers run it on a
//! blocking thread.

use std::time::Instant;

use facepay_face::liveness::{LivenessChecker, LivenessDecision, LivenessFrame};
use facepay_face::{EngineError, FaceEngine, QualityPolicy, QualityReason, Template, decode};
use image::RgbImage;
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

/// A burst through the named stages: decode every frame, find the face in
/// each (its quality checked, the first usable one embedded), judge
/// liveness over them, and refuse what the mode does not let through.
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
    let start = Instant::now();
    let images = decode_frames(frames)?;
    timings.decode_us = elapsed_us(start);
    let start = Instant::now();
    let (template, faces) = find_faces(engine, policy, &images)?;
    timings.face_us = elapsed_us(start);
    let start = Instant::now();
    let liveness = judge_liveness(checker, mode, &faces)?;
    timings.liveness_us = elapsed_us(start);
    Ok(BurstOutcome {
        template,
        liveness,
        timings,
    })
}

fn elapsed_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn decode_frames(frames: &[Vec<u8>]) -> Result<Vec<RgbImage>, Failure> {
    frames
        .iter()
        .map(|bytes| decode(bytes).map_err(|e| engine_failure(e.into())))
        .collect()
}

/// The face chosen in each frame that has a usable one, and the template
/// of the first. No usable face at all is refused with the first frame's
/// reasons.
fn find_faces<'a>(
    engine: &FaceEngine,
    policy: &QualityPolicy,
    images: &'a [RgbImage],
) -> Result<(Template, Vec<LivenessFrame<'a>>), Failure> {
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
    match template {
        Some(template) => Ok((template, faces)),
        None => Err(quality_failure(&first_rejections)),
    }
}

/// The liveness decision over the faces, refused when it is a spoof, or
/// inconclusive in strict mode.
fn judge_liveness(
    checker: &LivenessChecker,
    mode: LivenessMode,
    faces: &[LivenessFrame<'_>],
) -> Result<LivenessDecision, Failure> {
    let report = checker.check(faces, None).map_err(|e| {
        Failure::unprocessable("liveness_input", format!("the burst cannot be judged: {e}"))
    })?;
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
    Ok(report.decision)
}

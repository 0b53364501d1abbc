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
/// Pixels of one burst, all frames together: eight 1080p frames. A frame
/// alone may hold up to `IMAGE_PIXELS_MAX`, but a burst decodes every
/// frame before liveness looks at them, so eight of the largest would take
/// 600 MB of RGB at once.
pub const BURST_PIXELS_MAX: u64 = 8 * 1920 * 1080;

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
    check_burst_pixels(frames)?;
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

/// Refuses a burst whose frames' headers add up to more than
/// `BURST_PIXELS_MAX`, before any frame is decoded. A frame whose header
/// cannot be read counts nothing here: decoding refuses it with its
/// reason.
fn check_burst_pixels(frames: &[Vec<u8>]) -> Result<(), Failure> {
    let pixels: u64 = frames
        .iter()
        .filter_map(|bytes| {
            image::ImageReader::new(std::io::Cursor::new(bytes))
                .with_guessed_format()
                .ok()?
                .into_dimensions()
                .ok()
        })
        .map(|(width, height)| u64::from(width) * u64::from(height))
        .sum();
    if pixels > BURST_PIXELS_MAX {
        return Err(Failure::unprocessable(
            "burst_too_many_pixels",
            format!(
                "the frames hold {pixels} pixels together, over the limit of {BURST_PIXELS_MAX} \
                 per request; send smaller frames"
            ),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and header claiming `width` x `height`, and an empty
    /// image data chunk: no pixels.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&width.to_be_bytes());
        chunk.extend_from_slice(&height.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        // The decoder reports the size once the image data begins.
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(b"IDAT");
        png.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_burst_is_bounded_in_pixels_before_any_frame_is_decoded() {
        let one = vec![png_header(3000, 3000)];
        assert_eq!(check_burst_pixels(&one).map_err(|f| f.code), Ok(()));
        let two = vec![png_header(3000, 3000), png_header(3000, 3000)];
        let refused = check_burst_pixels(&two).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (422, "burst_too_many_pixels")
        );
        let eight_1080p = vec![png_header(1920, 1080); FRAMES_MAX];
        assert!(check_burst_pixels(&eight_1080p).is_ok());
        let unreadable = vec![b"not an image".to_vec(), png_header(1920, 1080)];
        assert!(check_burst_pixels(&unreadable).is_ok());
    }
}

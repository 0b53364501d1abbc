//! The quality gate: is this face good enough to enrol, or to pay with?
//!
//! Each check that fails names its reason, so a screen can tell the person
//! what to do ("move closer", "hold still", "find some light").

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Detection;
use crate::geometry::Point;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityReason {
    NoFace,
    MultipleFaces,
    FaceTooSmall,
    LowDetectionScore,
    ExtremePose,
    TooBlurry,
    TooDark,
    TooBright,
}

impl QualityReason {
    pub fn code(self) -> &'static str {
        match self {
            QualityReason::NoFace => "no_face",
            QualityReason::MultipleFaces => "multiple_faces",
            QualityReason::FaceTooSmall => "face_too_small",
            QualityReason::LowDetectionScore => "low_detection_score",
            QualityReason::ExtremePose => "extreme_pose",
            QualityReason::TooBlurry => "too_blurry",
            QualityReason::TooDark => "too_dark",
            QualityReason::TooBright => "too_bright",
        }
    }

    /// Plain guidance for the person in front of the camera.
    pub fn guidance(self) -> &'static str {
        match self {
            QualityReason::NoFace => "No face found: look at the camera.",
            QualityReason::MultipleFaces => "More than one face: only the payer should be in view.",
            QualityReason::FaceTooSmall => "Move closer to the camera.",
            QualityReason::LowDetectionScore => "Face not clear: look straight at the camera.",
            QualityReason::ExtremePose => "Face the camera straight on.",
            QualityReason::TooBlurry => "Hold still.",
            QualityReason::TooDark => "Too dark: find more light.",
            QualityReason::TooBright => "Too bright: avoid strong light behind or on the face.",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityPolicy {
    /// Distance between the eyes, in image pixels.
    pub eye_distance_px_min: f32,
    pub detection_score_min: f32,
    pub yaw_degrees_max: f32,
    pub pitch_degrees_max: f32,
    pub roll_degrees_max: f32,
    /// Variance of the Laplacian over the aligned 112x112 grey face.
    pub sharpness_min: f32,
    /// Mean grey level of the aligned face, 0..255.
    pub brightness_min: f32,
    pub brightness_max: f32,
    /// When false, a second face in the frame is a rejection.
    pub allow_multiple_faces: bool,
}

impl QualityPolicy {
    /// Enrolment makes the reference every later payment is compared with:
    /// only a sharp, frontal, well-lit, single face.
    pub fn enrolment() -> Self {
        Self {
            eye_distance_px_min: 40.0,
            detection_score_min: 0.8,
            yaw_degrees_max: 25.0,
            pitch_degrees_max: 25.0,
            roll_degrees_max: 20.0,
            sharpness_min: 60.0,
            brightness_min: 60.0,
            brightness_max: 200.0,
            allow_multiple_faces: false,
        }
    }

    /// Payment tolerates a busier, less perfect frame: the largest face pays,
    /// and bystanders do not block the till.
    pub fn payment() -> Self {
        Self {
            eye_distance_px_min: 24.0,
            detection_score_min: 0.6,
            yaw_degrees_max: 40.0,
            pitch_degrees_max: 35.0,
            roll_degrees_max: 35.0,
            sharpness_min: 15.0,
            brightness_min: 35.0,
            brightness_max: 225.0,
            allow_multiple_faces: true,
        }
    }
}

/// Head pose estimated from the five landmarks alone. Coarse (a few degrees)
/// but free, and enough to refuse a face seen from the side.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pose {
    pub yaw_degrees: f32,
    pub pitch_degrees: f32,
    pub roll_degrees: f32,
}

/// In the 112x112 template, the nose sits this far from the eye line towards
/// the mouth line, as a fraction of the eye-to-mouth distance.
const FRONTAL_NOSE_FRACTION: f32 = 0.494;

pub fn estimate_pose(landmarks: &[Point; 5]) -> Pose {
    let [right_eye, left_eye, nose, right_mouth, left_mouth] = *landmarks;
    let roll = (left_eye.y - right_eye.y).atan2(left_eye.x - right_eye.x);
    // Undo the roll so yaw and pitch are read along the face's own axes.
    let (sin, cos) = (-roll).sin_cos();
    let centre = right_eye.midpoint(left_eye);
    let rotate = |p: Point| {
        let (x, y) = (p.x - centre.x, p.y - centre.y);
        Point::new(x * cos - y * sin, x * sin + y * cos)
    };
    let (re, le, n) = (rotate(right_eye), rotate(left_eye), rotate(nose));
    let mouth = rotate(right_mouth.midpoint(left_mouth));
    let eye_half = ((le.x - re.x) / 2.0).max(1e-3);
    // The nose moves sideways in proportion to sin(yaw), relative to half the
    // eye distance (about the nose's depth in front of the eye plane).
    let yaw = (n.x / eye_half).clamp(-1.0, 1.0).asin();
    let eye_to_mouth = mouth.y.max(1e-3);
    let pitch_fraction = n.y / eye_to_mouth - FRONTAL_NOSE_FRACTION;
    let pitch = (pitch_fraction * 2.0).clamp(-1.0, 1.0).asin();
    Pose {
        yaw_degrees: yaw.to_degrees(),
        pitch_degrees: pitch.to_degrees(),
        roll_degrees: roll.to_degrees(),
    }
}

/// Variance of the 4-neighbour Laplacian of the grey image: low when blurred.
pub fn laplacian_variance(grey: &[f32], width: usize, height: usize) -> f32 {
    assert_eq!(grey.len(), width * height);
    if width < 3 || height < 3 {
        return 0.0;
    }
    let (mut sum, mut sum_squares) = (0.0f64, 0.0f64);
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            let i = y * width + x;
            let l = f64::from(
                grey[i - 1] + grey[i + 1] + grey[i - width] + grey[i + width] - 4.0 * grey[i],
            );
            sum += l;
            sum_squares += l * l;
        }
    }
    let n = ((width - 2) * (height - 2)) as f64;
    let mean = sum / n;
    (sum_squares / n - mean * mean) as f32
}

pub fn grey(image: &RgbImage) -> Vec<f32> {
    image
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub passed: bool,
    pub reasons: Vec<QualityReason>,
    pub eye_distance_px: f32,
    pub detection_score: f32,
    pub pose: Pose,
    pub sharpness: f32,
    pub brightness: f32,
}

/// Judges the chosen face of a frame. `faces_in_frame` counts every face the
/// detector found; `aligned` is the chosen face's 112x112 crop.
pub fn assess(
    face: &Detection,
    aligned: &RgbImage,
    faces_in_frame: usize,
    policy: &QualityPolicy,
) -> QualityReport {
    let mut reasons = Vec::new();
    if faces_in_frame > 1 && !policy.allow_multiple_faces {
        reasons.push(QualityReason::MultipleFaces);
    }
    let eye_distance_px = face.landmarks[0].distance(face.landmarks[1]);
    if eye_distance_px < policy.eye_distance_px_min {
        reasons.push(QualityReason::FaceTooSmall);
    }
    if face.score < policy.detection_score_min {
        reasons.push(QualityReason::LowDetectionScore);
    }
    let pose = estimate_pose(&face.landmarks);
    if pose.yaw_degrees.abs() > policy.yaw_degrees_max
        || pose.pitch_degrees.abs() > policy.pitch_degrees_max
        || pose.roll_degrees.abs() > policy.roll_degrees_max
    {
        reasons.push(QualityReason::ExtremePose);
    }
    let grey = grey(aligned);
    let sharpness = laplacian_variance(&grey, aligned.width() as usize, aligned.height() as usize);
    if sharpness < policy.sharpness_min {
        reasons.push(QualityReason::TooBlurry);
    }
    let brightness = grey.iter().sum::<f32>() / grey.len().max(1) as f32;
    if brightness < policy.brightness_min {
        reasons.push(QualityReason::TooDark);
    }
    if brightness > policy.brightness_max {
        reasons.push(QualityReason::TooBright);
    }
    QualityReport {
        passed: reasons.is_empty(),
        reasons,
        eye_distance_px,
        detection_score: face.score,
        pose,
        sharpness,
        brightness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::TEMPLATE;

    #[test]
    fn the_template_is_frontal() {
        let pose = estimate_pose(&TEMPLATE);
        assert!(pose.yaw_degrees.abs() < 2.0, "{pose:?}");
        assert!(pose.pitch_degrees.abs() < 2.0, "{pose:?}");
        assert!(pose.roll_degrees.abs() < 1.0, "{pose:?}");
    }

    #[test]
    fn a_turned_head_has_yaw_and_a_tilted_one_roll() {
        let mut turned = TEMPLATE;
        turned[2].x += 15.0;
        assert!(estimate_pose(&turned).yaw_degrees > 45.0);

        let angle = 30f32.to_radians();
        let tilted = TEMPLATE.map(|p| {
            Point::new(
                p.x * angle.cos() - p.y * angle.sin(),
                p.x * angle.sin() + p.y * angle.cos(),
            )
        });
        let pose = estimate_pose(&tilted);
        assert!((pose.roll_degrees - 30.0).abs() < 0.5, "{pose:?}");
        assert!(pose.yaw_degrees.abs() < 2.0, "{pose:?}");
    }

    #[test]
    fn blur_lowers_laplacian_variance() {
        let sharp: Vec<f32> = (0..32 * 32)
            .map(|i| {
                if (i / 32 + i % 32) % 2 == 0 {
                    255.0
                } else {
                    0.0
                }
            })
            .collect();
        let flat = vec![128.0; 32 * 32];
        assert!(laplacian_variance(&sharp, 32, 32) > 1000.0);
        assert_eq!(laplacian_variance(&flat, 32, 32), 0.0);
    }

    #[test]
    fn reasons_are_named() {
        let face = Detection {
            bbox: Default::default(),
            landmarks: TEMPLATE.map(|p| Point::new(p.x / 4.0, p.y / 4.0)),
            score: 0.5,
        };
        let dark = RgbImage::from_pixel(112, 112, image::Rgb([5, 5, 5]));
        let report = assess(&face, &dark, 2, &QualityPolicy::enrolment());
        assert!(!report.passed);
        for reason in [
            QualityReason::MultipleFaces,
            QualityReason::FaceTooSmall,
            QualityReason::LowDetectionScore,
            QualityReason::TooBlurry,
            QualityReason::TooDark,
        ] {
            assert!(
                report.reasons.contains(&reason),
                "{reason:?} missing from {report:?}"
            );
        }
        assert_eq!(QualityReason::ExtremePose.code(), "extreme_pose");
    }
}

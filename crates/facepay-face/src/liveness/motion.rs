//! Multi-frame geometry: does the face move like a plane?
//!
//! A printed photo or a screen is flat, so the image of any point on it in one
//! frame is tied to its image in another by one homography (a 3x3 projective
//! map, 8 degrees of freedom, fitted here by a normalised DLT and refined on
//! the pixel error). A head is not: its nose stands 2-3 cm out of the plane
//! of the eyes, brows and mouth, and shifts against them when the head turns
//! (parallax).
//!
//! The five detected landmarks fit a homography with 2 degrees of freedom to
//! spare, which is the textbook test; it is computed and reported
//! (`landmark_parallax_ied`) but not trusted: on photos warped as rigid
//! planes, YuNet's landmarks strayed from the plane by up to 0.06 inter-eye
//! distances, as much as a turning head's nose. So the decision rests on
//! seven points (the landmarks and the brows) *tracked* from the first frame
//! ([`super::track`]): the plane is fitted robustly through the eyes, brows
//! and mouth corners, and the parallax is how far the nose strays from it.
//!
//! Parallax alone cannot tell "flat" from "did not move": a still head also
//! fits a plane. So the motion is measured too, as what a 2D similarity
//! (shift, turn, zoom: 4 degrees of freedom) leaves unexplained; a face that
//! only slid across the image leaves none, and then we say so instead of
//! guessing. Residuals are standard errors, `√(sum of squares / residual
//! degrees of freedom)`, divided by the inter-eye distance, so that they
//! hold at any face size.

use image::RgbImage;
use nalgebra::{DMatrix, Matrix3, SMatrix, SVector, Vector3};

use super::track::{self, GreyPyramid, Region};
use crate::align::estimate_similarity;
use crate::geometry::Point;

/// Iterations of the Gauss-Newton refinement of a homography. The algebraic
/// fit is already close; a few steps reach the minimum of the pixel error.
const REFINE_ITERATIONS_MAX: usize = 10;

/// A plane-to-plane projective map: `p' ~ H p` in homogeneous coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub Matrix3<f64>);

impl Homography {
    /// The image of `p`, or `None` when `p` maps to infinity.
    pub fn apply(&self, p: Point) -> Option<Point> {
        let v = self.0 * Vector3::new(f64::from(p.x), f64::from(p.y), 1.0);
        if v.z.abs() < 1e-12 {
            return None;
        }
        Some(Point::new((v.x / v.z) as f32, (v.y / v.z) as f32))
    }
}

/// Translates points to their centroid and scales them so that their mean
/// distance from it is √2 (Hartley's normalisation). Without it the nine
/// columns of the DLT matrix differ by orders of magnitude and the fit is
/// poorly conditioned. `None` when the points coincide.
fn normalising_transform(points: &[Point]) -> Option<Matrix3<f64>> {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), p| {
        (sx + f64::from(p.x), sy + f64::from(p.y))
    });
    let (cx, cy) = (sx / n, sy / n);
    let mean_distance = points
        .iter()
        .map(|p| ((f64::from(p.x) - cx).powi(2) + (f64::from(p.y) - cy).powi(2)).sqrt())
        .sum::<f64>()
        / n;
    if mean_distance.is_nan() || mean_distance <= 1e-9 {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / mean_distance;
    Some(Matrix3::new(
        s,
        0.0,
        -s * cx,
        0.0,
        s,
        -s * cy,
        0.0,
        0.0,
        1.0,
    ))
}

fn transform(m: &Matrix3<f64>, p: Point) -> (f64, f64) {
    let v = m * Vector3::new(f64::from(p.x), f64::from(p.y), 1.0);
    (v.x / v.z, v.y / v.z)
}

/// The homography taking `from` onto `to` in the least-squares sense of the
/// pixel error: a normalised DLT (SVD of the 2n x 9 design matrix) refined by
/// Gauss-Newton. Needs at least 4 point pairs; `None` when they are
/// degenerate (coincident or collinear points) or not finite.
pub fn fit_homography(from: &[Point], to: &[Point]) -> Option<Homography> {
    if from.len() != to.len() || from.len() < 4 {
        return None;
    }
    let finite = |p: &Point| p.x.is_finite() && p.y.is_finite();
    if !from.iter().all(finite) || !to.iter().all(finite) {
        return None;
    }
    let t_from = normalising_transform(from)?;
    let t_to = normalising_transform(to)?;
    let a: Vec<(f64, f64)> = from.iter().map(|&p| transform(&t_from, p)).collect();
    let b: Vec<(f64, f64)> = to.iter().map(|&p| transform(&t_to, p)).collect();

    // At least 9 rows, so that the thin SVD keeps the whole right null space
    // (4 points give 8 equations; the padding rows are zero).
    let rows = (2 * a.len()).max(9);
    let mut design = DMatrix::<f64>::zeros(rows, 9);
    for (i, (&(x, y), &(u, v))) in a.iter().zip(&b).enumerate() {
        let r = 2 * i;
        let row_x = [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u];
        let row_y = [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v];
        for c in 0..9 {
            design[(r, c)] = row_x[c];
            design[(r + 1, c)] = row_y[c];
        }
    }
    let svd = design.try_svd(false, true, 1e-14, 1000)?;
    let v_t = svd.v_t?;
    // nalgebra does not promise an order of the singular values.
    let (smallest, _) = svd
        .singular_values
        .iter()
        .enumerate()
        .min_by(|x, y| x.1.total_cmp(y.1))?;
    let h = v_t.row(smallest);
    let mut normalised = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    if normalised[(2, 2)].abs() > 1e-12 {
        normalised /= normalised[(2, 2)];
    }
    let normalised = refine(normalised, &a, &b);
    let t_to_inverse = t_to.try_inverse()?;
    let mut full = t_to_inverse * normalised * t_from;
    if full[(2, 2)].abs() < 1e-12 {
        return None;
    }
    full /= full[(2, 2)];
    if full.iter().all(|v| v.is_finite()) {
        Some(Homography(full))
    } else {
        None
    }
}

fn sum_of_squares(h: &Matrix3<f64>, a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&(x, y), &(u, v))| {
            let w = h[(2, 0)] * x + h[(2, 1)] * y + h[(2, 2)];
            let px = (h[(0, 0)] * x + h[(0, 1)] * y + h[(0, 2)]) / w;
            let py = (h[(1, 0)] * x + h[(1, 1)] * y + h[(1, 2)]) / w;
            (px - u).powi(2) + (py - v).powi(2)
        })
        .sum()
}

/// Levenberg-Marquardt on the transfer error, in normalised coordinates,
/// with `h33` held at its value (the scale of `H` is free). The DLT minimises
/// an algebraic error; refining matters because an over-estimated residual
/// would make a tilted photo look less planar than it is.
fn refine(mut h: Matrix3<f64>, a: &[(f64, f64)], b: &[(f64, f64)]) -> Matrix3<f64> {
    const PARAMETERS: usize = 8;
    let mut error = sum_of_squares(&h, a, b);
    let mut damping = 1e-3;
    for _ in 0..REFINE_ITERATIONS_MAX {
        if error.is_nan() || error <= 1e-18 {
            break;
        }
        let mut jtj = SMatrix::<f64, PARAMETERS, PARAMETERS>::zeros();
        let mut jtr = SVector::<f64, PARAMETERS>::zeros();
        for (&(x, y), &(u, v)) in a.iter().zip(b) {
            let w = h[(2, 0)] * x + h[(2, 1)] * y + h[(2, 2)];
            if w.abs() < 1e-12 {
                return h;
            }
            let px = (h[(0, 0)] * x + h[(0, 1)] * y + h[(0, 2)]) / w;
            let py = (h[(1, 0)] * x + h[(1, 1)] * y + h[(1, 2)]) / w;
            // Parameters in the order h11 h12 h13 h21 h22 h23 h31 h32.
            let jx = SVector::<f64, PARAMETERS>::from([
                x / w,
                y / w,
                1.0 / w,
                0.0,
                0.0,
                0.0,
                -px * x / w,
                -px * y / w,
            ]);
            let jy = SVector::<f64, PARAMETERS>::from([
                0.0,
                0.0,
                0.0,
                x / w,
                y / w,
                1.0 / w,
                -py * x / w,
                -py * y / w,
            ]);
            jtj += jx * jx.transpose() + jy * jy.transpose();
            jtr += jx * (px - u) + jy * (py - v);
        }
        let mut improved = false;
        // A bounded search for a damping that lowers the error.
        for _ in 0..8 {
            let mut damped = jtj;
            for i in 0..PARAMETERS {
                damped[(i, i)] *= 1.0 + damping;
            }
            let Some(step) = damped.cholesky().map(|c| c.solve(&(-jtr))) else {
                damping *= 10.0;
                continue;
            };
            let mut candidate = h;
            for (i, delta) in step.iter().enumerate() {
                candidate[(i / 3, i % 3)] += delta;
            }
            let candidate_error = sum_of_squares(&candidate, a, b);
            if candidate_error.is_finite() && candidate_error < error {
                h = candidate;
                let gain = error - candidate_error;
                error = candidate_error;
                damping = (damping / 10.0).max(1e-9);
                improved = gain > error * 1e-9;
                break;
            }
            damping *= 10.0;
        }
        if !improved {
            break;
        }
    }
    h
}

/// Residual degrees of freedom of a 2D fit with `parameters` unknowns over
/// `points` pairs.
fn degrees_of_freedom(points: usize, parameters: usize) -> f64 {
    (2 * points).saturating_sub(parameters).max(1) as f64
}

/// Standard error of the best homography from `from` to `to`, in pixels of
/// `to`: `√(Σ|H·p − q|² / (2n − 8))`. `None` when no homography fits.
pub fn homography_residual_px(from: &[Point], to: &[Point]) -> Option<f64> {
    let h = fit_homography(from, to)?;
    let mut sum = 0.0;
    for (&p, &q) in from.iter().zip(to) {
        let mapped = h.apply(p)?;
        sum += f64::from(mapped.x - q.x).powi(2) + f64::from(mapped.y - q.y).powi(2);
    }
    Some((sum / degrees_of_freedom(from.len(), 8)).sqrt())
}

/// Standard error of the best similarity from `from` to `to`, in pixels:
/// `√(Σ|S·p − q|² / (2n − 4))`. `None` when the points coincide.
pub fn similarity_residual_px(from: &[Point], to: &[Point]) -> Option<f64> {
    if from.len() != to.len() || from.len() < 3 {
        return None;
    }
    let s = estimate_similarity(from, to)?;
    let sum: f64 = from
        .iter()
        .zip(to)
        .map(|(&p, &q)| {
            let mapped = s.apply(p);
            f64::from(mapped.x - q.x).powi(2) + f64::from(mapped.y - q.y).powi(2)
        })
        .sum();
    Some((sum / degrees_of_freedom(from.len(), 4)).sqrt())
}

/// What a burst's motion says about the face's shape.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MotionMeasurement {
    /// How far the tracked nose tip strays from where the plane through the
    /// tracked eyes, brows and mouth corners would put it, in inter-eye
    /// distances: the parallax a plane cannot explain. The largest over the
    /// frames, or the second largest when three or more were judged.
    pub parallax_ied: f32,
    /// Standard error of that plane fit: small for a photo and, as the eyes,
    /// brows and mouth of a head are nearly coplanar, small for a head too.
    pub plane_residual_ied: f32,
    /// The largest non-similar motion of the tracked points (a standard
    /// error, in inter-eye distances): how much the face turned in depth.
    pub motion_ied: f32,
    /// The planar-fit standard error of the five *detected* landmarks, for
    /// comparison only: detector bias makes it unreliable (see [`super::track`]).
    pub landmark_parallax_ied: f32,
    /// Inter-eye distance in the first frame, in pixels.
    pub eye_distance_px: f32,
    /// Frames after the first in which enough points were followed.
    pub frames_tracked: usize,
}

fn eye_distance_px(landmarks: &[Point; 5]) -> f32 {
    landmarks[0].distance(landmarks[1])
}

/// The planar-fit standard error of detected landmarks over every pair of
/// frames, in inter-eye distances, at most. `None` for degenerate landmarks.
pub fn landmark_parallax_ied(landmarks: &[[Point; 5]]) -> Option<f64> {
    let mut parallax_ied: f64 = 0.0;
    for i in 0..landmarks.len() {
        for j in i + 1..landmarks.len() {
            let (a, b) = (&landmarks[i], &landmarks[j]);
            let eye_distance = f64::from(eye_distance_px(a) + eye_distance_px(b)) / 2.0;
            if eye_distance.is_nan() || eye_distance <= 1.0 {
                return None;
            }
            parallax_ied = parallax_ied.max(homography_residual_px(a, b)? / eye_distance);
        }
    }
    Some(parallax_ied)
}

/// Index of the nose tip among the tracked points.
const NOSE: usize = 2;
/// The tracked points other than the nose: eyes, mouth corners, brows. They
/// are close to one plane on a head (within about a centimetre).
const PLANE_POINTS: [usize; 6] = [0, 1, 3, 4, 5, 6];
/// Brows sit this far above the eyes, in inter-eye distances.
const BROW_HEIGHT_IED: f32 = 0.35;
/// Patch half-side, in inter-eye distances.
const PATCH_HALF_IED: f32 = 0.1;
/// How far a tracked point may be from where the detector put it, in
/// inter-eye distances (detector error plus parallax stay well inside).
const TRACK_REACH_IED: f32 = 0.2;

/// The points followed through the burst: the five landmarks and the brows.
fn tracked_points(landmarks: &[Point; 5]) -> [Point; 7] {
    let [right_eye, left_eye, ..] = *landmarks;
    let eye_distance = right_eye.distance(left_eye);
    let across = Point::new(
        (left_eye.x - right_eye.x) / eye_distance,
        (left_eye.y - right_eye.y) / eye_distance,
    );
    // "Up" on the face, perpendicular to the eye line.
    let up = Point::new(across.y, -across.x);
    let brow = |eye: Point| {
        Point::new(
            eye.x + up.x * BROW_HEIGHT_IED * eye_distance,
            eye.y + up.y * BROW_HEIGHT_IED * eye_distance,
        )
    };
    [
        landmarks[0],
        landmarks[1],
        landmarks[2],
        landmarks[3],
        landmarks[4],
        brow(right_eye),
        brow(left_eye),
    ]
}

/// One frame's comparison with the first.
struct FrameMotion {
    nose_residual_px: f64,
    plane_residual_px: f64,
    motion_px: f64,
}

/// A plane point is an inlier of a plane when within this of it, in
/// inter-eye distances (about 1 px at 80 px between the eyes: tracking is
/// good to a few tenths of a pixel).
const PLANE_INLIER_IED: f64 = 0.006;

/// The nose of a head turned by 20 degrees moves about 0.15 inter-eye
/// distances against the plane of its eyes and mouth; a frame showing more
/// than this has a bad track and is not judged.
const PARALLAX_IED_MAX: f64 = 0.3;

/// Whether four plane points surround the nose: one above it on each side
/// (an eye or a brow) and a mouth corner below. Four points in a thin band
/// (the eyes and brows alone) fit a homography too, but the nose is then a
/// wild extrapolation from them.
fn surrounds_nose(indices: &[usize]) -> bool {
    let has = |group: &[usize]| indices.iter().any(|i| group.contains(i));
    has(&[0, 5]) && has(&[1, 6]) && has(&[3, 4])
}

/// Fits the plane through the tracked plane points, robustly, and measures
/// the nose against it. Every set of 4 plane points that surrounds the nose
/// (at most 15 sets) proposes a homography; the one with the most inliers
/// wins and is refitted on them. So points that moved on their own (eyes
/// that blinked or looked aside; eyes seen through holes cut in a photo) do
/// not bend the plane.
fn compare(from: &[Point; 7], to: &[Option<Point>; 7], eye_distance: f64) -> Option<FrameMotion> {
    let nose_to = to[NOSE]?;
    let tracked: Vec<usize> = PLANE_POINTS
        .iter()
        .copied()
        .filter(|&i| to[i].is_some())
        .collect();
    let pair = |i: usize| to[i].map(|q| (from[i], q));
    let inlier_px = PLANE_INLIER_IED * eye_distance;
    let residual = |h: &Homography, i: usize| match (h.apply(from[i]), to[i]) {
        (Some(m), Some(q)) => f64::from(m.distance(q)),
        _ => f64::INFINITY,
    };
    let mut best: Option<(usize, f64, Vec<usize>)> = None;
    let n = tracked.len();
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                for d in c + 1..n {
                    let subset = [tracked[a], tracked[b], tracked[c], tracked[d]];
                    if !surrounds_nose(&subset) {
                        continue;
                    }
                    let (from4, to4): (Vec<Point>, Vec<Point>) =
                        subset.iter().filter_map(|&i| pair(i)).unzip();
                    let Some(h) = fit_homography(&from4, &to4) else {
                        continue;
                    };
                    let inliers: Vec<usize> = tracked
                        .iter()
                        .copied()
                        .filter(|&i| residual(&h, i) <= inlier_px)
                        .collect();
                    // Ties (often: only the four themselves agree) go to
                    // the plane the other points stray least from, which
                    // keeps a point tracked to the wrong place out of it.
                    let spread: f64 = tracked.iter().map(|&i| residual(&h, i)).sum();
                    let better = match &best {
                        None => true,
                        Some((count, best_spread, _)) => {
                            inliers.len() > *count
                                || (inliers.len() == *count && spread < *best_spread)
                        }
                    };
                    if better {
                        best = Some((inliers.len(), spread, inliers));
                    }
                }
            }
        }
    }
    let (_, _, inliers) = best?;
    let (a, b): (Vec<Point>, Vec<Point>) = inliers.iter().filter_map(|&i| pair(i)).unzip();
    let h = fit_homography(&a, &b)?;
    let nose_residual_px = f64::from(h.apply(from[NOSE])?.distance(nose_to));
    if nose_residual_px > PARALLAX_IED_MAX * eye_distance {
        // More than any head turn of a burst makes: a track went wrong.
        return None;
    }
    let plane_residual_px = homography_residual_px(&a, &b).unwrap_or(0.0);
    let (mut all_from, mut all_to): (Vec<Point>, Vec<Point>) =
        tracked.iter().filter_map(|&i| pair(i)).unzip();
    all_from.push(from[NOSE]);
    all_to.push(nose_to);
    let motion_px = similarity_residual_px(&all_from, &all_to)?;
    Some(FrameMotion {
        nose_residual_px,
        plane_residual_px,
        motion_px,
    })
}

/// The part of the frames the tracking can need: every frame's landmarks,
/// with a margin for the brows, the patches and the reach of a track.
fn face_region(frames: &[(&RgbImage, [Point; 5])], eye_distance: f32) -> Option<Region> {
    let (image, _) = frames.first()?;
    let margin = eye_distance * (BROW_HEIGHT_IED + PATCH_HALF_IED + TRACK_REACH_IED) + 8.0;
    let points = frames.iter().flat_map(|(_, landmarks)| landmarks.iter());
    let (mut x0, mut y0, mut x1, mut y1) = (
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    );
    for p in points {
        x0 = x0.min(p.x);
        y0 = y0.min(p.y);
        x1 = x1.max(p.x);
        y1 = y1.max(p.y);
    }
    let clamp_x = |v: f32| v.clamp(0.0, image.width() as f32);
    let clamp_y = |v: f32| v.clamp(0.0, image.height() as f32);
    let (left, top) = (clamp_x(x0 - margin).floor(), clamp_y(y0 - margin).floor());
    let (right, bottom) = (clamp_x(x1 + margin).ceil(), clamp_y(y1 + margin).ceil());
    let (width, height) = (right - left, bottom - top);
    if width.is_nan() || height.is_nan() || width < 1.0 || height < 1.0 {
        return None;
    }
    Some(Region {
        left: left as u32,
        top: top as u32,
        width: width as u32,
        height: height as u32,
    })
}

/// Follows the face's points from the first frame into each of the others
/// and measures how far from planar their motion is. `None` when there are
/// fewer than two frames, the landmarks are degenerate, or no frame could
/// be followed.
pub fn measure(frames: &[(&RgbImage, [Point; 5])]) -> Option<MotionMeasurement> {
    let (first_image, first_landmarks) = frames.first()?;
    if frames.len() < 2 {
        return None;
    }
    let eye_distance = eye_distance_px(first_landmarks);
    if eye_distance.is_nan() || eye_distance <= 1.0 {
        return None;
    }
    let all_landmarks: Vec<[Point; 5]> = frames.iter().map(|(_, l)| *l).collect();
    let landmark_parallax = landmark_parallax_ied(&all_landmarks)?;
    let points = tracked_points(first_landmarks);
    let region = face_region(frames, eye_distance)?;
    let first = GreyPyramid::of_region(first_image, region)?;
    let half_px = (PATCH_HALF_IED * eye_distance).round() as i32;
    let reach_px = TRACK_REACH_IED * eye_distance;
    let mut nose_residuals_px = Vec::with_capacity(frames.len());
    let (mut plane_residual, mut motion) = (0.0f64, 0.0f64);
    for (image, landmarks) in &frames[1..] {
        let Some(to_image) = GreyPyramid::of_region(image, region) else {
            continue;
        };
        // The detector's landmarks give where to start looking: their own
        // position for the five (a nose that moved against the eyes is
        // found where it went, a few pixels of detector bias away at most),
        // the similarity they imply for the brows.
        let Some(similarity) = estimate_similarity(first_landmarks, landmarks) else {
            continue;
        };
        let tracked: [Option<Point>; 7] = std::array::from_fn(|i| {
            let guess = landmarks
                .get(i)
                .copied()
                .unwrap_or_else(|| similarity.apply(points[i]));
            track::track(&first, &to_image, points[i], guess, half_px, reach_px)
        });
        let Some(m) = compare(&points, &tracked, f64::from(eye_distance)) else {
            continue;
        };
        nose_residuals_px.push(m.nose_residual_px);
        plane_residual = plane_residual.max(m.plane_residual_px);
        motion = motion.max(m.motion_px);
    }
    let frames_tracked = nose_residuals_px.len();
    if frames_tracked == 0 {
        return None;
    }
    // With three or more frames judged, the parallax must show in two of
    // them (the second largest counts), so that one bad track cannot make a
    // photo look like a head. A turning head shows it in every frame but
    // the first few, growing with the turn.
    nose_residuals_px.sort_by(|a, b| b.total_cmp(a));
    let parallax = if frames_tracked >= 3 {
        nose_residuals_px[1]
    } else {
        nose_residuals_px[0]
    };
    let e = f64::from(eye_distance);
    Some(MotionMeasurement {
        parallax_ied: (parallax / e) as f32,
        plane_residual_ied: (plane_residual / e) as f32,
        motion_ied: (motion / e) as f32,
        landmark_parallax_ied: landmark_parallax as f32,
        eye_distance_px: eye_distance,
        frames_tracked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Landmarks of an average face in millimetres, x right, y down, z
    /// towards the camera: eyes 63 mm apart, the nose tip about 21 mm in
    /// front of the plane through the eyes and mouth corners.
    const FACE_MM: [[f64; 3]; 5] = [
        [-31.5, -30.0, 0.0],
        [31.5, -30.0, 0.0],
        [0.0, 5.0, 25.0],
        [-25.0, 38.0, 8.0],
        [25.0, 38.0, 8.0],
    ];

    /// Projects points rotated by yaw and pitch (degrees) about a pivot 90 mm
    /// behind the eyes, seen from 450 mm by a camera of focal 600 px.
    fn project(points: &[[f64; 3]; 5], yaw_degrees: f64, pitch_degrees: f64) -> [Point; 5] {
        let (yaw, pitch) = (yaw_degrees.to_radians(), pitch_degrees.to_radians());
        let rotation = nalgebra::Rotation3::from_euler_angles(pitch, yaw, 0.0);
        let pivot = nalgebra::Vector3::new(0.0, 0.0, -90.0);
        std::array::from_fn(|k| {
            let p = nalgebra::Vector3::new(points[k][0], points[k][1], points[k][2]);
            let q = rotation * (p - pivot) + pivot;
            let depth = 450.0 - q.z;
            Point::new(
                (320.0 + 600.0 * q.x / depth) as f32,
                (240.0 + 600.0 * q.y / depth) as f32,
            )
        })
    }

    fn flat(points: &[[f64; 3]; 5]) -> [[f64; 3]; 5] {
        points.map(|[x, y, _]| [x, y, 0.0])
    }

    #[test]
    fn a_known_homography_is_recovered() {
        let h = Homography(Matrix3::new(
            1.1, 0.05, 12.0, -0.03, 0.95, -7.0, 2e-4, -1e-4, 1.0,
        ));
        let from = [
            Point::new(100.0, 100.0),
            Point::new(180.0, 102.0),
            Point::new(140.0, 150.0),
            Point::new(110.0, 190.0),
            Point::new(170.0, 188.0),
        ];
        let to = from.map(|p| h.apply(p).unwrap());
        let fitted = fit_homography(&from, &to).unwrap();
        for (&p, &q) in from.iter().zip(&to) {
            assert!(fitted.apply(p).unwrap().distance(q) < 1e-3);
        }
        assert!(homography_residual_px(&from, &to).unwrap() < 1e-3);
    }

    #[test]
    fn planar_motion_leaves_no_residual_even_in_perspective() {
        let photo = flat(&FACE_MM);
        let a = project(&photo, 0.0, 0.0);
        let b = project(&photo, 15.0, -8.0);
        let residual = homography_residual_px(&a, &b).unwrap();
        assert!(residual < 0.01, "planar residual {residual} px");
        // The plane did move in a way no similarity explains.
        assert!(similarity_residual_px(&a, &b).unwrap() > 0.3);
    }

    #[test]
    fn a_turning_head_leaves_a_clear_residual() {
        let a = project(&FACE_MM, -5.0, 0.0);
        let b = project(&FACE_MM, 5.0, 2.0);
        let eye_distance = f64::from(a[0].distance(a[1]));
        let residual = homography_residual_px(&a, &b).unwrap();
        // 10 degrees of yaw move the nose about 0.33 * sin(10°) ≈ 0.057 eye
        // distances against the eyes; the fit absorbs part of it.
        assert!(
            residual / eye_distance > 0.02,
            "parallax {} ied",
            residual / eye_distance
        );
        let photo = flat(&FACE_MM);
        let planar =
            homography_residual_px(&project(&photo, -5.0, 0.0), &project(&photo, 5.0, 2.0))
                .unwrap();
        assert!(residual > 100.0 * planar);
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        let same = [Point::new(5.0, 5.0); 5];
        assert!(fit_homography(&same, &same).is_none());
        let nan = [Point::new(f32::NAN, 0.0); 5];
        assert!(fit_homography(&nan, &nan).is_none());
        assert!(landmark_parallax_ied(&[same, same]).is_none());
        let image = RgbImage::new(8, 8);
        assert!(measure(&[(&image, same), (&image, same)]).is_none());
        assert!(measure(&[(&image, same)]).is_none());
    }
}

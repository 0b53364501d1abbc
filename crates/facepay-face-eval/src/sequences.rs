//! Synthetic liveness test sequences made from real face photos.
//!
//! No registry package here ships photos or videos of attacks, so attacks and
//! bona fide bursts are both *rendered* from the same real photos:
//!
//! - `live`: the photo is given a face-shaped depth (an elliptic dome, a nose
//!   and its bridge, eye sockets: about 3 cm from nose tip to cheeks), placed
//!   around the detected landmarks, and turned by a few degrees of yaw and
//!   pitch about a pivot behind the face; each frame is rendered by per-pixel
//!   reprojection. The background stays still.
//! - `print`: the whole photo is a rigid plane, turned and moved the same way
//!   (so frame to frame it is a homography).
//! - `screen`: a plane as well, with a moiré pattern, a colour cast and a
//!   gamma of a display.
//! - `cutout`: a plane whose eye regions are holes: either dark, or showing
//!   eyes behind that jitter on their own (the attacker's).
//! - `video_replay`: a screen showing a *live-like* burst (with parallax):
//!   the hardest case for the geometry signal, which it cannot catch.
//!
//! Each sequence is a folder with `frame_00.png`.. and `label.json`
//! (`{"kind": "live", "source": "johns/John_Simm/x.jpg", ...}`), and
//! optionally `depth.png`: 16-bit millimetres at half the frame resolution,
//! taken with the first frame (a face relief for `live`, the plane of the
//! paper or screen for attacks). Everything is a function of the options'
//! seed, the photo and the sequence index: the same inputs give the same
//! bytes.
//!
//! These are a controlled test of the geometry and depth logic, not a
//! substitute for real attacks: real landmark jitter, motion blur, lighting
//! and the sheen of paper are all missing.

use std::fs;
use std::path::{Path, PathBuf};

use facepay_face::Detection;
use facepay_face::liveness::{DepthFrame, FRAMES_MAX};
use image::{ImageBuffer, Luma, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// Photos one call accepts at most.
pub const PHOTOS_MAX: usize = 10_000;
/// Sequences of one kind made from one photo at most.
pub const SEQUENCES_PER_KIND_MAX: usize = 16;
/// Frame side bounds, in pixels.
pub const FRAME_SIDE_PX_MIN: u32 = 64;
pub const FRAME_SIDE_PX_MAX: u32 = 1280;
/// Iterations of the inverse warp (a fixed point); the displacement fields
/// are smooth and small, so it converges in 3-5.
const INVERSE_ITERATIONS_MAX: usize = 12;
/// Average eye distance of adults, which sets the millimetre scale.
const EYE_DISTANCE_MM: f64 = 63.0;
/// Depth frames are this many times smaller than colour frames per axis, as
/// on most RGB-D cameras, which exercises the registration scaling.
const DEPTH_SUBSAMPLING: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceKind {
    Live,
    Print,
    Screen,
    Cutout,
    VideoReplay,
}

impl SequenceKind {
    pub const ATTACKS: [SequenceKind; 4] = [
        SequenceKind::Print,
        SequenceKind::Screen,
        SequenceKind::Cutout,
        SequenceKind::VideoReplay,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SequenceKind::Live => "live",
            SequenceKind::Print => "print",
            SequenceKind::Screen => "screen",
            SequenceKind::Cutout => "cutout",
            SequenceKind::VideoReplay => "video_replay",
        }
    }

    pub fn is_attack(self) -> bool {
        self != SequenceKind::Live
    }
}

/// The contents of `label.json`. Only `kind` and `source` are needed to
/// evaluate; the rest records how the sequence was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceLabel {
    pub kind: SequenceKind,
    pub source: String,
    #[serde(default)]
    pub frames: usize,
    /// Total turn of the head or plane over the burst.
    #[serde(default)]
    pub rotation_degrees: f32,
    #[serde(default)]
    pub depth: bool,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub seed: u64,
    pub live_per_photo: usize,
    /// Sequences of each attack kind per photo.
    pub attacks_per_photo: usize,
    pub attack_kinds: Vec<SequenceKind>,
    pub frames_min: usize,
    pub frames_max: usize,
    /// The total turn over a burst is drawn uniformly in this range.
    pub rotation_degrees_min: f32,
    pub rotation_degrees_max: f32,
    /// Frames are square, of this side.
    pub frame_side_px: u32,
    /// The photo is scaled so that the eyes are this far apart (a face at
    /// arm's length from a 640x480 terminal camera: 70-100 px).
    pub eye_distance_px: f32,
    /// Write a synthetic `depth.png` per sequence.
    pub depth: bool,
    /// Standard deviation of the sensor noise added to every pixel, in grey
    /// levels.
    pub sensor_noise: f32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            live_per_photo: 2,
            attacks_per_photo: 1,
            attack_kinds: SequenceKind::ATTACKS.to_vec(),
            frames_min: 3,
            frames_max: 8,
            rotation_degrees_min: 4.0,
            rotation_degrees_max: 12.0,
            frame_side_px: 480,
            eye_distance_px: 80.0,
            depth: true,
            sensor_noise: 2.0,
        }
    }
}

impl GenerateOptions {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=FRAMES_MAX).contains(&self.frames_min)
            || !(self.frames_min..=FRAMES_MAX).contains(&self.frames_max)
        {
            return Err(format!(
                "frames must satisfy 1 <= min <= max <= {FRAMES_MAX}"
            ));
        }
        if self.live_per_photo > SEQUENCES_PER_KIND_MAX
            || self.attacks_per_photo > SEQUENCES_PER_KIND_MAX
        {
            return Err(format!(
                "at most {SEQUENCES_PER_KIND_MAX} sequences of a kind per photo"
            ));
        }
        if self.attack_kinds.contains(&SequenceKind::Live) {
            return Err("`live` is not an attack kind".into());
        }
        if !(0.0..=45.0).contains(&self.rotation_degrees_min)
            || !(self.rotation_degrees_min..=45.0).contains(&self.rotation_degrees_max)
        {
            return Err("rotations must satisfy 0 <= min <= max <= 45 degrees".into());
        }
        if !(FRAME_SIDE_PX_MIN..=FRAME_SIDE_PX_MAX).contains(&self.frame_side_px) {
            return Err(format!(
                "frame side must be {FRAME_SIDE_PX_MIN}..={FRAME_SIDE_PX_MAX} px"
            ));
        }
        if !(8.0..=self.frame_side_px as f32 / 2.0).contains(&self.eye_distance_px) {
            return Err("eye distance must be at least 8 px and at most half the frame".into());
        }
        if !(0.0..=50.0).contains(&self.sensor_noise) {
            return Err("sensor noise must be 0..=50 grey levels".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0} photos given; at most {PHOTOS_MAX}")]
    TooManyPhotos(usize),
    #[error("bad options: {0}")]
    Options(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedSequence {
    /// Folder name inside the output directory.
    pub name: String,
    pub label: SequenceLabel,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GenerateSummary {
    pub sequences: Vec<GeneratedSequence>,
    /// Photos that gave no sequence, with why (unreadable, no face).
    pub skipped: Vec<(String, String)>,
}

/// A small deterministic generator (SplitMix64): the sequences must be the
/// same bytes on every machine and every version, which a dependency's
/// generator does not promise.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// The seed of one sequence, from the run's seed and its position, so that
/// any one sequence can be regenerated alone.
fn sequence_seed(seed: u64, photo_index: usize, kind: SequenceKind, index: usize) -> u64 {
    let mut rng =
        Rng::new(seed ^ ((photo_index as u64) << 32) ^ ((kind as u64) << 24) ^ index as u64);
    rng.next_u64()
}

/// The photo scaled and cropped so that the face sits in the middle of a
/// square frame with the chosen eye distance, and where its landmarks are.
struct Scene {
    base: RgbImage,
    side: usize,
    landmarks: [(f64, f64); 5],
    /// Midway between the eyes' midpoint and the mouth's: about the nose.
    centre: (f64, f64),
    across: (f64, f64),
    down: (f64, f64),
    eye_distance_px: f64,
}

impl Scene {
    fn new(
        photo: &RgbImage,
        face: &Detection,
        side_px: u32,
        eye_distance_px: f64,
    ) -> Option<Scene> {
        let l = face.landmarks.map(|p| (f64::from(p.x), f64::from(p.y)));
        let source_eye_distance = ((l[1].0 - l[0].0).powi(2) + (l[1].1 - l[0].1).powi(2)).sqrt();
        if source_eye_distance.is_nan() || source_eye_distance <= 2.0 {
            return None;
        }
        let scale = eye_distance_px / source_eye_distance;
        let eyes = ((l[0].0 + l[1].0) / 2.0, (l[0].1 + l[1].1) / 2.0);
        let mouth = ((l[3].0 + l[4].0) / 2.0, (l[3].1 + l[4].1) / 2.0);
        let source_centre = ((eyes.0 + mouth.0) / 2.0, (eyes.1 + mouth.1) / 2.0);
        let side = side_px as usize;
        let half = (side as f64 - 1.0) / 2.0;
        let to_base = |p: (f64, f64)| {
            (
                (p.0 - source_centre.0) * scale + half,
                (p.1 - source_centre.1) * scale + half,
            )
        };
        let mut base = RgbImage::new(side_px, side_px);
        for y in 0..side {
            for x in 0..side {
                let sx = (x as f64 - half) / scale + source_centre.0;
                let sy = (y as f64 - half) / scale + source_centre.1;
                base.put_pixel(x as u32, y as u32, Rgb(sample_rgb(photo, sx, sy)));
            }
        }
        let landmarks = l.map(to_base);
        let across = (
            (landmarks[1].0 - landmarks[0].0) / eye_distance_px,
            (landmarks[1].1 - landmarks[0].1) / eye_distance_px,
        );
        Some(Scene {
            base,
            side,
            landmarks,
            centre: (half, half),
            across,
            down: (-across.1, across.0),
            eye_distance_px,
        })
    }

    /// Face coordinates in eye distances: `u` across, `v` down, from `centre`.
    fn face_coordinates(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.centre.0, y - self.centre.1);
        (
            (dx * self.across.0 + dy * self.across.1) / self.eye_distance_px,
            (dx * self.down.0 + dy * self.down.1) / self.eye_distance_px,
        )
    }

    fn millimetres_per_px(&self) -> f64 {
        EYE_DISTANCE_MM / self.eye_distance_px
    }
}

/// Bilinear sample with the edge repeated outside the image.
fn sample_rgb(image: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (width, height) = (image.width() as i64, image.height() as i64);
    let x = x.clamp(0.0, (width - 1) as f64);
    let y = y.clamp(0.0, (height - 1) as f64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |xx: i64, yy: i64| image.get_pixel(xx as u32, yy as u32).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    std::array::from_fn(|k| {
        let top = f64::from(a[k]) * (1.0 - fx) + f64::from(b[k]) * fx;
        let bottom = f64::from(c[k]) * (1.0 - fx) + f64::from(d[k]) * fx;
        (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
    })
}

fn gaussian(u: f64, v: f64, sigma_u: f64, sigma_v: f64) -> f64 {
    (-(u / sigma_u).powi(2) / 2.0 - (v / sigma_v).powi(2) / 2.0).exp()
}

/// The face-shaped relief, per base pixel: height towards the camera in
/// pixels (at the face's distance) and how much the pixel belongs to the
/// head (1) or to the still background (0).
struct Relief {
    height_px: Vec<f64>,
    head_weight: Vec<f64>,
}

/// Relief in eye distances at face coordinates `(u, v)`: about 0.53 eye
/// distances (33 mm) from nose tip to cheeks, 0.45 from the nose to the
/// eye-mouth plane.
fn relief_ied(scene: &Scene, u: f64, v: f64) -> f64 {
    let (nose_u, nose_v) = scene.face_coordinates(scene.landmarks[2].0, scene.landmarks[2].1);
    let (eye_r, eye_l) = (
        scene.face_coordinates(scene.landmarks[0].0, scene.landmarks[0].1),
        scene.face_coordinates(scene.landmarks[1].0, scene.landmarks[1].1),
    );
    let r = ((u / 1.25).powi(2) + ((v + 0.1) / 1.7).powi(2)).sqrt();
    let dome = if r < 1.0 {
        0.6 * (std::f64::consts::FRAC_PI_2 * r).cos()
    } else {
        0.0
    };
    let nose = 0.25 * gaussian(u - nose_u, v - nose_v + 0.05, 0.16, 0.2);
    let eye_line_v = (eye_r.1 + eye_l.1) / 2.0;
    let bridge = 0.12 * gaussian(u - nose_u, v - (eye_line_v + nose_v) / 2.0, 0.12, 0.25);
    let sockets = -0.08
        * (gaussian(u - eye_r.0, v - eye_r.1, 0.18, 0.14)
            + gaussian(u - eye_l.0, v - eye_l.1, 0.18, 0.14));
    dome + nose + bridge + sockets
}

fn smoothstep(edge0: f64, edge1: f64, x: f64) -> f64 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn make_relief(scene: &Scene) -> Relief {
    let n = scene.side * scene.side;
    let mut height_px = Vec::with_capacity(n);
    let mut head_weight = Vec::with_capacity(n);
    for y in 0..scene.side {
        for x in 0..scene.side {
            let (u, v) = scene.face_coordinates(x as f64, y as f64);
            height_px.push(relief_ied(scene, u, v) * scene.eye_distance_px);
            // The head (with hair and ears) reaches a little past the dome.
            let r = ((u / 1.25).powi(2) + ((v + 0.1) / 1.7).powi(2)).sqrt();
            head_weight.push(1.0 - smoothstep(1.0, 1.3, r));
        }
    }
    Relief {
        height_px,
        head_weight,
    }
}

/// A rigid motion: rotation (radians) about a pivot, then a translation (px
/// at the face's distance).
#[derive(Debug, Clone, Copy)]
struct Pose {
    yaw: f64,
    pitch: f64,
    roll: f64,
    translation: [f64; 3],
}

fn rotation_matrix(pose: &Pose) -> [[f64; 3]; 3] {
    let (sy, cy) = pose.yaw.sin_cos();
    let (sp, cp) = pose.pitch.sin_cos();
    let (sr, cr) = pose.roll.sin_cos();
    // R = Rz(roll) · Rx(pitch) · Ry(yaw)
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
    let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    let multiply = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
        std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
    };
    multiply(rz, multiply(rx, ry))
}

/// A pinhole camera looking at the scene, in base pixels: the base image is
/// what it sees of the plane at `distance_px` with magnification 1.
struct Camera {
    distance_px: f64,
    principal: f64,
}

impl Camera {
    /// Where the surface point seen at base pixel `(x, y)` with height
    /// `height_px` goes after `pose` about `pivot`, and its new depth.
    fn moved(
        &self,
        x: f64,
        y: f64,
        height_px: f64,
        rotation: &[[f64; 3]; 3],
        pose: &Pose,
        pivot: [f64; 3],
    ) -> (f64, f64, f64) {
        let f = self.distance_px;
        let z = self.distance_px - height_px;
        let p = [
            (x - self.principal) * z / f,
            (y - self.principal) * z / f,
            z,
        ];
        let d = [p[0] - pivot[0], p[1] - pivot[1], p[2] - pivot[2]];
        let q: [f64; 3] = std::array::from_fn(|i| {
            rotation[i][0] * d[0]
                + rotation[i][1] * d[1]
                + rotation[i][2] * d[2]
                + pivot[i]
                + pose.translation[i]
        });
        let depth = q[2].max(1.0);
        (
            self.principal + f * q[0] / depth,
            self.principal + f * q[1] / depth,
            depth,
        )
    }
}

/// A forward displacement field on the base grid: base pixel `p` is seen at
/// `p + field[p]`.
struct Field {
    side: usize,
    dx: Vec<f64>,
    dy: Vec<f64>,
}

impl Field {
    fn sample(&self, x: f64, y: f64) -> (f64, f64) {
        let max = (self.side - 1) as f64;
        let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.side - 1), (y0 + 1).min(self.side - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let at = |v: &[f64], xx: usize, yy: usize| v[yy * self.side + xx];
        let lerp = |v: &[f64]| {
            let top = at(v, x0, y0) * (1.0 - fx) + at(v, x1, y0) * fx;
            let bottom = at(v, x0, y1) * (1.0 - fx) + at(v, x1, y1) * fx;
            top * (1.0 - fy) + bottom * fy
        };
        (lerp(&self.dx), lerp(&self.dy))
    }

    /// The base pixel seen at `(x, y)`: solves `p + field(p) = (x, y)` by
    /// fixed-point iteration.
    fn inverse(&self, x: f64, y: f64) -> (f64, f64) {
        let (mut px, mut py) = (x, y);
        for _ in 0..INVERSE_ITERATIONS_MAX {
            let (dx, dy) = self.sample(px, py);
            let (nx, ny) = (x - dx, y - dy);
            let moved = (nx - px).abs() + (ny - py).abs();
            (px, py) = (nx, ny);
            if moved < 1e-3 {
                break;
            }
        }
        (px, py)
    }
}

/// The field of a head (relief, background still) or of a rigid plane
/// (`relief` = `None`: height 0 and everything moves).
fn motion_field(
    scene: &Scene,
    camera: &Camera,
    relief: Option<&Relief>,
    pose: &Pose,
    pivot: [f64; 3],
) -> Field {
    let rotation = rotation_matrix(pose);
    let n = scene.side * scene.side;
    let (mut dx, mut dy) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for y in 0..scene.side {
        for x in 0..scene.side {
            let i = y * scene.side + x;
            let (height, weight) =
                relief.map_or((0.0, 1.0), |r| (r.height_px[i], r.head_weight[i]));
            let (mx, my, _) = camera.moved(x as f64, y as f64, height, &rotation, pose, pivot);
            dx.push(weight * (mx - x as f64));
            dy.push(weight * (my - y as f64));
        }
    }
    Field {
        side: scene.side,
        dx,
        dy,
    }
}

/// One burst's motion: a sweep of the total angle in a random direction
/// (mostly turning, sometimes nodding), a little roll jitter and a drift.
fn trajectory(rng: &mut Rng, frames: usize, total_degrees: f64, eye_distance_px: f64) -> Vec<Pose> {
    let direction = if rng.uniform() < 0.7 {
        rng.range(-0.6, 0.6)
    } else {
        std::f64::consts::FRAC_PI_2 + rng.range(-0.6, 0.6)
    };
    let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
    let total = total_degrees.to_radians() * sign;
    let drift = [
        rng.range(-0.1, 0.1) * eye_distance_px,
        rng.range(-0.1, 0.1) * eye_distance_px,
        rng.range(-0.3, 0.3) * eye_distance_px,
    ];
    (0..frames)
        .map(|k| {
            let t = if frames > 1 {
                k as f64 / (frames - 1) as f64
            } else {
                0.5
            };
            let jitter = 0.2f64.to_radians();
            Pose {
                yaw: total * direction.cos() * (t - 0.5) + jitter * rng.normal(),
                pitch: total * direction.sin() * (t - 0.5) + jitter * rng.normal(),
                roll: 0.5f64.to_radians() * rng.normal(),
                translation: drift.map(|d| d * t),
            }
        })
        .collect()
}

/// A display's look: colour cast, gamma and a moiré of two close gratings.
struct ScreenLook {
    gains: [f64; 3],
    gamma: f64,
    moire_amplitude: f64,
    frequency_a: (f64, f64),
    frequency_b: (f64, f64),
}

impl ScreenLook {
    fn random(rng: &mut Rng) -> Self {
        let period = rng.range(3.0, 6.0);
        let angle = rng.range(0.0, std::f64::consts::PI);
        let period_b = period * rng.range(1.04, 1.15);
        let angle_b = angle + rng.range(-0.08, 0.08);
        let frequency = |p: f64, a: f64| (a.cos() / p, a.sin() / p);
        Self {
            gains: [
                rng.range(0.9, 1.0),
                rng.range(0.95, 1.05),
                rng.range(1.0, 1.12),
            ],
            gamma: rng.range(0.8, 1.25),
            moire_amplitude: rng.range(6.0, 14.0),
            frequency_a: frequency(period, angle),
            frequency_b: frequency(period_b, angle_b),
        }
    }

    fn apply(&self, pixel: [f64; 3], x: f64, y: f64, phase: f64) -> [f64; 3] {
        let a = (std::f64::consts::TAU * (self.frequency_a.0 * x + self.frequency_a.1 * y) + phase)
            .sin();
        let b = (std::f64::consts::TAU * (self.frequency_b.0 * x + self.frequency_b.1 * y)).sin();
        let moire = self.moire_amplitude * a * b;
        std::array::from_fn(|c| {
            255.0 * (pixel[c] / 255.0).clamp(0.0, 1.0).powf(self.gamma) * self.gains[c] + moire
        })
    }
}

/// What fills the eye holes of a cut-out photo.
#[derive(Debug, Clone, Copy)]
enum EyeHoles {
    Dark,
    /// The attacker's eyes behind, jittering by this much per frame (px).
    Eyes {
        jitter_px: f64,
    },
}

fn in_eye_hole(scene: &Scene, x: f64, y: f64) -> bool {
    scene.landmarks[..2].iter().any(|&(ex, ey)| {
        let (du, dv) = (
            ((x - ex) * scene.across.0 + (y - ey) * scene.across.1) / scene.eye_distance_px,
            ((x - ex) * scene.down.0 + (y - ey) * scene.down.1) / scene.eye_distance_px,
        );
        (du / 0.3).powi(2) + (dv / 0.16).powi(2) <= 1.0
    })
}

fn to_rgb(pixel: [f64; 3]) -> Rgb<u8> {
    Rgb(pixel.map(|v| v.round().clamp(0.0, 255.0) as u8))
}

fn sample_f64(image: &RgbImage, x: f64, y: f64) -> [f64; 3] {
    sample_rgb(image, x, y).map(f64::from)
}

/// Everything needed to render one sequence.
struct Plan {
    kind: SequenceKind,
    frames: usize,
    total_degrees: f64,
    distance_px: f64,
}

struct Rendered {
    frames: Vec<RgbImage>,
    depth: DepthFrame,
}

fn render(scene: &Scene, plan: &Plan, rng: &mut Rng, options: &GenerateOptions) -> Rendered {
    let side = scene.side;
    let camera = Camera {
        distance_px: plan.distance_px,
        principal: scene.centre.0,
    };
    let e = scene.eye_distance_px;
    // A head turns about the neck, about 1.5 eye distances (95 mm) behind
    // the face; a photo is turned about the face on it.
    let head_pivot = [0.0, 0.0, plan.distance_px + 1.5 * e];
    let plane_pivot = [0.0, 0.0, plan.distance_px];
    let relief = make_relief(scene);

    let head_poses = trajectory(rng, plan.frames, plan.total_degrees, e);
    // A replayed video's screen is held fairly still; a photo is waved.
    let plane_degrees = if plan.kind == SequenceKind::VideoReplay {
        plan.total_degrees * 0.3
    } else {
        plan.total_degrees
    };
    let plane_poses = trajectory(rng, plan.frames, plane_degrees, e);
    let look = ScreenLook::random(rng);
    let holes = if rng.uniform() < 0.5 {
        EyeHoles::Dark
    } else {
        EyeHoles::Eyes {
            jitter_px: rng.range(0.01, 0.025) * e,
        }
    };
    let mut eye_offset = (0.0, 0.0);

    let mut frames = Vec::with_capacity(plan.frames);
    let mut first_fields: Option<(Option<Field>, Option<Field>)> = None;
    for k in 0..plan.frames {
        let head = matches!(plan.kind, SequenceKind::Live | SequenceKind::VideoReplay)
            .then(|| motion_field(scene, &camera, Some(&relief), &head_poses[k], head_pivot));
        let plane = plan
            .kind
            .is_attack()
            .then(|| motion_field(scene, &camera, None, &plane_poses[k], plane_pivot));
        if let EyeHoles::Eyes { jitter_px } = holes {
            eye_offset = (
                (eye_offset.0 + jitter_px * rng.normal()).clamp(-2.0 * jitter_px, 2.0 * jitter_px),
                (eye_offset.1 + jitter_px * rng.normal()).clamp(-2.0 * jitter_px, 2.0 * jitter_px),
            );
        }
        let phase = rng.range(0.0, std::f64::consts::TAU);
        let brightness = 1.0 + 0.01 * rng.normal();
        let mut frame = RgbImage::new(side as u32, side as u32);
        for y in 0..side {
            for x in 0..side {
                let (mut sx, mut sy) = (x as f64, y as f64);
                if let Some(plane) = &plane {
                    (sx, sy) = plane.inverse(sx, sy);
                }
                if let Some(head) = &head {
                    (sx, sy) = head.inverse(sx, sy);
                }
                let mut pixel = if plan.kind == SequenceKind::Cutout && in_eye_hole(scene, sx, sy) {
                    match holes {
                        EyeHoles::Dark => sample_f64(&scene.base, sx, sy).map(|v| v * 0.2 + 8.0),
                        EyeHoles::Eyes { .. } => {
                            sample_f64(&scene.base, sx + eye_offset.0, sy + eye_offset.1)
                        }
                    }
                } else {
                    sample_f64(&scene.base, sx, sy)
                };
                if matches!(plan.kind, SequenceKind::Screen | SequenceKind::VideoReplay) {
                    pixel = look.apply(pixel, x as f64, y as f64, phase);
                }
                let noisy =
                    pixel.map(|v| v * brightness + f64::from(options.sensor_noise) * rng.normal());
                frame.put_pixel(x as u32, y as u32, to_rgb(noisy));
            }
        }
        frames.push(frame);
        if k == 0 {
            first_fields = Some((head, plane));
        }
    }
    let (head, plane) = first_fields.unwrap_or((None, None));
    let depth = render_depth(
        scene,
        plan,
        &camera,
        &relief,
        head.as_ref(),
        plane.as_ref(),
        (&head_poses[0], &plane_poses[0]),
        (head_pivot, plane_pivot),
        rng,
    );
    Rendered { frames, depth }
}

/// The depth frame taken with the first frame: the head's surface over a
/// wall 60 cm behind for live, the paper's or screen's plane for attacks.
/// Noise of 1.5 mm and 3% missing readings, as a consumer RGB-D camera.
#[allow(clippy::too_many_arguments)]
fn render_depth(
    scene: &Scene,
    plan: &Plan,
    camera: &Camera,
    relief: &Relief,
    head: Option<&Field>,
    plane: Option<&Field>,
    poses: (&Pose, &Pose),
    pivots: ([f64; 3], [f64; 3]),
    rng: &mut Rng,
) -> DepthFrame {
    let width = scene.side as u32 / DEPTH_SUBSAMPLING;
    let mm_per_px = scene.millimetres_per_px();
    let wall_mm = plan.distance_px * mm_per_px + 600.0;
    let head_rotation = rotation_matrix(poses.0);
    let plane_rotation = rotation_matrix(poses.1);
    let step = f64::from(DEPTH_SUBSAMPLING);
    let mut depth_mm = Vec::with_capacity((width * width) as usize);
    for j in 0..width {
        for i in 0..width {
            let (x, y) = (
                (f64::from(i) + 0.5) * step - 0.5,
                (f64::from(j) + 0.5) * step - 0.5,
            );
            let distance_mm = if let Some(plane) = plane {
                let (sx, sy) = plane.inverse(x, y);
                camera
                    .moved(sx, sy, 0.0, &plane_rotation, poses.1, pivots.1)
                    .2
                    * mm_per_px
            } else {
                let (sx, sy) = head.map_or((x, y), |h| h.inverse(x, y));
                let max = (scene.side - 1) as f64;
                let index = (sy.round().clamp(0.0, max) as usize) * scene.side
                    + sx.round().clamp(0.0, max) as usize;
                if relief.head_weight[index] < 0.5 {
                    wall_mm
                } else {
                    camera
                        .moved(
                            sx,
                            sy,
                            relief.height_px[index],
                            &head_rotation,
                            poses.0,
                            pivots.0,
                        )
                        .2
                        * mm_per_px
                }
            };
            let value = if rng.uniform() < 0.03 {
                0
            } else {
                (distance_mm + 1.5 * rng.normal())
                    .round()
                    .clamp(1.0, f64::from(u16::MAX)) as u16
            };
            depth_mm.push(value);
        }
    }
    DepthFrame {
        width,
        height: width,
        depth_mm,
    }
}

/// Writes a depth frame as a 16-bit grey PNG (millimetres).
pub fn write_depth_png(path: &Path, depth: &DepthFrame) -> Result<(), GenerateError> {
    let buffer: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_raw(depth.width, depth.height, depth.depth_mm.clone()).ok_or_else(
            || GenerateError::Options("depth frame size does not match its values".into()),
        )?;
    buffer.save(path).map_err(|source| GenerateError::Image {
        path: path.to_owned(),
        source,
    })
}

/// A short name for a photo: its folder and file name.
fn source_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(parent) => format!("{}/{file}", parent.to_string_lossy()),
        None => file,
    }
}

fn folder_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), GenerateError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| GenerateError::Json {
        path: path.to_owned(),
        source,
    })?;
    fs::write(path, text + "\n").map_err(|source| GenerateError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Renders sequences from `photos` into `out_dir`, one folder each.
/// `detect` finds the faces of a photo (the largest is used); photos without
/// a face or that cannot be read are skipped and listed in the summary.
pub fn generate_sequences(
    photos: &[PathBuf],
    out_dir: &Path,
    options: &GenerateOptions,
    mut detect: impl FnMut(&RgbImage) -> Result<Vec<Detection>, String>,
) -> Result<GenerateSummary, GenerateError> {
    if photos.len() > PHOTOS_MAX {
        return Err(GenerateError::TooManyPhotos(photos.len()));
    }
    options.validate().map_err(GenerateError::Options)?;
    fs::create_dir_all(out_dir).map_err(|source| GenerateError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut summary = GenerateSummary::default();
    for (photo_index, path) in photos.iter().enumerate() {
        let source = source_name(path);
        let photo = match fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| facepay_face::decode(&bytes).map_err(|e| e.to_string()))
        {
            Ok(photo) => photo,
            Err(why) => {
                summary.skipped.push((source, why));
                continue;
            }
        };
        let face = match detect(&photo) {
            Ok(faces) => facepay_face::detect::largest(&faces),
            Err(why) => {
                summary.skipped.push((source, why));
                continue;
            }
        };
        let Some(face) = face else {
            summary.skipped.push((source, "no face found".into()));
            continue;
        };
        let Some(scene) = Scene::new(
            &photo,
            &face,
            options.frame_side_px,
            f64::from(options.eye_distance_px),
        ) else {
            summary
                .skipped
                .push((source, "degenerate landmarks".into()));
            continue;
        };
        let kinds = std::iter::repeat_n(SequenceKind::Live, options.live_per_photo)
            .enumerate()
            .chain(options.attack_kinds.iter().flat_map(|&kind| {
                std::iter::repeat_n(kind, options.attacks_per_photo).enumerate()
            }));
        for (index, kind) in kinds {
            let seed = sequence_seed(options.seed, photo_index, kind, index);
            let mut rng = Rng::new(seed);
            let frames =
                options.frames_min + rng.below(options.frames_max - options.frames_min + 1);
            let total_degrees = rng.range(
                f64::from(options.rotation_degrees_min),
                f64::from(options.rotation_degrees_max),
            );
            // 380-570 mm away: arm's length from a terminal.
            let distance_px = rng.range(6.0, 9.0) * scene.eye_distance_px;
            let plan = Plan {
                kind,
                frames,
                total_degrees,
                distance_px,
            };
            let rendered = render(&scene, &plan, &mut rng, options);
            let name = format!(
                "{:05}-{}-{}-{index}",
                photo_index,
                kind.code(),
                folder_safe(&source)
            );
            let dir = out_dir.join(&name);
            fs::create_dir_all(&dir).map_err(|source| GenerateError::Io {
                path: dir.clone(),
                source,
            })?;
            for (k, frame) in rendered.frames.iter().enumerate() {
                let path = dir.join(format!("frame_{k:02}.png"));
                frame
                    .save(&path)
                    .map_err(|source| GenerateError::Image { path, source })?;
            }
            if options.depth {
                write_depth_png(&dir.join("depth.png"), &rendered.depth)?;
            }
            let label = SequenceLabel {
                kind,
                source: source.clone(),
                frames,
                rotation_degrees: total_degrees as f32,
                depth: options.depth,
                seed,
            };
            write_json(&dir.join("label.json"), &label)?;
            summary.sequences.push(GeneratedSequence { name, label });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepay_face::{BoundingBox, Point};

    /// A synthetic "photo": a textured disc with landmarks where a face's
    /// would be.
    fn photo_and_face() -> (RgbImage, Detection) {
        let photo = RgbImage::from_fn(200, 200, |x, y| {
            let v = ((x * 7 + y * 13) % 200) as u8;
            Rgb([v, 255 - v, (x as u8).wrapping_mul(3)])
        });
        let face = Detection {
            bbox: BoundingBox {
                x: 60.0,
                y: 50.0,
                width: 80.0,
                height: 100.0,
            },
            landmarks: [
                Point::new(80.0, 90.0),
                Point::new(120.0, 90.0),
                Point::new(100.0, 112.0),
                Point::new(84.0, 132.0),
                Point::new(116.0, 132.0),
            ],
            score: 0.9,
        };
        (photo, face)
    }

    #[test]
    fn the_relief_is_face_shaped() {
        let (photo, face) = photo_and_face();
        let scene = Scene::new(&photo, &face, 128, 40.0).unwrap();
        let nose = scene.landmarks[2];
        let (nu, nv) = scene.face_coordinates(nose.0, nose.1);
        let at = |u: f64, v: f64| relief_ied(&scene, u, v) * EYE_DISTANCE_MM;
        let nose_to_cheeks_mm = at(nu, nv) - (at(nu - 0.6, nv) + at(nu + 0.6, nv)) / 2.0;
        assert!(
            (20.0..40.0).contains(&nose_to_cheeks_mm),
            "{nose_to_cheeks_mm} mm"
        );
        assert!(at(3.0, 0.0).abs() < 1e-9, "flat outside the head");
    }

    #[test]
    fn the_inverse_warp_inverts_the_forward_one() {
        let (photo, face) = photo_and_face();
        let scene = Scene::new(&photo, &face, 96, 30.0).unwrap();
        let camera = Camera {
            distance_px: 7.0 * 30.0,
            principal: scene.centre.0,
        };
        let relief = make_relief(&scene);
        let pose = Pose {
            yaw: 0.1,
            pitch: -0.05,
            roll: 0.02,
            translation: [2.0, -1.0, 5.0],
        };
        let field = motion_field(
            &scene,
            &camera,
            Some(&relief),
            &pose,
            [0.0, 0.0, 7.0 * 30.0 + 45.0],
        );
        for &(x, y) in &[(48.0, 48.0), (40.0, 55.0), (60.0, 30.0)] {
            let (sx, sy) = field.inverse(x, y);
            let (dx, dy) = field.sample(sx, sy);
            assert!((sx + dx - x).abs() < 0.01 && (sy + dy - y).abs() < 0.01);
        }
    }

    #[test]
    fn generation_is_deterministic_and_labelled() {
        let (photo, face) = photo_and_face();
        let dir = tempfile::tempdir().unwrap();
        let photo_path = dir.path().join("people").join("someone.png");
        fs::create_dir_all(photo_path.parent().unwrap()).unwrap();
        photo.save(&photo_path).unwrap();
        let options = GenerateOptions {
            live_per_photo: 1,
            frames_min: 3,
            frames_max: 3,
            frame_side_px: 96,
            eye_distance_px: 30.0,
            ..GenerateOptions::default()
        };
        let detect = |_: &RgbImage| Ok(vec![face]);
        let out_a = dir.path().join("a");
        let out_b = dir.path().join("b");
        let summary =
            generate_sequences(std::slice::from_ref(&photo_path), &out_a, &options, detect)
                .unwrap();
        generate_sequences(std::slice::from_ref(&photo_path), &out_b, &options, detect).unwrap();
        assert_eq!(summary.sequences.len(), 5);
        assert!(summary.skipped.is_empty());
        for sequence in &summary.sequences {
            for file in ["frame_00.png", "frame_02.png", "depth.png", "label.json"] {
                let a = fs::read(out_a.join(&sequence.name).join(file)).unwrap();
                let b = fs::read(out_b.join(&sequence.name).join(file)).unwrap();
                assert!(a == b, "{} {file} differs between runs", sequence.name);
            }
            assert_eq!(sequence.label.source, "people/someone.png");
        }
        let label: SequenceLabel = serde_json::from_str(
            &fs::read_to_string(out_a.join(&summary.sequences[1].name).join("label.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(label.kind, SequenceKind::Print);
        let text =
            fs::read_to_string(out_a.join(&summary.sequences[0].name).join("label.json")).unwrap();
        assert!(text.contains("\"kind\": \"live\""), "{text}");

        let nothing = |_: &RgbImage| Ok(vec![]);
        let skipped =
            generate_sequences(&[photo_path], &dir.path().join("c"), &options, nothing).unwrap();
        assert_eq!(skipped.sequences.len(), 0);
        assert_eq!(skipped.skipped.len(), 1);
    }

    #[test]
    fn bad_options_are_refused() {
        let mut options = GenerateOptions {
            frames_max: FRAMES_MAX + 1,
            ..GenerateOptions::default()
        };
        assert!(options.validate().is_err());
        options.frames_max = 4;
        options.attack_kinds = vec![SequenceKind::Live];
        assert!(options.validate().is_err());
        assert!(GenerateOptions::default().validate().is_ok());
    }
}

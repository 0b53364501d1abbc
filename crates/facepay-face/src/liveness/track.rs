//! Following points of the face from the first frame into the others.
//!
//! Re-detected landmarks are not good enough to tell a plane from a head:
//! measured on photos warped as rigid planes, YuNet put the nose up to 5 px
//! (0.06 eye distances) away from where the plane's motion took it, because
//! a landmark regressor has learned where a nose is on a *turned head* and
//! reports that on a turned photo too. So the detector only says roughly
//! where the points are; Lucas-Kanade tracking of small patches then follows
//! the same physical point to a fraction of a pixel.
//!
//! Translation-only, inverse-compositional Lucas-Kanade on a two-level
//! pyramid, with zero-mean patches (frame-to-frame brightness changes do not
//! move the point) and checks that drop a point rather than trust a bad
//! track: too little texture, no convergence, low correlation at the end.

use image::RgbImage;

use crate::geometry::Point;

/// Iterations per pyramid level at most.
const ITERATIONS_MAX: usize = 30;
/// A step under this (pixels) means converged.
const STEP_PX_MIN: f32 = 0.01;
/// A last step under this (pixels) after all iterations means the track
/// dithers about the point rather than wanders.
const STEP_PX_DITHER_MAX: f32 = 0.1;
/// Patch half-side bounds, in pixels of the full-resolution frame.
pub const PATCH_HALF_PX_MIN: i32 = 4;
pub const PATCH_HALF_PX_MAX: i32 = 12;
/// Smallest eigenvalue of the patch's structure tensor, per pixel, in grey
/// levels squared, after the blur: under it the patch is too flat to be
/// followed (sensor noise of 2 grey levels alone gives about 0.2).
const TEXTURE_MIN: f32 = 0.5;
/// Normalised cross-correlation the tracked patch must reach.
const CORRELATION_MIN: f32 = 0.8;

/// A frame as a grey float image with its half-resolution level.
pub struct GreyPyramid {
    levels: [GreyImage; 2],
    /// Where the region's top-left pixel is in the frame.
    origin: Point,
}

struct GreyImage {
    width: usize,
    height: usize,
    pixels: Vec<f32>,
}

impl GreyImage {
    /// The grey levels of the part of `image` inside `region` (clamped to
    /// the image).
    fn from_rgb(image: &RgbImage, region: Region) -> Self {
        let left = region.left.min(image.width().saturating_sub(1));
        let top = region.top.min(image.height().saturating_sub(1));
        let width = region.width.min(image.width() - left).max(1) as usize;
        let height = region.height.min(image.height() - top).max(1) as usize;
        let mut pixels = Vec::with_capacity(width * height);
        for y in 0..height as u32 {
            for x in 0..width as u32 {
                let p = image.get_pixel(left + x, top + y);
                pixels.push(
                    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]),
                );
            }
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// A separable [1 4 6 4 1] / 16 blur (a Gaussian of about 1 px): it
    /// takes the sensor noise out of the gradients (by about 3.5x), so that
    /// soft faces keep enough texture above the noise to be followed.
    fn blurred(&self) -> Self {
        const KERNEL: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let (width, height) = (self.width, self.height);
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        let mut across = vec![0.0f32; width * height];
        for y in 0..height {
            for x in 0..width {
                across[y * width + x] = KERNEL
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        w * self.pixels[y * width + clamp(x as isize + k as isize - 2, width)]
                    })
                    .sum();
            }
        }
        let mut pixels = vec![0.0f32; width * height];
        for y in 0..height {
            for x in 0..width {
                pixels[y * width + x] = KERNEL
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        w * across[clamp(y as isize + k as isize - 2, height) * width + x]
                    })
                    .sum();
            }
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Half resolution by 2x2 averaging (which is also the anti-aliasing).
    fn half(&self) -> Self {
        let (width, height) = ((self.width / 2).max(1), (self.height / 2).max(1));
        let mut pixels = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let at = |xx: usize, yy: usize| {
                    self.pixels[yy.min(self.height - 1) * self.width + xx.min(self.width - 1)]
                };
                pixels.push(
                    (at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1))
                        / 4.0,
                );
            }
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Bilinear sample with the edge repeated.
    fn sample(&self, x: f32, y: f32) -> f32 {
        let x = x.clamp(0.0, (self.width - 1) as f32);
        let y = y.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let row0 =
            self.pixels[y0 * self.width + x0] * (1.0 - fx) + self.pixels[y0 * self.width + x1] * fx;
        let row1 =
            self.pixels[y1 * self.width + x0] * (1.0 - fx) + self.pixels[y1 * self.width + x1] * fx;
        row0 * (1.0 - fy) + row1 * fy
    }
}

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl GreyPyramid {
    /// The whole image; `None` for an image too small to track in.
    pub fn new(image: &RgbImage) -> Option<Self> {
        Self::of_region(
            image,
            Region {
                left: 0,
                top: 0,
                width: image.width(),
                height: image.height(),
            },
        )
    }

    /// Only the part of the image around the face: the blur and the half
    /// level cost in proportion to the area, and a 1280x720 frame is ten
    /// times the face. `None` when the part is too small to track in.
    pub fn of_region(image: &RgbImage, region: Region) -> Option<Self> {
        if image.width() < 4 || image.height() < 4 {
            return None;
        }
        let full = GreyImage::from_rgb(image, region).blurred();
        if full.width < 4 || full.height < 4 {
            return None;
        }
        let origin = Point::new(
            region.left.min(image.width() - 1) as f32,
            region.top.min(image.height() - 1) as f32,
        );
        let half = full.half();
        Some(Self {
            levels: [full, half],
            origin,
        })
    }
}

/// A patch of the template without its brightness plane, with its gradients and the inverse of
/// its structure tensor.
struct Template {
    values: Vec<f32>,
    gradients: Vec<(f32, f32)>,
    inverse_hessian: [[f32; 2]; 2],
}

fn offsets(half: i32) -> impl Iterator<Item = (f32, f32)> {
    (-half..=half).flat_map(move |dy| (-half..=half).map(move |dx| (dx as f32, dy as f32)))
}

/// Removes the best-fitting plane `a + b·dx + c·dy` from values laid out
/// as [`offsets`]: a brightness offset or a linear shading across the patch
/// (a light turning with the head, the slow beat of a moiré) carries no
/// information about where the patch is, only bias. On the square grid the
/// three functions are orthogonal, so each is removed on its own.
fn remove_plane(values: &mut [f32], half: i32) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let (mut along_x, mut along_y, mut norm) = (0.0f32, 0.0f32, 0.0f32);
    for (v, (dx, dy)) in values.iter().zip(offsets(half)) {
        along_x += v * dx;
        along_y += v * dy;
        norm += dx * dx;
    }
    let (slope_x, slope_y) = if norm > 0.0 {
        (along_x / norm, along_y / norm)
    } else {
        (0.0, 0.0)
    };
    for (v, (dx, dy)) in values.iter_mut().zip(offsets(half)) {
        *v -= mean + slope_x * dx + slope_y * dy;
    }
}

fn template(image: &GreyImage, centre: Point, half: i32) -> Option<Template> {
    let mut values: Vec<f32> = offsets(half)
        .map(|(dx, dy)| image.sample(centre.x + dx, centre.y + dy))
        .collect();
    remove_plane(&mut values, half);
    let (mut gradients_x, mut gradients_y): (Vec<f32>, Vec<f32>) = offsets(half)
        .map(|(dx, dy)| {
            let (x, y) = (centre.x + dx, centre.y + dy);
            (
                (image.sample(x + 1.0, y) - image.sample(x - 1.0, y)) / 2.0,
                (image.sample(x, y + 1.0) - image.sample(x, y - 1.0)) / 2.0,
            )
        })
        .unzip();
    // The same projection on the steepest-descent images makes the whole
    // update blind to planar brightness changes, so the error needs no
    // projection of its own.
    remove_plane(&mut gradients_x, half);
    remove_plane(&mut gradients_y, half);
    let gradients: Vec<(f32, f32)> = gradients_x.into_iter().zip(gradients_y).collect();
    let (mut a, mut b, mut c) = (0.0f32, 0.0f32, 0.0f32);
    for &(gx, gy) in &gradients {
        a += gx * gx;
        b += gx * gy;
        c += gy * gy;
    }
    // Smallest eigenvalue of [[a, b], [b, c]] (Shi-Tomasi): both directions
    // must be textured, or the point slides along an edge.
    let trace_half = (a + c) / 2.0;
    let smallest = trace_half - ((a - c).powi(2) / 4.0 + b * b).sqrt();
    if smallest.is_nan() || smallest < TEXTURE_MIN * gradients.len() as f32 {
        return None;
    }
    let determinant = a * c - b * b;
    Some(Template {
        values,
        gradients,
        inverse_hessian: [
            [c / determinant, -b / determinant],
            [-b / determinant, a / determinant],
        ],
    })
}

/// Moves `guess` until the patch around it in `image` matches `template`.
fn align(image: &GreyImage, template: &Template, mut guess: Point, half: i32) -> Option<Point> {
    let mut patch = vec![0.0f32; template.values.len()];
    let mut last_step = f32::INFINITY;
    for _ in 0..ITERATIONS_MAX {
        for (value, (dx, dy)) in patch.iter_mut().zip(offsets(half)) {
            *value = image.sample(guess.x + dx, guess.y + dy);
        }
        let (mut bx, mut by) = (0.0f32, 0.0f32);
        for ((value, t), &(gx, gy)) in patch.iter().zip(&template.values).zip(&template.gradients) {
            let error = value - t;
            bx += gx * error;
            by += gy * error;
        }
        let h = &template.inverse_hessian;
        let (step_x, step_y) = (h[0][0] * bx + h[0][1] * by, h[1][0] * bx + h[1][1] * by);
        if !(step_x.is_finite() && step_y.is_finite()) {
            return None;
        }
        guess = Point::new(guess.x - step_x, guess.y - step_y);
        last_step = step_x.abs() + step_y.abs();
        if last_step < STEP_PX_MIN {
            return Some(guess);
        }
    }
    // Steps that dither around a point (noise, sampling) still found it; a
    // track still moving by more has not.
    (last_step < STEP_PX_DITHER_MAX).then_some(guess)
}

fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Follows `point` of `from` into `to`, starting at `guess`. `half_px` is
/// the patch half-side at full resolution. `None` when the patch is too
/// flat, the track does not converge, strays further than `reach_px` from
/// the guess, or ends on a patch that does not look like the template.
pub fn track(
    from: &GreyPyramid,
    to: &GreyPyramid,
    point: Point,
    guess: Point,
    half_px: i32,
    reach_px: f32,
) -> Option<Point> {
    let half_px = half_px.clamp(PATCH_HALF_PX_MIN, PATCH_HALF_PX_MAX);
    // Coarse level: half the coordinates, half the patch.
    let coarse_half = (half_px / 2).max(PATCH_HALF_PX_MIN / 2 + 1);
    let to_coarse = |p: Point| Point::new((p.x + 0.5) / 2.0 - 0.5, (p.y + 0.5) / 2.0 - 0.5);
    let to_fine = |p: Point| Point::new((p.x + 0.5) * 2.0 - 0.5, (p.y + 0.5) * 2.0 - 0.5);
    // Into each pyramid's own coordinates, and back at the end.
    let local = |p: Point, pyramid: &GreyPyramid| {
        Point::new(p.x - pyramid.origin.x, p.y - pyramid.origin.y)
    };
    let (point, guess) = (local(point, from), local(guess, to));
    let mut estimate = guess;
    if let Some(coarse_template) = template(&from.levels[1], to_coarse(point), coarse_half)
        && let Some(coarse) = align(
            &to.levels[1],
            &coarse_template,
            to_coarse(guess),
            coarse_half,
        )
    {
        estimate = to_fine(coarse);
    }
    let fine_template = template(&from.levels[0], point, half_px)?;
    let tracked = align(&to.levels[0], &fine_template, estimate, half_px)?;
    if tracked.distance(guess) > reach_px {
        return None;
    }
    let mut patch: Vec<f32> = offsets(half_px)
        .map(|(dx, dy)| to.levels[0].sample(tracked.x + dx, tracked.y + dy))
        .collect();
    remove_plane(&mut patch, half_px);
    (correlation(&patch, &fine_template.values) >= CORRELATION_MIN)
        .then_some(Point::new(tracked.x + to.origin.x, tracked.y + to.origin.y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A smooth random-looking texture, so that every patch is trackable.
    fn texture(x: f32, y: f32) -> f32 {
        128.0
            + 40.0 * (0.31 * x + 0.17 * y).sin()
            + 35.0 * (0.23 * y - 0.11 * x).cos()
            + 25.0 * (0.05 * x * y / 10.0).sin()
    }

    fn image(shift_x: f32, shift_y: f32, brightness: f32, shading: f32) -> RgbImage {
        RgbImage::from_fn(120, 100, |x, y| {
            let v = (texture(x as f32 - shift_x, y as f32 - shift_y)
                + brightness
                + shading * (x as f32 - 60.0))
                .clamp(0.0, 255.0) as u8;
            Rgb([v, v, v])
        })
    }

    #[test]
    fn a_shift_is_followed_to_a_fraction_of_a_pixel_despite_shading() {
        let from = GreyPyramid::new(&image(0.0, 0.0, 0.0, 0.0)).unwrap();
        let to = GreyPyramid::new(&image(3.4, -2.7, 12.0, 0.5)).unwrap();
        let point = Point::new(60.0, 50.0);
        // The guess is off by a few pixels, as a detector's would be.
        let tracked = track(&from, &to, point, Point::new(61.0, 49.0), 8, 20.0).unwrap();
        assert!(
            tracked.distance(Point::new(63.4, 47.3)) < 0.1,
            "{tracked:?}"
        );
    }

    #[test]
    fn regions_track_in_frame_coordinates() {
        let region = Region {
            left: 30,
            top: 20,
            width: 60,
            height: 60,
        };
        let from = GreyPyramid::of_region(&image(0.0, 0.0, 0.0, 0.0), region).unwrap();
        let to = GreyPyramid::of_region(&image(2.0, 1.5, 0.0, 0.0), region).unwrap();
        let tracked = track(
            &from,
            &to,
            Point::new(60.0, 50.0),
            Point::new(61.0, 51.0),
            8,
            20.0,
        )
        .unwrap();
        assert!(
            tracked.distance(Point::new(62.0, 51.5)) < 0.1,
            "{tracked:?}"
        );
    }

    #[test]
    fn a_flat_patch_is_not_tracked() {
        let flat = GreyPyramid::new(&RgbImage::from_pixel(64, 64, Rgb([90, 90, 90]))).unwrap();
        assert!(
            track(
                &flat,
                &flat,
                Point::new(30.0, 30.0),
                Point::new(30.0, 30.0),
                6,
                10.0
            )
            .is_none()
        );
    }
}

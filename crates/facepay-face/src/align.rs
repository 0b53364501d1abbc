//! Alignment of a face to the 112x112 crop the embedding model was trained on.

use image::{Rgb, RgbImage};

use crate::geometry::Point;

pub const ALIGNED_SIZE_PX: u32 = 112;

/// Where the five landmarks of a frontal face sit in the 112x112 crop (the
/// ArcFace template that SFace was trained with).
pub const TEMPLATE: [Point; 5] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(41.5493, 92.3655),
    Point::new(70.7299, 92.2041),
];

/// A 2D similarity transform: `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty`
/// (scale `√(a²+b²)`, rotation `atan2(b, a)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        Point::new(
            (self.a * x - self.b * y + self.tx) as f32,
            (self.b * x + self.a * y + self.ty) as f32,
        )
    }

    pub fn inverse(&self) -> Option<Similarity> {
        let norm = self.a * self.a + self.b * self.b;
        if norm < 1e-12 {
            return None;
        }
        let (a, b) = (self.a / norm, -self.b / norm);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    pub fn scale(&self) -> f64 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// The least-squares similarity transform taking `from` onto `to` (Umeyama's
/// closed form, which in 2D needs no SVD). `None` when the points coincide.
pub fn estimate_similarity(from: &[Point], to: &[Point]) -> Option<Similarity> {
    assert_eq!(from.len(), to.len(), "point sets must pair up");
    let n = from.len() as f64;
    if from.len() < 2 {
        return None;
    }
    let mean = |ps: &[Point]| {
        let (sx, sy) = ps.iter().fold((0.0, 0.0), |(sx, sy), p| {
            (sx + f64::from(p.x), sy + f64::from(p.y))
        });
        (sx / n, sy / n)
    };
    let (fx, fy) = mean(from);
    let (tx, ty) = mean(to);
    let (mut dot, mut cross, mut variance) = (0.0, 0.0, 0.0);
    for (p, q) in from.iter().zip(to) {
        let (px, py) = (f64::from(p.x) - fx, f64::from(p.y) - fy);
        let (qx, qy) = (f64::from(q.x) - tx, f64::from(q.y) - ty);
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        variance += px * px + py * py;
    }
    if variance < 1e-9 {
        return None;
    }
    let a = dot / variance;
    let b = cross / variance;
    Some(Similarity {
        a,
        b,
        tx: tx - (a * fx - b * fy),
        ty: ty - (b * fx + a * fy),
    })
}

/// Warps the face onto the template and returns the 112x112 crop. Pixels
/// that fall outside the image are black, as in OpenCV's `warpAffine`.
pub fn align(image: &RgbImage, landmarks: &[Point; 5]) -> Option<RgbImage> {
    let to_crop = estimate_similarity(landmarks, &TEMPLATE)?;
    let to_image = to_crop.inverse()?;
    Some(warp(image, &to_image, ALIGNED_SIZE_PX))
}

/// Bilinear sampling of `image` at `to_image(x, y)` for each output pixel.
/// Integer coordinates are pixel centres, OpenCV's convention, so our crop
/// matches the one OpenCV's `alignCrop` makes from the same landmarks.
pub fn warp(image: &RgbImage, to_image: &Similarity, size_px: u32) -> RgbImage {
    let (width, height) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let mut out = RgbImage::new(size_px, size_px);
    for y in 0..size_px {
        for x in 0..size_px {
            let (xf, yf) = (f64::from(x), f64::from(y));
            let sx = to_image.a * xf - to_image.b * yf + to_image.tx;
            let sy = to_image.b * xf + to_image.a * yf + to_image.ty;
            let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let mut pixel = [0u8; 3];
            for (c, value) in pixel.iter_mut().enumerate() {
                let sample = |xx: i64, yy: i64| -> f64 {
                    if xx < 0 || yy < 0 || xx >= width || yy >= height {
                        0.0
                    } else {
                        f64::from(raw[((yy * width + xx) * 3) as usize + c])
                    }
                };
                let top = sample(x0, y0) * (1.0 - fx) + sample(x0 + 1, y0) * fx;
                let bottom = sample(x0, y0 + 1) * (1.0 - fx) + sample(x0 + 1, y0 + 1) * fx;
                *value = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(x, y, Rgb(pixel));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_transform() {
        let truth = Similarity {
            a: 1.7 * 0.3f64.cos(),
            b: 1.7 * 0.3f64.sin(),
            tx: 40.0,
            ty: -12.5,
        };
        let moved: Vec<Point> = TEMPLATE.iter().map(|&p| truth.apply(p)).collect();
        let found = estimate_similarity(&TEMPLATE, &moved).unwrap();
        assert!((found.a - truth.a).abs() < 1e-5, "{found:?}");
        assert!((found.b - truth.b).abs() < 1e-5, "{found:?}");
        assert!((found.tx - truth.tx).abs() < 1e-3, "{found:?}");
        assert!((found.ty - truth.ty).abs() < 1e-3, "{found:?}");
        // And the inverse takes the moved points home.
        let back = found.inverse().unwrap();
        for (p, q) in TEMPLATE.iter().zip(&moved) {
            assert!(back.apply(*q).distance(*p) < 1e-3);
        }
    }

    #[test]
    fn degenerate_points_give_none() {
        let same = [Point::new(3.0, 3.0); 5];
        assert!(estimate_similarity(&same, &TEMPLATE).is_none());
    }

    #[test]
    fn aligning_a_face_at_the_template_is_the_identity() {
        let image = RgbImage::from_fn(112, 112, |x, y| Rgb([x as u8, y as u8, (x + y) as u8]));
        let crop = align(&image, &TEMPLATE).unwrap();
        assert_eq!(crop, image);
    }

    #[test]
    fn aligning_a_scaled_face_undoes_the_scale() {
        // The same gradient drawn twice as large, landmarks scaled with it.
        let big = RgbImage::from_fn(224, 224, |x, y| Rgb([(x / 2) as u8, (y / 2) as u8, 0]));
        let landmarks = TEMPLATE.map(|p| Point::new(p.x * 2.0 + 0.5, p.y * 2.0 + 0.5));
        let crop = align(&big, &landmarks).unwrap();
        for (x, y, pixel) in crop.enumerate_pixels() {
            assert!(
                (i32::from(pixel[0]) - x as i32).abs() <= 1,
                "x {x} {pixel:?}"
            );
            assert!(
                (i32::from(pixel[1]) - y as i32).abs() <= 1,
                "y {y} {pixel:?}"
            );
        }
    }
}

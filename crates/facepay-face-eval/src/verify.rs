//! Verification (1:1) metrics over a folder of photos, one folder per person.
//!
//! Every pair of templates is scored: pairs of one person are genuine, pairs
//! of two people are impostors. FMR at a threshold is the share of impostor
//! pairs that score at or above it; FNMR is the share of genuine pairs below
//! it; EER is where the two meet.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Photos read per evaluation at most, so that all pairs stay tractable
/// (2,000 photos are about 2 million pairs).
pub const PHOTOS_MAX: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no person folders with images")]
    Empty(PathBuf),
    #[error("more than {PHOTOS_MAX} photos")]
    TooMany,
}

#[derive(Debug, Clone)]
pub struct Photo {
    pub person: String,
    pub path: PathBuf,
}

fn is_image(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// Lists `DIR/<person>/<photo>` for each directory given, sorted.
pub fn list_photos(dirs: &[PathBuf]) -> Result<Vec<Photo>, VerifyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| VerifyError::Io { path, source }
    };
    let mut photos = Vec::new();
    for dir in dirs {
        let mut people: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        people.sort();
        for person_dir in people {
            let person = person_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files: Vec<PathBuf> = fs::read_dir(&person_dir)
                .map_err(io(&person_dir))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_image(p))
                .collect();
            files.sort();
            photos.extend(files.into_iter().map(|path| Photo {
                person: person.clone(),
                path,
            }));
            if photos.len() > PHOTOS_MAX {
                return Err(VerifyError::TooMany);
            }
        }
    }
    if photos.is_empty() {
        return Err(VerifyError::Empty(
            dirs.first().cloned().unwrap_or_default(),
        ));
    }
    Ok(photos)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RatesAtThreshold {
    pub threshold: f32,
    pub false_match_rate: f64,
    pub false_non_match_rate: f64,
    pub false_matches: usize,
    pub false_non_matches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerificationReport {
    pub people: usize,
    pub photos: usize,
    /// Photos where no face could be found or embedded (failure to acquire).
    pub failed_to_acquire: Vec<String>,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub rates: Vec<RatesAtThreshold>,
    pub equal_error_rate: f64,
    pub equal_error_threshold: f32,
    pub genuine_score_min: f32,
    pub impostor_score_max: f32,
    #[serde(skip)]
    pub genuine_scores: Vec<f32>,
    #[serde(skip)]
    pub impostor_scores: Vec<f32>,
}

/// Scores all pairs. `templates[i]` is the person and unit embedding of one
/// acquired photo.
pub fn evaluate(
    templates: &[(String, Vec<f32>)],
    failed_to_acquire: Vec<String>,
    thresholds: &[f32],
) -> VerificationReport {
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (i, (person_a, a)) in templates.iter().enumerate() {
        for (person_b, b) in &templates[i + 1..] {
            let score: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            if person_a == person_b {
                genuine.push(score);
            } else {
                impostor.push(score);
            }
        }
    }
    genuine.sort_by(f32::total_cmp);
    impostor.sort_by(f32::total_cmp);
    let rates = thresholds
        .iter()
        .map(|&t| rates_at(&genuine, &impostor, t))
        .collect();
    let (equal_error_rate, equal_error_threshold) = equal_error_rate(&genuine, &impostor);
    let mut people: Vec<&str> = templates.iter().map(|(p, _)| p.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    VerificationReport {
        people: people.len(),
        photos: templates.len() + failed_to_acquire.len(),
        failed_to_acquire,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        rates,
        equal_error_rate,
        equal_error_threshold,
        genuine_score_min: genuine.first().copied().unwrap_or(f32::NAN),
        impostor_score_max: impostor.last().copied().unwrap_or(f32::NAN),
        genuine_scores: genuine,
        impostor_scores: impostor,
    }
}

/// Count of sorted `scores` strictly below `threshold`.
fn below(scores: &[f32], threshold: f32) -> usize {
    scores.partition_point(|&s| s < threshold)
}

fn ratio(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

pub fn rates_at(genuine: &[f32], impostor: &[f32], threshold: f32) -> RatesAtThreshold {
    let false_non_matches = below(genuine, threshold);
    let false_matches = impostor.len() - below(impostor, threshold);
    RatesAtThreshold {
        threshold,
        false_match_rate: ratio(false_matches, impostor.len()),
        false_non_match_rate: ratio(false_non_matches, genuine.len()),
        false_matches,
        false_non_matches,
    }
}

/// The EER and the threshold where FMR and FNMR are closest, searching every
/// score as a candidate threshold. When the two sets separate, the EER is 0
/// and the threshold is midway through the gap.
pub fn equal_error_rate(genuine: &[f32], impostor: &[f32]) -> (f64, f32) {
    if genuine.is_empty() || impostor.is_empty() {
        return (0.0, f32::NAN);
    }
    let (genuine_min, impostor_max) = (genuine[0], impostor[impostor.len() - 1]);
    if genuine_min > impostor_max {
        return (0.0, (genuine_min + impostor_max) / 2.0);
    }
    let mut best = (f64::INFINITY, 0.0f64, f32::NAN);
    for &t in genuine.iter().chain(impostor) {
        let r = rates_at(genuine, impostor, t);
        let gap = (r.false_match_rate - r.false_non_match_rate).abs();
        if gap < best.0 {
            best = (gap, (r.false_match_rate + r.false_non_match_rate) / 2.0, t);
        }
    }
    (best.1, best.2)
}

/// A histogram of genuine and impostor scores as a standalone SVG.
/// Hand-written: two bar series and an axis do not justify a plotting crate.
pub fn histogram_svg(report: &VerificationReport, thresholds: &[f32]) -> String {
    const BINS: usize = 50;
    const WIDTH: f32 = 720.0;
    const HEIGHT: f32 = 360.0;
    const MARGIN: f32 = 40.0;
    let (low, high) = (-0.4f32, 1.0f32);
    let bin_of = |s: f32| (((s - low) / (high - low) * BINS as f32) as usize).min(BINS - 1);
    let count = |scores: &[f32]| {
        let mut bins = [0usize; BINS];
        for &s in scores {
            bins[bin_of(s.clamp(low, high))] += 1;
        }
        bins
    };
    let genuine = count(&report.genuine_scores);
    let impostor = count(&report.impostor_scores);
    // Each series is normalised to its own total so both are visible.
    let share = |bins: &[usize; BINS], total: usize| bins.map(|c| ratio(c, total) as f32);
    let (g, i) = (
        share(&genuine, report.genuine_pairs),
        share(&impostor, report.impostor_pairs),
    );
    let peak = g.iter().chain(&i).copied().fold(0.0f32, f32::max).max(1e-6);
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let bar_w = plot_w / BINS as f32;
    let x_of = |s: f32| MARGIN + (s - low) / (high - low) * plot_w;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{MARGIN}\" y=\"20\">Cosine scores: genuine ({}) in blue, impostor ({}) in red; share of pairs per bin</text>\n",
        report.genuine_pairs, report.impostor_pairs
    );
    for (series, colour) in [(&i, "#d62728"), (&g, "#1f77b4")] {
        for (bin, &value) in series.iter().enumerate() {
            if value == 0.0 {
                continue;
            }
            let h = value / peak * plot_h;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.6\"/>\n",
                MARGIN + bin as f32 * bar_w,
                HEIGHT - MARGIN - h,
                bar_w,
                h
            ));
        }
    }
    for &t in thresholds {
        let x = x_of(t);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{MARGIN}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\" stroke-dasharray=\"4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{t:.3}</text>\n",
            HEIGHT - MARGIN,
            x + 3.0,
            MARGIN + 12.0
        ));
    }
    let axis_y = HEIGHT - MARGIN;
    svg.push_str(&format!(
        "<line x1=\"{MARGIN}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"black\"/>\n",
        WIDTH - MARGIN
    ));
    for tick in [-0.4f32, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0] {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tick:.1}</text>\n",
            x_of(tick),
            axis_y + 16.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn separable_sets_have_zero_error() {
        let templates = vec![
            ("a".to_string(), unit(&[1.0, 0.1, 0.0])),
            ("a".to_string(), unit(&[1.0, 0.0, 0.1])),
            ("b".to_string(), unit(&[0.0, 1.0, 0.0])),
            ("b".to_string(), unit(&[0.1, 1.0, 0.0])),
        ];
        let report = evaluate(&templates, vec![], &[0.5]);
        assert_eq!(report.genuine_pairs, 2);
        assert_eq!(report.impostor_pairs, 4);
        assert_eq!(report.rates[0].false_matches, 0);
        assert_eq!(report.rates[0].false_non_matches, 0);
        assert_eq!(report.equal_error_rate, 0.0);
        assert!(report.equal_error_threshold > report.impostor_score_max);
        assert!(report.equal_error_threshold < report.genuine_score_min);
    }

    #[test]
    fn rates_count_at_or_above_as_match() {
        let genuine = [0.2, 0.5, 0.9];
        let impostor = [0.1, 0.5, 0.6];
        let r = rates_at(&genuine, &impostor, 0.5);
        assert_eq!(r.false_non_matches, 1, "0.2 is below");
        assert_eq!(r.false_matches, 2, "0.5 and 0.6 are at or above");
        // No threshold brings FMR and FNMR closer than 1/3 apart (at 0.5:
        // 2/3 and 1/3); the EER is their mean there.
        let (eer, threshold) = equal_error_rate(&genuine, &impostor);
        assert!((eer - 0.5).abs() < 1e-9, "{eer}");
        assert_eq!(threshold, 0.5);
    }

    #[test]
    fn histogram_is_svg_with_threshold_line() {
        let templates = vec![
            ("a".to_string(), unit(&[1.0, 0.0])),
            ("a".to_string(), unit(&[1.0, 0.2])),
            ("b".to_string(), unit(&[0.0, 1.0])),
        ];
        let report = evaluate(&templates, vec![], &[0.363]);
        let svg = histogram_svg(&report, &[0.363]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("0.363"));
        assert!(svg.matches("<rect").count() >= 3);
    }
}

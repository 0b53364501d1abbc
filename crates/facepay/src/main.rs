//! The `facepay` command. A thin layer: each subcommand parses its
//! arguments, calls the crates that do the work, and prints.

mod app;
mod bench;
mod bench_gallery;
mod bench_pay;
mod demo;
mod eval;
mod face;
mod hub;
mod keys;
mod ledger;
mod liveness;
mod models;
#[cfg(test)]
mod risk_day;
mod serve;
mod stats;
mod terminal;
mod vault;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use facepay_face::{Backend, EngineConfig, FaceEngine};
use facepay_models::ModelStore;

#[derive(Parser)]
#[command(name = "facepay", version, about = "Open, self-hostable face payments")]
struct Cli {
    /// Where the verified model files are cached.
    #[arg(long, global = true, env = "FACEPAY_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and verify the face models and the ONNX Runtime library.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Run the face engine on image files.
    #[command(subcommand)]
    Face(face::FaceCommand),
    /// Measure accuracy.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure speed.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the server with its pages.
    Serve {
        #[arg(long, env = "FACEPAY_ADDRESS", default_value = "127.0.0.1:8080")]
        address: std::net::SocketAddr,
        /// Create the demo merchant, store and terminal first if missing.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        app: app::AppArgs,
    },
    /// Create a demo merchant, store and terminal, enrol the sample faces and
    /// run a few payments.
    Demo {
        #[command(flatten)]
        demo: demo::DemoArgs,
        #[command(flatten)]
        app: app::AppArgs,
    },
    /// A command-line terminal that signs its requests like a kiosk.
    #[command(subcommand)]
    Terminal(terminal::TerminalCommand),
    /// Check and show the ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(ledger::AuditCommand),
    /// Rotate the key-encryption key; show which key wraps what.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The card vault as its own process, and its custodians' key parts.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// The cross-border hub.
    #[command(subcommand)]
    Hub(hub::HubCommand),
}

/// Options shared by every command that runs the engine.
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Inference runtime: `ort` (ONNX Runtime, the default) or `tract`.
    #[arg(long, env = "FACEPAY_BACKEND", default_value = "ort")]
    backend: Backend,
    /// Threads inside one inference (ONNX Runtime only).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

impl EngineArgs {
    pub fn load(&self, store: &ModelStore) -> anyhow::Result<FaceEngine> {
        self.load_with(store, self.backend)
    }

    pub fn load_with(&self, store: &ModelStore, backend: Backend) -> anyhow::Result<FaceEngine> {
        let config = EngineConfig {
            backend,
            threads_intra: self.threads,
            ..EngineConfig::default()
        };
        Ok(FaceEngine::load(store, config)?)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ort=warn,tract_onnx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let store = cli
        .models_dir
        .map(ModelStore::new)
        .unwrap_or_else(ModelStore::open_default);
    match cli.command {
        Command::Models(command) => models::run(command, &store),
        Command::Face(command) => face::run(command, &store),
        Command::Eval(command) => eval::run(command, &store),
        Command::Bench(command) => bench::run(command, &store),
        Command::Serve { address, demo, app } => tokio::runtime::Runtime::new()?.block_on(async {
            let built = app.build(&store).await?;
            if demo {
                demo::ensure_parties(&built, &app.data_dir).await?;
            }
            serve::serve(built, address).await
        }),
        Command::Demo { demo, app } => tokio::runtime::Runtime::new()?.block_on(async {
            let built = app.build(&store).await?;
            demo::run(&built, &app.data_dir, &demo).await
        }),
        Command::Terminal(command) => terminal::run(command),
        Command::Ledger(command) => ledger::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Audit(command) => ledger::audit(command),
        Command::Vault(command) => vault::run(command),
        Command::Hub(command) => hub::run(command),
    }
}

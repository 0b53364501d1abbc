//! `facepay-lab`: everything around the server that is not serving:
//! benchmarks, accuracy and liveness evaluation, face tools on image files,
//! and the demo scenarios. The `facepay` command runs it for `facepay bench`,
//! `eval`, `face`, `demo` and `hub`, so the server links none of this.

mod bench;
mod bench_enrolled;
mod bench_flood;
mod bench_gallery;
mod bench_ledger;
mod bench_pay;
mod cpu;
mod demo;
mod engine_args;
mod eval;
mod face;
mod hub;
mod liveness;
#[cfg(test)]
mod risk_day;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use facepay_models::ModelStore;

#[derive(Parser)]
#[command(
    name = "facepay-lab",
    version,
    about = "facepay's benchmarks, evaluation, face tools and demos"
)]
struct Cli {
    /// Where the verified model files are cached.
    #[arg(long, global = true, env = "FACEPAY_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the face engine on image files.
    #[command(subcommand)]
    Face(face::FaceCommand),
    /// Measure accuracy.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure speed.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Create a demo merchant, store and terminal, enrol the sample faces and
    /// run a few payments.
    Demo(demo::DemoArgs),
    /// The cross-border hub's demo.
    #[command(subcommand)]
    Hub(hub::HubCommand),
}

/// An ordinary error is one line, never anyhow's backtrace, whatever
/// `RUST_BACKTRACE` says.
fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
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
        Command::Face(command) => face::run(command, &store),
        Command::Eval(command) => eval::run(command, &store),
        Command::Bench(command) => bench::run(command, &store),
        Command::Demo(args) => demo::main(&args, &store),
        Command::Hub(command) => hub::run(command),
    }
}

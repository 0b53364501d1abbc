//! The `facepay` command. A thin layer: each subcommand parses its
//! arguments, calls the crates that do the work, and prints.
//!
//! The server's own jobs live here: serve, the vault process, the first
//! operator, the command-line terminal, keys, the ledger and audit checks, models.
//! Benchmarks, evaluation, face tools and demos live in `facepay-lab`, a
//! separate executable, so that the server links none of their code;
//! `facepay bench ...` runs `facepay-lab bench ...` from beside this
//! executable, as git and cargo run their external subcommands.

mod config;
mod keys;
mod ledger;
mod models;
mod operator;
mod terminal;
mod vault;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use facepay_models::ModelStore;

/// The subcommands `facepay-lab` answers.
const LAB_COMMANDS: [&str; 5] = ["bench", "eval", "face", "demo", "hub"];

#[derive(Parser)]
#[command(
    name = "facepay",
    version,
    about = "Open, self-hostable face payments",
    after_help = "Also: bench, eval, face, demo and hub (run by facepay-lab; `facepay-lab --help`)."
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
    /// Fetch and verify the face models and the ONNX Runtime library.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Run the server with its pages, built from a configuration file
    /// (`facepay.example.toml` documents every key) with
    /// `FACEPAY_<SECTION>__<KEY>` variables over it.
    Serve {
        #[command(flatten)]
        config: config::ConfigArgs,
    },
    /// Check a configuration file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The first admin operator of a deployment.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// A command-line terminal that pairs and signs its requests like a kiosk.
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
}

/// An ordinary error (a missing file, a refused configuration, a server
/// that answered no) is one line for the person at the terminal, never
/// anyhow's backtrace, whatever `RUST_BACKTRACE` says.
fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(command) = args.get(1).and_then(|a| a.to_str())
        && LAB_COMMANDS.contains(&command)
    {
        return run_lab(&args[1..]);
    }
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
        Command::Serve { config } => {
            let config = config.load()?;
            tokio::runtime::Runtime::new()?.block_on(async {
                let address = config.server.address;
                let clock = std::sync::Arc::new(facepay_store::SystemClock);
                let app = facepay_server::root::App::build(config, &store, clock).await?;
                facepay_server::serve(app, address).await
            })
        }
        Command::Config(command) => config::run(command),
        Command::Operator(command) => operator::run(command),
        Command::Terminal(command) => terminal::run(command),
        Command::Ledger(command) => ledger::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Audit(command) => ledger::audit(command),
        Command::Vault(command) => vault::run(command),
    }
}

/// Runs `facepay-lab` from beside this executable with the same arguments
/// in this process's place (as cargo runs its external subcommands on
/// Unix), so that a Ctrl-C or a signal sent to this process reaches it:
/// an import stopped with Ctrl-C finishes its batches under way.
fn run_lab(args: &[OsString]) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let lab = me.with_file_name(format!("facepay-lab{}", std::env::consts::EXE_SUFFIX));
    if !lab.exists() {
        anyhow::bail!(
            "`facepay {}` is run by facepay-lab, which is not built beside {}: \
             run `cargo build --release -p facepay-lab`",
            args[0].to_string_lossy(),
            me.display()
        );
    }
    let mut lab = std::process::Command::new(&lab);
    lab.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(lab.exec().into())
    }
    #[cfg(not(unix))]
    {
        std::process::exit(lab.status()?.code().unwrap_or(1));
    }
}

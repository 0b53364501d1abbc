//! `facepay serve --config FILE` and `facepay config check FILE`: the
//! configuration as facepay-config reads it, with the process's
//! `FACEPAY_<SECTION>__<KEY>` variables over it.

use std::path::PathBuf;

use facepay_config::Config;

#[derive(clap::Args, Clone)]
pub struct ConfigArgs {
    /// The configuration file (see facepay.example.toml).
    #[arg(long, env = "FACEPAY_CONFIG", conflicts_with = "demo")]
    pub config: Option<PathBuf>,
    /// The demo's configuration: the simulated issuer, simulated hub
    /// networks and FX rates, lenient liveness, the demo's risk rules.
    #[arg(long)]
    pub demo: bool,
}

impl ConfigArgs {
    pub fn load(&self) -> anyhow::Result<Config> {
        let env = process_env();
        let config = match (&self.config, self.demo) {
            (_, true) => Config::demo(env)?,
            (Some(path), false) => Config::load(Some(path), env)?,
            (None, false) => Config::load(None, env).map_err(|e| {
                anyhow::anyhow!("{e}\n(give --config FILE, see facepay.example.toml, or --demo)")
            })?,
        };
        let simulated = config.simulated_parts();
        if !simulated.is_empty() {
            tracing::warn!(parts = ?simulated, "SIMULATED parts in this configuration: no real money moves through them");
        }
        Ok(config)
    }
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Load and check a configuration file, its secrets and the files it
    /// names; print what it names. Exits 1 naming the key at fault.
    Check { file: PathBuf },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { file } = command;
    match facepay_config::check(&file) {
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
        Err(e) => {
            eprintln!("{}: {e}", e.code());
            std::process::exit(1);
        }
    }
}

/// The process's environment as text (a variable that is not valid UTF-8
/// is read lossily; the configuration checks what it means).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

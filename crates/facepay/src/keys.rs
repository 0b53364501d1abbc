//! `facepay keys rotate` and `facepay keys status`.

use std::sync::Arc;

use facepay_payments::{Envelope, FileKeyProvider, KeyProvider, rewrap_data_keys};

use crate::ledger::StoreArgs;

/// Data keys re-wrapped per database round.
const BATCH: i64 = 500;

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Make a new key-encryption key current and re-wrap every data key
    /// under it, while servers keep running. `--resume` finishes an
    /// interrupted rotation without making another key.
    Rotate {
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Which key-encryption key wraps how many data keys.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        match command {
            KeysCommand::Rotate { resume, store } => {
                let provider = Arc::new(FileKeyProvider::open(&store.data_dir.join("keys"))?);
                if !resume {
                    println!("new key-encryption key {}", provider.rotate()?);
                }
                let db = store.open().await?;
                let envelope = Envelope::new(provider.clone());
                let done = rewrap_data_keys(&db, &envelope, BATCH, |n| eprintln!("re-wrapped {n}"))
                    .await
                    .map_err(|f| anyhow::anyhow!("{f}"))?;
                println!(
                    "{done} data keys re-wrapped; all are now under {}",
                    provider.current()?.id()
                );
                Ok(())
            }
            KeysCommand::Status { store } => {
                let provider = FileKeyProvider::open(&store.data_dir.join("keys"))?;
                println!("current key-encryption key: {}", provider.current()?.id());
                let db = store.open().await?;
                let mut conn = db.acquire().await?;
                for (kek, count) in facepay_store::keys::count_by_kek(&mut conn).await? {
                    println!("{kek:<24} {count:>10} data keys");
                }
                Ok(())
            }
        }
    })
}

//! `facepay keys rotate`, `facepay keys reissue-templates` and
//! `facepay keys status`.

use std::sync::Arc;

use facepay_payments::{
    Envelope, FileKeyProvider, KeyProvider, reissue_templates, rewrap_data_keys,
};
use facepay_store::SystemClock;
use facepay_template_transform::TransformKeys;

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
    /// Issue a new template transform secret and move every template to
    /// it, while servers keep running (each server moves its gallery at its
    /// next start). `--resume` finishes an interrupted re-issue. With
    /// `--retire`, old secrets that no template uses any more are deleted:
    /// do that after every server has restarted.
    ReissueTemplates {
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        retire: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Which key-encryption key wraps how many data keys, and which
    /// template transform holds how many templates.
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
                let done = rewrap_data_keys(&db, &envelope, &SystemClock, BATCH, |n| {
                    eprintln!("re-wrapped {n}")
                })
                .await
                .map_err(|f| anyhow::anyhow!("{f}"))?;
                println!(
                    "{done} data keys re-wrapped; all are now under {}",
                    provider.current()?.id()
                );
                Ok(())
            }
            KeysCommand::ReissueTemplates {
                resume,
                retire,
                store,
            } => {
                let transforms = TransformKeys::open(&transforms_dir(&store.data_dir))?;
                if !resume {
                    println!("new template transform {}", transforms.reissue()?);
                }
                let db = store.open().await?;
                let provider = Arc::new(FileKeyProvider::open(&store.data_dir.join("keys"))?);
                let envelope = Envelope::new(provider);
                let done =
                    reissue_templates(&db, &envelope, &transforms, &SystemClock, BATCH, |n| {
                        eprintln!("re-issued {n}")
                    })
                    .await
                    .map_err(|f| anyhow::anyhow!("{f}"))?;
                let current = transforms.current_id()?;
                println!("{done} templates re-issued; all are now under {current}");
                if retire {
                    let mut conn = db.acquire().await?;
                    let in_use =
                        facepay_store::parties::template_count_by_transform(&mut conn).await?;
                    for id in transforms.ids()? {
                        let used = in_use
                            .iter()
                            .any(|(t, _)| t.as_deref() == Some(id.as_str()));
                        if id != current && !used {
                            transforms.retire(&id)?;
                            println!("retired template transform {id}");
                        }
                    }
                }
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
                let transforms = TransformKeys::open(&transforms_dir(&store.data_dir))?;
                println!("current template transform: {}", transforms.current_id()?);
                for (transform, count) in
                    facepay_store::parties::template_count_by_transform(&mut conn).await?
                {
                    let name = transform.as_deref().unwrap_or("(none)");
                    println!("{name:<24} {count:>10} templates");
                }
                Ok(())
            }
        }
    })
}

/// Where the deployment's template transform secrets live by default
/// (`keys.transforms_dir`).
fn transforms_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("transforms")
}

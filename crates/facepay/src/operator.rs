//! `facepay operator init`: the first admin operator of a deployment,
//! written straight into its store (no key exists yet to call the API
//! with). Every later operator, merchant, store and terminal is made over
//! the API (docs/onboarding.md).

use facepay_payments::keys;
use facepay_store::access::{self, KeyKind, NewKey};
use facepay_store::{StoreError, audit, ids};

use crate::ledger::StoreArgs;

#[derive(clap::Subcommand)]
pub enum OperatorCommand {
    /// Add an admin operator and print their key once.
    Init {
        /// Lower-case letters, digits, `_`, `.` and `-`.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn run(command: OperatorCommand) -> anyhow::Result<()> {
    let OperatorCommand::Init { name, store } = command;
    let valid = (1..=64).contains(&name.len())
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b"_.-".contains(&b))
        });
    anyhow::ensure!(
        valid,
        "an operator's name is 1 to 64 lower-case letters, digits, `_`, `.` or `-`"
    );
    tokio::runtime::Runtime::new()?.block_on(async {
        let store = store.open().await?;
        let now = facepay_store::now_ms();
        let (secret, hash) = keys::new_secret("fpo")?;
        let prefix: String = secret.chars().take(12).collect();
        let key_id = ids::new("key")?;
        let mut tx = store.begin().await?;
        match access::insert_operator(&mut tx, &name, "admin", now).await {
            Err(StoreError::Duplicate(_)) => {
                anyhow::bail!("an operator named {name} exists already")
            }
            other => other?,
        }
        let key = NewKey {
            id: &key_id,
            owner: &name,
            scope: "admin",
            label: Some("first key"),
            prefix: Some(&prefix),
            key_hash: &hash,
            expires_at_ms: None,
            created_at_ms: now,
        };
        access::insert_key(&mut tx, KeyKind::Operator, &key).await?;
        audit::append(
            &mut tx,
            now,
            "cli",
            "operator_created",
            &format!("{name}:admin"),
        )
        .await?;
        tx.commit().await?;
        store.close().await;
        println!("admin operator {name}, key {key_id} (shown once, keep it secret):\n{secret}");
        Ok(())
    })
}

//! `facepay operator init`: the first admin operator of a deployment,
//! written straight into its store (no key exists yet to call the API
//! with). Every later operator, merchant, store and terminal is made over
//! the API (docs/onboarding.md).

use facepay_payments::access;

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
    tokio::runtime::Runtime::new()?.block_on(async {
        let store = store.open().await?;
        let made = access::init_admin_operator(&store, &name, facepay_store::now_ms()).await;
        store.close().await;
        let made = made?;
        println!(
            "admin operator {name}, key {} (shown once, keep it secret):\n{}",
            made.key.id, made.key.secret
        );
        Ok(())
    })
}

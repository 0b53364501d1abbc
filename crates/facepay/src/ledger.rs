//! `facepay ledger verify` and `facepay ledger balances`.

use facepay_store::{Store, ledger};

#[derive(clap::Subcommand)]
pub enum LedgerCommand {
    /// Prove the ledger's invariants over the whole store; exit 1 if any fails.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every account's balance, derived from its entries.
    Balances {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain; exit 1 if an entry was edited,
    /// removed or reordered.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { store } = command;
    tokio::runtime::Runtime::new()?.block_on(async {
        let store = store.open().await?;
        let mut conn = store.acquire().await?;
        let v = facepay_store::audit::verify(&mut conn).await?;
        match v.broken {
            None => {
                println!("audit log verified: {} entries, chain intact", v.entries);
                Ok(())
            }
            Some((seq, why)) => anyhow::bail!("audit log broken at entry {seq}: {why}"),
        }
    })
}

#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    #[arg(long, env = "FACEPAY_STORE__DATA_DIR", default_value = ".facepay/data")]
    pub data_dir: std::path::PathBuf,
    #[arg(long, env = "FACEPAY_STORE__URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub async fn open(&self) -> anyhow::Result<Store> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => Store::sqlite_url(&self.data_dir)?,
        };
        Ok(Store::open(&url).await?)
    }
}

pub fn run(command: LedgerCommand) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        match command {
            LedgerCommand::Verify { store } => {
                let store = store.open().await?;
                let mut conn = store.pool().acquire().await?;
                let v = ledger::verify(&mut conn).await?;
                println!(
                    "store {}: {} payments, {} transfers, {} entries",
                    store.backend().name(),
                    v.payments,
                    v.transfers,
                    v.entries
                );
                for problem in &v.problems {
                    println!("problem: {problem}");
                }
                let points = facepay_store::loyalty::verify(&mut conn).await?;
                println!(
                    "points: {} transfers, {} balances",
                    points.transfers, points.balances
                );
                for problem in &points.problems {
                    println!("problem: {problem}");
                }
                if v.ok() && points.ok() {
                    println!(
                        "ledger verified: every transfer balances, every payment agrees with its \
                         entries, every reference names a row, and every points balance agrees \
                         with the points ledger"
                    );
                    Ok(())
                } else {
                    anyhow::bail!("{} problems found", v.problem_count + points.problem_count)
                }
            }
            LedgerCommand::Balances { store } => {
                let store = store.open().await?;
                let mut conn = store.pool().acquire().await?;
                println!("{:<56} {:>20} currency", "account", "balance_minor");
                for b in ledger::balances(&mut conn).await? {
                    println!(
                        "{:<56} {:>20} {}",
                        b.account_id, b.balance_minor, b.currency
                    );
                }
                Ok(())
            }
        }
    })
}

//! `facepay hub demo`: the cross-border hub's story on simulated networks
//! and a real store. A Korean wallet pays a QR code in Jakarta, an
//! Indonesian visitor pays a QR code in Seoul, cash comes out of a Bangkok
//! ATM with a one-time code, and the settlement window closes with every
//! participant's net position and the cost next to a card's.

use anyhow::Context;
use facepay_hub::demo::{Members, merchant_qr};
use facepay_hub::iso20022;
use facepay_hub::report::money;
use facepay_hub::service::Hub;
use facepay_hub::simulator::Failure;
use facepay_money::Currency;
use facepay_store::hub::{Quote, Transfer};
use facepay_store::{Store, ledger, now_ms};

#[derive(clap::Subcommand)]
pub enum HubCommand {
    /// Play the hub's story on simulated networks and print it.
    Demo {
        /// A database to keep the story in (a fresh SQLite file in a
        /// temporary directory otherwise).
        #[arg(long)]
        database_url: Option<String>,
    },
}

pub fn run(command: HubCommand) -> anyhow::Result<()> {
    let HubCommand::Demo { database_url } = command;
    tokio::runtime::Runtime::new()?.block_on(async {
        let scratch = std::env::temp_dir().join(format!("facepay-hub-demo-{}", std::process::id()));
        let url = match database_url {
            Some(url) => url,
            None => Store::sqlite_url(&scratch)?,
        };
        let store = Store::open(&url).await.context("opening the hub's store")?;
        let told = story(store.clone()).await;
        store.close().await;
        // The scratch store goes with the run; the simulated networks
        // behind it lived in memory only.
        let _ = std::fs::remove_dir_all(&scratch);
        told
    })
}

fn show_quote(q: &Quote, now_ms: i64) {
    println!(
        "  quote {}: pay {} (fee {} included) so that {} receives {}; rate {} from {}, good for {} min",
        q.id,
        money(&q.source_currency, q.source_minor),
        money(&q.source_currency, q.fee_minor),
        q.payee_name,
        money(&q.destination_currency, q.destination_minor),
        iso20022::decimal_rate(&q.customer_rate),
        q.provider,
        (q.expires_at_ms - now_ms) / 60_000,
    );
}

fn show_transfer(t: &Transfer) {
    let reason = t
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "  transfer {}: {}{reason}, ISO 20022 status {}",
        t.id,
        t.state.as_str(),
        iso20022::status_code(t.state)
    );
}

async fn story(store: Store) -> anyhow::Result<()> {
    let now = now_ms();
    let members = Members::simulated(Failure::None);
    let hub: Hub = members.hub(store.clone(), now)?;
    println!(
        "Members (simulated networks): kr.wallet.sim (KRW), id.co.qris.sim (IDR), vn.napas.sim (VND), th.promptpay.sim (THB)"
    );
    println!();

    println!(
        "1. Kim, from Seoul, pays a warung in Jakarta from her Korean wallet by scanning its QR code."
    );
    let jakarta = merchant_qr(
        ("id.co.qris.sim", "warung-01"),
        ("Warung Makan", "Jakarta", "ID"),
        Currency::IDR.numeric(),
        Some("55000"),
        "INV-0042",
    )?;
    println!("  QR: {jakarta}");
    let q = hub
        .quote_qr("kr.wallet.sim", "kim", &jakarta, None, now)
        .await?;
    show_quote(&q, now);
    let outbound = hub.pay("kim-phone", "demo-1", &q.id, now).await?;
    show_transfer(&outbound);
    let retry = hub.pay("kim-phone", "demo-1", &q.id, now).await?;
    println!(
        "  the phone retries with the same key: {} again, Kim's wallet {} (charged once)",
        retry.id,
        money("KRW", members.korea.balance("kim").unwrap_or(0))
    );
    println!();

    println!(
        "2. Budi, visiting from Jakarta, pays a cafe in Seoul from his Indonesian wallet (static QR, he keys in 15,000 won)."
    );
    let seoul = merchant_qr(
        ("kr.wallet.sim", "seoul-cafe"),
        ("Seoul Cafe", "Seoul", "KR"),
        Currency::KRW.numeric(),
        None,
        "T-7",
    )?;
    let q = hub
        .quote_qr("id.co.qris.sim", "budi", &seoul, Some("15000"), now)
        .await?;
    show_quote(&q, now);
    show_transfer(&hub.pay("budi-phone", "demo-2", &q.id, now).await?);
    println!();

    println!("3. Kim withdraws 1,000 baht at a Bangkok ATM with no card.");
    let cash = hub
        .issue_cash_code(("kr.wallet.sim", "kim"), "th.promptpay.sim", 100_000, now)
        .await?;
    println!("  the app shows a one-time code: {}", cash.code);
    show_quote(&cash.quote, now);
    let reserved = hub
        .withdraw_cash("th.promptpay.sim", &cash.code, 100_000, now)
        .await?;
    println!(
        "  the ATM presents it: {}, it dispenses",
        reserved.state.as_str()
    );
    show_transfer(
        &hub.confirm_cash("th.promptpay.sim", &reserved.id, true, now)
            .await?,
    );
    let again = hub
        .withdraw_cash("th.promptpay.sim", &cash.code, 100_000, now)
        .await;
    if let Err(e) = again {
        println!("  the same code again: refused, {} ({e})", e.code());
    }
    println!();

    println!("4. The settlement window closes.");
    let window = hub.close_window(now + 1).await?;
    let report = hub.report(&window.id, None).await?;
    for line in report.render().lines() {
        println!("  {line}");
    }
    hub.settle_window(&window.id, now + 2).await?;
    println!("  settled: each network paid or was paid its net position once.");
    let mut conn = store.acquire().await?;
    let verified = ledger::verify(&mut conn).await?;
    anyhow::ensure!(verified.ok(), "ledger verify: {:?}", verified.problems);
    println!(
        "  ledger verified: {} transfers, {} entries, every one balanced",
        verified.transfers, verified.entries
    );
    println!();

    println!(
        "5. What the Jakarta payment looks like to a network that speaks ISO 20022 (pacs.008):"
    );
    println!("{}", iso20022::pacs008(&outbound));
    Ok(())
}

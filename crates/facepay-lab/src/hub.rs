//! `facepay hub demo`: the cross-border hub's story on simulated networks
//! and a real store. A Korean wallet pays a QR code in Jakarta, an
//! Indonesian visitor pays a QR code in Seoul, cash comes out of a Bangkok
//! ATM with a one-time code, Kim's network becomes a member with a cap and
//! funds and she pays a Bangkok market found by phone (refused past the
//! cap, then held by screening and released), and the settlement window
//! closes with every participant's net position and the cost next to a
//! card's, settled through the simulated settlement bank.

use std::sync::Arc;

use anyhow::Context;
use facepay_hub::AliasKind;
use facepay_hub::demo::{
    Members, PHO_HANOI_QR_ID, SIAM_MARKET_PHONE, merchant_qr, promptpay_qr, vietqr_qr,
};
use facepay_hub::iso20022;
use facepay_hub::members::Terms;
use facepay_hub::report::money;
use facepay_hub::screening::ListScreening;
use facepay_hub::service::Hub;
use facepay_hub::simulator::Failure;
use facepay_money::Currency;
use facepay_store::hub::{Quote, Transfer};
use facepay_store::hub_members::FundsDirection;
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

/// The demo's sanctions list, in the format `docs/hub.md` describes: it
/// names the Bangkok market, so that a payment to it is held.
const DEMO_SANCTIONS: &str = "# the demo's list\nDEMO-1|Siam Market\n";

fn terms(cap_minor: i64) -> Terms {
    Terms {
        currency: "KRW".into(),
        settlement_account: "KR-WALLET-SETTLEMENT".into(),
        net_debit_cap_minor: cap_minor,
        requests_per_minute: 600,
    }
}

/// Korea's network as a member with a cap and funds; a payee found by
/// phone, refused past the cap, then held by screening and released.
async fn members_story(hub: &Hub, now: i64) -> anyhow::Result<()> {
    const KOREA: &str = "kr.wallet.sim";
    const OPERATOR: &str = "operator:demo";
    println!(
        "4. The operator onboards Kim's network with a cap of 40,000 won and 100,000 won of funds."
    );
    hub.onboard(OPERATOR, KOREA, terms(40_000), now).await?;
    hub.move_funds(
        OPERATOR,
        KOREA,
        "demo-funds",
        FundsDirection::In,
        100_000,
        now,
    )
    .await?;
    let standing = hub.standing(KOREA).await?;
    println!(
        "  it may owe {} so far (its payments less what its merchants were paid)",
        money("KRW", standing.exposure_minor)
    );
    let payee = hub
        .lookup_alias(
            KOREA,
            ("th.promptpay.sim", AliasKind::Phone, SIAM_MARKET_PHONE),
            now,
        )
        .await?;
    println!(
        "  Kim pays a Bangkok market by its phone number {SIAM_MARKET_PHONE}: its network says {} ({}); she confirms",
        payee.name, payee.account
    );
    let q = hub
        .quote_account(
            (KOREA, "kim"),
            ("th.promptpay.sim", &payee.account),
            "500.00",
            now,
        )
        .await?;
    show_quote(&q, now);
    if let Err(e) = hub.pay("kim-phone", "demo-4", &q.id, now).await {
        println!("  refused before any network is called: {} ({e})", e.code());
    }
    hub.onboard(OPERATOR, KOREA, terms(100_000), now).await?;
    println!("  the operator raises the cap to 100,000 won; the same quote, paid again:");
    let held = hub.pay("kim-phone", "demo-4", &q.id, now).await?;
    show_transfer(&held);
    println!("  the operator asks both networks about the market, then releases it:");
    show_transfer(&hub.release(OPERATOR, &held.id, now).await?);
    Ok(())
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

/// Kim pays the static codes a Hanoi pho shop and a Bangkok market
/// print, VietQR and PromptPay, with no merchant name, city or category:
/// the hub reads each as its scheme and shows the payee by its account.
async fn asian_codes(hub: &Hub, now: i64) -> anyhow::Result<()> {
    let (bin, account) = PHO_HANOI_QR_ID
        .split_once('-')
        .context("the demo's VietQR id is a BIN and an account")?;
    let codes = [
        (
            "a pho shop in Hanoi by its VietQR code (she keys in 120,000 dong)",
            vietqr_qr((bin, account), ("vn.napas.sim", "pho-hanoi"))?,
            "120000",
            "demo-1v",
        ),
        (
            "a noodle shop in Bangkok by its PromptPay code (she keys in 150 baht)",
            promptpay_qr("0066898765432", ("th.promptpay.sim", "bangkok-noodles"))?,
            "150.00",
            "demo-1t",
        ),
    ];
    for (what, qr, amount, key) in codes {
        println!("  Kim pays {what}.");
        println!("  QR: {qr}");
        let q = match hub
            .quote_qr("kr.wallet.sim", "kim", &qr, Some(amount), now)
            .await
        {
            // NAPAS closes from 23:00 to 00:30 in Hanoi, as the simulator does.
            Err(e) if e.code() == "network_closed" => {
                println!("  refused at this hour: {} ({e})", e.code());
                continue;
            }
            quoted => quoted?,
        };
        show_quote(&q, now);
        show_transfer(&hub.pay("kim-phone", key, &q.id, now).await?);
    }
    Ok(())
}

async fn story(store: Store) -> anyhow::Result<()> {
    let now = now_ms();
    let members = Members::simulated(Failure::None);
    let mut hub: Hub = members.hub(store.clone(), now)?;
    hub.set_screening(Arc::new(ListScreening::parse(DEMO_SANCTIONS)?));
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
    asian_codes(&hub, now).await?;
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

    members_story(&hub, now).await?;
    println!();

    println!("5. The settlement window closes.");
    let window = hub.close_window(now + 1).await?;
    let report = hub.report(&window.id, None).await?;
    for line in report.render().lines() {
        println!("  {line}");
    }
    let settlement = hub.settle_window(&window.id, now + 2).await?;
    anyhow::ensure!(
        settlement.window.state == "settled",
        "the window did not settle"
    );
    println!(
        "  settled: {} pacs.009 instructions confirmed by the simulated settlement bank; each participant paid or was paid its net position once.",
        settlement.instructions.len()
    );
    let mut conn = store.acquire().await?;
    let verified = ledger::verify(&mut conn).await?;
    anyhow::ensure!(verified.ok(), "ledger verify: {:?}", verified.problems);
    println!(
        "  ledger verified: {} transfers, {} entries, every one balanced",
        verified.transfers, verified.entries
    );
    println!();

    println!(
        "6. What the Jakarta payment looks like to a network that speaks ISO 20022 (pacs.008):"
    );
    println!("{}", iso20022::pacs008(&outbound));
    Ok(())
}

//! A deployment's first parties, for development and tests: the demo
//! merchant (with a points program and a stamp card), its store in Seoul, a
//! terminal with its Ed25519 key, the merchant's API key, an operator key
//! and the simulated hub members' keys, each key written to a 0600 file in
//! the data directory. Run again, it reuses what exists.

use std::path::{Path, PathBuf};

use facepay_payments::{keys, signing};
use facepay_store::loyalty;
use facepay_store::parties::{self, Merchant, StoreRow};
use facepay_terminal::TerminalFile;

use crate::root::App;

pub const MERCHANT_ID: &str = "mer_demo_cafe";
pub const STORE_ID: &str = "sto_demo_gangnam";
pub const TERMINAL_ID: &str = "trm_demo_till1";
/// The merchant's API key, kept beside the terminal key for the demo.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MerchantFile {
    pub merchant_id: String,
    pub api_key: String,
}

pub fn terminal_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-terminal.json")
}

pub fn merchant_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-merchant.json")
}

/// The demo operator's key (fraud claims, reviews, blocklist).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OperatorFile {
    pub operator_key: String,
}

pub fn operator_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-operator.json")
}

/// The simulated hub members' keys, by network id.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct HubFile {
    pub member_keys: std::collections::BTreeMap<String, String>,
}

pub fn hub_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-hub.json")
}

/// Creates the demo merchant, store, terminal and API key unless they exist.
pub async fn ensure_parties(app: &App, data_dir: &Path) -> anyhow::Result<()> {
    let store = app.services.store();
    let mut conn = store.pool().acquire().await?;
    let registered = parties::terminal_context(&mut conn, TERMINAL_ID)
        .await?
        .is_some();
    let files = [
        terminal_file(data_dir),
        merchant_file(data_dir),
        operator_file(data_dir),
        hub_file(data_dir),
    ];
    if registered && files.iter().all(|f| f.exists()) {
        return Ok(());
    }
    drop(conn);
    let now = app.services.clock().now_ms();
    let key = signing::new_terminal_key()?;
    let (api_key, api_key_hash) = keys::new_secret("fpk")?;
    let (operator_key, operator_key_hash) = keys::new_secret("fpo")?;
    let mut tx = store.begin().await?;
    if parties::merchant(&mut tx, MERCHANT_ID).await?.is_none() {
        parties::insert_merchant(
            &mut tx,
            &Merchant {
                id: MERCHANT_ID.into(),
                name: "Demo Coffee".into(),
                fee_bps: 250,
                status: "active".into(),
            },
            now,
        )
        .await?;
        parties::insert_store(
            &mut tx,
            &StoreRow {
                id: STORE_ID.into(),
                merchant_id: MERCHANT_ID.into(),
                name: "Demo Coffee Gangnam".into(),
                country: "KR".into(),
                city: "Seoul".into(),
                currency: "KRW".into(),
                latitude_e6: 37_497_942,
                longitude_e6: 127_027_621,
            },
            now,
        )
        .await?;
        add_loyalty(&mut tx, now).await?;
    }
    let public_key = key.verifying_key().to_bytes();
    if registered {
        // The key file was lost: the terminal gets a new key.
        parties::set_terminal_key(&mut tx, TERMINAL_ID, &public_key).await?;
    } else {
        parties::insert_terminal(&mut tx, TERMINAL_ID, STORE_ID, &public_key, now).await?;
    }
    facepay_store::audit::append(&mut tx, now, "operator", "terminal_key_set", TERMINAL_ID).await?;
    facepay_store::audit::append(&mut tx, now, "operator", "api_key_created", MERCHANT_ID).await?;
    parties::insert_api_key(
        &mut tx,
        &facepay_store::ids::new("key")?,
        MERCHANT_ID,
        &api_key_hash,
        now,
    )
    .await?;
    facepay_store::audit::append(&mut tx, now, "operator", "operator_key_created", "demo").await?;
    facepay_store::fraud::insert_operator_key(
        &mut tx,
        &facepay_store::ids::new("opk")?,
        "demo",
        &operator_key_hash,
        now,
    )
    .await?;
    let mut member_keys = std::collections::BTreeMap::new();
    for network in facepay_hub::demo::member_ids() {
        let (key, key_hash) = keys::new_secret("fph")?;
        facepay_store::hub::insert_member_key(&mut tx, network, &key_hash, now).await?;
        facepay_store::audit::append(&mut tx, now, "operator", "hub_member_key_created", network)
            .await?;
        member_keys.insert(network.to_owned(), key);
    }
    tx.commit().await?;
    write_private(
        &hub_file(data_dir),
        &serde_json::to_string_pretty(&HubFile { member_keys })?,
    )?;
    write_private(
        &operator_file(data_dir),
        &serde_json::to_string_pretty(&OperatorFile { operator_key })?,
    )?;
    write_private(
        &terminal_file(data_dir),
        &serde_json::to_string_pretty(&TerminalFile {
            terminal_id: TERMINAL_ID.into(),
            secret_key_hex: hex::encode(key.to_bytes()),
        })?,
    )?;
    write_private(
        &merchant_file(data_dir),
        &serde_json::to_string_pretty(&MerchantFile {
            merchant_id: MERCHANT_ID.into(),
            api_key,
        })?,
    )?;
    Ok(())
}

/// A points program (1%, at most 1,000 points a payment) and a stamp card
/// (every fifth visit a free americano), so the first payments show points
/// earned and stamps collected.
async fn add_loyalty(tx: &mut facepay_store::Connection, now: i64) -> anyhow::Result<()> {
    const TEN_YEARS_MS: i64 = 10 * 365 * 86_400_000;
    let reward = loyalty::Coupon {
        id: "cpn_demo_free_americano".into(),
        merchant_id: MERCHANT_ID.into(),
        name: "Free americano".into(),
        kind: "fixed".into(),
        value: 4_500,
        min_spend_minor: 0,
        valid_from_ms: now,
        valid_until_ms: now + TEN_YEARS_MS,
        per_user_max: 1_000,
        total_max: None,
        used_count: 0,
        stackable: 0,
        granted_only: 1,
        status: "active".into(),
        created_at_ms: now,
    };
    loyalty::insert_coupon(tx, &reward).await?;
    let points = loyalty::Program {
        id: "lp_demo_points".into(),
        merchant_id: MERCHANT_ID.into(),
        kind: "points".into(),
        status: "active".into(),
        points_bps: Some(100),
        points_cap: Some(1_000),
        stamps_per_reward: None,
        reward_coupon_id: None,
        created_at_ms: now,
    };
    loyalty::insert_program(tx, &points).await?;
    let stamps = loyalty::Program {
        id: "lp_demo_stamps".into(),
        kind: "stamps".into(),
        points_bps: None,
        points_cap: None,
        stamps_per_reward: Some(5),
        reward_coupon_id: Some(reward.id.clone()),
        ..points
    };
    loyalty::insert_program(tx, &stamps).await?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        facepay_store::files::private_dir(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

//! `facepay demo`: a merchant, a store and a terminal, users enrolled from
//! the sample photos, and a few payments, all through the real service.
//! Run it again and it reuses what exists.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_payments::{keys, signing};
use facepay_store::parties::{self, Merchant, StoreRow};
use facepay_store::{ledger, loyalty, now_ms};

use crate::app::App;
use crate::terminal::TerminalFile;

pub const MERCHANT_ID: &str = "mer_demo_cafe";
pub const STORE_ID: &str = "sto_demo_gangnam";
pub const TERMINAL_ID: &str = "trm_demo_till1";
/// The first demo payer's card; the third payer's has no funds, to show a
/// decline; everyone else has a card of their own (one card behind several
/// accounts is what the fraud checks call card testing).
const FIRST_CARD: &str = "4242424242424242";
const NO_FUNDS_CARD: &str = "4000000000009995";

/// A card number of the demo's own for payer `index`: a Visa test range
/// prefix, the index, and the Luhn check digit the simulated issuer wants.
fn demo_card(index: usize) -> String {
    match index {
        0 => FIRST_CARD.to_owned(),
        2 => NO_FUNDS_CARD.to_owned(),
        _ => {
            let stem = format!("411111111111{:03}", index % 1_000);
            (0..10)
                .map(|d| format!("{stem}{d}"))
                .find(|pan| facepay_connector::card::luhn_valid(pan))
                .unwrap_or_else(|| FIRST_CARD.to_owned())
        }
    }
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folders of photos, one folder per person (as `scripts/faces.sh` lays out).
    #[arg(long, default_value = ".facepay/verify")]
    pub photos: PathBuf,
    /// People to enrol.
    #[arg(long, default_value_t = 7)]
    pub people: usize,
}

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
    let store = app.payments.store();
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
    let now = now_ms();
    let key = signing::new_terminal_key();
    let (api_key, api_key_hash) = keys::new_secret("fpk");
    let (operator_key, operator_key_hash) = keys::new_secret("fpo");
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
        &facepay_store::ids::new("key"),
        MERCHANT_ID,
        &api_key_hash,
        now,
    )
    .await?;
    facepay_store::audit::append(&mut tx, now, "operator", "operator_key_created", "demo").await?;
    facepay_store::fraud::insert_operator_key(
        &mut tx,
        &facepay_store::ids::new("opk"),
        "demo",
        &operator_key_hash,
        now,
    )
    .await?;
    let mut member_keys = std::collections::BTreeMap::new();
    for network in facepay_hub::demo::member_ids() {
        let (key, key_hash) = keys::new_secret("fph");
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
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

fn people(photos: &Path, limit: usize) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut people = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(photos)
        .map_err(|e| anyhow::anyhow!("{}: {e}; run scripts/faces.sh", photos.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs.into_iter().take(limit) {
        let mut files: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("jpg" | "jpeg" | "png")
                )
            })
            .collect();
        files.sort();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        people.push((name, files));
    }
    Ok(people)
}

/// Enrols the first usable photo of each person (up to `limit` people) and
/// returns the photos left to pay with. Already enrolled people are skipped.
pub async fn enrol_people(
    app: &App,
    data_dir: &Path,
    photos: &Path,
    limit: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_parties(app, data_dir).await?;
    let mut pay_with = Vec::new();
    for (_, outcome, rest) in enrol(app, &people(photos, limit)?).await? {
        if !outcome.starts_with("no usable") {
            pay_with.extend(rest);
        }
    }
    Ok(pay_with)
}

/// Per person: name, what happened, and the photos not used to enrol.
async fn enrol(
    app: &App,
    people: &[(String, Vec<PathBuf>)],
) -> anyhow::Result<Vec<(String, String, Vec<PathBuf>)>> {
    let mut outcomes = Vec::with_capacity(people.len());
    for (index, (name, photos)) in people.iter().enumerate() {
        let phone = format!("+8210{:08}", 5550_0000 + index);
        let mut outcome = String::from("no usable photo");
        let mut rest = photos.clone();
        for (used, photo) in photos.iter().enumerate() {
            let body = serde_json::to_vec(&serde_json::json!({
                "phone": phone,
                "pin": "123456",
                "frames": [BASE64.encode(std::fs::read(photo)?)],
                "card": { "number": demo_card(index), "expiry_month": 12, "expiry_year": 2030 },
            }))?;
            let key = format!("demo-enrol-{name}-{}", photo.display());
            match app.payments.enrol(&key, &body).await {
                Ok(reply) => {
                    let json: serde_json::Value = serde_json::from_str(&reply.body)?;
                    outcome = format!(
                        "{phone}  enrolled as {} with {}",
                        json["user_id"].as_str().unwrap_or(""),
                        file_name(photo)
                    );
                    rest.remove(used);
                    break;
                }
                Err(f)
                    if f.code == "face_already_enrolled" || f.code == "phone_already_enrolled" =>
                {
                    outcome = format!("{phone}  already enrolled ({})", f.code);
                    rest.remove(used);
                    break;
                }
                Err(f) => outcome = format!("{} refused: {}", file_name(photo), f.code),
            }
        }
        outcomes.push((name.clone(), outcome, rest));
    }
    Ok(outcomes)
}

pub async fn run(app: &App, data_dir: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    ensure_parties(app, data_dir).await?;
    println!("merchant {MERCHANT_ID}, store {STORE_ID} (Seoul, KRW), terminal {TERMINAL_ID}");
    println!("terminal key: {}", terminal_file(data_dir).display());
    let people = people(&args.photos, args.people)?;

    println!("\nenrolment (one photo each):");
    for (name, outcome, _) in enrol(app, &people).await? {
        println!("  {name:<16} {outcome}");
    }

    println!("\npayments of 4,500 KRW (another photo of each person):");
    let mut conn = app.payments.store().pool().acquire().await?;
    let ctx = parties::terminal_context(&mut conn, TERMINAL_ID)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo terminal missing"))?;
    drop(conn);
    let mut first_captured = None;
    for (name, photos) in &people {
        let Some(photo) = photos.last().filter(|_| photos.len() > 1) else {
            continue;
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "amount": "4500", "currency": "KRW", "frames": [BASE64.encode(std::fs::read(photo)?)],
        }))?;
        let key = crate::terminal::new_idempotency_key();
        let line = match app.payments.pay(&ctx, &key, &body).await {
            Ok(reply) => {
                let json: serde_json::Value = serde_json::from_str(&reply.body)?;
                let p = if json["payment"].is_object() {
                    &json["payment"]
                } else {
                    &json
                };
                if p["state"] == "captured" && first_captured.is_none() {
                    first_captured = p["id"].as_str().map(str::to_owned);
                }
                format!(
                    "{} ({}), match {:.3}{}{}",
                    p["state"].as_str().unwrap_or(""),
                    p["reason"].as_str().unwrap_or(""),
                    p["match_score"].as_f64().unwrap_or(0.0),
                    p["receipt"]["payer"]
                        .as_str()
                        .map(|s| format!(", payer {s}"))
                        .unwrap_or_default(),
                    p["receipt"]["loyalty"]["points_earned"]
                        .as_i64()
                        .map(|n| format!(", +{n} points"))
                        .unwrap_or_default()
                )
            }
            Err(f) => format!("refused: {} ({})", f.code, f.message),
        };
        println!("  {name:<16} {:<28} {line}", file_name(photo));
    }

    if let Some(id) = first_captured {
        let merchant = parties::Merchant {
            id: MERCHANT_ID.into(),
            name: String::new(),
            fee_bps: 250,
            status: "active".into(),
        };
        let reply = app
            .payments
            .refund(
                &merchant,
                &id,
                &crate::terminal::new_idempotency_key(),
                br#"{"amount":"1500"}"#,
            )
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        let json: serde_json::Value = serde_json::from_str(&reply.body)?;
        println!(
            "\nrefund of 1,500 KRW on {id}: {}",
            json["state"].as_str().unwrap_or("")
        );
    }

    let mut conn = app.payments.store().pool().acquire().await?;
    let v = ledger::verify(&mut conn).await?;
    println!(
        "\nledger: {} payments, {} transfers, {} entries, {}",
        v.payments,
        v.transfers,
        v.entries,
        if v.ok() {
            "verified".to_owned()
        } else {
            format!("{} PROBLEMS", v.problem_count)
        }
    );
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_cards_are_valid_and_each_payer_has_their_own() {
        let cards: Vec<String> = (0..20).map(super::demo_card).collect();
        assert!(cards.iter().all(|c| facepay_connector::card::luhn_valid(c)));
        let mut distinct = cards.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), cards.len());
    }
}

//! `facepay demo`: a merchant, a store and a terminal, users enrolled from
//! the sample photos, and a few payments, all through the real service.
//! Run it again and it reuses what exists.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_server::root::App;
use facepay_server::seed::{MERCHANT_ID, STORE_ID, TERMINAL_ID, ensure_parties, terminal_file};
use facepay_store::{ledger, parties};
use facepay_terminal::new_idempotency_key;

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
            match app.services.identity.enrol(&key, &body).await {
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
    let mut conn = app.services.store().pool().acquire().await?;
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
        let key = new_idempotency_key();
        let line = match app.services.payments.pay(&ctx, &key, &body).await {
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
            .services
            .merchant
            .refund(
                &merchant,
                &id,
                &new_idempotency_key(),
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

    let mut conn = app.services.store().pool().acquire().await?;
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

//! `facepay demo`: a merchant, a store and a terminal, users enrolled from
//! the sample photos, and a few payments, all through the real service.
//! Run it again and it reuses what exists.
//!
//! It runs on the demo's configuration (facepay-config's `DEMO`): the
//! simulated issuer and hub networks, lenient liveness (the sample faces
//! are still photos, which carry no evidence of liveness either way), and
//! the demo's risk rules, which approve at any hour and step up a large
//! amount, shown once. A demo that enrols fewer people than it meant to, or
//! whose first payments are not approved, fails with the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use facepay_config::{Config, Liveness};
use facepay_connector::simulator::printed_security_code;
use facepay_models::ModelStore;
use facepay_store::Clock;

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
pub(crate) fn demo_card(index: usize) -> String {
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

/// The demo's payments, in won.
const AMOUNT: &str = "4500";
/// A payment the demo's rules step up, to show the step-up once.
const LARGE_AMOUNT: &str = "150000";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folders of photos, one folder per person (as `scripts/faces.sh` lays out).
    #[arg(long, default_value = ".facepay/verify")]
    pub photos: PathBuf,
    /// People to enrol.
    #[arg(long, default_value_t = 7)]
    pub people: usize,
    /// A configuration file instead of the demo's own (it must name the
    /// simulated issuer: the demo's cards are its test cards).
    #[arg(long, env = "FACEPAY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What a demo run did, for its caller to judge.
#[derive(Debug, Default)]
pub struct Outcome {
    pub people: usize,
    pub enrolled: usize,
    /// People with a second photo to pay with.
    pub payers: usize,
    pub approved: usize,
    pub declined: usize,
    pub stepped_up: usize,
    pub step_up_approved: bool,
    pub ledger_verified: bool,
}

/// `facepay demo`: the demo's configuration with the process's
/// `FACEPAY_<SECTION>__<KEY>` variables over it, on the system clock.
pub fn main(args: &DemoArgs, models: &ModelStore) -> anyhow::Result<()> {
    let env = std::env::vars_os().map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    });
    let config = match &args.config {
        Some(path) => Config::load(Some(path), env)?,
        None => Config::demo(env)?,
    };
    if config.face.liveness == Liveness::Lenient {
        println!(
            "liveness: lenient, because the sample faces are still photos \
             (a burst judged a spoof never pays)"
        );
    }
    println!("simulated: {}", config.simulated_parts().join(", "));
    let clock: Arc<dyn Clock> = Arc::new(facepay_store::SystemClock);
    let outcome = tokio::runtime::Runtime::new()?.block_on(run_on(config, models, clock, args))?;
    judge(&outcome)
}

/// The demo on `config`, at the time `clock` tells.
pub async fn run_on(
    config: Config,
    models: &ModelStore,
    clock: Arc<dyn Clock>,
    args: &DemoArgs,
) -> anyhow::Result<Outcome> {
    let data_dir = config.store.data_dir.clone();
    let app = App::build(config, models, clock).await?;
    let outcome = run(&app, &data_dir, args).await;
    app.services.store().close().await;
    outcome
}

/// Fails unless everyone was enrolled and the ledger proves itself, and,
/// when anyone had a photo left to pay with, the payments were approved
/// (all but the card without funds) and the step-up was shown and passed.
pub fn judge(outcome: &Outcome) -> anyhow::Result<()> {
    anyhow::ensure!(
        outcome.enrolled == outcome.people,
        "only {} of {} people were enrolled: see the refusals above",
        outcome.enrolled,
        outcome.people
    );
    anyhow::ensure!(outcome.ledger_verified, "the ledger does not verify");
    if outcome.payers == 0 {
        return Ok(());
    }
    anyhow::ensure!(
        outcome.approved > 0 && outcome.stepped_up == 0,
        "the demo's payments were not approved ({} approved, {} stepped up): see above",
        outcome.approved,
        outcome.stepped_up
    );
    anyhow::ensure!(
        outcome.step_up_approved,
        "the large payment's step-up did not end approved: see above"
    );
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
        let phone = phone(index);
        let card_number = demo_card(index);
        let mut outcome = String::from("no usable photo");
        let mut rest = photos.clone();
        for (used, photo) in photos.iter().enumerate() {
            let body = serde_json::to_vec(&serde_json::json!({
                "phone": phone,
                "pin": "123456",
                "frames": [BASE64.encode(std::fs::read(photo)?)],
                "card": {
                    "number": card_number,
                    "expiry_month": 12,
                    "expiry_year": 2030,
                    // The code printed on the simulated issuer's cards.
                    "security_code": printed_security_code(&card_number),
                },
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

pub async fn run(app: &App, data_dir: &Path, args: &DemoArgs) -> anyhow::Result<Outcome> {
    ensure_parties(app, data_dir).await?;
    println!("merchant {MERCHANT_ID}, store {STORE_ID} (Seoul, KRW), terminal {TERMINAL_ID}");
    println!("terminal key: {}", terminal_file(data_dir).display());
    let people = people(&args.photos, args.people)?;
    let mut outcome = Outcome {
        people: people.len(),
        ..Outcome::default()
    };
    println!("\nenrolment (one photo each):");
    for (name, line, _) in enrol(app, &people).await? {
        if !line.starts_with("no usable") && !line.contains("refused") {
            outcome.enrolled += 1;
        }
        println!("  {name:<16} {line}");
    }
    let mut conn = app.services.store().pool().acquire().await?;
    let ctx = parties::terminal_context(&mut conn, TERMINAL_ID)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo terminal missing"))?;
    drop(conn);
    println!("\npayments of 4,500 KRW (another photo of each person):");
    let mut first_captured = None;
    for (name, photos) in &people {
        let Some(photo) = photos.last().filter(|_| photos.len() > 1) else {
            continue;
        };
        outcome.payers += 1;
        let (status, p) = pay(app, &ctx, photo, AMOUNT).await?;
        match status {
            201 => outcome.approved += 1,
            202 => outcome.stepped_up += 1,
            _ => outcome.declined += 1,
        }
        if p["state"] == "captured" && first_captured.is_none() {
            first_captured = p["id"].as_str().map(str::to_owned);
        }
        println!("  {name:<16} {:<28} {}", file_name(photo), describe(&p));
    }
    outcome.step_up_approved = show_step_up(app, &ctx, &people).await?;
    if let Some(id) = first_captured {
        refund(app, &id).await?;
    }
    outcome.ledger_verified = print_ledger(app).await?;
    Ok(outcome)
}

/// A payment as the terminal sends it: its status and the payment's JSON.
async fn pay(
    app: &App,
    ctx: &parties::TerminalContext,
    photo: &Path,
    amount: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let body = serde_json::to_vec(&serde_json::json!({
        "amount": amount, "currency": "KRW", "frames": [BASE64.encode(std::fs::read(photo)?)],
    }))?;
    let key = new_idempotency_key()?;
    match app.services.payments.pay(ctx, &key, &body).await {
        Ok(reply) => {
            let json: serde_json::Value = serde_json::from_str(&reply.body)?;
            let payment = match json.get("payment") {
                Some(p) if p.is_object() => p.clone(),
                _ => json,
            };
            Ok((reply.status, payment))
        }
        Err(f) => Ok((
            f.status,
            serde_json::json!({ "state": "refused", "reason": f.code, "message": f.message }),
        )),
    }
}

fn describe(p: &serde_json::Value) -> String {
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

/// The first person pays 150,000 KRW with their first photo; the demo's
/// rules ask for the last four digits of their phone, which the demo gives.
/// Whether that ended approved.
async fn show_step_up(
    app: &App,
    ctx: &parties::TerminalContext,
    people: &[(String, Vec<PathBuf>)],
) -> anyhow::Result<bool> {
    let Some((name, photos)) = people.iter().find(|(_, photos)| photos.len() > 1) else {
        return Ok(false);
    };
    println!("\na large payment, 150,000 KRW, which the demo's rules step up:");
    let (status, p) = pay(app, ctx, &photos[0], LARGE_AMOUNT).await?;
    println!(
        "  {name:<16} {:<28} {}",
        file_name(&photos[0]),
        describe(&p)
    );
    let id = p["id"].as_str().unwrap_or_default();
    if status != 202 || id.is_empty() {
        return Ok(false);
    }
    let index = people.iter().position(|(n, _)| n == name).unwrap_or(0);
    let body = serde_json::to_vec(&serde_json::json!({ "phone_last4": phone(index)[9..] }))?;
    let key = new_idempotency_key()?;
    let reply = app
        .services
        .payments
        .step_up(ctx, id, &key, &body)
        .await
        .map_err(|f| anyhow::anyhow!("the step-up was refused: {f}"))?;
    let json: serde_json::Value = serde_json::from_str(&reply.body)?;
    let payment = json.get("payment").cloned().unwrap_or(json);
    println!(
        "  {name:<16} {:<28} {}",
        "phone digits given",
        describe(&payment)
    );
    Ok(reply.status == 201)
}

async fn refund(app: &App, id: &str) -> anyhow::Result<()> {
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
            id,
            &new_idempotency_key()?,
            br#"{"amount":"1500"}"#,
        )
        .await
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let json: serde_json::Value = serde_json::from_str(&reply.body)?;
    println!(
        "\nrefund of 1,500 KRW on {id}: {}",
        json["state"].as_str().unwrap_or("")
    );
    Ok(())
}

/// Prints the ledger's proof; whether it held.
async fn print_ledger(app: &App) -> anyhow::Result<bool> {
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
    Ok(v.ok())
}

/// The demo's phone number of payer `index`.
fn phone(index: usize) -> String {
    format!("+8210{:08}", 5550_0000 + index)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use facepay_config::Config;
    use facepay_models::ModelStore;
    use facepay_store::ManualClock;

    use super::{DemoArgs, judge, run_on};

    /// 2026-12-03 18:00 UTC: three in the morning in Seoul, when the
    /// default rules step up every new account's first payment.
    const SEOUL_3AM_MS: i64 = 1_796_320_800_000;

    /// The sample people as `scripts/faces.sh` lays them out: dlib's five
    /// Johns, Obama with three photos, Biden with one.
    fn lay_out_people(dir: &std::path::Path) {
        let faces = facepay_models::faces_dir();
        let link = |from: std::path::PathBuf, to: std::path::PathBuf| {
            std::os::unix::fs::symlink(&from, &to)
                .unwrap_or_else(|e| panic!("{}: {e}; run scripts/faces.sh", from.display()))
        };
        for entry in std::fs::read_dir(faces.join("johns")).unwrap() {
            let person = entry.unwrap().path();
            link(person.clone(), dir.join(person.file_name().unwrap()));
        }
        for (person, photos) in [
            ("Barack_Obama", &["obama", "obama2", "obama3"][..]),
            ("Joe_Biden", &["biden"][..]),
        ] {
            std::fs::create_dir_all(dir.join(person)).unwrap();
            for photo in photos {
                let name = format!("{photo}.jpg");
                link(
                    faces.join("face_recognition").join(&name),
                    dir.join(person).join(&name),
                );
            }
        }
    }

    #[tokio::test]
    async fn the_demo_enrols_everyone_and_approves_at_three_in_the_morning_in_seoul() {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        std::fs::create_dir_all(&photos).unwrap();
        lay_out_people(&photos);
        // The demo's own configuration, as `facepay demo` reads it with no
        // FACEPAY_ variable set but the data directory.
        let data = dir.path().join("data").display().to_string();
        let config = Config::demo([("FACEPAY_STORE__DATA_DIR".to_owned(), data)]).unwrap();
        let args = DemoArgs {
            photos,
            people: 7,
            config: None,
        };
        let clock = Arc::new(ManualClock::new(SEOUL_3AM_MS));
        let outcome = run_on(config, &ModelStore::open_default(), clock, &args)
            .await
            .unwrap();
        assert_eq!((outcome.people, outcome.enrolled), (7, 7), "{outcome:?}");
        // Six people have a photo to pay with; the third payer's card has
        // no funds, so it is declined by the issuer, not stepped up.
        assert_eq!(outcome.payers, 6, "{outcome:?}");
        assert_eq!((outcome.approved, outcome.declined), (5, 1), "{outcome:?}");
        assert_eq!(outcome.stepped_up, 0, "{outcome:?}");
        assert!(outcome.step_up_approved, "{outcome:?}");
        assert!(outcome.ledger_verified, "{outcome:?}");
        judge(&outcome).unwrap();
    }

    #[test]
    fn a_demo_that_enrols_fewer_people_than_it_meant_to_fails_with_the_reason() {
        let short = super::Outcome {
            people: 7,
            enrolled: 5,
            ledger_verified: true,
            ..super::Outcome::default()
        };
        let error = judge(&short).unwrap_err().to_string();
        assert!(
            error.contains("only 5 of 7 people were enrolled"),
            "{error}"
        );
    }

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

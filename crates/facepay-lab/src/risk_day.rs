//! A day of synthetic traffic through the risk engine, with the default
//! rules and the store's real history queries: normal shoppers with a
//! month of history, plus four fraud patterns (a stolen face photo at a
//! far store, a burst at one terminal, an account drain, card testing).
//! It prints how many fraudulent payments were stopped or stepped up and
//! how many normal ones were bothered:
//!
//! `cargo nextest run -p facepay risk_day --no-capture`
//!
//! The face is not run here: each payment comes with the match score,
//! lead and liveness a real match gives, and the engine sees the history
//! the earlier payments of the day left in the store. A stepped-up normal
//! shopper is taken to confirm (their payment counts); a stepped-up
//! fraudster cannot (theirs is declined).

use std::collections::BTreeMap;
use std::sync::Arc;

use facepay_face::liveness::LivenessDecision;
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::{Config, Matched};
use facepay_risk::Decision;
use facepay_store::ManualClock;
use facepay_store::fraud::{self, AttemptKind};
use facepay_store::parties::{self, Merchant, NewUser, PaymentMethod, StoreRow};
use facepay_store::payments::{self, Payment};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
const USERS: usize = 300;
const HISTORY_DAYS: i64 = 30;
/// The day played: 2026-11-20 00:00 KST, as UTC milliseconds.
const DAY_START_MS: i64 = 1_795_100_400_000;

/// Cities with three stores each: (name, latitude, longitude) in 1e-6
/// degrees.
const CITIES: [(&str, i64, i64); 4] = [
    ("Seoul", 37_566_500, 126_978_000),
    ("Busan", 35_179_500, 129_075_600),
    ("Daejeon", 36_350_400, 127_384_500),
    ("Jeju", 33_499_600, 126_531_200),
];
const STORES_PER_CITY: usize = 3;

struct Rng(ChaCha8Rng);

impl Rng {
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Normal,
    StolenPhoto,
    TerminalBurst,
    AccountDrain,
    CardTesting,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Normal => "normal",
            Kind::StolenPhoto => "fraud: stolen photo far away",
            Kind::TerminalBurst => "fraud: burst at one terminal",
            Kind::AccountDrain => "fraud: account drain",
            Kind::CardTesting => "fraud: card testing",
        }
    }
}

struct Event {
    at_ms: i64,
    kind: Kind,
    user: usize,
    store: usize,
    amount_minor: i64,
    /// Refused attempts the attacker makes at the terminal just before.
    failed_attempts: u32,
}

struct Shopper {
    id: String,
    method: PaymentMethod,
    city: usize,
    usual_minor: f64,
}

fn terminal_id(store: usize) -> String {
    format!("trm_day_{store}")
}

fn store_of(store: usize) -> (usize, i64, i64) {
    let city = store / STORES_PER_CITY;
    let (_, lat, lon) = CITIES[city];
    let k = (store % STORES_PER_CITY) as i64;
    (city, lat + k * 3_000, lon + k * 3_000)
}

fn record(id: String, ev: &Event, user: &Shopper, captured: bool) -> Payment {
    let amount = ev.amount_minor;
    // Unique as the payment's id is: nothing replays these records.
    let idempotency_key = format!("k_{id}");
    Payment {
        id,
        terminal_id: terminal_id(ev.store),
        store_id: format!("sto_day_{}", ev.store),
        merchant_id: format!("mer_day_{}", ev.store),
        idempotency_key,
        user_id: Some(user.id.clone()),
        payment_method_id: Some(user.method.id.clone()),
        amount_minor: amount,
        currency: "KRW".into(),
        capture_mode: "automatic".into(),
        authorised_minor: if captured { amount } else { 0 },
        captured_minor: if captured { amount } else { 0 },
        refunded_minor: 0,
        fee_minor: 0,
        state: if captured { "captured" } else { "declined" }.into(),
        reason: "risk_day".into(),
        connector: None,
        issuer_ref: None,
        match_score: None,
        candidates: None,
        step_up_attempts: 0,
        liveness: None,
        expires_at_ms: None,
        created_at_ms: ev.at_ms,
        updated_at_ms: ev.at_ms,
    }
}

#[derive(Default, Debug)]
struct Tally {
    approved: u32,
    stepped_up: u32,
    reviewed: u32,
    declined: u32,
}

impl Tally {
    fn total(&self) -> u32 {
        self.approved + self.stepped_up + self.reviewed + self.declined
    }
}

#[tokio::test]
async fn risk_day() {
    let dir = tempfile::tempdir().unwrap();
    let url = facepay_store::Store::sqlite_url(dir.path()).unwrap();
    let store = facepay_store::Store::open(&url).await.unwrap();
    let engine = Arc::new(
        FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
            .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`")),
    );
    // The services read the time from this clock, set to each payment's.
    let clock = Arc::new(ManualClock::new(DAY_START_MS));
    let app = facepay_server::root::embedded_app(
        store.clone(),
        engine,
        Arc::clone(&clock) as Arc<dyn facepay_store::Clock>,
        dir.path(),
        Config::default(),
    )
    .await
    .unwrap();
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(20_261_120));
    let history_start = DAY_START_MS - HISTORY_DAYS * DAY_MS;

    // Merchants, stores, terminals; shoppers with a card and a month of
    // history at the stores of their own city.
    let mut tx = store.begin().await.unwrap();
    let stores = CITIES.len() * STORES_PER_CITY;
    for s in 0..stores {
        let (city, latitude_e6, longitude_e6) = store_of(s);
        let merchant = Merchant {
            id: format!("mer_day_{s}"),
            name: format!("Shop {s}"),
            fee_bps: 250,
            status: "active".into(),
        };
        parties::insert_merchant(&mut tx, &merchant, history_start)
            .await
            .unwrap();
        let row = StoreRow {
            id: format!("sto_day_{s}"),
            merchant_id: merchant.id.clone(),
            name: format!("Shop {s}"),
            country: "KR".into(),
            city: CITIES[city].0.into(),
            currency: "KRW".into(),
            latitude_e6,
            longitude_e6,
        };
        parties::insert_store(&mut tx, &row, history_start)
            .await
            .unwrap();
        parties::insert_terminal(
            &mut tx,
            &terminal_id(s),
            &row.id,
            &[s as u8; 32],
            history_start,
        )
        .await
        .unwrap();
    }
    let new_shopper = |i: usize, city: usize, usual_minor: f64, fingerprint: String| Shopper {
        id: format!("usr_day_{i}"),
        method: PaymentMethod {
            id: format!("pm_day_{i}"),
            user_id: format!("usr_day_{i}"),
            brand: "visa".into(),
            last4: "4242".into(),
            expiry_month: 12,
            expiry_year: 2031,
            key_id: None,
            nonce: None,
            ciphertext: None,
            vault_token: None,
            fingerprint: Some(fingerprint),
            status: "active".into(),
            credential_connector: None,
            credential_id: None,
            is_default: 1,
        },
        city,
        usual_minor,
    };
    let mut shoppers = Vec::new();
    for i in 0..USERS {
        let city = if i % 10 < 6 { 0 } else { 1 + i % 3 };
        let usual = (8_000.0 * (0.8 * rng.normal()).exp()).round();
        shoppers.push(new_shopper(i, city, usual, format!("fp_day_{i}")));
    }
    // Card testing: fresh accounts enrolled today with one stolen card.
    let testers: Vec<usize> = (0..4).map(|k| USERS + k).collect();
    for &i in &testers {
        shoppers.push(new_shopper(i, 0, 1_000.0, "fp_day_stolen".into()));
    }
    for (i, s) in shoppers.iter().enumerate() {
        let created = if i >= USERS {
            DAY_START_MS + 9 * 3_600_000
        } else {
            history_start - 100 * DAY_MS
        };
        parties::insert_user(
            &mut tx,
            &NewUser {
                id: &s.id,
                phone: &format!("+8210{i:08}"),
                phone_last4: &format!("{:04}", i % 10_000),
                pin_hash: "x",
                token_hash: &format!("t{i}"),
                created_at_ms: created,
            },
        )
        .await
        .unwrap();
        parties::insert_payment_method(&mut tx, &s.method, created)
            .await
            .unwrap();
        if i >= USERS {
            continue;
        }
        let home: Vec<usize> = (0..2)
            .map(|_| s.city * STORES_PER_CITY + rng.below(STORES_PER_CITY))
            .collect();
        for day in 0..HISTORY_DAYS {
            if rng.unit() < 0.3 {
                continue;
            }
            let at_ms =
                history_start + day * DAY_MS + (9 * 60 + rng.below(12 * 60) as i64) * MINUTE_MS;
            let ev = Event {
                at_ms,
                kind: Kind::Normal,
                user: i,
                store: home[rng.below(home.len())],
                amount_minor: (s.usual_minor * (0.3 * rng.normal()).exp())
                    .round()
                    .max(100.0) as i64,
                failed_attempts: 0,
            };
            let p = record(format!("pay_h_{i}_{day}"), &ev, s, true);
            payments::insert(&mut tx, &p).await.unwrap();
        }
    }
    tx.commit().await.unwrap();

    // The day: normal shoppers between 8:00 and 22:00 local time, a few
    // trying a new shop or taking the train to another city, and the
    // attackers.
    let local_ms = |hour: f64| DAY_START_MS + (hour * 3_600_000.0) as i64;
    let mut events = Vec::new();
    for (i, s) in shoppers.iter().enumerate().take(USERS) {
        let mut at_ms = local_ms(8.0 + 6.0 * rng.unit());
        let mut city = s.city;
        for _ in 0..1 + rng.below(3) {
            if rng.unit() < 0.05 {
                // A train ride to another city takes two to three hours.
                city = (city + 1 + rng.below(CITIES.len() - 1)) % CITIES.len();
                at_ms += 150 * MINUTE_MS;
            }
            let amount = s.usual_minor
                * (0.35 * rng.normal()).exp()
                * if rng.unit() < 0.05 { 4.0 } else { 1.0 };
            events.push(Event {
                at_ms,
                kind: Kind::Normal,
                user: i,
                store: city * STORES_PER_CITY + rng.below(STORES_PER_CITY),
                amount_minor: amount.round().max(100.0) as i64,
                failed_attempts: 0,
            });
            at_ms += (30 + rng.below(180)) as i64 * MINUTE_MS;
        }
    }
    let mut fraud_victims = (0..USERS).filter(|i| i % 7 == 3);
    let mut next_victim = || fraud_victims.next().unwrap_or(0);
    // A stolen photo: the victim paid at home at noon; an attacker with
    // their photo buys electronics in another city within the hour.
    for k in 0..12 {
        let user = next_victim();
        let home = shoppers[user].city;
        let far = (home + 1 + k % (CITIES.len() - 1)) % CITIES.len();
        let paid_at = local_ms(12.0 + k as f64 * 0.4);
        events.push(Event {
            at_ms: paid_at,
            kind: Kind::Normal,
            user,
            store: home * STORES_PER_CITY,
            amount_minor: shoppers[user].usual_minor as i64,
            failed_attempts: 0,
        });
        events.push(Event {
            at_ms: paid_at + (10 + rng.below(50)) as i64 * MINUTE_MS,
            kind: Kind::StolenPhoto,
            user,
            store: far * STORES_PER_CITY + 2,
            amount_minor: 890_000 + rng.below(400_000) as i64,
            failed_attempts: 0,
        });
    }
    // A burst at one terminal: photos of many people tried in ten
    // minutes, most refused, some matching.
    for k in 0..6 {
        events.push(Event {
            at_ms: local_ms(15.0) + k * MINUTE_MS,
            kind: Kind::TerminalBurst,
            user: next_victim(),
            store: 4,
            amount_minor: 300_000,
            failed_attempts: 3,
        });
    }
    // An account drain: one account, ten payments in an hour, growing.
    let drained = next_victim();
    for k in 0..10 {
        events.push(Event {
            at_ms: local_ms(19.0) + k * 6 * MINUTE_MS,
            kind: Kind::AccountDrain,
            user: drained,
            store: shoppers[drained].city * STORES_PER_CITY + (k as usize % STORES_PER_CITY),
            amount_minor: 50_000 * (k + 1),
            failed_attempts: 0,
        });
    }
    // Card testing: one stolen card on fresh accounts, many small buys.
    for k in 0..16 {
        events.push(Event {
            at_ms: local_ms(10.0) + k * 3 * MINUTE_MS,
            kind: Kind::CardTesting,
            user: testers[k as usize % testers.len()],
            store: k as usize % STORES_PER_CITY,
            amount_minor: 1_000 + rng.below(2_000) as i64,
            failed_attempts: 0,
        });
    }
    events.sort_by_key(|e| e.at_ms);

    let mut tallies: BTreeMap<Kind, Tally> = BTreeMap::new();
    let mut fired: BTreeMap<String, u32> = BTreeMap::new();
    let mut risk_us = Vec::new();
    for (n, ev) in events.iter().enumerate() {
        let user = &shoppers[ev.user];
        let mut conn = store.acquire().await.unwrap();
        for a in 0..ev.failed_attempts {
            let kind = if a % 2 == 0 {
                AttemptKind::NoMatch
            } else {
                AttemptKind::Spoof
            };
            fraud::record_attempt(&mut conn, &terminal_id(ev.store), kind, ev.at_ms - 1)
                .await
                .unwrap();
        }
        let ctx = parties::terminal_context(&mut conn, &terminal_id(ev.store))
            .await
            .unwrap()
            .unwrap();
        let u = parties::user(&mut conn, &user.id).await.unwrap().unwrap();
        drop(conn);
        // A photo or a fresh enrolment matches as well as a live face does.
        let score = 0.70 + 0.06 * rng.normal().clamp(-2.0, 2.0);
        let lead = 0.35 + 0.1 * rng.unit();
        let matched = Matched {
            user: &u,
            method: &user.method,
            score: score as f32,
            lead: lead as f32,
            liveness: LivenessDecision::Live,
            amount_minor: ev.amount_minor,
        };
        clock.set(ev.at_ms);
        let start = std::time::Instant::now();
        let payment_id = format!("pay_d_{n}");
        let a = app
            .services
            .payments
            .assess_risk(&ctx, &matched, &payment_id)
            .await
            .unwrap();
        risk_us.push(start.elapsed().as_micros() as u64);
        let t = tallies.entry(ev.kind).or_default();
        match a.decision {
            Decision::Approve => t.approved += 1,
            Decision::StepUp(_) => t.stepped_up += 1,
            Decision::Review => t.reviewed += 1,
            Decision::Decline => t.declined += 1,
        }
        for f in &a.fired {
            *fired
                .entry(format!("{:?}:{}", ev.kind, f.rule))
                .or_default() += 1;
        }
        let goes_through = match a.decision {
            Decision::Approve | Decision::Review => true,
            Decision::StepUp(_) => ev.kind == Kind::Normal,
            Decision::Decline => false,
        };
        let mut tx = store.begin().await.unwrap();
        payments::insert(&mut tx, &record(payment_id, ev, user, goes_through))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    risk_us.sort_unstable();
    let normal = tallies.remove(&Kind::Normal).unwrap_or_default();
    println!(
        "\nA day of synthetic traffic through the default risk rules ({} payments):\n",
        events.len()
    );
    println!("| traffic | payments | approved | stepped up | held for review | declined |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, t: &Tally| {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            t.total(),
            t.approved,
            t.stepped_up,
            t.reviewed,
            t.declined
        )
    };
    row(Kind::Normal.label(), &normal);
    let mut fraud_total = Tally::default();
    for (kind, t) in &tallies {
        row(kind.label(), t);
        fraud_total.approved += t.approved;
        fraud_total.stepped_up += t.stepped_up;
        fraud_total.reviewed += t.reviewed;
        fraud_total.declined += t.declined;
    }
    row("fraud, all", &fraud_total);
    let caught = fraud_total.total() - fraud_total.approved;
    let bothered = normal.total() - normal.approved;
    println!(
        "\nfraud stopped or stepped up: {caught} of {} ({:.0}%); normal payments bothered: {bothered} of {} ({:.1}%)",
        fraud_total.total(),
        100.0 * f64::from(caught) / f64::from(fraud_total.total()),
        normal.total(),
        100.0 * f64::from(bothered) / f64::from(normal.total()),
    );
    println!(
        "assessment (history queries and rules, SQLite): median {} us, p99 {} us",
        risk_us[risk_us.len() / 2],
        risk_us[risk_us.len() * 99 / 100]
    );
    println!("rules fired: {fired:?}");

    // The default rules must catch most fraud and leave most shoppers be.
    assert!(fraud_total.total() >= 40);
    assert!(
        f64::from(caught) >= 0.8 * f64::from(fraud_total.total()),
        "caught {caught}"
    );
    assert!(
        f64::from(bothered) <= 0.1 * f64::from(normal.total()),
        "bothered {bothered}"
    );
}

//! `facepay bench pay --enrolled N`: a payment with a realistic gallery
//! behind it. N synthetic payers (face-like templates of
//! `facepay-face-eval`, each with a phone and a card of its own) are
//! imported through `Identity::import`, the bulk path, which stores them
//! as an enrolment does; the server is then started again on that store,
//! once from the store and once from the gallery snapshot, and each
//! start-up is timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use facepay_config::Config;
use facepay_face_eval::synthetic::{Synthetic, SyntheticSpec};
use facepay_models::ModelStore;
use facepay_payments::identity::import::{IMPORT_BATCH_MAX, ImportedAccount};
use facepay_server::root::App;

use crate::bench_ledger::card_number;

/// Batches prepared at once: preparing (sealing, the vault, the issuer's
/// check) overlaps another batch's commit.
const IMPORTS_AT_ONCE: usize = 2;
/// The import prints its progress every this many accounts.
const PROGRESS_EVERY: usize = 100_000;
/// Bounded by the synthetic model's identities.
pub const ENROLLED_MAX: usize = 10_000_000;
/// Bounds `--snapshot-starts`: each start at ten million reads gigabytes.
pub const SNAPSHOT_STARTS_MAX: usize = 5;

/// Imports `count` synthetic payers into `app`'s store; prints how fast.
pub async fn import_synthetic(app: &App, count: usize) -> anyhow::Result<()> {
    let faces = Arc::new(Synthetic::new(SyntheticSpec::default(), count)?);
    // One hash for every synthetic payer: an import brings each account's
    // own, and hashing a million PINs with Argon2 here would time the hash,
    // not the import.
    let pin_hash = Arc::new(facepay_payments::keys::hash_pin("482913")?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IMPORTS_AT_ONCE)
        .map(|_| {
            let services = Arc::clone(&app.services);
            let (faces, pin_hash, next) =
                (Arc::clone(&faces), Arc::clone(&pin_hash), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let start = next.fetch_add(IMPORT_BATCH_MAX, Ordering::Relaxed);
                    if start >= count {
                        return anyhow::Ok(());
                    }
                    let end = (start + IMPORT_BATCH_MAX).min(count);
                    let batch = (start..end)
                        .map(|i| synthetic_account(&faces, &pin_hash, i))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    services
                        .identity
                        .import(batch)
                        .await
                        .map_err(|f| anyhow::anyhow!("import of payers {start}..{end}: {f}"))?;
                    if end / PROGRESS_EVERY != start / PROGRESS_EVERY {
                        let seconds = started.elapsed().as_secs_f64();
                        eprintln!("imported {end} of {count} in {seconds:.0} s");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {count} synthetic payers in {seconds:.1} s = {:.0} accounts/s ({IMPORT_BATCH_MAX} per transaction, {IMPORTS_AT_ONCE} batches at once)",
        count as f64 / seconds
    );
    Ok(())
}

fn synthetic_account(
    faces: &Synthetic,
    pin_hash: &str,
    i: usize,
) -> anyhow::Result<ImportedAccount> {
    Ok(ImportedAccount {
        phone: format!("+8210{:08}", 60_000_000 + i),
        pin_hash: pin_hash.to_owned(),
        card: facepay_payments::api::CardInput {
            number: card_number(i),
            expiry_month: 12,
            expiry_year: 2031,
            security_code: facepay_connector::simulator::SIMULATED_SECURITY_CODE.into(),
        },
        vector: faces.gallery_row(i)?,
    })
}

/// Starts the server again on `app`'s store: once from the store, which
/// then writes the gallery snapshot, and `snapshot_starts` times from that
/// snapshot, each start timed. Returns the last.
pub async fn restart_timed(
    app: App,
    config: impl Fn() -> anyhow::Result<Config>,
    models: &ModelStore,
    snapshot_starts: usize,
) -> anyhow::Result<App> {
    assert!((1..=SNAPSHOT_STARTS_MAX).contains(&snapshot_starts));
    app.services.store().close().await;
    drop(app);
    let mut app = timed_start(config()?, models, "store").await?;
    timed_snapshot(&app).await?;
    for _ in 0..snapshot_starts {
        app.services.store().close().await;
        drop(app);
        app = timed_start(config()?, models, "snapshot").await?;
    }
    Ok(app)
}

/// Starts the server on `config` and prints how long it took and what its
/// gallery holds.
pub async fn timed_start(config: Config, models: &ModelStore, from: &str) -> anyhow::Result<App> {
    let started = Instant::now();
    let app = App::build(config, models, Arc::new(facepay_store::SystemClock)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let identity = &app.services.identity;
    anyhow::ensure!(
        identity.gallery_restored() == (from == "snapshot"),
        "the gallery was not started from the {from}"
    );
    println!(
        "start-up from the {from}: {seconds:.1} s, {} templates in the gallery",
        identity.gallery_len()
    );
    Ok(app)
}

/// Writes `app`'s gallery snapshot and prints how long it took.
pub async fn timed_snapshot(app: &App) -> anyhow::Result<()> {
    let started = Instant::now();
    let written = app
        .services
        .identity
        .write_snapshot()
        .await
        .map_err(|f| anyhow::anyhow!("the snapshot: {f}"))?;
    anyhow::ensure!(written.is_some(), "no snapshot file is configured");
    println!(
        "snapshot written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `facepay bench pay --enrolled N`: a payment with a realistic gallery
//! behind it. N synthetic payers (face-like templates of
//! `facepay-face-eval`, each with a phone and a card of its own) are
//! imported through `Identity::import`, the bulk path, which stores them
//! as an enrolment does; the server is then started again on that store,
//! once from the store and once from the gallery snapshot, and each
//! start-up is timed.
//!
//! An import of ten million takes hours on SQLite, so it can be stopped
//! and gone on with: stopped with Ctrl-C, it finishes the batches under
//! way and records how far it got in the kept store's directory
//! (`--store-dir`), where the next run with the same arguments goes on.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// How far the import into a store has gone, in [`PROGRESS_FILE`] beside
/// it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// The `--enrolled` the import began with: the synthetic templates
    /// depend on it, so going on with another would import other faces.
    enrolled: usize,
    /// Payers in the gallery besides the synthetic ones (the photos'
    /// people).
    before: usize,
    /// Synthetic payers `0..imported` are in the store.
    imported: usize,
}

const PROGRESS_FILE: &str = "synthetic-import.json";

/// Where an import of `enrolled` goes on from, given the progress file's
/// contents (if any) and the payers in the gallery when the store was
/// opened and now (this run may have enrolled more of the photos' people).
/// A store that does not match the file means an import was killed or
/// failed rather than stopped: some of its batches may be stored, others
/// not.
fn progress_to_go_on(
    recorded: Option<Progress>,
    enrolled: usize,
    gallery_at_open: usize,
    gallery_now: usize,
) -> anyhow::Result<Progress> {
    anyhow::ensure!(
        gallery_at_open <= gallery_now,
        "the gallery shrank from {gallery_at_open} to {gallery_now} payers before the import"
    );
    let Some(recorded) = recorded else {
        return Ok(Progress {
            enrolled,
            before: gallery_now,
            imported: 0,
        });
    };
    anyhow::ensure!(
        recorded.enrolled == enrolled && recorded.imported <= enrolled,
        "this store's import is of --enrolled {}: give that to go on with it",
        recorded.enrolled
    );
    anyhow::ensure!(
        gallery_at_open == recorded.before + recorded.imported,
        "the store holds {gallery_at_open} payers, not the {} + {} imported that {PROGRESS_FILE} records: \
         an import was killed or failed rather than stopped with Ctrl-C; start again in an empty --store-dir",
        recorded.before,
        recorded.imported
    );
    Ok(Progress {
        before: recorded.before + (gallery_now - gallery_at_open),
        ..recorded
    })
}

/// Imports synthetic payers into `app`'s store until `enrolled` are there,
/// going on from where an earlier run on `data_dir` stopped; returns how
/// many are there. With `stoppable` (a kept store), Ctrl-C stops the
/// import once the batches under way are stored, so that the next run can
/// go on.
pub async fn import_or_go_on(
    app: &App,
    enrolled: usize,
    data_dir: &Path,
    gallery_at_open: usize,
    stoppable: bool,
) -> anyhow::Result<usize> {
    let file = data_dir.join(PROGRESS_FILE);
    let recorded = read_progress(&file)?;
    let gallery_now = app.services.identity.gallery_len();
    let progress = progress_to_go_on(recorded, enrolled, gallery_at_open, gallery_now)?;
    write_progress(&file, &progress)?;
    if progress.imported > 0 {
        println!(
            "going on with the import after {} synthetic payers",
            progress.imported
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    if stoppable {
        stop_on_ctrl_c(Arc::clone(&stop))
            .map_err(|e| anyhow::anyhow!("listening for Ctrl-C: {e}"))?;
    }
    println!(
        "importing synthetic payers {}..{enrolled}",
        progress.imported
    );
    let imported = import_synthetic(app, enrolled, progress.imported, &stop).await;
    // From here on a Ctrl-C ends the process at once.
    stop.store(true, Ordering::Relaxed);
    let imported = imported?;
    write_progress(
        &file,
        &Progress {
            imported,
            ..progress
        },
    )?;
    Ok(imported)
}

/// The first Ctrl-C sets `stop`; one after that (a second, or any once the
/// import is over and has set it) ends the process at once, as Ctrl-C
/// does without a handler.
///
/// The listener is made here and not in the task: `tokio::signal::ctrl_c`
/// installs its handler only when first polled, so a Ctrl-C that came
/// before the task first ran ended the process without a record.
fn stop_on_ctrl_c(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    #[cfg(unix)]
    let mut ctrl_c = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    #[cfg(windows)]
    let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
    tokio::spawn(async move {
        while ctrl_c.recv().await.is_some() {
            if stop.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            eprintln!(
                "stopping the import once the batches under way are stored; Ctrl-C again to end at once"
            );
        }
    });
    Ok(())
}

fn read_progress(file: &Path) -> anyhow::Result<Option<Progress>> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", file.display())),
    };
    let progress =
        serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(Some(progress))
}

/// Written whole, then renamed: a run stopped while writing leaves the
/// file as it was.
fn write_progress(file: &Path, progress: &Progress) -> anyhow::Result<()> {
    let fresh = file.with_extension("json.new");
    std::fs::write(&fresh, serde_json::to_vec(progress)?)?;
    std::fs::rename(&fresh, file)?;
    Ok(())
}

/// Imports synthetic payers `from..count` into `app`'s store, in batches,
/// until done or `stop` is set; prints how fast. Returns the end of the
/// payers stored: every batch begun is finished, so they are `0..end`. A
/// batch that fails sets `stop` and the others finish before the error is
/// returned.
async fn import_synthetic(
    app: &App,
    count: usize,
    from: usize,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<usize> {
    assert!(from <= count);
    let faces = Arc::new(Synthetic::new(SyntheticSpec::default(), count)?);
    // One hash for every synthetic payer: an import brings each account's
    // own, and hashing a million PINs with Argon2 here would time the hash,
    // not the import.
    let pin_hash = Arc::new(facepay_payments::keys::hash_pin("482913")?);
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let workers: Vec<_> = (0..IMPORTS_AT_ONCE)
        .map(|_| {
            let worker = Worker {
                services: Arc::clone(&app.services),
                faces: Arc::clone(&faces),
                pin_hash: Arc::clone(&pin_hash),
                next: Arc::clone(&next),
                stop: Arc::clone(stop),
                count,
                started,
            };
            tokio::spawn(async move {
                let done = worker.run().await;
                if done.is_err() {
                    worker.stop.store(true, Ordering::Relaxed);
                }
                done
            })
        })
        .collect();
    let mut failed = None;
    for worker in workers {
        if let Err(e) = worker.await? {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let end = next.load(Ordering::Relaxed).min(count);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {} synthetic payers in {seconds:.1} s = {:.0} accounts/s ({IMPORT_BATCH_MAX} per transaction, {IMPORTS_AT_ONCE} batches at once), {end} of {count} in the store",
        end - from,
        (end - from) as f64 / seconds
    );
    Ok(end)
}

/// One of the import's workers: claims the next batch and stores it, until
/// none is left or `stop` is set.
struct Worker {
    services: Arc<facepay_payments::Services>,
    faces: Arc<Synthetic>,
    pin_hash: Arc<String>,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    count: usize,
    started: Instant,
}

impl Worker {
    async fn run(&self) -> anyhow::Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let start = self.next.fetch_add(IMPORT_BATCH_MAX, Ordering::Relaxed);
            if start >= self.count {
                break;
            }
            let end = (start + IMPORT_BATCH_MAX).min(self.count);
            let batch = (start..end)
                .map(|i| synthetic_account(&self.faces, &self.pin_hash, i))
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.services
                .identity
                .import(batch)
                .await
                .map_err(|f| anyhow::anyhow!("import of payers {start}..{end}: {f}"))?;
            if end / PROGRESS_EVERY != start / PROGRESS_EVERY {
                let seconds = self.started.elapsed().as_secs_f64();
                eprintln!("imported {end} of {} in {seconds:.0} s", self.count);
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::{Progress, progress_to_go_on};

    #[test]
    fn an_import_goes_on_only_where_the_store_matches_its_record() {
        let fresh = progress_to_go_on(None, 5_000, 0, 7).unwrap();
        assert_eq!(
            fresh,
            Progress {
                enrolled: 5_000,
                before: 7,
                imported: 0
            }
        );
        let stopped = Progress {
            imported: 3_000,
            ..fresh
        };
        assert_eq!(
            progress_to_go_on(Some(stopped), 5_000, 3_007, 3_007).unwrap(),
            stopped
        );
        // One of the photos' people enrolled by this run, not the last.
        let one_more = progress_to_go_on(Some(stopped), 5_000, 3_007, 3_008).unwrap();
        assert_eq!(one_more.before, 8);
        let other_faces = progress_to_go_on(Some(stopped), 6_000, 3_007, 3_007).unwrap_err();
        assert!(
            other_faces.to_string().contains("--enrolled 5000"),
            "{other_faces}"
        );
        // One batch more than recorded: the run was killed after a commit.
        let killed = progress_to_go_on(Some(stopped), 5_000, 4_007, 4_007).unwrap_err();
        assert!(killed.to_string().contains("killed"), "{killed}");
    }
}

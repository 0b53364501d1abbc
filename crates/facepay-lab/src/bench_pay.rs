//! `facepay bench pay`: payments per second and latency of the pay endpoint
//! end to end. The real server listens on loopback, terminals sign their
//! requests and send real photos over HTTP, the store commits for real; the
//! stage times come from the server's own `Server-Timing` header.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_config::Config;
use facepay_models::ModelStore;

use crate::cpu::CpuClock;
use crate::engine_args::EngineArgs;
use crate::stats::print_stages;
use crate::{bench_enrolled, demo};
use facepay_server::root::App;
use facepay_terminal::{Client, TerminalFile, new_idempotency_key};

const PAYMENTS_MAX: usize = 100_000;
const SNAPSHOT_FILE: &str = "gallery.snapshot";
const CONCURRENCY_MAX: usize = 64;
const STAGES: [&str; facepay_payments::api::PAY_STAGES.len()] = facepay_payments::api::PAY_STAGES;

#[derive(clap::Args)]
pub struct PayArgs {
    #[arg(long, default_value_t = 200)]
    pub payments: usize,
    /// Terminals paying at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// `postgres://...` to measure PostgreSQL: each run works in a new
    /// schema of that database, dropped when it ends. A fresh SQLite file
    /// otherwise.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Folders of photos, one per person: the first photo enrols, the rest pay.
    #[arg(long, default_value = ".facepay/verify")]
    pub photos: PathBuf,
    /// A card vault in another process (`facepay vault serve`) to pay
    /// through; the vault runs in this process when absent.
    #[arg(long)]
    pub vault_url: Option<String>,
    /// The secret shared with that vault process.
    #[arg(long)]
    pub vault_channel_secret: Option<PathBuf>,
    /// Synthetic payers imported before the photos' people pay (through
    /// the bulk path, timed); the server is then started again from the
    /// store and from its gallery snapshot, each start timed.
    #[arg(long, default_value_t = 0)]
    pub enrolled: usize,
    /// With `--enrolled`: how many times (1 to 5) the start from the
    /// snapshot is timed; the payments run on the last.
    #[arg(long, default_value_t = 1)]
    pub snapshot_starts: usize,
    /// Keep the run's SQLite store, keys and snapshot in this directory
    /// instead of a temporary one removed at the end. An import of
    /// `--enrolled` payers stopped with Ctrl-C goes on from there when the
    /// same command is run again.
    #[arg(long, conflicts_with = "database_url")]
    pub store_dir: Option<PathBuf>,
    /// The gallery's index kind (`exact`, `prefilter`, `hnsw`, `ivf`).
    #[arg(long, default_value = "exact")]
    pub gallery_kind: String,
    /// Threads one gallery scan is spread over.
    #[arg(long, default_value_t = 1)]
    pub gallery_threads: usize,
    /// Keep each template's floats in the gallery (`false` at ten million,
    /// whose floats would not fit: scores are then the int8 estimate).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_floats: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Default)]
struct Samples {
    latency_ms: Vec<f64>,
    stages_ms: [Vec<f64>; STAGES.len()],
    approved: usize,
    declined: usize,
    refused: usize,
}

/// `--snapshot-starts` is refused rather than clamped or ignored: a run
/// at ten million takes hours, and one that timed other than what was
/// asked is lost.
fn check_starts(args: &PayArgs) -> anyhow::Result<()> {
    let starts_max = bench_enrolled::SNAPSHOT_STARTS_MAX;
    anyhow::ensure!(
        (1..=starts_max).contains(&args.snapshot_starts),
        "--snapshot-starts is 1 to {starts_max}"
    );
    anyhow::ensure!(
        args.snapshot_starts == 1 || args.enrolled > 0,
        "--snapshot-starts times the start from the snapshot of --enrolled payers: give --enrolled too"
    );
    Ok(())
}

pub fn run(args: PayArgs, models: &ModelStore) -> anyhow::Result<()> {
    let payments = args.payments.clamp(1, PAYMENTS_MAX);
    let concurrency = args.concurrency.clamp(1, CONCURRENCY_MAX);
    check_starts(&args)?;
    let data_dir = match &args.store_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("facepay-bench-{}", new_idempotency_key()?)),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let database_url = run_schema(args.database_url.as_deref()).await?;
        let db = database_url.as_deref();
        let (app, gallery_at_open) = open(&args, db, &data_dir, models).await?;
        let backend = app.services.store().backend().name();
        let bursts = demo::enrol_people(&app, &data_dir, &args.photos, usize::MAX).await?;
        anyhow::ensure!(
            !bursts.is_empty(),
            "no photo to pay with in {}",
            args.photos.display()
        );
        let app = with_enrolled(app, &args, db, &data_dir, gallery_at_open, models).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let router = facepay_server::router(&app);
        tokio::spawn(async move { axum::serve(listener, router).await });
        let bodies = payment_bodies(&bursts)?;
        let (terminal_id, key) =
            TerminalFile::load(&facepay_server::seed::terminal_file(&data_dir))?;
        let server = format!("http://{address}");
        let samples = Arc::new(Mutex::new(Samples::default()));
        let bodies = Arc::new(bodies);
        let cpu = CpuClock::new(db).await;
        let cpu_before = cpu.mark();
        let started = Instant::now();
        let workers = (0..concurrency).map(|worker| {
            let (samples, bodies, server) =
                (Arc::clone(&samples), Arc::clone(&bodies), server.clone());
            let client = Client::new(&server, terminal_id.clone(), key.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                for i in (worker..payments).step_by(concurrency) {
                    let body = &bodies[i % bodies.len()];
                    let start = Instant::now();
                    let answer =
                        client.post("/v1/terminal/payments", &new_idempotency_key()?, body)?;
                    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
                    let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                    match answer.status {
                        201 => s.approved += 1,
                        402 => s.declined += 1,
                        _ => {
                            s.refused += 1;
                            continue;
                        }
                    }
                    s.latency_ms.push(latency_ms);
                    for (stage, ms) in parse_server_timing(&answer.server_timing) {
                        if let Some(index) = STAGES.iter().position(|s| *s == stage) {
                            s.stages_ms[index].push(ms);
                        }
                    }
                }
                Ok(())
            })
        });
        let workers: Vec<_> = workers.collect();
        for worker in workers {
            worker.await??;
        }
        let elapsed = started.elapsed();
        let cpu_after = cpu.mark();
        let mut s = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
        print_table(backend, concurrency, elapsed, &mut s);
        cpu.print_between(&cpu_before, &cpu_after, payments);
        app.services.store().close().await;
        drop_run_schema(args.database_url.as_deref(), database_url.as_deref()).await?;
        anyhow::Ok(())
    });
    if args.store_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

/// The server on the run's store, and the payers in its gallery then
/// (some from an earlier run, in a kept store).
async fn open(
    args: &PayArgs,
    db: Option<&str>,
    data_dir: &std::path::Path,
    models: &ModelStore,
) -> anyhow::Result<(App, usize)> {
    let started = Instant::now();
    let config = config(args, db, data_dir, false)?;
    let app = App::build(config, models, Arc::new(facepay_store::SystemClock)).await?;
    let gallery_len = app.services.identity.gallery_len();
    if args.store_dir.is_some() {
        println!(
            "start-up on the kept store: {:.1} s, {gallery_len} templates in the gallery",
            started.elapsed().as_secs_f64()
        );
    }
    Ok((app, gallery_len))
}

/// With `--enrolled`: `app` after the import and the timed starts. An
/// import stopped before its end closes the store and ends the run.
async fn with_enrolled(
    app: App,
    args: &PayArgs,
    db: Option<&str>,
    data_dir: &std::path::Path,
    gallery_at_open: usize,
    models: &ModelStore,
) -> anyhow::Result<App> {
    if args.enrolled == 0 {
        return Ok(app);
    }
    let enrolled = args.enrolled.min(bench_enrolled::ENROLLED_MAX);
    let kept = args.store_dir.is_some();
    let imported =
        bench_enrolled::import_or_go_on(&app, enrolled, data_dir, gallery_at_open, kept).await?;
    if imported < enrolled {
        app.services.store().close().await;
        anyhow::bail!(
            "the import stopped with {imported} of {enrolled} payers stored: run the same command again to go on with it"
        );
    }
    // A kept store may hold an earlier run's snapshot, and the first start
    // timed is the one from the store.
    remove_if_present(&data_dir.join(SNAPSHOT_FILE))?;
    let again = || config(args, db, data_dir, true);
    bench_enrolled::restart_timed(app, again, models, args.snapshot_starts).await
}

fn remove_if_present(file: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The URL of a new schema of the PostgreSQL database at `server`, for
/// one run, or `None` for SQLite: the records of an earlier run are sealed
/// under keys that went with its temporary directory.
pub(crate) async fn run_schema(server: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(match server {
        Some(url) => Some(facepay_store::testing::fresh_postgres_url(url).await?),
        None => None,
    })
}

/// Drops what [`run_schema`] made.
pub(crate) async fn drop_run_schema(
    server: Option<&str>,
    schema_url: Option<&str>,
) -> anyhow::Result<()> {
    if let (Some(server), Some(schema_url)) = (server, schema_url) {
        facepay_store::testing::drop_schema_of(server, schema_url).await?;
    }
    Ok(())
}

/// One payment body per photo: one frame, 4,500 won.
pub(crate) fn payment_bodies(photos: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    photos
        .iter()
        .map(|photo| {
            let frame = BASE64.encode(std::fs::read(photo)?);
            Ok(serde_json::to_vec(
                &serde_json::json!({"amount": "4500", "currency": "KRW", "frames": [frame]}),
            )?)
        })
        .collect()
}

/// The demo's configuration on `data_dir` (still photos carry no motion:
/// its lenient liveness lets them pay, and the check itself still runs),
/// with rules that approve every payment, so that what is timed is the
/// whole approved path: as the variables that set it.
pub(crate) fn approving_env(
    engine: &EngineArgs,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    facepay_store::files::private_dir(data_dir)?;
    let rules = data_dir.join("rules.toml");
    std::fs::write(&rules, rules_that_approve()?)?;
    Ok(vec![
        ("FACEPAY_STORE__DATA_DIR", data_dir.display().to_string()),
        ("FACEPAY_RISK__PRESET", "default".to_owned()),
        ("FACEPAY_RISK__RULES_FILE", rules.display().to_string()),
        ("FACEPAY_FACE__BACKEND", engine.backend.to_string()),
        ("FACEPAY_FACE__THREADS", engine.threads.to_string()),
    ])
}

/// The configuration of one start of the server on `data_dir`; with a
/// gallery snapshot file there when `snapshot`.
fn config(
    args: &PayArgs,
    database_url: Option<&str>,
    data_dir: &std::path::Path,
    snapshot: bool,
) -> anyhow::Result<Config> {
    let mut env = approving_env(&args.engine, data_dir)?;
    if let Some(url) = database_url {
        env.push(("FACEPAY_STORE__URL", url.to_owned()));
    }
    env.push(("FACEPAY_GALLERY__KIND", args.gallery_kind.clone()));
    env.push(("FACEPAY_GALLERY__THREADS", args.gallery_threads.to_string()));
    env.push(("FACEPAY_GALLERY__KEEP_FLOATS", args.keep_floats.to_string()));
    if snapshot {
        let file = data_dir.join(SNAPSHOT_FILE);
        env.push(("FACEPAY_GALLERY__SNAPSHOT_FILE", file.display().to_string()));
    }
    if let Some(url) = &args.vault_url {
        let secret = args
            .vault_channel_secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--vault-url needs --vault-channel-secret"))?;
        env.push(("FACEPAY_VAULT__MODE", "remote".to_owned()));
        env.push(("FACEPAY_VAULT__URL", url.clone()));
        env.push((
            "FACEPAY_VAULT__CHANNEL_SECRET_FILE",
            secret.display().to_string(),
        ));
    }
    Ok(Config::demo(
        env.into_iter().map(|(k, v)| (k.to_owned(), v)),
    )?)
}

/// The default rules, every one evaluated, with decision thresholds no
/// score reaches: a few faces paying hundreds of times a minute at one
/// terminal would rightly be stepped up, and the benchmark measures the
/// approve path, risk stage included.
fn rules_that_approve() -> anyhow::Result<String> {
    let rules = facepay_risk::DEFAULT_RULES;
    let start = rules.find("[decision]");
    let end = rules.find("[[rule]]");
    let (Some(start), Some(end)) = (start, end) else {
        anyhow::bail!("the default rules have no [decision] table before their rules");
    };
    let text = format!(
        "{}[decision]\nstep_up_from = 100000\nreview_from = 100000\ndecline_from = 100000\n\
         factors = [{{ from = 100000, factor = \"phone_last4\" }}]\n\n{}",
        &rules[..start],
        &rules[end..]
    );
    facepay_risk::RiskEngine::from_toml(&text)?;
    Ok(text)
}

/// `decode;dur=4.891, face;dur=46.2` into (stage, milliseconds).
pub fn parse_server_timing(header: &str) -> Vec<(String, f64)> {
    header
        .split(',')
        .filter_map(|part| {
            let (name, rest) = part.trim().split_once(";dur=")?;
            Some((name.to_owned(), rest.parse().ok()?))
        })
        .collect()
}

fn print_table(backend: &str, concurrency: usize, elapsed: Duration, s: &mut Samples) {
    let answered = s.approved + s.declined;
    println!(
        "store {backend}, {concurrency} terminals at once: {answered} payments in {:.1} s = {:.1} payments/s ({} approved, {} declined by the issuer, {} refused)",
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64(),
        s.approved,
        s.declined,
        s.refused
    );
    let end_to_end = ("end to end (client)", s.latency_ms.as_mut_slice());
    print_stages(end_to_end, &STAGES, &mut s.stages_ms);
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_timing_parses() {
        let parsed = super::parse_server_timing("decode;dur=4.891, face;dur=46.2,bad, x;dur=y");
        assert_eq!(
            parsed,
            vec![("decode".into(), 4.891), ("face".into(), 46.2)]
        );
    }
}

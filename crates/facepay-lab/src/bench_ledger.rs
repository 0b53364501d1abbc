//! `facepay bench ledger`: what the store carries of the pay path with the
//! face stage left out. Terminals pay at once for payers already
//! identified (`Payments::pay_identified`): the idempotency claim, the
//! risk engine on the payer's history, the loyalty reservation, the
//! payment's row written ahead of the issuer, the vault and the simulated
//! issuer, and the recording transaction (payment, ledger transfers,
//! loyalty, audit, idempotent answer), all through the real code, with
//! the server's background jobs running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facepay_models::ModelStore;
use facepay_server::root::App;
use facepay_store::parties::{self, TerminalContext};
use facepay_terminal::{TerminalFile, new_idempotency_key};

use crate::bench_pay::{approving_env, drop_run_schema, run_schema};
use crate::cpu::CpuClock;
use crate::demo;
use crate::engine_args::EngineArgs;
use crate::stats::print_stages;

const PAYMENTS_MAX: usize = 1_000_000;
const CONCURRENCY_MAX: usize = 256;
/// Servers on one store; each opens up to 16 connections to PostgreSQL.
const NODES_MAX: usize = 4;
/// Payers read back from the store, and synthetic payers enrolled.
const PAYERS_MAX: i64 = 100_000;
/// 45.00 in the demo store's currency, whole won.
const AMOUNT_MINOR: i64 = 4_500;
/// The server's stages this path goes through.
const STAGES: [&str; 4] = ["risk", "vault", "connector", "ledger"];

#[derive(clap::Args)]
pub struct LedgerArgs {
    #[arg(long, default_value_t = 2_000)]
    pub payments: usize,
    /// Payments under way at once, each at a terminal of its own.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// `postgres://...` to measure PostgreSQL: the run works in a new
    /// schema of that database, dropped when it ends. A fresh SQLite file
    /// otherwise.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Folders of photos, one per person: the first photo of each enrols
    /// a payer (the face engine runs only for that).
    #[arg(long, default_value = ".facepay/verify")]
    pub photos: std::path::PathBuf,
    /// Synthetic payers enrolled besides the photos' (face-like templates
    /// of `facepay-face-eval`, each with a card of its own), stored as an
    /// enrolment stores them; their enrolment is timed. Payments go round
    /// all payers, so that few of them pay at once.
    #[arg(long, default_value_t = 0)]
    pub payers: usize,
    /// Servers sharing the PostgreSQL store, as nodes behind a load
    /// balancer: each with its connections, caches, change-log follower
    /// and background work of its own, and the terminals spread over them.
    /// They run in this one process, so on the same cores.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Default)]
struct Samples {
    latency_ms: Vec<f64>,
    stages_ms: [Vec<f64>; STAGES.len()],
    approved: usize,
    declined: usize,
    /// Answers other than approved, by code (or status).
    refused: std::collections::BTreeMap<String, usize>,
}

pub fn run(args: LedgerArgs, models: &ModelStore) -> anyhow::Result<()> {
    let payments = args.payments.clamp(1, PAYMENTS_MAX);
    let concurrency = args.concurrency.clamp(1, CONCURRENCY_MAX);
    let nodes = args.nodes.clamp(1, NODES_MAX);
    anyhow::ensure!(
        nodes == 1 || args.database_url.is_some(),
        "--nodes above 1 needs --database-url: SQLite is a file of one process"
    );
    let data_dir = std::env::temp_dir().join(format!("facepay-ledger-{}", new_idempotency_key()?));
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let database_url = run_schema(args.database_url.as_deref()).await?;
        let mut env = approving_env(&args.engine, &data_dir)?;
        if let Some(url) = &database_url {
            env.push(("FACEPAY_STORE__URL", url.clone()));
        }
        let node = || async {
            let env = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone()));
            let config = facepay_config::Config::demo(env)?;
            anyhow::Ok(App::build(config, models, Arc::new(facepay_store::SystemClock)).await?)
        };
        let app = node().await?;
        demo::enrol_people(&app, &data_dir, &args.photos, usize::MAX).await?;
        enrol_synthetic(&app, args.payers.min(PAYERS_MAX as usize)).await?;
        let (terminals, payers) = parties_of(&app, &data_dir, concurrency).await?;
        let mut apps = vec![app];
        for _ in 1..nodes {
            apps.push(node().await?);
        }
        // As `facepay serve` runs them: among them the change-log follower,
        // through which a node learns of the regulars the others made.
        let jobs: Vec<_> = apps.iter().map(facepay_server::jobs::start).collect();
        let cpu = CpuClock::new(database_url.as_deref()).await;
        let cpu_before = cpu.mark();
        let started = Instant::now();
        let samples = pay_at_once(&apps, &terminals, &payers, payments).await?;
        let elapsed = started.elapsed();
        let cpu_after = cpu.mark();
        let mut s = samples;
        let backend = apps[0].services.store().backend().name();
        print_table((backend, nodes), concurrency, payers.len(), elapsed, &mut s);
        cpu.print_between(&cpu_before, &cpu_after, payments);
        for jobs in jobs {
            jobs.stop().await;
        }
        for app in &apps {
            app.services.store().close().await;
        }
        drop_run_schema(args.database_url.as_deref(), database_url.as_deref()).await?;
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// Enrolments under way at once: each hashes a PIN with Argon2 (19 MiB).
const ENROLMENTS_AT_ONCE: usize = 4;

/// `count` payers with synthetic faces and cards of their own, enrolled
/// through `Identity::enrol_embedded`; prints how fast.
async fn enrol_synthetic(app: &App, count: usize) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let spec = facepay_face_eval::synthetic::SyntheticSpec::default();
    let faces = Arc::new(facepay_face_eval::synthetic::Synthetic::new(spec, count)?);
    let started = Instant::now();
    let lookalikes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..ENROLMENTS_AT_ONCE).map(|worker| {
        let (services, faces) = (Arc::clone(&app.services), Arc::clone(&faces));
        let lookalikes = Arc::clone(&lookalikes);
        tokio::spawn(async move {
            for i in (worker..count).step_by(ENROLMENTS_AT_ONCE) {
                let card = facepay_payments::api::CardInput {
                    number: card_number(i),
                    expiry_month: 12,
                    expiry_year: 2031,
                    security_code: facepay_connector::simulator::SIMULATED_SECURITY_CODE.into(),
                };
                let phone = format!("+8210{:08}", 50_000_000 + i);
                let vector = faces.gallery_row(i)?;
                let key = new_idempotency_key()?;
                let enrolled = services
                    .identity
                    .enrol_embedded(&key, (&phone, "482913"), &card, &vector)
                    .await;
                match enrolled {
                    Ok(reply) if reply.status == 201 => {}
                    // A synthetic face close enough to an enrolled one is
                    // refused as a real one would be: one face, one account.
                    Err(f) if f.code == "face_already_enrolled" => {
                        lookalikes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(reply) => anyhow::bail!("synthetic payer {i}: {}", reply.body),
                    Err(f) => anyhow::bail!("synthetic payer {i}: {f}"),
                }
            }
            anyhow::Ok(())
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let refused = lookalikes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "enrolled {} synthetic payers in {elapsed:.1} s = {:.1} enrolments/s ({ENROLMENTS_AT_ONCE} at once; {refused} refused as already enrolled)",
        count - refused,
        count as f64 / elapsed
    );
    Ok(())
}

/// A Visa number of its own for synthetic payer `i`, with its Luhn check
/// digit: the simulated issuer approves any valid number.
pub(crate) fn card_number(i: usize) -> String {
    let body = format!("4000{:011}", 10_000_000_000u64 + i as u64);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            // Doubled from the rightmost digit of the body, since the
            // check digit goes after it.
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A terminal for each payment under way, in the demo terminal's store (a
/// terminal pays for one shopper at a time, and the risk engine counts
/// each terminal's payments), and the enrolled payers' ids.
async fn parties_of(
    app: &App,
    data_dir: &std::path::Path,
    terminals: usize,
) -> anyhow::Result<(Vec<TerminalContext>, Vec<String>)> {
    let (terminal_id, _key) = TerminalFile::load(&facepay_server::seed::terminal_file(data_dir))?;
    let mut conn = app.services.store().acquire().await?;
    let demo = parties::terminal_context(&mut conn, &terminal_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo terminal {terminal_id} is not in the store"))?;
    let mut contexts = Vec::with_capacity(terminals);
    for i in 0..terminals {
        let id = format!("trm_bench_{i}");
        let now_ms = facepay_store::Clock::now_ms(&facepay_store::SystemClock);
        parties::insert_terminal(&mut conn, &id, &demo.store.id, &demo.public_key, now_ms).await?;
        contexts.push(TerminalContext {
            terminal_id: id,
            ..demo.clone()
        });
    }
    let enrolled = parties::active_templates(&mut conn, "", PAYERS_MAX).await?;
    anyhow::ensure!(!enrolled.is_empty(), "no payer was enrolled");
    let payers = enrolled.into_iter().map(|row| row.template.user_id);
    Ok((contexts, payers.collect()))
}

/// Each terminal pays in turn, all terminals at once, terminal `i` through
/// node `i` modulo their count.
async fn pay_at_once(
    apps: &[App],
    terminals: &[TerminalContext],
    payers: &[String],
    payments: usize,
) -> anyhow::Result<Samples> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let concurrency = terminals.len();
    let workers = terminals.iter().enumerate().map(|(worker, ctx)| {
        let services = Arc::clone(&apps[worker % apps.len()].services);
        let (ctx, payers) = (ctx.clone(), payers.to_vec());
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            for i in (worker..payments).step_by(concurrency) {
                let key = new_idempotency_key()?;
                let payer = &payers[i % payers.len()];
                let start = Instant::now();
                let answer = services
                    .payments
                    .pay_identified(&ctx, &key, AMOUNT_MINOR, payer)
                    .await;
                let latency_ms = start.elapsed().as_secs_f64() * 1e3;
                let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                let reply = match answer {
                    // A decline is recorded like an approval, in one
                    // transaction: one demo payer's card has no funds.
                    Ok(reply) if matches!(reply.status, 201 | 402) => reply,
                    Ok(reply) => {
                        *s.refused.entry(format!("{}", reply.status)).or_default() += 1;
                        continue;
                    }
                    Err(f) => {
                        *s.refused.entry(f.code.to_owned()).or_default() += 1;
                        continue;
                    }
                };
                match reply.status {
                    201 => s.approved += 1,
                    _ => s.declined += 1,
                }
                s.latency_ms.push(latency_ms);
                for (stage, us) in reply.timings.unwrap_or_default().stages() {
                    if let Some(index) = STAGES.iter().position(|s| *s == stage) {
                        s.stages_ms[index].push(us as f64 / 1e3);
                    }
                }
            }
            anyhow::Ok(())
        })
    });
    let workers: Vec<_> = workers.collect();
    for worker in workers {
        worker.await??;
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(samples)
}

fn print_table(
    (backend, nodes): (&str, usize),
    concurrency: usize,
    payers: usize,
    elapsed: Duration,
    s: &mut Samples,
) {
    let nodes = if nodes == 1 {
        String::new()
    } else {
        format!(" through {nodes} nodes")
    };
    println!(
        "store {backend}{nodes}, {concurrency} payments at once, {payers} payers: {} recorded in {:.1} s = {:.0} payments/s ({} approved, {} declined by the issuer, refused: {:?})",
        s.approved + s.declined,
        elapsed.as_secs_f64(),
        (s.approved + s.declined) as f64 / elapsed.as_secs_f64(),
        s.approved,
        s.declined,
        s.refused
    );
    print_stages(
        ("end to end", s.latency_ms.as_mut_slice()),
        &STAGES,
        &mut s.stages_ms,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_cards_are_valid_and_distinct() {
        let numbers: Vec<String> = (0..1_000).map(super::card_number).collect();
        for number in &numbers {
            assert_eq!(number.len(), 16, "{number}");
            assert!(facepay_connector::card::luhn_valid(number), "{number}");
        }
        let distinct: std::collections::HashSet<_> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len());
    }
}

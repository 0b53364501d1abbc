//! `facepay bench gallery`: 1:N identification on galleries of synthetic
//! templates shaped like real SFace ones (`facepay_face_eval::synthetic`,
//! calibrated on the sample photos), per index kind and thread count, side
//! by side with FAISS on the same vectors and queries.
//!
//! Each query is one payment: searched alone, timed alone. Recall@1 is
//! against the exact scan; "found" is the share of genuine queries whose
//! enrolled template comes first at or above the strong threshold (a
//! payment without step-up), and "impostors" the share of outsiders'
//! queries whose best reaches the match threshold and the strong one (the
//! open-set error the step-up exists for). The synthetic impostor tail is
//! the model's, not measured on people: read those columns as estimates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use facepay_face_eval::synthetic::{Synthetic, SyntheticSpec};
use facepay_gallery::{Gallery, GalleryConfig, IndexKind, Scope};
use facepay_payments::DecisionPolicy;

use crate::stats::median_p99;

const SIZE_MAX: usize = 20_000_000;
const QUERIES_MAX: usize = 100_000;
/// Rows generated and inserted per batch.
const BATCH_ROWS: usize = 65_536;

#[derive(clap::Args)]
pub struct GalleryArgs {
    /// Gallery sizes; repeat the flag for several.
    #[arg(long = "size", default_values_t = [100_000usize])]
    pub sizes: Vec<usize>,
    /// Thread counts a scan is spread over; repeat for several.
    #[arg(long = "threads", default_values_t = [1usize, 2])]
    pub threads: Vec<usize>,
    /// Index kinds: `exact`, `prefilter`, `hnsw`; repeat for several.
    #[arg(long = "kind", default_values_t = ["exact".to_string(), "prefilter".to_string()])]
    pub kinds: Vec<String>,
    /// Genuine queries (a new sample of an enrolled identity).
    #[arg(long, default_value_t = 300)]
    pub queries: usize,
    /// Impostor queries (identities not enrolled).
    #[arg(long, default_value_t = 100)]
    pub impostors: usize,
    #[arg(long, default_value_t = 256)]
    pub prefilter_bits: usize,
    #[arg(long, default_value_t = 1024)]
    pub prefilter_candidates: usize,
    #[arg(long, default_value_t = 32)]
    pub hnsw_connectivity: usize,
    #[arg(long, default_value_t = 64)]
    pub hnsw_expansion_add: usize,
    #[arg(long, default_value_t = 64)]
    pub hnsw_expansion_search: usize,
    /// Graph neighbours re-scored in float.
    #[arg(long, default_value_t = 8)]
    pub hnsw_candidates: usize,
    /// From this size on the gallery keeps int8 codes only (no floats).
    #[arg(long, default_value_t = 5_000_000)]
    pub int8_only_from: usize,
    /// Run FAISS on the same vectors (needs `scripts/peer-venv.sh`).
    #[arg(long)]
    pub faiss: bool,
    /// Also build FAISS's IndexHNSWFlat (minutes at a million rows).
    #[arg(long)]
    pub faiss_hnsw: bool,
    /// Also time a sealed gallery snapshot of the exact gallery, written to
    /// and read back from this directory (as a restart reads it).
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// The peer venv's Python.
    #[arg(long, default_value = ".facepay/venv-peer/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

struct Row {
    size: usize,
    index: String,
    threads: usize,
    build_s: f64,
    memory_bytes: usize,
    qps: f64,
    median_ms: f64,
    p99_ms: f64,
    recall: f64,
    found: Option<f64>,
    impostors: Option<(f64, f64)>,
}

pub fn run(args: GalleryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.sizes.iter().all(|n| (1..=SIZE_MAX).contains(n)),
        "sizes are 1 to {SIZE_MAX}"
    );
    anyhow::ensure!(
        (1..=QUERIES_MAX).contains(&args.queries) && args.impostors <= QUERIES_MAX,
        "queries are 1 to {QUERIES_MAX}"
    );
    let policy = DecisionPolicy::default();
    let mut rows = Vec::new();
    let mut snapshots = Vec::new();
    for &size in &args.sizes {
        let (measured, snapshot) = bench_size(&args, size, &policy)?;
        rows.extend(measured);
        snapshots.extend(snapshot);
    }
    print_table(&rows, &policy);
    if !snapshots.is_empty() {
        println!();
        println!("| N | snapshot file | write s | restart (read into an empty gallery) s |");
        println!("|---:|---:|---:|---:|");
        for s in &snapshots {
            println!(
                "| {} | {:.2} GB | {:.2} | {:.2} |",
                s.size,
                s.file_bytes as f64 / 1e9,
                s.write_s,
                s.read_s
            );
        }
    }
    Ok(())
}

/// A sealed gallery snapshot written and read back.
struct SnapshotRow {
    size: usize,
    file_bytes: u64,
    write_s: f64,
    read_s: f64,
}

/// Times the snapshot of `gallery` in `dir`: written, then read back into
/// the emptied gallery (as a restart does; the queries then run on it),
/// and the file removed.
fn bench_snapshot(gallery: &Gallery, dir: &Path, size: usize) -> anyhow::Result<SnapshotRow> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("bench-{size}.snapshot"));
    let start = Instant::now();
    let (written, key) =
        facepay_payments::snapshot::write_for_bench(gallery, &path, facepay_store::now_ms())
            .map_err(|f| anyhow::anyhow!("writing the snapshot: {f}"))?;
    let write_s = start.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path)?.len();
    gallery.clear()?;
    let start = Instant::now();
    let read = facepay_payments::snapshot::read_for_bench(gallery, &path, &key)
        .map_err(|f| anyhow::anyhow!("reading the snapshot: {f}"))?;
    let read_s = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    anyhow::ensure!(
        written == size as u64 && read == written && gallery.len() == size,
        "the snapshot lost rows"
    );
    eprintln!("N = {size}: snapshot written in {write_s:.2} s, read in {read_s:.2} s");
    Ok(SnapshotRow {
        size,
        file_bytes,
        write_s,
        read_s,
    })
}

fn kind_of(args: &GalleryArgs, name: &str) -> anyhow::Result<IndexKind> {
    Ok(match name {
        "exact" => IndexKind::Exact,
        "prefilter" => IndexKind::Prefiltered {
            bits: args.prefilter_bits,
            candidates: args.prefilter_candidates,
        },
        "hnsw" => IndexKind::Hnsw {
            connectivity: args.hnsw_connectivity,
            expansion_add: args.hnsw_expansion_add,
            expansion_search: args.hnsw_expansion_search,
            candidates: args.hnsw_candidates,
        },
        other => anyhow::bail!("{other:?}: use exact, prefilter or hnsw"),
    })
}

fn bench_size(
    args: &GalleryArgs,
    size: usize,
    policy: &DecisionPolicy,
) -> anyhow::Result<(Vec<Row>, Option<SnapshotRow>)> {
    let spec = SyntheticSpec {
        seed: args.seed,
        ..SyntheticSpec::default()
    };
    let synthetic = Synthetic::new(spec, size)?;
    let dim = synthetic.dim();
    eprintln!("N = {size}: generating {size} templates of {dim} values");
    let start = Instant::now();
    let mut vectors = vec![0f32; size * dim];
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let halves: Vec<_> = vectors
            .chunks_mut(size.div_ceil(2) * dim)
            .enumerate()
            .map(|(h, out)| {
                let first = h * size.div_ceil(2);
                let rows = first..first + out.len() / dim;
                let synthetic = &synthetic;
                scope.spawn(move || synthetic.fill(rows, out))
            })
            .collect();
        for half in halves {
            half.join()
                .map_err(|_| anyhow::anyhow!("generation panicked"))??;
        }
        Ok(())
    })?;
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    let stride = size.max(1) / args.queries.min(size).max(1);
    let genuine: Vec<(usize, Vec<f32>)> = (0..args.queries.min(size))
        .map(|q| {
            let identity = q * stride;
            synthetic.genuine_query(identity).map(|v| (identity, v))
        })
        .collect::<Result<_, _>>()?;
    let outsiders: Vec<Vec<f32>> = (0..args.impostors)
        .map(|k| synthetic.impostor_query(k))
        .collect::<Result<_, _>>()?;
    let keep_floats = size < args.int8_only_from;

    let mut rows = Vec::new();
    let mut snapshot = None;
    let mut truth: Option<Vec<Option<usize>>> = None;
    let mut names: Vec<&str> = vec!["exact"];
    names.extend(
        args.kinds
            .iter()
            .map(String::as_str)
            .filter(|k| *k != "exact"),
    );
    for name in names {
        let kind = kind_of(args, name)?;
        eprintln!("N = {size}: building {name}");
        let start = Instant::now();
        let mut gallery = build(&vectors, dim, kind, keep_floats)?;
        let build_s = start.elapsed().as_secs_f64();
        eprintln!("kernels: {}", gallery.kernels().name());
        if let (Some(dir), IndexKind::Exact) = (&args.snapshot, kind) {
            snapshot = Some(bench_snapshot(&gallery, dir, size)?);
        }
        for &threads in &args.threads {
            gallery.set_threads(threads)?;
            let mut latencies_ms = Vec::with_capacity(genuine.len());
            let mut best = Vec::with_capacity(genuine.len());
            let mut found = 0usize;
            let started = Instant::now();
            for (identity, probe) in &genuine {
                let t = Instant::now();
                let top = gallery.search(probe, Scope::All, -1.0, 1)?;
                latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                let first = top.first();
                let row = first.and_then(|c| c.user_id.parse::<usize>().ok());
                if row == Some(*identity)
                    && first.is_some_and(|c| c.score >= policy.strong_threshold)
                {
                    found += 1;
                }
                best.push(row);
            }
            let elapsed_s = started.elapsed().as_secs_f64();
            let (mut above_match, mut above_strong) = (0usize, 0usize);
            for probe in &outsiders {
                let top = gallery.search(probe, Scope::All, policy.match_threshold, 1)?;
                above_match += usize::from(!top.is_empty());
                above_strong += usize::from(
                    top.first()
                        .is_some_and(|c| c.score >= policy.strong_threshold),
                );
            }
            let reference = truth.get_or_insert_with(|| best.clone());
            let agree = best
                .iter()
                .zip(reference.iter())
                .filter(|(a, b)| a == b)
                .count();
            let (median_ms, p99_ms) = median_p99(&mut latencies_ms);
            rows.push(Row {
                size,
                index: index_name(kind, keep_floats),
                threads,
                build_s,
                memory_bytes: gallery.memory_bytes(),
                qps: genuine.len() as f64 / elapsed_s,
                median_ms,
                p99_ms,
                recall: agree as f64 / genuine.len() as f64,
                found: Some(found as f64 / genuine.len() as f64),
                impostors: (!outsiders.is_empty()).then(|| {
                    let n = outsiders.len() as f64;
                    (above_match as f64 / n, above_strong as f64 / n)
                }),
            });
            eprintln!("  {name}, {threads} thread(s): median {median_ms:.2} ms");
        }
    }
    if args.faiss {
        let truth = truth.unwrap_or_default();
        rows.extend(faiss(args, size, dim, &vectors, &genuine, &truth)?);
    }
    Ok((rows, snapshot))
}

fn index_name(kind: IndexKind, keep_floats: bool) -> String {
    let last = if keep_floats {
        "float top-64"
    } else {
        "int8, no floats kept"
    };
    match kind {
        IndexKind::Exact => format!("exact int8 → {last}"),
        IndexKind::Prefiltered { bits, candidates } => {
            format!("SimHash {bits} bits → {candidates} → {last}")
        }
        IndexKind::Hnsw {
            connectivity,
            expansion_search,
            ..
        } => format!("usearch HNSW M={connectivity} ef={expansion_search} → float"),
    }
}

/// A gallery of `vectors`, user ids being row numbers, filled from two
/// threads (the codes are made outside the gallery's lock).
fn build(
    vectors: &[f32],
    dim: usize,
    kind: IndexKind,
    keep_floats: bool,
) -> anyhow::Result<Gallery> {
    let gallery = Gallery::new(GalleryConfig {
        kind,
        keep_floats,
        ..GalleryConfig::new(dim)
    })?;
    let size = vectors.len() / dim;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let gallery = &gallery;
                scope.spawn(move || -> Result<(), facepay_gallery::GalleryError> {
                    for batch in (w * BATCH_ROWS..size).step_by(2 * BATCH_ROWS) {
                        let rows = batch..(batch + BATCH_ROWS).min(size);
                        let ids: Vec<String> = rows.clone().map(|r| r.to_string()).collect();
                        let items: Vec<(&str, &[f32], &[String])> = rows
                            .zip(&ids)
                            .map(|(r, id)| (id.as_str(), &vectors[r * dim..(r + 1) * dim], &[][..]))
                            .collect();
                        gallery.insert_many(&items)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("insert panicked"))??;
        }
        Ok(())
    })?;
    anyhow::ensure!(gallery.len() == size, "the gallery lost rows");
    Ok(gallery)
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in values {
        file.write_all(&v.to_le_bytes())?;
    }
    file.flush()?;
    Ok(())
}

/// FAISS on the same gallery and genuine queries, through
/// `scripts/bench_gallery_peer.py`.
fn faiss(
    args: &GalleryArgs,
    size: usize,
    dim: usize,
    vectors: &[f32],
    genuine: &[(usize, Vec<f32>)],
    truth: &[Option<usize>],
) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(
        args.python.exists(),
        "{} is missing: run scripts/peer-venv.sh",
        args.python.display()
    );
    let dir = std::env::temp_dir().join(format!("facepay-gallery-{}-{size}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<Vec<Row>> {
        write_f32(&dir.join("gallery.f32"), vectors)?;
        let queries: Vec<f32> = genuine
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        write_f32(&dir.join("queries.f32"), &queries)?;
        let truth: Vec<usize> = truth
            .iter()
            .zip(genuine)
            .map(|(t, (identity, _))| t.unwrap_or(*identity))
            .collect();
        let meta =
            serde_json::json!({"n": size, "dim": dim, "queries": genuine.len(), "truth": truth});
        std::fs::write(dir.join("meta.json"), meta.to_string())?;
        let mut rows = Vec::new();
        for &threads in &args.threads {
            let mut command = Command::new(&args.python);
            command
                .arg("scripts/bench_gallery_peer.py")
                .arg(&dir)
                .arg("--threads")
                .arg(threads.to_string())
                .arg("--hnsw-ef-search")
                .arg("64,128,256");
            if !args.faiss_hnsw {
                command.arg("--skip-hnsw");
            }
            eprintln!("N = {size}: FAISS, {threads} thread(s)");
            let output = command.output().context("running the FAISS peer")?;
            anyhow::ensure!(
                output.status.success(),
                "FAISS peer failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let version = report["faiss_version"].as_str().unwrap_or("?");
            for r in report["results"].as_array().into_iter().flatten() {
                let params = match r["params"]["ef_search"].as_u64() {
                    Some(ef) => format!(" M={} ef={ef}", r["params"]["m"]),
                    None => String::new(),
                };
                rows.push(Row {
                    size,
                    index: format!(
                        "FAISS {version} {}{params}",
                        r["index"].as_str().unwrap_or("?")
                    ),
                    threads,
                    build_s: r["build_s"].as_f64().unwrap_or(f64::NAN),
                    memory_bytes: r["memory_bytes_counted"].as_u64().unwrap_or(0) as usize,
                    qps: r["qps"].as_f64().unwrap_or(f64::NAN),
                    median_ms: r["latency_ms_median"].as_f64().unwrap_or(f64::NAN),
                    p99_ms: r["latency_ms_p99"].as_f64().unwrap_or(f64::NAN),
                    recall: r["recall_at_1"].as_f64().unwrap_or(f64::NAN),
                    found: None,
                    impostors: None,
                });
            }
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn print_table(rows: &[Row], policy: &DecisionPolicy) {
    let (weak, strong) = (policy.match_threshold, policy.strong_threshold);
    println!(
        "| N | index | threads | build s | memory MB | queries/s | median ms | p99 ms | recall@1 vs exact | found ≥ {strong} | impostors ≥ {weak} / ≥ {strong} |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let percent = |v: f64| format!("{:.1} %", v * 100.0);
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.3} | {} | {} |",
            r.size,
            r.index,
            r.threads,
            r.build_s,
            r.memory_bytes as f64 / 1e6,
            r.qps,
            r.median_ms,
            r.p99_ms,
            r.recall,
            r.found.map_or("-".to_string(), percent),
            r.impostors.map_or("-".to_string(), |(m, s)| format!(
                "{} / {}",
                percent(m),
                percent(s)
            )),
        );
    }
    // Ours against FAISS: the fastest of each at recall@1 ≥ 0.99, per size
    // and thread count.
    let best = |faiss: bool, size: usize, threads: usize| {
        rows.iter()
            .filter(|r| r.size == size && r.threads == threads)
            .filter(|r| r.index.starts_with("FAISS") == faiss && r.recall >= 0.99)
            .max_by(|a, b| a.qps.total_cmp(&b.qps))
    };
    let mut pairs: Vec<(usize, usize)> = rows.iter().map(|r| (r.size, r.threads)).collect();
    pairs.sort();
    pairs.dedup();
    for (size, threads) in pairs {
        if let (Some(ours), Some(theirs)) = (best(false, size, threads), best(true, size, threads))
        {
            println!(
                "N = {size}, {threads} thread(s), recall@1 ≥ 0.99: ours {:.0} q/s ({}), FAISS {:.0} q/s ({}): {:.1}x",
                ours.qps,
                ours.index,
                theirs.qps,
                theirs.index,
                ours.qps / theirs.qps
            );
        }
    }
}

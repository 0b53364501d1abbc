//! The gallery: every enrolled template, searched 1:N at each payment.
//!
//! One structure, several ways to search it ([`IndexKind`]):
//! - **exact**: every row's int8 code is scored against the probe's (the
//!   kernels in [`kernels`]), and of the best [`GalleryConfig::rerank`]
//!   those that quantisation's bound lets reach the best `limit` are scored
//!   again in float (usually one or two), and those scores are what the
//!   caller sees. The int8 pass only chooses which rows get the float
//!   pass.
//! - **prefiltered**: for large galleries, each row also has a short binary
//!   code, the signs of random projections (SimHash: the fraction of bits
//!   two codes differ in estimates the angle between the vectors); codes
//!   are compared by Hamming distance first (32 bytes a row for 256 bits,
//!   a quarter of the int8 codes) and the closest candidates go through the
//!   exact pass. Its recall is measured against the exact scan (`facepay
//!   bench gallery`).
//! - **hnsw**: a graph index (`usearch`), for comparison: its nearest
//!   candidates are re-scored in float; it needs no scan, but its recall
//!   on face-like data is what `facepay bench gallery` measures.
//! - **ivf**: an inverted file ([`ivf`]): k-means cells, the probe's
//!   nearest `probes` cells scanned by 1-bit codes (RaBitQ estimates with
//!   error bounds), the rows whose bounds may reach the best `limit` (at
//!   most `candidates`) through the int8 and float passes, highest bound
//!   first until none can. Until the gallery holds enough rows to train
//!   the cells, a search scans every row.
//!
//! A search can be narrowed to a **partition**, a key known at the till
//! such as the last four digits of the payer's phone (`phone:1234`) or the
//! users who paid at this merchant before (`merchant:<id>`): then only the
//! partition's rows go through the int8 and float passes.
//!
//! Rows live in fixed-size chunks, so an enrolment never moves the gallery
//! and a deletion frees its slot for the next: both take the write lock for
//! a few microseconds, between two searches. Searches share the read lock
//! and spread a scan over the gallery's own thread pool.

mod decision;
mod directory;
mod ivf;
pub mod kernels;
mod rows_io;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use crate::directory::Directory;

pub use decision::{Decision, DecisionPolicy};
pub use ivf::{CELLS_MAX, IVF_CANDIDATES_MAX, TRAIN_ROWS_PER_CELL};
pub use kernels::Kernels;

/// Most candidates a search returns, and so the most a step-up chooses among.
pub const CANDIDATES_MAX: usize = 5;
/// The longest template accepted.
pub const DIM_MAX: usize = 4096;
/// Rows a gallery holds at most (ids are `u32` slots).
pub const ROWS_MAX: usize = 200_000_000;
/// Partitions one row belongs to at most.
pub const PARTITIONS_PER_ROW_MAX: usize = 64;
/// The longest binary code.
pub const BITS_MAX: usize = 4096;
/// Rows per chunk: large enough that a scan is one long loop per chunk,
/// small enough that adding a chunk under the write lock is quick.
const CHUNK_ROWS: usize = 16_384;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GalleryError {
    #[error("the template has {got} values; this gallery holds {want}")]
    Dimension { got: usize, want: usize },
    #[error("the template holds a value that is not a finite number")]
    NotFinite,
    #[error("the gallery is full ({ROWS_MAX} rows)")]
    Full,
    #[error("a row belongs to at most {PARTITIONS_PER_ROW_MAX} partitions")]
    TooManyPartitions,
    #[error("the gallery's configuration is not usable: {0}")]
    Config(String),
    #[error("the graph index failed: {0}")]
    Graph(String),
    #[error("gallery rows could not be written or read: {0}")]
    Rows(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub user_id: String,
    pub score: f32,
}

/// How a search over the whole gallery finds its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Score every row (int8), re-score the best in float.
    Exact,
    /// Rank every row by the Hamming distance of `bits` sign bits of
    /// random projections (SimHash), then score the closest `candidates`
    /// rows exactly.
    Prefiltered { bits: usize, candidates: usize },
    /// A navigable small-world graph (HNSW, the `usearch` crate) over the
    /// float rows; its `candidates` nearest go through the int8 and float
    /// passes.
    Hnsw {
        connectivity: usize,
        expansion_add: usize,
        expansion_search: usize,
        candidates: usize,
    },
    /// An inverted file: `cells` k-means cells; a search scans the 1-bit
    /// codes of the `probes` cells nearest the probe and scores exactly
    /// the rows whose error bounds may put them among its best, at most
    /// `candidates`.
    Ivf {
        cells: usize,
        probes: usize,
        candidates: usize,
    },
}

#[derive(Debug, Clone)]
pub struct GalleryConfig {
    pub dim: usize,
    pub kind: IndexKind,
    /// Rows the exact scan keeps by int8 score for the bounded int8 and
    /// float passes.
    pub rerank: usize,
    /// Keep each row's floats for re-scoring. Without them (to fit ten
    /// million rows in memory) scores are the int8 estimate.
    pub keep_floats: bool,
    /// Threads a scan is spread over.
    pub threads: usize,
}

impl GalleryConfig {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            kind: IndexKind::Exact,
            rerank: 64,
            keep_floats: true,
            threads: 1,
        }
    }
}

/// Which rows a search looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    All,
    Partition(&'a str),
}

const _: () = assert!(CELLS_MAX <= u16::MAX as usize + 1);

struct Chunk {
    codes: Vec<i8>,
    scales: Vec<f32>,
    floats: Vec<f32>,
    bits: Vec<u64>,
    alive: Vec<bool>,
    /// The inverted file's cell of each row (empty for other kinds); two
    /// bytes hold every cell number below `CELLS_MAX`.
    cells: Vec<u16>,
}

/// Rows ready to be placed: codes made, floats if kept.
struct Placed<'a> {
    keys: &'a [(&'a str, &'a [String])],
    codes: &'a [i8],
    scales: &'a [f32],
    floats: Option<&'a [f32]>,
    bits: &'a [u64],
    /// Inverted-file codes, when the cells were trained as they were made.
    encoded: Option<&'a ivf::Encoded>,
}

#[derive(Default)]
struct Rows {
    chunks: Vec<Chunk>,
    directory: Directory,
    free: Vec<u32>,
    /// The inverted file, once its cells are trained.
    ivf: Option<ivf::Ivf>,
}

pub struct Gallery {
    config: GalleryConfig,
    /// Words of a row's binary code (0 without a prefilter).
    words: usize,
    /// `bits` × `dim` Gaussian directions of the binary code.
    projection: Vec<f32>,
    kernels: Kernels,
    pool: Option<rayon::ThreadPool>,
    /// The graph of [`IndexKind::Hnsw`], keyed by slot; changed only under
    /// the rows' write lock, so it always agrees with them.
    graph: Option<usearch::Index>,
    rows: RwLock<Rows>,
    /// Held while the inverted file's cells are trained, so that one
    /// thread trains them.
    training: Mutex<()>,
}

/// How far an inverted-file search looks: cells probed, rows kept at
/// most, and the best `k` at or above `floor` it is after.
#[derive(Clone, Copy)]
struct IvfDepth {
    probes: usize,
    candidates: usize,
    k: usize,
    floor: f32,
}

/// A probe in every form the passes need.
struct Probe {
    floats: Vec<f32>,
    code: Vec<i8>,
    scale: f32,
    bits: Vec<u64>,
}

impl Gallery {
    pub fn new(config: GalleryConfig) -> Result<Self, GalleryError> {
        if config.dim == 0 || config.dim > DIM_MAX {
            return Err(GalleryError::Config(format!("dim must be 1 to {DIM_MAX}")));
        }
        if config.rerank == 0 || config.threads == 0 {
            return Err(GalleryError::Config(
                "rerank and threads must be positive".into(),
            ));
        }
        let mut bits = 0;
        if let IndexKind::Prefiltered {
            bits: code_bits,
            candidates,
        } = config.kind
        {
            if candidates < config.rerank {
                return Err(GalleryError::Config(
                    "a prefilter must keep at least `rerank` candidates".into(),
                ));
            }
            if code_bits == 0 || code_bits > BITS_MAX || !code_bits.is_multiple_of(64) {
                return Err(GalleryError::Config(format!(
                    "prefilter bits must be a multiple of 64 up to {BITS_MAX}"
                )));
            }
            bits = code_bits;
        }
        let graph = match config.kind {
            IndexKind::Hnsw {
                connectivity,
                expansion_add,
                expansion_search,
                candidates,
            } => {
                if candidates == 0 || candidates > 4096 {
                    return Err(GalleryError::Config(
                        "hnsw candidates must be 1 to 4096".into(),
                    ));
                }
                let options = usearch::IndexOptions {
                    dimensions: config.dim,
                    metric: usearch::MetricKind::IP,
                    quantization: usearch::ScalarKind::F32,
                    connectivity,
                    expansion_add,
                    expansion_search,
                    multi: false,
                };
                let graph = usearch::Index::new(&options)
                    .map_err(|e| GalleryError::Graph(e.to_string()))?;
                graph
                    .reserve_capacity_and_threads(CHUNK_ROWS, config.threads.max(1))
                    .map_err(|e| GalleryError::Graph(e.to_string()))?;
                Some(graph)
            }
            _ => None,
        };
        if let IndexKind::Ivf {
            cells,
            probes,
            candidates,
        } = config.kind
        {
            check_ivf(config.dim, cells, probes, candidates, config.rerank)?;
        }
        let pool = thread_pool(config.threads)?;
        Ok(Self {
            words: bits / 64,
            projection: kernels::projection(bits, config.dim),
            graph,
            kernels: Kernels::detect(),
            pool,
            rows: RwLock::new(Rows::default()),
            training: Mutex::new(()),
            config,
        })
    }

    /// Changes how deep later searches of an inverted file go (a benchmark
    /// sweeps them on one gallery without building it again).
    pub fn set_ivf_depth(&mut self, probes: usize, candidates: usize) -> Result<(), GalleryError> {
        let IndexKind::Ivf { cells, .. } = self.config.kind else {
            return Err(GalleryError::Config("not an inverted file".into()));
        };
        check_ivf(
            self.config.dim,
            cells,
            probes,
            candidates,
            self.config.rerank,
        )?;
        self.config.kind = IndexKind::Ivf {
            cells,
            probes,
            candidates,
        };
        Ok(())
    }

    /// Whether the inverted file's cells are trained (false for other
    /// kinds).
    pub fn ivf_trained(&self) -> bool {
        self.read().ivf.is_some()
    }

    /// Spreads later scans over `threads` threads (a benchmark compares
    /// thread counts on one gallery without building it again).
    pub fn set_threads(&mut self, threads: usize) -> Result<(), GalleryError> {
        if threads == 0 {
            return Err(GalleryError::Config("threads must be positive".into()));
        }
        self.pool = thread_pool(threads)?;
        self.config.threads = threads;
        Ok(())
    }

    pub fn config(&self) -> &GalleryConfig {
        &self.config
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn len(&self) -> usize {
        self.read().directory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.read().directory.slot(user_id).is_some()
    }

    /// Whether an enrolled user is in partition `key` already.
    pub fn in_partition(&self, user_id: &str, key: &str) -> bool {
        let rows = self.read();
        rows.directory
            .slot(user_id)
            .is_some_and(|slot| rows.directory.in_partition(slot, key))
    }

    /// Bytes held by the rows' codes, floats and bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        let rows = self.read();
        let chunk: usize = rows
            .chunks
            .iter()
            .map(|c| {
                c.codes.capacity()
                    + 4 * (c.scales.capacity() + c.floats.capacity())
                    + 8 * c.bits.capacity()
                    + c.alive.capacity()
                    + 2 * c.cells.capacity()
            })
            .sum();
        let ivf = rows.ivf.as_ref().map_or(0, ivf::Ivf::memory_bytes);
        let graph = self.graph.as_ref().map_or(0, |g| g.memory_usage());
        chunk + rows.directory.memory_bytes() + 4 * rows.free.capacity() + graph + ivf
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, vector: &[f32]) -> Result<(), GalleryError> {
        if vector.len() != self.config.dim {
            return Err(GalleryError::Dimension {
                got: vector.len(),
                want: self.config.dim,
            });
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return Err(GalleryError::NotFinite);
        }
        Ok(())
    }

    /// Adds or replaces a user's template, in the given partitions.
    /// Templates are expected L2-normalised, so a dot product is a cosine.
    pub fn insert(
        &self,
        user_id: &str,
        vector: &[f32],
        partitions: &[String],
    ) -> Result<(), GalleryError> {
        self.insert_many(&[(user_id, vector, partitions)])
    }

    /// Adds or replaces many templates under one write lock; the graph, if
    /// any, takes them on all cores (start-up and benchmarks load this way).
    pub fn insert_many(&self, batch: &[(&str, &[f32], &[String])]) -> Result<(), GalleryError> {
        let dim = self.config.dim;
        let words = self.words;
        // Codes are made before the lock is taken.
        let mut codes = vec![0i8; batch.len() * dim];
        let mut scales = Vec::with_capacity(batch.len());
        let mut bits = vec![0u64; batch.len() * words];
        let mut floats = Vec::with_capacity(batch.len() * dim);
        let mut keys = Vec::with_capacity(batch.len());
        for (i, (user_id, vector, partitions)) in batch.iter().enumerate() {
            self.check(vector)?;
            scales.push(kernels::quantise(
                vector,
                &mut codes[i * dim..(i + 1) * dim],
            ));
            kernels::sign_bits(
                &self.projection,
                vector,
                &mut bits[i * words..(i + 1) * words],
            );
            floats.extend_from_slice(vector);
            keys.push((*user_id, *partitions));
        }
        let encoded = self.encode(&codes, &scales, None);
        self.place(&Placed {
            keys: &keys,
            codes: &codes,
            scales: &scales,
            floats: Some(&floats),
            bits: &bits,
            encoded: encoded.as_ref(),
        })?;
        self.train_if_due()
    }

    /// Inverted-file codes of rows, made from their int8 codes (so that
    /// rows read back from a stream get the same), when the cells are
    /// trained.
    fn encode(&self, codes: &[i8], scales: &[f32], cells: Option<&[u32]>) -> Option<ivf::Encoded> {
        let coarse = Arc::clone(&self.read().ivf.as_ref()?.coarse);
        let vectors = dequantised(codes, scales, self.config.dim);
        Some(coarse.encode_all(&vectors, cells))
    }

    /// Trains the inverted file's cells once the gallery holds enough
    /// rows, then files every row. The sample is copied under the read
    /// lock and trained without a lock; filing takes the write lock.
    fn train_if_due(&self) -> Result<(), GalleryError> {
        let IndexKind::Ivf { cells, .. } = self.config.kind else {
            return Ok(());
        };
        let due =
            |rows: &Rows| rows.ivf.is_none() && rows.directory.len() >= cells * TRAIN_ROWS_PER_CELL;
        if !due(&self.read()) {
            return Ok(());
        }
        // Another thread trains them already: its rows will be filed.
        let Ok(_training) = self.training.try_lock() else {
            return Ok(());
        };
        let sample = {
            let rows = self.read();
            if !due(&rows) {
                return Ok(());
            }
            self.sample(&rows, cells)
        };
        let coarse = Arc::new(ivf::train(
            &sample,
            self.config.dim,
            cells,
            self.pool.as_ref(),
        ));
        drop(sample);
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if rows.ivf.is_none() {
            self.file_all(&mut rows, coarse);
        }
        Ok(())
    }

    /// Evenly spread live rows, dequantised, for k-means.
    fn sample(&self, rows: &Rows, cells: usize) -> Vec<f32> {
        let dim = self.config.dim;
        let live = rows.directory.len();
        let want = live.min(cells * ivf::SAMPLE_ROWS_PER_CELL);
        let step = (live / want.max(1)).max(1);
        let mut sample = Vec::with_capacity(want * dim);
        let live_slots = rows.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            (0..CHUNK_ROWS)
                .filter(|r| chunk.alive[*r])
                .map(move |r| (c, r))
        });
        for (c, r) in live_slots.step_by(step).take(want) {
            let chunk = &rows.chunks[c];
            let scale = chunk.scales[r];
            sample.extend(
                chunk.codes[r * dim..(r + 1) * dim]
                    .iter()
                    .map(|x| f32::from(*x) * scale),
            );
        }
        sample
    }

    /// Files every live row into a new inverted file of `coarse`.
    fn file_all(&self, rows: &mut Rows, coarse: Arc<ivf::Coarse>) {
        let dim = self.config.dim;
        let mut index = ivf::Ivf::new(coarse);
        for (c, chunk) in rows.chunks.iter_mut().enumerate() {
            let live: Vec<usize> = (0..CHUNK_ROWS).filter(|r| chunk.alive[*r]).collect();
            let mut codes = Vec::with_capacity(live.len() * dim);
            let mut scales = Vec::with_capacity(live.len());
            for r in &live {
                codes.extend_from_slice(&chunk.codes[r * dim..(r + 1) * dim]);
                scales.push(chunk.scales[*r]);
            }
            let vectors = dequantised(&codes, &scales, dim);
            let encoded = index.coarse.encode_all(&vectors, None);
            let words = ivf::words(dim);
            for (k, r) in live.iter().enumerate() {
                let cell = encoded.cells[k];
                chunk.cells[*r] = cell as u16;
                let slot = (c * CHUNK_ROWS + r) as u32;
                index.push(
                    cell,
                    slot,
                    &encoded.bits[k * words..(k + 1) * words],
                    encoded.factors[k],
                );
            }
        }
        rows.ivf = Some(index);
    }

    /// Puts rows whose codes are made into slots, under the write lock.
    fn place(&self, batch: &Placed<'_>) -> Result<(), GalleryError> {
        let dim = self.config.dim;
        let words = self.words;
        let n = batch.keys.len();
        assert_eq!(batch.codes.len(), n * dim);
        assert_eq!(batch.scales.len(), n);
        assert_eq!(batch.bits.len(), n * words);
        if let Some(floats) = batch.floats {
            assert_eq!(floats.len(), n * dim);
        } else if self.config.keep_floats || self.graph.is_some() {
            return Err(GalleryError::Rows(
                "rows without floats for a gallery that keeps them".into(),
            ));
        }
        if batch
            .keys
            .iter()
            .any(|(_, p)| p.len() > PARTITIONS_PER_ROW_MAX)
        {
            return Err(GalleryError::TooManyPartitions);
        }
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let mut placed = Vec::with_capacity(n);
        for (i, (user_id, partitions)) in batch.keys.iter().enumerate() {
            if let Some(old) = rows.directory.slot(user_id) {
                self.unlink(old)?;
                rows.release(old);
            }
            let slot = match rows.free.pop() {
                Some(slot) => slot,
                None => {
                    let slot = rows.directory.slots_used();
                    if slot >= ROWS_MAX {
                        return Err(GalleryError::Full);
                    }
                    if slot.is_multiple_of(CHUNK_ROWS) {
                        let floats = if self.config.keep_floats {
                            CHUNK_ROWS * dim
                        } else {
                            0
                        };
                        let cells = if matches!(self.config.kind, IndexKind::Ivf { .. }) {
                            CHUNK_ROWS
                        } else {
                            0
                        };
                        rows.chunks.push(Chunk {
                            codes: vec![0; CHUNK_ROWS * dim],
                            scales: vec![0.0; CHUNK_ROWS],
                            floats: vec![0.0; floats],
                            bits: vec![0; CHUNK_ROWS * words],
                            alive: vec![false; CHUNK_ROWS],
                            cells: vec![0; cells],
                        });
                    }
                    rows.directory.push_slot()
                }
            };
            let (c, r) = (slot as usize / CHUNK_ROWS, slot as usize % CHUNK_ROWS);
            let chunk = &mut rows.chunks[c];
            chunk.codes[r * dim..(r + 1) * dim]
                .copy_from_slice(&batch.codes[i * dim..(i + 1) * dim]);
            chunk.scales[r] = batch.scales[i];
            let vector = batch.floats.map(|f| &f[i * dim..(i + 1) * dim]);
            if let (true, Some(vector)) = (self.config.keep_floats, vector) {
                chunk.floats[r * dim..(r + 1) * dim].copy_from_slice(vector);
            }
            chunk.bits[r * words..(r + 1) * words]
                .copy_from_slice(&batch.bits[i * words..(i + 1) * words]);
            chunk.alive[r] = true;
            rows.directory.insert(slot, user_id, partitions);
            if let Some(vector) = vector {
                placed.push((slot, vector));
            }
            self.file(&mut rows, batch, i, slot);
        }
        if let Some(graph) = &self.graph {
            let needed = graph.size() + placed.len();
            if needed > graph.capacity() {
                let threads = rayon::current_num_threads().max(self.config.threads);
                graph
                    .reserve_capacity_and_threads(needed.max(2 * graph.capacity()), threads)
                    .map_err(|e| GalleryError::Graph(e.to_string()))?;
            }
            let add = |(slot, vector): &(u32, &[f32])| {
                graph
                    .add(u64::from(*slot), vector)
                    .map_err(|e| GalleryError::Graph(e.to_string()))
            };
            if placed.len() > 1 {
                placed.par_iter().try_for_each(add)?;
            } else {
                placed.iter().try_for_each(add)?;
            }
        }
        drop(rows);
        Ok(())
    }

    /// Files row `i` of `batch`, placed in `slot`, in the inverted file,
    /// with the batch's codes when they were made for its cells.
    fn file(&self, rows: &mut Rows, batch: &Placed<'_>, i: usize, slot: u32) {
        let dim = self.config.dim;
        let Some(index) = rows.ivf.as_mut() else {
            return;
        };
        let words = ivf::words(dim);
        let (c, r) = (slot as usize / CHUNK_ROWS, slot as usize % CHUNK_ROWS);
        let (cell, bits, factor) = match batch.encoded {
            Some(e) if Arc::ptr_eq(&e.coarse, &index.coarse) => (
                e.cells[i],
                e.bits[i * words..(i + 1) * words].to_vec(),
                e.factors[i],
            ),
            _ => {
                let x = dequantised(
                    &batch.codes[i * dim..(i + 1) * dim],
                    &batch.scales[i..=i],
                    dim,
                );
                let mut cell = [0u32];
                index.coarse.assign(&x, &mut cell);
                let mut bits = vec![0u64; words];
                let factor = index.coarse.encode(cell[0], &x, &mut bits);
                (cell[0], bits, factor)
            }
        };
        rows.chunks[c].cells[r] = cell as u16;
        index.push(cell, slot, &bits, factor);
    }

    /// Takes a slot out of the graph, if there is one.
    fn unlink(&self, slot: u32) -> Result<(), GalleryError> {
        if let Some(graph) = &self.graph {
            graph
                .remove(u64::from(slot))
                .map_err(|e| GalleryError::Graph(e.to_string()))?;
        }
        Ok(())
    }

    /// Adds an enrolled user to one more partition (say, a merchant's
    /// regulars after a payment there). False if the user is not enrolled
    /// or already in it.
    pub fn join_partition(&self, user_id: &str, key: &str) -> Result<bool, GalleryError> {
        // Every approved payment asks; a regular is already in, and the
        // answer then needs no write lock that would stall searches.
        if !self.contains(user_id) || self.in_partition(user_id, key) {
            return Ok(false);
        }
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = rows.directory.slot(user_id) else {
            return Ok(false);
        };
        if rows.directory.in_partition(slot, key) {
            return Ok(false);
        }
        if rows.directory.partition_count(slot) >= PARTITIONS_PER_ROW_MAX {
            return Err(GalleryError::TooManyPartitions);
        }
        Ok(rows.directory.add_partition(slot, key))
    }

    /// Makes room for `rows` more rows in the bookkeeping.
    fn reserve(&self, rows: usize) {
        let mut all = self.rows.write().unwrap_or_else(|e| e.into_inner());
        all.directory.reserve(rows);
    }

    /// Empties the gallery (one half-filled from a stream that failed is
    /// emptied this way before it is filled from the store).
    pub fn clear(&self) -> Result<(), GalleryError> {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        for slot in rows.directory.live_slots() {
            self.unlink(slot)?;
        }
        *rows = Rows::default();
        Ok(())
    }

    /// Removes a user at once. False if they were not in the gallery.
    pub fn remove(&self, user_id: &str) -> Result<bool, GalleryError> {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        match rows.directory.slot(user_id) {
            Some(slot) => {
                self.unlink(slot)?;
                rows.release(slot);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The best candidates at or above `floor`, best first, at most
    /// `limit` (and [`CANDIDATES_MAX`]).
    pub fn search(
        &self,
        probe: &[f32],
        scope: Scope<'_>,
        floor: f32,
        limit: usize,
    ) -> Result<Vec<Candidate>, GalleryError> {
        self.check(probe)?;
        let limit = limit.min(CANDIDATES_MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut code = vec![0i8; self.config.dim];
        let scale = kernels::quantise(probe, &mut code);
        let mut bits = vec![0u64; self.words];
        kernels::sign_bits(&self.projection, probe, &mut bits);
        let probe = Probe {
            floats: probe.to_vec(),
            code,
            scale,
            bits,
        };
        let rows = self.read();
        let scored = match scope {
            Scope::Partition(key) => {
                let slots = rows.directory.members(key);
                let ranked = unbounded(slots.iter().copied());
                let near = self.narrow(&rows, &probe, ranked, limit, floor);
                self.score_ranked(&rows, &probe, near, limit, floor)
            }
            Scope::All => {
                let ranked: Vec<(f32, u32)> = match self.config.kind {
                    IndexKind::Ivf {
                        probes, candidates, ..
                    } if rows.ivf.is_some() => {
                        let depth = IvfDepth {
                            probes,
                            candidates,
                            k: limit.min(candidates),
                            floor,
                        };
                        self.scan_ivf(&rows, &probe, depth)
                    }
                    IndexKind::Exact | IndexKind::Ivf { .. } => {
                        unbounded(self.scan_i8(&rows, &probe))
                    }
                    IndexKind::Prefiltered { candidates, .. } => {
                        unbounded(self.scan_bits(&rows, &probe, candidates))
                    }
                    IndexKind::Hnsw { candidates, .. } => {
                        unbounded(self.graph_near(&probe, candidates)?)
                    }
                };
                let near = self.narrow(&rows, &probe, ranked, limit, floor);
                self.score_ranked(&rows, &probe, near, limit, floor)
            }
        };
        let mut scored: Vec<(u32, f32)> = scored
            .into_iter()
            .filter(|(_, score)| *score >= floor)
            .collect();
        scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        // Ids are copied for the first `limit` and those tied with the last.
        if let Some(&(_, last)) = scored.get(limit.saturating_sub(1)) {
            let tied = scored[limit..]
                .iter()
                .take_while(|(_, s)| *s == last)
                .count();
            scored.truncate(limit + tied);
        }
        let mut found: Vec<Candidate> = scored
            .into_iter()
            .map(|(slot, score)| Candidate {
                user_id: rows.directory.id(slot).to_owned(),
                score,
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.user_id.cmp(&b.user_id)));
        found.truncate(limit);
        Ok(found)
    }

    /// Runs `work` on each chunk, on the pool when there is one.
    fn per_chunk<T, F>(&self, rows: &Rows, work: F) -> Vec<T>
    where
        T: Send,
        F: Fn(usize, &Chunk) -> T + Sync + Send,
    {
        match &self.pool {
            Some(pool) => pool.install(|| {
                rows.chunks
                    .par_iter()
                    .enumerate()
                    .map(|(c, chunk)| work(c, chunk))
                    .collect()
            }),
            None => rows
                .chunks
                .iter()
                .enumerate()
                .map(|(c, chunk)| work(c, chunk))
                .collect(),
        }
    }

    /// The `rerank` slots with the best int8 scores, over the whole gallery.
    fn scan_i8(&self, rows: &Rows, probe: &Probe) -> Vec<u32> {
        let keep = self.config.rerank;
        let dim = self.config.dim;
        let per_chunk = self.per_chunk(rows, |c, chunk| {
            let mut dots = vec![0i32; CHUNK_ROWS];
            self.kernels
                .dots_i8(&chunk.codes, dim, &probe.code, &mut dots);
            let mut best = TopK::new(keep);
            for (r, dot) in dots.iter().enumerate() {
                if chunk.alive[r] {
                    best.push(*dot as f32 * chunk.scales[r], (c * CHUNK_ROWS + r) as u32);
                }
            }
            best
        });
        merge(per_chunk, keep)
    }

    /// The `keep` slots closest by Hamming distance. Distances are small
    /// integers, so each chunk keeps its `keep` closest by a histogram of
    /// distances (one pass, no heap), and the chunks' picks are cut the
    /// same way.
    fn scan_bits(&self, rows: &Rows, probe: &Probe, keep: usize) -> Vec<u32> {
        let words = self.words;
        let per_chunk = self.per_chunk(rows, |c, chunk| {
            let mut distances = vec![0u32; CHUNK_ROWS];
            self.kernels
                .hammings(&chunk.bits, words, &probe.bits, &mut distances);
            let live = distances
                .iter()
                .enumerate()
                .filter(|(r, _)| chunk.alive[*r])
                .map(|(r, d)| (*d, (c * CHUNK_ROWS + r) as u32));
            closest(live, keep, words * 64)
        });
        let all = per_chunk.into_iter().flatten();
        closest(all, keep, words * 64)
            .into_iter()
            .map(|(_, slot)| slot)
            .collect()
    }

    /// The rows of the `probes` cells nearest the probe that may be among
    /// its best `k` at or above `floor`, judged by their estimates' error
    /// bounds; at most `candidates`. Two threads or more split the cells
    /// when there are enough rows to scan to pay for the hand-over.
    fn scan_ivf(&self, rows: &Rows, probe: &Probe, depth: IvfDepth) -> Vec<(f32, u32)> {
        let Some(index) = rows.ivf.as_ref() else {
            return Vec::new();
        };
        let coarse = &index.coarse;
        let mut scores = vec![0f32; coarse.cells];
        coarse.scores(self.kernels, &probe.floats, &mut scores);
        let near = coarse.nearest_cells(&scores, depth.probes);
        let table = ivf::Table::new(&probe.floats);
        let groups = ivf::groups(ivf::words(self.config.dim));
        let scan = |cells: &[u32]| {
            let mut shortlist = ivf::Shortlist::new(depth.k, depth.candidates, depth.floor);
            let mut sums = Vec::new();
            for &cell in cells {
                let list = &index.lists[cell as usize];
                sums.resize(list.slots.len().next_multiple_of(ivf::BLOCK_ROWS), 0);
                self.kernels
                    .fastscan(&table.entries, &list.blocks, groups, &mut sums);
                shortlist.scan(list, &sums, scores[cell as usize], &table);
            }
            shortlist
        };
        let total: usize = near
            .iter()
            .map(|c| index.lists[*c as usize].slots.len())
            .sum();
        let shortlist = match &self.pool {
            Some(pool) if total >= PARALLEL_SCAN_ROWS_MIN => {
                let parts = split_by_rows(&near, index, self.config.threads);
                let found = pool.install(|| parts.par_iter().map(|p| scan(p)).collect());
                ivf::Shortlist::merge(found)
            }
            _ => Some(scan(&near)),
        };
        shortlist.map_or_else(Vec::new, ivf::Shortlist::into_kept)
    }

    /// The graph's `candidates` nearest slots.
    fn graph_near(&self, probe: &Probe, candidates: usize) -> Result<Vec<u32>, GalleryError> {
        let Some(graph) = &self.graph else {
            return Ok(Vec::new());
        };
        let found = graph
            .search(&probe.floats, candidates)
            .map_err(|e| GalleryError::Graph(e.to_string()))?;
        Ok(found
            .keys
            .into_iter()
            .filter_map(|k| u32::try_from(k).ok())
            .collect())
    }

    /// The rows of `ranked` (upper bounds of their scores, taken highest
    /// first) that may be among the best `k` at or above `floor`, judged by
    /// their int8 scores and the most quantisation can move them: int8
    /// score and bound. Rows are
    /// taken in order until the next one's bound cannot reach the `k`-th
    /// best int8 lower bound, so a genuine probe reads a few rows' codes.
    fn narrow(
        &self,
        rows: &Rows,
        probe: &Probe,
        ranked: Vec<(f32, u32)>,
        k: usize,
        floor: f32,
    ) -> Vec<(f32, f32, u32)> {
        let dim = self.config.dim;
        let half_root_dim = 0.5 * (dim as f32).sqrt();
        let probe_norm = kernels::dot_f32(&probe.floats, &probe.floats).sqrt();
        let (mut dot, mut norm2) = ([0i32; 1], [0i32; 1]);
        let mut lows = TopK::new(k);
        let mut scored = Vec::new();
        // A heap, not a sorted list: the pass usually stops after a few
        // rows, and sorting thousands kept for a hard probe cost more
        // than the pass.
        let mut ranked: BinaryHeap<(Score, u32)> = ranked
            .into_iter()
            .map(|(upper, slot)| (Score(upper), slot))
            .collect();
        while let Some((Score(upper), slot)) = ranked.pop() {
            if upper < floor.max(lows.kth()) {
                break;
            }
            let (c, r) = (slot as usize / CHUNK_ROWS, slot as usize % CHUNK_ROWS);
            let chunk = &rows.chunks[c];
            if !chunk.alive[r] {
                continue;
            }
            let code = &chunk.codes[r * dim..(r + 1) * dim];
            self.kernels.dots_i8(code, dim, &probe.code, &mut dot);
            self.kernels.dots_i8(code, dim, code, &mut norm2);
            let scale = chunk.scales[r];
            // With x = s_x (c_x + e_x) and q = s_q (c_q + e_q), every |e_i|
            // at most a half, Cauchy-Schwarz bounds what the errors add to
            // s_x s_q <c_x, c_q>.
            let bound =
                half_root_dim * scale * (probe_norm + probe.scale * (norm2[0] as f32).sqrt());
            let score = dot[0] as f32 * scale * probe.scale;
            lows.push(score - bound, slot);
            scored.push((score, bound, slot));
        }
        let threshold = floor.max(lows.kth());
        scored.retain(|(score, bound, _)| score + bound >= threshold);
        scored
    }

    /// Final scores of the rows `narrow` left: float when the floats are
    /// kept, taken by int8 upper bound, highest first, until the next one
    /// cannot reach the `k`-th best float score; else the int8 scores.
    fn score_ranked(
        &self,
        rows: &Rows,
        probe: &Probe,
        mut near: Vec<(f32, f32, u32)>,
        k: usize,
        floor: f32,
    ) -> Vec<(u32, f32)> {
        if !self.config.keep_floats {
            return near
                .into_iter()
                .map(|(score, _, slot)| (slot, score))
                .collect();
        }
        near.sort_unstable_by(|a, b| (b.0 + b.1).total_cmp(&(a.0 + a.1)));
        let dim = self.config.dim;
        let mut best = TopK::new(k);
        let mut scored = Vec::new();
        for (score, bound, slot) in near {
            if score + bound < floor.max(best.kth()) {
                break;
            }
            let (c, r) = (slot as usize / CHUNK_ROWS, slot as usize % CHUNK_ROWS);
            let exact = kernels::dot_f32(
                &rows.chunks[c].floats[r * dim..(r + 1) * dim],
                &probe.floats,
            );
            best.push(exact, slot);
            scored.push((slot, exact));
        }
        scored
    }
}

impl Rows {
    /// Frees a slot: no search sees it from now on, and the next insert
    /// may reuse it.
    fn release(&mut self, slot: u32) {
        let (c, r) = (slot as usize / CHUNK_ROWS, slot as usize % CHUNK_ROWS);
        self.chunks[c].alive[r] = false;
        if let Some(index) = self.ivf.as_mut() {
            let filed = index.remove(u32::from(self.chunks[c].cells[r]), slot);
            assert!(filed, "a live row missing from its cell");
        }
        self.directory.remove(slot);
        self.free.push(slot);
    }
}

/// Fewer rows to scan than this are scanned on one thread: splitting
/// costs more than it saves (at a million rows, 120,000 rows to scan took
/// longer on two threads than on one; the scan is near memory speed).
const PARALLEL_SCAN_ROWS_MIN: usize = 262_144;

fn check_ivf(
    dim: usize,
    cells: usize,
    probes: usize,
    candidates: usize,
    rerank: usize,
) -> Result<(), GalleryError> {
    if dim > ivf::IVF_DIM_MAX {
        return Err(GalleryError::Config(format!(
            "an inverted file takes templates of at most {} values",
            ivf::IVF_DIM_MAX
        )));
    }
    if !(1..=CELLS_MAX).contains(&cells) || !(1..=cells).contains(&probes) {
        return Err(GalleryError::Config(format!(
            "ivf cells must be 1 to {CELLS_MAX}, and probes 1 to cells"
        )));
    }
    if candidates < rerank || candidates > IVF_CANDIDATES_MAX {
        return Err(GalleryError::Config(format!(
            "ivf candidates must be `rerank` to {IVF_CANDIDATES_MAX}"
        )));
    }
    Ok(())
}

/// Int8 codes back to floats.
fn dequantised(codes: &[i8], scales: &[f32], dim: usize) -> Vec<f32> {
    assert_eq!(codes.len(), scales.len() * dim);
    codes
        .chunks_exact(dim)
        .zip(scales)
        .flat_map(|(code, scale)| code.iter().map(move |x| f32::from(*x) * scale))
        .collect()
}

/// `cells` dealt to `parts` parts of about equal rows, each cell to the part
/// with the fewest so far: every part starts with cells near the probe,
/// whose rows raise its shortlist's threshold early.
fn split_by_rows(cells: &[u32], index: &ivf::Ivf, parts: usize) -> Vec<Vec<u32>> {
    let parts = parts.max(1);
    let mut out = vec![Vec::new(); parts];
    let mut filled = vec![0usize; parts];
    for &cell in cells {
        let least = (0..parts).min_by_key(|p| filled[*p]).unwrap_or(0);
        filled[least] += index.lists[cell as usize].slots.len();
        out[least].push(cell);
    }
    out
}

/// A scan's own pool; one thread scans on the caller's.
fn thread_pool(threads: usize) -> Result<Option<rayon::ThreadPool>, GalleryError> {
    if threads <= 1 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gallery-{i}"))
        .build()
        .map(Some)
        .map_err(|e| GalleryError::Config(e.to_string()))
}

/// The `k` best (score, slot) pairs seen, kept in a min-heap of the best.
/// Its `k`-th is a search's threshold when the scores are lower bounds: a
/// row whose upper bound is below it cannot be among the best `k`.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<(Score, u32)>>,
}

/// Rows with no bound on their score yet: every one is looked at.
fn unbounded(slots: impl IntoIterator<Item = u32>) -> Vec<(f32, u32)> {
    slots
        .into_iter()
        .map(|slot| (f32::INFINITY, slot))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        assert!(k > 0);
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub(crate) fn push(&mut self, score: f32, slot: u32) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse((Score(score), slot)));
        } else if let Some(Reverse((worst, _))) = self.heap.peek()
            && score > worst.0
        {
            self.heap.pop();
            self.heap.push(Reverse((Score(score), slot)));
        }
    }

    /// The `k`-th best score; minus infinity until there are `k`.
    pub(crate) fn kth(&self) -> f32 {
        match self.heap.peek() {
            Some(Reverse((worst, _))) if self.heap.len() == self.k => worst.0,
            _ => f32::NEG_INFINITY,
        }
    }

    /// Takes in the pairs of another.
    pub(crate) fn absorb(&mut self, other: TopK) {
        for Reverse((score, slot)) in other.heap {
            self.push(score.0, slot);
        }
    }

    fn into_slots(self) -> Vec<u32> {
        self.heap
            .into_iter()
            .map(|Reverse((_, slot))| slot)
            .collect()
    }
}

/// The `keep` pairs of smallest distance (at most `bits`), ties cut in
/// the order given: a counting selection over the distance histogram.
fn closest(
    pairs: impl Iterator<Item = (u32, u32)> + Clone,
    keep: usize,
    bits: usize,
) -> Vec<(u32, u32)> {
    let mut histogram = vec![0usize; bits + 1];
    for (d, _) in pairs.clone() {
        histogram[(d as usize).min(bits)] += 1;
    }
    let mut cutoff = bits;
    let mut below = 0;
    for (d, count) in histogram.iter().enumerate() {
        if below + count >= keep {
            cutoff = d;
            break;
        }
        below += count;
    }
    // All strictly closer than the cutoff, then as many at it as fit.
    let mut at_cutoff = keep.saturating_sub(below);
    let mut out = Vec::with_capacity(keep);
    for (d, slot) in pairs {
        let d_usize = (d as usize).min(bits);
        if d_usize < cutoff {
            out.push((d, slot));
        } else if d_usize == cutoff && at_cutoff > 0 {
            at_cutoff -= 1;
            out.push((d, slot));
        }
    }
    out
}

fn merge(parts: Vec<TopK>, k: usize) -> Vec<u32> {
    let mut all = TopK::new(k);
    for part in parts {
        all.absorb(part);
    }
    all.into_slots()
}

#[cfg(test)]
mod tests;

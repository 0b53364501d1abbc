//! The inverted file of [`IndexKind::Ivf`](crate::IndexKind::Ivf): k-means
//! cells over the templates, and in each cell a 1-bit code per row with
//! the one factor that turns it into an estimate of the row's dot product
//! with any probe (RaBitQ, Gao and Long, SIGMOD 2024).
//!
//! A row `x` of cell `c` has the residual `r = x - c`. Its code is the
//! signs of `r`, the unit vector `x̄ = sign(r) / sqrt(d)`. For a probe `q`,
//! `<x, q> = <c, q> + |r| <r̂, q>`, and RaBitQ's estimator of `<r̂, q>` is
//! `<x̄, q> / <x̄, r̂>`: unbiased when the coordinates are in a random basis,
//! with an error of about `sqrt(1 - o²) / o / sqrt(d - 1)` times the part of
//! `q` orthogonal to `r̂` (`o = <x̄, r̂>`, about 0.8). Templates are in a
//! random basis already: every deployment rotates them by a secret random
//! orthogonal matrix (facepay-template-transform). Folded together, the
//! estimate is `<c, q> + f (2 <b, q> - Σq)` with `b` the code's 0/1 bits and
//! `f = |r|² / Σ|r_i|`, one float stored per row.
//!
//! Each row also keeps its error scale `|r| sqrt(1 - o²) / o / sqrt(d - 1)`:
//! times [`UPPER_SIGMAS`] or [`LOWER_SIGMAS`] and `|q|`, it bounds the
//! estimate's error but
//! for a vanishing share of rows. A search keeps only the rows whose upper
//! bound reaches both its floor and the best lower bounds so far
//! ([`Shortlist`]), so a genuine probe re-scores a handful of rows instead
//! of a fixed few hundred.
//!
//! `<b, q>` is read from a table made once per probe: for each group of 4
//! dimensions, the sums of `q` over its 16 subsets, quantised to a byte.
//! The codes of a cell are stored in blocks of 32 rows, group by group, so
//! that one AVX2 shuffle looks up a group of 32 rows at once ("fast scan",
//! as in FAISS and in RaBitQ's own code). Codes and cells are made from
//! the row's int8 code, so a gallery read back from its stream holds the
//! same codes as the one that wrote it.
//!
//! The cells are trained once, by k-means over the rows present when the
//! gallery first holds [`TRAIN_ROWS_PER_CELL`] rows a cell; until then a
//! search scans every row. The products of k-means and of the bulk
//! assignment are matrix products (`matrixmultiply`).

use rayon::prelude::*;

use crate::kernels;

/// Cells an inverted file has at most.
pub const CELLS_MAX: usize = 65_536;
/// Rows a search may keep from the codes for the int8 pass, at most.
pub const IVF_CANDIDATES_MAX: usize = 65_536;
/// The cells are trained when the gallery holds this many rows per cell
/// (fewer give cells fitted to too few points).
pub const TRAIN_ROWS_PER_CELL: usize = 32;
/// Rows k-means runs over at most, per cell.
pub(crate) const SAMPLE_ROWS_PER_CELL: usize = 64;
/// Lloyd iterations: on face templates the assignment barely changes
/// after a few.
const KMEANS_ITERATIONS: usize = 8;
/// Rows per matrix product when assigning.
const ASSIGN_BLOCK_ROWS: usize = 256;
/// Rows of a block of codes.
pub(crate) const BLOCK_ROWS: usize = 32;
/// Entries of one group's table (the subsets of 4 dimensions).
const GROUP_VALUES: usize = 16;
/// Standard deviations of the estimator's error an upper bound allows: a
/// row is dropped when its upper bound misses the floor or the best lower
/// bounds, so a row scoring within two deviations (about 0.13) of the
/// floor is lost if its estimate errs down by more, one time in 44.
/// Genuine pairs score 0.76 ± 0.07, so that band holds almost none of
/// them, and `facepay bench gallery` lost no genuine query to a bound; at
/// three the ivf kind answered 40 % fewer queries a second at 100,000.
pub const UPPER_SIGMAS: f32 = 2.0;
/// Standard deviations a lower bound allows. A lower bound only raises the
/// threshold; passing the best row's upper bound takes both errors
/// together, four deviations apart.
pub const LOWER_SIGMAS: f32 = 2.0;
/// The largest dimension an inverted file takes: a row's sum of byte
/// entries (one per group of 4) must fit in 16 bits.
pub const IVF_DIM_MAX: usize = 1_024;

/// The trained cells: centroids and what a search needs of them.
pub(crate) struct Coarse {
    pub dim: usize,
    pub cells: usize,
    /// `cells` × `dim`.
    pub centroids: Vec<f32>,
    /// `|c|² / 2` per cell: nearest by distance is the largest
    /// `<x, c> - |c|² / 2`.
    pub half_norms: Vec<f32>,
}

/// The rows of one cell: slots, factors, error scales and codes, in blocks of
/// [`BLOCK_ROWS`]: per group of 4 dimensions, 16 bytes whose low nibbles
/// are rows 0 to 15 and high nibbles rows 16 to 31.
#[derive(Default)]
pub(crate) struct List {
    pub slots: Vec<u32>,
    pub factors: Vec<f32>,
    pub errors: Vec<f32>,
    pub blocks: Vec<u8>,
}

/// Groups of 4 dimensions in a code of `words` words.
pub(crate) fn groups(words: usize) -> usize {
    words * 16
}

impl List {
    fn set_code(&mut self, groups: usize, k: usize, code: &[u64]) {
        let (block, j) = (k / BLOCK_ROWS, k % BLOCK_ROWS);
        let bytes = &mut self.blocks[block * groups * 16..(block + 1) * groups * 16];
        for p in 0..groups {
            let nibble = ((code[p / 16] >> (4 * (p % 16))) & 0xf) as u8;
            let byte = &mut bytes[p * 16 + j % 16];
            *byte = if j < 16 {
                (*byte & 0xf0) | nibble
            } else {
                (*byte & 0x0f) | (nibble << 4)
            };
        }
    }

    fn code(&self, groups: usize, k: usize, code: &mut [u64]) {
        let (block, j) = (k / BLOCK_ROWS, k % BLOCK_ROWS);
        let bytes = &self.blocks[block * groups * 16..(block + 1) * groups * 16];
        code.fill(0);
        for p in 0..groups {
            let byte = bytes[p * 16 + j % 16];
            let nibble = if j < 16 { byte & 0xf } else { byte >> 4 };
            code[p / 16] |= u64::from(nibble) << (4 * (p % 16));
        }
    }
}

/// The inverted file: cells and their lists.
pub(crate) struct Ivf {
    pub coarse: std::sync::Arc<Coarse>,
    pub lists: Vec<List>,
}

/// Codes made outside the lock for a batch of rows.
pub(crate) struct Encoded {
    pub coarse: std::sync::Arc<Coarse>,
    pub cells: Vec<u32>,
    pub bits: Vec<u64>,
    pub factors: Vec<Factor>,
}

/// What turns a row's code into an estimate, and its error scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Factor {
    /// `f = |r|² / Σ|r_i|`.
    pub estimate: f32,
    /// `|r| sqrt(1 - o²) / o / sqrt(d - 1)`, `o = Σ|r_i| / (sqrt(d) |r|)`.
    pub error: f32,
}

pub(crate) fn words(dim: usize) -> usize {
    dim.div_ceil(64)
}

impl Coarse {
    pub fn new(dim: usize, centroids: Vec<f32>) -> Self {
        assert!(dim > 0 && centroids.len().is_multiple_of(dim));
        let cells = centroids.len() / dim;
        assert!((1..=CELLS_MAX).contains(&cells));
        let half_norms = centroids
            .chunks_exact(dim)
            .map(|c| kernels::dot_f32(c, c) / 2.0)
            .collect();
        Self {
            dim,
            cells,
            centroids,
            half_norms,
        }
    }

    /// `out[r * cells + c]` = `<row r, centroid c>` for rows of `vectors`.
    fn products(&self, vectors: &[f32], out: &mut [f32]) {
        let rows = vectors.len() / self.dim;
        assert_eq!(vectors.len(), rows * self.dim);
        assert_eq!(out.len(), rows * self.cells);
        if rows == 0 {
            return;
        }
        let (dim, cells) = (self.dim as isize, self.cells as isize);
        // SAFETY: A is `rows` × `dim` row-major in `vectors`, B is the
        // centroids read as `dim` × `cells` (column stride `dim`), C is
        // `rows` × `cells` row-major in `out`; the lengths are asserted
        // above, and `out` does not alias the inputs.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                self.dim,
                self.cells,
                1.0,
                vectors.as_ptr(),
                dim,
                1,
                self.centroids.as_ptr(),
                1,
                dim,
                0.0,
                out.as_mut_ptr(),
                cells,
                1,
            );
        }
    }

    /// The nearest cell of each row of `vectors`.
    pub fn assign(&self, vectors: &[f32], out: &mut [u32]) {
        assert_eq!(vectors.len(), out.len() * self.dim);
        let mut products = vec![0f32; ASSIGN_BLOCK_ROWS.min(out.len()) * self.cells];
        for (block, cells) in vectors
            .chunks(ASSIGN_BLOCK_ROWS * self.dim)
            .zip(out.chunks_mut(ASSIGN_BLOCK_ROWS))
        {
            let products = &mut products[..cells.len() * self.cells];
            self.products(block, products);
            for (row, cell) in products.chunks_exact(self.cells).zip(cells.iter_mut()) {
                *cell = self.nearest(row);
            }
        }
    }

    /// The cell whose `product - |c|²/2` is largest.
    fn nearest(&self, products: &[f32]) -> u32 {
        let mut best = (f32::NEG_INFINITY, 0u32);
        for (c, (p, h)) in products.iter().zip(&self.half_norms).enumerate() {
            let key = p - h;
            if key > best.0 {
                best = (key, c as u32);
            }
        }
        best.1
    }

    /// `<q, c>` for every cell.
    pub fn scores(&self, kernels: kernels::Kernels, q: &[f32], out: &mut [f32]) {
        kernels.dots_f32(&self.centroids, self.dim, q, out);
    }

    /// The `probes` cells nearest `q`, nearest first, given its `scores`.
    pub fn nearest_cells(&self, scores: &[f32], probes: usize) -> Vec<u32> {
        let mut keyed: Vec<(f32, u32)> = scores
            .iter()
            .zip(&self.half_norms)
            .enumerate()
            .map(|(c, (s, h))| (s - h, c as u32))
            .collect();
        let probes = probes.min(keyed.len());
        if probes < keyed.len() {
            keyed.select_nth_unstable_by(probes, |a, b| b.0.total_cmp(&a.0));
            keyed.truncate(probes);
        }
        // Nearest first: the rows most likely to be the best come early
        // and raise the shortlist's threshold for the rest.
        keyed.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        keyed.into_iter().map(|(_, c)| c).collect()
    }

    /// The code and factor of `x` in `cell`; writes `words` words. `x` is
    /// a row's int8 code dequantised: the row itself is within half a step
    /// of it in every coordinate, which moves a score by at most
    /// `sqrt(d) step / 2` times `|q|`; that much is added to the error
    /// scale, divided by the smaller multiple a search applies, so that
    /// bounds on `x`'s estimate hold for the row.
    pub fn encode(&self, cell: u32, x: &[f32], bits: &mut [u64]) -> Factor {
        let centroid = &self.centroids[cell as usize * self.dim..][..self.dim];
        assert_eq!(bits.len(), words(self.dim));
        // Without branches and with a sum per lane, the compiler keeps this
        // in vector registers: a restart encodes every row again, and the
        // loop with a branch per coordinate was most of a restart's reading.
        for (word, (xs, cs)) in bits.iter_mut().zip(x.chunks(64).zip(centroid.chunks(64))) {
            *word = xs
                .iter()
                .zip(cs)
                .enumerate()
                .fold(0u64, |w, (i, (v, c))| w | (u64::from(v - c > 0.0) << i));
        }
        const LANES: usize = 8;
        let (mut norm2, mut l1, mut most) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        let (xs, cs) = (x.chunks_exact(LANES), centroid.chunks_exact(LANES));
        let tail = xs.remainder().iter().zip(cs.remainder());
        let mut add = |k: usize, v: f32, c: f32| {
            let r = v - c;
            norm2[k] += r * r;
            l1[k] += r.abs();
            most[k] = most[k].max(v.abs());
        };
        for (xs, cs) in xs.zip(cs) {
            for k in 0..LANES {
                add(k, xs[k], cs[k]);
            }
        }
        for (k, (v, c)) in tail.enumerate() {
            add(k, *v, *c);
        }
        let norm2: f32 = norm2.iter().sum();
        let l1: f32 = l1.iter().sum();
        let most = most.iter().fold(0f32, |a, b| a.max(*b));
        let dim = self.dim as f32;
        let rounding = dim.sqrt() * most / 127.0 / 2.0 / LOWER_SIGMAS;
        if l1 <= 0.0 {
            return Factor {
                estimate: 0.0,
                error: rounding,
            };
        }
        let norm = norm2.sqrt();
        let o = (l1 / (dim.sqrt() * norm)).min(1.0);
        Factor {
            estimate: norm2 / l1,
            error: norm * (1.0 - o * o).sqrt() / o / (dim - 1.0).max(1.0).sqrt() + rounding,
        }
    }

    /// Cells and codes of `vectors`; `cells` given (as a stream stores
    /// them) or assigned here.
    pub fn encode_all(
        self: &std::sync::Arc<Self>,
        vectors: &[f32],
        cells: Option<&[u32]>,
    ) -> Encoded {
        let rows = vectors.len() / self.dim;
        let words = words(self.dim);
        let cells = match cells {
            Some(cells) => cells.to_vec(),
            None => {
                let mut out = vec![0u32; rows];
                self.assign(vectors, &mut out);
                out
            }
        };
        let mut bits = vec![0u64; rows * words];
        let factors = vectors
            .chunks_exact(self.dim)
            .zip(&cells)
            .zip(bits.chunks_exact_mut(words))
            .map(|((x, cell), bits)| self.encode(*cell, x, bits))
            .collect();
        Encoded {
            coarse: std::sync::Arc::clone(self),
            cells,
            bits,
            factors,
        }
    }
}

/// K-means over `sample` (rows of `dim`): `cells` centroids seeded with
/// evenly spread rows, [`KMEANS_ITERATIONS`] Lloyd steps, an emptied cell
/// re-seeded with a row of the largest. The assignment step (a matrix
/// product) runs on `pool`. Hand-written because the crates that have it
/// bring a linear-algebra stack each, for a loop this short.
pub(crate) fn train(
    sample: &[f32],
    dim: usize,
    cells: usize,
    pool: Option<&rayon::ThreadPool>,
) -> Coarse {
    let rows = sample.len() / dim;
    assert!(rows >= cells && cells > 0);
    let step = rows / cells;
    let mut centroids: Vec<f32> = (0..cells)
        .flat_map(|c| sample[c * step * dim..][..dim].iter().copied())
        .collect();
    let mut assigned = vec![0u32; rows];
    for _ in 0..KMEANS_ITERATIONS {
        let coarse = Coarse::new(dim, centroids);
        let work = |(block, out): (&[f32], &mut [u32])| coarse.assign(block, out);
        let blocks = sample
            .chunks(ASSIGN_BLOCK_ROWS * dim)
            .zip(assigned.chunks_mut(ASSIGN_BLOCK_ROWS));
        match pool {
            Some(pool) => {
                pool.install(|| blocks.collect::<Vec<_>>().into_par_iter().for_each(work))
            }
            None => blocks.for_each(work),
        }
        centroids = coarse.centroids;
        let mut sums = vec![0f64; cells * dim];
        let mut counts = vec![0usize; cells];
        for (x, cell) in sample.chunks_exact(dim).zip(&assigned) {
            let c = *cell as usize;
            counts[c] += 1;
            for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *s += f64::from(*v);
            }
        }
        for c in 0..cells {
            if counts[c] == 0 {
                reseed(sample, dim, &assigned, &counts, c, &mut centroids);
                continue;
            }
            let n = counts[c] as f64;
            for (out, s) in centroids[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&sums[c * dim..])
            {
                *out = (s / n) as f32;
            }
        }
    }
    Coarse::new(dim, centroids)
}

/// An empty cell takes the first row of the largest cell, nudged so the
/// two part ways at the next step.
fn reseed(
    sample: &[f32],
    dim: usize,
    assigned: &[u32],
    counts: &[usize],
    empty: usize,
    centroids: &mut [f32],
) {
    let largest = (0..counts.len()).max_by_key(|c| counts[*c]).unwrap_or(0);
    let row = assigned
        .iter()
        .position(|c| *c as usize == largest)
        .unwrap_or(0);
    for (i, (out, v)) in centroids[empty * dim..(empty + 1) * dim]
        .iter_mut()
        .zip(&sample[row * dim..(row + 1) * dim])
        .enumerate()
    {
        *out = v * if i % 2 == 0 { 1.001 } else { 0.999 };
    }
}

/// A probe's table: per group of 4 dimensions, the probe's sum over each
/// subset of them, as a byte: `(sum - low) / step`, `low` the group's
/// least sum, `step` one for all groups.
pub(crate) struct Table {
    pub entries: Vec<u8>,
    /// `2 step`: a row's `2 <b, q>` is `two_steps` × its sum of entries
    /// plus twice the sum of the groups' `low`.
    pub two_steps: f32,
    /// `2 Σ low - Σq`, what the estimate adds to `two_steps` × the sum.
    pub offset: f32,
    /// The most the entries' rounding moves `2 <b, q>`: half a step a
    /// group, twice.
    pub rounding: f32,
    /// `|q|`: the estimator's error scales with it.
    pub norm: f32,
}

impl Table {
    pub fn new(q: &[f32]) -> Self {
        let groups = groups(words(q.len()));
        let mut sums = vec![0f32; groups * GROUP_VALUES];
        for (p, table) in sums.chunks_exact_mut(GROUP_VALUES).enumerate() {
            for v in 1..GROUP_VALUES {
                let low = v.trailing_zeros() as usize;
                table[v] = table[v & (v - 1)] + q.get(p * 4 + low).copied().unwrap_or(0.0);
            }
        }
        let mut lows = Vec::with_capacity(groups);
        let mut range = 0f32;
        for table in sums.chunks_exact(GROUP_VALUES) {
            let low = table.iter().fold(f32::INFINITY, |m, x| m.min(*x));
            let high = table.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
            lows.push(low);
            range = range.max(high - low);
        }
        let step = if range > 0.0 { range / 255.0 } else { 1.0 };
        let entries = sums
            .chunks_exact(GROUP_VALUES)
            .zip(&lows)
            .flat_map(|(table, low)| {
                table
                    .iter()
                    .map(move |x| ((x - low) / step).round().clamp(0.0, 255.0) as u8)
            })
            .collect();
        let sum: f32 = q.iter().sum();
        Self {
            entries,
            two_steps: 2.0 * step,
            offset: 2.0 * lows.iter().sum::<f32>() - sum,
            rounding: groups as f32 * step,
            norm: kernels::dot_f32(q, q).sqrt(),
        }
    }
}

impl Ivf {
    pub fn new(coarse: std::sync::Arc<Coarse>) -> Self {
        let lists = (0..coarse.cells).map(|_| List::default()).collect();
        Self { coarse, lists }
    }

    pub fn push(&mut self, cell: u32, slot: u32, bits: &[u64], factor: Factor) {
        let groups = groups(words(self.coarse.dim));
        let list = &mut self.lists[cell as usize];
        let k = list.slots.len();
        if k == list.slots.capacity() {
            // Lists grow by an eighth, not double: at ten million rows the
            // slack of doubling would be a quarter of the index.
            let more = (k / 8).max(BLOCK_ROWS);
            list.slots.reserve_exact(more);
            list.factors.reserve_exact(more);
            list.errors.reserve_exact(more);
            list.blocks
                .reserve_exact((k + more).div_ceil(BLOCK_ROWS) * groups * 16 - list.blocks.len());
        }
        if k.is_multiple_of(BLOCK_ROWS) {
            list.blocks.resize((k / BLOCK_ROWS + 1) * groups * 16, 0);
        }
        list.slots.push(slot);
        list.factors.push(factor.estimate);
        list.errors.push(factor.error);
        list.set_code(groups, k, bits);
    }

    /// Takes `slot` out of `cell`'s list (the last row takes its place).
    /// False if it was not there.
    pub fn remove(&mut self, cell: u32, slot: u32) -> bool {
        let words = words(self.coarse.dim);
        let groups = groups(words);
        let list = &mut self.lists[cell as usize];
        let Some(k) = list.slots.iter().position(|s| *s == slot) else {
            return false;
        };
        let last = list.slots.len() - 1;
        let mut code = vec![0u64; words];
        list.code(groups, last, &mut code);
        list.set_code(groups, k, &code);
        code.fill(0);
        list.set_code(groups, last, &code);
        list.slots.swap_remove(k);
        list.factors.swap_remove(k);
        list.errors.swap_remove(k);
        list.blocks
            .truncate(last.div_ceil(BLOCK_ROWS) * groups * 16);
        true
    }

    pub fn memory_bytes(&self) -> usize {
        let lists: usize = self
            .lists
            .iter()
            .map(|l| {
                4 * (l.slots.capacity() + l.factors.capacity() + l.errors.capacity())
                    + l.blocks.capacity()
            })
            .sum();
        lists
            + 4 * (self.coarse.centroids.capacity() + self.coarse.half_norms.capacity())
            + self.lists.capacity() * std::mem::size_of::<List>()
    }
}

/// The rows a search re-scores exactly: those whose estimate's upper
/// bound reaches the search's floor and the `k`-th best lower bound seen
/// so far. At most `cap` are kept (those of the highest upper bounds), and
/// the list never holds more than twice that between two cuts.
pub(crate) struct Shortlist {
    cap: usize,
    floor: f32,
    lows: crate::TopK,
    /// Upper bound and slot of each row kept.
    kept: Vec<(f32, u32)>,
}

impl Shortlist {
    pub fn new(k: usize, cap: usize, floor: f32) -> Self {
        assert!(k > 0 && cap >= k);
        Self {
            cap,
            floor,
            lows: crate::TopK::new(k),
            kept: Vec::new(),
        }
    }

    /// The least upper bound a row needs to be kept.
    fn threshold(&self) -> f32 {
        self.floor.max(self.lows.kth())
    }

    /// Looks at the rows of `list`, whose fast-scan sums are `sums`;
    /// `base` is `<c, q>` of the list's cell. Upper bounds are made for a
    /// block of rows at once (the compiler vectorises that loop), and a
    /// block none of whose rows reaches the threshold is passed over.
    pub fn scan(&mut self, list: &List, sums: &[u16], base: f32, table: &Table) {
        let (upper_scale, lower_scale) = (UPPER_SIGMAS * table.norm, LOWER_SIGMAS * table.norm);
        let offset = table.offset + table.rounding;
        let mut upper = [0f32; BLOCK_ROWS];
        let blocks = list
            .factors
            .chunks(BLOCK_ROWS)
            .zip(list.errors.chunks(BLOCK_ROWS))
            .zip(sums.chunks(BLOCK_ROWS))
            .zip(list.slots.chunks(BLOCK_ROWS));
        for (((factors, errors), sums), slots) in blocks {
            for (((u, f), e), s) in upper.iter_mut().zip(factors).zip(errors).zip(sums) {
                *u = base + f * (f32::from(*s) * table.two_steps + offset) + e * upper_scale;
            }
            let threshold = self.threshold();
            let rows = factors.len();
            if upper[..rows].iter().filter(|u| **u >= threshold).count() == 0 {
                continue;
            }
            for (((u, f), e), slot) in upper.iter().zip(factors).zip(errors).zip(slots) {
                if *u < self.threshold() {
                    continue;
                }
                let estimate = u - e * upper_scale - f * table.rounding;
                self.lows
                    .push(estimate - e * lower_scale - f * table.rounding, *slot);
                self.kept.push((*u, *slot));
                if self.kept.len() >= 2 * self.cap {
                    self.cut();
                }
            }
        }
    }

    /// Drops the rows below the threshold, then all but the `cap` of the
    /// highest upper bounds; later rows must reach the least of those.
    fn cut(&mut self) {
        let threshold = self.threshold();
        self.kept.retain(|(upper, _)| *upper >= threshold);
        if self.kept.len() > self.cap {
            self.kept
                .select_nth_unstable_by(self.cap - 1, |a, b| b.0.total_cmp(&a.0));
            self.kept.truncate(self.cap);
            let least = self.kept.iter().fold(f32::INFINITY, |m, (u, _)| m.min(*u));
            self.floor = self.floor.max(least);
        }
    }

    /// One shortlist of the rows of several, as if one had seen them all.
    pub fn merge(parts: Vec<Shortlist>) -> Option<Shortlist> {
        let mut parts = parts.into_iter();
        let mut all = parts.next()?;
        for part in parts {
            all.floor = all.floor.max(part.floor);
            all.lows.absorb(part.lows);
            all.kept.extend(part.kept);
            if all.kept.len() >= 2 * all.cap {
                all.cut();
            }
        }
        Some(all)
    }

    /// The rows kept, upper bound and slot, in no order.
    pub fn into_kept(mut self) -> Vec<(f32, u32)> {
        self.cut();
        self.kept
    }
}

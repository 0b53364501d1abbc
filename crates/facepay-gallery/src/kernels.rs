//! The inner loops: int8 and float dot products, Hamming distances and
//! 1-bit code estimates over a block of rows, and their codes.
//!
//! The loops are plain Rust that the compiler vectorises. The baseline
//! x86-64 target has SSE2 only and no `popcnt`, so on x86-64 the same loops
//! are compiled a second time with AVX2, FMA and POPCNT enabled and chosen
//! at run time when the CPU has them (`facepay bench gallery` prints which).

/// Int8 code of a vector: `round(v / max|v| * 127)`, and the scale that
/// turns a code's dot product back into the vector's.
pub(crate) fn quantise(v: &[f32], out: &mut [i8]) -> f32 {
    debug_assert_eq!(v.len(), out.len());
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let k = 127.0 / max;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * k).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

/// `bits` × `dim` Gaussian directions, the same in every process: a fixed
/// seed through SplitMix64 and Box-Muller. Hand-written because it is a few
/// lines and must never change with a dependency's version (stored codes
/// would stop matching probes).
pub(crate) fn projection(bits: usize, dim: usize) -> Vec<f32> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..bits * dim)
        .map(|_| {
            let u1 = ((next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// The binary code of a vector: bit `i` is the sign of its projection on
/// direction `i`. The fraction of bits two codes differ in estimates the
/// angle between the vectors over π.
pub(crate) fn sign_bits(projection: &[f32], v: &[f32], out: &mut [u64]) {
    let dim = v.len();
    debug_assert_eq!(projection.len(), out.len() * 64 * dim);
    for (w, word) in out.iter_mut().enumerate() {
        *word = 0;
        for b in 0..64 {
            let row = &projection[(w * 64 + b) * dim..(w * 64 + b + 1) * dim];
            if dot_f32(row, v) > 0.0 {
                *word |= 1 << b;
            }
        }
    }
}

/// Eight partial sums, so the compiler may keep them in one vector
/// register (a single running sum must be added in order).
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dots_i8_portable(codes: &[i8], dim: usize, probe: &[i8], out: &mut [i32]) {
    for (row, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        *o = row
            .iter()
            .zip(probe)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
    }
}

#[inline(always)]
fn hammings_portable(bits: &[u64], words: usize, probe: &[u64], out: &mut [u32]) {
    for (row, o) in bits.chunks_exact(words).zip(out.iter_mut()) {
        *o = row
            .iter()
            .zip(probe)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
    }
}

/// For each row of `blocks` (codes in blocks of 32 rows, see `ivf.rs`),
/// the sum of its groups' entries in `table` (16 a group). Hand-written:
/// no crate scans RaBitQ codes; this is the portable form of the AVX2
/// shuffle below, and gives the same integers.
#[inline(always)]
fn fastscan_portable(table: &[u8], blocks: &[u8], groups: usize, out: &mut [u16]) {
    let block_bytes = groups * 16;
    for (codes, sums) in blocks
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(32))
    {
        for (j, sum) in sums.iter_mut().enumerate() {
            *sum = 0;
            for p in 0..groups {
                let byte = codes[p * 16 + j % 16];
                let nibble = if j < 16 { byte & 0xf } else { byte >> 4 };
                *sum += u16::from(table[p * 16 + nibble as usize]);
            }
        }
    }
}

/// Two groups at a time: one 256-bit load holds both groups' bytes of 32
/// rows, one shuffle per nibble half looks up 32 entries, and the bytes
/// are summed in 16-bit lanes (even and odd rows apart).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fastscan_avx2(table: &[u8], blocks: &[u8], groups: usize, out: &mut [u16]) {
    use std::arch::x86_64::*;
    let block_bytes = groups * 16;
    let nibbles = _mm256_set1_epi8(0x0f);
    let low_bytes = _mm256_set1_epi16(0x00ff);
    for (codes, sums) in blocks
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(32))
    {
        let mut acc = [_mm256_setzero_si256(); 4];
        for p in (0..groups).step_by(2) {
            let (x, t) = (&codes[p * 16..p * 16 + 32], &table[p * 16..p * 16 + 32]);
            // SAFETY: both slices are 32 bytes long; unaligned loads.
            let (x, t) = unsafe {
                (
                    _mm256_loadu_si256(x.as_ptr().cast()),
                    _mm256_loadu_si256(t.as_ptr().cast()),
                )
            };
            let low = _mm256_shuffle_epi8(t, _mm256_and_si256(x, nibbles));
            let high = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(x, 4), nibbles));
            acc[0] = _mm256_add_epi16(acc[0], _mm256_and_si256(low, low_bytes));
            acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16(low, 8));
            acc[2] = _mm256_add_epi16(acc[2], _mm256_and_si256(high, low_bytes));
            acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16(high, 8));
        }
        for (h, a) in acc.iter().enumerate() {
            let both = _mm_add_epi16(_mm256_castsi256_si128(*a), _mm256_extracti128_si256(*a, 1));
            let mut lanes = [0u16; 8];
            // SAFETY: `lanes` is 16 bytes; unaligned store.
            unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), both) };
            // acc 0: rows 0, 2, .., 14; 1: rows 1, 3, ..; 2: rows 16, 18, ..; 3: rows 17, ..
            let first = (h / 2) * 16 + h % 2;
            for (i, lane) in lanes.iter().enumerate() {
                sums[first + 2 * i] = *lane;
            }
        }
    }
}

#[inline(always)]
fn dots_f32_portable(rows: &[f32], dim: usize, probe: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(dim).zip(out.iter_mut()) {
        *o = dot_f32(row, probe);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_f32_avx2(rows: &[f32], dim: usize, probe: &[f32], out: &mut [f32]) {
    dots_f32_portable(rows, dim, probe, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn dots_i8_avx2(codes: &[i8], dim: usize, probe: &[i8], out: &mut [i32]) {
    dots_i8_portable(codes, dim, probe, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn hammings_avx2(bits: &[u64], words: usize, probe: &[u64], out: &mut [u32]) {
    hammings_portable(bits, words, probe, out)
}

/// The kernels this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernels {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernels::Avx2;
        }
        Kernels::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => "avx2+fma+popcnt",
        }
    }

    /// `out[r]` = dot of row `r` of `codes` (rows of `dim`) with `probe`.
    pub(crate) fn dots_i8(self, codes: &[i8], dim: usize, probe: &[i8], out: &mut [i32]) {
        assert_eq!(probe.len(), dim);
        assert!(codes.len() >= out.len() * dim);
        match self {
            Kernels::Portable => dots_i8_portable(codes, dim, probe, out),
            // SAFETY: chosen only when the CPU reports AVX2 and POPCNT.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { dots_i8_avx2(codes, dim, probe, out) },
        }
    }

    /// `out[r]` = dot of row `r` of `rows` (rows of `dim`) with `probe`.
    pub(crate) fn dots_f32(self, rows: &[f32], dim: usize, probe: &[f32], out: &mut [f32]) {
        assert_eq!(probe.len(), dim);
        assert!(rows.len() >= out.len() * dim);
        match self {
            Kernels::Portable => dots_f32_portable(rows, dim, probe, out),
            // SAFETY: chosen only when the CPU reports AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { dots_f32_avx2(rows, dim, probe, out) },
        }
    }

    /// `out[r]` = row `r`'s sum of `table` entries, for the rows of
    /// `blocks` (codes of `groups` groups in blocks of 32 rows).
    pub(crate) fn fastscan(self, table: &[u8], blocks: &[u8], groups: usize, out: &mut [u16]) {
        assert!(groups.is_multiple_of(2) && groups <= 256);
        assert_eq!(table.len(), groups * 16);
        assert_eq!(blocks.len(), out.len() / 32 * groups * 16);
        assert!(out.len().is_multiple_of(32));
        match self {
            Kernels::Portable => fastscan_portable(table, blocks, groups, out),
            // SAFETY: chosen only when the CPU reports AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { fastscan_avx2(table, blocks, groups, out) },
        }
    }

    /// `out[r]` = Hamming distance of row `r` of `bits` to `probe`.
    pub(crate) fn hammings(self, bits: &[u64], words: usize, probe: &[u64], out: &mut [u32]) {
        assert_eq!(probe.len(), words);
        assert!(bits.len() >= out.len() * words);
        match self {
            Kernels::Portable => hammings_portable(bits, words, probe, out),
            // SAFETY: chosen only when the CPU reports AVX2 and POPCNT.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { hammings_avx2(bits, words, probe, out) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_each_other_and_with_floats() {
        let dim = 128;
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|r| {
                let v: Vec<f32> = (0..dim)
                    .map(|i| ((r * 31 + i * 7) % 17) as f32 - 8.0)
                    .collect();
                let n = dot_f32(&v, &v).sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect();
        let mut codes = vec![0i8; rows.len() * dim];
        let mut scales = Vec::new();
        let mut bits = vec![0u64; rows.len() * 2];
        let directions = projection(128, dim);
        for (r, v) in rows.iter().enumerate() {
            scales.push(quantise(v, &mut codes[r * dim..(r + 1) * dim]));
            sign_bits(&directions, v, &mut bits[r * 2..(r + 1) * 2]);
        }
        let probe = &rows[3];
        let mut probe_code = vec![0i8; dim];
        let probe_scale = quantise(probe, &mut probe_code);
        let mut probe_bits = [0u64; 2];
        sign_bits(&directions, probe, &mut probe_bits);
        let mut portable = vec![0i32; rows.len()];
        let mut detected = vec![0i32; rows.len()];
        Kernels::Portable.dots_i8(&codes, dim, &probe_code, &mut portable);
        Kernels::detect().dots_i8(&codes, dim, &probe_code, &mut detected);
        assert_eq!(portable, detected);
        for (r, v) in rows.iter().enumerate() {
            let approx = portable[r] as f32 * scales[r] * probe_scale;
            assert!((approx - dot_f32(v, probe)).abs() < 0.02, "{approx}");
        }
        let mut h1 = vec![0u32; rows.len()];
        let mut h2 = vec![0u32; rows.len()];
        Kernels::Portable.hammings(&bits, 2, &probe_bits, &mut h1);
        Kernels::detect().hammings(&bits, 2, &probe_bits, &mut h2);
        assert_eq!(h1, h2);
        assert_eq!(h1[3], 0);
    }

    #[test]
    fn fastscan_kernels_agree() {
        let groups = 32;
        let rows = 96;
        let table: Vec<u8> = (0..groups * 16)
            .map(|i| ((i * 37 + 11) % 256) as u8)
            .collect();
        let blocks: Vec<u8> = (0..rows / 32 * groups * 16)
            .map(|i| ((i * 101 + 7) % 256) as u8)
            .collect();
        let mut portable = vec![0u16; rows];
        let mut detected = vec![0u16; rows];
        Kernels::Portable.fastscan(&table, &blocks, groups, &mut portable);
        Kernels::detect().fastscan(&table, &blocks, groups, &mut detected);
        assert_eq!(portable, detected);
        // Row 17 of block 1: the high nibbles of byte 1 of each group.
        let want: u16 = (0..groups)
            .map(|p| {
                let byte = blocks[groups * 16 + p * 16 + 1];
                u16::from(table[p * 16 + (byte >> 4) as usize])
            })
            .sum();
        assert_eq!(portable[32 + 17], want);
    }
}

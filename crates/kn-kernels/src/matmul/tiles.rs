//! AVX-512 products for the shapes of attribution's passes: a few dozen to a few hundred rows
//! against a weight matrix, on one thread.
//!
//! A general product packs both operands for every product, which with few rows is not
//! amortised. The two kernels here use the fact that one operand's rows are contiguous and pack
//! nothing of the input:
//!
//! - [`rows_times_weight_rows`] (`x Wᵀ`, a linear layer): each panel of 32 weight rows is
//!   transposed into a `[k, 32]` buffer with 8 x 8 register transposes, then every 8 input rows
//!   are multiplied by it: 16 accumulators of 16 floats, the input broadcast a float at a time,
//!   nothing of the input packed.
//! - [`rows_times_matrix`] (`g W`, a linear layer's backward pass): blocks of the row-major
//!   `W` (128 columns by at most 192 rows) copied into contiguous 32-column panels, then every
//!   8 input rows are broadcast against each panel.
//!
//! Every output element is one sequential fused multiply-add chain over the inner dimension,
//! so it does not depend on the product's row count or on the row's place in a tile.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Input rows per tile.
const TILE_ROWS: usize = 8;
/// Output columns per tile (two AVX-512 registers).
const TILE_COLUMNS: usize = 32;
/// Most rows of `b` in a block of [`rows_times_matrix`] (96 KB of [`GROUP_COLUMNS`] columns).
const INNER_BLOCK: usize = 192;
/// Columns of `b` per block of [`rows_times_matrix`] (whole 32-column panels).
const GROUP_COLUMNS: usize = 128;

/// Whether this CPU runs the kernels (AVX-512F).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A row-major matrix in memory: element `(i, j)` at `start + i * row_stride + j`.
#[derive(Clone, Copy)]
pub(super) struct Rows {
    pub start: *const f32,
    pub row_stride: usize,
}

/// `out[i][j] (+)= Σ_t a[i][t] · w[j][t]` for `i < m`, `j < n`, `t < k`: `a` is `[m, k]`, `w`
/// is `[n, k]` (a linear layer's weight), `out` is `[m, n]` with rows `out_stride` apart.
///
/// # Safety
/// [`available`] must be true; `a`, `w` must point to matrices of those shapes, and `out` to
/// one that nothing else reads or writes during the call and that does not overlap them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn rows_times_weight_rows(
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    a: Rows,
    w: Rows,
    (m, n, k): (usize, usize, usize),
) {
    let mut panel = vec![0.0f32; k * TILE_COLUMNS];
    for first in (0..n).step_by(TILE_COLUMNS) {
        let columns = TILE_COLUMNS.min(n - first);
        pack_weight_rows(&mut panel, w, first, columns, k);
        // The next panel's weight rows are fetched into the cache while this one's tiles
        // compute, spread over them (tile i fetches rows i, i + tiles, ...), so that packing
        // the next panel does not wait for memory.
        let next = first + TILE_COLUMNS;
        let upcoming = TILE_COLUMNS.min(n.saturating_sub(next));
        let tiles = m.div_ceil(TILE_ROWS);
        for (index, row) in (0..m).step_by(TILE_ROWS).enumerate() {
            let rows = TILE_ROWS.min(m - row);
            let mut tile = Tile::new(a, row, rows, 0);
            let mut weights = panel.as_ptr();
            for t in 0..k {
                if t % 16 == 0 {
                    for c in (index..upcoming).step_by(tiles) {
                        let line = w.start.add((next + c) * w.row_stride + t);
                        _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
                    }
                }
                tile.step(
                    t,
                    _mm512_loadu_ps(weights),
                    _mm512_loadu_ps(weights.add(16)),
                );
                weights = weights.add(TILE_COLUMNS);
            }
            let tile_out = out.add(row * out_stride + first);
            tile.store(tile_out, out_stride, accumulate, rows, columns);
        }
    }
}

/// `out[i][j] (+)= Σ_t a[i][t] · b[t][j]` for `i < m`, `j < n`, `t < inner`: `a` is
/// `[m, inner]`, `b` is `[inner, n]` (row-major), `out` is `[m, n]` with rows `out_stride`
/// apart.
///
/// # Safety
/// As [`rows_times_weight_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn rows_times_matrix(
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    a: Rows,
    b: Rows,
    (m, n, inner): (usize, usize, usize),
) {
    // Blocks of `b`: GROUP_COLUMNS columns by at most INNER_BLOCK rows, copied into
    // contiguous `[length, 32]` panels (one per 32 columns) that stay in the cache while every
    // tile of rows reads them; a block after the first of its columns adds to `out`. Read in
    // place, a block's rows lie a whole row of `b` apart (8 or 32 KB at the power-of-two
    // widths of the 1B-parameter models), so that they fall into a few cache sets and evict
    // each other between the tiles: `g W` ran at 60 against 160 GFLOP/s for `x Wᵀ` there
    // (`examples/product_kernels.rs --shape llama-1b`, 2026-12-05). Copying GROUP_COLUMNS
    // columns of each row at once reads whole runs of cache lines of a page.
    let chunks = inner.div_ceil(INNER_BLOCK).max(1);
    let chunk = inner.div_ceil(chunks);
    let blocks: Vec<(usize, usize, usize)> = (0..n)
        .step_by(GROUP_COLUMNS)
        .flat_map(|first| {
            (0..inner)
                .step_by(chunk.max(1))
                .map(move |begin| (first, begin, chunk.min(inner - begin)))
        })
        .collect();
    let tiles = m.div_ceil(TILE_ROWS);
    let panels_per_group = GROUP_COLUMNS / TILE_COLUMNS;
    let mut panels = vec![0.0f32; panels_per_group * chunk * TILE_COLUMNS];
    for (index, &(group_first, begin, length)) in blocks.iter().enumerate() {
        let group_columns = GROUP_COLUMNS.min(n - group_first);
        let panel_count = group_columns.div_ceil(TILE_COLUMNS);
        pack_matrix_block(
            &mut panels,
            b,
            (group_first, group_columns),
            (begin, length),
        );
        // The next block is fetched into the cache while this one computes, spread over the
        // steps of its first panel's tiles (tile i fetches rows i, i + tiles, ...).
        let (next_first, next_begin, next_length) =
            blocks.get(index + 1).copied().unwrap_or((0, 0, 0));
        let next_lines = GROUP_COLUMNS.min(n.saturating_sub(next_first)).div_ceil(16);
        for panel_index in 0..panel_count {
            let first = group_first + panel_index * TILE_COLUMNS;
            let columns = TILE_COLUMNS.min(n - first);
            let panel = panels.as_ptr().add(panel_index * length * TILE_COLUMNS);
            for (tile_index, row) in (0..m).step_by(TILE_ROWS).enumerate() {
                let rows = TILE_ROWS.min(m - row);
                let mut tile = Tile::new(a, row, rows, begin);
                let mut weights = panel;
                for t in 0..length {
                    if panel_index == 0 && t < next_length && t % tiles == tile_index {
                        let start = b.start.add((next_begin + t) * b.row_stride + next_first);
                        for line in 0..next_lines {
                            _mm_prefetch::<_MM_HINT_T1>(start.add(line * 16) as *const i8);
                        }
                    }
                    tile.step(
                        t,
                        _mm512_loadu_ps(weights),
                        _mm512_loadu_ps(weights.add(16)),
                    );
                    weights = weights.add(TILE_COLUMNS);
                }
                let adding = accumulate || begin > 0;
                let tile_out = out.add(row * out_stride + first);
                tile.store(tile_out, out_stride, adding, rows, columns);
            }
        }
    }
}

/// Copies rows `begin..begin + length` of columns `first..first + columns` (at most
/// [`GROUP_COLUMNS`]) of `b` into `panels` as consecutive `[length, 32]` panels, one per 32
/// columns, zero past the last column.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_matrix_block(
    panels: &mut [f32],
    b: Rows,
    (first, columns): (usize, usize),
    (begin, length): (usize, usize),
) {
    let panel_count = columns.div_ceil(TILE_COLUMNS);
    let mut masks = [(0, 0); GROUP_COLUMNS / TILE_COLUMNS];
    for (panel_index, mask) in masks.iter_mut().enumerate().take(panel_count) {
        *mask = column_masks(columns - panel_index * TILE_COLUMNS);
    }
    let mut source = b.start.add(begin * b.row_stride + first);
    for t in 0..length {
        for (panel_index, &(mask_low, mask_high)) in masks[..panel_count].iter().enumerate() {
            let offset = panel_index * TILE_COLUMNS;
            let target = panels
                .as_mut_ptr()
                .add((panel_index * length + t) * TILE_COLUMNS);
            let low = _mm512_maskz_loadu_ps(mask_low, source.add(offset));
            let high = _mm512_maskz_loadu_ps(mask_high, source.add(offset + 16));
            _mm512_storeu_ps(target, low);
            _mm512_storeu_ps(target.add(16), high);
        }
        source = source.add(b.row_stride);
    }
}

/// Write masks of the low and high 16 of a tile's `columns` (at most 32) columns.
#[cfg(target_arch = "x86_64")]
fn column_masks(columns: usize) -> (__mmask16, __mmask16) {
    let bits = |count: usize| -> __mmask16 {
        if count >= 16 {
            0xFFFF
        } else {
            ((1u32 << count) - 1) as __mmask16
        }
    };
    (bits(columns), bits(columns.saturating_sub(16)))
}

/// The accumulators of one tile, [`TILE_ROWS`] input rows by [`TILE_COLUMNS`] columns, and
/// where its input rows are read.
#[cfg(target_arch = "x86_64")]
struct Tile {
    inputs: [*const f32; TILE_ROWS],
    low: [__m512; TILE_ROWS],
    high: [__m512; TILE_ROWS],
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// A tile over the input rows `row..row + rows` of `a` (the last one repeated to fill the
    /// tile), each read from column `offset` on.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn new(a: Rows, row: usize, rows: usize, offset: usize) -> Self {
        let mut inputs = [a.start; TILE_ROWS];
        for (r, input) in inputs.iter_mut().enumerate() {
            *input = a.start.add((row + r.min(rows - 1)) * a.row_stride + offset);
        }
        Tile {
            inputs,
            low: [_mm512_setzero_ps(); TILE_ROWS],
            high: [_mm512_setzero_ps(); TILE_ROWS],
        }
    }

    /// Adds every input row's element `t` times the 32 weights `w_low`, `w_high`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn step(&mut self, t: usize, w_low: __m512, w_high: __m512) {
        for r in 0..TILE_ROWS {
            let x = _mm512_set1_ps(*self.inputs[r].add(t));
            self.low[r] = _mm512_fmadd_ps(x, w_low, self.low[r]);
            self.high[r] = _mm512_fmadd_ps(x, w_high, self.high[r]);
        }
    }

    /// Stores (or adds to `out`) the first `rows` rows and `columns` columns of the tile.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store(
        &self,
        out: *mut f32,
        out_stride: usize,
        accumulate: bool,
        rows: usize,
        columns: usize,
    ) {
        let (mask_low, mask_high) = column_masks(columns);
        for r in 0..rows {
            let row_out = out.add(r * out_stride);
            let (mut value_low, mut value_high) = (self.low[r], self.high[r]);
            if accumulate {
                value_low = _mm512_add_ps(value_low, _mm512_maskz_loadu_ps(mask_low, row_out));
                value_high = _mm512_add_ps(
                    value_high,
                    _mm512_maskz_loadu_ps(mask_high, row_out.add(16)),
                );
            }
            _mm512_mask_storeu_ps(row_out, mask_low, value_low);
            _mm512_mask_storeu_ps(row_out.add(16), mask_high, value_high);
        }
    }
}

/// Copies weight rows `first..first + columns` (each `k` long) into `panel` as `[k, 32]`:
/// `panel[t * 32 + c] = w[first + c][t]`, zero for `c >= columns`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_weight_rows(panel: &mut [f32], w: Rows, first: usize, columns: usize, k: usize) {
    let whole = k - k % 8;
    let zeros = [0.0f32; 8];
    for group in (0..TILE_COLUMNS).step_by(8) {
        // The group's 8 weight rows (a row of zeros past the last column).
        let mut rows = [zeros.as_ptr(); 8];
        for (c, row) in rows.iter_mut().enumerate() {
            if group + c < columns {
                *row = w.start.add((first + group + c) * w.row_stride);
            }
        }
        // A row of zeros is read at its start only.
        let mut steps = [0usize; 8];
        for (c, step) in steps.iter_mut().enumerate() {
            *step = usize::from(group + c < columns);
        }
        for t in (0..whole).step_by(8) {
            let mut block = [_mm256_setzero_ps(); 8];
            for c in 0..8 {
                block[c] = _mm256_loadu_ps(rows[c].add(t * steps[c]));
            }
            let transposed = transpose8(block);
            for (i, column) in transposed.iter().enumerate() {
                _mm256_storeu_ps(
                    panel.as_mut_ptr().add((t + i) * TILE_COLUMNS + group),
                    *column,
                );
            }
        }
        for t in whole..k {
            for (c, row) in rows.iter().enumerate() {
                panel[t * TILE_COLUMNS + group + c] = *row.add(t * steps[c]);
            }
        }
    }
}

/// The transpose of an 8 x 8 block given as 8 rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A row-major matrix over `values`.
    fn rows(values: &[f32], row_stride: usize) -> Rows {
        Rows {
            start: values.as_ptr(),
            row_stride,
        }
    }

    /// Deterministic test values in [-1, 1).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Both kernels against a float64 sum, at shapes with partial tiles (rows, columns),
    /// a partial 8-wide transpose and several blocks of `b`, with and without accumulating.
    #[test]
    fn kernels_match_a_float64_reference() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: the kernels are not used here");
            return;
        }
        for (m, k, n) in [
            (1, 1, 1),
            (9, 13, 33),
            (17, 800, 31),
            (8, 1600, 70),
            (30, 64, 32),
        ] {
            let (a, w) = (values(m * k, 1), values(n * k, 2));
            let initial = values(m * n, 3);
            for accumulate in [false, true] {
                let mut out = initial.clone();
                let mut out_t = initial.clone();
                // SAFETY: the slices hold the shapes given, and `out` is not aliased.
                unsafe {
                    let (a, w) = (rows(&a, k), rows(&w, k));
                    rows_times_weight_rows(out.as_mut_ptr(), n, accumulate, a, w, (m, n, k));
                }
                // `g W` with `g` = a (m x k) and `W` = wᵀ stored row-major (k x n).
                let mut w_t = vec![0.0; k * n];
                for j in 0..n {
                    for t in 0..k {
                        w_t[t * n + j] = w[j * k + t];
                    }
                }
                // SAFETY: as above.
                unsafe {
                    let (a, b) = (rows(&a, k), rows(&w_t, n));
                    rows_times_matrix(out_t.as_mut_ptr(), n, accumulate, a, b, (m, n, k));
                }
                for i in 0..m {
                    for j in 0..n {
                        let exact: f64 = (0..k)
                            .map(|t| a[i * k + t] as f64 * w[j * k + t] as f64)
                            .sum::<f64>()
                            + if accumulate {
                                initial[i * n + j] as f64
                            } else {
                                0.0
                            };
                        let tolerance = 1e-5 * (k as f64).sqrt().max(1.0);
                        assert!(
                            (out[i * n + j] as f64 - exact).abs() <= tolerance,
                            "x Wᵀ ({m}, {k}, {n}) at ({i}, {j})"
                        );
                        assert!(
                            (out_t[i * n + j] as f64 - exact).abs() <= tolerance,
                            "g W ({m}, {k}, {n}) at ({i}, {j})"
                        );
                    }
                }
            }
        }
    }
}

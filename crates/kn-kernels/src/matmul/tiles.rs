//! AVX-512 products for the shapes of attribution's passes: a few dozen to a few hundred rows
//! against a weight matrix, on one thread.
//!
//! One blocked product ([`product`]) in the manner of BLIS serves both shapes:
//!
//! - the input rows are packed once per product into tiles of [`TILE_ROWS`] rows, element `t`
//!   of a tile's rows side by side (`[t, TILE_ROWS]`), so that a tile's step reads one run of
//!   floats through one pointer (read in place, the rows' pointers did not fit in the
//!   registers and were reloaded from the stack at every step);
//! - the other operand is read in blocks of [`GROUP_COLUMNS`] output columns by at most
//!   [`INNER_BLOCK`] inner elements, copied into contiguous `[length, 32]` panels that stay in
//!   the first-level cache while every tile of rows reads them: from a linear layer's weight
//!   rows for `x Wᵀ` ([`RightOperand::WeightRows`], 8 x 8 register transposes), from a
//!   row-major matrix for `g W` ([`RightOperand::Matrix`]). Read in place, a block's rows lie a whole row
//!   apart (8 or 32 KB at the power-of-two widths of the 1B-parameter models), fall into a few
//!   cache sets and evict each other;
//! - a tile is [`TILE_ROWS`] rows by 32 columns of accumulators; the next block is fetched into
//!   the cache while this one computes.
//!
//! Every output element is the sum, in order, of one sequential fused multiply-add chain per
//! block of at most [`INNER_BLOCK`] inner elements, so it does not depend on the product's row
//! count or on the row's place in a tile. Summing block by block matters: a chain over a whole
//! vocabulary (the output head's `p W`, accumulated over its blocks) rounds ten times worse,
//! and the head's gradient `w_answer - Σ p_j w_j` cancels; the golden attributions see it.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Input rows per tile.
const TILE_ROWS: usize = 8;
/// Output columns per tile (two AVX-512 registers).
const TILE_COLUMNS: usize = 32;
/// Most inner elements in a block (a panel of 24 KB, in the first-level cache).
const INNER_BLOCK: usize = 192;
/// About the most inner elements of the input rows packed at once (a span of whole blocks):
/// a product with a longer inner dimension packs them span by span, so that the packed rows
/// take at most `m` x 16 KB.
const PACKED_INNER: usize = 4096;
/// Output columns per block (whole 32-column panels).
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

/// The right operand `B` (`[inner, n]`) of a product, as it lies in memory.
#[derive(Clone, Copy)]
pub(super) enum RightOperand {
    /// `Wᵀ` of a `[n, inner]` weight `W` with contiguous rows (a linear layer's `x Wᵀ`): output
    /// column `j` is row `j` of `W`.
    WeightRows(Rows),
    /// A row-major `[inner, n]` matrix (a linear layer's input gradient `g W`).
    Matrix(Rows),
}

thread_local! {
    /// The packed input tiles and the panels of one product, kept between products so that
    /// a pass does not allocate (and fault in) megabytes per product.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `out (+)= a · B` for `a` `[m, inner]` and `B` `[inner, n]` given by `right`, `out` `[m, n]`
/// with rows `out_stride` apart (added to when `accumulate`): for every span of at most
/// [`PACKED_INNER`] inner elements, the input rows packed into tiles, then for every block of
/// [`GROUP_COLUMNS`] columns and [`INNER_BLOCK`] inner elements of `B` in the span (column
/// groups outer, so that a group's output rows stay in the cache across its blocks), the block
/// packed into panels and every tile run against every panel.
///
/// # Safety
/// [`available`] must be true; `a` and `right` must point to matrices of those shapes, and
/// `out` to one that nothing else reads or writes during the call and that does not overlap
/// them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
pub(super) unsafe fn product(
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    a: Rows,
    right: RightOperand,
    (m, n, inner): (usize, usize, usize),
) {
    if m == 0 || n == 0 || inner == 0 {
        return;
    }
    let tiles = m.div_ceil(TILE_ROWS);
    let chunk = inner.div_ceil(inner.div_ceil(INNER_BLOCK));
    let span = chunk * (PACKED_INNER / chunk).max(1);
    let blocks = plan_blocks((n, inner), GROUP_COLUMNS, span, chunk);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (packed_rows, panels) = &mut *scratch;
        packed_rows.resize(tiles * span.min(inner) * TILE_ROWS, 0.0);
        panels.resize(GROUP_COLUMNS * chunk, 0.0);
        for (index, block) in blocks.iter().enumerate() {
            let (span_begin, span_length) = block.span;
            if block.first == 0 && block.begin == span_begin {
                for tile in 0..tiles {
                    let row = tile * TILE_ROWS;
                    let tile_rows = (row, TILE_ROWS.min(m - row));
                    let packed = &mut packed_rows[tile * span_length * TILE_ROWS..]
                        [..span_length * TILE_ROWS];
                    pack_transposed(packed, TILE_ROWS, a, tile_rows, block.span);
                }
            }
            right.pack(panels, block);
            // The next block's lines are fetched into the cache while this one computes,
            // spread over the block's tile runs.
            let upcoming = blocks.get(index + 1).map(|next| right.lines(next));
            let panel_count = block.columns.div_ceil(TILE_COLUMNS);
            let runs = panel_count * tiles;
            let per_run = upcoming.map_or(0, |lines| lines.count().div_ceil(runs));
            for panel_index in 0..panel_count {
                let first = block.first + panel_index * TILE_COLUMNS;
                let columns = TILE_COLUMNS.min(n - first);
                let panel = panels
                    .as_ptr()
                    .add(panel_index * block.length * TILE_COLUMNS);
                for tile in 0..tiles {
                    let run = panel_index * tiles + tile;
                    let row = tile * TILE_ROWS;
                    let offset = tile * span_length + block.begin - span_begin;
                    run_tile(
                        packed_rows.as_ptr().add(offset * TILE_ROWS),
                        panel,
                        block.length,
                        (out.add(row * out_stride + first), out_stride),
                        accumulate || block.begin > 0,
                        (TILE_ROWS.min(m - row), columns),
                        upcoming.map_or(LineCursor::EMPTY, |lines| {
                            lines.cursor(run * per_run, per_run)
                        }),
                    );
                }
            }
        }
    });
}

/// The blocks of a product's right operand (`[inner, n]`) in the order they are computed: spans
/// of `span` inner elements (the input rows packed once per span), in each the groups of
/// `group_columns` output columns, in each the blocks of at most `chunk` inner elements (`span`
/// a multiple of `chunk`).
pub(super) fn plan_blocks(
    (n, inner): (usize, usize),
    group_columns: usize,
    span: usize,
    chunk: usize,
) -> Vec<Block> {
    (0..inner)
        .step_by(span)
        .flat_map(|span_begin| {
            let span = (span_begin, span.min(inner - span_begin));
            (0..n).step_by(group_columns).flat_map(move |first| {
                (span.0..span.0 + span.1)
                    .step_by(chunk)
                    .map(move |begin| Block {
                        first,
                        columns: group_columns.min(n - first),
                        begin,
                        length: chunk.min(span.0 + span.1 - begin),
                        span,
                    })
            })
        })
        .collect()
}

/// A block of the right operand: output columns `first..first + columns` (at most
/// [`GROUP_COLUMNS`]) by inner elements `begin..begin + length`, within the span of inner
/// elements `span` (begin, length) whose input rows are packed at once.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub first: usize,
    pub columns: usize,
    pub begin: usize,
    pub length: usize,
    pub span: (usize, usize),
}

/// The cache lines of a block as it lies in memory: `lines_per_row` lines of 16 floats from
/// each of `rows` rows, the first at `start`.
#[derive(Clone, Copy)]
struct BlockLines {
    start: *const f32,
    row_stride: usize,
    rows: usize,
    lines_per_row: usize,
}

impl BlockLines {
    fn count(&self) -> usize {
        self.rows * self.lines_per_row
    }

    /// A cursor over lines `first..first + count` (those that exist).
    fn cursor(&self, first: usize, count: usize) -> LineCursor {
        LineCursor {
            remaining: count.min(self.count().saturating_sub(first)),
            row_start: self
                .start
                .wrapping_add(first / self.lines_per_row * self.row_stride),
            column: first % self.lines_per_row,
            row_stride: self.row_stride,
            lines_per_row: self.lines_per_row,
        }
    }
}

/// Walks lines of a block in order, fetching each into the second-level cache.
struct LineCursor {
    remaining: usize,
    row_start: *const f32,
    column: usize,
    row_stride: usize,
    lines_per_row: usize,
}

impl LineCursor {
    /// A cursor with no lines to fetch.
    const EMPTY: LineCursor = LineCursor {
        remaining: 0,
        row_start: std::ptr::null(),
        column: 0,
        row_stride: 0,
        lines_per_row: 1,
    };

    /// Fetches the next `count` lines (as many as are left).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn fetch(&mut self, count: usize) {
        let count = count.min(self.remaining);
        self.remaining -= count;
        for _ in 0..count {
            let address = self.row_start.wrapping_add(self.column * 16);
            _mm_prefetch::<_MM_HINT_T1>(address as *const i8);
            self.column += 1;
            if self.column == self.lines_per_row {
                self.column = 0;
                self.row_start = self.row_start.wrapping_add(self.row_stride);
            }
        }
    }
}

impl RightOperand {
    /// The operand from output column `column` and inner element `inner` on.
    pub(super) fn from(&self, column: usize, inner: usize) -> RightOperand {
        match *self {
            RightOperand::WeightRows(w) => RightOperand::WeightRows(Rows {
                start: w.start.wrapping_add(column * w.row_stride + inner),
                row_stride: w.row_stride,
            }),
            RightOperand::Matrix(b) => RightOperand::Matrix(Rows {
                start: b.start.wrapping_add(inner * b.row_stride + column),
                row_stride: b.row_stride,
            }),
        }
    }

    /// Copies `block` into `panels` as consecutive `[length, 32]` panels, one per 32 columns,
    /// zero past the last column.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn pack(&self, panels: &mut [f32], block: &Block) {
        let panel_count = block.columns.div_ceil(TILE_COLUMNS);
        for panel_index in 0..panel_count {
            let offset = panel_index * TILE_COLUMNS;
            let columns = TILE_COLUMNS.min(block.columns - offset);
            let panel = &mut panels[panel_index * block.length * TILE_COLUMNS..]
                [..block.length * TILE_COLUMNS];
            match *self {
                RightOperand::WeightRows(w) => pack_transposed(
                    panel,
                    TILE_COLUMNS,
                    w,
                    (block.first + offset, columns),
                    (block.begin, block.length),
                ),
                RightOperand::Matrix(b) => {
                    let (mask_low, mask_high) = column_masks(columns);
                    let mut source = b
                        .start
                        .add(block.begin * b.row_stride + block.first + offset);
                    for t in 0..block.length {
                        let target = panel.as_mut_ptr().add(t * TILE_COLUMNS);
                        _mm512_storeu_ps(target, _mm512_maskz_loadu_ps(mask_low, source));
                        let high = _mm512_maskz_loadu_ps(mask_high, source.add(16));
                        _mm512_storeu_ps(target.add(16), high);
                        source = source.add(b.row_stride);
                    }
                }
            }
        }
    }

    /// Where `block` lies in memory, line by line: its source's rows and, in each, the run of
    /// elements (inner elements of weight rows; output columns of a row-major matrix).
    fn lines(&self, block: &Block) -> BlockLines {
        let (source, (first_row, rows), (first_element, elements)) = match *self {
            RightOperand::WeightRows(w) => {
                (w, (block.first, block.columns), (block.begin, block.length))
            }
            RightOperand::Matrix(b) => {
                (b, (block.begin, block.length), (block.first, block.columns))
            }
        };
        BlockLines {
            start: source
                .start
                .wrapping_add(first_row * source.row_stride + first_element),
            row_stride: source.row_stride,
            rows,
            lines_per_row: elements.div_ceil(16),
        }
    }
}

/// Multiplies one packed tile of input rows (`[length, TILE_ROWS]`) by one panel
/// (`[length, 32]`) and stores the first `rows` rows and `columns` columns into `out`, or adds
/// them to what is there when `adding`. `fetch`'s lines (of the next block) are fetched into
/// the cache spread over the steps (a burst of them at once stalls the loads of the steps).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn run_tile(
    inputs: *const f32,
    panel: *const f32,
    length: usize,
    (out, out_stride): (*mut f32, usize),
    adding: bool,
    (rows, columns): (usize, usize),
    mut fetch: LineCursor,
) {
    let (mask_low, mask_high) = column_masks(columns);
    let mut low = [_mm512_setzero_ps(); TILE_ROWS];
    let mut high = [_mm512_setzero_ps(); TILE_ROWS];
    let (mut x, mut w) = (inputs, panel);
    // Lines fetched every FETCH_STEPS steps.
    const FETCH_STEPS: usize = 4;
    let per_fetch = fetch
        .remaining
        .div_ceil(length.div_ceil(FETCH_STEPS).max(1));
    for t in 0..length {
        if t % FETCH_STEPS == 0 {
            fetch.fetch(per_fetch);
        }
        let (w_low, w_high) = (_mm512_loadu_ps(w), _mm512_loadu_ps(w.add(16)));
        for r in 0..TILE_ROWS {
            let value = _mm512_set1_ps(*x.add(r));
            low[r] = _mm512_fmadd_ps(value, w_low, low[r]);
            high[r] = _mm512_fmadd_ps(value, w_high, high[r]);
        }
        x = x.add(TILE_ROWS);
        w = w.add(TILE_COLUMNS);
    }
    for r in 0..rows {
        let row_out = out.add(r * out_stride);
        let (mut value_low, mut value_high) = (low[r], high[r]);
        if adding {
            value_low = _mm512_add_ps(value_low, _mm512_maskz_loadu_ps(mask_low, row_out));
            let stored_high = _mm512_maskz_loadu_ps(mask_high, row_out.add(16));
            value_high = _mm512_add_ps(value_high, stored_high);
        }
        _mm512_mask_storeu_ps(row_out, mask_low, value_low);
        _mm512_mask_storeu_ps(row_out.add(16), mask_high, value_high);
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

/// Copies rows `first..first + count` (at most `width`) of `source`, elements
/// `begin..begin + length` of each, into `destination` transposed: `destination[t * width + c]
/// = source[first + c][begin + t]`, zero for `count <= c < width`. 8 x 8 register transposes;
/// `width` a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn pack_transposed(
    destination: &mut [f32],
    width: usize,
    source: Rows,
    (first, count): (usize, usize),
    (begin, length): (usize, usize),
) {
    debug_assert!(width.is_multiple_of(8) && count <= width && destination.len() >= length * width);
    let whole = length - length % 8;
    let zeros = [0.0f32; 8];
    for group in (0..width).step_by(8) {
        // The group's 8 rows (a row of zeros, read at its start only, past the last).
        let mut rows = [zeros.as_ptr(); 8];
        let mut steps = [0usize; 8];
        for c in 0..8 {
            if group + c < count {
                rows[c] = source
                    .start
                    .add((first + group + c) * source.row_stride + begin);
                steps[c] = 1;
            }
        }
        for t in (0..whole).step_by(8) {
            let mut block = [_mm256_setzero_ps(); 8];
            for c in 0..8 {
                block[c] = _mm256_loadu_ps(rows[c].add(t * steps[c]));
            }
            let transposed = transpose8(block);
            for (i, column) in transposed.iter().enumerate() {
                let target = destination.as_mut_ptr().add((t + i) * width + group);
                _mm256_storeu_ps(target, *column);
            }
        }
        for t in whole..length {
            for (c, row) in rows.iter().enumerate() {
                destination[t * width + group + c] = *row.add(t * steps[c]);
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

/// What the products' tests share: test values, operands, a float64 reference.
#[cfg(test)]
pub(super) mod test_support {
    use super::Rows;

    /// A row-major matrix over `values`.
    pub fn rows(values: &[f32], row_stride: usize) -> Rows {
        Rows {
            start: values.as_ptr(),
            row_stride,
        }
    }

    /// Deterministic test values in [-1, 1).
    pub fn values(count: usize, seed: u64) -> Vec<f32> {
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

    /// The `[k, n]` row-major transpose of `w` (`[n, k]`).
    pub fn transposed(w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut w_t = vec![0.0; k * n];
        for j in 0..n {
            for t in 0..k {
                w_t[t * n + j] = w[j * k + t];
            }
        }
        w_t
    }

    /// Asserts that `out` (`[m, n]`) is `a wᵀ` (`a` `[m, k]`, `w` `[n, k]`), plus `initial` when
    /// `accumulate`, within float32 rounding of a float64 sum.
    pub fn assert_matches_float64(
        out: &[f32],
        (a, w, initial): (&[f32], &[f32], &[f32]),
        accumulate: bool,
        (m, k, n): (usize, usize, usize),
        label: &str,
    ) {
        for i in 0..m {
            for j in 0..n {
                let start = if accumulate {
                    initial[i * n + j] as f64
                } else {
                    0.0
                };
                let exact = start
                    + (0..k)
                        .map(|t| a[i * k + t] as f64 * w[j * k + t] as f64)
                        .sum::<f64>();
                let got = out[i * n + j] as f64;
                let tolerance = 1e-5 * (k as f64).sqrt().max(1.0);
                assert!(
                    (got - exact).abs() <= tolerance,
                    "{label} ({m}, {k}, {n}) at ({i}, {j}): {got} against {exact}"
                );
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::test_support::*;
    use super::*;

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
            // Several spans of packed input rows, the last one short.
            (19, 2 * PACKED_INNER + 300, 40),
            // Several column groups and inner blocks.
            (37, 700, 300),
            (160, 576, 1536),
        ] {
            let (a, w) = (values(m * k, 1), values(n * k, 2));
            // `g W` with `g` = a (m x k) and `W` = wᵀ stored row-major (k x n).
            let w_t = transposed(&w, n, k);
            let initial = values(m * n, 3);
            for accumulate in [false, true] {
                let mut out = initial.clone();
                let mut out_t = initial.clone();
                // SAFETY: the slices hold the shapes given, and `out` is not aliased.
                unsafe {
                    let w = RightOperand::WeightRows(rows(&w, k));
                    product(out.as_mut_ptr(), n, accumulate, rows(&a, k), w, (m, n, k));
                    let b = RightOperand::Matrix(rows(&w_t, n));
                    product(out_t.as_mut_ptr(), n, accumulate, rows(&a, k), b, (m, n, k));
                }
                let operands = (a.as_slice(), w.as_slice(), initial.as_slice());
                assert_matches_float64(&out, operands, accumulate, (m, k, n), "x Wᵀ");
                assert_matches_float64(&out_t, operands, accumulate, (m, k, n), "g W");
            }
        }
    }
}

//! Float32 products on Intel AMX, for right operands whose values are bfloat16 numbers.
//!
//! The weights of a checkpoint shipped in bfloat16 (Llama 3, Qwen, Gemma, Mistral, ... and the
//! 1B-shaped test checkpoint) keep their bfloat16 values when loaded as float32: the low 16 bits
//! of every float are zero. A product `x · w` with such a `w` is computed here exactly as in
//! float32, on the AMX tile units, which multiply bfloat16 numbers (about ten times the float32
//! rate of AVX-512 on one core):
//!
//! - every float32 input `x` is split into three bfloat16 numbers `x = x0 + x1 + x2` exactly
//!   (`x0` keeps the top 8 bits of the 24-bit significand, `x1` the next 8, `x2` the last 8:
//!   each difference is exact in float32);
//! - every product `xi · w` of two bfloat16 numbers is exact in float32 (8 x 8 significant
//!   bits), and the tile unit adds them into float32 accumulators by fused multiply-adds;
//! - so an output element is a float32 sum of exact products, as an AVX-512 or MKL float32
//!   product is: the results differ from theirs by float32 rounding only (the order of the
//!   sums). Subnormal bfloat16 pieces (inputs below about 1e-33) count as zero on the tile unit.
//!
//! A block of the right operand whose values are not all bfloat16 numbers (float32 weights, a
//! GGUF model's dequantized weights, a row changed by an edit) goes to the float32 kernels of
//! `tiles` instead; when the first block is not, the whole product does (see [`product`]).
//!
//! The blocking: the input rows' pieces are packed once per span of inner elements into
//! `[16 rows, 32 elements]` tiles; the right operand is packed block by block
//! ([`GROUP_COLUMNS`] output columns by [`INNER_BLOCK`] inner elements) into the tile unit's
//! pair-interleaved layout, the next block a slice after every kernel run of the current one (so
//! that its reads from memory overlap the tile unit's work; prefetch instructions instead stalled
//! the tile loads), weight rows read along their inner elements and a matrix's rows along its
//! columns; a kernel run holds a 32 x 32 block of the output in four accumulator tiles over the
//! block's inner elements and stores it (the span's first block) or adds it to the output.
//!
//! `KN_AMX=off` in the environment turns the path off (for comparisons; results then come from
//! `tiles`).

use super::tiles::{self, Block, RightOperand, Rows};
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

/// Rows of a tile; output columns of an accumulator tile.
const TILE: usize = 16;
/// Inner elements of one tile step (16 pairs of bfloat16 per tile row).
const STEP: usize = 32;
/// The bfloat16 pieces of a float32 input.
const PIECES: usize = 3;
/// Inner elements per block of the right operand (whole steps): a run's 32 rows of pieces for
/// a block take 24 KB, in the first-level cache.
const INNER_BLOCK: usize = 512;
/// Output columns per block of the right operand (whole pairs of tiles): a block takes 64 KB,
/// in the second-level cache.
const GROUP_COLUMNS: usize = 256;
/// About the most inner elements of the input rows packed at once: the packed pieces take at
/// most `m` x 24 KB.
const PACKED_INNER: usize = 4096;

/// One row of a tile: 64 bytes (32 bfloat16 or 16 float32), aligned to a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

const ZERO_LINE: Line = Line([0; 32]);

/// The tile configuration: palette 1, every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// Whether products run here: a CPU with AMX-TILE, AMX-BF16 and AVX-512BW, a kernel that lets
/// this process use the tile registers (asked once), and `KN_AMX` not `off`.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("KN_AMX").is_ok_and(|value| value.eq_ignore_ascii_case("off")) {
            return false;
        }
        if !(std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512f"))
        {
            return false;
        }
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        // Leaf 7 exists on every x86-64 CPU with AVX-512.
        let features = __cpuid_count(7, 0);
        if features.edx & (1 << 22) == 0 || features.edx & (1 << 24) == 0 {
            return false;
        }
        // Linux hands out the tile registers' state on request (ARCH_REQ_XCOMP_PERM for
        // XFEATURE_XTILEDATA); a kernel without AMX support refuses.
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    })
}

thread_local! {
    /// The packed input pieces and the packed block of one product, kept between products.
    static SCRATCH: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `out (+)= a · B` as [`tiles::product`], for a `B` whose values are bfloat16 numbers. Returns
/// false, having written nothing, when the first block of `B` holds a value that is not (then
/// the caller computes the product otherwise); later blocks that hold one are computed by
/// [`tiles::product`].
///
/// # Safety
/// [`available`] must be true; as [`tiles::product`] for the rest.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(super) unsafe fn product(
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    a: Rows,
    right: RightOperand,
    (m, n, inner): (usize, usize, usize),
) -> bool {
    if m == 0 || n == 0 || inner == 0 {
        return true;
    }
    let span = INNER_BLOCK * (PACKED_INNER / INNER_BLOCK);
    let blocks = tiles::plan_blocks((n, inner), GROUP_COLUMNS, span, INNER_BLOCK);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (pieces, packed) = &mut *scratch;
        // Two packed blocks: the one computing and the next, packed a slice after every kernel
        // run so that its reads from memory overlap the tile unit's work.
        let block_lines = GROUP_COLUMNS.div_ceil(TILE) * INNER_BLOCK / STEP * TILE;
        packed.resize(2 * block_lines, ZERO_LINE);
        let (mut current, mut next) = packed.split_at_mut(block_lines);
        if !pack_block(current, right, &blocks[0], 0..tile_count(&blocks[0])) {
            return false;
        }
        let row_tiles = m.div_ceil(2 * TILE) * 2;
        asm!("ldtilecfg [{0}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
        let mut exact = true;
        for (index, block) in blocks.iter().enumerate() {
            let (span_begin, span_length) = block.span;
            let span_steps = span_length.div_ceil(STEP);
            if block.first == 0 && block.begin == span_begin {
                pieces.resize(row_tiles * span_steps * PIECES * TILE, ZERO_LINE);
                pack_pieces(pieces, a, m, row_tiles, block.span);
            }
            // The first block of a span's columns is stored, the rest added.
            let adding = accumulate || block.begin > 0;
            let upcoming = blocks.get(index + 1);
            let upcoming_tiles = upcoming.map_or(0, tile_count);
            let mut next_exact = true;
            if !exact {
                // Computed by the float32 kernels; the next block packed at once.
                float32_block(out, out_stride, adding, a, right, m, block);
                if let Some(upcoming) = upcoming {
                    next_exact = pack_block(next, right, upcoming, 0..upcoming_tiles);
                }
            } else {
                let block_steps = block.length.div_ceil(STEP);
                let first_step = (block.begin - span_begin) / STEP;
                let column_pairs = block.columns.div_ceil(2 * TILE);
                let runs = column_pairs * row_tiles / 2;
                let per_run = upcoming_tiles.div_ceil(runs);
                for pair in 0..row_tiles / 2 {
                    for column_pair in 0..column_pairs {
                        let column_tile = 2 * column_pair;
                        let b = |tile: usize, step: usize| {
                            let index = ((column_tile + tile) * block_steps + step) * TILE;
                            current.as_ptr().add(index)
                        };
                        let x = |row_tile: usize, step: usize, piece: usize| {
                            let step = row_tile * span_steps + first_step + step;
                            pieces.as_ptr().add((step * PIECES + piece) * TILE)
                        };
                        run_kernel(block_steps, 2 * pair, &x, &b);
                        if let Some(upcoming) = upcoming {
                            let run = pair * column_pairs + column_pair;
                            let slice = (run * per_run).min(upcoming_tiles)
                                ..((run + 1) * per_run).min(upcoming_tiles);
                            next_exact &= pack_block(next, right, upcoming, slice);
                        }
                        let rows = (2 * pair * TILE, m);
                        let columns = (block.first + column_tile * TILE, n);
                        store_accumulators(out, out_stride, adding, rows, columns);
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
            exact = next_exact;
        }
        asm!("tilerelease", options(nostack, nomem));
        true
    })
}

/// The number of tiles of a packed block.
fn tile_count(block: &Block) -> usize {
    block.columns.div_ceil(TILE) * block.length.div_ceil(STEP)
}

/// `out (+)= a · B` over one block of `B` (added to `out` when `adding`) by the float32
/// kernels (a block whose values are not all bfloat16 numbers).
#[target_feature(enable = "avx512f,avx2")]
unsafe fn float32_block(
    out: *mut f32,
    out_stride: usize,
    adding: bool,
    a: Rows,
    right: RightOperand,
    m: usize,
    block: &Block,
) {
    let a = Rows {
        start: a.start.add(block.begin),
        row_stride: a.row_stride,
    };
    let right = right.from(block.first, block.begin);
    tiles::product(
        out.add(block.first),
        out_stride,
        adding,
        a,
        right,
        (m, block.columns, block.length),
    );
}

/// One kernel run: the accumulator tiles 0-3 (rows of tiles `row_tile`, `row_tile + 1` by the
/// two column tiles of `b`) set to the sum over `steps` steps and the three pieces of
/// `pieces · b`. Tiles 4-5 hold pieces, 6-7 the right operand.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn run_kernel(
    steps: usize,
    row_tile: usize,
    pieces: &impl Fn(usize, usize, usize) -> *const Line,
    b: &impl Fn(usize, usize) -> *const Line,
) {
    const STRIDE: usize = 64;
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    for step in 0..steps {
        asm!(
            "tileloadd tmm6, [{b0} + {stride}*1]",
            "tileloadd tmm7, [{b1} + {stride}*1]",
            b0 = in(reg) b(0, step),
            b1 = in(reg) b(1, step),
            stride = in(reg) STRIDE,
            options(nostack, readonly)
        );
        for piece in 0..PIECES {
            asm!(
                "tileloadd tmm4, [{x0} + {stride}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{x1} + {stride}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                x0 = in(reg) pieces(row_tile, step, piece),
                x1 = in(reg) pieces(row_tile + 1, step, piece),
                stride = in(reg) STRIDE,
                options(nostack, readonly)
            );
        }
    }
}

/// Stores the accumulator tiles 0-3 (a 32 x 32 block of the output at rows `first_row..`,
/// columns `first_column..`) into `out`, or adds them to it when `adding`, within its `m` rows
/// and `n` columns.
#[target_feature(enable = "avx512f")]
unsafe fn store_accumulators(
    out: *mut f32,
    out_stride: usize,
    adding: bool,
    (first_row, m): (usize, usize),
    (first_column, n): (usize, usize),
) {
    let mut block = std::mem::MaybeUninit::<[[f32; 16]; 4 * TILE]>::uninit();
    const STRIDE: usize = 64;
    let base = block.as_mut_ptr() as *mut [f32; 16];
    asm!(
        "tilestored [{c0} + {stride}*1], tmm0",
        "tilestored [{c1} + {stride}*1], tmm1",
        "tilestored [{c2} + {stride}*1], tmm2",
        "tilestored [{c3} + {stride}*1], tmm3",
        c0 = in(reg) base,
        c1 = in(reg) base.add(TILE),
        c2 = in(reg) base.add(2 * TILE),
        c3 = in(reg) base.add(3 * TILE),
        stride = in(reg) STRIDE,
        options(nostack)
    );
    // SAFETY: the four tile stores above wrote all of `block`.
    let block = block.assume_init();
    for tile in 0..4 {
        let row0 = first_row + (tile / 2) * TILE;
        let column = first_column + (tile % 2) * TILE;
        if column >= n {
            continue;
        }
        let mask = column_mask(n - column);
        for r in 0..TILE.min(m.saturating_sub(row0)) {
            let target = out.add((row0 + r) * out_stride + column);
            let mut value = _mm512_loadu_ps(block[tile * TILE + r].as_ptr());
            if adding {
                value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, target), value);
            }
            _mm512_mask_storeu_ps(target, mask, value);
        }
    }
}

/// The write mask of the first `count` (capped at 16) of 16 lanes.
fn column_mask(count: usize) -> __mmask16 {
    if count >= 16 {
        0xFFFF
    } else {
        ((1u32 << count) - 1) as __mmask16
    }
}

/// Splits 16 float32 values into three vectors of float32 values that are bfloat16 numbers and
/// sum to them exactly (each the top 8 significant bits of what the others leave).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn split(values: __m512) -> [__m512; PIECES] {
    let top = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    let keep = |v: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), top));
    let x0 = keep(values);
    let rest = _mm512_sub_ps(values, x0);
    let x1 = keep(rest);
    [x0, x1, _mm512_sub_ps(rest, x1)]
}

/// The bfloat16 numbers of 16 float32 values that are bfloat16 numbers (their top halves).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn top_halves(values: __m512) -> __m256i {
    _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(_mm512_castps_si512(values)))
}

/// Packs the pieces of input rows `0..m` (zero rows up to `row_tiles` tiles), inner elements
/// `begin..begin + length` (zero up to whole steps), as tiles `[row tile][step][piece]`.
#[target_feature(enable = "avx512f,avx2")]
unsafe fn pack_pieces(
    pieces: &mut [Line],
    a: Rows,
    m: usize,
    row_tiles: usize,
    (begin, length): (usize, usize),
) {
    let steps = length.div_ceil(STEP);
    for row_tile in 0..row_tiles {
        for r in 0..TILE {
            let row = row_tile * TILE + r;
            for step in 0..steps {
                let tile = |piece: usize| ((row_tile * steps + step) * PIECES + piece) * TILE + r;
                if row >= m {
                    for piece in 0..PIECES {
                        pieces[tile(piece)] = ZERO_LINE;
                    }
                    continue;
                }
                let source = a.start.add(row * a.row_stride + begin + step * STEP);
                let available = length - step * STEP;
                let low = _mm512_maskz_loadu_ps(column_mask(available), source);
                let high = _mm512_maskz_loadu_ps(
                    column_mask(available.saturating_sub(16)),
                    source.add(16),
                );
                let (low, high) = (split(low), split(high));
                for piece in 0..PIECES {
                    let target = pieces.as_mut_ptr().add(tile(piece)) as *mut __m256i;
                    _mm256_storeu_si256(target, top_halves(low[piece]));
                    _mm256_storeu_si256(target.add(1), top_halves(high[piece]));
                }
            }
        }
    }
}

/// Packs the tiles `tiles` (ordinals in the order they are read from memory; a tile lands at
/// index `column tile * steps + step`) of `block` of the right operand into `packed`, in the tile unit's layout (row `q` of a tile: for each of its 16
/// columns, the inner elements `2q` and `2q + 1` side by side), zero past the operand's columns
/// and inner elements. Returns whether every value read was a bfloat16 number (else the tiles
/// are not to be used).
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn pack_block(
    packed: &mut [Line],
    right: RightOperand,
    block: &Block,
    tiles: Range<usize>,
) -> bool {
    let steps = block.length.div_ceil(STEP);
    let low_bits = _mm512_set1_epi32(0xFFFF);
    let mut seen = _mm512_setzero_si512();
    let out = packed.as_mut_ptr() as *mut __m512i;
    // The odd 16-bit words (top halves of the floats) of two vectors, in order.
    let odd_words = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19,
        17, 15, 13, 11, 9, 7, 5, 3, 1,
    );
    let high_halves = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    let column_tiles = block.columns.div_ceil(TILE);
    for ordinal in tiles {
        // Weight rows are read along their inner elements, a matrix's rows along its columns
        // (one run of memory after another, as the hardware prefetchers follow best).
        let (column_tile, step) = match right {
            RightOperand::WeightRows(_) => (ordinal / steps, ordinal % steps),
            RightOperand::Matrix(_) => (ordinal % column_tiles, ordinal / column_tiles),
        };
        let target = out.add((column_tile * steps + step) * TILE);
        let available = block.length - step * STEP;
        let columns = block.columns - column_tile * TILE;
        match right {
            RightOperand::Matrix(b) => {
                let mask = column_mask(columns);
                let source = b.start.add(
                    (block.begin + step * STEP) * b.row_stride + block.first + column_tile * TILE,
                );
                for q in 0..TILE {
                    let load = |t: usize| {
                        if t < available {
                            let row = source.add(t * b.row_stride);
                            _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, row))
                        } else {
                            _mm512_setzero_si512()
                        }
                    };
                    let (even, odd) = (load(2 * q), load(2 * q + 1));
                    seen = _mm512_or_si512(seen, _mm512_or_si512(even, odd));
                    let pair = _mm512_or_si512(
                        _mm512_srli_epi32::<16>(even),
                        _mm512_and_si512(odd, high_halves),
                    );
                    _mm512_storeu_si512(target.add(q), pair);
                }
            }
            RightOperand::WeightRows(w) => {
                let (low_mask, high_mask) = (
                    column_mask(available),
                    column_mask(available.saturating_sub(16)),
                );
                let mut rows = [_mm512_setzero_si512(); TILE];
                for (c, row) in rows.iter_mut().enumerate().take(columns) {
                    let source = w.start.add(
                        (block.first + column_tile * TILE + c) * w.row_stride
                            + block.begin
                            + step * STEP,
                    );
                    let low = _mm512_castps_si512(_mm512_maskz_loadu_ps(low_mask, source));
                    let high =
                        _mm512_castps_si512(_mm512_maskz_loadu_ps(high_mask, source.add(16)));
                    seen = _mm512_or_si512(seen, _mm512_or_si512(low, high));
                    *row = _mm512_permutex2var_epi16(low, odd_words, high);
                }
                for (q, line) in transpose16(rows).iter().enumerate() {
                    _mm512_storeu_si512(target.add(q), *line);
                }
            }
        }
    }
    _mm512_test_epi32_mask(seen, low_bits) == 0
}

/// The transpose of a 16 x 16 matrix of 32-bit elements given as 16 rows.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    // Within 128-bit lanes: pairs of rows, then quadruples. After these, x[4j + o] holds in
    // its lane L the column 4L + o of rows 4j..4j + 4.
    let mut x = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let a0 = _mm512_unpacklo_epi32(r[4 * j], r[4 * j + 1]);
        let b0 = _mm512_unpackhi_epi32(r[4 * j], r[4 * j + 1]);
        let a1 = _mm512_unpacklo_epi32(r[4 * j + 2], r[4 * j + 3]);
        let b1 = _mm512_unpackhi_epi32(r[4 * j + 2], r[4 * j + 3]);
        x[4 * j] = _mm512_unpacklo_epi64(a0, a1);
        x[4 * j + 1] = _mm512_unpackhi_epi64(a0, a1);
        x[4 * j + 2] = _mm512_unpacklo_epi64(b0, b1);
        x[4 * j + 3] = _mm512_unpackhi_epi64(b0, b1);
    }
    // Across lanes: column 4L + o is lane L of x[o], x[4 + o], x[8 + o], x[12 + o].
    let mut t = [_mm512_setzero_si512(); 16];
    for o in 0..4 {
        let p = _mm512_shuffle_i32x4::<0x44>(x[o], x[4 + o]);
        let q = _mm512_shuffle_i32x4::<0xEE>(x[o], x[4 + o]);
        let r2 = _mm512_shuffle_i32x4::<0x44>(x[8 + o], x[12 + o]);
        let s = _mm512_shuffle_i32x4::<0xEE>(x[8 + o], x[12 + o]);
        t[o] = _mm512_shuffle_i32x4::<0x88>(p, r2);
        t[4 + o] = _mm512_shuffle_i32x4::<0xDD>(p, r2);
        t[8 + o] = _mm512_shuffle_i32x4::<0x88>(q, s);
        t[12 + o] = _mm512_shuffle_i32x4::<0xDD>(q, s);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test values in [-1, 1), rounded to bfloat16 numbers when `bf16`.
    fn values(count: usize, seed: u64, bf16: bool) -> Vec<f32> {
        let values = tiles::test_support::values(count, seed);
        if !bf16 {
            return values;
        }
        let round = |value: f32| f32::from_bits(value.to_bits() & 0xFFFF_0000);
        values.into_iter().map(round).collect()
    }

    #[test]
    fn transpose16_transposes() {
        if !available() {
            return;
        }
        let matrix: Vec<i32> = (0..256).collect();
        // SAFETY: AVX-512 is there (`available`); the loads read 16 of the 256 values each.
        let rows: [__m512i; 16] = std::array::from_fn(|i| unsafe {
            _mm512_loadu_si512(matrix[16 * i..].as_ptr() as *const __m512i)
        });
        // SAFETY: as above.
        let transposed = unsafe { transpose16(rows) };
        for (q, line) in transposed.iter().enumerate() {
            let mut got = [0i32; 16];
            // SAFETY: `got` holds 16 values.
            unsafe { _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, *line) };
            let want: Vec<i32> = (0..16).map(|c| c * 16 + q as i32).collect();
            assert_eq!(got.to_vec(), want, "row {q}");
        }
    }

    #[test]
    fn pieces_sum_to_the_input_exactly() {
        if !available() {
            return;
        }
        let inputs = values(16, 9, false);
        let scaled: Vec<f32> = inputs
            .iter()
            .enumerate()
            .map(|(i, v)| v * 10f32.powi(i as i32 - 8))
            .collect();
        // SAFETY: AVX-512 is there; 16 values are read and written.
        let pieces = unsafe { split(_mm512_loadu_ps(scaled.as_ptr())) };
        let mut parts = [[0.0f32; 16]; PIECES];
        for (piece, values) in pieces.iter().zip(parts.iter_mut()) {
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(values.as_mut_ptr(), *piece) };
        }
        for i in 0..16 {
            for part in &parts {
                assert_eq!(
                    part[i].to_bits() & 0xFFFF,
                    0,
                    "a piece is not a bfloat16 number"
                );
            }
            assert_eq!(parts[0][i] + parts[1][i] + parts[2][i], scaled[i]);
        }
    }

    /// `out (+)= a · B` for both layouts of `B` against a float64 sum, at shapes with partial
    /// tiles, several column groups, blocks and spans, with and without accumulating; with a
    /// `B` of float32 values (no block taken: nothing written) and one whose later block holds
    /// a float32 value (that block by the float32 kernels).
    #[test]
    fn products_match_a_float64_reference() {
        use tiles::test_support::{assert_matches_float64, rows, transposed};
        if !available() {
            eprintln!("no AMX here: the path is not used");
            return;
        }
        for (m, k, n, later_float) in [
            (1, 1, 1, false),
            (17, 45, 33, false),
            (32, 128, 32, false),
            (40, 300, 270, false),
            (33, 2 * PACKED_INNER + 100, 20, false),
            (70, 700, 600, true),
        ] {
            let a = values(m * k, 1, false);
            let mut w = values(n * k, 2, true);
            if later_float {
                // Row 300 (second column group), inner element 200 (first block).
                w[300 * k + 200] = 0.123456789;
            }
            let w_t = transposed(&w, n, k);
            let initial = values(m * n, 3, false);
            for accumulate in [false, true] {
                for (right, label) in [
                    (RightOperand::WeightRows(rows(&w, k)), "x Wᵀ"),
                    (RightOperand::Matrix(rows(&w_t, n)), "g W"),
                ] {
                    let mut out = initial.clone();
                    // SAFETY: the vectors hold the shapes given; `out` is not aliased.
                    let taken = unsafe {
                        product(
                            out.as_mut_ptr(),
                            n,
                            accumulate,
                            rows(&a, k),
                            right,
                            (m, n, k),
                        )
                    };
                    assert!(taken);
                    let operands = (a.as_slice(), w.as_slice(), initial.as_slice());
                    assert_matches_float64(&out, operands, accumulate, (m, k, n), label);
                }
            }
            // Float32 values in the first block: not taken, nothing written.
            let float_w = values(n * k, 4, false);
            let mut out = initial.clone();
            let right = RightOperand::WeightRows(rows(&float_w, k));
            // SAFETY: as above.
            let taken =
                unsafe { product(out.as_mut_ptr(), n, false, rows(&a, k), right, (m, n, k)) };
            assert!(!taken || k == 1 && n == 1 && float_w[0].to_bits() & 0xFFFF == 0);
            assert!(taken || out == initial);
        }
    }
}

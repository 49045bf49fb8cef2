//! Dequantization of ggml tensor data to `f32`.
//!
//! Each kernel decodes one block with exactly the layout and arithmetic of ggml's
//! `dequantize_row_*` functions (and gguf-py's `gguf.quants`), so results are bit-identical to
//! them: f16 scales convert to f32 exactly and every product/sum is done in f32 in the same order.
//! Blocks are decoded in parallel with rayon, in groups of about 16K elements.
//!
//! Kernels take fixed-size array references (`&[u8; TYPE_SIZE]`, `&mut [f32; BLOCK_SIZE]`), so all
//! indexing inside them is bounded by constants and cannot panic on any input bytes.

use rayon::prelude::*;

use crate::error::GgufError;
use crate::types::GgmlType;

/// Elements per super-block of the k-quants.
const QK_K: usize = 256;

/// Decodes `n_elements` values of type `dtype` from `bytes` into a new `Vec<f32>`.
///
/// `bytes` must hold exactly `n_elements / block_size` blocks and `n_elements` must be a multiple
/// of the type's block size; otherwise [`GgufError::DataLength`] is returned. Types without a
/// decoder give [`GgufError::UnsupportedType`]. Errors name the source as `<buffer>`; use
/// [`crate::GgufFile::tensor_f32`] to get errors that name the file and tensor.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>, GgufError> {
    dequantize_named(dtype, bytes, n_elements, "<buffer>", "<unnamed>")
}

/// [`dequantize`] with the file and tensor names to put in errors.
pub(crate) fn dequantize_named(
    dtype: GgmlType,
    bytes: &[u8],
    n_elements: usize,
    file: &str,
    tensor: &str,
) -> Result<Vec<f32>, GgufError> {
    // Normalise e.g. `Other(12)` to `Q4_K` so hand-built values decode like parsed ones.
    let dtype = GgmlType::from_id(dtype.id());
    let unsupported = || GgufError::UnsupportedType {
        file: file.to_string(),
        tensor: tensor.to_string(),
        dtype,
    };
    if matches!(dtype, GgmlType::Other(_)) {
        return Err(unsupported());
    }
    let (block, size) = dtype.block_layout().ok_or_else(unsupported)?;
    let length_error = |detail: String| GgufError::DataLength {
        file: file.to_string(),
        tensor: tensor.to_string(),
        dtype,
        detail,
    };
    let n = n_elements as u64;
    let n_blocks = n / block;
    if n_blocks * block != n {
        return Err(length_error(format!(
            "{n_elements} elements is not a multiple of the block size {block}"
        )));
    }
    let expected = n_blocks.checked_mul(size);
    if expected != Some(bytes.len() as u64) {
        return Err(length_error(format!(
            "{n_elements} elements need {} bytes, but {} were given",
            expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string()),
            bytes.len()
        )));
    }
    // The element count is now bounded by a small multiple of `bytes.len()`.
    let mut out = vec![0f32; n_elements];
    match dtype {
        GgmlType::F32 => run::<1, 4>(bytes, &mut out, |b, y| y[0] = f32::from_le_bytes(*b)),
        GgmlType::F16 => run::<1, 2>(bytes, &mut out, |b, y| y[0] = f16(b[0], b[1])),
        GgmlType::BF16 => run::<1, 2>(bytes, &mut out, |b, y| {
            y[0] = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16)
        }),
        GgmlType::Q4_0 => run::<32, 18>(bytes, &mut out, q4_0),
        GgmlType::Q4_1 => run::<32, 20>(bytes, &mut out, q4_1),
        GgmlType::Q5_0 => run::<32, 22>(bytes, &mut out, q5_0),
        GgmlType::Q5_1 => run::<32, 24>(bytes, &mut out, q5_1),
        GgmlType::Q8_0 => run::<32, 34>(bytes, &mut out, q8_0),
        GgmlType::Q2_K => run::<QK_K, 84>(bytes, &mut out, q2_k),
        GgmlType::Q3_K => run::<QK_K, 110>(bytes, &mut out, q3_k),
        GgmlType::Q4_K => run::<QK_K, 144>(bytes, &mut out, q4_k),
        GgmlType::Q5_K => run::<QK_K, 176>(bytes, &mut out, q5_k),
        GgmlType::Q6_K => run::<QK_K, 210>(bytes, &mut out, q6_k),
        GgmlType::Q8_K => run::<QK_K, 292>(bytes, &mut out, q8_k),
        GgmlType::Other(_) => return Err(unsupported()),
    }
    Ok(out)
}

/// Applies a block kernel to every block, in parallel over groups of blocks. The caller has
/// checked that `bytes.len() / TS == out.len() / BS` with no remainder.
fn run<const BS: usize, const TS: usize>(
    bytes: &[u8],
    out: &mut [f32],
    kernel: impl Fn(&[u8; TS], &mut [f32; BS]) + Sync,
) {
    const GROUP_ELEMENTS: usize = 16 * 1024;
    let blocks_per_group = (GROUP_ELEMENTS / BS).max(1);
    out.par_chunks_mut(blocks_per_group * BS)
        .zip(bytes.par_chunks(blocks_per_group * TS))
        .for_each(|(out, bytes)| {
            for (y, b) in out.chunks_exact_mut(BS).zip(bytes.chunks_exact(TS)) {
                if let (Ok(y), Ok(b)) = (<&mut [f32; BS]>::try_from(y), <&[u8; TS]>::try_from(b)) {
                    kernel(b, y);
                }
            }
        });
}

/// An IEEE half float stored little-endian, converted exactly to f32.
#[inline(always)]
fn f16(lo: u8, hi: u8) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

/// `block_q4_0 { f16 d; u8 qs[16]; }`: `y[j] = (lo(qs[j]) - 8) * d`, `y[j+16] = (hi(qs[j]) - 8) * d`.
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16(b[0], b[1]);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
        y[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

/// `block_q4_1 { f16 d; f16 m; u8 qs[16]; }`: `y = q * d + m`.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let d = f16(b[0], b[1]);
    let m = f16(b[2], b[3]);
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = f32::from(q & 0x0F) * d + m;
        y[j + 16] = f32::from(q >> 4) * d + m;
    }
}

/// `block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }`: 5th bit of element i is bit i of `qh`; `y = (q - 16) * d`.
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16(b[0], b[1]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let q = b[6 + j];
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = ((u32::from(q & 0x0F) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = ((u32::from(q >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// `block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }`: `y = q * d + m`.
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let d = f16(b[0], b[1]);
    let m = f16(b[2], b[3]);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let q = b[8 + j];
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (u32::from(q & 0x0F) | h0) as f32 * d + m;
        y[j + 16] = (u32::from(q >> 4) | h1) as f32 * d + m;
    }
}

/// `block_q8_0 { f16 d; i8 qs[32]; }`: `y = q * d`.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16(b[0], b[1]);
    for j in 0..32 {
        y[j] = f32::from(b[2 + j] as i8) * d;
    }
}

/// `block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin; }`: sixteen groups of 16 with a 4-bit
/// scale and 4-bit min each; `y = (d * sc) * q - dmin * m`.
fn q2_k(b: &[u8; 84], y: &mut [f32; QK_K]) {
    let d = f16(b[80], b[81]);
    let dmin = f16(b[82], b[83]);
    for half in 0..2 {
        for j in 0..4 {
            let shift = 2 * j;
            for g in 0..2 {
                // Group of 16 elements: index (half * 8 + j * 2 + g).
                let sc = b[half * 8 + j * 2 + g];
                let dl = d * f32::from(sc & 0x0F);
                let ml = dmin * f32::from(sc >> 4);
                for l in 0..16 {
                    let q = (b[16 + half * 32 + g * 16 + l] >> shift) & 3;
                    y[half * 128 + j * 32 + g * 16 + l] = dl * f32::from(q) - ml;
                }
            }
        }
    }
}

/// `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }`: 2 low bits in `qs`, the high
/// bit in `hmask` (a clear bit subtracts 4), sixteen 6-bit scales offset by 32; `y = (d * sc) * q`.
fn q3_k(b: &[u8; 110], y: &mut [f32; QK_K]) {
    let d = f16(b[108], b[109]);
    let mut scales = [0f32; 16];
    for (k, s) in scales.iter_mut().enumerate() {
        let low = if k < 8 {
            b[96 + k] & 0x0F
        } else {
            b[96 + k - 8] >> 4
        };
        let high = (b[96 + 8 + k % 4] >> (2 * (k / 4))) & 3;
        *s = d * f32::from(((low | (high << 4)) as i8).wrapping_sub(32));
    }
    for (e, out) in y.iter_mut().enumerate() {
        let half = e / 128;
        let r = e % 128;
        let low = (b[32 + half * 32 + r % 32] >> (2 * (r / 32))) & 3;
        let high = (b[e % 32] >> (e / 32)) & 1;
        let q = low as i8 - if high == 0 { 4 } else { 0 };
        *out = scales[e / 16] * f32::from(q);
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K / Q5_K
/// (ggml's `get_scale_min_k4`).
#[inline(always)]
fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn k4_scales(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for (dst, src) in s.iter_mut().zip(b.iter().skip(4)) {
        *dst = *src;
    }
    s
}

/// `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }`: eight sub-blocks of 32 with
/// 6-bit scales and mins; `y = (d * sc) * q - dmin * m`.
fn q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let d = f16(b[0], b[1]);
    let dmin = f16(b[2], b[3]);
    let s = k4_scales(b);
    for j in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * j, &s);
        let (sc2, m2) = scale_min_k4(2 * j + 1, &s);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        for l in 0..32 {
            let q = b[16 + 32 * j + l];
            y[64 * j + l] = d1 * f32::from(q & 0x0F) - m1;
            y[64 * j + 32 + l] = d2 * f32::from(q >> 4) - m2;
        }
    }
}

/// `block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }`: as Q4_K with a 5th
/// bit per element from `qh`.
fn q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let d = f16(b[0], b[1]);
    let dmin = f16(b[2], b[3]);
    let s = k4_scales(b);
    for j in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * j, &s);
        let (sc2, m2) = scale_min_k4(2 * j + 1, &s);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        for l in 0..32 {
            let q = b[48 + 32 * j + l];
            let h = b[16 + l];
            let h1 = ((h >> (2 * j)) & 1) << 4;
            let h2 = ((h >> (2 * j + 1)) & 1) << 4;
            y[64 * j + l] = d1 * f32::from((q & 0x0F) + h1) - m1;
            y[64 * j + 32 + l] = d2 * f32::from((q >> 4) + h2) - m2;
        }
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }`: 4 low bits in `ql`, 2 high bits
/// in `qh`, offset by 32; `y = (d * sc) * q`.
fn q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = f16(b[208], b[209]);
    let mut scales = [0f32; 16];
    for (k, s) in scales.iter_mut().enumerate() {
        *s = d * f32::from(b[192 + k] as i8);
    }
    for n in 0..2 {
        for l in 0..32 {
            let is = l / 16;
            let ql0 = b[64 * n + l];
            let ql1 = b[64 * n + l + 32];
            let qh = b[128 + 32 * n + l];
            let q1 = ((ql0 & 0x0F) | ((qh & 3) << 4)) as i8 - 32;
            let q2 = ((ql1 & 0x0F) | (((qh >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql0 >> 4) | (((qh >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql1 >> 4) | (((qh >> 6) & 3) << 4)) as i8 - 32;
            y[128 * n + l] = scales[8 * n + is] * f32::from(q1);
            y[128 * n + l + 32] = scales[8 * n + is + 2] * f32::from(q2);
            y[128 * n + l + 64] = scales[8 * n + is + 4] * f32::from(q3);
            y[128 * n + l + 96] = scales[8 * n + is + 6] * f32::from(q4);
        }
    }
}

/// `block_q8_K { f32 d; i8 qs[256]; i16 bsums[16]; }`: `y = d * q` (the block sums are not needed).
fn q8_k(b: &[u8; 292], y: &mut [f32; QK_K]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (j, out) in y.iter_mut().enumerate() {
        *out = d * f32::from(b[4 + j] as i8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn f32_f16_bf16() {
        let bytes: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            dequantize(GgmlType::F32, &bytes, 2).ok(),
            Some(vec![1.5, -2.25])
        );
        let bytes: Vec<u8> = [0.5f32, -3.0].iter().flat_map(|&v| h(v)).collect();
        assert_eq!(
            dequantize(GgmlType::F16, &bytes, 2).ok(),
            Some(vec![0.5, -3.0])
        );
        // bf16 1.0 = 0x3f80.
        assert_eq!(
            dequantize(GgmlType::BF16, &[0x80, 0x3f, 0x00, 0xc0], 2).ok(),
            Some(vec![1.0, -2.0])
        );
    }

    #[test]
    fn q8_0_block() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &b, 32).unwrap_or_default();
        let want: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect();
        assert_eq!(y, want);
    }

    #[test]
    fn q4_0_and_q4_1_blocks() {
        let mut b = h(2.0).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_0, &b, 32).unwrap_or_default();
        assert_eq!(y[0], -16.0);
        assert_eq!(y[15], 14.0);
        assert_eq!(y[16], 14.0);
        assert_eq!(y[31], -16.0);

        let mut b = h(0.5).to_vec();
        b.extend(h(-1.0));
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_1, &b, 32).unwrap_or_default();
        assert_eq!(y[0], -1.0);
        assert_eq!(y[15], 6.5);
        assert_eq!(y[16], 6.5);
    }

    #[test]
    fn q5_0_high_bits() {
        let mut b = h(1.0).to_vec();
        // High bit set for element 1 and element 17.
        b.extend(((1u32 << 1) | (1u32 << 17)).to_le_bytes());
        b.extend([0u8; 16]);
        let y = dequantize(GgmlType::Q5_0, &b, 32).unwrap_or_default();
        assert_eq!(y[0], -16.0);
        assert_eq!(y[1], 0.0);
        assert_eq!(y[16], -16.0);
        assert_eq!(y[17], 0.0);
    }

    #[test]
    fn q8_k_block() {
        let mut b = 0.25f32.to_le_bytes().to_vec();
        b.extend((0..256).map(|i| (i as u8).wrapping_sub(128)));
        b.extend([0u8; 32]);
        let y = dequantize(GgmlType::Q8_K, &b, 256).unwrap_or_default();
        assert_eq!(y.len(), 256);
        assert_eq!(y[0], -32.0);
        assert_eq!(y[255], 31.75);
    }

    #[test]
    fn scale_min_unpacking() {
        // Sub-block 5: scale = low nibble of s[9] | top 2 bits of s[1] << 4,
        //              min   = high nibble of s[9] | top 2 bits of s[5] << 4.
        let mut s = [0u8; 12];
        s[9] = 0xA7;
        s[1] = 0b1100_0000;
        s[5] = 0b0100_0000;
        assert_eq!(scale_min_k4(5, &s), (0x07 | 0x30, 0x0A | 0x10));
        s[2] = 0xFF;
        s[6] = 0x3F;
        assert_eq!(scale_min_k4(2, &s), (63, 63));
    }

    #[test]
    fn length_errors() {
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0u8; 34], 31),
            Err(GgufError::DataLength { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0u8; 33], 32),
            Err(GgufError::DataLength { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::F32, &[0u8; 4], usize::MAX),
            Err(GgufError::DataLength { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Other(9), &[0u8; 40], 32),
            Err(GgufError::UnsupportedType { .. })
        ));
        // A hand-built `Other` with a supported id decodes like the named variant.
        assert_eq!(
            dequantize(GgmlType::Other(0), &1.0f32.to_le_bytes(), 1).ok(),
            Some(vec![1.0])
        );
        assert_eq!(dequantize(GgmlType::Q4_K, &[], 0).ok(), Some(vec![]));
    }
}

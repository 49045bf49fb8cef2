//! The SwiGLU activation of Llama's FFN, `silu(gate) * up`, and its gradient, each in one pass
//! over the rows.
//!
//! libtorch takes two kernels for the forward (`silu`, then the product) and four for the
//! backward (`g * up`, `silu_backward`, `silu` again, the product), each reading and writing
//! the rows' 1,536-wide halves: about 2 % of a SmolLM2 attribution's samples. Here each row is
//! read once and written once, with an AVX-512 exponential (Cephes' `expf` polynomial, within
//! 2 ulp) on CPUs that have it; float32 CPU tensors that are contiguous only; anything else
//! goes to libtorch. Results differ from libtorch's by float rounding.

use crate::slices::{floats, floats_mut, is_plain_float};
use tch::{Device, Kind, Tensor};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `silu(gate) * up` for `gate_up` = `[..., 2 w]` (the gate in the first `w` columns, as
/// Llama's fused projection gives them): `[..., w]`.
pub fn swiglu(gate_up: &Tensor) -> Tensor {
    let Some((rows, width)) = fused_shape(gate_up) else {
        let halves = gate_up.split(last_size(gate_up) / 2, -1);
        return halves[0].silu() * &halves[1];
    };
    let out = Tensor::empty([rows as i64, width as i64], (Kind::Float, Device::Cpu));
    // SAFETY: `gate_up` is a contiguous float32 CPU tensor of `rows x 2 width` elements and
    // `out` a fresh one of `rows x width` that nothing else refers to.
    unsafe {
        let (input, output) = (floats(gate_up), floats_mut(&out));
        for (row, out_row) in input
            .chunks_exact(2 * width)
            .zip(output.chunks_exact_mut(width))
        {
            let (gate, up) = row.split_at(width);
            forward_row(gate, up, out_row);
        }
    }
    out
}

/// The gradient of `silu(gate) * up` with respect to `gate_up` (`[rows, 2 w]`), given the
/// gradient `g` (`[rows, w]`) with respect to the activation: `[rows, 2 w]`, the gate's
/// gradient `g · up · silu'(gate)` then the up projection's `g · silu(gate)`.
pub fn swiglu_backward(gate_up: &Tensor, g: &Tensor) -> Tensor {
    let fused = fused_shape(gate_up)
        .filter(|&(rows, width)| is_plain_float(g) && g.size() == [rows as i64, width as i64]);
    let Some((rows, width)) = fused else {
        let halves = gate_up.split(last_size(gate_up) / 2, -1);
        let (gate, up) = (&halves[0], &halves[1]);
        let g_gate = gate.silu_backward(&(g * up));
        return Tensor::cat(&[g_gate, g * gate.silu()], -1);
    };
    let out = Tensor::empty([rows as i64, 2 * width as i64], (Kind::Float, Device::Cpu));
    // SAFETY: `gate_up` and `g` are contiguous float32 CPU tensors of `rows x 2 width` and
    // `rows x width` elements, `out` a fresh one of `rows x 2 width`.
    unsafe {
        let (input, gradient, output) = (floats(gate_up), floats(g), floats_mut(&out));
        for ((row, g_row), out_row) in input
            .chunks_exact(2 * width)
            .zip(gradient.chunks_exact(width))
            .zip(output.chunks_exact_mut(2 * width))
        {
            let (gate, up) = row.split_at(width);
            let (g_gate, g_up) = out_row.split_at_mut(width);
            backward_row(gate, up, g_row, g_gate, g_up);
        }
    }
    out
}

/// The size of a tensor's last dimension (0 for a scalar).
fn last_size(t: &Tensor) -> i64 {
    t.size().last().copied().unwrap_or(0)
}

/// `(rows, w)` of a `[rows, 2 w]` tensor this module computes on (float32, CPU, contiguous,
/// outside autograd), or `None`.
fn fused_shape(gate_up: &Tensor) -> Option<(usize, usize)> {
    let size = gate_up.size();
    (is_plain_float(gate_up) && size.len() == 2 && size[1] % 2 == 0)
        .then(|| (size[0] as usize, size[1] as usize / 2))
}

/// One row of [`swiglu`].
fn forward_row(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the slices have the same length.
        start = unsafe { forward_row_avx512(gate, up, out) };
    }
    for i in start..gate.len() {
        out[i] = silu(gate[i]) * up[i];
    }
}

/// One row of [`swiglu_backward`].
fn backward_row(gate: &[f32], up: &[f32], g: &[f32], g_gate: &mut [f32], g_up: &mut [f32]) {
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the slices have the same length.
        start = unsafe { backward_row_avx512(gate, up, g, g_gate, g_up) };
    }
    for i in start..gate.len() {
        let sigmoid = 1.0 / (1.0 + (-gate[i]).exp());
        g_gate[i] = g[i] * up[i] * sigmoid * (1.0 + gate[i] * (1.0 - sigmoid));
        g_up[i] = g[i] * gate[i] * sigmoid;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// [`forward_row`] 16 floats at a time; returns how many it did (a multiple of 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_row_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) -> usize {
    let whole = gate.len() - gate.len() % 16;
    for i in (0..whole).step_by(16) {
        let x = _mm512_loadu_ps(gate.as_ptr().add(i));
        let sigmoid = sigmoid512(x);
        let value = _mm512_mul_ps(
            _mm512_mul_ps(x, sigmoid),
            _mm512_loadu_ps(up.as_ptr().add(i)),
        );
        _mm512_storeu_ps(out.as_mut_ptr().add(i), value);
    }
    whole
}

/// [`backward_row`] 16 floats at a time; returns how many it did (a multiple of 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_row_avx512(
    gate: &[f32],
    up: &[f32],
    g: &[f32],
    g_gate: &mut [f32],
    g_up: &mut [f32],
) -> usize {
    let whole = gate.len() - gate.len() % 16;
    let one = _mm512_set1_ps(1.0);
    for i in (0..whole).step_by(16) {
        let x = _mm512_loadu_ps(gate.as_ptr().add(i));
        let gradient = _mm512_loadu_ps(g.as_ptr().add(i));
        let sigmoid = sigmoid512(x);
        // silu'(x) = σ (1 + x (1 − σ))
        let slope = _mm512_mul_ps(
            sigmoid,
            _mm512_fmadd_ps(x, _mm512_sub_ps(one, sigmoid), one),
        );
        let through_up = _mm512_mul_ps(gradient, _mm512_loadu_ps(up.as_ptr().add(i)));
        _mm512_storeu_ps(g_gate.as_mut_ptr().add(i), _mm512_mul_ps(through_up, slope));
        let silu = _mm512_mul_ps(x, sigmoid);
        _mm512_storeu_ps(g_up.as_mut_ptr().add(i), _mm512_mul_ps(gradient, silu));
    }
    whole
}

/// `1 / (1 + e^{-x})`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sigmoid512(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    _mm512_div_ps(
        one,
        _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))),
    )
}

/// `e^x` (Cephes' `expf`: `x = n ln 2 + r`, |r| <= ln 2 / 2, a degree-7 polynomial in `r`,
/// scaled by `2^n`); inputs are clamped to [-87.3, 88.7] (results ~1e-38 to ~3e38), NaN stays
/// NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp512(x: __m512) -> __m512 {
    // max/min return their second operand when one is NaN: `x` goes second.
    let x = _mm512_min_ps(
        _mm512_set1_ps(88.722_83),
        _mm512_max_ps(_mm512_set1_ps(-87.336_55), x),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    // r = x − n ln 2, with ln 2 in two parts for precision.
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_2e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(
        p,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    _mm512_scalef_ps(p, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of gate and up values over the range a model's FFN produces and beyond (exact
    /// zeros, large magnitudes), a width that leaves a partial vector.
    fn inputs(rows: i64, width: i64) -> Tensor {
        tch::manual_seed(7);
        let values = Tensor::randn([rows, 2 * width], (Kind::Float, Device::Cpu)) * 6.0;
        // Gates of exactly zero and of magnitudes where e^{-x} over- or underflows.
        for (row, gate) in [0.0, 95.0, -95.0].into_iter().enumerate() {
            let _ = values.get(row as i64).get(0).fill_(gate);
        }
        values
    }

    fn assert_close(got: &Tensor, want: &Tensor) {
        assert_eq!(got.size(), want.size());
        let error = (got - want).abs() - want.abs() * 2e-6;
        let worst = error.max().double_value(&[]);
        assert!(worst <= 1e-7, "off by {worst} beyond 2e-6 relative");
    }

    #[test]
    fn swiglu_matches_libtorch() {
        for width in [1, 16, 37, 1536] {
            let gate_up = inputs(5, width);
            let halves = gate_up.split(width, -1);
            assert_close(&swiglu(&gate_up), &(halves[0].silu() * &halves[1]));
        }
    }

    /// Against autograd: the gradient of `Σ g · swiglu(gate_up)` with respect to `gate_up`.
    #[test]
    fn swiglu_backward_matches_autograd() {
        for width in [1, 16, 37, 1536] {
            let gate_up = inputs(4, width).set_requires_grad(true);
            tch::manual_seed(3);
            let g = Tensor::randn([4, width], (Kind::Float, Device::Cpu));
            let halves = gate_up.split(width, -1);
            let objective = (halves[0].silu() * &halves[1] * &g).sum(Kind::Float);
            let want = Tensor::run_backward(&[&objective], &[&gate_up], false, false).remove(0);
            let got = swiglu_backward(&gate_up.detach(), &g);
            assert_close(&got, &want);
        }
    }

    /// Tensors this module does not compute on (strided, in autograd, float64) get libtorch's
    /// values.
    #[test]
    fn other_tensors_go_to_libtorch() {
        let gate_up = inputs(6, 20);
        let strided = Tensor::cat(&[&gate_up, &gate_up], 1).narrow(1, 0, 40);
        assert!(!strided.is_contiguous());
        assert_close(&swiglu(&strided), &swiglu(&gate_up));
        let doubled = gate_up.to_kind(Kind::Double);
        let halves = doubled.split(20, -1);
        assert!(swiglu(&doubled).allclose(&(halves[0].silu() * &halves[1]), 1e-12, 1e-12, false));
        let g = Tensor::ones([6, 20], (Kind::Float, Device::Cpu));
        assert_close(
            &swiglu_backward(&strided, &g),
            &swiglu_backward(&gate_up, &g),
        );
    }
}

//! The gradient of RMSNorm with respect to its input, in one pass over the rows.
//!
//! libtorch takes eight kernels for it, each over all the rows; [`rms_norm_backward_onto`]
//! reads each row once and writes it once (and adds a residual gradient on the way) for
//! float32 CPU tensors that are contiguous; anything else goes to libtorch.

use crate::matmul::dot;
use crate::slices::{floats, floats_mut, is_plain_float};
use tch::{Kind, Tensor};

/// Gradient of RMSNorm `y = x · w / sqrt(mean(x²) + eps)` with respect to `x` (`[N, d]`),
/// given the gradient `g` with respect to `y`.
pub fn rms_norm_backward(x: &Tensor, weight: &Tensor, g: &Tensor, eps: f64) -> Tensor {
    rms_norm_backward_onto(None, x, weight, g, eps)
}

/// [`rms_norm_backward`] added to `residual` (`[N, d]`) when there is one. Float32 CPU tensors
/// that are contiguous are computed a row at a time in one pass (libtorch takes eight kernels,
/// each over all the rows); anything else goes to libtorch.
pub fn rms_norm_backward_onto(
    residual: Option<&Tensor>,
    x: &Tensor,
    weight: &Tensor,
    g: &Tensor,
    eps: f64,
) -> Tensor {
    let size = x.size();
    let rows_here = size.len() == 2
        && g.size() == size
        && weight.size() == [size[1]]
        && residual.is_none_or(|r| r.size() == size && is_plain_float(r))
        && [x, weight, g].into_iter().all(is_plain_float);
    if !rows_here {
        let gradient = rms_norm_backward_weighted(x, &(g * weight), eps);
        return match residual {
            Some(residual) => residual + gradient,
            None => gradient,
        };
    }
    let (rows, width) = (size[0] as usize, size[1] as usize);
    let out = Tensor::empty([size[0], size[1]], (Kind::Float, tch::Device::Cpu));
    // SAFETY: every tensor is one `is_plain_float` accepts, of the sizes checked above; `out`
    // is fresh and nothing else refers to it.
    unsafe {
        let (x, g, weight) = (floats(x), floats(g), floats(weight));
        let residual = residual.map(|r| floats(r));
        let output = floats_mut(&out);
        let mut g_weighted = vec![0.0f32; width];
        for row in 0..rows {
            let span = row * width..(row + 1) * width;
            let (x, g) = (&x[span.clone()], &g[span.clone()]);
            for ((slot, g), w) in g_weighted.iter_mut().zip(g).zip(weight) {
                *slot = g * w;
            }
            let inverse_rms = 1.0 / (dot(x, x) / width as f32 + eps as f32).sqrt();
            let projection = dot(&g_weighted, x) / width as f32;
            let correction = projection * inverse_rms * inverse_rms;
            let out_row = &mut output[span.clone()];
            for ((slot, g_weighted), x) in out_row.iter_mut().zip(&g_weighted).zip(x) {
                *slot = (g_weighted - x * correction) * inverse_rms;
            }
            if let Some(residual) = residual {
                for (slot, value) in out_row.iter_mut().zip(&residual[span]) {
                    *slot += value;
                }
            }
        }
    }
    out
}

/// Gradient of RMSNorm over the last dimension with respect to `x`, given `g_weighted`, the
/// gradient with respect to its output times the norm's weight (any broadcast shape of it).
pub fn rms_norm_backward_weighted(x: &Tensor, g_weighted: &Tensor, eps: f64) -> Tensor {
    let inverse_rms = (x.square().mean_dim(-1, true, Kind::Float) + eps).rsqrt();
    let projection = (g_weighted * x).mean_dim(-1, true, Kind::Float);
    (g_weighted - x * (projection * inverse_rms.square())) * inverse_rms
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass RMSNorm gradient (with and without a residual) against autograd through
    /// libtorch's `rms_norm`, at widths with and without a partial group of 16.
    #[test]
    fn rms_norm_gradient_matches_autograd() {
        let float = (Kind::Float, tch::Device::Cpu);
        for (rows, width) in [(1, 5), (7, 64), (3, 576)] {
            tch::manual_seed(11);
            let x = (Tensor::randn([rows, width], float) * 3.0).set_requires_grad(true);
            let weight = Tensor::randn([width], float);
            let g = Tensor::randn([rows, width], float);
            let residual = Tensor::randn([rows, width], float);
            let y = x.rms_norm([width], Some(&weight), 1e-5);
            let objective = (&y * &g).sum(Kind::Float);
            let want = Tensor::run_backward(&[&objective], &[&x], false, false).remove(0);
            let x = x.detach();
            for (got, expected) in [
                (
                    rms_norm_backward(&x, &weight, &g, 1e-5),
                    want.shallow_clone(),
                ),
                (
                    rms_norm_backward_onto(Some(&residual), &x, &weight, &g, 1e-5),
                    &want + &residual,
                ),
            ] {
                let error = (&got - &expected).abs().max().double_value(&[]);
                let scale = expected.abs().max().double_value(&[]);
                assert!(
                    error <= 1e-5 * scale,
                    "{rows} x {width}: off by {error} of {scale}"
                );
            }
        }
    }
}

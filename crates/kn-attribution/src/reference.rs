//! A plain reference implementation of the paper's integrated gradients (eq. 3): one layer and
//! one integration point at a time, through autograd and the full output head, with none of
//! the fast path's batching, closed-form head or hand-written backward pass. Slow and short:
//! the oracle the tests hold [`crate::integrated_gradients`] to, as candle keeps a slow
//! `rms_norm` beside its fast one.

use crate::error::Result;
use crate::head::target_values;
use crate::integrated_gradients::Target;
use kn_model::tch::{Kind, Tensor};
use kn_model::{guard, EncodedPrompt, KnowledgeModel};

/// Attribution of every neuron of `layer` for `prompt` (encoded with its answer), with the
/// zero baseline and `steps` left Riemann points `alpha_k = k / steps`:
/// `a_i · (1 / steps) · Σ_k ∂target(alpha_k · a) / ∂a_i`, `a` the clean activations at the
/// answer position. Returns `[ffn_width]` scores.
pub fn integrated_gradients_reference(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layer: usize,
    steps: usize,
    target: Target,
) -> Result<Vec<f32>> {
    let clean = model.clean_pass(prompt)?;
    Ok(guard(|| {
        let activation = clean.activations.get(layer as i64);
        let mut gradient_sum = activation.zeros_like();
        for k in 0..steps {
            let alpha = k as f64 / steps as f64;
            let scaled = (&activation * alpha)
                .unsqueeze(0)
                .detach()
                .set_requires_grad(true);
            let starts = [(layer, scaled.shallow_clone())];
            let logits = model.forward_from_layers(&clean, &starts)?;
            let value = target_values(&logits, prompt, target).sum(Kind::Float);
            let gradient = Tensor::run_backward(&[value], &[&scaled], false, false).remove(0);
            gradient_sum += gradient.squeeze_dim(0);
        }
        let scores = (activation * gradient_sum / steps as f64).to_kind(Kind::Float);
        Ok(Vec::<f32>::try_from(scores)?)
    })?)
}

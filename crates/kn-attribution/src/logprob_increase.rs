//! The log-probability increase of Yu & Ananiadou, "Neuron-Level Knowledge Attribution in
//! Large Language Models" (EMNLP 2024), as their published code computes it for FFN neurons
//! (`find_ffn_value_neurons`): no gradients, one clean pass and products with the output head.
//!
//! For FFN neuron `i` of layer `l` at the answer position, with activation `m_i`, value slot
//! `v_i` (its column of the output projection) and `h` the residual stream after the layer's
//! attention (the FFN's input residual):
//!
//! ```text
//! score_i = log softmax(bs(h + m_i v_i))[answer] - log softmax(bs(h))[answer]
//! bs(x)   = W_head (w_norm * x / sqrt(mean(h_final^2) + eps))
//! ```
//!
//! where `h_final` is the residual stream leaving the last layer at the answer position: the
//! final RMSNorm's scale is fixed from the real final residual for every vector read out, as in
//! their code (the "before-softmax values" of a residual-stream component). `eps` is the final
//! norm's own epsilon (their notebook writes Llama-7B's 1e-6). Defined for models whose neurons
//! write `m_i v_i` straight into the residual stream under a final RMSNorm
//! ([`kn_model::KnowledgeModel::residual_readout`]); others are refused by name.

use crate::error::{AttributionError, Result};
use crate::integrated_gradients::{require_answer, resolve_layers, to_array2};
use kn_model::tch::{Kind, Tensor};
use kn_model::{guard, EncodedPrompt, KnowledgeModel};
use ndarray::Array2;

/// Neurons whose perturbed read-outs are held at once: `[NEURON_BLOCK, vocab]` floats.
const NEURON_BLOCK: i64 = 256;

/// The log-probability increase of every neuron of `layers` (all when `None`) for the
/// prompt's first answer token, `[layers, ffn_width]` (see the module docs).
pub fn logprob_increase(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: Option<&[usize]>,
) -> Result<Array2<f32>> {
    require_answer(prompt)?;
    let layers = resolve_layers(model, layers)?;
    let Some((norm_weight, eps)) = model.residual_readout() else {
        return Err(AttributionError::InvalidConfig(format!(
            "logprob-increase reads a neuron's contribution through the final RMSNorm and the \
             output head; {} models do not write it straight into the residual stream under a \
             final RMSNorm (LayerNorm, sandwich norms or parallel residuals)",
            model.info().architecture
        )));
    };
    let clean = model.clean_pass(prompt)?;
    let (position, answer) = (prompt.answer_position as i64, prompt.targets[0].1);
    let width = model.info().ffn_width;
    let neurons: Vec<usize> = (0..width).collect();
    let rows = guard(|| {
        let (head, bias) = model.output_projection();
        let head = head.to_kind(Kind::Float);
        let norm_weight = norm_weight.to_kind(Kind::Float);
        let last = clean
            .hidden_in
            .last()
            .ok_or_else(|| {
                kn_model::ModelError::Torch("the clean pass kept no hidden state".into())
            })?
            .get(position);
        let scale = (last.square().mean(Kind::Float) + eps).sqrt();
        // `bs(x)` of each row of `x` (`[n, d]`): `[n, vocab]`.
        let read_out = |x: &Tensor| {
            let logits = (x * &norm_weight / &scale).matmul(&head.tr());
            match &bias {
                Some(bias) => logits + bias,
                None => logits,
            }
        };
        let mut rows = Vec::with_capacity(layers.len());
        for &layer in &layers {
            let residual = clean.ffn_input_residual[layer].get(position).unsqueeze(0);
            let base = read_out(&residual)
                .log_softmax(-1, Kind::Float)
                .get(0)
                .get(answer);
            let slots = model.value_slots(layer, &neurons)?; // [F, d]
            let coefficients = clean.activations.get(layer as i64).unsqueeze(1); // [F, 1]
            let mut scores = Vec::new();
            let mut first = 0;
            while first < width as i64 {
                let count = NEURON_BLOCK.min(width as i64 - first);
                let added = slots.narrow(0, first, count) * coefficients.narrow(0, first, count);
                let log_probs = read_out(&(added + &residual)).log_softmax(-1, Kind::Float);
                scores.push(log_probs.select(1, answer) - &base);
                first += count;
            }
            rows.push(Tensor::cat(&scores, 0));
        }
        Ok(Tensor::stack(&rows, 0))
    })?;
    to_array2(&rows)
}

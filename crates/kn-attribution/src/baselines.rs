//! The cheaper scores users compare integrated gradients with: the activation itself (the
//! paper's baseline method), gradient x activation (one gradient step at alpha = 1) and
//! attribution patching (the activation change towards a counterfactual prompt times the
//! gradient), all from the clean run's gradients ([`answer_gradients`]).

use crate::error::Result;
use crate::head::target_values;
use crate::integrated_gradients::{require_answer, resolve_layers, to_array2, Target};
use kn_model::tch::{Kind, Tensor};
use kn_model::{guard, EncodedPrompt, KnowledgeModel};
use ndarray::Array2;

/// Clean FFN activations at the answer position, `[layers, ffn_width]` (all layers when
/// `layers` is `None`). The prompt needs no answer.
pub fn activation_scores(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: Option<&[usize]>,
) -> Result<Array2<f32>> {
    let layers = resolve_layers(model, layers)?;
    Ok(forward_activations(model, prompt, &layers)?.1)
}

/// One forward pass of `prompt`: its logits at the answer position (`[vocab]`) and the FFN
/// activations there of `layers`, `[layers, ffn_width]`.
pub(crate) fn forward_activations(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: &[usize],
) -> Result<(Tensor, Array2<f32>)> {
    let output = model.forward(std::slice::from_ref(prompt), &[], true)?;
    let Some(activations) = output.activations else {
        return Err(kn_model::ModelError::Torch("the model returned no activations".into()).into());
    };
    let index: Vec<i64> = layers.iter().map(|&l| l as i64).collect();
    let selected = guard(|| {
        Ok(activations
            .get(0)
            .index_select(0, &Tensor::from_slice(&index).to_device(model.device())))
    })?;
    Ok((guard(|| Ok(output.logits.get(0)))?, to_array2(&selected)?))
}

/// Gradient x activation, `[layers, ffn_width]`: the gradient of the target at the clean
/// activations, times the activations. The prompt needs an answer.
pub fn gradient_x_activation(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: Option<&[usize]>,
    target: Target,
) -> Result<Array2<f32>> {
    let (gradients, activations) = clean_gradients(model, prompt, layers, target)?;
    Ok(gradients * activations)
}

/// Attribution patching (AtP), `[layers, ffn_width]`: for a clean prompt (with its answer) and
/// a counterfactual prompt (the same template with another subject, say), each neuron's
/// `(activation on the counterfactual - activation on the clean prompt) x` the gradient of the
/// answer's log-probability at the clean run, the first-order estimate of what patching the
/// neuron's counterfactual activation into the clean run would change. Activations are taken at
/// each prompt's answer position (a causal prompt's last token), by the same forward pass.
pub fn attribution_patching(
    model: &dyn KnowledgeModel,
    clean: &EncodedPrompt,
    counterfactual: &EncodedPrompt,
    layers: Option<&[usize]>,
) -> Result<Array2<f32>> {
    let gradients = answer_gradients(model, clean, layers, Target::LogProbability)?;
    let clean_activations = activation_scores(model, clean, layers)?;
    let counterfactual_activations = activation_scores(model, counterfactual, layers)?;
    Ok((counterfactual_activations - clean_activations) * gradients)
}

/// The gradient of the target with respect to each layer's FFN activations at the answer
/// position, at the clean run, `[layers, ffn_width]`: one resumed pass per layer (the rest of
/// the model as in the clean pass). The prompt needs an answer.
pub fn answer_gradients(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: Option<&[usize]>,
    target: Target,
) -> Result<Array2<f32>> {
    Ok(clean_gradients(model, prompt, layers, target)?.0)
}

/// [`answer_gradients`] and the clean activations they are taken at, from one clean pass.
fn clean_gradients(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    layers: Option<&[usize]>,
    target: Target,
) -> Result<(Array2<f32>, Array2<f32>)> {
    require_answer(prompt)?;
    let layers = resolve_layers(model, layers)?;
    let clean = model.clean_pass(prompt)?;
    let mut gradients = Vec::with_capacity(layers.len());
    let mut activations = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let activation = guard(|| Ok(clean.activations.get(layer as i64)))?;
        let gradient = guard(|| {
            let start = activation.unsqueeze(0).detach().set_requires_grad(true);
            let logits = model.forward_from_layer(&clean, layer, &start)?;
            let value = target_values(&logits, prompt, target).sum(Kind::Float);
            let gradients = Tensor::run_backward(&[value], &[&start], false, false);
            let Some(gradient) = gradients.into_iter().next() else {
                return Err(kn_model::ModelError::Torch("no gradient returned".into()));
            };
            Ok(gradient.squeeze_dim(0))
        })?;
        gradients.push(gradient);
        activations.push(activation);
    }
    Ok((
        to_array2(&Tensor::stack(&gradients, 0))?,
        to_array2(&Tensor::stack(&activations, 0))?,
    ))
}

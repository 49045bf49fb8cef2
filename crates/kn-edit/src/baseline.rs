//! The activation baseline of the paper's experiments: instead of the neurons integrated
//! gradients attributes a fact to, take the neurons whose activation at the answer position is
//! highest (Dai et al. 2022, section 4: "we use the neurons with the highest activation values
//! as the baseline").
//!
//! [`activation_baseline`] averages, over a fact's prompts, the clean FFN activations at the
//! answer position ([`kn_attribution::activation_scores`], one pass per prompt) and keeps the
//! `count` neurons with the highest mean (signed: the largest values, not the largest
//! magnitudes; ties by `(layer, neuron)`). [`add_activation_baselines`] fills
//! [`EncodedFact::activation_baseline`] of every fact with as many neurons as its knowledge
//! neurons, which is the control of [`crate::suppress_amplify_experiment`].
//!
//! The choice lives here rather than in `kn-attribution` because it produces a
//! [`NeuronSet`], the currency of interventions and edits; the scores themselves are
//! `kn-attribution`'s.

use crate::error::{EditError, Result};
use crate::experiment::EncodedFact;
use crate::neurons::NeuronSet;
use crate::scoring::check_prompts;
use kn_attribution::{activation_scores, AttributionError};
use kn_model::{EncodedPrompt, KnowledgeModel};
use kn_schema::Neuron;

/// Maps an attribution error onto this crate's errors.
fn attribution_error(error: AttributionError) -> EditError {
    match error {
        AttributionError::Model(model) => EditError::Model(model),
        AttributionError::NoAnswer(prompt) => EditError::MissingAnswer { prompt },
        other @ AttributionError::NonFinite { .. } => {
            EditError::Model(kn_model::ModelError::Torch(other.to_string()))
        }
        other @ AttributionError::OutOfMemory { .. } => {
            EditError::Model(kn_model::ModelError::OutOfMemory(other.to_string()))
        }
        AttributionError::InvalidConfig(reason) => EditError::InvalidParameter {
            name: "layers",
            reason,
        },
    }
}

/// Mean clean activation at the answer position over `prompts`, one value per
/// `(layer, neuron)` of `layers` (all layers when `None`), as `(layers, means)` with `means`
/// row-major `[layers.len(), ffn_width]`.
///
/// Errors: no prompts, a prompt without an answer, a layer outside the model or listed twice.
pub fn mean_activations(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    layers: Option<&[usize]>,
) -> Result<(Vec<usize>, Vec<f64>)> {
    check_prompts(prompts, "the activation baseline")?;
    let layers: Vec<usize> = match layers {
        Some(list) => list.to_vec(),
        None => (0..model.info().num_layers).collect(),
    };
    let width = model.info().ffn_width;
    let mut sums = vec![0f64; layers.len() * width];
    for prompt in prompts {
        let scores = activation_scores(model, prompt, Some(&layers)).map_err(attribution_error)?;
        if scores.len() != sums.len() {
            return Err(EditError::Model(kn_model::ModelError::Torch(format!(
                "activation_scores returned {} values, expected {} layers x {width}",
                scores.len(),
                layers.len()
            ))));
        }
        // ndarray iterates in logical (row-major) order: layer by layer.
        for (sum, value) in sums.iter_mut().zip(scores.iter()) {
            *sum += f64::from(*value);
        }
    }
    let n = prompts.len() as f64;
    for sum in &mut sums {
        *sum /= n;
    }
    Ok((layers, sums))
}

/// The `count` neurons of `layers` (all when `None`) with the highest mean activation over
/// `prompts` at the answer position (see the module docs). `count = 0` gives an empty set;
/// a `count` above the number of neurons gives all of them. NaN means rank last.
pub fn activation_baseline(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    count: usize,
    layers: Option<&[usize]>,
) -> Result<NeuronSet> {
    if count == 0 {
        return Ok(NeuronSet::default());
    }
    let (layers, means) = mean_activations(model, prompts, layers)?;
    Ok(top_by_value(&layers, model.info().ffn_width, &means, count))
}

/// The `count` entries of the row-major `[layers.len(), width]` matrix with the highest
/// values, ties by `(layer, neuron)`, NaN last.
fn top_by_value(layers: &[usize], width: usize, values: &[f64], count: usize) -> NeuronSet {
    let mut ranked: Vec<(Neuron, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| {
            let layer = *layers.get(i / width.max(1))?;
            Some((Neuron::new(layer, i % width.max(1)), v))
        })
        .collect();
    ranked.sort_by(|a, b| {
        let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
        key(b.1)
            .total_cmp(&key(a.1))
            .then(a.1.is_nan().cmp(&b.1.is_nan()))
            .then(a.0.cmp(&b.0))
    });
    NeuronSet::new(ranked.into_iter().take(count).map(|(neuron, _)| neuron))
}

/// Sets [`EncodedFact::activation_baseline`] of every fact to its [`activation_baseline`]
/// with as many neurons as its knowledge neurons (an empty set for facts without any), over
/// `layers` (all when `None`; use the layers the knowledge neurons were attributed over).
/// `progress(done, total)` is called with 0 first and after each fact.
pub fn add_activation_baselines(
    model: &dyn KnowledgeModel,
    facts: &mut [EncodedFact],
    layers: Option<&[usize]>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let total = facts.len();
    progress(0, total);
    for (index, fact) in facts.iter_mut().enumerate() {
        let set = if fact.neurons.is_empty() {
            NeuronSet::default()
        } else {
            activation_baseline(model, &fact.prompts, fact.neurons.len(), layers)?
        };
        fact.activation_baseline = Some(set);
        progress(index + 1, total);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_values_rank_signed_with_ties_and_nan_last() {
        // layers 2 and 5, width 3
        let values = [0.5, -2.0, f64::NAN, 0.5, 3.0, -0.1];
        let top = top_by_value(&[2, 5], 3, &values, 3);
        assert_eq!(top.as_slice(), &[(2, 0), (5, 0), (5, 1)]);
        let all = top_by_value(&[2, 5], 3, &values, 10);
        assert_eq!(all.len(), 6);
        let one = top_by_value(&[2, 5], 3, &values, 1);
        assert_eq!(one.as_slice(), &[(5, 1)]);
        // NaN only when nothing else is left
        let five = top_by_value(&[2, 5], 3, &values, 5);
        assert!(!five.contains(2, 2));
    }

    #[test]
    fn attribution_errors_map_to_edit_errors() {
        assert!(matches!(
            attribution_error(AttributionError::NoAnswer("p".into())),
            EditError::MissingAnswer { .. }
        ));
        assert!(matches!(
            attribution_error(AttributionError::InvalidConfig("x".into())),
            EditError::InvalidParameter { name: "layers", .. }
        ));
    }
}

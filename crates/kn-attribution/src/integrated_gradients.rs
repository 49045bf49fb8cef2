//! Integrated gradients over the FFN neurons of one prompt (Dai et al., 2022, eq. 3).
//!
//! For layer `l`, let `a` be the FFN activation vector at the answer position on the clean
//! pass. The whole vector is scaled by `alpha` (zero baseline) while everything else stays as
//! the model computes it, and the gradient of the target (the answer's probability by
//! default) with respect to the scaled vector is taken at the rule's points. Attribution of
//! neuron `i` = `a_i` x the weighted mean of those gradients.
//!
//! This file holds the method: its settings, its results, the entry points and the
//! completeness check. How it is made fast lives beside it: each pass starts at layer `l` from
//! the clean pass's cached hidden states (causal models recompute only the answer position),
//! the integration points of several layers and prompts are batched into passes run on
//! concurrent workers (`passes.rs`), and the vocabulary-sized output head is taken in closed
//! form, a block of the vocabulary at a time (`head.rs`, [`crate::head_values_and_gradient`]).
//! `reference.rs` ([`crate::integrated_gradients_reference`]) computes the same equation one
//! point at a time through autograd; the tests hold this path to it.

use crate::error::{AttributionError, Result};
use crate::head::target_values;
use crate::passes::{attribute_clean_passes, Workers};
use crate::rules::IntegrationRule;
use kn_model::tch::{Device, Kind, Tensor};
use kn_model::{guard, probability_and_rank, CleanPass, EncodedPrompt, KnowledgeModel};
pub use kn_schema::ScoredNeuron;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Default cap on the rows (layer x integration point) held at once when neither the caller
/// nor the model ([`KnowledgeModel::rows_in_flight_hint`]) sets one: large enough for
/// efficient matrix products (SmolLM2's 30 layers x 20 points run as one pass), small enough
/// to keep its peak memory under 1.5 GB through autograd.
pub const DEFAULT_ROWS_PER_PASS: usize = 640;

/// What is differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The answer's probability (for a whole multi-token answer: the product of its tokens'
    /// teacher-forced probabilities). The paper's target. Default.
    #[default]
    Probability,
    /// The log of that probability (the sum of the tokens' log-probabilities).
    LogProbability,
}

impl Target {
    /// Parses `prob` / `probability` or `logprob` / `log-probability`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "prob" | "probability" => Ok(Self::Probability),
            "logprob" | "log-probability" => Ok(Self::LogProbability),
            other => Err(AttributionError::InvalidConfig(format!(
                "unknown target {other:?}: use probability or log-probability"
            ))),
        }
    }
}

/// Settings of an integrated-gradients run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionConfig {
    /// Number of integration points m (paper: 20).
    pub steps: usize,
    /// Integration rule (paper: left Riemann).
    pub rule: IntegrationRule,
    /// What is differentiated (paper: probability).
    pub target: Target,
    /// Layers to attribute, in this order; `None` for all layers.
    pub layers: Option<Vec<usize>>,
    /// Most rows (layer x integration point) held at once, which bounds memory: each of the
    /// concurrent passes holds at most `batch_size / concurrent passes` of them. 0 means the
    /// model's [`KnowledgeModel::rows_in_flight_hint`], else [`DEFAULT_ROWS_PER_PASS`].
    /// Results do not depend on it (up to float rounding).
    pub batch_size: usize,
    /// Passes run at the same time on the CPU, each on its share of the calling thread's
    /// libtorch threads (at least one); 0 means the model's
    /// [`KnowledgeModel::concurrent_passes_hint`] (2 for Llama on two or more CPU threads).
    /// Needs a model that can be shared between threads ([`KnowledgeModel::as_sync`]); on
    /// other devices passes run one after another. Results do not depend on it (up to float
    /// rounding).
    #[serde(default)]
    pub concurrent_passes: usize,
    /// Bytes the rows in flight may take when `batch_size` is 0: the model's suggestion is cut
    /// to what fits ([`KnowledgeModel::bytes_per_row_hint`]). 0 means automatic: on the CPU,
    /// half the memory available when the attribution starts; elsewhere no cut. Results do not
    /// depend on it.
    #[serde(default)]
    pub memory_budget: u64,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            steps: 20,
            rule: IntegrationRule::Left,
            target: Target::Probability,
            layers: None,
            batch_size: 0,
            concurrent_passes: 0,
            memory_budget: 0,
        }
    }
}

/// Whether `m` integration points were enough, for one layer: the attributions should sum to
/// F(alpha=1) - F(alpha=0) (the completeness axiom).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCompleteness {
    /// Layer index.
    pub layer: usize,
    /// Sum of the layer's attributions.
    pub attribution_sum: f64,
    /// Target with the layer's activations as they are (the clean pass).
    pub target_at_one: f64,
    /// Target with the layer's activations at the answer position zeroed.
    pub target_at_zero: f64,
    /// `attribution_sum - (target_at_one - target_at_zero)`.
    pub gap: f64,
}

/// Attribution of one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The attributed layers; row `r` of the matrices is layer `layers[r]`.
    pub layers: Vec<usize>,
    /// Attribution scores, `[layers.len(), ffn_width]`.
    pub scores: Array2<f32>,
    /// Clean FFN activations at the answer position, `[layers.len(), ffn_width]`.
    pub activations: Array2<f32>,
    /// Probability of the answer's first token on the clean pass.
    pub clean_prob: f64,
    /// Rank of the answer's first token among the clean pass's predictions (1 = the top one).
    pub clean_rank: usize,
    /// The target on the clean pass.
    pub clean_target: f64,
    /// Per-layer completeness check.
    pub completeness: Vec<LayerCompleteness>,
}

impl Attribution {
    /// The `k` highest-scoring neurons, in descending score (ties: lower layer, then lower
    /// neuron first).
    pub fn top(&self, k: usize) -> Vec<ScoredNeuron> {
        top_neurons(&self.layers, &self.scores, k)
    }

    /// The largest absolute score (0 for an empty matrix).
    pub fn max_abs(&self) -> f32 {
        self.scores.iter().fold(0f32, |m, s| m.max(s.abs()))
    }
}

/// The `k` highest entries of a `[layers, width]` score matrix whose row `r` is `layers[r]`.
pub fn top_neurons(layers: &[usize], scores: &Array2<f32>, k: usize) -> Vec<ScoredNeuron> {
    let mut all: Vec<ScoredNeuron> = scores
        .outer_iter()
        .zip(layers)
        .flat_map(|(row, &layer)| {
            row.iter()
                .enumerate()
                .map(move |(neuron, &score)| ScoredNeuron {
                    layer,
                    neuron,
                    score,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.layer.cmp(&b.layer))
            .then(a.neuron.cmp(&b.neuron))
    });
    all.truncate(k);
    all
}

/// Checks the settings against the model and returns the layers to attribute.
pub(crate) fn resolve_layers(
    model: &dyn KnowledgeModel,
    layers: Option<&[usize]>,
) -> Result<Vec<usize>> {
    let count = model.info().num_layers;
    let layers: Vec<usize> = match layers {
        None => (0..count).collect(),
        Some(list) => list.to_vec(),
    };
    if layers.is_empty() {
        return Err(AttributionError::InvalidConfig(
            "no layers to attribute".into(),
        ));
    }
    for (i, &layer) in layers.iter().enumerate() {
        if layer >= count {
            return Err(kn_model::ModelError::LayerOutOfRange {
                layer,
                layers: count,
            }
            .into());
        }
        if layers[..i].contains(&layer) {
            return Err(AttributionError::InvalidConfig(format!(
                "layer {layer} is listed twice"
            )));
        }
    }
    Ok(layers)
}

pub(crate) fn require_answer(prompt: &EncodedPrompt) -> Result<()> {
    if prompt.targets.is_empty() {
        return Err(AttributionError::NoAnswer(prompt.text.clone()));
    }
    Ok(())
}

/// Copies a 2-D float tensor into an ndarray matrix.
pub(crate) fn to_array2(tensor: &Tensor) -> Result<Array2<f32>> {
    let size = tensor.size();
    let (rows, cols) = (size[0] as usize, size[1] as usize);
    let values: Vec<f32> = Vec::try_from(
        tensor
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )?;
    Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| AttributionError::InvalidConfig(format!("internal shape error: {e}")))
}

/// Integrated-gradients attribution of every FFN neuron of the chosen layers for one prompt
/// (which must have been encoded with its answer).
pub fn integrated_gradients(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    config: &AttributionConfig,
) -> Result<Attribution> {
    only(integrated_gradients_batch(
        model,
        std::slice::from_ref(prompt),
        config,
    )?)
}

/// The one attribution of a one-prompt batch.
fn only(mut attributions: Vec<Attribution>) -> Result<Attribution> {
    attributions.pop().ok_or_else(|| {
        AttributionError::InvalidConfig("internal error: no attribution returned".into())
    })
}

/// The layers to attribute and the rule's (alpha, weight) points, checked against the model.
fn layers_and_points(
    model: &dyn KnowledgeModel,
    config: &AttributionConfig,
) -> Result<(Vec<usize>, Vec<(f64, f64)>)> {
    Ok((
        resolve_layers(model, config.layers.as_deref())?,
        config.rule.points(config.steps)?,
    ))
}

/// [`integrated_gradients`] of several prompts (e.g. the paraphrases of one fact) in one
/// batch: when two or more prompts' rows fit in one pass (`batch_size`, e.g. on a GPU, or with
/// few layers or points), their rows go through the model together
/// ([`KnowledgeModel::forward_features_batch`]), in larger matrix products. Results are in
/// the order of `prompts` and equal (up to float rounding) to attributing each prompt alone.
pub fn integrated_gradients_batch(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    config: &AttributionConfig,
) -> Result<Vec<Attribution>> {
    for prompt in prompts {
        require_answer(prompt)?;
    }
    let (layers, points) = layers_and_points(model, config)?;
    let workers = Workers::new(model, config)?;
    // The clean passes are independent too: the workers share them.
    let cleans = workers.run(prompts.len(), |model, i| model.clean_pass(&prompts[i]))?;
    attribute_clean_passes(&workers, &cleans, &layers, &points, config)
}

/// [`integrated_gradients`] from an existing clean pass (to reuse one pass across settings,
/// or to attribute a modified clean pass).
pub fn integrated_gradients_from_clean_pass(
    model: &dyn KnowledgeModel,
    clean: &CleanPass,
    config: &AttributionConfig,
) -> Result<Attribution> {
    require_answer(&clean.prompt)?;
    let (layers, points) = layers_and_points(model, config)?;
    only(attribute_clean_passes(
        &Workers::new(model, config)?,
        std::slice::from_ref(clean),
        &layers,
        &points,
        config,
    )?)
}

/// Scores (activation x weighted gradient), the completeness check and the clean figures of
/// one prompt, from its summed pass contributions.
pub(crate) fn finish_attribution(
    clean: &CleanPass,
    layers: &[usize],
    weighted_gradients: Vec<Option<Tensor>>,
    targets_at_zero: Vec<f64>,
    target: Target,
) -> Result<Attribution> {
    let prompt = &clean.prompt;
    let (clean_target, clean_prob, clean_rank) = guard(|| {
        let logits = clean.target_logits.unsqueeze(0);
        let value = target_values(&logits, prompt, target).double_value(&[0]);
        let (first, rank) = probability_and_rank(&logits.get(0).get(0), prompt.targets[0].1);
        Ok((value, first, rank))
    })?;
    let mut score_rows = Vec::with_capacity(layers.len());
    let mut completeness = Vec::with_capacity(layers.len());
    for ((&layer, weighted), target_at_zero) in
        layers.iter().zip(weighted_gradients).zip(targets_at_zero)
    {
        let weighted = weighted.ok_or_else(|| {
            AttributionError::InvalidConfig(format!("internal error: layer {layer} was not run"))
        })?;
        let scores = guard(|| Ok(clean.activations.get(layer as i64) * weighted))?;
        let attribution_sum = guard(|| Ok(scores.sum(Kind::Double).double_value(&[])))?;
        completeness.push(LayerCompleteness {
            layer,
            attribution_sum,
            target_at_one: clean_target,
            target_at_zero,
            gap: attribution_sum - (clean_target - target_at_zero),
        });
        score_rows.push(scores);
    }
    let scores = to_array2(&Tensor::stack(&score_rows, 0))?;
    check_finite(prompt, layers, &scores, clean_prob)?;
    let index: Vec<i64> = layers.iter().map(|&l| l as i64).collect();
    let activations = to_array2(&clean.activations.index_select(
        0,
        &Tensor::from_slice(&index).to_device(clean.activations.device()),
    ))?;
    Ok(Attribution {
        layers: layers.to_vec(),
        scores,
        activations,
        clean_prob,
        clean_rank,
        clean_target,
        completeness,
    })
}

/// A non-finite result is an error naming where it arose (the clean pass's probability, or
/// the first layer with a non-finite score), never an output.
fn check_finite(
    prompt: &EncodedPrompt,
    layers: &[usize],
    scores: &Array2<f32>,
    clean_prob: f64,
) -> Result<()> {
    if !clean_prob.is_finite() {
        return Err(AttributionError::NonFinite {
            prompt: prompt.text.clone(),
            place: "the clean pass's answer probability".into(),
        });
    }
    for (row, &layer) in scores.outer_iter().zip(layers) {
        if let Some(neuron) = row.iter().position(|s| !s.is_finite()) {
            return Err(AttributionError::NonFinite {
                prompt: prompt.text.clone(),
                place: format!("the attribution of layer {layer} (neuron {neuron} first)"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::prompt_with_targets;

    #[test]
    fn non_finite_results_are_errors_naming_where() {
        let prompt = prompt_with_targets(&[1]);
        let mut scores = Array2::<f32>::zeros((2, 3));
        check_finite(&prompt, &[4, 7], &scores, 0.5).unwrap();
        let error = check_finite(&prompt, &[4, 7], &scores, f64::NAN).unwrap_err();
        assert!(error.to_string().contains("answer probability"), "{error}");
        scores[[1, 2]] = f32::INFINITY;
        let error = check_finite(&prompt, &[4, 7], &scores, 0.5).unwrap_err();
        assert!(error.to_string().contains("layer 7 (neuron 2"), "{error}");
    }
}

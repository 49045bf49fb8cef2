//! Integrated gradients over the FFN neurons of one prompt (Dai et al., 2022, eq. 3).
//!
//! For layer `l`, let `a` be the FFN activation vector at the answer position on the clean
//! pass. The whole vector is scaled by `alpha` (zero baseline) while everything else stays as
//! the model computes it, and the gradient of the target (the answer's probability by
//! default) with respect to the scaled vector is taken at the rule's points. Attribution of
//! neuron `i` = `a_i` x the weighted mean of those gradients.
//!
//! Speed comes from the model layer: each pass starts at layer `l` from the clean pass's
//! cached hidden states (causal models recompute only the answer position, reusing cached keys
//! and values), gradients flow only to the scaled activations (weights never require grad),
//! and the integration points are batched, `batch_size` rows at a time. The vocabulary-sized
//! output head is not put through autograd: the target's gradient with respect to the head's
//! input features is taken in closed form (see [`head_values_and_gradient`]), a chunk of rows
//! at a time, so its memory does not grow with the pass and no softmax graph is stored.

use crate::error::{AttributionError, Result};
use crate::rules::IntegrationRule;
use kn_model::tch::{Device, Kind, Tensor};
use kn_model::{guard, CleanPass, EncodedPrompt, KnowledgeModel};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Default cap on the rows (layer x integration point) of one batched pass: large enough for
/// efficient matrix products (SmolLM2's 30 layers x 20 points run as one pass), small enough
/// to keep its peak memory under 1.5 GB.
pub const DEFAULT_ROWS_PER_PASS: usize = 640;

/// Rows of the output head evaluated at once in [`head_values_and_gradient`]: bounds its
/// memory to two `[rows, targets, vocab]` float32 buffers.
pub const HEAD_ROWS_PER_CHUNK: i64 = 300;

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
    /// Most rows (layer x integration point) per batched pass, which bounds memory; 0 means
    /// [`DEFAULT_ROWS_PER_PASS`]. Results do not depend on it (up to float rounding).
    pub batch_size: usize,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            steps: 20,
            rule: IntegrationRule::Left,
            target: Target::Probability,
            layers: None,
            batch_size: 0,
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

/// One neuron and its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NeuronScore {
    /// Layer index.
    pub layer: usize,
    /// Neuron index within the layer.
    pub neuron: usize,
    /// Attribution score.
    pub score: f32,
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
    /// The target on the clean pass.
    pub clean_target: f64,
    /// Per-layer completeness check.
    pub completeness: Vec<LayerCompleteness>,
}

impl Attribution {
    /// The `k` highest-scoring neurons, in descending score (ties: lower layer, then lower
    /// neuron first).
    pub fn top(&self, k: usize) -> Vec<NeuronScore> {
        top_neurons(&self.layers, &self.scores, k)
    }

    /// The largest absolute score (0 for an empty matrix).
    pub fn max_abs(&self) -> f32 {
        self.scores.iter().fold(0f32, |m, s| m.max(s.abs()))
    }
}

/// The `k` highest entries of a `[layers, width]` score matrix whose row `r` is `layers[r]`.
pub fn top_neurons(layers: &[usize], scores: &Array2<f32>, k: usize) -> Vec<NeuronScore> {
    let mut all: Vec<NeuronScore> = scores
        .outer_iter()
        .zip(layers)
        .flat_map(|(row, &layer)| {
            row.iter()
                .enumerate()
                .map(move |(neuron, &score)| NeuronScore {
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

/// The target of each row of `logits` (`[n, targets, vocab]`) for the prompt's targets.
pub(crate) fn target_values(logits: &Tensor, prompt: &EncodedPrompt, target: Target) -> Tensor {
    let ids: Vec<i64> = prompt.targets.iter().map(|&(_, id)| id).collect();
    let ids = Tensor::from_slice(&ids).to_device(logits.device());
    let n = logits.size()[0];
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let index = ids.unsqueeze(0).unsqueeze(-1).expand([n, -1, 1], false);
    let sum = log_probs
        .gather(-1, &index, false)
        .squeeze_dim(-1)
        .sum_dim_intlist(1, false, Kind::Float);
    match target {
        Target::Probability => sum.exp(),
        Target::LogProbability => sum,
    }
}

/// The target's value for every row of `features` (`[rows, targets, hidden]`, the output
/// head's input) and its gradient with respect to `features`, in closed form and without
/// autograd. With logits `z_t = f_t · Wᵀ + b` and `S = Σ_t log softmax(z_t)[y_t]`:
/// `dS/dz_t = onehot(y_t) − softmax(z_t)`, the probability target `e^S` has gradient
/// `e^S · dS/dz_t`, and `d/df_t = (d/dz_t) · W`. Rows are taken [`HEAD_ROWS_PER_CHUNK`] at a time.
/// Returns values `[rows]` and the gradient `[rows, targets, hidden]`.
pub fn head_values_and_gradient(
    features: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    prompt: &EncodedPrompt,
    target: Target,
) -> (Tensor, Tensor) {
    kn_model::tch::no_grad(|| {
        let features = features.detach();
        let (rows, targets) = (features.size()[0], features.size()[1]);
        let device = features.device();
        let ids: Vec<i64> = prompt.targets.iter().map(|&(_, id)| id).collect();
        let ids = Tensor::from_slice(&ids)
            .to_device(device)
            .view([1, targets, 1]);
        let mut values = Vec::new();
        let mut gradients = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = HEAD_ROWS_PER_CHUNK.min(rows - start);
            let log_probs = features
                .narrow(0, start, n)
                .linear(weight, bias)
                .log_softmax(-1, Kind::Float);
            let index = ids.expand([n, targets, 1], false);
            let sum = log_probs
                .gather(-1, &index, false)
                .squeeze_dim(-1)
                .sum_dim_intlist(1, false, Kind::Float);
            // dS/dz = onehot(y) - softmax(z), built in the log-probabilities' buffer.
            let mut gradient = log_probs;
            let _ = gradient.exp_().neg_();
            let _ = gradient.scatter_add_(
                -1,
                &index,
                &Tensor::ones([n, targets, 1], (Kind::Float, device)),
            );
            let value = match target {
                Target::Probability => {
                    let value = sum.exp();
                    let _ = gradient.g_mul_(&value.view([n, 1, 1]));
                    value
                }
                Target::LogProbability => sum,
            };
            gradients.push(gradient.matmul(weight));
            values.push(value);
            start += n;
        }
        (Tensor::cat(&values, 0), Tensor::cat(&gradients, 0))
    })
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
    require_answer(prompt)?;
    let layers = resolve_layers(model, config.layers.as_deref())?;
    let points = config.rule.points(config.steps)?;
    let clean = model.clean_pass(prompt)?;
    attribute_layers(model, &clean, &layers, &points, config)
}

/// [`integrated_gradients`] from an existing clean pass (to reuse one pass across settings,
/// or to attribute a modified clean pass).
pub fn integrated_gradients_from_clean_pass(
    model: &dyn KnowledgeModel,
    clean: &CleanPass,
    config: &AttributionConfig,
) -> Result<Attribution> {
    require_answer(&clean.prompt)?;
    let layers = resolve_layers(model, config.layers.as_deref())?;
    let points = config.rule.points(config.steps)?;
    attribute_layers(model, clean, &layers, &points, config)
}

fn attribute_layers(
    model: &dyn KnowledgeModel,
    clean: &CleanPass,
    layers: &[usize],
    points: &[(f64, f64)],
    config: &AttributionConfig,
) -> Result<Attribution> {
    let prompt = &clean.prompt;
    let device = model.device();
    let (clean_target, clean_prob) = guard(|| {
        let logits = clean.target_logits.unsqueeze(0);
        let target = target_values(&logits, prompt, config.target).double_value(&[0]);
        let first = logits
            .get(0)
            .get(0)
            .softmax(-1, Kind::Float)
            .double_value(&[prompt.targets[0].1]);
        Ok((target, first))
    })?;
    // Rows of one layer: the rule's points, plus alpha = 0 (weight 0) for the completeness
    // check when the rule has no such point.
    let mut rows: Vec<(f64, f64)> = points.to_vec();
    let zero_row = match rows.iter().position(|&(alpha, _)| alpha == 0.0) {
        Some(index) => index,
        None => {
            rows.push((0.0, 0.0));
            rows.len() - 1
        }
    };
    // One batched pass covers several layers x several points (the model shares the work
    // of rows that start at different layers from where they meet), at most `cap` rows.
    let cap = if config.batch_size == 0 {
        DEFAULT_ROWS_PER_PASS
    } else {
        config.batch_size
    };
    let layers_per_pass = layers.len().min(cap).max(1);
    let points_per_pass = (cap / layers_per_pass).clamp(1, rows.len());
    let (weight, bias) = model.output_projection();
    let (weighted_gradients, targets_at_zero) = guard(|| {
        let mut weighted: Vec<Tensor> = layers
            .iter()
            .map(|&l| Tensor::zeros_like(&clean.activations.get(l as i64)))
            .collect();
        let mut at_zero = vec![f64::NAN; layers.len()];
        for (group_index, group) in layers.chunks(layers_per_pass).enumerate() {
            let first_layer = group_index * layers_per_pass;
            for (chunk_index, chunk) in rows.chunks(points_per_pass).enumerate() {
                let first_row = chunk_index * points_per_pass;
                let alphas: Vec<f32> = chunk.iter().map(|&(a, _)| a as f32).collect();
                let weights: Vec<f32> = chunk.iter().map(|&(_, w)| w as f32).collect();
                let alphas = Tensor::from_slice(&alphas).to_device(device).unsqueeze(1);
                let weights = Tensor::from_slice(&weights).to_device(device).unsqueeze(1);
                let starts: Vec<(usize, Tensor)> = group
                    .iter()
                    .map(|&layer| {
                        let scaled =
                            (&alphas * clean.activations.get(layer as i64).unsqueeze(0)).detach();
                        (layer, scaled.set_requires_grad(true))
                    })
                    .collect();
                let features = model.forward_features_from_layers(clean, &starts)?;
                let (values, features_gradient) = head_values_and_gradient(
                    &features,
                    &weight,
                    bias.as_ref(),
                    prompt,
                    config.target,
                );
                // d(target)/d(activations) = J^T d(target)/d(features): one backward pass of
                // <features, gradient> with the gradient held constant.
                let surrogate = (&features * &features_gradient).sum(Kind::Float);
                let inputs: Vec<&Tensor> = starts.iter().map(|(_, t)| t).collect();
                let gradients = Tensor::run_backward(&[surrogate], &inputs, false, false);
                if gradients.len() != group.len() {
                    return Err(kn_model::ModelError::Torch("missing gradients".into()));
                }
                let values = values.reshape([group.len() as i64, chunk.len() as i64]);
                for (k, gradient) in gradients.into_iter().enumerate() {
                    weighted[first_layer + k] +=
                        (gradient * &weights).sum_dim_intlist(0, false, Kind::Float);
                    if (first_row..first_row + chunk.len()).contains(&zero_row) {
                        at_zero[first_layer + k] =
                            values.double_value(&[k as i64, (zero_row - first_row) as i64]);
                    }
                }
            }
        }
        Ok((weighted, at_zero))
    })?;
    let mut score_rows = Vec::with_capacity(layers.len());
    let mut completeness = Vec::with_capacity(layers.len());
    for ((&layer, weighted), target_at_zero) in
        layers.iter().zip(weighted_gradients).zip(targets_at_zero)
    {
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
    let index: Vec<i64> = layers.iter().map(|&l| l as i64).collect();
    let activations = to_array2(
        &clean
            .activations
            .index_select(0, &Tensor::from_slice(&index).to_device(device)),
    )?;
    Ok(Attribution {
        layers: layers.to_vec(),
        scores,
        activations,
        clean_prob,
        clean_target,
        completeness,
    })
}

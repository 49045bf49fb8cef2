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
//! input features is taken in closed form (see [`head_values_and_gradient`]), a block of the
//! vocabulary at a time, so no vocabulary-sized buffer or softmax graph is ever stored.

use crate::error::{AttributionError, Result};
use crate::passes::{fill_last_round, plan_passes, run_concurrently, PassPart, ReadOnly};
use crate::rules::IntegrationRule;
use kn_model::matmul::{add_matmul, linear, matmul, row_kernels};
use kn_model::tch::{Device, Kind, Tensor};
use kn_model::{guard, CleanPass, EncodedPrompt, KnowledgeModel};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Default cap on the rows (layer x integration point) held at once when neither the caller
/// nor the model ([`KnowledgeModel::rows_in_flight_hint`]) sets one: large enough for
/// efficient matrix products (SmolLM2's 30 layers x 20 points run as one pass), small enough
/// to keep its peak memory under 1.5 GB through autograd.
pub const DEFAULT_ROWS_PER_PASS: usize = 640;

/// Rows of the output matrix (vocabulary entries) taken at once in
/// [`head_values_and_gradient`]: its working memory is one `[block, rows x targets]` float32
/// buffer, and a block of SmolLM2's `[49152, 576]` matrix (4.5 MiB) stays in cache for both of
/// the block's products.
pub const HEAD_VOCAB_BLOCK: i64 = 2048;

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

/// The memory budget of an attribution's rows in flight: the configured one, else on the CPU
/// half the memory available now; `None` (no cut) on other devices when none is configured.
fn memory_budget(config: &AttributionConfig, device: Device) -> Option<u64> {
    match config.memory_budget {
        0 if device == Device::Cpu => kn_model::available_memory().map(|bytes| bytes / 2),
        0 => None,
        bytes => Some(bytes),
    }
}

/// Rows in flight that fit `budget` bytes at `bytes_per_row` each (at least one).
pub fn rows_within(budget: u64, bytes_per_row: u64) -> usize {
    usize::try_from(budget / bytes_per_row.max(1))
        .unwrap_or(usize::MAX)
        .max(1)
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
/// autograd. With logits `z_t = W · f_t + b` and `S = Σ_t log softmax(z_t)[y_t]`:
/// `dS/df_t = W[y_t] − Σ_j softmax(z_t)_j W[j]` (the answer's output row minus the
/// probability-weighted mean of all output rows), and the probability target `e^S` has
/// gradient `e^S · dS/df_t`. Returns values `[rows]` and the gradient `[rows, targets, hidden]`.
///
/// The vocabulary is walked in blocks of [`HEAD_VOCAB_BLOCK`] rows of `W` with a running
/// maximum (the "online softmax"): each block's logits `f · W_bᵀ` (`[lines, block]`) are
/// exponentiated against the running maximum and folded into the running normaliser and the
/// running weighted sum of `W_b`'s rows, which are rescaled when the maximum grows. Nothing
/// vocabulary-sized is ever stored, both products of a block reuse `W_b` while it is in cache,
/// and the result equals the softmax over the whole vocabulary up to float rounding.
pub fn head_values_and_gradient(
    features: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    prompt: &EncodedPrompt,
    target: Target,
) -> (Tensor, Tensor) {
    kn_model::tch::no_grad(|| {
        let (lines, ids) = head_lines(features, prompt);
        let (log_probs, gradients) = line_log_probs_and_gradients(&lines, &ids, weight, bias);
        combine_targets(&log_probs, gradients, features.size(), target)
    })
}

/// The rows of `features` (`[rows, targets, hidden]`) as lines `[rows x targets, hidden]`,
/// one per (row, target), with each line's answer token id.
fn head_lines(features: &Tensor, prompt: &EncodedPrompt) -> (Tensor, Tensor) {
    let size = features.size();
    let ids: Vec<i64> = prompt.targets.iter().map(|&(_, id)| id).collect();
    let ids = Tensor::from_slice(&ids)
        .to_device(features.device())
        .repeat([size[0]]);
    (features.detach().reshape([size[0] * size[1], size[2]]), ids)
}

/// Per line `f` with answer id `y`: `log softmax(W·f + b)[y]` (`[lines]`) and its gradient
/// with respect to `f`, `W[y] − Σ_j softmax_j W[j]` (`[lines, hidden]`), by the blocked online
/// softmax described at [`head_values_and_gradient`].
fn line_log_probs_and_gradients(
    lines: &Tensor,
    ids: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let (count, hidden) = (lines.size()[0], lines.size()[1]);
    let float = (Kind::Float, lines.device());
    let answer_rows = weight.index_select(0, ids); // [lines, hidden]
    let mut answer_logits = (lines * &answer_rows).sum_dim_intlist(1, false, Kind::Float);
    if let Some(bias) = bias {
        answer_logits += bias.index_select(0, ids);
    }
    let vocab = weight.size()[0];
    let mut running_max = Tensor::full([count], f64::NEG_INFINITY, float);
    let mut normaliser = Tensor::zeros([count], float);
    let mut weighted_rows = Tensor::zeros([count, hidden], float);
    let mut first = 0;
    while first < vocab {
        let block = HEAD_VOCAB_BLOCK.min(vocab - first);
        let block_weight = weight.narrow(0, first, block);
        // [lines, block]: a row per line for `kn_model::matmul`'s own kernels; for libtorch's
        // (several threads, CUDA) the transpose of a row per vocabulary entry, which MKL
        // multiplies faster (2 % of a BERT-base attribution on two threads).
        let mut logits = if row_kernels(&[lines, &block_weight]) {
            linear(lines, &block_weight)
        } else {
            matmul(&block_weight, &lines.tr()).tr()
        };
        if let Some(bias) = bias {
            logits += bias.narrow(0, first, block).unsqueeze(0);
        }
        let new_max = running_max.maximum(&logits.amax([1], false));
        let rescale = (&running_max - &new_max).exp();
        let _ = logits.g_sub_(&new_max.unsqueeze(1)).exp_();
        normaliser = normaliser * &rescale + logits.sum_dim_intlist(1, false, Kind::Float);
        let _ = weighted_rows.g_mul_(&rescale.unsqueeze(1));
        add_matmul(&mut weighted_rows, &logits, &block_weight);
        running_max = new_max;
        first += block;
    }
    let log_probs = answer_logits - (&running_max + normaliser.log());
    (
        log_probs,
        answer_rows - weighted_rows / normaliser.unsqueeze(1),
    )
}

/// From per-line log-probabilities and gradients (lines in `[rows, targets]` order, `size`
/// = the features' `[rows, targets, hidden]`): each row's target and its gradient.
fn combine_targets(
    log_probs: &Tensor,
    mut gradients: Tensor,
    size: Vec<i64>,
    target: Target,
) -> (Tensor, Tensor) {
    let (rows, targets) = (size[0], size[1]);
    let sum = log_probs
        .reshape([rows, targets])
        .sum_dim_intlist(1, false, Kind::Float);
    let value = match target {
        Target::Probability => {
            let value = sum.exp();
            let _ = gradients.g_mul_(
                &value
                    .unsqueeze(1)
                    .expand([rows, targets], false)
                    .reshape([rows * targets, 1]),
            );
            value
        }
        Target::LogProbability => sum,
    };
    (value, gradients.reshape(size))
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

/// What one part of a pass contributes: per layer of its group, the rule-weighted sum of its
/// rows' gradients, and the target at alpha = 0 when the part holds that row.
struct PartResult {
    weighted_gradients: Vec<Tensor>,
    targets_at_zero: Vec<Option<f64>>,
}

/// Runs one batched pass ([`KnowledgeModel::start_gradients_batch`]): forward from the scaled
/// activations of every part to the head's features (all parts through each layer together),
/// the target and its gradient there in closed form, and one backward pass to the activations.
fn run_pass(
    model: &dyn KnowledgeModel,
    cleans: &[CleanPass],
    layers: &[usize],
    rows: &[(f64, f64)],
    zero_row: usize,
    parts: &[PassPart],
    target: Target,
) -> kn_model::Result<Vec<PartResult>> {
    let device = model.device();
    let (weight, bias) = model.output_projection();
    guard(|| {
        let tensor = |values: Vec<f32>| Tensor::from_slice(&values).to_device(device).unsqueeze(1);
        let starts: Vec<Vec<(usize, Tensor)>> = parts
            .iter()
            .map(|part| {
                let alphas = tensor(
                    rows[part.rows.clone()]
                        .iter()
                        .map(|&(a, _)| a as f32)
                        .collect(),
                );
                let clean = &cleans[part.prompt];
                layers[part.layers.clone()]
                    .iter()
                    .map(|&layer| {
                        let scaled =
                            (&alphas * clean.activations.get(layer as i64).unsqueeze(0)).detach();
                        (layer, scaled)
                    })
                    .collect()
            })
            .collect();
        let runs: Vec<(&CleanPass, &[(usize, Tensor)])> = parts
            .iter()
            .zip(&starts)
            .map(|(part, s)| (&cleans[part.prompt], s.as_slice()))
            .collect();
        // The head in closed form, all parts' lines at once; the model takes its gradient back
        // to the scaled activations (d target / d activations = Jᵀ d target / d features).
        let mut heads: Vec<(Tensor, Tensor)> = Vec::new();
        let mut head = |features: &[Tensor]| -> kn_model::Result<Vec<Tensor>> {
            if features.len() != parts.len() {
                return Err(kn_model::ModelError::Torch("missing features".into()));
            }
            let (lines, ids): (Vec<Tensor>, Vec<Tensor>) = parts
                .iter()
                .zip(features)
                .map(|(part, f)| head_lines(f, &cleans[part.prompt].prompt))
                .unzip();
            let line_counts: Vec<i64> = lines.iter().map(|l| l.size()[0]).collect();
            heads = kn_model::tch::no_grad(|| {
                let (log_probs, gradients) = line_log_probs_and_gradients(
                    &Tensor::cat(&lines, 0),
                    &Tensor::cat(&ids, 0),
                    &weight,
                    bias.as_ref(),
                );
                log_probs
                    .split_with_sizes(&line_counts, 0)
                    .iter()
                    .zip(gradients.split_with_sizes(&line_counts, 0))
                    .zip(features)
                    .map(|((lp, g), f)| combine_targets(lp, g, f.size(), target))
                    .collect()
            });
            Ok(heads.iter().map(|(_, g)| g.shallow_clone()).collect())
        };
        let gradients = model.start_gradients_batch(&runs, &mut head)?;
        if heads.len() != parts.len() {
            return Err(kn_model::ModelError::Torch(
                "the model did not evaluate the head".into(),
            ));
        }
        let mut gradients = gradients.into_iter().flatten();
        let mut results = Vec::with_capacity(parts.len());
        for (part, (values, _)) in parts.iter().zip(&heads) {
            let (group, chunk) = (part.layers.len(), part.rows.len());
            let weights = tensor(
                rows[part.rows.clone()]
                    .iter()
                    .map(|&(_, w)| w as f32)
                    .collect(),
            );
            let values = values.reshape([group as i64, chunk as i64]);
            let zero_in_part = part
                .rows
                .contains(&zero_row)
                .then(|| (zero_row - part.rows.start) as i64);
            let mut weighted_gradients = Vec::with_capacity(group);
            for _ in 0..group {
                let gradient = gradients
                    .next()
                    .ok_or_else(|| kn_model::ModelError::Torch("missing gradients".into()))?;
                weighted_gradients.push((gradient * &weights).sum_dim_intlist(
                    0,
                    false,
                    Kind::Float,
                ));
            }
            let targets_at_zero = (0..group)
                .map(|k| zero_in_part.map(|row| values.double_value(&[k as i64, row])))
                .collect();
            results.push(PartResult {
                weighted_gradients,
                targets_at_zero,
            });
        }
        Ok(results)
    })
}

/// Where an attribution's independent jobs (clean passes, batched passes) run: in order on the
/// calling thread, or on several workers at once when the model can be shared between threads.
struct Workers<'m> {
    model: &'m dyn KnowledgeModel,
    /// How many workers, and the model as shared with them; `None` for the calling thread.
    concurrent: Option<(usize, &'m (dyn KnowledgeModel + Sync))>,
}

impl<'m> Workers<'m> {
    /// The caller's `concurrent_passes`, else the model's hint; more than one worker only on
    /// the CPU and for a model shareable between threads. Asking explicitly for concurrent
    /// passes on a model that cannot share is an error.
    fn new(model: &'m dyn KnowledgeModel, config: &AttributionConfig) -> Result<Self> {
        let requested = match config.concurrent_passes {
            0 => model.concurrent_passes_hint(),
            count => count,
        };
        let concurrent = if requested <= 1 || model.device() != Device::Cpu {
            None
        } else {
            match model.as_sync() {
                Some(shared) => Some((requested, shared)),
                None if config.concurrent_passes > 1 => {
                    return Err(AttributionError::InvalidConfig(format!(
                        "{} concurrent passes asked, but this model cannot be shared between \
                         threads: use 1",
                        config.concurrent_passes
                    )))
                }
                None => None,
            }
        };
        Ok(Self { model, concurrent })
    }

    /// How many jobs run at once.
    fn count(&self) -> usize {
        self.concurrent.map_or(1, |(count, _)| count)
    }

    /// `job(model, i)` for every `i` in `0..jobs`, results in that order (see
    /// [`run_concurrently`]).
    fn run<T: Send>(
        &self,
        jobs: usize,
        job: impl Fn(&dyn KnowledgeModel, usize) -> kn_model::Result<T> + Sync,
    ) -> Result<Vec<T>> {
        match self.concurrent {
            Some((count, shared)) => run_concurrently(jobs, count, |i| Ok(job(shared, i)?)),
            None => (0..jobs).map(|i| Ok(job(self.model, i)?)).collect(),
        }
    }
}

fn attribute_clean_passes(
    workers: &Workers,
    cleans: &[CleanPass],
    layers: &[usize],
    points: &[(f64, f64)],
    config: &AttributionConfig,
) -> Result<Vec<Attribution>> {
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
    let budget = memory_budget(config, workers.model.device());
    let rows_in_flight = if config.batch_size == 0 {
        let suggested = workers
            .model
            .rows_in_flight_hint()
            .unwrap_or(DEFAULT_ROWS_PER_PASS);
        match (budget, workers.model.bytes_per_row_hint()) {
            (Some(budget), Some(per_row)) => suggested.min(rows_within(budget, per_row)),
            _ => suggested,
        }
    } else {
        config.batch_size
    };
    let plans = fill_last_round(
        plan_passes(
            cleans.len(),
            layers.len(),
            rows.len(),
            (rows_in_flight / workers.count()).max(1),
        ),
        workers.count(),
    );
    let shared_cleans = ReadOnly::new(cleans);
    let pass_results = workers
        .run(plans.len(), |model, index| {
            run_pass(
                model,
                shared_cleans.get(),
                layers,
                &rows,
                zero_row,
                &plans[index],
                config.target,
            )
        })
        .map_err(|error| match error {
            AttributionError::Model(kn_model::ModelError::OutOfMemory(message)) => {
                AttributionError::OutOfMemory {
                    rows_in_flight,
                    budget,
                    message,
                }
            }
            other => other,
        })?;
    // Sum each layer's contributions in plan order.
    let mut per_prompt: Vec<(Vec<Option<Tensor>>, Vec<f64>)> = cleans
        .iter()
        .map(|_| {
            (
                (0..layers.len()).map(|_| None).collect(),
                vec![f64::NAN; layers.len()],
            )
        })
        .collect();
    for (parts, results) in plans.iter().zip(pass_results) {
        for (part, result) in parts.iter().zip(results) {
            let (weighted, at_zero) = &mut per_prompt[part.prompt];
            for ((k, gradient), value) in part
                .layers
                .clone()
                .zip(result.weighted_gradients)
                .zip(result.targets_at_zero)
            {
                weighted[k] = Some(match weighted[k].take() {
                    Some(sum) => sum + gradient,
                    None => gradient,
                });
                if let Some(value) = value {
                    at_zero[k] = value;
                }
            }
        }
    }
    cleans
        .iter()
        .zip(per_prompt)
        .map(|(clean, (weighted, at_zero))| {
            finish_attribution(clean, layers, weighted, at_zero, config.target)
        })
        .collect()
}

/// Scores (activation x weighted gradient), the completeness check and the clean figures of
/// one prompt, from its summed pass contributions.
fn finish_attribution(
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
        let probs = logits.get(0).get(0).softmax(-1, Kind::Float);
        let first = probs.double_value(&[prompt.targets[0].1]);
        let above = probs.gt(first).sum(Kind::Int64).int64_value(&[]);
        Ok((value, first, above as usize + 1))
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

    fn prompt_with_targets(ids: &[i64]) -> EncodedPrompt {
        EncodedPrompt {
            text: "test".into(),
            token_ids: vec![0; ids.len() + 1],
            answer_position: 0,
            answer_ids: ids.to_vec(),
            targets: ids.iter().enumerate().map(|(i, &id)| (i, id)).collect(),
        }
    }

    /// The blocked closed form against autograd through a plain full-vocabulary log-softmax,
    /// with a vocabulary that is not a multiple of the block, several targets and a bias.
    #[test]
    fn closed_form_head_matches_autograd() {
        // Two libtorch threads: libtorch's products; one: `kn_model::matmul`'s own (the
        // few-row kernel and, with more rows, the AVX-512 ones), with a row per line.
        for (threads, rows) in [(2, 5i64), (1, 5), (1, 23)] {
            kn_model::on_new_thread(threads, || closed_form_head_matches_autograd_with(rows));
        }
    }

    fn closed_form_head_matches_autograd_with(rows: i64) {
        kn_model::tch::manual_seed(7);
        let (hidden, vocab) = (16i64, 2 * HEAD_VOCAB_BLOCK + 77);
        let weight = Tensor::randn([vocab, hidden], (Kind::Float, Device::Cpu));
        let bias = Tensor::randn([vocab], (Kind::Float, Device::Cpu));
        for ids in [vec![3i64], vec![vocab - 1, HEAD_VOCAB_BLOCK, 11]] {
            let prompt = prompt_with_targets(&ids);
            let targets = ids.len() as i64;
            for target in [Target::Probability, Target::LogProbability] {
                for bias in [None, Some(&bias)] {
                    let features =
                        (Tensor::randn([rows, targets, hidden], (Kind::Float, Device::Cpu)) * 0.3)
                            .set_requires_grad(true);
                    let expected_values =
                        target_values(&features.linear(&weight, bias), &prompt, target);
                    let expected_gradient =
                        autograd_gradient(&expected_values.sum(Kind::Float), &features);
                    let (values, gradient) =
                        head_values_and_gradient(&features, &weight, bias, &prompt, target);
                    let value_error = (&values - expected_values.detach())
                        .abs()
                        .max()
                        .double_value(&[]);
                    let scale = expected_gradient.abs().max().double_value(&[]);
                    let gradient_error = (&gradient - &expected_gradient)
                        .abs()
                        .max()
                        .double_value(&[]);
                    assert!(
                        value_error
                            <= 1e-5 * expected_values.abs().max().double_value(&[]).max(1e-3),
                        "{target:?}: values off by {value_error}"
                    );
                    assert!(
                        gradient_error <= 1e-5 * scale,
                        "{target:?} bias {}: gradient off by {gradient_error} (scale {scale})",
                        bias.is_some()
                    );
                }
            }
        }
    }

    /// The gradient of the scalar `value` with respect to `input`, by autograd.
    fn autograd_gradient(value: &Tensor, input: &Tensor) -> Tensor {
        Tensor::run_backward(&[value], &[input], false, false).remove(0)
    }
}

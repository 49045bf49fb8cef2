//! The interface every architecture implements: [`KnowledgeModel`].
//!
//! Attribution, selection, interventions and editing work only through this trait, so a new
//! architecture plugs in by implementing it. A "neuron" is one unit of the FFN intermediate
//! layer (the activation after the nonlinearity, i.e. the input of the FFN output projection);
//! its "value slot" is the matching column of that output projection.

use crate::error::Result;
pub use kn_schema::{ModelInfo, ModelKind};
use kn_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// How an answer of several tokens is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerPolicy {
    /// Score the first token of the answer (the paper's single-token objects). Default.
    #[default]
    FirstToken,
    /// Refuse answers that are not exactly one token.
    SingleToken,
    /// Causal models only: score every token of the answer, teacher-forced (the prompt is
    /// followed by the answer's tokens but the last). Targets are the answer's tokens at the
    /// answer position and the positions after it.
    WholeAnswer,
}

/// A prompt encoded for a model, with where and what the answer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedPrompt {
    /// The prompt text as given.
    pub text: String,
    /// Token ids fed to the model (special tokens included; for
    /// [`AnswerPolicy::WholeAnswer`] the answer's tokens but the last follow the prompt).
    pub token_ids: Vec<i64>,
    /// Position whose FFN activations are attributed and edited: the mask token for masked
    /// LMs, the last prompt token for causal LMs.
    pub answer_position: usize,
    /// Token ids of the whole answer (empty when no answer was given).
    pub answer_ids: Vec<i64>,
    /// The scored (position, token) pairs: one for the first-token policies, one per answer
    /// token for [`AnswerPolicy::WholeAnswer`]. Empty when no answer was given.
    pub targets: Vec<(usize, i64)>,
}

/// What to do to one neuron's activation at the answer position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ActivationOp {
    /// Multiply by this factor (0 suppresses, 2 amplifies).
    Scale(f64),
    /// Replace by this value.
    Set(f64),
}

/// An edit of one neuron's activation at the answer position of every prompt in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationEdit {
    /// Layer index.
    pub layer: usize,
    /// Neuron index within the layer.
    pub neuron: usize,
    /// The operation.
    pub op: ActivationOp,
}

/// Output of a batched forward pass.
#[derive(Debug)]
pub struct ForwardOutput {
    /// Logits at each prompt's answer position, `[batch, vocab]`, float32.
    pub logits: Tensor,
    /// FFN activations at each prompt's answer position, `[batch, layers, ffn_width]`, when
    /// they were asked for (after the edits were applied).
    pub activations: Option<Tensor>,
}

/// What a clean (unedited) pass leaves behind so that a later pass can start at any layer.
///
/// Tensors are those of one prompt, without a batch dimension. `hidden_in[l]` is the hidden
/// state entering layer `l` (`hidden_in[num_layers]` leaves the last layer), `[T, d]`.
/// `ffn_input_residual[l]` is the residual stream the FFN output of layer `l` is added to
/// (after attention), `[T, d]`. `activations` are the FFN activations at the answer position,
/// `[layers, ffn_width]`. For causal models `keys`/`values` hold each layer's attention keys
/// and values (after RoPE) of all positions, `[kv_heads, T, head_dim]`.
#[derive(Debug)]
pub struct CleanPass {
    /// The prompt this pass is for.
    pub prompt: EncodedPrompt,
    /// Hidden state entering each layer, and leaving the last: `num_layers + 1` tensors `[T, d]`.
    pub hidden_in: Vec<Tensor>,
    /// Residual after attention, per layer, `[T, d]`.
    pub ffn_input_residual: Vec<Tensor>,
    /// FFN activations at the answer position, `[layers, ffn_width]`.
    pub activations: Tensor,
    /// Attention keys per layer (causal models), `[kv_heads, T, head_dim]`.
    pub keys: Vec<Tensor>,
    /// Attention values per layer (causal models), `[kv_heads, T, head_dim]`.
    pub values: Vec<Tensor>,
    /// Logits at the target positions, `[targets, vocab]`.
    pub target_logits: Tensor,
}

/// A pretrained transformer whose FFN neurons can be read, edited and attributed.
///
/// Implementations: [`crate::BertMaskedLm`], [`crate::LlamaCausalLm`]. All tensors returned
/// are float32 on [`KnowledgeModel::device`]. Methods never panic on user input.
pub trait KnowledgeModel: Send {
    /// Architecture facts.
    fn info(&self) -> &ModelInfo;

    /// Where the weights live.
    fn device(&self) -> Device;

    /// The model's tokenizer.
    fn tokenizer(&self) -> &dyn Tokenizer;

    /// Human-readable form of one token id (as the tokenizer decodes it).
    fn token_text(&self, id: i64) -> String;

    /// Encodes `prompt` and, when given, its `answer` according to `policy`.
    ///
    /// Masked LMs need exactly one mask token in the prompt (written `[MASK]`, or the model's
    /// own mask token); causal LMs predict the token after the prompt (the answer is
    /// tokenized with a leading space).
    fn encode(
        &self,
        prompt: &str,
        answer: Option<&str>,
        policy: AnswerPolicy,
    ) -> Result<EncodedPrompt>;

    /// One batched forward pass over `prompts` (padded internally), with `edits` applied to
    /// the FFN activations at every prompt's answer position. With `capture_activations`, the
    /// (edited) activations at the answer positions are returned too.
    fn forward(
        &self,
        prompts: &[EncodedPrompt],
        edits: &[ActivationEdit],
        capture_activations: bool,
    ) -> Result<ForwardOutput>;

    /// A clean pass over one prompt keeping what [`KnowledgeModel::forward_from_layer`] needs.
    fn clean_pass(&self, prompt: &EncodedPrompt) -> Result<CleanPass>;

    /// Starts passes from `clean` at several layers at once: for each `(layer, activations)`
    /// of `starts`, the layer's FFN activation vector at the answer position is replaced by
    /// each row of `activations` (`[n, ffn_width]`), everything else is as in the clean pass.
    /// Returns the logits at the prompt's target positions, `[total rows, targets, vocab]`,
    /// rows in the order of `starts`. Differentiable with respect to every `activations`.
    ///
    /// Nothing below a row's layer is recomputed, and rows that start at different layers
    /// share one batched pass from the layer where they meet; causal models recompute only
    /// the positions from the answer position on, reusing the clean pass's keys and values.
    ///
    /// Provided: [`KnowledgeModel::forward_features_from_layers`] followed by
    /// [`KnowledgeModel::output_projection`].
    fn forward_from_layers(&self, clean: &CleanPass, starts: &[(usize, Tensor)]) -> Result<Tensor> {
        let features = self.forward_features_from_layers(clean, starts)?;
        let (weight, bias) = self.output_projection();
        crate::guard(|| {
            let logits = kn_kernels::matmul::linear(&features, &weight);
            Ok(match bias {
                Some(bias) => logits + bias,
                None => logits,
            })
        })
    }

    /// [`KnowledgeModel::forward_from_layers`] up to the output projection: the features at
    /// the prompt's target positions, `[total rows, targets, hidden]`, whose product with the
    /// output projection gives the logits (`features · Wᵀ + b`). Differentiable with respect
    /// to every `activations`. Attribution uses it to take the vocabulary-sized part of the
    /// gradient in closed form, in bounded memory, instead of through autograd.
    fn forward_features_from_layers(
        &self,
        clean: &CleanPass,
        starts: &[(usize, Tensor)],
    ) -> Result<Tensor>;

    /// [`KnowledgeModel::forward_features_from_layers`] for several runs at once: `runs[i]` is a
    /// clean pass (of any prompt) and the rows to start from it; result `i` is run `i`'s
    /// features. Provided: one call per run. Models override it to put the rows of all runs
    /// through each layer together (larger matrix products, one pass over the weights), which
    /// is how attribution batches the prompts of a fact.
    fn forward_features_batch(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
    ) -> Result<Vec<Tensor>> {
        runs.iter()
            .map(|&(clean, starts)| self.forward_features_from_layers(clean, starts))
            .collect()
    }

    /// Gradients of a scalar target with respect to the starting activations of several runs
    /// (as in [`KnowledgeModel::forward_features_batch`]). `head` receives every run's
    /// features (`[rows, targets, hidden]`, rows in the order of the run's starts, no gradient
    /// tracked) and returns the target's gradient with respect to them, in the same shapes.
    /// Returns, per run, the gradient for each of its starts (`[n, ffn_width]` each), in order.
    ///
    /// Provided: autograd through [`KnowledgeModel::forward_features_batch`]
    /// ([`start_gradients_by_autograd`]). Models override it with a hand-written backward pass
    /// where that stores less or runs faster; results agree within float32 rounding.
    fn start_gradients_batch(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
        head: &mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Vec<Tensor>>> {
        start_gradients_by_autograd(self, runs, head)
    }

    /// Rows (layer x integration point) that this model suggests an attribution hold in memory
    /// at once, across all its concurrent passes, when the caller sets none: what its passes'
    /// memory per row allows at a modest peak. Provided: `None` (the caller's own default).
    fn rows_in_flight_hint(&self) -> Option<usize> {
        None
    }

    /// Bytes one row in flight (a layer x integration point of an attribution pass) holds on
    /// this model at most: its saved activations through the layers after its start and its
    /// share of the output head's working memory. Attribution divides its memory budget by it
    /// to cut [`KnowledgeModel::rows_in_flight_hint`] for large models. Provided: `None` (no
    /// cut).
    fn bytes_per_row_hint(&self) -> Option<u64> {
        None
    }

    /// How many attribution passes this model suggests running at the same time, each on its
    /// share of the calling thread's libtorch threads, when the caller sets none. Provided: 1.
    /// A model that suggests more must return `Some` from [`KnowledgeModel::as_sync`].
    fn concurrent_passes_hint(&self) -> usize {
        1
    }

    /// Whether a lone attribution pass on this model runs faster as one pass whose large
    /// products split their output columns with a helper thread (each weight read once, by
    /// both threads together) than as concurrent passes that split its rows (each reading
    /// every weight). Provided: false.
    fn lone_pass_shares_products_hint(&self) -> bool {
        false
    }

    /// This model as one that several threads may use at the same time, or `None` (provided).
    /// A model returns itself here when its `&self` methods only read its tensors (every write
    /// goes through `&mut self`, as [`KnowledgeModel::set_value_slots`] does), so that
    /// concurrent reads are all that can happen while it is shared. Attribution runs passes
    /// concurrently only on such models.
    fn as_sync(&self) -> Option<&(dyn KnowledgeModel + Sync)> {
        None
    }

    /// The output projection onto the vocabulary: weight `[vocab, hidden]` and bias `[vocab]`
    /// when the model has one (shallow handles to the model's tensors: read, never modify).
    fn output_projection(&self) -> (Tensor, Option<Tensor>);

    /// How the residual stream is read out at the end, for methods that read a neuron's
    /// contribution through the output head (`kn_attribution::logprob_increase`): the final
    /// RMSNorm's weight and epsilon, when the final norm is an RMSNorm and every FFN neuron
    /// writes `activation x value slot` straight into the residual stream (pre-norm layers
    /// without a norm after the FFN, sequential residuals). `None` otherwise (LayerNorm,
    /// Gemma's sandwich norms, parallel residuals, BERT).
    fn residual_readout(&self) -> Option<(Tensor, f64)> {
        None
    }

    /// [`KnowledgeModel::forward_from_layers`] for one layer: `[n, targets, vocab]`.
    fn forward_from_layer(
        &self,
        clean: &CleanPass,
        layer: usize,
        activations: &Tensor,
    ) -> Result<Tensor> {
        self.forward_from_layers(clean, &[(layer, activations.shallow_clone())])
    }

    /// Value slots of `neurons` in `layer`: row `i` is the output-projection column of
    /// `neurons[i]`, `[neurons.len(), hidden]` (a copy).
    fn value_slots(&self, layer: usize, neurons: &[usize]) -> Result<Tensor>;

    /// Overwrites the value slots of `neurons` in `layer` with the rows of `values`
    /// (`[neurons.len(), hidden]`). Checks everything before writing anything.
    fn set_value_slots(&mut self, layer: usize, neurons: &[usize], values: &Tensor) -> Result<()>;

    /// The output embedding of `token` (its row of the output projection onto the
    /// vocabulary), `[hidden]` (a copy).
    fn output_embedding(&self, token: i64) -> Result<Tensor>;
}

/// [`KnowledgeModel::start_gradients_batch`] by autograd: the starts are made leaves that
/// require gradients, the features come from [`KnowledgeModel::forward_features_batch`], and
/// one backward pass of `Σ <features, head's gradient>` (the gradient held constant) gives
/// every start's gradient. Models that override the method fall back on it for what their own
/// backward pass does not cover.
pub fn start_gradients_by_autograd<M: KnowledgeModel + ?Sized>(
    model: &M,
    runs: &[(&CleanPass, &[(usize, Tensor)])],
    head: &mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Vec<Tensor>>> {
    let starts: Vec<Vec<(usize, Tensor)>> = runs
        .iter()
        .map(|(_, starts)| {
            starts
                .iter()
                .map(|(layer, a)| (*layer, a.detach().set_requires_grad(true)))
                .collect()
        })
        .collect();
    let leaf_runs: Vec<(&CleanPass, &[(usize, Tensor)])> = runs
        .iter()
        .zip(&starts)
        .map(|((clean, _), s)| (*clean, s.as_slice()))
        .collect();
    let features = model.forward_features_batch(&leaf_runs)?;
    let detached: Vec<Tensor> = features.iter().map(Tensor::detach).collect();
    let gradients = head(&detached)?;
    if features.len() != runs.len() || gradients.len() != features.len() {
        return Err(crate::ModelError::InvalidArgument(
            "the head must return one gradient per run".into(),
        ));
    }
    crate::guard(|| {
        let surrogate = features
            .iter()
            .zip(&gradients)
            .map(|(f, g)| (f * g).sum(tch::Kind::Float))
            .reduce(|a, b| a + b)
            .ok_or_else(|| crate::ModelError::InvalidArgument("no runs".into()))?;
        let inputs: Vec<&Tensor> = starts.iter().flatten().map(|(_, t)| t).collect();
        let flat = Tensor::run_backward(&[surrogate], &inputs, false, false);
        if flat.len() != inputs.len() {
            return Err(crate::ModelError::Torch("missing start gradients".into()));
        }
        let mut flat = flat.into_iter();
        Ok(starts
            .iter()
            .map(|run| flat.by_ref().take(run.len()).collect())
            .collect())
    })
}

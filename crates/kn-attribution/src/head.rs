//! The output head in closed form: the target (the answer's probability or log-probability)
//! and its gradient with respect to the head's input features, without autograd and without
//! any vocabulary-sized buffer, a block of the vocabulary at a time.

use crate::integrated_gradients::Target;
use kn_kernels::matmul::{add_matmul, linear, matmul, row_kernels};
use kn_model::tch::{Kind, Tensor};
use kn_model::EncodedPrompt;

/// Rows of the output matrix (vocabulary entries) taken at once in
/// [`head_values_and_gradient`] (defined in kn-model, whose memory hint counts it): a block of
/// SmolLM2's `[49152, 576]` matrix (4.5 MiB) stays in cache for both of the block's products.
pub use kn_model::HEAD_VOCAB_BLOCK;

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
pub(crate) fn head_lines(features: &Tensor, prompt: &EncodedPrompt) -> (Tensor, Tensor) {
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
pub(crate) fn line_log_probs_and_gradients(
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
        // [lines, block]: a row per line for `kn_kernels::matmul`'s own kernels; for libtorch's
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
pub(crate) fn combine_targets(
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

/// A prompt whose answer tokens `ids` are scored at positions `0..`, for tests.
#[cfg(test)]
pub(crate) fn prompt_with_targets(ids: &[i64]) -> EncodedPrompt {
    EncodedPrompt {
        text: "test".into(),
        token_ids: vec![0; ids.len() + 1],
        answer_position: 0,
        answer_ids: ids.to_vec(),
        targets: ids.iter().enumerate().map(|(i, &id)| (i, id)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kn_model::tch::Device;

    /// The blocked closed form against autograd through a plain full-vocabulary log-softmax,
    /// with a vocabulary that is not a multiple of the block, several targets and a bias.
    #[test]
    fn closed_form_head_matches_autograd() {
        // Two libtorch threads: libtorch's products; one: `kn_kernels::matmul`'s own (the
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

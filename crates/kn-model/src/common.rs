//! Pieces every architecture shares: argument checks, batching of prompts, applying
//! activation edits at the answer positions, turning a token list into answer targets.

use crate::error::{ModelError, Result};
use crate::model::{ActivationEdit, ActivationOp, AnswerPolicy, EncodedPrompt, ModelInfo};
use tch::{Device, Kind, Tensor};

/// The probability of `answer` under the logits `logits` (`[vocab]`) and its rank among all
/// entries (1 = the most probable; ties count in its favour).
pub fn probability_and_rank(logits: &Tensor, answer: i64) -> (f64, usize) {
    let probabilities = logits.softmax(-1, Kind::Float);
    let probability = probabilities.double_value(&[answer]);
    let above = probabilities
        .gt(probability)
        .sum(Kind::Int64)
        .int64_value(&[]);
    (probability, above as usize + 1)
}

/// Checks that `layer` exists.
pub fn check_layer(info: &ModelInfo, layer: usize) -> Result<()> {
    if layer >= info.num_layers {
        return Err(ModelError::LayerOutOfRange {
            layer,
            layers: info.num_layers,
        });
    }
    Ok(())
}

/// Checks that every neuron index is below the FFN width.
pub fn check_neurons(info: &ModelInfo, neurons: &[usize]) -> Result<()> {
    match neurons.iter().find(|&&n| n >= info.ffn_width) {
        Some(&neuron) => Err(ModelError::NeuronOutOfRange {
            neuron,
            width: info.ffn_width,
        }),
        None => Ok(()),
    }
}

/// Checks that a token id is inside the vocabulary.
pub fn check_token(info: &ModelInfo, id: i64) -> Result<()> {
    if id < 0 || id as usize >= info.vocab_size {
        return Err(ModelError::TokenOutOfRange {
            id,
            vocab: info.vocab_size,
        });
    }
    Ok(())
}

/// Checks every edit's layer and neuron.
pub fn check_edits(info: &ModelInfo, edits: &[ActivationEdit]) -> Result<()> {
    for edit in edits {
        check_layer(info, edit.layer)?;
        check_neurons(info, &[edit.neuron])?;
    }
    Ok(())
}

/// Checks a batch of encoded prompts against the model and returns the longest length.
pub fn check_batch(info: &ModelInfo, prompts: &[EncodedPrompt]) -> Result<usize> {
    if prompts.is_empty() {
        return Err(ModelError::InvalidArgument("empty batch of prompts".into()));
    }
    let mut longest = 0;
    for prompt in prompts {
        check_prompt(info, prompt)?;
        longest = longest.max(prompt.token_ids.len());
    }
    Ok(longest)
}

/// Checks one encoded prompt: non-empty, within the context, ids in the vocabulary, answer
/// position inside.
pub fn check_prompt(info: &ModelInfo, prompt: &EncodedPrompt) -> Result<()> {
    let n = prompt.token_ids.len();
    if n == 0 {
        return Err(ModelError::EmptyPrompt);
    }
    if n > info.max_positions {
        return Err(ModelError::PromptTooLong {
            tokens: n,
            max: info.max_positions,
        });
    }
    if prompt.answer_position >= n {
        return Err(ModelError::InvalidArgument(format!(
            "answer position {} is past the {} tokens of {:?}",
            prompt.answer_position, n, prompt.text
        )));
    }
    for &id in &prompt.token_ids {
        check_token(info, id)?;
    }
    for &(position, id) in &prompt.targets {
        check_token(info, id)?;
        if position >= n || position < prompt.answer_position {
            return Err(ModelError::InvalidArgument(format!(
                "target position {position} is outside the prompt"
            )));
        }
    }
    Ok(())
}

/// Right-pads the prompts' ids with `pad_id` into `[batch, longest]`, and returns the mask of
/// real tokens (1.0) versus padding (0.0) of the same shape.
pub fn pad_batch(
    prompts: &[EncodedPrompt],
    longest: usize,
    pad_id: i64,
    device: Device,
) -> (Tensor, Tensor) {
    let mut ids = Vec::with_capacity(prompts.len() * longest);
    let mut mask = Vec::with_capacity(prompts.len() * longest);
    for prompt in prompts {
        for position in 0..longest {
            match prompt.token_ids.get(position) {
                Some(&id) => {
                    ids.push(id);
                    mask.push(1f32);
                }
                None => {
                    ids.push(pad_id);
                    mask.push(0f32);
                }
            }
        }
    }
    let shape = [prompts.len() as i64, longest as i64];
    (
        Tensor::from_slice(&ids).reshape(shape).to_device(device),
        Tensor::from_slice(&mask).reshape(shape).to_device(device),
    )
}

/// The answer positions of a batch as an index tensor.
pub fn answer_positions(prompts: &[EncodedPrompt], device: Device) -> Tensor {
    let positions: Vec<i64> = prompts.iter().map(|p| p.answer_position as i64).collect();
    Tensor::from_slice(&positions).to_device(device)
}

/// Rows `[batch, features]` of `x` (`[batch, T, features]`) at each prompt's position.
pub fn rows_at(x: &Tensor, positions: &Tensor) -> Tensor {
    let batch = Tensor::arange(x.size()[0], (Kind::Int64, x.device()));
    x.index(&[Some(batch), Some(positions.shallow_clone())])
}

/// Applies the edits of `layer` in place to the activations `act` (`[batch, T, ffn]`) at the
/// answer positions. Only used on no-grad passes.
pub fn apply_edits(act: &mut Tensor, layer: usize, edits: &[ActivationEdit], positions: &Tensor) {
    let layer_edits: Vec<&ActivationEdit> = edits.iter().filter(|e| e.layer == layer).collect();
    if layer_edits.is_empty() {
        return;
    }
    let width = act.size()[2];
    let mut scale = vec![1f32; width as usize];
    let mut set_mask = vec![false; width as usize];
    let mut set_value = vec![0f32; width as usize];
    for edit in layer_edits {
        match edit.op {
            ActivationOp::Scale(factor) => scale[edit.neuron] *= factor as f32,
            ActivationOp::Set(value) => {
                set_mask[edit.neuron] = true;
                set_value[edit.neuron] = value as f32;
            }
        }
    }
    let device = act.device();
    let scale = Tensor::from_slice(&scale).to_device(device);
    let set_mask = Tensor::from_slice(&set_mask).to_device(device);
    let set_value = Tensor::from_slice(&set_value).to_device(device);
    let batch = Tensor::arange(act.size()[0], (Kind::Int64, device));
    let rows = rows_at(act, positions);
    let edited = set_value.where_self(&set_mask, &(rows * scale));
    let _ = act.index_put_(
        &[Some(batch), Some(positions.shallow_clone())],
        &edited,
        false,
    );
}

/// Turns the answer's token ids into targets for a prompt whose answer position is
/// `answer_position`, following `policy`. Returns the ids to append after the prompt
/// (teacher forcing) and the targets.
pub fn answer_targets(
    answer: &str,
    answer_ids: &[i64],
    answer_position: usize,
    policy: AnswerPolicy,
    causal: bool,
) -> Result<(Vec<i64>, Vec<(usize, i64)>)> {
    let bad = |reason: &str| ModelError::BadAnswer {
        answer: answer.to_string(),
        reason: reason.to_string(),
    };
    let Some(&first) = answer_ids.first() else {
        return Err(bad("is empty: it encodes to no token"));
    };
    match policy {
        AnswerPolicy::FirstToken => Ok((Vec::new(), vec![(answer_position, first)])),
        AnswerPolicy::SingleToken if answer_ids.len() == 1 => Ok((Vec::new(), vec![(answer_position, first)])),
        AnswerPolicy::SingleToken => Err(bad(&format!(
            "is {} tokens long, and the single-token policy needs exactly one",
            answer_ids.len()
        ))),
        AnswerPolicy::WholeAnswer if !causal => Err(bad("cannot be scored whole by a masked LM (one mask, one token): use the first-token policy")),
        AnswerPolicy::WholeAnswer => {
            let appended = answer_ids[..answer_ids.len() - 1].to_vec();
            let targets = answer_ids.iter().enumerate().map(|(i, &id)| (answer_position + i, id)).collect();
            Ok((appended, targets))
        }
    }
}

/// Value slots of `neurons`: the columns of an output projection `weight` (`[hidden, ffn]`),
/// as float32 rows `[neurons.len(), hidden]` (a copy; half-precision weights widen exactly,
/// so writing them back restores the weights bit for bit). Checks layer and neuron indices.
pub fn read_value_slots(
    info: &ModelInfo,
    layer: usize,
    neurons: &[usize],
    weight: impl FnOnce(usize) -> Tensor,
) -> Result<Tensor> {
    check_layer(info, layer)?;
    check_neurons(info, neurons)?;
    let index: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
    let weight = weight(layer);
    crate::error::guard(|| {
        let index = Tensor::from_slice(&index).to_device(weight.device());
        Ok(weight
            .index_select(1, &index)
            .transpose(0, 1)
            .to_kind(Kind::Float)
            .contiguous())
    })
}

/// Overwrites the value slots of `neurons` (columns of `weight`, `[hidden, ffn]`) with the
/// rows of `values` (`[neurons.len(), hidden]`), rounded to the weight's type; checks
/// everything before writing.
pub fn write_value_slots(
    info: &ModelInfo,
    layer: usize,
    neurons: &[usize],
    values: &Tensor,
    weight: &mut Tensor,
) -> Result<()> {
    check_layer(info, layer)?;
    check_neurons(info, neurons)?;
    let expected = [neurons.len() as i64, info.hidden_size as i64];
    if values.size() != expected {
        return Err(ModelError::InvalidArgument(format!(
            "value slots must be {expected:?}, got {:?}",
            values.size()
        )));
    }
    if values.kind() != Kind::Float && values.kind() != Kind::Double {
        return Err(ModelError::InvalidArgument(format!(
            "value slots must be floating point, got {:?}",
            values.kind()
        )));
    }
    let index: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
    crate::error::guard(|| {
        tch::no_grad(|| {
            let device = weight.device();
            let index = Tensor::from_slice(&index).to_device(device);
            let source = values
                .to_device(device)
                .to_kind(weight.kind())
                .transpose(0, 1);
            let _ = weight.index_copy_(1, &index, &source);
        });
        Ok(())
    })
}

/// Checks, before a loader allocates anything per layer, that the weights hold every layer
/// the configuration's `key` announces (`has_layer(l)`: whether layer `l`'s tensors exist), so
/// that a corrupt layer count is an error naming the key, not an allocation of its size.
pub fn check_layer_count(
    layers: usize,
    key: &str,
    has_layer: impl Fn(usize) -> bool,
    source: &std::path::Path,
) -> Result<()> {
    if layers > 0 && has_layer(layers - 1) {
        if has_layer(layers) {
            return Err(ModelError::Config {
                path: source.to_path_buf(),
                reason: format!(
                    "{key} = {layers}, but the weights hold more layers (layer {layers} exists): \
                     refusing to compute a truncated model"
                ),
            });
        }
        return Ok(());
    }
    let present = (0..layers).take_while(|&l| has_layer(l)).count();
    Err(ModelError::Config {
        path: source.to_path_buf(),
        reason: format!("{key} = {layers}, but the weights hold {present} layer(s)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answer_targets_follow_the_answer_position() {
        let (appended, targets) =
            answer_targets("New York", &[5, 6, 7], 3, AnswerPolicy::WholeAnswer, true).unwrap();
        assert_eq!(appended, vec![5, 6]);
        assert_eq!(targets, vec![(3, 5), (4, 6), (5, 7)]);
    }

    #[test]
    fn single_token_policy_rejects_long_answers() {
        assert!(matches!(
            answer_targets("New York", &[5, 6], 3, AnswerPolicy::SingleToken, true),
            Err(ModelError::BadAnswer { .. })
        ));
        assert!(matches!(
            answer_targets("", &[], 3, AnswerPolicy::FirstToken, true),
            Err(ModelError::BadAnswer { .. })
        ));
    }

    #[test]
    fn edits_touch_only_the_answer_position() {
        let mut act = Tensor::ones([2, 3, 4], (Kind::Float, Device::Cpu));
        let positions = Tensor::from_slice(&[1i64, 2]);
        let edits = [
            ActivationEdit {
                layer: 0,
                neuron: 1,
                op: ActivationOp::Scale(0.0),
            },
            ActivationEdit {
                layer: 0,
                neuron: 2,
                op: ActivationOp::Set(5.0),
            },
            ActivationEdit {
                layer: 1,
                neuron: 3,
                op: ActivationOp::Scale(9.0),
            },
        ];
        apply_edits(&mut act, 0, &edits, &positions);
        let values: Vec<f32> = Vec::try_from(act.flatten(0, -1)).unwrap();
        let expected_b0 = [1., 1., 1., 1., 1., 0., 5., 1., 1., 1., 1., 1.];
        let expected_b1 = [1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 5., 1.];
        assert_eq!(&values[..12], &expected_b0);
        assert_eq!(&values[12..], &expected_b1);
    }
}

/// Checks the `starts` of a `forward_from_layers` call and returns the order in which to add
/// them to the batch (by layer, stable) and the total number of rows.
pub fn check_starts(
    info: &ModelInfo,
    clean: &crate::model::CleanPass,
    starts: &[(usize, Tensor)],
) -> Result<(Vec<usize>, i64)> {
    if starts.is_empty() {
        return Err(ModelError::InvalidArgument(
            "no starting layers given".into(),
        ));
    }
    if clean.hidden_in.len() != info.num_layers + 1
        || clean.ffn_input_residual.len() != info.num_layers
    {
        return Err(ModelError::InvalidArgument(
            "the clean pass is not from this model".into(),
        ));
    }
    if clean.prompt.targets.is_empty() {
        return Err(ModelError::InvalidArgument(format!(
            "the prompt {:?} has no answer targets",
            clean.prompt.text
        )));
    }
    let width = info.ffn_width as i64;
    let mut rows = 0;
    for (layer, activations) in starts {
        check_layer(info, *layer)?;
        if activations.dim() != 2 || activations.size()[1] != width {
            return Err(ModelError::InvalidArgument(format!(
                "activations must be [n, {width}], got {:?}",
                activations.size()
            )));
        }
        rows += activations.size()[0];
    }
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by_key(|&i| starts[i].0);
    Ok((order, rows))
}

/// Puts rows computed in `order` (groups of `sizes[order[k]]` rows) back in the callers'
/// order.
pub fn restore_row_order(x: &Tensor, order: &[usize], sizes: &[i64]) -> Tensor {
    let offsets = group_offsets(order.iter().copied(), sizes);
    select_rows(
        x,
        (0..sizes.len()).flat_map(|i| offsets[i]..offsets[i] + sizes[i]),
    )
}

/// The inverse of [`restore_row_order`]: rows in the callers' order (groups of `sizes[i]`
/// rows) put in the order they are computed (`order`).
pub fn joined_row_order(x: &Tensor, order: &[usize], sizes: &[i64]) -> Tensor {
    let offsets = group_offsets(0..sizes.len(), sizes);
    select_rows(
        x,
        order
            .iter()
            .flat_map(|&i| offsets[i]..offsets[i] + sizes[i]),
    )
}

/// Where each group of rows starts when the groups are laid out in `layout` order.
fn group_offsets(layout: impl Iterator<Item = usize>, sizes: &[i64]) -> Vec<i64> {
    let mut offsets = vec![0i64; sizes.len()];
    let mut offset = 0;
    for i in layout {
        offsets[i] = offset;
        offset += sizes[i];
    }
    offsets
}

/// `x`'s rows at `index`, in that order (no copy when that is the identity).
fn select_rows(x: &Tensor, index: impl Iterator<Item = i64>) -> Tensor {
    let index: Vec<i64> = index.collect();
    if index.iter().enumerate().all(|(k, &i)| k as i64 == i) {
        return x.shallow_clone();
    }
    x.index_select(0, &Tensor::from_slice(&index).to_device(x.device()))
}

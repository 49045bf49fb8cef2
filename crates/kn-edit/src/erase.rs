//! Erasing a relation (Dai et al. 2022, section 5.2): the relation's most frequent knowledge
//! neurons get their value slots overwritten, and the paper's metrics of that.
//!
//! The neurons are the [`EraseConfig::top_n`] (default 20) most frequent in the relation's
//! [`NeuronFrequencies`] (ties by `(layer, neuron)`). Each value slot becomes
//! ([`ErasureValue`]):
//!
//! - [`ErasureValue::UnknownToken`] (default): the output embedding of the model's unknown
//!   token, looked up by name in the tokenizer: masked models `[UNK]` (then `<unk>`), as in the
//!   paper; causal models the first present of `<unk>`, `<|endoftext|>`, `</s>`,
//!   `<|end_of_text|>`, `<eos>` (SmolLM2 and the tiny Llama fixture: `<|endoftext|>`, id 0, the
//!   document-end token that their tokenizers also name as unknown token). None present:
//!   [`EditError::NoErasureToken`]; pick one with [`ErasureValue::Token`] or
//!   [`ErasureValue::TokenText`];
//! - zeros, with [`ErasureValue::Zero`];
//! - [`ErasureValue::Token`] / [`ErasureValue::TokenText`]: the output embedding of a token the
//!   caller chooses, by id or by its raw vocabulary string.
//!
//! [`evaluate_erasure`] measures accuracy (answer top-1) and perplexity of the first answer
//! token on the erased relation's prompts and on other relations' prompts, before and after,
//! plus a random-neuron control (as many random neurons in the same layers, seeded, erased the
//! same way, measured and undone), and the editing papers' checks as they apply to an erasure
//! ([`ErasureChecks`]: forgetting on the localization prompts and on held-out prompts of the
//! relation, locality on the other relations), read from the same passes.

use crate::error::{check_batch_size, torch, EditError, Result};
use crate::neurons::{NeuronFrequencies, NeuronSet};
use crate::patch::{edit_value_slots, EditHandle};
use crate::scoring::{
    agreement, check_prompts, check_token, forgetting, quality_and_tops, quality_if_any,
};
use crate::update::EvaluationConfig;
use kn_model::tch::{Device, Kind};
use kn_model::{EncodedPrompt, KnowledgeModel, ModelError, ModelKind};
use kn_schema::report::edit::Locality;
pub use kn_schema::report::erase::{
    EraseConfig, ErasureChecks, ErasureEvaluation, ErasureMetrics, ErasureValue,
};

/// Unknown-token names tried for masked models, in order.
pub const MASKED_UNKNOWN_TOKENS: &[&str] = &["[UNK]", "<unk>"];
/// Unknown-token names tried for causal models, in order.
pub const CAUSAL_UNKNOWN_TOKENS: &[&str] =
    &["<unk>", "<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"];

/// An applied erasure.
#[derive(Debug, Clone, PartialEq)]
pub struct EraseOutcome {
    /// Undoes the erasure.
    pub handle: EditHandle,
    /// The neurons erased.
    pub neurons: NeuronSet,
    /// The token whose embedding was written (`None` for zeros).
    pub token: Option<i64>,
}

/// Resolves an [`ErasureValue`] to the token whose output embedding is written (`None` for
/// [`ErasureValue::Zero`]).
pub fn erasure_token(model: &dyn KnowledgeModel, value: &ErasureValue) -> Result<Option<i64>> {
    let token = match value {
        ErasureValue::Zero => return Ok(None),
        ErasureValue::Token(id) => *id,
        ErasureValue::TokenText(text) => model
            .tokenizer()
            .token_to_id(text)
            .map(i64::from)
            .ok_or_else(|| EditError::NoErasureToken {
                reason: format!("{text:?} is not in the model's vocabulary"),
            })?,
        ErasureValue::UnknownToken => {
            let names = match model.info().kind {
                ModelKind::Masked => MASKED_UNKNOWN_TOKENS,
                ModelKind::Causal => CAUSAL_UNKNOWN_TOKENS,
            };
            names.iter().find_map(|name| model.tokenizer().token_to_id(name)).map(i64::from).ok_or_else(|| {
                EditError::NoErasureToken {
                    reason: format!("the vocabulary has none of {names:?}; choose a token (ErasureValue::Token or TokenText) or zeros"),
                }
            })?
        }
    };
    check_token(model, token)?;
    Ok(Some(token))
}

/// Overwrites the value slots of `neurons` as `value` says; checks everything first.
pub fn erase_neurons(
    model: &mut dyn KnowledgeModel,
    neurons: &NeuronSet,
    value: &ErasureValue,
    description: &str,
) -> Result<EraseOutcome> {
    neurons.require_non_empty("an erasure")?;
    neurons.validate(model.info())?;
    let token = erasure_token(model, value)?;
    let hidden = model.info().hidden_size;
    let row: Vec<f32> = match token {
        None => vec![0.0; hidden],
        Some(token) => {
            let e = model.output_embedding(token)?;
            torch(|| {
                Vec::<f32>::try_from(&e.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
            })?
            .map_err(|e| EditError::Model(ModelError::from(e)))?
        }
    };
    let mut values = Vec::with_capacity(row.len() * neurons.len());
    for _ in 0..neurons.len() {
        values.extend_from_slice(&row);
    }
    let what = match token {
        None => "zeros".to_string(),
        Some(t) => format!("embedding of {:?} ({t})", model.token_text(t)),
    };
    let handle = edit_value_slots(
        model,
        neurons.as_slice(),
        &values,
        &format!("{description}: {} neurons set to {what}", neurons.len()),
    )?;
    Ok(EraseOutcome {
        handle,
        neurons: neurons.clone(),
        token,
    })
}

/// Erases `relation`: its `config.top_n` most frequent knowledge neurons get the value of
/// `config.value`. Errors (weights untouched) when no neuron was counted, `top_n` is 0 or the
/// erasure token cannot be found.
pub fn erase_relation(
    model: &mut dyn KnowledgeModel,
    relation: &str,
    frequencies: &NeuronFrequencies,
    config: &EraseConfig,
) -> Result<EraseOutcome> {
    if config.top_n == 0 {
        return Err(EditError::InvalidParameter {
            name: "top_n",
            reason: "must be at least 1".into(),
        });
    }
    let neurons = frequencies.top(config.top_n);
    erase_neurons(
        model,
        &neurons,
        &config.value,
        &format!("erase relation {relation}"),
    )
}

/// The prompts an erasure is measured on, each with its own answer.
#[derive(Debug, Clone, Default)]
pub struct ErasurePrompts {
    /// The erased relation's prompts that located its neurons; must not be empty.
    pub relation: Vec<EncodedPrompt>,
    /// Prompts of the relation held out from localization (generality); may be empty.
    pub held_out: Vec<EncodedPrompt>,
    /// Other relations' prompts (locality, perplexity); may be empty.
    pub other_relations: Vec<EncodedPrompt>,
}

/// One moment of an erasure's evaluation: the paper's metrics and, from the same passes, every
/// prompt's top-1 token.
struct Moment {
    metrics: ErasureMetrics,
    relation_tops: Vec<i64>,
    held_out_tops: Vec<i64>,
    other_tops: Vec<i64>,
}

fn erasure_moment(
    model: &dyn KnowledgeModel,
    prompts: &ErasurePrompts,
    batch: usize,
) -> Result<Moment> {
    let (relation, relation_tops) = quality_and_tops(model, &prompts.relation, batch)?;
    let (_, held_out_tops) = quality_if_any(model, &prompts.held_out, batch)?;
    let (other, other_tops) = quality_if_any(model, &prompts.other_relations, batch)?;
    Ok(Moment {
        metrics: ErasureMetrics {
            erased_relation: relation,
            other_relations: other,
        },
        relation_tops,
        held_out_tops,
        other_tops,
    })
}

/// The checks of the erasure applied at `after`, against the moment before it.
fn erasure_checks(
    prompts: &ErasurePrompts,
    before: &Moment,
    after: &Moment,
) -> Result<ErasureChecks> {
    let (reliability, reliability_prompts) = forgetting(
        &prompts.relation,
        &before.relation_tops,
        &after.relation_tops,
    )?;
    let (generality, generality_prompts) = forgetting(
        &prompts.held_out,
        &before.held_out_tops,
        &after.held_out_tops,
    )?;
    Ok(ErasureChecks {
        reliability,
        reliability_prompts,
        generality,
        generality_prompts,
        held_out_prompts: prompts.held_out.len(),
        locality: Locality {
            same_relation: None,
            other_relations: agreement(&before.other_tops, &after.other_tops),
        },
    })
}

/// Measures, erases `relation` (see [`erase_relation`]), measures again and returns the
/// evaluation with the erasure **still applied** (undo it with the outcome's handle), with the
/// checks of [`ErasureChecks`]. With `eval.random_control`, as many random neurons in the
/// same layers (seed key `erase-random/<relation>`) are erased first, measured and restored.
/// A failed measurement after an edit undoes it.
pub fn evaluate_erasure(
    model: &mut dyn KnowledgeModel,
    relation: &str,
    frequencies: &NeuronFrequencies,
    prompts: &ErasurePrompts,
    config: &EraseConfig,
    eval: &EvaluationConfig,
) -> Result<(ErasureEvaluation, EraseOutcome)> {
    check_batch_size(eval.batch_size)?;
    check_prompts(&prompts.relation, "measuring an erasure")?;
    for group in [&prompts.held_out, &prompts.other_relations] {
        if !group.is_empty() {
            check_prompts(group, "measuring an erasure")?;
        }
    }
    if config.top_n == 0 {
        return Err(EditError::InvalidParameter {
            name: "top_n",
            reason: "must be at least 1".into(),
        });
    }
    let neurons = frequencies.top(config.top_n);
    neurons.require_non_empty("an erasure")?;
    neurons.validate(model.info())?;
    let token = erasure_token(model, &config.value)?;
    let before = erasure_moment(model, prompts, eval.batch_size)?;
    let (random_neurons, random_control, random_checks) = if eval.random_control {
        let random =
            neurons.random_like(model.info(), eval.seed, &format!("erase-random/{relation}"))?;
        let outcome = erase_neurons(
            model,
            &random,
            &config.value,
            &format!("random control for relation {relation}"),
        )?;
        let measured = erasure_moment(model, prompts, eval.batch_size);
        outcome.handle.restore(model)?;
        let measured = measured?;
        let checks = erasure_checks(prompts, &before, &measured)?;
        (Some(random), Some(measured.metrics), Some(checks))
    } else {
        (None, None, None)
    };
    let outcome = erase_relation(model, relation, frequencies, config)?;
    let measured = erasure_moment(model, prompts, eval.batch_size).and_then(|after| {
        let checks = erasure_checks(prompts, &before, &after)?;
        Ok((after.metrics, checks))
    });
    let (after, checks) = match measured {
        Ok(measured) => measured,
        Err(error) => {
            outcome.handle.restore(model)?;
            return Err(error);
        }
    };
    let evaluation = ErasureEvaluation {
        relation: relation.to_string(),
        config: config.clone(),
        neurons: neurons.into(),
        token,
        token_text: token.map(|t| model.token_text(t)),
        before: before.metrics,
        after,
        random_neurons: random_neurons.map(Into::into),
        random_control,
        checks,
        random_checks,
    };
    Ok((evaluation, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_json() {
        let c = EraseConfig::default();
        assert_eq!(c.top_n, 20);
        assert_eq!(c.value, ErasureValue::UnknownToken);
        let parsed: EraseConfig = serde_json::from_str(r#"{"value": {"token": 5}}"#).unwrap();
        assert_eq!(parsed.value, ErasureValue::Token(5));
        let parsed: EraseConfig = serde_json::from_str(r#"{"value": "zero", "top_n": 3}"#).unwrap();
        assert_eq!((parsed.value, parsed.top_n), (ErasureValue::Zero, 3));
    }
}

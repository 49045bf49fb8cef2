//! Updating a fact (s, r, t) to (s, r, t′) by editing its knowledge neurons' value slots
//! (Dai et al. 2022, section 5.1), and the paper's metrics of such an update.
//!
//! # The edit
//!
//! For each knowledge neuron kept (see below), with value slot `v` (its column of the FFN
//! output projection), `e(x)` the output embedding of token `x` ([`KnowledgeModel::output_embedding`]),
//! `t` the first token of the fact's answer and `t′` the new answer's token:
//!
//! - default (the paper's formula): `v ← v − λ1·e(t) + λ2·e(t′)`, with λ1 = 1, λ2 = 8;
//! - with [`UpdateConfig::scale_by_norm`] (off by default; what the paper's released code
//!   does, `6_edit_knowledge_sampled.py`): `v ← v − λ1·e(t)·‖v‖/‖e(t)‖ + λ2·e(t′)·‖v‖/‖e(t′)‖`,
//!   where `‖v‖` is the Euclidean norm of the slot *before* the edit and norms are Euclidean
//!   (the released code uses λ1 = λ2 = 1 with this scaling; set them as you need).
//!
//! Arithmetic is done in float64 per element and rounded to float32 once.
//!
//! `t′` must be a single token as the model encodes an answer after the fact's first prompt
//! ([`KnowledgeModel::encode`] with [`AnswerPolicy::FirstToken`]; causal models add a leading
//! space), otherwise [`EditError::MultiTokenTarget`]. Neurons that more than
//! [`UpdateConfig::shared_threshold`] (default 0.1) of the relation's facts hold are left out,
//! from relation-level counts the caller passes ([`NeuronFrequencies`]; the fraction counts the
//! fact itself). The paper's code subtracts the embedding of the model's *predicted* token;
//! this crate uses the fact's answer `t` (they agree when the model knows the fact).
//!
//! # Metrics ([`evaluate_update`])
//!
//! Over the fact's prompts, after the edit: success rate (t′ is top-1), change rate (t is no
//! longer top-1), top-5 rate and MRR of t′; and the perplexity of the correct first answer
//! token (`exp` of its mean negative log-probability) on prompts of other facts of the same
//! relation and of other relations, before and after. A random-neuron control (as many random
//! neurons in the same layers, seeded) gets the same edit, is measured and undone.
//!
//! The paper only edits facts the model already predicts correctly (its code skips the others);
//! this crate edits whatever it is given, and `before.change_rate` shows how many prompts did
//! not have t on top to begin with. Filter facts beforehand to match the paper.

use crate::error::{check_batch_size, check_finite, torch, EditError, Result};
use crate::experiment::EncodedFact;
use crate::intervene::DEFAULT_BATCH_SIZE;
use crate::neurons::{NeuronFrequencies, NeuronSet};
use crate::patch::{edit_value_slots, read_rows, EditHandle};
use crate::scoring::{
    agreement, answer_token, check_prompts, check_token, quality_if_any, score_all,
};
use kn_model::tch::{Device, Kind};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel, ModelError};
pub use kn_schema::report::edit::{
    EditChecks, Locality, UpdateConfig, UpdateEvaluation, UpdateMetrics,
};
use serde::{Deserialize, Serialize};

/// Refuses non-finite lambdas and a negative shared threshold.
fn check_config(config: &UpdateConfig) -> Result<()> {
    check_finite("lambda_remove", config.lambda_remove)?;
    check_finite("lambda_add", config.lambda_add)?;
    check_finite("shared_threshold", config.shared_threshold)?;
    if config.shared_threshold < 0.0 {
        return Err(EditError::InvalidParameter {
            name: "shared_threshold",
            reason: "must not be negative".into(),
        });
    }
    Ok(())
}

/// An applied fact update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOutcome {
    /// Undoes the update.
    pub handle: EditHandle,
    /// The old answer token `t`.
    pub old_token: i64,
    /// The new answer token `t′`.
    pub new_token: i64,
    /// The neurons edited.
    pub neurons: NeuronSet,
    /// The knowledge neurons left out as shared by too many facts.
    pub excluded: NeuronSet,
}

/// The first answer token shared by all of a fact's prompts.
pub fn fact_answer_token(fact: &EncodedFact) -> Result<i64> {
    check_prompts(&fact.prompts, &format!("fact {}", fact.id))?;
    let mut first = None;
    for prompt in &fact.prompts {
        let token = answer_token(prompt)?;
        match first {
            None => first = Some(token),
            Some(f) if f != token => {
                return Err(EditError::InconsistentAnswer {
                    fact: fact.id.clone(),
                    first: f,
                    other: token,
                })
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| EditError::NoPrompts {
        context: format!("fact {}", fact.id),
    })
}

/// The token of `new_answer` as the model encodes it as the answer of `prompt`; errors unless
/// it is exactly one token.
pub fn new_answer_token(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    new_answer: &str,
) -> Result<i64> {
    let encoded = model.encode(&prompt.text, Some(new_answer), AnswerPolicy::FirstToken)?;
    match encoded.answer_ids.as_slice() {
        [token] => Ok(*token),
        ids => Err(EditError::MultiTokenTarget {
            answer: new_answer.to_string(),
            count: ids.len(),
            pieces: ids.iter().map(|&id| model.token_text(id)).collect(),
        }),
    }
}

fn embedding(model: &dyn KnowledgeModel, token: i64) -> Result<Vec<f64>> {
    let e = model.output_embedding(token)?;
    torch(|| {
        Vec::<f64>::try_from(
            &e.to_device(Device::Cpu)
                .to_kind(Kind::Double)
                .flatten(0, -1),
        )
    })?
    .map_err(|e| EditError::Model(ModelError::from(e)))
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The new value rows for `neurons` (row-major, float32) by the update formula.
fn updated_rows(
    model: &dyn KnowledgeModel,
    neurons: &NeuronSet,
    old_token: i64,
    new_token: i64,
    config: &UpdateConfig,
) -> Result<Vec<f32>> {
    let hidden = model.info().hidden_size;
    let e_old = embedding(model, old_token)?;
    let e_new = embedding(model, new_token)?;
    if e_old.len() != hidden || e_new.len() != hidden {
        return Err(EditError::Model(ModelError::Torch(format!(
            "output embeddings are not of hidden size {hidden}"
        ))));
    }
    let (n_old, n_new) = (norm(&e_old), norm(&e_new));
    if config.scale_by_norm && (n_old == 0.0 || n_new == 0.0) {
        return Err(EditError::InvalidParameter {
            name: "scale_by_norm",
            reason: "an output embedding has zero norm, it cannot be scaled to the slot's norm"
                .into(),
        });
    }
    let old_rows = read_rows(model, neurons.as_slice())?;
    let mut new_rows = Vec::with_capacity(old_rows.len());
    for row in old_rows.chunks(hidden.max(1)) {
        let v: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
        let (a, b) = if config.scale_by_norm {
            let n_v = norm(&v);
            (
                config.lambda_remove * n_v / n_old,
                config.lambda_add * n_v / n_new,
            )
        } else {
            (config.lambda_remove, config.lambda_add)
        };
        new_rows.extend(
            v.iter()
                .zip(&e_old)
                .zip(&e_new)
                .map(|((vi, eo), en)| (vi - a * eo + b * en) as f32),
        );
    }
    Ok(new_rows)
}

/// Applies the update formula to `neurons` (after leaving out those `frequencies` says are
/// shared by more than `config.shared_threshold` of the relation's facts) for tokens
/// `old_token → new_token`. Everything is checked before the weights are touched.
pub fn update_tokens(
    model: &mut dyn KnowledgeModel,
    neurons: &NeuronSet,
    old_token: i64,
    new_token: i64,
    frequencies: &NeuronFrequencies,
    config: &UpdateConfig,
) -> Result<UpdateOutcome> {
    check_config(config)?;
    neurons.require_non_empty("a fact update")?;
    neurons.validate(model.info())?;
    check_token(model, old_token)?;
    check_token(model, new_token)?;
    if old_token == new_token {
        return Err(EditError::SameTarget {
            token: old_token,
            text: model.token_text(old_token),
        });
    }
    let (kept, excluded) = frequencies.split_shared(neurons, config.shared_threshold);
    if kept.is_empty() {
        return Err(EditError::AllNeuronsShared {
            excluded: excluded.len(),
            threshold: config.shared_threshold,
        });
    }
    let rows = updated_rows(model, &kept, old_token, new_token, config)?;
    let description = format!(
        "update {:?} -> {:?}: lambda_remove={}, lambda_add={}, scale_by_norm={}, {} neurons ({} shared left out)",
        model.token_text(old_token),
        model.token_text(new_token),
        config.lambda_remove,
        config.lambda_add,
        config.scale_by_norm,
        kept.len(),
        excluded.len()
    );
    let handle = edit_value_slots(model, kept.as_slice(), &rows, &description)?;
    Ok(UpdateOutcome {
        handle,
        old_token,
        new_token,
        neurons: kept,
        excluded,
    })
}

/// Updates `fact` so that its answer becomes `new_answer` (see the module docs). The old
/// token is the first answer token of the fact's prompts (they must agree); the new one must
/// be a single token.
pub fn update_fact(
    model: &mut dyn KnowledgeModel,
    fact: &EncodedFact,
    new_answer: &str,
    frequencies: &NeuronFrequencies,
    config: &UpdateConfig,
) -> Result<UpdateOutcome> {
    let (old_token, new_token) = fact_tokens(model, fact, new_answer)?;
    update_tokens(
        model,
        &fact.neurons,
        old_token,
        new_token,
        frequencies,
        config,
    )
}

fn fact_tokens(
    model: &dyn KnowledgeModel,
    fact: &EncodedFact,
    new_answer: &str,
) -> Result<(i64, i64)> {
    let old_token = fact_answer_token(fact)?;
    let Some(first) = fact.prompts.first() else {
        return Err(EditError::NoPrompts {
            context: format!("fact {}", fact.id),
        });
    };
    Ok((old_token, new_answer_token(model, first, new_answer)?))
}

/// Settings of [`evaluate_update`] and [`crate::evaluate_erasure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationConfig {
    /// Prompts per forward pass. Default 16.
    pub batch_size: usize,
    /// Whether to run the random-neuron control. Default true.
    pub random_control: bool,
    /// Seed of the random control. Default 0.
    pub seed: u64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            random_control: true,
            seed: 0,
        }
    }
}

/// Prompts that test an update beyond those that located its neurons ([`EditChecks`]).
#[derive(Debug, Clone, Default)]
pub struct CheckPrompts {
    /// Paraphrases of the fact held out from localization, encoded with the **new** answer.
    pub held_out: Vec<EncodedPrompt>,
    /// Symmetric relations only: the reversed fact's prompts (the new answer as subject),
    /// encoded with the fact's subject as answer; `None` for other relations.
    pub reversed: Option<Vec<EncodedPrompt>>,
}

/// The top-1 accuracy of `prompts`' answers (`None` without prompts or without `prompts`).
fn accuracy(
    model: &dyn KnowledgeModel,
    prompts: Option<&[EncodedPrompt]>,
    batch_size: usize,
) -> Result<Option<f64>> {
    let (quality, _) = quality_if_any(model, prompts.unwrap_or_default(), batch_size)?;
    Ok(quality.map(|q| q.accuracy))
}

/// One moment of an update's evaluation: the fact's metrics and, from the same passes, the
/// control prompts' top-1 tokens (for locality).
struct Moment {
    metrics: UpdateMetrics,
    same_relation_tops: Vec<i64>,
    other_relations_tops: Vec<i64>,
}

/// The checks of the edit now applied (`after`), against the moment before it.
fn edit_checks(
    model: &dyn KnowledgeModel,
    prompts: &CheckPrompts,
    before: &Moment,
    after: &Moment,
    symmetry_before: Option<f64>,
    batch_size: usize,
) -> Result<EditChecks> {
    Ok(EditChecks {
        reliability: (after.metrics.prompts > 0).then_some(after.metrics.success_rate),
        generality: accuracy(model, Some(&prompts.held_out), batch_size)?,
        generality_prompts: prompts.held_out.len(),
        locality: Locality {
            same_relation: agreement(&before.same_relation_tops, &after.same_relation_tops),
            other_relations: agreement(&before.other_relations_tops, &after.other_relations_tops),
        },
        symmetry: accuracy(model, prompts.reversed.as_deref(), batch_size)?,
        symmetry_before,
        symmetry_prompts: prompts.reversed.as_ref().map_or(0, Vec::len),
    })
}

fn update_metrics(
    model: &dyn KnowledgeModel,
    fact: &EncodedFact,
    new_token: i64,
    same_relation: &[EncodedPrompt],
    other_relations: &[EncodedPrompt],
    batch_size: usize,
) -> Result<Moment> {
    let scores = score_all(model, &fact.prompts, &[], &[new_token], batch_size)?;
    let n = scores.len().max(1) as f64;
    let new = |s: &crate::scoring::PromptScores| s.extra.first().copied();
    let (same_quality, same_relation_tops) = quality_if_any(model, same_relation, batch_size)?;
    let (other_quality, other_relations_tops) = quality_if_any(model, other_relations, batch_size)?;
    let mut metrics = UpdateMetrics {
        prompts: scores.len(),
        success_rate: 0.0,
        change_rate: 0.0,
        top5_rate: 0.0,
        mrr: 0.0,
        mean_old_prob: 0.0,
        mean_new_prob: 0.0,
        same_relation: same_quality,
        other_relations: other_quality,
    };
    for s in &scores {
        let Some(t_new) = new(s) else { continue };
        metrics.success_rate += f64::from(u8::from(t_new.rank == 1)) / n;
        metrics.change_rate += f64::from(u8::from(s.answer.rank != 1)) / n;
        metrics.top5_rate += f64::from(u8::from(t_new.rank <= 5)) / n;
        metrics.mrr += 1.0 / t_new.rank.max(1) as f64 / n;
        metrics.mean_old_prob += s.answer.prob / n;
        metrics.mean_new_prob += t_new.prob / n;
    }
    Ok(Moment {
        metrics,
        same_relation_tops,
        other_relations_tops,
    })
}

/// Measures, updates `fact` to `new_answer`, measures again, and returns the evaluation with
/// the update **still applied** (restore it with the outcome's handle). `same_relation` and
/// `other_relations` are prompts (with answers) of other facts for the perplexity checks;
/// either may be empty. With `eval.random_control`, the same edit is first applied to as many
/// random neurons in the same layers (seed key `update-random/<relation>/<id>`), measured and
/// undone. The edit checks ([`EditChecks`]) use the same control prompts for locality and
/// `checks` for generality and symmetry. If a measurement after an edit fails, the edit is
/// undone before the error returns.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_update(
    model: &mut dyn KnowledgeModel,
    fact: &EncodedFact,
    new_answer: &str,
    frequencies: &NeuronFrequencies,
    same_relation: &[EncodedPrompt],
    other_relations: &[EncodedPrompt],
    config: &UpdateConfig,
    eval: &EvaluationConfig,
    checks: &CheckPrompts,
) -> Result<(UpdateEvaluation, UpdateOutcome)> {
    check_batch_size(eval.batch_size)?;
    check_config(config)?;
    for prompts in [same_relation, other_relations] {
        if !prompts.is_empty() {
            check_prompts(prompts, "perplexity")?;
        }
    }
    for prompts in std::iter::once(&checks.held_out).chain(&checks.reversed) {
        if !prompts.is_empty() {
            check_prompts(prompts, "edit checks")?;
        }
    }
    let (old_token, new_token) = fact_tokens(model, fact, new_answer)?;
    fact.neurons.require_non_empty("a fact update")?;
    fact.neurons.validate(model.info())?;
    if old_token == new_token {
        return Err(EditError::SameTarget {
            token: old_token,
            text: model.token_text(old_token),
        });
    }
    let (kept, excluded) = frequencies.split_shared(&fact.neurons, config.shared_threshold);
    if kept.is_empty() {
        return Err(EditError::AllNeuronsShared {
            excluded: excluded.len(),
            threshold: config.shared_threshold,
        });
    }
    let before = update_metrics(
        model,
        fact,
        new_token,
        same_relation,
        other_relations,
        eval.batch_size,
    )?;
    let symmetry_before = accuracy(model, checks.reversed.as_deref(), eval.batch_size)?;
    let (random_neurons, random_control) = if eval.random_control {
        let random = kept.random_like(
            model.info(),
            eval.seed,
            &format!("update-random/{}/{}", fact.relation, fact.id),
        )?;
        let outcome = update_tokens(
            model,
            &random,
            old_token,
            new_token,
            &NeuronFrequencies::default(),
            config,
        )?;
        let measured = update_metrics(
            model,
            fact,
            new_token,
            same_relation,
            other_relations,
            eval.batch_size,
        );
        outcome.handle.restore(model)?;
        (Some(random), Some(measured?.metrics))
    } else {
        (None, None)
    };
    let outcome = update_tokens(
        model,
        &fact.neurons,
        old_token,
        new_token,
        frequencies,
        config,
    )?;
    let measured = update_metrics(
        model,
        fact,
        new_token,
        same_relation,
        other_relations,
        eval.batch_size,
    )
    .and_then(|after| {
        let checks = edit_checks(
            model,
            checks,
            &before,
            &after,
            symmetry_before,
            eval.batch_size,
        )?;
        Ok((after.metrics, checks))
    });
    let (after, checks) = match measured {
        Ok(measured) => measured,
        Err(error) => {
            outcome.handle.restore(model)?;
            return Err(error);
        }
    };
    let evaluation = UpdateEvaluation {
        fact: fact.id.clone(),
        relation: fact.relation.clone(),
        old_token,
        old_text: model.token_text(old_token),
        new_token,
        new_text: model.token_text(new_token),
        config: *config,
        neurons: outcome.neurons.clone().into(),
        excluded: outcome.excluded.clone().into(),
        before: before.metrics,
        after,
        random_neurons: random_neurons.map(Into::into),
        random_control,
        checks,
    };
    Ok((evaluation, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_the_papers() {
        let c = UpdateConfig::default();
        assert_eq!(
            (
                c.lambda_remove,
                c.lambda_add,
                c.scale_by_norm,
                c.shared_threshold
            ),
            (1.0, 8.0, false, 0.1)
        );
        assert!(check_config(&c).is_ok());
        assert!(check_config(&UpdateConfig {
            lambda_add: f64::NAN,
            ..c
        })
        .is_err());
        assert!(check_config(&UpdateConfig {
            shared_threshold: -0.1,
            ..c
        })
        .is_err());
        let parsed: UpdateConfig = serde_json::from_str(r#"{"scale_by_norm": true}"#).unwrap();
        assert!(parsed.scale_by_norm && parsed.lambda_add == 8.0);
    }

    #[test]
    fn norms() {
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert_eq!(norm(&[]), 0.0);
    }

    #[test]
    fn fact_answer_must_agree() {
        let prompt = |t: i64| EncodedPrompt {
            text: "p".into(),
            token_ids: vec![1, 2],
            answer_position: 1,
            answer_ids: vec![t],
            targets: vec![(1, t)],
        };
        let mut fact = EncodedFact {
            id: "f".into(),
            relation: "r".into(),
            prompts: vec![prompt(4), prompt(4)],
            neurons: NeuronSet::default(),
            activation_baseline: None,
        };
        assert_eq!(fact_answer_token(&fact).unwrap(), 4);
        fact.prompts.push(prompt(5));
        assert!(matches!(
            fact_answer_token(&fact),
            Err(EditError::InconsistentAnswer {
                first: 4,
                other: 5,
                ..
            })
        ));
        fact.prompts.clear();
        assert!(matches!(
            fact_answer_token(&fact),
            Err(EditError::NoPrompts { .. })
        ));
    }
}

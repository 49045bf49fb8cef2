//! Interventions on activations: scale or set the activations of a [`NeuronSet`] at the answer
//! position and measure how the answer's probability and rank move.
//!
//! [`intervene`] runs, for every batch of prompts, one clean pass and one edited pass
//! ([`KnowledgeModel::forward`] with the set's [`kn_model::ActivationEdit`]s). Suppression is
//! [`SUPPRESS`] (`Scale(0)`), amplification [`AMPLIFY`] (`Scale(2)`), the paper's two
//! operations; any factor or a fixed value works too.

use crate::error::{check_batch_size, check_finite, Result};
use crate::neurons::NeuronSet;
use crate::scoring::{check_prompts, score_batch};
use kn_model::{ActivationOp, EncodedPrompt, KnowledgeModel};
use serde::{Deserialize, Serialize};

/// Suppression: activations multiplied by 0.
pub const SUPPRESS: ActivationOp = ActivationOp::Scale(0.0);

/// Amplification: activations doubled.
pub const AMPLIFY: ActivationOp = ActivationOp::Scale(2.0);

pub use kn_schema::DEFAULT_BATCH_SIZE;

/// Settings of [`intervene`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterventionConfig {
    /// Prompts per forward pass (at least 1). Default 16.
    pub batch_size: usize,
}

impl Default for InterventionConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// What an intervention did to one prompt's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptEffect {
    /// The prompt text.
    pub prompt: String,
    /// The answer token scored (the prompt's first target).
    pub answer_token: i64,
    /// Probability of the answer token without the intervention.
    pub prob_before: f64,
    /// Probability of the answer token with it.
    pub prob_after: f64,
    /// Rank of the answer token without the intervention (1 = top).
    pub rank_before: usize,
    /// Rank with it.
    pub rank_after: usize,
    /// The most probable token without the intervention.
    pub top_token_before: i64,
    /// The most probable token with it.
    pub top_token_after: i64,
}

impl PromptEffect {
    /// `prob_after - prob_before`.
    pub fn change(&self) -> f64 {
        self.prob_after - self.prob_before
    }

    /// `(prob_after - prob_before) / prob_before`, `None` when `prob_before` is 0.
    pub fn relative_change(&self) -> Option<f64> {
        (self.prob_before > 0.0).then(|| self.change() / self.prob_before)
    }
}

/// Checks that an operation's number is finite.
pub(crate) fn check_op(op: ActivationOp) -> Result<()> {
    match op {
        ActivationOp::Scale(factor) => check_finite("scale factor", factor),
        ActivationOp::Set(value) => check_finite("activation value", value),
    }
}

/// Applies `op` to the activations of `neurons` at the answer position of every prompt and
/// reports each prompt's answer probability and rank before and after.
///
/// Errors, before any pass runs: an empty set, neurons outside the model, no prompts, a
/// prompt without an answer, a zero batch size or a non-finite factor.
pub fn intervene(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    neurons: &NeuronSet,
    op: ActivationOp,
    config: &InterventionConfig,
) -> Result<Vec<PromptEffect>> {
    neurons.require_non_empty("an intervention")?;
    neurons.validate(model.info())?;
    check_prompts(prompts, "an intervention")?;
    check_batch_size(config.batch_size)?;
    check_op(op)?;
    let edits = neurons.edits(op);
    let mut effects = Vec::with_capacity(prompts.len());
    for batch in prompts.chunks(config.batch_size) {
        let clean = score_batch(model, batch, &[], &[])?;
        let edited = score_batch(model, batch, &edits, &[])?;
        for ((prompt, before), after) in batch.iter().zip(clean).zip(edited) {
            effects.push(PromptEffect {
                prompt: prompt.text.clone(),
                answer_token: before.answer.token,
                prob_before: before.answer.prob,
                prob_after: after.answer.prob,
                rank_before: before.answer.rank,
                rank_after: after.answer.rank,
                top_token_before: before.top,
                top_token_after: after.top,
            });
        }
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_change_guards_zero() {
        let effect = PromptEffect {
            prompt: "p".into(),
            answer_token: 1,
            prob_before: 0.25,
            prob_after: 0.5,
            rank_before: 2,
            rank_after: 1,
            top_token_before: 0,
            top_token_after: 1,
        };
        assert_eq!(effect.change(), 0.25);
        assert_eq!(effect.relative_change(), Some(1.0));
        let zero = PromptEffect {
            prob_before: 0.0,
            ..effect
        };
        assert_eq!(zero.relative_change(), None);
    }

    #[test]
    fn ops_must_be_finite() {
        assert!(check_op(SUPPRESS).is_ok());
        assert!(check_op(AMPLIFY).is_ok());
        assert!(check_op(ActivationOp::Scale(f64::NAN)).is_err());
        assert!(check_op(ActivationOp::Set(f64::INFINITY)).is_err());
    }

    #[test]
    fn config_defaults_and_json() {
        assert_eq!(InterventionConfig::default().batch_size, 16);
        let config: InterventionConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, InterventionConfig::default());
    }
}

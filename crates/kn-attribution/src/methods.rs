//! The attribution methods by name (`--method`), and one call that scores a prompt with any of
//! them ([`method_scores`]); docs/methods.md describes each.

use crate::baselines::{
    activation_scores, attribution_patching, forward_activations, gradient_x_activation,
};
use crate::error::{AttributionError, Result};
use crate::integrated_gradients::{
    integrated_gradients, require_answer, resolve_layers, Attribution, AttributionConfig, Target,
};
use crate::logprob_increase::logprob_increase;
use kn_model::{guard, EncodedPrompt, KnowledgeModel};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// An attribution method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Integrated gradients (the paper's).
    #[default]
    Ig,
    /// The clean activation (the paper's baseline).
    Activation,
    /// Gradient x activation at the clean run.
    GradXAct,
    /// Attribution patching towards a counterfactual prompt.
    Atp,
    /// Yu & Ananiadou's log-probability increase.
    LogprobIncrease,
}

impl Method {
    /// Every method, in the order `--method` lists them.
    pub const ALL: [Method; 5] = [
        Method::Ig,
        Method::Activation,
        Method::GradXAct,
        Method::Atp,
        Method::LogprobIncrease,
    ];

    /// The name `--method` takes and run files record.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ig => "ig",
            Method::Activation => "activation",
            Method::GradXAct => "grad-x-act",
            Method::Atp => "atp",
            Method::LogprobIncrease => "logprob-increase",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method {text:?}: use one of {}", names.join(", "))
            })
    }
}

/// The scores of `prompt` (encoded with its answer) by `method`, `[layers, ffn_width]` for
/// the layers of `config` (all when `None`); `config`'s steps, rule and target are those of
/// integrated gradients (and the target of gradient x activation). Attribution patching
/// needs `counterfactual`; the other methods ignore it.
pub fn method_scores(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    method: Method,
    config: &AttributionConfig,
    counterfactual: Option<&EncodedPrompt>,
) -> Result<Array2<f32>> {
    let layers = config.layers.as_deref();
    match method {
        Method::Ig => Ok(integrated_gradients(model, prompt, config)?.scores),
        Method::Activation => activation_scores(model, prompt, layers),
        Method::GradXAct => gradient_x_activation(model, prompt, layers, config.target),
        Method::LogprobIncrease => logprob_increase(model, prompt, layers),
        Method::Atp => match counterfactual {
            Some(counterfactual) => attribution_patching(model, prompt, counterfactual, layers),
            None => Err(AttributionError::InvalidConfig(
                "atp (attribution patching) needs a counterfactual prompt".into(),
            )),
        },
    }
}

/// [`method_scores`] with the clean pass's figures, as an [`Attribution`]: integrated
/// gradients' own, and for the other methods the scores beside the clean activations, the
/// answer's probability and rank (one forward pass) and no completeness check.
pub fn attribute_with(
    model: &dyn KnowledgeModel,
    prompt: &EncodedPrompt,
    method: Method,
    config: &AttributionConfig,
    counterfactual: Option<&EncodedPrompt>,
) -> Result<Attribution> {
    if method == Method::Ig {
        return integrated_gradients(model, prompt, config);
    }
    require_answer(prompt)?;
    let layers = resolve_layers(model, config.layers.as_deref())?;
    let (logits, activations) = forward_activations(model, prompt, &layers)?;
    let (prob, rank) = guard(|| Ok(kn_model::probability_and_rank(&logits, prompt.targets[0].1)))?;
    let scores = match method {
        Method::Activation => activations.clone(),
        method => method_scores(model, prompt, method, config, counterfactual)?,
    };
    Ok(Attribution {
        layers,
        scores,
        activations,
        clean_prob: prob,
        clean_rank: rank,
        clean_target: match config.target {
            Target::Probability => prob,
            Target::LogProbability => prob.ln(),
        },
        completeness: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for method in Method::ALL {
            assert_eq!(method.name().parse::<Method>(), Ok(method));
            let json = serde_json::to_string(&method).unwrap();
            assert_eq!(json, format!("\"{}\"", method.name()));
        }
        let error = "shap".parse::<Method>().unwrap_err();
        assert!(
            error.contains("\"shap\"") && error.contains("logprob-increase"),
            "{error}"
        );
        assert_eq!(Method::default(), Method::Ig);
    }
}

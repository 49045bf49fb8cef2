//! Pieces the examples share: command-line options, a fact's prompts for the model's kind and
//! the per-fact knowledge-neuron discovery (`kn_run::discover_fact`, as `kn discover` runs it).
//! Each example uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use kn_attribution::AttributionConfig;
use kn_data::{Dataset, Fact};
use kn_edit::NeuronSet;
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel};
use kn_select::{CoarseRule, RefineConfig};
use std::error::Error;

/// `--name value` from the command line, else `default`.
pub fn option(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == &format!("--{name}"))
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The prompts of `fact` (at most `max`, 0: all) with its object as a single-token answer;
/// `None` when it is not one token or fewer than 3 prompts remain.
pub fn single_token_prompts(
    model: &dyn KnowledgeModel,
    dataset: &Dataset,
    fact: &Fact,
    max: usize,
) -> Option<Vec<EncodedPrompt>> {
    let texts = prompt_texts(model, dataset, fact, max);
    let prompts: Vec<EncodedPrompt> = texts
        .iter()
        .map(|t| model.encode(t, Some(&fact.object), AnswerPolicy::SingleToken))
        .collect::<Result<_, _>>()
        .ok()?;
    (prompts.len() >= 3).then_some(prompts)
}

/// The prompt texts of `fact` for the model's kind (masked or causal), at most `max` (0: all).
pub fn prompt_texts(
    model: &dyn KnowledgeModel,
    dataset: &Dataset,
    fact: &Fact,
    max: usize,
) -> Vec<String> {
    let style = kn_run::prompt_style(model);
    let mut texts: Vec<String> = dataset
        .prompts(fact, &style)
        .into_iter()
        .map(|p| p.text)
        .collect();
    if max > 0 {
        texts.truncate(max);
    }
    texts
}

/// Knowledge neurons of one fact: `kn discover`'s per-fact step (`kn_run::discover_fact`:
/// integrated gradients of every prompt, coarse selection at 0.2 x max, refinement at
/// p = 0.7, the paper's defaults) on the texts of `prompts`.
pub fn knowledge_neurons(
    model: &dyn KnowledgeModel,
    fact: &Fact,
    prompts: &[EncodedPrompt],
    steps: usize,
) -> Result<NeuronSet, Box<dyn Error>> {
    let config = AttributionConfig {
        steps,
        ..AttributionConfig::default()
    };
    let texts: Vec<String> = prompts.iter().map(|p| p.text.clone()).collect();
    let steps = kn_run::FactSteps {
        method: kn_attribution::Method::Ig,
        attribution: &config,
        rule: &CoarseRule::Relative { ratio: 0.2 },
        refine: &RefineConfig::default(),
        save_scores: 0,
        counterfactuals: None,
    };
    let (record, _) = kn_run::discover_fact(model, fact, &texts, &steps)?;
    Ok(record.neurons.iter().map(|n| (n.layer, n.neuron)).collect())
}

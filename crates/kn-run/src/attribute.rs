//! Attribution of prompts' answers as the front ends run it (`kn attribute`, `Model.attribute`
//! in Python): prompts paired with their answers and counterfactuals, integrated gradients of
//! several prompts as one batch (or one after another), the other methods per prompt, and the
//! result of each prompt as the JSON object `kn attribute --json` prints.

use crate::RunError;
use kn_attribution::{
    attribute_with, integrated_gradients, integrated_gradients_batch, Attribution,
    AttributionConfig, IntegrationRule, LayerCompleteness, Method, ScoredNeuron, Target,
};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel};
use serde::Serialize;
use std::time::Instant;

/// One prompt's attribution (a line of `kn attribute --json`).
#[derive(Debug, Clone, Serialize)]
pub struct AttributeOutput {
    /// The prompt as given.
    pub prompt: String,
    /// The answer as given.
    pub answer: String,
    /// The method.
    pub method: Method,
    /// With the atp method: the counterfactual prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterfactual: Option<String>,
    /// The answer's tokens as text.
    pub answer_tokens: Vec<String>,
    /// The probability of the answer's first token on the clean pass.
    pub prob: f64,
    /// Attribution time: this prompt's own (one prompt, or one after another), or for a batch
    /// of several prompts the batch's time per prompt.
    pub seconds: f64,
    /// For a batch of several prompts: how many, and the whole batch's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchTiming>,
    /// Integration steps m.
    pub steps: usize,
    /// The integration rule's name.
    pub rule: &'static str,
    /// What was differentiated.
    pub target: Target,
    /// The attributed layers (row `r` of the scores is layer `layers[r]`).
    pub layers: Vec<usize>,
    /// The highest-scoring neurons.
    pub top: Vec<ScoredNeuron>,
    /// Per layer: the sum of the scores against the change of the target (completeness).
    pub completeness: Vec<LayerCompleteness>,
    /// Where the full score matrix was written, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
}

/// The timing of a batch of prompts.
#[derive(Debug, Clone, Serialize)]
pub struct BatchTiming {
    /// Prompts in the batch.
    pub prompts: usize,
    /// The whole batch's time.
    pub seconds: f64,
}

/// How prompts are attributed, beside the attribution's own configuration.
#[derive(Debug, Clone)]
pub struct AttributeSettings {
    /// The method.
    pub method: Method,
    /// Integrated gradients' settings (steps, rule, target, layers, memory).
    pub config: AttributionConfig,
    /// How many top neurons each output lists.
    pub top: usize,
    /// Integrated gradients of several prompts one after another, each alone, instead of as
    /// one batch.
    pub separately: bool,
}

impl AttributeSettings {
    /// Settings from the options as `kn attribute` takes them (`rule` and `target` by name,
    /// `memory_budget` in GiB), checked before any model is loaded; the layers are the model's
    /// (`config.layers` is `None` until the caller sets them).
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        method: Method,
        steps: usize,
        rule: &str,
        target: &str,
        top: usize,
        batch_size: usize,
        concurrent_passes: usize,
        memory_budget: f64,
        separately: bool,
    ) -> Result<Self, RunError> {
        crate::options::check_thread_count("--concurrent-passes", concurrent_passes)?;
        let memory_budget = crate::options::memory_budget_bytes(memory_budget)?;
        Ok(AttributeSettings {
            method,
            config: AttributionConfig {
                steps,
                rule: IntegrationRule::parse(rule)?,
                target: Target::parse(target)?,
                layers: None,
                batch_size,
                concurrent_passes,
                memory_budget,
            },
            top,
            separately,
        })
    }
}

/// `values` given once for all `prompts` or once per prompt, as one value per prompt;
/// `option` and `what` name them in the error (`--answer`, "one answer").
pub fn per_prompt<'a>(
    values: &'a [String],
    prompts: usize,
    option: &str,
    what: &str,
) -> Result<Vec<&'a String>, RunError> {
    match values.len() {
        1 => Ok(vec![&values[0]; prompts]),
        n if n == prompts => Ok(values.iter().collect()),
        n => Err(RunError::BadInput(format!(
            "{n} {option} values for {prompts} --prompt values: give {what} for all prompts or one per prompt"
        ))),
    }
}

/// The counterfactual prompt of each prompt: required by the atp method (once or once per
/// prompt), refused by the others.
pub fn counterfactuals_for(
    method: Method,
    counterfactuals: &[String],
    prompts: usize,
) -> Result<Vec<&String>, RunError> {
    match (method, counterfactuals.len()) {
        (Method::Atp, 0) => Err(RunError::BadInput(
            "--method atp needs --counterfactual (the same template with another subject)".into(),
        )),
        (Method::Atp, _) => per_prompt(counterfactuals, prompts, "--counterfactual", "one"),
        (_, 0) => Ok(Vec::new()),
        (_, _) => Err(RunError::BadInput(
            "--counterfactual is for --method atp".into(),
        )),
    }
}

/// Encodes each prompt with its answer under `policy` (an empty prompt list is refused).
pub fn encode_prompts(
    model: &dyn KnowledgeModel,
    prompts: &[String],
    answers: &[&String],
    policy: AnswerPolicy,
) -> Result<Vec<EncodedPrompt>, RunError> {
    if prompts.is_empty() {
        return Err(RunError::BadInput("no --prompt given".into()));
    }
    prompts
        .iter()
        .zip(answers)
        .map(|(prompt, answer)| Ok(model.encode(prompt, Some(answer), policy)?))
        .collect()
}

/// Attributes `prompts` (encoded with their answers) by `settings`, handing each result (owned)
/// to `each` with its index, its time and, for a batch of several prompts, the batch's timing:
/// integrated gradients as one batch (or one prompt after another with `separately`), the
/// other methods one prompt at a time (atp towards `counterfactuals[i]`, as
/// [`counterfactuals_for`] gives them). `stop` is asked between prompts processed one at a time.
pub fn attribute_prompts(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    counterfactuals: &[&String],
    settings: &AttributeSettings,
    stop: &dyn Fn() -> bool,
    each: &mut dyn FnMut(usize, Attribution, f64, Option<BatchTiming>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    if settings.method != Method::Ig || settings.separately {
        for (index, prompt) in prompts.iter().enumerate() {
            if stop() {
                return Err(RunError::Interrupted(format!(
                    "interrupted after {index} of {} prompts",
                    prompts.len()
                )));
            }
            let started = Instant::now();
            let counterfactual = match counterfactuals.get(index) {
                Some(text) => Some(model.encode(text, None, AnswerPolicy::FirstToken)?),
                None => None,
            };
            let attribution = match settings.method {
                Method::Ig => integrated_gradients(model, prompt, &settings.config)?,
                method => attribute_with(
                    model,
                    prompt,
                    method,
                    &settings.config,
                    counterfactual.as_ref(),
                )?,
            };
            each(index, attribution, started.elapsed().as_secs_f64(), None)?;
        }
        return Ok(());
    }
    let started = Instant::now();
    let attributions = integrated_gradients_batch(model, prompts, &settings.config)?;
    let batch_seconds = started.elapsed().as_secs_f64();
    let batch = (prompts.len() > 1).then_some(BatchTiming {
        prompts: prompts.len(),
        seconds: batch_seconds,
    });
    for (index, attribution) in attributions.into_iter().enumerate() {
        each(
            index,
            attribution,
            batch_seconds / prompts.len() as f64,
            batch.clone(),
        )?;
    }
    Ok(())
}

impl AttributeOutput {
    /// The output of one prompt: `prompt` and `answer` as given, `encoded` as attributed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &dyn KnowledgeModel,
        settings: &AttributeSettings,
        prompt: &str,
        answer: &str,
        counterfactual: Option<&str>,
        encoded: &EncodedPrompt,
        attribution: &Attribution,
        seconds: f64,
        batch: Option<BatchTiming>,
    ) -> Self {
        AttributeOutput {
            prompt: prompt.to_string(),
            answer: answer.to_string(),
            method: settings.method,
            counterfactual: counterfactual.map(str::to_string),
            answer_tokens: encoded
                .answer_ids
                .iter()
                .map(|&id| model.token_text(id))
                .collect(),
            prob: attribution.clean_prob,
            seconds,
            batch,
            steps: settings.config.steps,
            rule: settings.config.rule.name(),
            target: match settings.method {
                Method::Atp | Method::LogprobIncrease => Target::LogProbability,
                _ => settings.config.target,
            },
            layers: attribution.layers.clone(),
            top: attribution.top(settings.top),
            completeness: attribution.completeness.clone(),
            out: None,
        }
    }
}

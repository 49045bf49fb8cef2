//! `kn attribute`: integrated-gradients attribution of one prompt's answer over the FFN
//! neurons, with the top neurons as JSON and optionally the full matrix on disk.

use crate::exit::CliError;
use crate::options::{parse_layers, ModelOptions};
use kn_attribution::{
    integrated_gradients, save_scores, AttributionConfig, IntegrationRule, LayerCompleteness,
    NeuronScore, Target,
};
use kn_model::AnswerPolicy;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `kn attribute`.
#[derive(Debug, clap::Args)]
pub struct AttributeArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The prompt (masked LMs: with one `[MASK]`; causal LMs: the answer comes next).
    #[arg(long)]
    prompt: String,
    /// The correct answer, e.g. "Paris".
    #[arg(long)]
    answer: String,
    /// Number of integration points m.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Integration rule: left (the paper's), right, midpoint, trapezoid, gauss-legendre.
    #[arg(long, default_value = "left")]
    rule: String,
    /// What is differentiated: probability (the paper's) or log-probability.
    #[arg(long, default_value = "probability")]
    target: String,
    /// Layers to attribute: `all`, a range `0-29`, or a list `0,5,7-9`.
    #[arg(long, default_value = "all")]
    layers: String,
    /// How many top neurons to report.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Most rows (layer x integration point) per attribution pass, which bounds memory (0: the
    /// library default, 640). Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Multi-token answers: first-token (the paper's), single-token (refuse longer answers)
    /// or whole-answer (causal models: sum of the tokens' teacher-forced log-probabilities).
    #[arg(long, default_value = "first-token")]
    answer_policy: String,
    /// Also write the full layers x neurons score matrix here (.npy or .json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The JSON object `kn attribute --json` prints.
#[derive(Debug, Serialize)]
struct AttributeOutput {
    prompt: String,
    answer: String,
    answer_tokens: Vec<String>,
    prob: f64,
    seconds: f64,
    steps: usize,
    rule: &'static str,
    target: Target,
    layers: Vec<usize>,
    top: Vec<NeuronScore>,
    completeness: Vec<LayerCompleteness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<String>,
}

/// Parses an answer policy name.
pub fn parse_policy(name: &str) -> Result<AnswerPolicy, CliError> {
    match name {
        "first-token" => Ok(AnswerPolicy::FirstToken),
        "single-token" => Ok(AnswerPolicy::SingleToken),
        "whole-answer" => Ok(AnswerPolicy::WholeAnswer),
        other => Err(CliError::BadInput(format!(
            "unknown answer policy {other:?}: use first-token, single-token or whole-answer"
        ))),
    }
}

/// Runs `kn attribute`.
pub fn run(args: AttributeArgs) -> Result<(), CliError> {
    let rule = IntegrationRule::parse(&args.rule)?;
    let target = Target::parse(&args.target)?;
    let policy = parse_policy(&args.answer_policy)?;
    if let Some(out) = &args.out {
        if !matches!(
            out.extension().and_then(|e| e.to_str()),
            Some("npy" | "json")
        ) {
            return Err(CliError::BadInput(format!(
                "--out {}: use a .npy or .json file name",
                out.display()
            )));
        }
    }
    let model = args.model.load()?;
    let layers = parse_layers(&args.layers, model.info().num_layers)?;
    let prompt = model.encode(&args.prompt, Some(&args.answer), policy)?;
    let config = AttributionConfig {
        steps: args.steps,
        rule,
        target,
        layers: Some(layers),
        batch_size: args.batch_size,
    };
    let started = std::time::Instant::now();
    let attribution = integrated_gradients(model.as_ref(), &prompt, &config)?;
    let seconds = started.elapsed().as_secs_f64();
    let out = match &args.out {
        Some(path) => {
            save_scores(path, &attribution.layers, &attribution.scores)
                .map_err(|e| CliError::Internal(e.to_string()))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let output = AttributeOutput {
        prompt: args.prompt.clone(),
        answer: args.answer.clone(),
        answer_tokens: prompt
            .answer_ids
            .iter()
            .map(|&id| model.token_text(id))
            .collect(),
        prob: attribution.clean_prob,
        seconds,
        steps: args.steps,
        rule: rule.name(),
        target,
        layers: attribution.layers.clone(),
        top: attribution.top(args.top),
        completeness: attribution.completeness.clone(),
        out,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&output).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        println!(
            "{} -> {:?}: p = {:.4}, {:.2} s",
            output.prompt, output.answer, output.prob, output.seconds
        );
        println!("{:>5} {:>7} {:>12}", "layer", "neuron", "score");
        for neuron in &output.top {
            println!(
                "{:>5} {:>7} {:>12.6}",
                neuron.layer, neuron.neuron, neuron.score
            );
        }
    }
    Ok(())
}

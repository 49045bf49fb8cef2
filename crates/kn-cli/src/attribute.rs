//! `kn attribute`: attribution of one prompt's answer over the FFN neurons, with the top
//! neurons as JSON and optionally the full matrix on disk. `--method ig` (the default) is the
//! paper's integrated gradients; `activation`, `grad-x-act`, `atp` (attribution patching
//! towards `--counterfactual`) and `logprob-increase` are the other scores it is compared with. Several `--prompt`s
//! (e.g. the paraphrases of one fact) are attributed as one batch, or with `--separately` one
//! after another, each alone and timed on its own.

use crate::exit::CliError;
use crate::options::{parse_layers, ModelOptions};
use kn_attribution::{save_scores, Method};
use kn_run::attribute::{
    attribute_prompts, counterfactuals_for, encode_prompts, per_prompt, AttributeOutput,
    AttributeSettings,
};
use kn_run::options::parse_policy;
use std::path::PathBuf;

/// Arguments of `kn attribute`.
#[derive(Debug, clap::Args)]
pub struct AttributeArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The prompt (masked LMs: with one `[MASK]`; causal LMs: the answer comes next). Repeat
    /// it to attribute several prompts as one batch (one JSON line each).
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// The correct answer, e.g. "Paris": once for all prompts, or once per prompt in order.
    #[arg(long, required = true)]
    answer: Vec<String>,
    /// The attribution method: ig (integrated gradients, the paper's), activation (the clean
    /// activation), grad-x-act (gradient x activation of --target at the clean run), atp
    /// (attribution patching: (activation on --counterfactual - clean activation) x the
    /// gradient of the answer's log-probability at the clean run) or logprob-increase (Yu &
    /// Ananiadou 2024: the answer's log-probability gained by adding the neuron's activation x
    /// value slot to the residual stream, read through the final norm and the output head;
    /// RMSNorm decoders without sandwich norms).
    #[arg(long, default_value = "ig")]
    method: Method,
    /// With --method atp: the counterfactual prompt (the same template with another subject),
    /// once for all prompts or once per prompt in order.
    #[arg(long)]
    counterfactual: Vec<String>,
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
    /// Most rows (layer x integration point) held at once, which bounds memory; concurrent
    /// passes share them (0: the model's suggestion: 1200 for Llama on the CPU, two SmolLM2
    /// prompts' rows; otherwise 640). Prompts attributed together share a pass when two or
    /// more fit in it. Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Attribution passes run at the same time on the CPU, each on its share of --threads
    /// (0: the model's suggestion: 2 for Llama with two or more threads, otherwise 1). Results
    /// do not depend on it.
    #[arg(long, default_value_t = 0)]
    concurrent_passes: usize,
    /// Memory the rows in flight may take, in GiB: the model's suggested rows are cut to what
    /// fits for large models (0: half the memory available when the attribution starts, on
    /// the CPU). Ignored with --batch-size. Results do not depend on it.
    #[arg(long, default_value_t = 0.0)]
    memory_budget: f64,
    /// Multi-token answers: first-token (the paper's), single-token (refuse longer answers)
    /// or whole-answer (causal models: sum of the tokens' teacher-forced log-probabilities).
    #[arg(long, default_value = "first-token")]
    answer_policy: String,
    /// Also write the full layers x neurons score matrix here (.npy or .json; one prompt only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// With several --prompt: attribute them one after another, each alone (no shared
    /// passes), printing each result as it is ready with its own time, as the Python
    /// reference does, instead of as one batch.
    #[arg(long)]
    separately: bool,
    /// Print one JSON object (a line per prompt) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `kn attribute`.
pub fn run(args: AttributeArgs) -> Result<(), CliError> {
    let mut settings = AttributeSettings::parse(
        args.method,
        args.steps,
        &args.rule,
        &args.target,
        args.top,
        args.batch_size,
        args.concurrent_passes,
        args.memory_budget,
        args.separately,
    )?;
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
        kn_run::check_output_file(out, "--out")?;
    }
    let answers = per_prompt(&args.answer, args.prompt.len(), "--answer", "one answer")?;
    let counterfactuals =
        counterfactuals_for(args.method, &args.counterfactual, args.prompt.len())?;
    if args.out.is_some() && args.prompt.len() > 1 {
        return Err(CliError::BadInput(
            "--out writes one prompt's matrix: give a single --prompt".into(),
        ));
    }
    let model = args.model.load()?;
    settings.config.layers = Some(parse_layers(&args.layers, model.info().num_layers)?);
    let prompts = encode_prompts(model.as_ref(), &args.prompt, &answers, policy)?;
    attribute_prompts(
        model.as_ref(),
        &prompts,
        &counterfactuals,
        &settings,
        &|| false,
        &mut |index, attribution, seconds, batch| {
            let mut output = AttributeOutput::new(
                model.as_ref(),
                &settings,
                &args.prompt[index],
                answers[index],
                counterfactuals.get(index).map(|c| c.as_str()),
                &prompts[index],
                &attribution,
                seconds,
                batch,
            );
            if let Some(path) = &args.out {
                save_scores(path, &attribution.layers, &attribution.scores)
                    .map_err(|e| CliError::Internal(e.to_string()))?;
                output.out = Some(path.display().to_string());
            }
            print_output(&output, args.json)
        },
    )
}

/// Prints one prompt's result: a JSON line, or a short table.
fn print_output(output: &AttributeOutput, json: bool) -> Result<(), CliError> {
    if json {
        println!(
            "{}",
            serde_json::to_string(output).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        println!(
            "{} -> {:?}: p = {:.4}, {:.2} s",
            crate::text::printable(&output.prompt),
            output.answer,
            output.prob,
            output.seconds
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

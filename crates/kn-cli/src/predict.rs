//! `kn predict`: the top-k predictions at the answer position of one prompt.

use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_model::{AnswerPolicy, KnowledgeModel};
use serde::Serialize;

/// Arguments of `kn predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The prompt. Masked LMs need one `[MASK]`; causal LMs predict the next token.
    #[arg(long)]
    prompt: String,
    /// How many predictions to show (`--top`, as in the other subcommands, or `--top-k`).
    #[arg(long = "top", visible_alias = "top-k", default_value_t = 5)]
    top_k: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One prediction.
#[derive(Debug, Serialize)]
pub struct Prediction {
    /// The token as text.
    pub token: String,
    /// Its id.
    pub id: i64,
    /// Its probability.
    pub prob: f64,
}

/// The JSON object `kn predict --json` prints.
#[derive(Debug, Serialize)]
pub struct PredictOutput {
    /// The prompt as given.
    pub prompt: String,
    /// The prompt's tokens as text.
    pub tokens: Vec<String>,
    /// The top-k predictions, most probable first.
    pub top: Vec<Prediction>,
}

/// Computes the top-k predictions for `prompt`.
pub fn predict(
    model: &dyn KnowledgeModel,
    prompt: &str,
    top_k: usize,
) -> Result<PredictOutput, CliError> {
    crate::options::at_least_one(top_k, "--top")?;
    let encoded = model.encode(prompt, None, AnswerPolicy::FirstToken)?;
    let output = model.forward(std::slice::from_ref(&encoded), &[], false)?;
    let (probs, ids) = kn_model::guard(|| {
        let probs = output.logits.get(0).softmax(-1, kn_model::tch::Kind::Float);
        let k = top_k.min(model.info().vocab_size) as i64;
        let (values, indices) = probs.topk(k, -1, true, true);
        let values: Vec<f32> = Vec::try_from(values.to_device(kn_model::tch::Device::Cpu))?;
        let indices: Vec<i64> = Vec::try_from(indices.to_device(kn_model::tch::Device::Cpu))?;
        Ok((values, indices))
    })?;
    if let Some(bad) = probs.iter().find(|p| !p.is_finite()) {
        return Err(CliError::BadInput(format!(
            "the model's output for {:?} is not finite ({bad}): its weights or settings overflow",
            crate::text::shorten(prompt)
        )));
    }
    let top = probs
        .iter()
        .zip(&ids)
        .map(|(&prob, &id)| Prediction {
            token: model.token_text(id),
            id,
            prob: f64::from(prob),
        })
        .collect();
    let tokens = encoded
        .token_ids
        .iter()
        .map(|&id| model.token_text(id))
        .collect();
    Ok(PredictOutput {
        prompt: prompt.to_string(),
        tokens,
        top,
    })
}

/// Runs `kn predict`.
pub fn run(args: PredictArgs) -> Result<(), CliError> {
    let model = args.model.load()?;
    let output = predict(model.as_ref(), &args.prompt, args.top_k)?;
    if args.json {
        let text = serde_json::to_string(&output).map_err(|e| CliError::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        println!("{}", crate::text::printable(&args.prompt));
        for (rank, p) in output.top.iter().enumerate() {
            println!(
                "{:>3}  {:<20} {:>8.4}  (id {})",
                rank + 1,
                format!("{:?}", p.token),
                p.prob,
                p.id
            );
        }
    }
    Ok(())
}

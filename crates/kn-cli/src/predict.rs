//! `kn predict`: the top-k predictions at the answer position of one prompt.

use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_run::predict::predict;

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

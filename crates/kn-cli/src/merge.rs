//! `kn merge`: combine the run directories of `kn discover --shard i/n` into one run; the
//! checks and the merge are `kn_run::merge`'s.

use crate::exit::CliError;
use std::path::PathBuf;

/// Arguments of `kn merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The merged run directory (must not hold another run).
    #[arg(long)]
    out: PathBuf,
    /// The shard run directories (any order).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Print the merged run's statistics (stats.json) on stdout as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `kn merge`.
pub fn run(args: MergeArgs) -> Result<(), CliError> {
    let report = crate::log::report("merge");
    let merged = kn_run::merge::merge_shards(&args.out, &args.shards, &report)?;
    crate::log::progress(
        "merge",
        format!(
            "{} facts ({} saved score matrices) from {} shards into {}",
            merged.facts,
            merged.scores,
            merged.shards,
            args.out.display()
        ),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&merged.stats)
                .map_err(|e| CliError::Internal(e.to_string()))?
        );
    }
    Ok(())
}

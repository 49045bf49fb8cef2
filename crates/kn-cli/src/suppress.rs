//! `kn suppress`: the paper's suppression/amplification experiment (Dai et al. 2022, §4.3) on
//! the facts of a `kn discover` run.
//!
//! The experiment is `kn_run::suppression`'s; this file holds the options, the checks, the
//! table and the chart.

use crate::emit::to_json;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_edit::ExperimentConfig;
use kn_report::chart::{ChartMeasure, SuppressionChart};
use kn_run::suppression::prepare_suppression;
use std::path::PathBuf;

/// Arguments of `kn suppress`.
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The neurons.jsonl of a `kn discover` run (its config.json must be beside it), or the
    /// run directory.
    #[arg(long)]
    neurons: PathBuf,
    /// Only the facts of these relations (comma-separated; default: all of the run's).
    #[arg(long)]
    relations: Option<String>,
    /// Seed of the random controls (random neurons, other-relation facts).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// How many facts of other relations each fact's neurons are tried on (the paper: 1).
    #[arg(long, default_value_t = 1)]
    other_relation_facts: usize,
    /// Run the random-neuron control.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    random_control: bool,
    /// Run the activation-baseline control (one extra pass per prompt).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    activation_baseline: bool,
    /// Where to write the JSON report (default: suppression.json in the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also draw the paper's bar chart (one bar pair per relation, controls lighter) as SVG.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print the JSON report on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `kn suppress`.
pub fn run(args: SuppressArgs) -> Result<(), CliError> {
    crate::options::at_least_one(args.batch_size, "--batch-size")?;
    if let Some(chart) = &args.chart {
        kn_run::check_output_file(chart, "--chart")?;
    }
    let prepared = prepare_suppression(
        &args.neurons,
        args.relations.as_deref(),
        args.out.as_deref(),
    )?;
    let model = args.model.load()?;
    let log = |message: String| crate::log::progress("suppress", message);
    let config = ExperimentConfig {
        batch_size: args.batch_size,
        other_relation_facts: args.other_relation_facts,
        random_control: args.random_control,
        seed: args.seed,
        ..ExperimentConfig::default()
    };
    let verbose = crate::log::enabled(crate::log::Verbosity::Verbose);
    let report = crate::log::report("suppress");
    let output = prepared.run(
        model.as_ref(),
        &config,
        args.activation_baseline,
        verbose,
        &report,
    )?;
    if let Some(path) = &args.chart {
        let title = format!(
            "Suppressing and amplifying knowledge neurons ({})",
            output.report.architecture
        );
        SuppressionChart::from_report(&output.report, ChartMeasure::ChangePct, true, &title)
            .save(path)
            .map_err(|e| CliError::Internal(e.to_string()))?;
        log(format!("chart written to {}", path.display()));
    }
    if args.json {
        println!("{}", to_json(&output)?);
    } else {
        print!(
            "{}",
            crate::text::printable_lines(&kn_report::terminal::suppression_table(&output.report))
        );
    }
    Ok(())
}

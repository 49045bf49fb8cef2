//! `kn suppress`: the paper's suppression/amplification experiment (Dai et al. 2022, §4.3) on
//! the facts of a `kn discover` run.
//!
//! The experiment is `kn_run::suppression`'s; this file holds the options, the checks, the
//! table and the chart.

use crate::emit::{pct, to_json, write_json};
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_edit::{ChangeSummary, ExperimentConfig, ExperimentReport, GroupReport};
use kn_report::chart::{ChartMeasure, SuppressionChart};
use kn_run::suppression::suppress_amplify;
use kn_run::RunDir;
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
    if args.batch_size == 0 {
        return Err(CliError::BadInput("--batch-size must be at least 1".into()));
    }
    let run = RunDir::load(&args.neurons)?;
    let relations = run.select_relations(args.relations.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run.dir.join("suppression.json"));
    kn_run::check_output_file(&out, "--out")?;
    if let Some(chart) = &args.chart {
        kn_run::check_output_file(chart, "--chart")?;
    }
    let _lock = kn_run::lock_run_of(&out, "kn suppress")?;
    let model = args.model.load()?;
    run.check_model(model.info())?;
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
    let output = suppress_amplify(
        model.as_ref(),
        &run,
        &relations,
        &config,
        args.activation_baseline,
        verbose,
        &report,
    )?;
    write_json(&out, &output)?;
    log(format!("report written to {}", out.display()));
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
        print!("{}", table(&output.report));
    }
    Ok(())
}

/// A table cell: the paper's ratio of means / the mean of per-prompt relative changes.
fn cell(summary: &ChangeSummary) -> String {
    if summary.prompts == 0 {
        return "-".into();
    }
    format!(
        "{} / {}",
        pct(summary.change_pct),
        pct(summary.mean_relative_change_pct)
    )
}

fn group_rows(name: &str, group: &GroupReport, out: &mut String) {
    let c = &group.conditions;
    out.push_str(&format!(
        "{name}: {} facts ({} without neurons), {} prompts\n",
        group.facts, group.facts_without_neurons, group.prompts
    ));
    for (op, pick) in [("suppress", 0usize), ("amplify", 1)] {
        let get = |effects: &kn_edit::OpEffects| {
            if pick == 0 {
                effects.suppress.clone()
            } else {
                effects.amplify.clone()
            }
        };
        out.push_str(&format!(
            "  {op:<9} {:>22} {:>22} {:>22} {:>22}\n",
            cell(&get(&c.own)),
            cell(&get(&c.random)),
            cell(&get(&c.other_relations)),
            cell(&get(&c.activation_baseline))
        ));
    }
}

/// The per-relation table printed without --json.
fn table(report: &ExperimentReport) -> String {
    let mut out = String::new();
    out.push_str("Change of the correct answer's probability; each cell: ratio of means (the paper's) / mean of per-prompt changes\n");
    out.push_str(&format!(
        "  {:<9} {:>22} {:>22} {:>22} {:>22}\n",
        "", "knowledge neurons", "random neurons", "other relations", "activation baseline"
    ));
    for (relation, group) in &report.relations {
        group_rows(relation, group, &mut out);
    }
    group_rows("all", &report.overall, &mut out);
    out
}

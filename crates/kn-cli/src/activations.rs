//! `kn activations`: do knowledge neurons fire when their fact is expressed? (the paper's
//! Figure 5). Reads a `kn discover` run and the BINGREL corpus, measures the mean activation of
//! each fact's knowledge neurons on T1 (head+tail sentences, tail hidden), T2 (head-only
//! sentences, a random non-head word hidden) and T3 (random sentences of other facts), beside
//! random neurons of the same layers, and writes `DIR/activations.json`; a summary table goes
//! to stdout, progress to stderr.
//!
//! The corpus is checked against the PARAREL facts the run was made from (the run's `--data`,
//! or `--data` here): a missing relation file, or one whose number of bags differs from the
//! relation's number of facts, is bad input (exit 2), as is a run fact that PARAREL does not
//! have with the same subject and object. Empty bags, tails not found and sentences longer than
//! the model's context are skipped and counted in the report.
//!
//! Also the loading shared with `kn triggers` ([`Inputs`]; the checks are `kn_run::probe`'s).

use crate::emit::{to_json, write_json};
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_model::KnowledgeModel;
use kn_probe::{activation_experiment, ActivationConfig, ActivationsFile, KnowledgeFact};
use kn_run::probe::ProbeData;
use kn_run::RunDir;
use std::path::PathBuf;

/// The inputs `kn activations` and `kn triggers` share: a discover run, the BINGREL corpus and
/// the PARAREL data it lines up with.
#[derive(Debug, clap::Args)]
pub struct ProbeSources {
    /// The neurons.jsonl of a `kn discover` run (or the run directory).
    #[arg(long)]
    pub neurons: PathBuf,
    /// The BINGREL directory (`final_distant_allbags_<relation>_new.json` files).
    #[arg(long)]
    pub corpus: PathBuf,
    /// The PARAREL directory the corpus lines up with (default: the run's data directory).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Arguments of `kn activations`.
#[derive(Debug, clap::Args)]
pub struct ActivationsArgs {
    #[command(flatten)]
    pub model: ModelOptions,
    #[command(flatten)]
    pub sources: ProbeSources,
    /// Relations to measure, comma-separated (default: every relation of the run).
    #[arg(long)]
    pub relations: Option<String>,
    /// Use at most N head+tail and N head-only sentences per fact, the first of each bag (0: all,
    /// as the paper).
    #[arg(long, default_value_t = 0)]
    pub sentences_per_fact: usize,
    /// Seed of the hidden words, the random sentences (T3) and the random neurons.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = kn_probe::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Output directory (created); activations.json is written there.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the report as one line of JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The model and the probe's data (`kn_run::probe::ProbeData`), checked against each other.
pub struct Inputs {
    /// The run, PARAREL and the corpus.
    pub data: ProbeData,
    /// The model (checked to be the run's).
    pub model: Box<dyn KnowledgeModel>,
}

impl Inputs {
    /// Reads the run's data and the corpus of `relations` (checking alignment) before loading
    /// the model, so bad input fails fast.
    pub fn load(
        run: RunDir,
        sources: &ProbeSources,
        relations: &[String],
        model: &ModelOptions,
    ) -> Result<Self, CliError> {
        let report = crate::log::report("activations");
        let data = ProbeData::load(
            run,
            &sources.corpus,
            sources.data.as_deref(),
            relations,
            &report,
        )?;
        let model = model.load()?;
        data.run.check_model(model.info())?;
        Ok(Self { data, model })
    }
}

/// Runs `kn activations`.
pub fn run(args: ActivationsArgs) -> Result<(), CliError> {
    crate::options::at_least_one(args.batch_size, "--batch-size")?;
    let run = RunDir::load(&args.sources.neurons)?;
    let relations = run.select_relations(args.relations.as_deref())?;
    let _lock = kn_run::prepare_run_dir(&args.out, "kn activations", kn_schema::Access::Shared)?;
    let inputs = Inputs::load(run, &args.sources, &relations, &args.model)?;
    let facts: Vec<KnowledgeFact> = inputs
        .data
        .run
        .records_of(&relations)
        .into_iter()
        .map(|r| inputs.data.fact(r))
        .collect::<Result<_, _>>()?;

    let config = ActivationConfig {
        sentences_per_fact: args.sentences_per_fact,
        seed: args.seed,
        batch_size: args.batch_size,
        random_control: true,
    };
    crate::log::progress(
        "activations",
        format!("{} facts of {} relation(s)", facts.len(), relations.len()),
    );
    let started = std::time::Instant::now();
    let mut next_report = 0.0;
    let mut progress = |done: usize, total: usize| {
        let share = done as f64 / total.max(1) as f64;
        if share >= next_report || done == total {
            crate::log::progress(
                "activations",
                format!(
                    "{done}/{total} sentences ({:.0}%), {:.1} s",
                    100.0 * share,
                    started.elapsed().as_secs_f64()
                ),
            );
            next_report = share + 0.1;
        }
    };
    let report = activation_experiment(
        inputs.model.as_ref(),
        &facts,
        &inputs.data.corpus,
        &config,
        &mut progress,
    )?;
    let output = ActivationsFile {
        run: inputs.data.run.describe(),
        corpus: args.sources.corpus.display().to_string(),
        data: inputs.data.data_dir.display().to_string(),
        report,
    };
    let path = args.out.join("activations.json");
    write_json(&path, &output)?;
    if args.json {
        println!("{}", to_json(&output)?);
    } else {
        print!(
            "{}",
            crate::text::printable_lines(&kn_report::terminal::activation_table(&output.report))
        );
    }
    crate::log::progress(
        "activations",
        format!(
            "wrote {} in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

//! `kn triggers`: the sentences that activate a fact's knowledge neurons most (the paper's
//! Table 4). The fact's head+tail BINGREL sentences are ranked by the summed activation of its
//! knowledge neurons, with the tail present and with it hidden (T1 form); the top ones are
//! printed (JSON with `--json`). Inputs are read and checked as for `kn activations`.

use crate::activations::{Inputs, ProbeSources};
use crate::emit::to_json;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_probe::{trigger_sentences, TriggerConfig, TriggerReport, TriggerSentence};
use kn_run::RunDir;

/// Arguments of `kn triggers`.
#[derive(Debug, clap::Args)]
pub struct TriggersArgs {
    #[command(flatten)]
    pub model: ModelOptions,
    #[command(flatten)]
    pub sources: ProbeSources,
    /// The fact (`P36:12`); it must be in the run.
    #[arg(long)]
    pub fact: String,
    /// How many sentences to show per form.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Rank at most this many head+tail sentences, the first of the bag (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_sentences: usize,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = kn_probe::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Sign each neuron's activation by its mean on the fact's own prompts (from the run)
    /// before summing: for gated FFNs (SwiGLU) whose knowledge neurons may fire negatively.
    #[arg(long)]
    pub aligned: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kn triggers`.
pub fn run(args: TriggersArgs) -> Result<(), CliError> {
    crate::options::at_least_one(args.batch_size, "--batch-size")?;
    let run = RunDir::load(&args.sources.neurons)?;
    let record = run.find(&args.fact)?.clone();
    if record.neurons.is_empty() {
        return Err(CliError::BadInput(format!(
            "fact {} has no knowledge neurons in the run",
            record.fact
        )));
    }
    let relations = vec![record.relation.clone()];
    let inputs = Inputs::load(run, &args.sources, &relations, &args.model)?;
    let fact = inputs.data.fact(&record)?;
    let bags = inputs.data.corpus.bags(&fact.fact.id)?.ok_or_else(|| {
        CliError::BadInput(format!("the corpus has no bag for fact {}", fact.fact.id))
    })?;
    if bags.th_bags.is_empty() {
        return Err(CliError::BadInput(format!(
            "fact {} ({}, {}) has no head+tail sentence in the corpus: nothing to rank",
            fact.fact.id, fact.fact.subject, fact.fact.object
        )));
    }
    let config = TriggerConfig {
        top: args.top,
        max_sentences: args.max_sentences,
        batch_size: args.batch_size,
        aligned: args.aligned,
    };
    let report = trigger_sentences(inputs.model.as_ref(), &fact, bags, &config)?;
    if args.json {
        println!("{}", to_json(&report)?);
    } else {
        print!("{}", crate::text::printable_lines(&text(&report)));
    }
    Ok(())
}

fn list(title: &str, sentences: &[TriggerSentence], out: &mut String) {
    out.push_str(title);
    out.push('\n');
    if sentences.is_empty() {
        out.push_str("  (none)\n");
    }
    for (k, s) in sentences.iter().enumerate() {
        out.push_str(&format!(
            "  {:>2}. {:+9.4}  [{}] {}\n",
            k + 1,
            s.score,
            s.sentence,
            s.text
        ));
    }
}

/// The text printed on stdout.
fn text(report: &TriggerReport) -> String {
    let neurons: Vec<String> = report.neurons.iter().map(|n| n.to_string()).collect();
    let signed = if report.signs.is_empty() {
        String::new()
    } else {
        let signs: Vec<&str> = report
            .signs
            .iter()
            .map(|s| if *s < 0.0 { "-" } else { "+" })
            .collect();
        format!(
            ", each signed by its mean on the fact's prompts ({})",
            signs.join("")
        )
    };
    let mut out = format!(
        "{} ({}, {}); knowledge neurons: {}\nscore = summed activation of the knowledge neurons{signed}; [i] = sentence \
         index in the bag\n",
        report.fact,
        report.subject,
        report.object,
        neurons.join(" ")
    );
    list("top sentences with the tail:", &report.with_tail, &mut out);
    list(
        "top sentences with the tail hidden:",
        &report.without_tail,
        &mut out,
    );
    let c = &report.sentences;
    out.push_str(&format!(
        "sentences: {} looked at, {} ranked (tail not found {}, no context {}, too long {}, unencodable {})\n",
        c.sentences, c.evaluated, c.target_missing, c.no_context, c.too_long, c.unencodable
    ));
    out
}

//! `kn erase`: erasing a relation through its most frequent knowledge neurons (Dai et al.
//! 2022, §5.2) on a `kn discover` run, with the paper's metrics.
//!
//! The relation-level neuron frequencies are counted over the knowledge neurons of the run's
//! facts of that relation (`kn_edit::NeuronFrequencies`); the `--top` most frequent get their
//! value slots overwritten (`--value`: the unknown token's output embedding, zeros, or a token
//! of the vocabulary). Accuracy (answer top-1) and perplexity of the first answer token are
//! measured on the erased relation's prompts and on the other relations' prompts of the run,
//! before and after, and under a random-neuron control (as many random neurons, same layers).
//! The weights are restored afterwards and the restoration is checked bit for bit.

use crate::emit::emit;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_edit::verify_restored;
use kn_edit::{
    evaluate_erasure, AnswerQuality, EraseConfig, ErasureEvaluation, ErasureMetrics, ErasureValue,
    EvaluationConfig,
};
use kn_run::{change_pct, encode_facts, relation_frequencies, RunDir, RunSummary};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `kn erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The neurons.jsonl of a `kn discover` run (its config.json must be beside it), or the
    /// run directory.
    #[arg(long)]
    neurons: PathBuf,
    /// The relation to erase (e.g. P19); it must have facts in the run.
    #[arg(long)]
    relation: String,
    /// How many of the relation's most frequent knowledge neurons to erase.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// What the value slots become: `unk` (the unknown token's output embedding, the paper's),
    /// `zero`, `id:N` (token id N) or a token as written in the vocabulary.
    #[arg(long, default_value = "unk")]
    value: String,
    /// Run the random-neuron control.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    random_control: bool,
    /// Seed of the random control.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (atomically), e.g. DIR/erase-P36.json for
    /// `kn report`.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Parses `--value`.
pub fn parse_value(spec: &str) -> Result<ErasureValue, CliError> {
    let spec = spec.trim();
    match spec {
        "" => Err(CliError::BadInput(
            "--value is empty: use unk, zero, id:N or a token".into(),
        )),
        "unk" => Ok(ErasureValue::UnknownToken),
        "zero" | "zeros" => Ok(ErasureValue::Zero),
        _ => match spec.strip_prefix("id:") {
            Some(id) => id
                .trim()
                .parse::<i64>()
                .map(ErasureValue::Token)
                .map_err(|_| {
                    CliError::BadInput(format!("--value {spec:?}: {id:?} is not a token id"))
                }),
            None => Ok(ErasureValue::TokenText(spec.to_string())),
        },
    }
}

/// Before/after of one group of prompts, with relative changes.
#[derive(Debug, Serialize)]
struct QualityChange {
    prompts: usize,
    accuracy_before: f64,
    accuracy_after: f64,
    perplexity_before: f64,
    perplexity_after: f64,
    /// `100 * (after / before - 1)`.
    perplexity_change_pct: Option<f64>,
    /// Under the random control.
    random_accuracy: Option<f64>,
    random_perplexity: Option<f64>,
    random_perplexity_change_pct: Option<f64>,
}

impl QualityChange {
    fn of(before: &AnswerQuality, after: &AnswerQuality, random: Option<&AnswerQuality>) -> Self {
        Self {
            prompts: before.prompts,
            accuracy_before: before.accuracy,
            accuracy_after: after.accuracy,
            perplexity_before: before.perplexity,
            perplexity_after: after.perplexity,
            perplexity_change_pct: change_pct(before.perplexity, after.perplexity),
            random_accuracy: random.map(|r| r.accuracy),
            random_perplexity: random.map(|r| r.perplexity),
            random_perplexity_change_pct: random
                .and_then(|r| change_pct(before.perplexity, r.perplexity)),
        }
    }
}

/// The summary of an erasure: the erased relation and the others.
#[derive(Debug, Serialize)]
struct Summary {
    erased_relation: QualityChange,
    other_relations: Option<QualityChange>,
}

impl Summary {
    fn of(
        before: &ErasureMetrics,
        after: &ErasureMetrics,
        random: Option<&ErasureMetrics>,
    ) -> Self {
        Self {
            erased_relation: QualityChange::of(
                &before.erased_relation,
                &after.erased_relation,
                random.map(|r| &r.erased_relation),
            ),
            other_relations: match (&before.other_relations, &after.other_relations) {
                (Some(b), Some(a)) => Some(QualityChange::of(
                    b,
                    a,
                    random.and_then(|r| r.other_relations.as_ref()),
                )),
                _ => None,
            },
        }
    }
}

/// The JSON output of `kn erase`.
#[derive(Debug, Serialize)]
struct EraseOutput {
    run: RunSummary,
    /// Facts of the erased relation in the run (the frequencies' denominator).
    relation_facts: usize,
    /// Distinct knowledge neurons counted over them.
    neurons_counted: usize,
    /// How many facts hold each erased neuron, in the order of `neurons`' ranking.
    erased_counts: Vec<((usize, usize), usize)>,
    #[serde(flatten)]
    evaluation: ErasureEvaluation,
    summary: Summary,
    /// The weights were restored bit for bit after measuring.
    weights_restored: bool,
    seconds: f64,
}

/// Runs `kn erase`.
pub fn run(args: EraseArgs) -> Result<(), CliError> {
    let value = parse_value(&args.value)?;
    if args.top == 0 {
        return Err(CliError::BadInput("--top must be at least 1".into()));
    }
    if args.batch_size == 0 {
        return Err(CliError::BadInput("--batch-size must be at least 1".into()));
    }
    let run = RunDir::load(&args.neurons)?;
    let relation = run
        .select_relations(Some(&args.relation))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::BadInput("--relation is empty".into()))?;
    let _lock = match &args.out {
        Some(out) => {
            kn_run::check_output_file(out, "--out")?;
            kn_run::lock_run_of(out, "kn erase")?
        }
        None => None,
    };
    let mut model = args.model.load()?;
    run.check_model(model.info())?;
    let started = Instant::now();
    let frequencies = relation_frequencies(&run.records, &relation);
    if frequencies.ranked().is_empty() {
        return Err(CliError::BadInput(format!(
            "no fact of {relation} has knowledge neurons in the run: nothing to erase"
        )));
    }
    let erased_counts: Vec<((usize, usize), usize)> =
        frequencies.ranked().into_iter().take(args.top).collect();
    let others: Vec<String> = run
        .relations()
        .into_iter()
        .filter(|r| *r != relation)
        .collect();
    let relation_prompts: Vec<_> = encode_facts(
        model.as_ref(),
        &run.records_of(std::slice::from_ref(&relation)),
    )?
    .into_iter()
    .flat_map(|f| f.prompts)
    .collect();
    let other_prompts: Vec<_> = encode_facts(model.as_ref(), &run.records_of(&others))?
        .into_iter()
        .flat_map(|f| f.prompts)
        .collect();
    crate::log::progress(
        "erase",
        format!(
            "{relation}: {} facts, {} distinct neurons, erasing the top {}; {} prompts of the relation, {} of {} other relation(s)",
            frequencies.facts(),
            frequencies.ranked().len(),
            erased_counts.len(),
            relation_prompts.len(),
            other_prompts.len(),
            others.len()
        ),
    );
    let config = EraseConfig {
        top_n: args.top,
        value,
    };
    let eval = EvaluationConfig {
        batch_size: args.batch_size,
        random_control: args.random_control,
        seed: args.seed,
    };
    let (evaluation, outcome) = evaluate_erasure(
        model.as_mut(),
        &relation,
        &frequencies,
        &relation_prompts,
        &other_prompts,
        &config,
        &eval,
    )?;
    outcome.handle.restore(model.as_mut())?;
    let weights_restored = verify_restored(model.as_ref(), outcome.handle.patch())?;
    if !weights_restored {
        return Err(CliError::Internal(format!(
            "the weights erased for {relation} were not restored exactly"
        )));
    }
    let summary = Summary::of(
        &evaluation.before,
        &evaluation.after,
        evaluation.random_control.as_ref(),
    );
    let output = EraseOutput {
        run: run.describe(),
        relation_facts: frequencies.facts(),
        neurons_counted: frequencies.ranked().len(),
        erased_counts,
        evaluation,
        summary,
        weights_restored,
        seconds: started.elapsed().as_secs_f64(),
    };
    emit(&output, args.json, args.out.as_deref(), || table(&output))
}

fn rows(name: &str, q: &QualityChange) -> String {
    let num = |v: f64| {
        if v.abs() >= 1e5 {
            format!("{v:.3e}")
        } else {
            format!("{v:.3}")
        }
    };
    let opt = |v: Option<f64>| v.map(num).unwrap_or_else(|| "-".into());
    format!(
        "  {name:<18} {:>7} {:>9.3} {:>9.3} {:>11} {:>11} {:>10} | {:>9} {:>11} {:>10}\n",
        q.prompts,
        q.accuracy_before,
        q.accuracy_after,
        num(q.perplexity_before),
        num(q.perplexity_after),
        crate::emit::pct(q.perplexity_change_pct),
        opt(q.random_accuracy),
        opt(q.random_perplexity),
        crate::emit::pct(q.random_perplexity_change_pct)
    )
}

fn table(output: &EraseOutput) -> String {
    let e = &output.evaluation;
    let mut out = format!(
        "erased {}: {} neurons (of {} counted over {} facts) set to {}\n",
        e.relation,
        e.neurons.len(),
        output.neurons_counted,
        output.relation_facts,
        e.token_text
            .as_ref()
            .map(|t| format!("the embedding of {t:?}"))
            .unwrap_or_else(|| "zeros".into())
    );
    out.push_str(&format!(
        "  {:<18} {:>7} {:>9} {:>9} {:>11} {:>11} {:>10} | {:>9} {:>11} {:>10}\n",
        "prompts",
        "n",
        "acc bef.",
        "acc aft.",
        "ppl bef.",
        "ppl aft.",
        "ppl chg.",
        "rnd acc",
        "rnd ppl",
        "rnd chg."
    ));
    out.push_str(&rows(
        &format!("{} (erased)", e.relation),
        &output.summary.erased_relation,
    ));
    if let Some(other) = &output.summary.other_relations {
        out.push_str(&rows("other relations", other));
    }
    out.push_str(&format!(
        "  weights restored: {}\n",
        if output.weights_restored { "yes" } else { "NO" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_value("unk").unwrap(), ErasureValue::UnknownToken);
        assert_eq!(parse_value("zero").unwrap(), ErasureValue::Zero);
        assert_eq!(parse_value("id:5").unwrap(), ErasureValue::Token(5));
        assert_eq!(
            parse_value("<|im_end|>").unwrap(),
            ErasureValue::TokenText("<|im_end|>".into())
        );
        assert!(parse_value("id:x").is_err());
        assert!(parse_value(" ").is_err());
    }
}

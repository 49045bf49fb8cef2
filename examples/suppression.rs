//! The paper's suppression/amplification experiment (Dai et al. 2022, §4.3, figure 3) end to
//! end on the default model (SmolLM2-135M-Instruct): pick a seeded sample of PARAREL relations,
//! find a few facts per relation that the model answers correctly, discover their knowledge
//! neurons (integrated gradients, coarse selection at 0.2 x max, refinement at p = 0.7), then
//! suppress (x0) and amplify (x2) them beside the controls (random neurons of the same layers,
//! the same neurons on other relations' facts, the neurons of highest activation). Prints a
//! table and writes the bar chart `suppression.svg`.
//!
//! Run: `cargo run --release --example suppression -- [options]`
//!
//! Options (each also read from the environment variable in brackets):
//! - `--relations P36,P1376,P103` [`KN_RELATIONS`]: the relations (default: a seeded sample);
//! - `--sample-relations 3` [`KN_SAMPLE_RELATIONS`]: how many relations to sample;
//! - `--facts 2` [`KN_FACTS`]: facts per relation;
//! - `--steps 10` [`KN_STEPS`]: integration steps (the paper: 20);
//! - `--max-prompts 4` [`KN_MAX_PROMPTS`]: prompts per fact (0: all; at least 3 are needed);
//! - `--seed 0` [`KN_SEED`], `--model default` [`KN_MODEL`], `--out suppression.svg` [`KN_OUT`].
//!
//! Runtime with the defaults: estimated 2 to 4 minutes on 2 CPU cores, not yet timed (6 facts x
//! 4 prompts of integrated gradients at 10 steps dominate; the smoke run with 2 steps, 3 prompts
//! and 2 facts took 3 minutes on a busy machine, most of it finding correctly answered facts); it grows linearly with facts, prompts and
//! steps. The same experiment over a `kn discover` run is `kn suppress --neurons DIR/neurons.jsonl`.

use kn_data::{Fact, Pararel};
use kn_edit::{
    add_activation_baselines, answer_quality, suppress_amplify_experiment, EncodedFact,
    ExperimentConfig,
};
use kn_model::{load_model, tch::Device};
use kn_report::chart::{ChartMeasure, SuppressionChart};
use std::error::Error;

mod common;
use common::{knowledge_neurons, single_token_prompts};
use std::time::Instant;

/// `--name value` from the command line, else the environment variable, else `default`.
fn option(name: &str, env: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == &format!("--{name}"))
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_string())
}

fn number(name: &str, env: &str, default: &str) -> Result<u64, Box<dyn Error>> {
    let text = option(name, env, default);
    text.parse()
        .map_err(|_| format!("--{name} {text:?} is not a number").into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let seed = number("seed", "KN_SEED", "0")?;
    let facts_per_relation = number("facts", "KN_FACTS", "2")? as usize;
    let steps = number("steps", "KN_STEPS", "10")? as usize;
    let max_prompts = number("max-prompts", "KN_MAX_PROMPTS", "4")? as usize;
    let sample = number("sample-relations", "KN_SAMPLE_RELATIONS", "3")? as usize;
    let out = option("out", "KN_OUT", "suppression.svg");
    let model = load_model(&option("model", "KN_MODEL", "default"), Device::Cpu)?;
    let dataset = Pararel::load_bundled()?;
    let explicit = option("relations", "KN_RELATIONS", "");
    let limit = if explicit.is_empty() {
        sample
    } else {
        usize::MAX
    };
    let relations: Vec<String> = match explicit.as_str() {
        "" => {
            let mut ids = dataset.relation_ids();
            ids.sort_by_key(|r| kn_edit::derive_seed(seed, &format!("relation/{r}")));
            ids
        }
        list => list.split(',').map(|r| r.trim().to_string()).collect(),
    };

    let mut facts: Vec<EncodedFact> = Vec::new();
    let mut used_relations = 0;
    for relation in &relations {
        if used_relations >= limit {
            break;
        }
        let mut order: Vec<&Fact> = dataset.facts_of(relation)?.iter().collect();
        order.sort_by_key(|f| kn_edit::derive_seed(seed, &f.id.to_string()));
        let mut kept = 0;
        // Facts the model answers correctly (top-1 on at least one prompt), as `kn discover`;
        // the first 80 of the seeded order are tried.
        for fact in order.into_iter().take(80) {
            if kept >= facts_per_relation {
                break;
            }
            let Some(prompts) = single_token_prompts(model.as_ref(), &dataset, fact, max_prompts)
            else {
                continue;
            };
            if answer_quality(model.as_ref(), &prompts, 16)?.accuracy == 0.0 {
                continue;
            }
            let id = fact.id.to_string();
            let neurons = knowledge_neurons(model.as_ref(), fact, &prompts, steps)?;
            eprintln!(
                "{id} {} -> {}: {} knowledge neurons ({:.0} s so far)",
                fact.subject,
                fact.object,
                neurons.len(),
                started.elapsed().as_secs_f64()
            );
            facts.push(EncodedFact {
                id,
                relation: relation.clone(),
                prompts,
                neurons,
                activation_baseline: None,
            });
            kept += 1;
        }
        if kept > 0 {
            used_relations += 1;
        } else {
            eprintln!("{relation}: no fact answered correctly with a single-token object, skipped");
        }
    }
    if facts.is_empty() {
        return Err("no facts found: try other --relations".into());
    }

    let layers: Vec<usize> = (0..model.info().num_layers).collect();
    add_activation_baselines(model.as_ref(), &mut facts, Some(&layers), &mut |_, _| {})?;
    let config = ExperimentConfig {
        seed,
        ..ExperimentConfig::default()
    };
    let report = suppress_amplify_experiment(model.as_ref(), &facts, &config, &mut |_, _| {})?;

    println!("change of the correct answer's probability (ratio of means, the paper's number)");
    println!(
        "{:<8} {:>6} {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10}",
        "relation",
        "facts",
        "suppress",
        "amplify",
        "rnd sup.",
        "rnd amp.",
        "oth sup.",
        "oth amp.",
        "act sup.",
        "act amp."
    );
    let pct = |v: Option<f64>| v.map(|v| format!("{v:+.1}%")).unwrap_or_else(|| "-".into());
    let groups = report
        .relations
        .iter()
        .map(|(r, g)| (r.as_str(), g))
        .chain([("all", &report.overall)]);
    for (name, group) in groups {
        let c = &group.conditions;
        println!(
            "{:<8} {:>6} {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10}",
            name,
            group.facts_evaluated,
            pct(c.own.suppress.change_pct),
            pct(c.own.amplify.change_pct),
            pct(c.random.suppress.change_pct),
            pct(c.random.amplify.change_pct),
            pct(c.other_relations.suppress.change_pct),
            pct(c.other_relations.amplify.change_pct),
            pct(c.activation_baseline.suppress.change_pct),
            pct(c.activation_baseline.amplify.change_pct),
        );
    }
    let title = format!(
        "Suppressing and amplifying knowledge neurons ({})",
        report.architecture
    );
    SuppressionChart::from_report(&report, ChartMeasure::ChangePct, true, &title)
        .save(std::path::Path::new(&out))?;
    println!(
        "chart: {out} ({:.0} s in all)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
